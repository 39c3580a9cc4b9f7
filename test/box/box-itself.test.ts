/**
 * JSC in a box works like JSC, proven with real commands: the firewall (nft fences in network namespaces),
 * the operator's ssh to the login node and through it to the worker node, Slurm as glidein (sbatch, squeue,
 * srun --overlap, scancel), the worker node's `ssh -D` tunnel to the login node with the site key and
 * proxychains through it and the KIT proxy to the collector, the KIT hop removed, and a teardown that leaves
 * nothing. jest's globalSetup starts only the loopback site: this file starts the box itself (as root).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lookupUser, proxychainsConfig, runCommand, waitFor, type CommandResult } from '../../sandbox/local-site';
import {
  BOX_BRIDGE,
  BOX_DIR,
  BOX_ENDPOINTS,
  BOX_NAMESPACES,
  BOX_NODES,
  BOX_PATHS,
  allBoxProcesses,
  boxCollectorAds,
  boxLeaseHolders,
  boxMounts,
  boxProcesses,
  collectorLog,
  inNamespace,
  joinJscBox,
  kitLog,
  leaveJscBox,
  serviceStatus,
  setKitProxy,
  setStrict,
  startJscBox,
  slurmJobs,
  sshdLog,
  WORKER_NODE_NAME,
  type BoxNamespace,
  type JscBox,
} from '../../sandbox/jsc-box';
import { ensureSigningKey, mintIdToken } from '../../sandbox/pool-token';

const SOCKS_PORT = 1181;
const COLLECTOR = `${BOX_ENDPOINTS.collector.host}:${BOX_ENDPOINTS.collector.port}`;
let box: JscBox;
let testDir: string;
let proxychainsConf: string;
/** The same chain without quiet_mode: proxychains then prints each hop and where the chain broke. */
let verboseConf: string;
let left = false;

/** A TCP connect from inside a namespace (python3: reliable, and the errno tells a fence from a refusal). */
const PROBE = [
  'import socket, sys',
  'try:',
  '    socket.create_connection((sys.argv[1], int(sys.argv[2])), 3).close()',
  '    print("connected")',
  'except OSError as e:',
  '    print("errno", e.errno)',
  '    sys.exit(1)',
].join('\n');

function connectFrom(ns: BoxNamespace, host: string, port: number): Promise<CommandResult> {
  return inNamespace(ns, ['python3', '-c', PROBE, host, String(port)], { timeoutMs: 10_000 });
}

/** A bash script on a node as glidein over ssh; values reach it only as positional parameters. */
function bashOn(node: 'login' | 'worker', script: string, args: readonly string[] = []): Promise<CommandResult> {
  return box.ssh(node, ['bash', '-c', script, 'bash', ...args], { timeoutMs: 30_000 });
}

/** The chain's probe on the worker node: connect through proxychains (or directly) and send one query. */
const QUERY = [
  'import json, socket, sys',
  's = socket.create_connection((sys.argv[1], int(sys.argv[2])), 8)',
  's.sendall((json.dumps({"command": "QUERY_STARTD_ADS", "constraint": "true"}) + "\\n").encode())',
  'print(s.makefile().readline().strip())',
].join('\n');

beforeAll(async () => {
  box = await joinJscBox();
  await setStrict(false); // the box as built: sshd on both nodes, keys from anywhere, no ban
  testDir = path.join(box.paths.workDir, `box-test-${process.pid}`);
  proxychainsConf = path.join(testDir, 'proxychains.conf');
  verboseConf = path.join(testDir, 'proxychains-verbose.conf');
  const conf = proxychainsConfig(SOCKS_PORT, BOX_ENDPOINTS.kit);
  for (const [file, text] of [
    [proxychainsConf, conf],
    [verboseConf, conf.replace('quiet_mode\n', '')],
  ]) {
    const r = await box.ssh('worker', ['bash', '-c', 'mkdir -p "$1" && cat >"$2"', 'bash', testDir, file], {
      input: text,
    });
    expect(r).toMatchObject({ code: 0 });
  }
}, 90_000);

