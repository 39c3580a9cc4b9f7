/**
 * Each site script run for real, with the local executor in a temporary directory (no root, no sshd), and its
 * answer read by its own parser. What needs a real mount is played by /proc/self/mounts as it is: a repository's
 * mount point is "mounted" when it is a path mounted on this machine (/proc), and not when it is a fresh
 * directory; the fake mountrepo and umountrepo only record that they were called.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalExecutor } from '../../src/remote/local';
import { freePort } from '../support/ports';
import type { ProcessRef } from '../../src/common/types';
import {
  claimArgv,
  inspect,
  LEASE_LOCK_TIMEOUT_EXIT,
  listLeasesArgv,
  mountLeaseArgv,
  mountReleaseArgv,
  parseClaim,
  parseLeases,
  parseMountLease,
  parseMountRelease,
  parseRetire,
  parseSignal,
  retireArgv,
  signalAndWait,
  signalRecorded,
  setConfigLineArgv,
  httpProbeArgv,
  parseHttpStatus,
  spawnArgv,
  spawnDetached,
  spawnedProcess,
  tcpProbeArgv,
  writeFileArgv,
  writeWithSecretArgv,
  type LeaseArgs,
} from '../../src/site/scripts';

const local = new LocalExecutor();
const opts = { timeoutMs: 30_000 };
let dir: string;
/** Process groups started here (each spawn is its own session), killed after each test. */
const started: number[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'site-scripts-'));
});
afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** The start time /proc/<pid>/stat gives, read here independently of the scripts. */
function startTimeOf(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[19];
}

async function spawnSleep(name = 'p'): Promise<ProcessRef & { pidFile: string }> {
  const pidFile = path.join(dir, `${name}.pid`);
  const result = await spawnDetached(
    local,
    ['sleep', '300'],
    { log: path.join(dir, `${name}.log`), pidFile, settleMs: 200 },
    opts,
  );
  const proc = spawnedProcess(result);
  if (!proc) throw new Error(`sleep did not start: ${JSON.stringify(result)}`);
  started.push(proc.pid);
  return { ...proc, pidFile };
}

