/**
 * The local test site works like JSC's chain, proven with real commands: OpenSSH logins with the operator's
 * key, the worker node's `ssh -D` tunnel with the site key, proxychains through the tunnel and the KIT proxy,
 * FUSE mounts by cvmfsexec's mountrepo, the apptainer instance cycle, and a glidein that registers with
 * the collector only when its connections go through KIT.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  collectorAds,
  collectorLog,
  kitProxyLog,
  localSite,
  portAccepts,
  PROXYCHAINS_LIBRARY,
  proxychainsConfig,
  runCommand,
  siteMounts,
  siteProcesses,
  sshdLog,
  startService,
  stopService,
  waitFor,
  type CommandResult,
  type SiteNode,
} from '../../sandbox/local-site';

const site = localSite();
const P = site.paths;
const SOCKS_PORT = 1181;
const runId = `t${process.pid}`;
const testDir = path.join(P.workDir, `site-test-${runId}`);
const proxychainsConf = path.join(testDir, 'proxychains.conf');
// A private cvmfsexec dir (the site's mountrepo/umountrepo, its store) so that `umountrepo -a` and the
// mounts of this file never touch those of another test run sharing the site.
const cvmfsexec = path.join(testDir, 'cvmfsexec');
const mountrepo = path.join(cvmfsexec, 'mountrepo');
const umountrepo = path.join(cvmfsexec, 'umountrepo');
const cvmfsDist = path.join(cvmfsexec, 'dist', 'cvmfs');
const cmsMount = path.join(cvmfsDist, 'cms.cern.ch');
const COLLECTOR = `${site.endpoints.collector.host}:${site.endpoints.collector.port}`;
const cvmfsConf = path.join(cvmfsexec, 'dist', 'etc', 'cvmfs', 'default.local');
const SQUID = `${site.endpoints.squid.host}:${site.endpoints.squid.port}`;
const GOOD_PROXY = `CVMFS_HTTP_PROXY='http://${SQUID}'`;

/** Runs a constant bash script on a node; values reach it only as positional parameters. */
function bashOn(
  node: SiteNode,
  script: string,
  args: readonly string[],
  env: readonly string[] = [],
): Promise<CommandResult> {
  return site.ssh(node, ['env', ...env, 'bash', '-c', script, 'bash', ...args]);
}

function processAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function tunnelPids(): number[] {
  return siteProcesses()
    .filter((p) => p.argv[0] === 'ssh' && p.cmdline.includes(`-D 127.0.0.1:${SOCKS_PORT}`))
    .map((p) => p.pid);
}

async function instanceStop(name: string): Promise<void> {
  await site.ssh('worker', [P.apptainer, 'instance', 'stop', '-t', '2', name]);
}

beforeAll(async () => {
  // The test's work directory on the site, with the chain's proxychains configuration.
  const r = await site.ssh('worker', ['bash', '-c', 'mkdir -p "$1" && cat >"$2"', 'bash', testDir, proxychainsConf], {
    input: proxychainsConfig(SOCKS_PORT),
  });
  expect(r).toMatchObject({ code: 0 });
  const copy = await bashOn('worker', 'mkdir -p "$1/dist/cvmfs" && cp "$2" "$3" "$1/" && ln -s "$4" "$1/store"', [
    cvmfsexec,
    P.mountrepo,
    P.umountrepo,
    P.cvmfsStore,
  ]);
  expect(copy).toMatchObject({ code: 0 });
  // cvmfs's proxy: the site's squid (the worker reaches it directly here; the glideins reach it through KIT).
  expect(
    await site.ssh('worker', [
      'sh',
      '-c',
      'mkdir -p "${1%/*}" && printf "%s\\n" "$2" > "$1"',
      'sh',
      cvmfsConf,
      GOOD_PROXY,
    ]),
  ).toMatchObject({ code: 0 });
});

