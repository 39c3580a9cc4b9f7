/**
 * Every parser of what a site tool prints, fed the tools' real output formats (captured from proxychains-ng 4.16,
 * apptainer 1.3, Slurm 23.02's squeue, HTCondor's condor_status -af, and the site scripts under dash): what they
 * must accept, and what they must refuse or read as "nothing there".
 */
import type { Executor, RunOptions } from '../../src/remote/executor';
import { adaptersFor, parseChainReport } from '../../src/site/adapters';
import { parseAutoformat, parseLaunchedAds } from '../../src/site/condor';
import { parseSlurmTime, parseSqueue, slurmTime } from '../../src/site/batch';
import type { SiteProfile } from '../../src/site/profile';
import { parseInspect, parseSpawn, signalAndWait } from '../../src/site/scripts';

/** The instance of that name, as startContainer looks for it: the runtime's list command and its parse. */
async function findInstance(exec: Executor, profile: SiteProfile, instance: string, opts: RunOptions) {
  const container = adaptersFor(profile).container;
  return container.parseList((await exec.run(container.listArgv(instance), opts)).stdout, instance);
}

/** This glidein's jobs, as allocateNode asks squeue for them. */
async function findJobs(exec: Executor, glideinId: string, opts: RunOptions) {
  const argv = ['squeue', '--me', '--noheader', `--name=${glideinId}`, '--format=%i|%T|%N|%L'];
  return parseSqueue((await exec.run(argv, opts)).stdout);
}

/** An executor that prints `stdout` for any command, and remembers the argv. */
function printing(stdout: string): Executor & { argv?: readonly string[] } {
  const exec: Executor & { argv?: readonly string[] } = {
    target: 'stub',
    async run(argv) {
      exec.argv = argv;
      return { code: 0, signal: null, stdout, stderr: '' };
    },
  };
  return exec;
}

describe('proxychains-ng chain reports', () => {
  const preamble =
    '[proxychains] config file found: /w/g1/proxychains.conf\n[proxychains] preloading ' +
    '/usr/lib/x86_64-linux-gnu/libproxychains.so.4\n[proxychains] DLL init: proxychains-ng 4.16\n';
  it.each([
    [
      'the whole chain',
      '[proxychains] Strict chain  ...  127.0.0.1:1080  ...  127.0.0.3:80  ...  127.0.0.4:9618  ...  OK',
      { ok: true },
    ],
    [
      'a named target (proxy_dns)',
      '[proxychains] Strict chain  ...  127.0.0.1:1080  ...  10.0.0.3:80  ...  vocms0805.cern.ch:9618  ...  OK',
      { ok: true },
    ],
    [
      'the tunnel down',
      '[proxychains] Strict chain  ...  127.0.0.1:1080 <--socket error or timeout!',
      { ok: false, failedHop: 'tunnel' },
    ],
    [
      'KIT down',
      '[proxychains] Strict chain  ...  127.0.0.1:1080  ...  127.0.0.3:81 <--socket error or timeout!',
      { ok: false, failedHop: 'kit' },
    ],
    [
      'the target refused by KIT',
      '[proxychains] Strict chain  ...  127.0.0.1:1080  ...  127.0.0.3:80  ...  127.0.0.4:9619 <--denied',
      { ok: false, failedHop: 'target' },
    ],
  ])('reads %s', (_what, line, expected) => {
    expect(parseChainReport(`${preamble}${line}\nprobe: line 1: /dev/tcp/x/1: Connection refused\n`)).toMatchObject({
      ...expected,
      line,
    });
  });

  it('reads the last connection when there were several', () => {
    const first = '[proxychains] Strict chain  ...  127.0.0.1:1080 <--socket error or timeout!';
    const last = '[proxychains] Strict chain  ...  127.0.0.1:1080  ...  127.0.0.3:80  ...  127.0.0.4:9618  ...  OK';
    expect(parseChainReport(`${first}\n${last}\n`)).toMatchObject({ ok: true, line: last });
  });

  it('finds no chain in output without any proxychains line (no pre-load)', () => {
    expect(parseChainReport('probe: connect: Network is unreachable\n')).toEqual({ ok: false });
  });

  // Known bug, left for the owner of parseChainReport: /\[proxychains\].*chain/i also matches proxychains' banner
  // ("proxychains-ng 4.16", "libproxychains.so.4"), so banner lines without a chain line read as a tunnel failure
  // instead of "no chain report". Harmless while proxychains prints a chain line last; this flips when it is fixed.
  it.failing('does not take the banner lines for a chain report', () => {
    expect(parseChainReport(preamble)).toEqual({ ok: false });
  });
});

