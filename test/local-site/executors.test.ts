/**
 * The executors against real processes: LocalExecutor on this machine, SshPool/SshConnection against the
 * local test site's OpenSSH login node (127.0.0.1:2201) and, through it as a jump host, the worker node
 * (127.0.0.2:2202). Outcomes are checked on the site: files that must (not) exist, processes in /proc, TCP
 * sockets and their owners, and the sshd logs (LogLevel VERBOSE: a "Connection from" and an "Accepted
 * publickey" line per TCP connection).
 *
 * Other test runs may use the same sshds at the same time, so log lines are attributed to this test by the
 * client port of a socket this process holds, never just counted.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExecutorError, type CommandResult, type Executor } from '../../src/remote/executor';
import { LocalExecutor } from '../../src/remote/local';
import { SshPool, type SshTarget } from '../../src/remote/ssh';
import { SITE_PATHS, siteProcesses, sshdLog, waitFor, type SiteProcess } from '../../sandbox/local-site';
import { rejection, timed } from '../support/promises';

const LOGIN: SshTarget = {
  host: '127.0.0.1',
  port: 2201,
  user: 'glidein',
  identityFile: SITE_PATHS.operatorKey,
  knownHostsFile: SITE_PATHS.operatorKnownHosts,
};
const WORKER: SshTarget = { ...LOGIN, host: '127.0.0.2', port: 2202, jump: LOGIN };

const runId = `exec-${process.pid}-${Date.now()}`;
/** Owned by glidein on the site: where remote commands could write, and where they must not have. */
const siteScratch = path.join(SITE_PATHS.workDir, runId);
const localScratch = fs.mkdtempSync(path.join(os.tmpdir(), 'executors-test-'));
let markers = 0;
const marker = (dir: string) => path.join(dir, `marker-${++markers}`);

const pools: SshPool[] = [];
/** A pool that afterEach closes. */
function pool(options?: ConstructorParameters<typeof SshPool>[0]): SshPool {
  const p = new SshPool(options);
  pools.push(p);
  return p;
}

afterEach(() => {
  for (const p of pools.splice(0)) p.close();
});

beforeAll(async () => {
  fs.mkdirSync(siteScratch, { recursive: true });
  const { uid, gid } = fs.statSync(SITE_PATHS.workDir);
  fs.chownSync(siteScratch, uid, gid);
});