afterAll(async () => {
  for (const pid of tunnelPids()) process.kill(pid, 'SIGTERM');
  for (const m of siteMounts().filter((m) => m.target.startsWith(testDir + '/'))) {
    await runCommand(['fusermount', '-u', m.target]);
  }
  fs.rmSync(testDir, { recursive: true, force: true });
});

describe('the login and worker nodes', () => {
  test.each(['login', 'worker'] as const)(
    'the %s node accepts the operator key and runs commands as glidein in its home',
    async (node) => {
      const r = await site.ssh(node, ['bash', '-c', 'id -un; printf "%s\\n" "$HOME"']);
      expect(r).toMatchObject({ code: 0, stdout: `glidein\n${P.home}\n` });
      expect(sshdLog(node)).toMatch(/Accepted publickey for glidein from 127\.0\.0\.1/);
    },
  );

  test('the work directory is group-shared and setgid, as a JSC project directory is', () => {
    const st = fs.statSync(P.workDir);
    expect(st.mode & 0o7777).toBe(0o2770);
  });

  test('a node whose host key is not in known_hosts is refused', async () => {
    const argv = site
      .sshArgv('login', ['true'])
      .map((a) => (a.startsWith('UserKnownHostsFile=') ? 'UserKnownHostsFile=/dev/null' : a));
    const r = await runCommand(argv);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Host key verification failed/);
  });
});

describe('the proxy chain: SOCKS tunnel from the worker node to the login node, then the KIT proxy', () => {
  test('the worker node opens `ssh -D` to the login node with the site key and known_hosts', async () => {
    const r = await bashOn(
      'worker',
      'ssh -F /dev/null -i "$1" -o IdentitiesOnly=yes -o UserKnownHostsFile="$2" -o StrictHostKeyChecking=yes ' +
        '-o BatchMode=yes -o ExitOnForwardFailure=yes -f -N -D "127.0.0.1:$3" -p 2201 glidein@127.0.0.1 ' +
        '</dev/null >"$4" 2>&1',
      [P.siteKey, P.siteKnownHosts, String(SOCKS_PORT), path.join(testDir, 'tunnel.log')],
    );
    expect(r).toMatchObject({ code: 0 });
    expect(tunnelPids()).toHaveLength(1);
    expect(await portAccepts({ host: '127.0.0.1', port: SOCKS_PORT })).toBe(true);
    // The login node's sshd logged the site key's fingerprint.
    const fingerprint = (await runCommand(['ssh-keygen', '-l', '-f', `${P.siteKey}.pub`])).stdout.split(' ')[1];
    expect(sshdLog('login')).toContain(`Accepted publickey for glidein from 127.0.0.1`);
    expect(sshdLog('login')).toContain(fingerprint);
  });

  test('proxychains4 through the tunnel and the KIT proxy reaches the collector; KIT logs the CONNECT', async () => {
    const before = kitProxyLog().length;
    const r = await bashOn('worker', 'exec proxychains4 -q -f "$1" bash -c "exec 3<>/dev/tcp/127.0.0.4/9618"', [
      proxychainsConf,
    ]);
    expect(r).toMatchObject({ code: 0 });
    expect(kitProxyLog().slice(before)).toContain(`CONNECT ${COLLECTOR}`);
  });

  test('without a SOCKS tunnel the strict chain fails', async () => {
    const conf = path.join(testDir, 'no-tunnel.conf');
    const r = await site.ssh(
      'worker',
      ['bash', '-c', 'cat >"$1" && proxychains4 -q -f "$1" bash -c "exec 3<>/dev/tcp/127.0.0.4/9618"', 'bash', conf],
      {
        input: proxychainsConfig(SOCKS_PORT + 1),
      },
    );
    expect(r.code).not.toBe(0);
  });
});