/** This file's tunnel, for when the box stays up for another test run. */
function ownTunnels(): number[] {
  return boxProcesses()
    .filter((p) => p.argv[0] === 'ssh' && p.cmdline.includes(`-D 127.0.0.1:${SOCKS_PORT}`))
    .map((p) => p.pid);
}

afterAll(async () => {
  if (!left) {
    for (const pid of ownTunnels()) process.kill(pid, 'SIGTERM');
    await leaveJscBox();
  }
  fs.rmSync(testDir, { recursive: true, force: true });
}, 60_000);

describe('starting the box', () => {
  test('startJscBox again reuses the running box (same daemons) and is quick', async () => {
    const services = [
      'munge',
      'slurmctld',
      'slurmd',
      'login-sshd',
      'worker-sshd',
      'kit',
      'collector',
      'squid',
    ] as const;
    const before = await Promise.all(services.map((s) => serviceStatus(s)));
    const started = Date.now();
    await startJscBox();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await Promise.all(services.map((s) => serviceStatus(s)))).toEqual(before);
    expect(before.every((s) => s.ready && s.pids.length > 0)).toBe(true);
  });

  test('refuses without root, pointing to the loopback site', async () => {
    const getuid = jest.spyOn(process, 'getuid').mockReturnValue(1000);
    try {
      await expect(startJscBox()).rejects.toThrow(/needs root.*sites\/local\.yaml/s);
    } finally {
      getuid.mockRestore();
    }
  });
});

describe('the firewall: nft fences in the nodes', () => {
  test('the worker node reaches only the login node', async () => {
    expect(await connectFrom('gl-worker', BOX_ENDPOINTS.login.host, 22)).toMatchObject({
      code: 0,
      stdout: 'connected\n',
    });
    // Rejected by the fence (EHOSTUNREACH from admin-prohibited), not refused by a closed port.
    expect(await connectFrom('gl-worker', BOX_ENDPOINTS.collector.host, BOX_ENDPOINTS.collector.port)).toMatchObject({
      code: 1,
      stdout: 'errno 113\n',
    });
    expect(await connectFrom('gl-worker', BOX_ENDPOINTS.kit.host, BOX_ENDPOINTS.kit.port)).toMatchObject({
      code: 1,
      stdout: 'errno 113\n',
    });
    const counters = await inNamespace('gl-worker', ['nft', 'list', 'chain', 'inet', 'jscbox', 'output']);
    expect(counters.stdout).toMatch(/counter packets [1-9]\d* bytes \d+ reject with icmpx admin-prohibited/);
  });

  test('the login node reaches the worker node and outside only ports 80 and 443', async () => {
    expect(await connectFrom('gl-login', BOX_ENDPOINTS.kit.host, BOX_ENDPOINTS.kit.port)).toMatchObject({
      code: 0,
      stdout: 'connected\n',
    });
    expect(await connectFrom('gl-login', BOX_ENDPOINTS.worker.host, 22)).toMatchObject({
      code: 0,
      stdout: 'connected\n',
    });
    expect(await connectFrom('gl-login', BOX_ENDPOINTS.collector.host, BOX_ENDPOINTS.collector.port)).toMatchObject({
      code: 1,
      stdout: 'errno 113\n',
    });
  });

  test('the host keeps its own ruleset and reaches the collector directly', async () => {
    const host = await runCommand(['nft', 'list', 'tables']);
    expect(host.stdout).not.toMatch(/jscbox/);
    expect(await boxCollectorAds()).toEqual(expect.any(Array));
  });
});