afterAll(() => {
  fs.rmSync(siteScratch, { recursive: true, force: true });
  fs.rmSync(localScratch, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------
// /proc: processes and TCP sockets

/** Live (non-zombie) processes of any user whose argv contains `text` as one argument. */
function processesWithArg(text: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const state = fs.readFileSync(`/proc/${entry}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
      if (argv.includes(text) && state !== 'Z') pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

interface TcpSocket {
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  established: boolean;
  inode: number;
}

function hexAddress(hex: string): { address: string; port: number } {
  const [ip, port] = hex.split(':');
  const bytes = ip
    .match(/../g)!
    .map((b) => parseInt(b, 16))
    .reverse();
  return { address: bytes.join('.'), port: parseInt(port, 16) };
}

function tcpSockets(): TcpSocket[] {
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 9)
    .map((f) => {
      const local = hexAddress(f[1]);
      const remote = hexAddress(f[2]);
      return {
        localPort: local.port,
        remoteAddress: remote.address,
        remotePort: remote.port,
        established: f[3] === '01',
        inode: Number(f[9]),
      };
    });
}

function socketInodes(pid: number | 'self'): Set<number> {
  const inodes = new Set<number>();
  try {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(Number(m[1]));
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // process gone
  }
  return inodes;
}

/** Client ports of this process's established TCP connections to a node. */
function myConnections(target: { host: string; port: number }): number[] {
  const mine = socketInodes('self');
  return tcpSockets()
    .filter(
      (s) => s.established && mine.has(s.inode) && s.remoteAddress === target.host && s.remotePort === target.port,
    )
    .map((s) => s.localPort);
}

/** The process of user glidein holding the server side of the connection from `clientPort` to `server`. */
function serverSession(server: { host: string; port: number }, clientPort: number): SiteProcess | undefined {
  const socket = tcpSockets().find((s) => s.established && s.localPort === server.port && s.remotePort === clientPort);
  if (!socket) return undefined;
  return siteProcesses().find((p) => socketInodes(p.pid).has(socket.inode));
}

/** The process of user glidein holding the client side of a connection from `clientPort` to `server`. */
function clientOwner(server: { host: string; port: number }, clientPort: number): SiteProcess | undefined {
  const socket = tcpSockets().find(
    (s) =>
      s.established && s.localPort === clientPort && s.remoteAddress === server.host && s.remotePort === server.port,
  );
  if (!socket) return undefined;
  return siteProcesses().find((p) => socketInodes(p.pid).has(socket.inode));
}

// ---------------------------------------------------------------------------------------------------
// sshd logs

/** What a node's sshd logged after `offset` (a length of its log read earlier). */
function logSince(node: 'login' | 'worker', offset: number): string {
  return sshdLog(node).slice(offset);
}

/** Client ports of the TCP connections and of the logins an sshd log excerpt records. */
function logged(text: string, server: { host: string; port: number }): { connections: number[]; logins: number[] } {
  const connections = [...text.matchAll(/^Connection from 127\.0\.0\.1 port (\d+) on ([\d.]+) port (\d+)/gm)]
    .filter((m) => m[2] === server.host && Number(m[3]) === server.port)
    .map((m) => Number(m[1]));
  const logins = [...text.matchAll(/^Accepted publickey for glidein from 127\.0\.0\.1 port (\d+) /gm)].map((m) =>
    Number(m[1]),
  );
  return { connections, logins };
}

/** SSH_CONNECTION on the node: "client-address client-port server-address server-port". */
async function sshConnection(exec: Executor): Promise<{ clientPort: number; server: string }> {
  const r = await exec.run(['sh', '-c', 'printf "%s\\n" "$SSH_CONNECTION"']);
  const [, clientPort, serverHost, serverPort] = r.stdout.trim().split(' ');
  return { clientPort: Number(clientPort), server: `${serverHost}:${serverPort}` };
}

/** Arguments a shell would expand, split or execute; a sound quoting delivers each byte as it is. */
function hostileArguments(markerFile: string): string[] {
  return [
    `$(touch ${markerFile})`,
    `\`touch ${markerFile}\``,
    `it's`,
    `"double" and 'single'`,
    `line one\nline two\n`,
    `tab\there`,
    `; touch ${markerFile}; #`,
    `| touch ${markerFile}`,
    `&& touch ${markerFile}`,
    `> ${markerFile}`,
    '*',
    '~',
    '$HOME ${HOME} $0 $@',
    '\\',
    "\\'",
    "'",
    '"',
    '',
    ' ',
    '-n',
    '--',
    'a=b',
    'ünïcödé ✓',
    '!!',
    '#not a comment',
    '{a,b}',
  ];
}

// ---------------------------------------------------------------------------------------------------

describe('LocalExecutor', () => {
  const local = new LocalExecutor();

  test('runs argv without a shell: $(...) and backticks are passed literally and nothing runs them', async () => {
    const m = marker(localScratch);
    const args = hostileArguments(m);
    const r = await local.run(['printf', '%s\\0', ...args]);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(args);
    expect(fs.existsSync(m)).toBe(false);
  });

  test('passes env on top of its own environment, and stdin', async () => {
    const r = await local.run(['sh', '-c', 'printf "%s|%s|" "$GREETING" "$PATH_SEEN"; cat'], {
      env: { GREETING: `hello $(id) 'world'`, PATH_SEEN: 'yes' },
      stdin: 'first line\nsecond line\n',
    });
    expect(r).toEqual({
      code: 0,
      signal: null,
      stdout: `hello $(id) 'world'|yes|first line\nsecond line\n`,
      stderr: '',
    });
    expect((await local.run(['sh', '-c', 'printf %s "$HOME"'])).stdout).toBe(process.env.HOME);
  });

  test('reports a non-zero exit and a death by signal, with the output, instead of throwing', async () => {
    const failed = await local.run(['sh', '-c', 'echo partial; echo "it broke" >&2; exit 3']);
    expect(failed).toEqual({ code: 3, signal: null, stdout: 'partial\n', stderr: 'it broke\n' });
    const killed = await local.run(['sh', '-c', 'kill -TERM $$']);
    expect(killed).toMatchObject({ code: null, signal: 'SIGTERM' });
  });

  test('a command that cannot be started is an ExecutorError, not a result', async () => {
    const err = await rejection(local.run([path.join(localScratch, 'no-such-program')]));
    expect(err).toBeInstanceOf(ExecutorError);
    expect(err).toMatchObject({ kind: 'channel' });
    expect(err.message).toContain('no-such-program');
  });

  test('a timeout kills the command and what it started (kind timeout)', async () => {
    const tag = `${20 + Math.random()}`.slice(0, 10);
    const done = marker(localScratch);
    const { value: err, ms } = await timed(() =>
      rejection(local.run(['sh', '-c', 'sleep "$1"; touch "$2"', 'sh', tag, done], { timeoutMs: 300 })),
    );
    expect(err).toBeInstanceOf(ExecutorError);
    expect(err).toMatchObject({ kind: 'timeout', permanent: false });
    expect(err.message).toMatch(/timed out after 300 ms/);
    expect(ms).toBeLessThan(2_000);
    expect(processesWithArg(tag)).toEqual([]);
    expect(fs.existsSync(done)).toBe(false);
  });

  test('aborting kills the command and what it started (kind aborted); an aborted signal runs nothing', async () => {
    const tag = `${20 + Math.random()}`.slice(0, 10);
    const controller = new AbortController();
    const running = local.run(['sh', '-c', 'sleep "$1"', 'sh', tag], { signal: controller.signal });
    await waitFor('the local sleep to start', () => processesWithArg(tag).length > 0, 5_000, 20);
    const { value: err, ms } = await timed(async () => {
      controller.abort();
      return rejection(running);
    });
    expect(err).toMatchObject({ name: 'ExecutorError', kind: 'aborted' });
    expect(ms).toBeLessThan(2_000);
    expect(processesWithArg(tag)).toEqual([]);

    const m = marker(localScratch);
    const early = await rejection(local.run(['touch', m], { signal: controller.signal }));
    expect(early).toMatchObject({ kind: 'aborted' });
    expect(fs.existsSync(m)).toBe(false);
  });
});

describe('SshConnection to the login node', () => {
  test('runs commands as glidein and reports exit codes, stdout, stderr and signals', async () => {
    const login = pool().executor(LOGIN);
    expect(login.target).toBe('glidein@127.0.0.1:2201');
    expect(await login.run(['id', '-un'])).toEqual({ code: 0, signal: null, stdout: 'glidein\n', stderr: '' });
    const m = marker(siteScratch);
    expect(await login.run(['touch', m])).toMatchObject({ code: 0 });
    expect(fs.statSync(m).uid).toBe(fs.statSync(SITE_PATHS.workDir).uid);

    expect(await login.run(['sh', '-c', 'echo partial; echo "it broke" >&2; exit 7'])).toEqual({
      code: 7,
      signal: null,
      stdout: 'partial\n',
      stderr: 'it broke\n',
    });
    expect(await login.run(['ls', path.join(siteScratch, 'nothing-here')])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('No such file'),
    });
    const killed: CommandResult = await login.run(['sh', '-c', 'kill -TERM $$']);
    expect(killed.code).toBeNull();
    expect(killed.signal).toMatch(/^(SIG)?TERM$/);
    expect(await login.run(['cat'], { stdin: 'through stdin\n' })).toMatchObject({
      code: 0,
      stdout: 'through stdin\n',
    });
  });

  test('hostile arguments and environment values arrive byte for byte, and nothing in them runs', async () => {
    const login = pool().executor(LOGIN);
    const m = marker(siteScratch);
    const args = hostileArguments(m);
    const r = await login.run(['printf', '%s\\0', ...args]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(args);

    const env = {
      PLAIN: 'value',
      SPACED: ' two  words ',
      QUOTED: `it's "quoted"`,
      SUBST: `$(touch ${m}) \`touch ${m}\``,
      LINES: 'a\nb\n',
      EMPTY: '',
    };
    const e = await login.run(['sh', '-c', 'printf "%s\\0" "$PLAIN" "$SPACED" "$QUOTED" "$SUBST" "$LINES" "$EMPTY"'], {
      env,
    });
    expect(e).toMatchObject({ code: 0, stderr: '' });
    expect(e.stdout.split('\0').slice(0, -1)).toEqual(Object.values(env));
    expect(fs.existsSync(m)).toBe(false);
  });

  test('25 concurrent commands share one TCP connection (channels queued below MaxSessions 10)', async () => {
    const connectionsBefore = myConnections(LOGIN);
    const logOffset = sshdLog('login').length;
    const login = pool().executor(LOGIN);
    // Each command prints its number and when it started and ended on the node.
    const script = 'date +%s.%N; sleep 0.3; echo "$1"; date +%s.%N';
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, n) => login.run(['sh', '-c', script, 'sh', String(n)])),
    );
    expect(results.map((r) => r.code)).toEqual(Array(25).fill(0));
    expect(results.map((r) => r.stdout.split('\n')[1])).toEqual(Array.from({ length: 25 }, (_, n) => `${n}`));
    expect(login.connects).toBe(1);
    // On the node, commands ran side by side but never more than sshd's MaxSessions (10) at once.
    const spans = results.map((r) => r.stdout.split('\n')).map((l) => [Number(l[0]), Number(l[2])]);
    const overlap = Math.max(...spans.map(([start]) => spans.filter(([s, e]) => s <= start && start < e).length));
    expect(overlap).toBeGreaterThan(1);
    expect(overlap).toBeLessThanOrEqual(10);

    const ports = myConnections(LOGIN).filter((p) => !connectionsBefore.includes(p));
    expect(ports).toHaveLength(1);
    const log = logged(logSince('login', logOffset), LOGIN);
    expect(log.connections.filter((p) => ports.includes(p))).toEqual(ports);
    expect(log.logins.filter((p) => ports.includes(p))).toEqual(ports);
    expect((await sshConnection(login)).clientPort).toBe(ports[0]);
  });
});