describe('SPAWN_DETACHED', () => {
  it('starts a process that survives its settle time, recorded with its real start time', async () => {
    const p = await spawnSleep();
    expect(p.startTime).toBe(startTimeOf(p.pid));
    expect(fs.readFileSync(p.pidFile, 'utf8')).toBe(`${p.pid} ${p.startTime}\n`);
    expect(fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8')).toBe('sleep\u0000300\u0000');
  });

  it('reports a command that ends within the settle time as exited, its output in the log', async () => {
    const log = path.join(dir, 'g.log');
    const result = await spawnDetached(
      local,
      ['sh', '-c', 'echo cannot start >&2; exit 3'],
      { log, pidFile: path.join(dir, 'g.pid'), settleMs: 500 },
      opts,
    );
    expect(result).toEqual({ exitedAtOnce: expect.any(Number) });
    expect(fs.readFileSync(log, 'utf8')).toContain('cannot start');
  });

  it('waits for a log marker, and says `waiting` when it does not come while the process lives', async () => {
    const log = path.join(dir, 't.log');
    fs.writeFileSync(log, 'ready (from an earlier run)\n');
    const ready = await spawnDetached(
      local,
      ['sh', '-c', 'sleep 0.3; echo ready; exec sleep 300'],
      { log, pidFile: path.join(dir, 't.pid'), awaitLog: { marker: 'ready', seconds: 5 } },
      opts,
    );
    expect(ready).toEqual({ started: expect.objectContaining({ pid: expect.any(Number) }) });
    started.push(spawnedProcess(ready)!.pid);
    // The log was started afresh: the old line did not count, the new one did.
    expect(fs.readFileSync(log, 'utf8')).toBe('ready\n');

    const waiting = await spawnDetached(
      local,
      ['sleep', '300'],
      { log: path.join(dir, 'w.log'), pidFile: path.join(dir, 'w.pid'), awaitLog: { marker: 'never', seconds: 1 } },
      opts,
    );
    expect(waiting).toEqual({ stillWaiting: expect.objectContaining({ pid: expect.any(Number) }) });
    started.push(spawnedProcess(waiting)!.pid);
  });
  it('waits on the site for a port to listen: started once it does, waiting while not, exited if it ends', async () => {
    const port = await freePort();
    const listen = `setTimeout(() => require('net').createServer().listen(${port}, '127.0.0.1'), 300)`;
    const spawn = (name: string, argv: string[], seconds = 5) =>
      spawnDetached(
        local,
        argv,
        { log: path.join(dir, `${name}.log`), pidFile: path.join(dir, `${name}.pid`), awaitListen: { port, seconds } },
        opts,
      );
    const t0 = Date.now();
    const ready = await spawn('l', [process.execPath, '-e', listen]);
    expect(ready).toEqual({ started: expect.objectContaining({ pid: expect.any(Number) }) });
    started.push(spawnedProcess(ready)!.pid);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(await isListening(port)).toBe(true);

    const other = await freePort();
    const waiting = await spawnDetached(
      local,
      ['sleep', '300'],
      { log: path.join(dir, 'w.log'), pidFile: path.join(dir, 'w.pid'), awaitListen: { port: other, seconds: 1 } },
      opts,
    );
    expect(waiting).toEqual({ stillWaiting: expect.objectContaining({ pid: expect.any(Number) }) });
    started.push(spawnedProcess(waiting)!.pid);

    expect(await spawn('x', ['sh', '-c', 'echo no >&2; exit 3'])).toEqual({ exitedAtOnce: expect.any(Number) });
    expect(() => spawnArgv(['true'], { log: '/l', pidFile: '/p', awaitListen: { port: 70_000, seconds: 1 } })).toThrow(
      /not a TCP port/,
    );
  });
});

describe('INSPECT_PROCESSES', () => {
  it('tells a live recorded process from a reused pid, a missing or broken pid file and a zombie', async () => {
    const p = await spawnSleep();
    const reused = path.join(dir, 'reused.pid');
    fs.writeFileSync(reused, `${p.pid} 1\n`); // the same pid, another start time: another process
    const broken = path.join(dir, 'broken.pid');
    fs.writeFileSync(broken, 'not-a-pid\n');
    // A zombie: `sleep 0`'s parent execs into a sleep that never reaps it.
    const zombieParent = spawn('sh', ['-c', 'sleep 0 & echo $! > "$0"; exec sleep 300', path.join(dir, 'z')], {
      detached: true,
      stdio: 'ignore',
    });
    started.push(zombieParent.pid!);
    const zombie = path.join(dir, 'zombie.pid');
    let zpid = 0;
    for (let i = 0; i < 100; i++) {
      const text = fs.existsSync(path.join(dir, 'z')) ? fs.readFileSync(path.join(dir, 'z'), 'utf8').trim() : '';
      zpid = Number(text);
      if (zpid && fs.existsSync(`/proc/${zpid}/stat`) && /\) Z /.test(fs.readFileSync(`/proc/${zpid}/stat`, 'utf8')))
        break;
      await new Promise((r) => setTimeout(r, 20));
    }
    fs.writeFileSync(zombie, `${zpid} ${startTimeOf(zpid)}\n`);
    const missing = path.join(dir, 'missing.pid');

    const snap = await inspect(local, [p.pidFile, reused, broken, zombie, missing], opts);
    expect(snap.processes.get(p.pidFile)).toEqual({
      pidFile: p.pidFile,
      recorded: { pid: p.pid, startTime: p.startTime },
      alive: true,
      cmdline: 'sleep 300',
    });
    expect(snap.processes.get(reused)).toMatchObject({ recorded: { pid: p.pid, startTime: '1' }, alive: false });
    expect(snap.processes.get(broken)).toMatchObject({ recorded: undefined, alive: false });
    expect(snap.processes.get(zombie)).toMatchObject({ recorded: { pid: zpid }, alive: false });
    expect(snap.processes.get(missing)).toMatchObject({ recorded: undefined, alive: false });
  });

  it('lists the TCP ports that listen', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as net.AddressInfo).port;
      expect((await inspect(local, [], opts)).listening.has(port)).toBe(true);
    } finally {
      server.close();
    }
  });
});