describe('cvmfsexec stand-in', () => {
  test('mountrepo needs CVMFS_HTTP_PROXY in dist/etc/cvmfs/default.local, a proxy serving the repository', async () => {
    const write = (text: string) =>
      site.ssh('worker', ['sh', '-c', 'printf "%s\\n" "$2" > "$1"', 'sh', cvmfsConf, text]);
    try {
      expect(await write('CVMFS_QUOTA_LIMIT=4000')).toMatchObject({ code: 0 });
      const wpad = await site.ssh('worker', [mountrepo, 'cms.cern.ch']);
      expect(wpad.code).toBe(22);
      expect(wpad.stderr).toContain('Failed to discover HTTP proxy servers (22 - proxy auto-discovery failed)');
      expect(await write(`CVMFS_HTTP_PROXY='http://${site.endpoints.squid.host}:3129;DIRECT'`)).toMatchObject({
        code: 0,
      });
      const unserved = await site.ssh('worker', [mountrepo, 'cms.cern.ch']);
      expect(unserved.code).toBe(16);
      expect(unserved.stderr).toContain(`proxy http://${site.endpoints.squid.host}:3129: no connection`);
      expect(siteMounts().filter((x) => x.target === cmsMount)).toEqual([]);
    } finally {
      await write(GOOD_PROXY);
    }
  });

  test('mountrepo mounts a repository read-only by FUSE, refuses a second mount; umountrepo -a undoes it', async () => {
    const squidBefore = fs.readFileSync(P.squidLog, 'utf8').length;
    const mount = await site.ssh('worker', [mountrepo, 'cms.cern.ch']);
    expect(mount).toMatchObject({
      code: 0,
      stdout: `CernVM-FS: loading Fuse module... done\nCernVM-FS: mounted cvmfs on ${cmsMount}\n`,
    });
    const m = siteMounts().find((x) => x.target === cmsMount);
    expect(m).toMatchObject({ fstype: 'fuse' });
    expect(m?.source).toMatch(/\/store\/cms\.cern\.ch$/);
    expect(m?.options.split(',')).toContain('ro');
    expect(siteProcesses().some((p) => p.argv[0] === 'bindfs' && p.argv.includes(cmsMount))).toBe(true);
    // It asked its proxy for the repository first, as cvmfs does.
    expect(fs.readFileSync(P.squidLog, 'utf8').slice(squidBefore)).toMatch(
      /TCP_MISS\/200 \d+ GET http:\/\/cvmfs-stratum-one\.cern\.ch:8000\/cvmfs\/cms\.cern\.ch\/\.cvmfspublished/,
    );

    const look = await bashOn('worker', 'test -x "$1/glidein/sbin/condor_master" && ! touch "$1/x" 2>/dev/null', [
      cmsMount,
    ]);
    expect(look).toMatchObject({ code: 0 });

    const again = await site.ssh('worker', [mountrepo, 'cms.cern.ch']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already mounted/);
    const unknown = await site.ssh('worker', [mountrepo, 'atlas.cern.ch']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/Failed to initialize root file catalog \(16 - file catalog failure\)/);
    const usage = await site.ssh('worker', [mountrepo]);
    expect(usage).toMatchObject({ code: 1, stderr: 'Usage: mountrepo repo.name\n' });

    const umount = await site.ssh('worker', [umountrepo, '-a']);
    expect(umount).toMatchObject({ code: 0, stdout: `Unmounting ${cmsMount}\n` });
    expect(siteMounts().filter((x) => x.target === cmsMount)).toEqual([]);
  });
});