describe('the operator: ssh to the login node, and through it to the worker node', () => {
  test('the login node accepts the operator key and known_hosts, with SLURM_CONF in the session', async () => {
    const r = await bashOn('login', 'id -un; hostname; printf "%s\\n" "$SLURM_CONF"');
    expect(r).toMatchObject({ code: 0, stdout: `glidein\njwlogin\n${box.paths.slurmConf}\n` });
    expect(sshdLog('login')).toMatch(/Accepted publickey for glidein from 10\.77\.0\.1 /);
  });

  test('a login node whose host key is not in known_hosts is refused', async () => {
    const argv = box
      .sshArgv('login', ['true'])
      .map((a) => (a.startsWith('UserKnownHostsFile=') ? 'UserKnownHostsFile=/dev/null' : a));
    const r = await runCommand(argv);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Host key verification failed/);
  });

  test('the worker node, by its Slurm name jwc01, through the login node as a jump host', async () => {
    const r = await bashOn('worker', 'id -un; hostname');
    expect(r).toMatchObject({ code: 0, stdout: `glidein\n${WORKER_NODE_NAME}\n` });
    // The worker node saw the connection come from the login node.
    expect(sshdLog('worker')).toMatch(/Accepted publickey for glidein from 10\.77\.0\.2 /);
  });
});

describe('Slurm as glidein on the login node', () => {
  test('sbatch, squeue --me, srun --overlap and scancel; the job runs on jwc01', async () => {
    const submit = await bashOn(
      'login',
      'sbatch --parsable --job-name=x --partition=batch --account=cms --time=10 --nodes=1 ' +
        '--output=/dev/null --wrap "exec sleep 300"',
    );
    expect(submit).toMatchObject({ code: 0 });
    const jobId = submit.stdout.trim();
    expect(jobId).toMatch(/^\d+$/);

    const started = Date.now();
    const line = await waitFor(
      `job ${jobId} RUNNING`,
      async () => {
        const q = await box.ssh('login', ['squeue', '--me', '-h', '-o', '%i|%T|%N|%L']);
        const mine = q.stdout.split('\n').find((l) => l.startsWith(`${jobId}|`));
        return mine?.includes('|RUNNING|') ? mine : undefined;
      },
      30_000,
      200,
    );
    console.log(`job ${jobId} RUNNING after ${Date.now() - started} ms: ${line}`);
    expect(line).toMatch(new RegExp(`^${jobId}\\|RUNNING\\|${WORKER_NODE_NAME}\\|(\\d+:)?\\d+:\\d+$`));
    expect((await slurmJobs()).find((j) => j.id === jobId)).toMatchObject({
      user: 'glidein',
      state: 'RUNNING',
      nodes: WORKER_NODE_NAME,
      partition: 'batch',
      account: 'cms',
      name: 'x',
    });
    expect(boxProcesses().some((p) => p.node === 'worker' && p.cmdline === 'sleep 300')).toBe(true);
    expect(
      boxProcesses().some((p) => p.node === 'worker' && p.cmdline.startsWith(`slurmstepd: [${jobId}.batch]`)),
    ).toBe(true);

    const step = await box.ssh('login', [
      'srun',
      `--jobid=${jobId}`,
      '--overlap',
      '-N1',
      '-n1',
      'bash',
      '-c',
      'hostname; id -un; printf "%s\\n" "$SLURM_JOB_ID"',
    ]);
    expect(step).toMatchObject({ code: 0, stdout: `${WORKER_NODE_NAME}\nglidein\n${jobId}\n` });

    expect(await box.ssh('login', ['scancel', jobId])).toMatchObject({ code: 0 });
    await waitFor(
      `job ${jobId} to leave the queue`,
      async () => !(await slurmJobs()).some((j) => j.id === jobId),
      30_000,
      200,
    );
    await waitFor(
      'the job processes to end',
      () => !boxProcesses().some((p) => p.cmdline === 'sleep 300' || p.cmdline.startsWith(`slurmstepd: [${jobId}`)),
      15_000,
    );
  });

  test('as cgroups do: a daemon out of a step ends with it, what the batch script started with the job', async () => {
    // The batch script starts a daemon of its own (setsid, its own session) and then sleeps.
    const submit = await bashOn(
      'login',
      'sbatch --parsable --job-name=fence --partition=batch --time=10 --nodes=1 --output=/dev/null --wrap ' +
        '"setsid sleep 4441 </dev/null >/dev/null 2>&1 & exec sleep 300"',
    );
    const jobId = submit.stdout.trim();
    await waitFor(
      `job ${jobId} RUNNING`,
      async () => (await slurmJobs()).some((j) => j.id === jobId && j.state === 'RUNNING'),
      30_000,
      200,
    );
    const running = (cmdline: string) => boxProcesses().some((p) => p.cmdline === cmdline && p.state !== 'Z');
    await waitFor('the batch daemon', async () => running('sleep 4441'), 10_000);
    // A step that daemonizes and returns: its daemon is gone once the step has ended.
    const step = await box.ssh('login', [
      'srun',
      `--jobid=${jobId}`,
      '--overlap',
      '-N1',
      '-n1',
      'sh',
      '-c',
      'setsid sleep 4442 </dev/null >/dev/null 2>&1 & echo started',
    ]);
    expect(step).toMatchObject({ code: 0, stdout: 'started\n' });
    await waitFor('the step daemon to end with its step', async () => !running('sleep 4442'), 15_000);
    expect(running('sleep 4441')).toBe(true);
    expect(await box.ssh('login', ['scancel', jobId])).toMatchObject({ code: 0 });
    await waitFor('the batch daemon to end with the job', async () => !running('sleep 4441'), 30_000);
  });
});