describe('SIGNAL_RECORDED', () => {
  it('waits for a recorded process, signals it and sees it end, all on the site', async () => {
    const p = await spawnSleep();
    expect(await signalAndWait(local, undefined, p.pidFile, 200, opts)).toEqual({ state: 'running', pid: p.pid });
    expect(await signalAndWait(local, 'TERM', p.pidFile, 5_000, opts)).toEqual({ state: 'ended', pid: p.pid });
    expect(await signalAndWait(local, 'KILL', p.pidFile, 1_000, opts)).toEqual({ state: 'gone' });
    expect(await signalAndWait(local, 'TERM', path.join(dir, 'none.pid'), 1_000, opts)).toEqual({
      state: 'no-pidfile',
    });
  });

  it('never signals a pid that another process now has', async () => {
    const p = await spawnSleep();
    const stale = path.join(dir, 'stale.pid');
    fs.writeFileSync(stale, `${p.pid} 1\n`);
    expect(await signalRecorded(local, 'KILL', stale, opts)).toBe(false);
    expect(startTimeOf(p.pid)).toBe(p.startTime); // still running
    expect(await signalRecorded(local, 'KILL', p.pidFile, opts)).toBe(true);
  });

  it('answers are refused unless they are one of its own', () => {
    expect(parseSignal('signalled 42\n')).toEqual({ state: 'signalled', pid: 42 });
    expect(parseSignal('no-pidfile')).toEqual({ state: 'no-pidfile' });
    for (const bad of ['', 'ended', 'ended x', 'gone 4', 'running 1 2', 'killed 5'])
      expect(() => parseSignal(bad)).toThrow('signal script answered');
  });
});

describe('WRITE_FILE', () => {
  it('writes stdin to a file only its owner can read, creating the directory', async () => {
    const target = path.join(dir, 'g1', 'proxychains.conf');
    const result = await local.run(writeFileArgv(path.join(dir, 'g1'), target), { ...opts, stdin: 'strict_chain\n' });
    expect(result.code).toBe(0);
    expect(fs.readFileSync(target, 'utf8')).toBe('strict_chain\n');
    expect(fs.statSync(target).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.join(dir, 'g1'))).toEqual(['proxychains.conf']);
  });
});

describe('WRITE_WITH_SECRET', () => {
  const secret = 'c0ffee'.repeat(8);

  /** Each external command the script runs, with its argv, as `ps` or /proc/<pid>/cmdline would show it. */
  function recordingPath(): { env: string[]; argvs: () => string[] } {
    const bin = path.join(dir, 'bin');
    const log = path.join(dir, 'argv.log');
    fs.mkdirSync(bin);
    for (const command of ['awk', 'sed', 'cat', 'mv', 'mkdir', 'rm', 'tr', 'head', 'grep', 'cp', 'tee', 'dd']) {
      const real = ['/usr/bin', '/bin'].map((d) => path.join(d, command)).find((f) => fs.existsSync(f));
      if (!real) continue;
      fs.writeFileSync(
        path.join(bin, command),
        `#!/bin/sh\nprintf '%s\\0' "$0" "$@" >> '${log}'; printf '\\n' >> '${log}'\nexec ${real} "$@"\n`,
        { mode: 0o755 },
      );
    }
    return {
      env: ['env', `PATH=${bin}:${process.env.PATH}`],
      argvs: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) : []),
    };
  }

  it('fills the secret in on the site, with the secret in no argv (built or run)', async () => {
    const secretFile = path.join(dir, 'relay.secret');
    fs.writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
    const target = path.join(dir, 'g1', 'proxychains.conf');
    const argv = writeWithSecretArgv(path.join(dir, 'g1'), target, secretFile, '@SECRET@');
    expect(argv.join('\0')).not.toContain(secret);
    const recording = recordingPath();
    const result = await local.run([...recording.env, ...argv], {
      ...opts,
      stdin: 'strict_chain\n[ProxyList]\nsocks5 127.0.0.1 1081 glidein @SECRET@\n',
    });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(fs.readFileSync(target, 'utf8')).toBe(
      `strict_chain\n[ProxyList]\nsocks5 127.0.0.1 1081 glidein ${secret}\n`,
    );
    expect(fs.statSync(target).mode & 0o777).toBe(0o600);
    expect(recording.argvs().length).toBeGreaterThan(0); // the recording works: the script's commands were seen
    for (const seen of recording.argvs()) expect(seen).not.toContain(secret);
  });

  it.each([
    ['not hex', 'c0ffee; rm -rf ~'],
    ['two lines', `${secret}\n${secret}`],
    ['empty', ''],
  ])('refuses a secret file that is %s (exit 65), and writes nothing', async (_what, content) => {
    const secretFile = path.join(dir, 'relay.secret');
    fs.writeFileSync(secretFile, content);
    const target = path.join(dir, 'g1', 'proxychains.conf');
    const result = await local.run(writeWithSecretArgv(path.join(dir, 'g1'), target, secretFile, '@SECRET@'), {
      ...opts,
      stdin: 'socks5 127.0.0.1 1081 glidein @SECRET@\n',
    });
    expect(result.code).toBe(65);
    expect(result.stderr).toContain(`${secretFile} does not hold a hex secret`);
    expect(fs.readdirSync(path.join(dir, 'g1'))).toEqual([]);
  });
});