describe('the process inspection script', () => {
  const output = [
    'proc /w/g1/tunnel.pid 4242 8812345 8812345 ssh -F /dev/null -N -D 127.0.0.1:1080 -o BatchMode=yes -- 127.0.0.1 ',
    'proc /w/g1/glidein.pid 4300 8812399 - ',
    'proc /w/g1/other.pid 4400 8800000 8899999 sleep 1000 ',
    'proc /w/g1/gone.pid 4500 8800001 - -',
    'proc /w/g1/none.pid - - - -',
    'listen 0016',
    'listen 0438',
    '',
  ].join('\n');
  const snap = parseInspect(output);

  it('reads a live process with its command line', () => {
    expect(snap.processes.get('/w/g1/tunnel.pid')).toEqual({
      pidFile: '/w/g1/tunnel.pid',
      recorded: { pid: 4242, startTime: '8812345' },
      alive: true,
      cmdline: 'ssh -F /dev/null -N -D 127.0.0.1:1080 -o BatchMode=yes -- 127.0.0.1',
    });
  });

  it('counts a zombie, a reused pid, an ended process and a missing pid file as not alive', () => {
    for (const f of ['glidein', 'other', 'gone', 'none'])
      expect(snap.processes.get(`/w/g1/${f}.pid`)?.alive).toBe(false);
    expect(snap.processes.get('/w/g1/other.pid')?.recorded).toEqual({ pid: 4400, startTime: '8800000' });
    expect(snap.processes.get('/w/g1/none.pid')?.recorded).toBeUndefined();
  });

  it('reads the listening ports from /proc/net/tcp hex', () => {
    expect([...snap.listening].sort((a, b) => a - b)).toEqual([22, 1080]);
  });
});

describe('the spawn script', () => {
  it.each([
    ['started 4242 8812345\n', { started: { pid: 4242, startTime: '8812345' } }],
    ['waiting 4242 8812345\n', { stillWaiting: { pid: 4242, startTime: '8812345' } }],
    ['exited 4242\n', { exitedAtOnce: 4242 }],
  ])('reads %j', (stdout, expected) => {
    expect(parseSpawn(stdout)).toEqual(expected);
  });

  it.each([
    '',
    'started 4242',
    'started 0 1',
    'started 4242 12a',
    'exited',
    'sh: 1: cannot create /x: Directory nonexistent',
  ])('refuses %j', (stdout) => {
    expect(() => parseSpawn(stdout)).toThrow(/not started\/waiting\/exited/);
  });
});

describe('the signal script', () => {
  it.each([
    ['no-pidfile\n', { state: 'no-pidfile' }],
    ['gone\n', { state: 'gone' }],
    ['ended 4300\n', { state: 'ended', pid: 4300 }],
    ['running 4300\n', { state: 'running', pid: 4300 }],
  ])('reads %j', async (stdout, expected) => {
    expect(await signalAndWait(printing(stdout), 'TERM', '/w/g1/glidein.pid', 1_000, {})).toEqual(expected);
  });

  it('refuses anything else', async () => {
    await expect(signalAndWait(printing('signalled 4300\n'), 'TERM', '/w/g1/glidein.pid', 0, {})).rejects.toThrow(
      /unexpected output from the stop script/,
    );
  });
});