describe('the proxy chain from the worker node: SOCKS tunnel to the login node, then KIT', () => {
  test('`ssh -N -D` from the worker node to the login node with the site key and known_hosts', async () => {
    const r = await bashOn(
      'worker',
      'ssh -F /dev/null -i "$1" -o IdentitiesOnly=yes -o UserKnownHostsFile="$2" -o StrictHostKeyChecking=yes ' +
        '-o BatchMode=yes -o ExitOnForwardFailure=yes -f -N -D "127.0.0.1:$3" -p 22 glidein@10.77.0.2 ' +
        '</dev/null >"$4" 2>&1',
      [box.paths.siteKey, box.paths.siteKnownHosts, String(SOCKS_PORT), path.join(testDir, 'tunnel.log')],
    );
    expect(r).toMatchObject({ code: 0 });
    expect(ownTunnels()).toHaveLength(1);
    expect(boxProcesses().find((p) => p.pid === ownTunnels()[0])).toMatchObject({ node: 'worker' });
    expect(await connectFrom('gl-worker', '127.0.0.1', SOCKS_PORT)).toMatchObject({ code: 0 });
    const fingerprint = (await runCommand(['ssh-keygen', '-l', '-f', `${box.paths.siteKey}.pub`])).stdout.split(' ')[1];
    expect(sshdLog('login')).toMatch(
      new RegExp(`Accepted publickey for glidein from 10\\.77\\.0\\.10 .*${fingerprint.replace(/[+/]/g, '\\$&')}`),
    );
  });

  test('proxychains4 via the tunnel and KIT reaches the collector (KIT logs the CONNECT); directly, not', async () => {
    const before = kitLog().length;
    const chained = await bashOn('worker', 'exec proxychains4 -q -f "$1" python3 -c "$2" "$3" "$4"', [
      proxychainsConf,
      QUERY,
      BOX_ENDPOINTS.collector.host,
      String(BOX_ENDPOINTS.collector.port),
    ]);
    expect(chained).toMatchObject({ code: 0 });
    expect(JSON.parse(chained.stdout)).toMatchObject({ ok: true });
    expect(kitLog().slice(before)).toContain(`CONNECT ${COLLECTOR}`);

    const direct = await bashOn('worker', 'exec python3 -c "$1" "$2" "$3"', [
      QUERY,
      BOX_ENDPOINTS.collector.host,
      String(BOX_ENDPOINTS.collector.port),
    ]);
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toMatch(/No route to host/);
  });

  test('an update through the chain registers with the collector, which sees it come from KIT', async () => {
    const name = `slot1@box-test-${process.pid}@${WORKER_NODE_NAME}`;
    const update = [
      'import json, socket, sys',
      's = socket.create_connection((sys.argv[1], int(sys.argv[2])), 8)',
      's.sendall((json.dumps({"command": "UPDATE_STARTD_AD", "idtoken": sys.argv[4], "ad": {"Name": ' +
        'sys.argv[3], "MyType": "Machine", "ClassAdLifetime": 60}}) + "\\n").encode())',
      'print(s.makefile().readline().strip())',
    ].join('\n');
    // The pool admits it only with a token signed by its key, as it admits a glidein.
    const token = mintIdToken(ensureSigningKey(BOX_PATHS.poolKeysDir), { exp: Math.floor(Date.now() / 1000) + 600 });
    const r = await bashOn('worker', 'exec proxychains4 -q -f "$1" python3 -c "$2" "$3" "$4" "$5" "$6"', [
      proxychainsConf,
      update,
      BOX_ENDPOINTS.collector.host,
      String(BOX_ENDPOINTS.collector.port),
      name,
      token,
    ]);
    expect(r).toMatchObject({ code: 0 });
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true });
    expect(await boxCollectorAds(`Name == "${name}"`)).toEqual([expect.objectContaining({ Name: name })]);
    expect(collectorLog()).toContain(name);
  });

  test('without the KIT proxy the chained connection fails at the KIT hop, and works again once back', async () => {
    await setKitProxy(false);
    try {
      const r = await bashOn('worker', 'exec proxychains4 -f "$1" python3 -c "$2" "$3" "$4"', [
        verboseConf,
        QUERY,
        BOX_ENDPOINTS.collector.host,
        String(BOX_ENDPOINTS.collector.port),
      ]);
      expect(r.code).not.toBe(0);
      // proxychains names the hop that failed: the SOCKS hop is fine, the http hop (KIT) is not.
      expect(r.stderr).toMatch(
        /Strict chain {2}\.\.\. {2}127\.0\.0\.1:1181 {2}\.\.\. {2}10\.77\.0\.3:80 <--socket error or timeout!/,
      );
    } finally {
      await setKitProxy(true);
    }
    const again = await bashOn('worker', 'exec proxychains4 -q -f "$1" python3 -c "$2" "$3" "$4"', [
      proxychainsConf,
      QUERY,
      BOX_ENDPOINTS.collector.host,
      String(BOX_ENDPOINTS.collector.port),
    ]);
    expect(again).toMatchObject({ code: 0 });
  });
});