describe('TCP_PROBE', () => {
  it('connects and closes, and fails where nothing listens', async () => {
    const server = net.createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      expect((await local.run(tcpProbeArgv('127.0.0.1', port), opts)).code).toBe(0);
    } finally {
      await new Promise((r) => server.close(r));
    }
    expect((await local.run(tcpProbeArgv('127.0.0.1', port), opts)).code).not.toBe(0);
  });
});

/**
 * A one-request HTTP server: it reads the request up to the blank line that ends its headers, however many pieces it
 * arrives in (bash writes it as it goes, and under load each piece can be its own TCP segment), then answers.
 */
async function oneRequestServer(
  answer: string,
): Promise<{ port: number; request: Promise<string>; close(): Promise<void> }> {
  let received: (request: string) => void = () => undefined;
  const request = new Promise<string>((resolve) => (received = resolve));
  const server = net.createServer((s) => {
    let text = '';
    s.on('data', (d) => {
      text += d.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      received(text.slice(0, end + 4));
      s.end(answer);
    }).on('error', () => undefined); // the probe hangs up once it has the status line
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    request,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('HTTP_PROBE', () => {
  it('asks host:port for an absolute URL as a proxy is asked, and prints the status line', async () => {
    const server = await oneRequestServer('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    const url = 'http://cmsfrontier.cern.ch:8000/FrontierProd/Frontier?type=x&p1=$(touch /tmp/pwned)';
    try {
      const result = await local.run(httpProbeArgv('127.0.0.1', server.port, url), opts);
      expect(result.code).toBe(0);
      expect(parseHttpStatus(result.stdout)).toEqual({ code: 200, line: 'HTTP/1.1 200 OK' });
      expect((await server.request).split('\r\n').slice(0, 2)).toEqual([
        `GET ${url} HTTP/1.0`,
        'Host: cmsfrontier.cern.ch:8000',
      ]);
    } finally {
      await server.close();
    }
    expect(fs.existsSync('/tmp/pwned')).toBe(false);
    expect((await local.run(httpProbeArgv('127.0.0.1', server.port, url), opts)).code).not.toBe(0);
    expect(parseHttpStatus('status HTTP/1.1 403 Forbidden\n')).toEqual({ code: 403, line: 'HTTP/1.1 403 Forbidden' });
    expect(parseHttpStatus('garbage')).toBeUndefined();
  });

  it("the test's server reads a request that arrives in pieces to its end (as bash's does under load)", async () => {
    const server = await oneRequestServer('HTTP/1.1 200 OK\r\n\r\n');
    const pieces = ['GET http://a/ HTTP/1.0\r\n', 'Host: a\r\n', 'User-Agent: x\r\n', '\r\n'];
    try {
      const client = net.connect(server.port, '127.0.0.1');
      await new Promise((r) => client.once('connect', r));
      client.setNoDelay(true);
      for (const piece of pieces) {
        client.write(piece);
        await new Promise((r) => setTimeout(r, 50)); // each its own segment
      }
      expect(await server.request).toBe(pieces.join(''));
      client.destroy();
    } finally {
      await server.close();
    }
  });
});

describe('SET_CONFIG_LINE', () => {
  it("sets one key's line, keeps the others, and leaves a file that already says it alone", async () => {
    const file = path.join(dir, 'dist', 'etc', 'cvmfs', 'default.local');
    const set = async (line: string) =>
      (await local.run(setConfigLineArgv(file, 'CVMFS_HTTP_PROXY', line), opts)).stdout.trim();
    expect(await set("CVMFS_HTTP_PROXY='http://a:3128'")).toBe('written');
    fs.appendFileSync(file, 'CVMFS_QUOTA_LIMIT=4000\nCVMFS_HTTP_PROXY=DIRECT\n');
    expect(await set("CVMFS_HTTP_PROXY='http://a:3128'")).toBe('written');
    expect(fs.readFileSync(file, 'utf8')).toBe("CVMFS_QUOTA_LIMIT=4000\nCVMFS_HTTP_PROXY='http://a:3128'\n");
    const before = fs.statSync(file).mtimeMs;
    expect(await set("CVMFS_HTTP_PROXY='http://a:3128'")).toBe('unchanged');
    expect(fs.statSync(file).mtimeMs).toBe(before);
    expect(await set("CVMFS_HTTP_PROXY='http://b:3128|http://c:3128;DIRECT'")).toBe('written');
    expect(fs.readFileSync(file, 'utf8')).toBe(
      "CVMFS_QUOTA_LIMIT=4000\nCVMFS_HTTP_PROXY='http://b:3128|http://c:3128;DIRECT'\n",
    );
  });
});

describe('MOUNT_LEASE, MOUNT_RELEASE, LIST_LEASES', () => {
  const node = os.hostname();
  let calls: string;
  let root: string;
  /** A repository whose mount point is not mounted here, and one whose is (/proc, as /proc/self/mounts lists it). */
  let unmounted: string;
  const mounted = '/proc';

  beforeEach(() => {
    root = path.join(dir, '.leases');
    calls = path.join(dir, 'calls');
    unmounted = path.join(dir, 'dist', 'cvmfs');
    for (const tool of ['mountrepo', 'umountrepo'])
      fs.writeFileSync(path.join(dir, tool), `#!/bin/sh\necho "${tool} $*" >> "${calls}"\n`, { mode: 0o755 });
  });
  const args = (repo: string, glideinId: string, tool: string, target: string): LeaseArgs => ({
    root,
    repo,
    glideinId,
    tool: path.join(dir, tool),
    target,
  });
  const lease = (repo: string, id: string, target: string) =>
    local.run(mountLeaseArgv(args(repo, id, 'mountrepo', target)), opts);
  const release = (repo: string, id: string, target: string) =>
    local.run(mountReleaseArgv(args(repo, id, 'umountrepo', target)), opts);
  const called = () => (fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8') : '');
  const leases = (repo: string) => fs.readdirSync(path.join(root, node, repo)).sort();

  it('mounts what is not mounted, after taking the lease, and marks the mount as ours', async () => {
    const result = await lease('cms.cern.ch', 'g1', `${unmounted}/cms.cern.ch`);
    expect(result.code).toBe(0);
    expect(parseMountLease(result.stdout)).toEqual({ state: 'mounted' });
    expect(called()).toBe('mountrepo cms.cern.ch\n');
    expect(leases('cms.cern.ch')).toEqual(['.ours', 'g1']);
  });

  it('shares a mount a lease holder made, and never mounts over one the site made', async () => {
    await lease('cms.cern.ch', 'g1', `${unmounted}/cms.cern.ch`);
    // The mount g1 made is there now (played by a path that is mounted): g2 shares it.
    const shared = await lease('cms.cern.ch', 'g2', mounted);
    expect(parseMountLease(shared.stdout)).toEqual({ state: 'shared', holders: 2 }); // g1, g2 (not the .ours mark)
    const external = await lease('oasis', 'g1', mounted);
    expect(parseMountLease(external.stdout)).toEqual({ state: 'external' });
    expect(called()).toBe('mountrepo cms.cern.ch\n');
    expect(leases('oasis')).toEqual(['g1']);
  });

  it('drops the lease and the mark when mountrepo fails, and exits with its status and output', async () => {
    fs.writeFileSync(path.join(dir, 'mountrepo'), '#!/bin/sh\necho "repository not found" >&2\nexit 32\n', {
      mode: 0o755,
    });
    const result = await lease('nope.cern.ch', 'g1', `${unmounted}/nope.cern.ch`);
    expect(result.code).toBe(32);
    expect(result.stderr).toContain('repository not found');
    expect(leases('nope.cern.ch')).toEqual([]);
    expect(LEASE_LOCK_TIMEOUT_EXIT).toBe(75);
  });

  it('lists the repositories a glidein holds a lease on, on this node', async () => {
    await lease('cms.cern.ch', 'g1', `${unmounted}/cms.cern.ch`);
    await lease('oasis', 'g1', mounted);
    await lease('oasis', 'g2', mounted);
    const result = await local.run(listLeasesArgv(root, 'g1'), opts);
    expect(parseLeases(result.stdout).sort()).toEqual(['cms.cern.ch', 'oasis']);
    expect(parseLeases((await local.run(listLeasesArgv(root, 'g3'), opts)).stdout)).toEqual([]);
  });

  it('unmounts only as the last holder of a mount a holder made', async () => {
    await lease('cms.cern.ch', 'g1', `${unmounted}/cms.cern.ch`);
    await lease('cms.cern.ch', 'g2', mounted);
    expect(parseMountRelease((await release('cms.cern.ch', 'g2', mounted)).stdout)).toEqual({
      state: 'still-used',
      holders: 1, // g1
    });
    expect(parseMountRelease((await release('cms.cern.ch', 'g1', mounted)).stdout)).toEqual({
      state: 'unmounted',
    });
    expect(called()).toBe('mountrepo cms.cern.ch\numountrepo cms.cern.ch\n');
    expect(leases('cms.cern.ch')).toEqual([]);
    expect(parseMountRelease((await release('cms.cern.ch', 'g1', mounted)).stdout)).toEqual({ state: 'not-held' });
  });

  it("keys leases by Slurm's node name in a job; releases a node's leases from elsewhere, not unmounting", async () => {
    const inJob = { ...opts, env: { SLURMD_NODENAME: 'jwc09' } };
    await local.run(mountLeaseArgv(args('cms.cern.ch', 'g1', 'mountrepo', `${unmounted}/cms.cern.ch`)), inJob);
    expect(fs.readdirSync(path.join(root, 'jwc09', 'cms.cern.ch')).sort()).toEqual(['.ours', 'g1']);
    // Its job has ended: the login node (no SLURMD_NODENAME) lists and drops jwc09's lease, the mount is not its.
    expect(parseLeases((await local.run(listLeasesArgv(root, 'g1', 'jwc09'), opts)).stdout)).toEqual(['cms.cern.ch']);
    const released = await local.run(
      mountReleaseArgv({ ...args('cms.cern.ch', 'g1', 'umountrepo', mounted), node: 'jwc09' }),
      opts,
    );
    expect(parseMountRelease(released.stdout)).toEqual({ state: 'not-mounted' });
    expect(fs.readdirSync(path.join(root, 'jwc09', 'cms.cern.ch'))).toEqual([]);
    expect(called()).toBe('mountrepo cms.cern.ch\n');
  });

  it('never unmounts a mount the site made, nor one that is gone', async () => {
    await lease('oasis', 'g1', mounted);
    expect(parseMountRelease((await release('oasis', 'g1', mounted)).stdout)).toEqual({ state: 'not-mounted' });
    await lease('cms.cern.ch', 'g1', `${unmounted}/cms.cern.ch`);
    expect(parseMountRelease((await release('cms.cern.ch', 'g1', `${unmounted}/cms.cern.ch`)).stdout)).toEqual({
      state: 'not-mounted',
    });
    expect(called()).toBe('mountrepo cms.cern.ch\n');
  });

  it('keeps the lease when umountrepo fails, so that a retry tries again', async () => {
    await lease('cms.cern.ch', 'g1', `${unmounted}/cms.cern.ch`);
    fs.writeFileSync(path.join(dir, 'umountrepo'), '#!/bin/sh\necho "device busy" >&2\nexit 1\n', { mode: 0o755 });
    const result = await release('cms.cern.ch', 'g1', mounted);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('device busy');
    expect(leases('cms.cern.ch')).toEqual(['.ours', 'g1']);
  });

  it('refuses answers that are not its own', () => {
    for (const bad of ['', 'shared', 'shared x', 'mounted 2', 'ok'])
      expect(() => parseMountLease(bad)).toThrow('answered');
    for (const bad of ['', 'still-used', 'unmounted now', 'gone'])
      expect(() => parseMountRelease(bad)).toThrow('answered');
  });
});

describe('CLAIM_GLIDEIN', () => {
  const mine = JSON.stringify({ namespace: 'default', workflowId: 'w1' });
  const theirs = JSON.stringify({ namespace: 'other', workflowId: 'w1' });
  const claim = async (d: string, line: string, mode: 'claim' | 'verify') =>
    parseClaim((await local.run(claimArgv(d, line, mode), opts)).stdout);

  it('claims a new directory, verifies its own claim and refuses another', async () => {
    const g = path.join(dir, 'g1');
    expect(await claim(g, mine, 'verify')).toEqual({ state: 'absent' });
    expect(fs.existsSync(g)).toBe(false);
    expect(await claim(g, mine, 'claim')).toEqual({ state: 'ours' });
    expect(fs.readFileSync(path.join(g, '.claim'), 'utf8')).toBe(`${mine}\n`);
    expect(await claim(g, mine, 'verify')).toEqual({ state: 'ours' });
    expect(await claim(g, theirs, 'claim')).toEqual({ state: 'theirs', claim: mine });
    expect(fs.readdirSync(g)).toEqual(['.claim']);
  });

  it('claims a directory made before claims existed for the first workflow that looks', async () => {
    const g = path.join(dir, 'old');
    fs.mkdirSync(g);
    expect(await claim(g, mine, 'verify')).toEqual({ state: 'ours' });
    expect(await claim(g, theirs, 'verify')).toEqual({ state: 'theirs', claim: mine });
  });
});

describe('RETIRE_GLIDEIN', () => {
  const mine = '{"workflowId":"w1"}';
  it('moves its own directory aside, leaves another workflow’s alone, and prunes old ones', async () => {
    const done = path.join(dir, '.done');
    const old = path.join(done, 'g0.1000');
    fs.mkdirSync(old, { recursive: true });
    const tenMinutesAgo = new Date(Date.now() - 10 * 60_000);
    fs.utimesSync(old, tenMinutesAgo, tenMinutesAgo);

    const theirs = path.join(dir, 'g2');
    fs.mkdirSync(theirs);
    fs.writeFileSync(path.join(theirs, '.claim'), '{"workflowId":"other"}\n');
    expect(parseRetire((await local.run(retireArgv(theirs, mine, done, 60), opts)).stdout)).toEqual({
      state: 'theirs',
    });
    expect(fs.existsSync(theirs)).toBe(true);

    const g = path.join(dir, 'g1');
    fs.mkdirSync(g);
    fs.writeFileSync(path.join(g, '.claim'), `${mine}\n`);
    fs.writeFileSync(path.join(g, 'glidein.log'), 'bye\n');
    const moved = parseRetire((await local.run(retireArgv(g, mine, done, 5), opts)).stdout);
    expect(moved).toEqual({ state: 'moved', to: expect.stringMatching(new RegExp(`^${done}/g1\\.\\d+$`)) });
    expect(fs.existsSync(g)).toBe(false);
    expect(fs.readFileSync(path.join((moved as { to: string }).to, 'glidein.log'), 'utf8')).toBe('bye\n');
    expect(fs.existsSync(old)).toBe(false); // older than 5 minutes
    expect(parseRetire((await local.run(retireArgv(g, mine, done, 5), opts)).stdout)).toEqual({ state: 'absent' });
  });

  it('refuses answers that are not its own', () => {
    expect(() => parseRetire('moved')).toThrow('answered');
    expect(() => parseClaim('maybe')).toThrow('answered');
  });
});