describe('apptainer instance list --json', () => {
  const profile = { container: { runtime: 'apptainer', executable: '/usr/bin/apptainer' } } as never;
  const listing = `{
    "instances": [
        {
            "instance": "glidein-g1",
            "pid": 51234,
            "img": "/p/images/cms-el9.sif",
            "ip": "",
            "logErrPath": "/home/glidein/.apptainer/instances/logs/wn01/glidein/glidein-g1.err",
            "logOutPath": "/home/glidein/.apptainer/instances/logs/wn01/glidein/glidein-g1.out"
        }
    ]
}
`;

  it('finds the instance by name', async () => {
    const exec = printing(listing);
    expect(await findInstance(exec, profile, 'glidein-g1', {})).toMatchObject({ instance: 'glidein-g1', pid: 51234 });
    expect(exec.argv).toEqual(['/usr/bin/apptainer', 'instance', 'list', '--json', 'glidein-g1']);
  });

  it('finds nothing in an empty listing, in no output, or under another name', async () => {
    expect(await findInstance(printing('{\n    "instances": []\n}\n'), profile, 'glidein-g1', {})).toBeUndefined();
    expect(await findInstance(printing(''), profile, 'glidein-g1', {})).toBeUndefined();
    expect(await findInstance(printing(listing), profile, 'glidein-g2', {})).toBeUndefined();
  });

  it('refuses output that is not JSON', async () => {
    await expect(findInstance(printing('INFO:    No instance found.\n'), profile, 'glidein-g1', {})).rejects.toThrow(
      /not JSON/,
    );
  });
});

describe('squeue and Slurm times', () => {
  it('reads this glidein jobs from squeue --format=%i|%T|%N|%L, dropping what is not a job line', async () => {
    const exec = printing(
      [
        '730001|RUNNING|jwc00n001|59:41',
        '730002|PENDING||1:00:00',
        '730003|COMPLETING|jwc00n002|0:00',
        '730004_1|RUNNING|x|1:00',
        'slurm_load_jobs error: Invalid user',
        '',
      ].join('\n'),
    );
    expect(await findJobs(exec, 'g1', {})).toEqual([
      { jobId: '730001', state: 'RUNNING', node: 'jwc00n001', timeLeftMs: 3_581_000 },
      { jobId: '730002', state: 'PENDING', node: '', timeLeftMs: 3_600_000 },
      { jobId: '730003', state: 'COMPLETING', node: 'jwc00n002', timeLeftMs: 0 },
    ]);
    expect(exec.argv).toEqual(['squeue', '--me', '--noheader', '--name=g1', '--format=%i|%T|%N|%L']);
  });

  it.each([
    ['59:41', 3_581_000],
    ['1:00:00', 3_600_000],
    ['2-03:04:05', ((2 * 24 + 3) * 3600 + 4 * 60 + 5) * 1000],
    ['UNLIMITED', undefined],
    ['NOT_SET', undefined],
    ['INVALID', undefined],
  ])('reads time left %s', (text, ms) => {
    expect(parseSlurmTime(text)).toBe(ms);
  });

  it('writes --time as sbatch reads it, at least a minute', () => {
    expect(slurmTime(30_000)).toBe('00:01:00');
    expect(slurmTime(3_600_000)).toBe('01:00:00');
    expect(slurmTime(90_061_000)).toBe('1-01:01:01');
  });
});

describe('condor_status -af', () => {
  it('reads Name State Activity, skipping proxychains lines', () => {
    expect(
      parseAutoformat(
        '[proxychains] DLL init: proxychains-ng 4.16\nglidein_4242@wn01 Unclaimed Idle\nslot1@wn02 Claimed\n',
      ),
    ).toEqual([
      { name: 'glidein_4242@wn01', state: 'Unclaimed', activity: 'Idle' },
      { name: 'slot1@wn02', state: 'Claimed', activity: 'undefined' },
    ]);
  });

  it('reads GlideinLaunchId Name State Activity by launch id, first ad wins, ads without an id are not ours', () => {
    const ads = parseLaunchedAds(
      [
        'g1 glidein_4242@wn01 Unclaimed Idle',
        'g1 glidein_4242@wn01-old Unclaimed Idle',
        'g2 slot1@glidein_77@wn02 Claimed Busy',
        'undefined slot1@someone-else Unclaimed Idle',
        '[proxychains] Strict chain  ...  127.0.0.1:1080  ...  OK',
        '',
      ].join('\n'),
    );
    expect([...ads.keys()]).toEqual(['g1', 'g2']);
    expect(ads.get('g1')).toEqual({ name: 'glidein_4242@wn01', state: 'Unclaimed', activity: 'Idle' });
    expect(ads.get('g2')).toEqual({ name: 'slot1@glidein_77@wn02', state: 'Claimed', activity: 'Busy' });
  });
});