describe('apptainer stand-in', () => {
  const name = `app-${runId}`;
  afterAll(() => instanceStop(name));

  test('instance start, list, exec and stop behave like apptainer and leave nothing running', async () => {
    const A = P.apptainer;
    const missingImage = await site.ssh('worker', [A, 'instance', 'start', `${P.image}.missing`, name]);
    expect(missingImage.code).toBe(255);
    expect(missingImage.stderr).toMatch(/^FATAL: {3}could not open image .*: no such file or directory/);
    const missingBind = await site.ssh('worker', [A, 'instance', 'start', '-B', '/nonexistent:/cvmfs', P.image, name]);
    expect(missingBind.code).toBe(255);
    expect(missingBind.stderr).toMatch(/mount source \/nonexistent doesn't exist/);

    const start = await site.ssh('worker', [A, 'instance', 'start', '-B', `${P.cvmfsDist}:/cvmfs`, P.image, name]);
    expect(start).toMatchObject({ code: 0, stderr: 'INFO:    instance started successfully\n' });
    const dup = await site.ssh('worker', [A, 'instance', 'start', P.image, name]);
    expect(dup).toMatchObject({ code: 255, stderr: `FATAL:   instance ${name} already exists\n` });

    const list = await site.ssh('worker', [A, 'instance', 'list', '--json', name]);
    const instances = (JSON.parse(list.stdout) as { instances: { instance: string; pid: number; img: string }[] })
      .instances;
    expect(instances).toHaveLength(1);
    expect(instances[0]).toMatchObject({ instance: name, img: P.image });
    const initPid = instances[0].pid;
    const init = siteProcesses().find((p) => p.pid === initPid);
    expect(init?.cmdline).toContain(`Apptainer instance: glidein [${name}]`);
    const text = await site.ssh('worker', [A, 'instance', 'list']);
    expect(text.stdout).toMatch(/^INSTANCE NAME +PID +IP +IMAGE\n/);
    expect(text.stdout).toMatch(new RegExp(`^${name} +${initPid} +${P.image.replace(/[.]/g, '\\.')}$`, 'm'));

    const env = await site.ssh('worker', [
      'env',
      'APPTAINERENV_FOO=bar',
      A,
      'exec',
      '--env',
      'BAZ=qux',
      `instance://${name}`,
      '/bin/sh',
      '-c',
      'echo "$FOO $BAZ $APPTAINER_INSTANCE $APPTAINER_NAME $APPTAINER_CONTAINER"',
    ]);
    expect(env).toMatchObject({ code: 0, stdout: `bar qux ${name} cms-el9.sif ${P.image}\n` });
    const missingCmd = await site.ssh('worker', [A, 'exec', `instance://${name}`, 'no-such-command']);
    expect(missingCmd).toMatchObject({
      code: 255,
      stderr: 'FATAL:   "no-such-command": executable file not found in $PATH\n',
    });

    // A payload exec'd into the instance keeps the pid of `apptainer exec` ($!), and dies with the instance.
    const bg = await bashOn('worker', '"$1" exec "instance://$2" sleep 300 >/dev/null 2>&1 </dev/null & echo $!', [
      A,
      name,
    ]);
    const payloadPid = Number(bg.stdout.trim());
    await waitFor(
      'the payload to run sleep',
      () => siteProcesses().find((p) => p.pid === payloadPid)?.argv[0] === 'sleep',
    );

    const stop = await site.ssh('worker', [A, 'instance', 'stop', name]);
    expect(stop).toMatchObject({
      code: 0,
      stderr: `INFO:    Stopping ${name} instance of ${P.image} (PID=${initPid})\n`,
    });
    expect(processAlive(initPid)).toBe(false);
    expect(processAlive(payloadPid)).toBe(false);
    const after = await site.ssh('worker', [A, 'instance', 'list', '--json', name]);
    expect(JSON.parse(after.stdout)).toEqual({ instances: [] });
    const gone = await site.ssh('worker', [A, 'exec', `instance://${name}`, 'true']);
    expect(gone).toMatchObject({ code: 255, stderr: `FATAL:   no instance found with name ${name}\n` });
    const stopAgain = await site.ssh('worker', [A, 'instance', 'stop', name]);
    expect(stopAgain.code).toBe(255);
  });
});

describe('a glidein in the container registers only through KIT', () => {
  const instance = `glidein-${runId}`;
  const hostname = os.hostname();
  const tokensDir = path.join(testDir, 'tokens.d');
  const START_MASTER = 'cd "$1" || exit 1\nlog=$2\nshift 2\nnohup "$@" >"$log" 2>&1 </dev/null &\necho $!';
  const condorEnv = (glideinName: string) => [
    `_CONDOR_COLLECTOR_HOST=${COLLECTOR}`,
    '_CONDOR_UPDATE_COLLECTOR_WITH_TCP=True',
    '_CONDOR_WANT_UDP_COMMAND_SOCKET=False',
    `_CONDOR_CCB_ADDRESS=${COLLECTOR}`,
    '_CONDOR_UPDATE_INTERVAL=1',
    `_CONDOR_GLIDEIN_NAME=${glideinName}`,
    '_CONDOR_STARTD_ATTRS=GLIDEIN_Site GLIDEIN_Id',
    '_CONDOR_GLIDEIN_Site="local"',
    '_CONDOR_GLIDEIN_Id=7',
    // The pool admits it only with its IDTOKEN: the operator's, staged as a glidein's is.
    `_CONDOR_SEC_TOKEN_DIRECTORY=${tokensDir}`,
  ];
  const preload = [
    `APPTAINERENV_LD_PRELOAD=${PROXYCHAINS_LIBRARY}`,
    `APPTAINERENV_PROXYCHAINS_CONF_FILE=${proxychainsConf}`,
  ];

  async function startMaster(glideinName: string, env: readonly string[]): Promise<number> {
    const r = await bashOn(
      'worker',
      START_MASTER,
      [
        testDir,
        `${glideinName}.log`,
        P.apptainer,
        'exec',
        `instance://${instance}`,
        '/cvmfs/cms.cern.ch/glidein/sbin/condor_master',
        '-f',
      ],
      env,
    );
    expect(r).toMatchObject({ code: 0 });
    return Number(r.stdout.trim());
  }

  const masterLog = (glideinName: string) => fs.readFileSync(path.join(testDir, `${glideinName}.log`), 'utf8');

  beforeAll(async () => {
    if (tunnelPids().length === 0) throw new Error('the SOCKS tunnel of the proxy-chain tests is not running');
    const staged = await site.ssh(
      'worker',
      ['sh', '-c', 'umask 077 && mkdir -p "$1" && cat > "$1/pool.idtoken"', 'sh', tokensDir],
      { input: fs.readFileSync(P.operatorToken, 'utf8') },
    );
    expect(staged).toMatchObject({ code: 0 });
    expect(await site.ssh('worker', [mountrepo, 'cms.cern.ch'])).toMatchObject({ code: 0 });
    expect(
      await site.ssh('worker', [P.apptainer, 'instance', 'start', '-B', `${cvmfsDist}:/cvmfs`, P.image, instance]),
    ).toMatchObject({ code: 0 });
  });

  afterAll(async () => {
    await instanceStop(instance);
    await site.ssh('worker', [umountrepo, '-a']);
  });

  test('condor_master in apptainer exec, proxychains preloaded, registers; invalidates its ad on SIGTERM', async () => {
    const glideinName = `via-kit-${runId}`;
    const adName = `slot1@${glideinName}@${hostname}`;
    const kitBefore = kitProxyLog().length;
    const pid = await startMaster(glideinName, [...condorEnv(glideinName), ...preload]);

    const [ad] = await waitFor(`the ad ${adName} in the collector`, async () => {
      const ads = await collectorAds(`Name == "${adName}"`);
      return ads.length > 0 && ads;
    });
    expect(ad).toMatchObject({
      MyType: 'Machine',
      State: 'Unclaimed',
      Activity: 'Idle',
      GLIDEIN_Site: 'local',
      GLIDEIN_Id: 7,
      UpdatesPeerAddress: '127.0.0.3',
    });
    expect(kitProxyLog().slice(kitBefore)).toContain(`CONNECT ${COLLECTOR}`);

    // $! is the glidein itself: apptainer exec replaced itself with condor_master, with the preload.
    const proc = siteProcesses().find((p) => p.pid === pid);
    expect(proc?.cmdline).toContain(path.join(cmsMount, 'glidein/sbin/condor_master'));
    const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    expect(environ).toContain(`LD_PRELOAD=${PROXYCHAINS_LIBRARY}`);
    expect(environ).toContain(`APPTAINER_INSTANCE=${instance}`);

    // condor_status (from cvmfs, inside the container, through the chain) sees it too.
    const status = await site.ssh('worker', [
      'env',
      ...preload,
      P.apptainer,
      'exec',
      `instance://${instance}`,
      '/cvmfs/cms.cern.ch/glidein/bin/condor_status',
      '-pool',
      COLLECTOR,
      '-constraint',
      `GLIDEIN_Site == "local" && Name =?= "${adName}"`,
      '-af',
      'Name',
      'GLIDEIN_Id',
    ]);
    expect(status).toMatchObject({ code: 0, stdout: `${adName} 7\n` });

    expect(await site.ssh('worker', ['kill', '-TERM', String(pid)])).toMatchObject({ code: 0 });
    await waitFor('condor_master to exit', () => !processAlive(pid), 10_000);
    expect(await collectorAds(`Name == "${adName}"`)).toEqual([]);
    expect(collectorLog()).toContain(`INVALIDATE_STARTD_ADS from 127.0.0.3: invalidated ad "${adName}"`);
    expect(masterLog(glideinName)).toMatch(/Got SIGTERM\. Performing graceful shutdown\.[\s\S]*EXITING WITH STATUS 0/);
  });

  test('the same condor_master without the preload connects directly, is refused, never registers', async () => {
    const glideinName = `direct-${runId}`;
    const adName = `slot1@${glideinName}@${hostname}`;
    const pid = await startMaster(glideinName, condorEnv(glideinName));

    await waitFor('the collector to refuse the direct update', () =>
      new RegExp(
        `PERMISSION DENIED .* from host 127\\.0\\.0\\.1 for command 0 \\(UPDATE_STARTD_AD\\).*\\(ad "${adName}"\\)`,
      ).test(collectorLog()),
    );
    await waitFor('condor_master to log the failed update', () =>
      masterLog(glideinName).includes(`Failed to send update to collector ${COLLECTOR}`),
    );
    expect(processAlive(pid)).toBe(true);
    expect(await collectorAds(`Name == "${adName}"`)).toEqual([]);
    const status = await runCommand([
      P.condorStatus,
      '-pool',
      COLLECTOR,
      '-af',
      'Name',
      '-constraint',
      `Name == "${adName}"`,
    ]);
    expect(status).toMatchObject({ code: 0, stdout: '' });

    expect(await site.ssh('worker', ['kill', '-QUIT', String(pid)])).toMatchObject({ code: 0 });
    await waitFor('condor_master to exit', () => !processAlive(pid), 10_000);
    expect(masterLog(glideinName)).toMatch(/Got SIGQUIT\. Performing fast shutdown\.[\s\S]*EXITING WITH STATUS 0/);
  });
});

describe('fault injection', () => {
  afterAll(() => startService('kit'));

  test('stopService takes the KIT proxy away (the chain fails) and startService brings it back', async () => {
    const probe = () =>
      bashOn('worker', 'exec proxychains4 -q -f "$1" bash -c "exec 3<>/dev/tcp/127.0.0.4/9618"', [proxychainsConf]);
    await stopService('kit');
    expect(await portAccepts(site.endpoints.kit)).toBe(false);
    expect((await probe()).code).not.toBe(0);
    await startService('kit');
    expect(await probe()).toMatchObject({ code: 0 });
  });
});