describe('stopJscBox', () => {
  test('leaves nothing: no namespace, bridge, veth, daemon, glidein process, mount or /etc/netns entry', async () => {
    const uid = lookupUser('glidein')?.uid;
    const others = boxLeaseHolders();
    if (others.length > 0) {
      for (const pid of ownTunnels()) process.kill(pid, 'SIGTERM');
      await leaveJscBox();
      left = true;
      console.log(`JSC in a box left running for process(es) ${others.join(', ')}: teardown not checked`);
      return;
    }
    // Something of everything to clean up: a running job, a FUSE mount on the worker node, the tunnel.
    const job = await bashOn(
      'login',
      'sbatch --parsable --job-name=teardown --partition=batch --time=10 --output=/dev/null --wrap "exec sleep 301"',
    );
    expect(job).toMatchObject({ code: 0 });
    // A port lease a glidein killed with the run would leave (its holder never tears down).
    const ports = path.join(box.paths.workDir, '.ports', 'jwc01');
    fs.mkdirSync(ports, { recursive: true });
    fs.writeFileSync(path.join(ports, '1090'), 'glidein-killed-with-its-run\n');
    await waitFor('the teardown job to run', () => boxProcesses().some((p) => p.cmdline === 'sleep 301'), 30_000, 200);
    // cvmfs asks the squid through the chain (the worker node reaches nothing else), as a glidein's mount does.
    const cvmfsConf = path.join(path.dirname(box.paths.mountrepo), 'dist', 'etc', 'cvmfs', 'default.local');
    const proxy = `CVMFS_HTTP_PROXY='http://${BOX_ENDPOINTS.squid.host}:${BOX_ENDPOINTS.squid.port}'`;
    expect(
      await bashOn('worker', 'mkdir -p "${1%/*}" && printf "%s\\n" "$2" > "$1"', [cvmfsConf, proxy]),
    ).toMatchObject({ code: 0 });
    expect(
      await bashOn('worker', 'exec proxychains4 -q -f "$1" "$2" cms.cern.ch', [proxychainsConf, box.paths.mountrepo]),
    ).toMatchObject({ code: 0 });
    // The mount lives in the worker node's mount namespace, not the host's.
    expect(boxMounts()).toEqual([
      expect.objectContaining({
        where: 'worker',
        fstype: 'fuse',
        target: path.join(box.paths.cvmfsDist, 'cms.cern.ch'),
      }),
    ]);
    expect(boxProcesses().filter((p) => p.argv[0] === 'bindfs' || p.argv[0] === 'ssh').length).toBeGreaterThanOrEqual(
      2,
    );

    expect(await leaveJscBox()).toEqual([]);
    left = true;
    const netns = await runCommand(['ip', 'netns', 'list']);
    expect(netns.stdout.split('\n').filter((l) => /^gl-/.test(l))).toEqual([]);
    const links = await runCommand(['ip', '-o', 'link', 'show']);
    expect(links.stdout).not.toMatch(new RegExp(`\\b(${BOX_BRIDGE}|glv-\\w+)\\b`));
    expect(allBoxProcesses()).toEqual([]);
    expect(boxProcesses()).toEqual([]);
    expect(boxMounts()).toEqual([]);
    // No lease outlives the box's processes: not the mount's, not the port's.
    expect(fs.existsSync(ports)).toBe(false);
    for (const ns of BOX_NAMESPACES) expect(fs.existsSync(`/etc/netns/${ns}`)).toBe(false);
    // No daemon of the box anywhere: matched by their box-dir command lines and by name.
    const procs = fs
      .readdirSync('/proc')
      .filter((e) => /^\d+$/.test(e))
      .map((pid) => {
        try {
          const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
          if (/^\d+ \(.*\) Z/.test(stat)) return undefined;
          const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
          return {
            cmd: fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '),
            uid: Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]),
            net: fs.readlinkSync(`/proc/${pid}/ns/net`),
          };
        } catch {
          return undefined;
        }
      })
      .filter((p): p is { cmd: string; uid: number; net: string } => p !== undefined);
    expect(procs.filter((p) => p.cmd.includes(BOX_DIR + '/'))).toEqual([]);
    expect(procs.filter((p) => /^(slurmctld|slurmd|slurmstepd|munged|: slurmscriptd)\b/.test(p.cmd))).toEqual([]);
    expect(procs.filter((p) => p.cmd.startsWith('glidein-jsc-box node'))).toEqual([]);
    // Processes of glidein may remain only in the host's network namespace (the loopback site's).
    const hostNet = fs.readlinkSync('/proc/self/ns/net');
    expect(procs.filter((p) => p.uid === uid && p.net !== hostNet)).toEqual([]);
    expect(
      fs
        .readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .filter((l) => l.split(' ')[1]?.startsWith(BOX_DIR + '/')),
    ).toEqual([]);
    // No address of the box's subnet is left on the host.
    expect((await runCommand(['ip', '-o', 'addr', 'show'])).stdout).not.toContain(
      `${BOX_NODES.login.address.split('.').slice(0, 3).join('.')}.`,
    );
  });
});