describe('host keys', () => {
  const knownHosts = (name: string, content: string) => {
    const file = path.join(localScratch, name);
    fs.writeFileSync(file, content);
    return file;
  };
  const pub = (node: 'login' | 'worker') =>
    fs
      .readFileSync(path.join(SITE_PATHS.dir, node, 'host_ed25519.pub'), 'utf8')
      .trim()
      .split(/\s+/)
      .slice(0, 2)
      .join(' ');

  test('known_hosts without the host: permanent host-key error naming the file and the fix, nothing runs', async () => {
    // The worker node's entry is there; the login node's is not.
    const file = knownHosts('no-login-entry', `[127.0.0.2]:2202 ${pub('worker')}\n`);
    const login = pool().executor({ ...LOGIN, knownHostsFile: file });
    const m = marker(siteScratch);
    const err = await rejection(login.run(['touch', m]));
    expect(err).toBeInstanceOf(ExecutorError);
    expect(err).toMatchObject({ kind: 'host-key', permanent: true });
    expect(err.message).toContain('[127.0.0.1]:2201');
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/is not in/);
    expect(err.message).toMatch(/add the verified key to that file/);
    expect(err.message).toContain('ssh-keyscan -p 2201 127.0.0.1');
    expect(login.connects).toBe(0); // refused before any TCP connection
    expect(fs.existsSync(m)).toBe(false);
    // Permanent: asking again gives the same answer, still without connecting.
    expect(await rejection(login.run(['touch', m]))).toMatchObject({ kind: 'host-key', permanent: true });
    expect(login.connects).toBe(0);
    expect(fs.existsSync(m)).toBe(false);
  });

  test('a known_hosts with another key for the host: permanent host-key error saying so, nothing runs', async () => {
    // The worker node's key written under the login node's name: what a changed key or a man in the middle looks like.
    const file = knownHosts('wrong-login-key', `[127.0.0.1]:2201 ${pub('worker')}\n`);
    // (Not runCommand: it writes stdin, and ssh-keygen may exit before reading it: EPIPE.)
    const keygen = spawnSync('ssh-keygen', ['-l', '-f', path.join(SITE_PATHS.dir, 'login', 'host_ed25519.pub')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const offered = keygen.stdout.split(' ')[1];
    expect(offered).toMatch(/^SHA256:/);
    const login = pool().executor({ ...LOGIN, knownHostsFile: file });
    const m = marker(siteScratch);
    const logOffset = sshdLog('login').length;
    const err = await rejection(login.run(['touch', m]));
    expect(err).toBeInstanceOf(ExecutorError);
    expect(err).toMatchObject({ kind: 'host-key', permanent: true });
    expect(err.message).toContain('host key of [127.0.0.1]:2201 does not match');
    expect(err.message).toContain(file);
    expect(err.message).toContain(`ssh-ed25519 ${offered}`);
    expect(err.message).toContain(`ssh-keygen -R '[127.0.0.1]:2201' -f ${file}`);
    expect(login.connects).toBe(1);
    expect(fs.existsSync(m)).toBe(false);
    // The client hung up in the key exchange (SSH disconnect reason 3), before authenticating, and keeps no connection.
    const hungUp = await waitFor('sshd to log the client hanging up in the key exchange', () => {
      const text = logSince('login', logOffset);
      return logged(text, LOGIN).connections.find((p) =>
        new RegExp(`^Received disconnect from 127\\.0\\.0\\.1 port ${p}:3:.*\\[preauth\\]`, 'm').test(text),
      );
    });
    expect(logged(logSince('login', logOffset), LOGIN).logins).not.toContain(hungUp);
    await waitFor('the refused connection to close', () => myConnections(LOGIN).length === 0, 3_000, 20);
  });
});

describe('SshConnection through a jump host', () => {
  test('reaches the worker node through the login connection: one login there, the login node its client', async () => {
    const loginOffset = sshdLog('login').length;
    const workerOffset = sshdLog('worker').length;
    const ssh = pool();
    const worker = ssh.executor(WORKER);
    expect(worker.target).toBe('glidein@127.0.0.2:2202 (via 127.0.0.1:2201)');
    expect(await worker.run(['sh', '-c', 'id -un; uname -n'])).toMatchObject({
      code: 0,
      stdout: `glidein\n${os.hostname()}\n`,
    });

    const onWorker = await sshConnection(worker);
    expect(onWorker.server).toBe('127.0.0.2:2202');
    const login = ssh.executor(LOGIN);
    const onLogin = await sshConnection(login);
    expect(onLogin.server).toBe('127.0.0.1:2201');
    expect(ssh.connectCounts()).toEqual({
      'glidein@127.0.0.1:2201': 1,
      'glidein@127.0.0.1:2201>glidein@127.0.0.2:2202': 1,
    });

    // This process holds one connection, to the login node; none to the worker node.
    expect(myConnections(LOGIN)).toContain(onLogin.clientPort);
    expect(myConnections(WORKER)).toEqual([]);
    // The worker node's client socket belongs to the login node's session process of this connection:
    // sshd forwarded it (direct-tcpip), it is not a connection of this process.
    const loginSession = serverSession(LOGIN, onLogin.clientPort);
    expect(loginSession?.cmdline).toMatch(/^sshd: glidein/);
    expect(clientOwner(WORKER, onWorker.clientPort)?.pid).toBe(loginSession!.pid);

    const workerLog = logged(logSince('worker', workerOffset), WORKER);
    expect(workerLog.connections).toContain(onWorker.clientPort);
    expect(workerLog.logins).toContain(onWorker.clientPort);
    // The login node logged one login for this test, from this process; the jump is not a second login.
    const loginLog = logged(logSince('login', loginOffset), LOGIN);
    expect(loginLog.logins.filter((p) => p === onLogin.clientPort)).toHaveLength(1);
    expect(loginLog.logins).not.toContain(onWorker.clientPort);
    expect(loginLog.connections.filter((p) => p === onLogin.clientPort)).toHaveLength(1);
  });
});

describe('SshConnection after a drop', () => {
  test('reconnects when the server side of its connection is killed', async () => {
    const events: string[] = [];
    const login = pool({ log: (event) => events.push(event) }).executor(LOGIN);
    const first = await sshConnection(login);
    expect(login.connects).toBe(1);

    const session = serverSession(LOGIN, first.clientPort);
    expect(session?.cmdline).toMatch(/^sshd: glidein/);
    process.kill(session!.pid, 'SIGKILL');
    await waitFor(
      'the client to notice the dropped connection',
      () => events.includes('ssh connection closed'),
      10_000,
      20,
    );
    expect(myConnections(LOGIN)).not.toContain(first.clientPort);

    const logOffset = sshdLog('login').length;
    expect(await login.run(['echo', 'back'])).toMatchObject({ code: 0, stdout: 'back\n' });
    expect(login.connects).toBe(2);
    const second = await sshConnection(login);
    expect(second.clientPort).not.toBe(first.clientPort);
    expect(myConnections(LOGIN)).toContain(second.clientPort);
    expect(logged(logSince('login', logOffset), LOGIN).logins).toContain(second.clientPort);
  });
});

describe('SshConnection abort and timeout', () => {
  test('an aborted remote command rejects at once (kind aborted) and does not linger on the node', async () => {
    const login = pool().executor(LOGIN);
    const tag = `${40 + Math.random()}`.slice(0, 10);
    const controller = new AbortController();
    const running = login.run(['sleep', tag], { signal: controller.signal });
    await waitFor('the remote sleep to start', () => siteProcesses().some((p) => p.argv.includes(tag)), 10_000, 20);
    const { value: err, ms } = await timed(async () => {
      controller.abort();
      return rejection(running);
    });
    expect(err).toBeInstanceOf(ExecutorError);
    expect(err).toMatchObject({ kind: 'aborted', permanent: false });
    expect(ms).toBeLessThan(3_000);
    await waitFor('the remote sleep to be gone', () => !siteProcesses().some((p) => p.argv.includes(tag)), 3_000, 50);
    // The connection is still good.
    expect(await login.run(['true'])).toMatchObject({ code: 0 });
    expect(login.connects).toBe(1);
  });

  test('a remote command past its timeout rejects (kind timeout) and is killed', async () => {
    const login = pool().executor(LOGIN);
    const tag = `${40 + Math.random()}`.slice(0, 10);
    const { value: err, ms } = await timed(() => rejection(login.run(['sleep', tag], { timeoutMs: 500 })));
    expect(err).toMatchObject({ name: 'ExecutorError', kind: 'timeout' });
    expect(err.message).toContain('timed out after 500 ms');
    expect(ms).toBeLessThan(3_000);
    await waitFor('the remote sleep to be gone', () => !siteProcesses().some((p) => p.argv.includes(tag)), 3_000, 50);
  });
});
