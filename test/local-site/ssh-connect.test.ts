/**
 * How SshConnection connects to the local test site's login node (127.0.0.1:2201): one connect attempt shared
 * by concurrent callers whatever each caller's signal does, and files that cannot be used (identity,
 * known_hosts) refused before any TCP connection, as permanent faults.
 *
 * The login node is reached through a TCP proxy in this process that counts the connections it accepts and
 * can hold, delay or drop them: a count the site's firewall would see, and a slow or failing login node on
 * demand. Its port is the host's port in known_hosts, so each test writes its own file.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExecutorError } from '../../src/remote/executor';
import { SshPool, type SshTarget } from '../../src/remote/ssh';
import { SITE_PATHS, waitFor } from '../../sandbox/local-site';
import { rejection, timed } from '../support/promises';

const LOGIN: SshTarget = {
  host: '127.0.0.1',
  port: 2201,
  user: 'glidein',
  identityFile: SITE_PATHS.operatorKey,
  knownHostsFile: SITE_PATHS.operatorKnownHosts,
};

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ssh-connect-test-'));
let files = 0;
const scratchFile = (content: string | Buffer, mode = 0o600) => {
  const file = path.join(scratch, `file-${++files}`);
  fs.writeFileSync(file, content, { mode });
  return file;
};

const pools: SshPool[] = [];
const proxies: Proxy[] = [];
function pool(options?: ConstructorParameters<typeof SshPool>[0]): SshPool {
  const p = new SshPool(options);
  pools.push(p);
  return p;
}

afterEach(async () => {
  for (const p of pools.splice(0)) p.close();
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** What the proxy does with the n-th connection it accepts: forward after a delay (ms), drop it, or hold it. */
type Plan = (n: number) => number | 'drop' | 'hold';

interface Proxy {
  port: number;
  /** TCP connections accepted so far. */
  accepted: number;
  /** Drops every connection through it, and goes on accepting new ones. */
  cut(): void;
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 to the login node. */
async function proxy(plan: Plan = () => 0): Promise<Proxy> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = net.createServer((client) => {
    track(client);
    const how = plan(++state.accepted);
    if (how === 'drop') {
      client.destroy();
      return;
    }
    client.pause(); // what the client sends meanwhile waits in the socket
    if (how === 'hold') return;
    setTimeout(() => {
      if (client.destroyed) return;
      const upstream = net.connect({ host: LOGIN.host, port: LOGIN.port });
      track(upstream);
      upstream.on('close', () => client.destroy());
      client.on('close', () => upstream.destroy());
      client.pipe(upstream).pipe(client);
    }, how);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const state: Proxy = {
    port: (server.address() as net.AddressInfo).port,
    accepted: 0,
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  proxies.push(state);
  return state;
}

/** The login node through `p`, with a known_hosts that names the login node's key at the proxy's port. */
function throughProxy(p: Proxy, overrides: Partial<SshTarget> = {}): SshTarget {
  const key = fs
    .readFileSync(path.join(SITE_PATHS.dir, 'login', 'host_ed25519.pub'), 'utf8')
    .trim()
    .split(/\s+/)
    .slice(0, 2)
    .join(' ');
  return { ...LOGIN, port: p.port, knownHostsFile: scratchFile(`[127.0.0.1]:${p.port} ${key}\n`), ...overrides };
}

describe('one connect attempt, shared by concurrent callers', () => {
  test('callers aborting or timing out while the login node is slow fail alone; the others connect on', async () => {
    const p = await proxy(() => 1_500);
    const login = pool().executor(throughProxy(p));
    const controller = new AbortController();
    const aborted = rejection(login.run(['echo', 'aborted'], { signal: controller.signal }));
    const timedOut = rejection(login.run(['echo', 'timed out'], { timeoutMs: 300 }));
    const waiting = login.run(['echo', 'waited']);
    await waitFor('the connect to reach the proxy', () => p.accepted === 1, 5_000, 10);

    const { value: abortErr, ms } = await timed(async () => {
      controller.abort();
      return aborted;
    });
    expect(abortErr).toBeInstanceOf(ExecutorError);
    expect(abortErr).toMatchObject({ kind: 'aborted', permanent: false });
    expect(abortErr.message).toBe(`echo on ${login.target} aborted`);
    expect(ms).toBeLessThan(200);
    const timeoutErr = await timedOut;
    expect(timeoutErr).toMatchObject({ name: 'ExecutorError', kind: 'timeout', permanent: false });
    expect(timeoutErr.message).toBe(`echo on ${login.target} timed out after 300 ms`);

    expect(await waiting).toEqual({ code: 0, signal: null, stdout: 'waited\n', stderr: '' });
    expect(login.connects).toBe(1);
    expect(p.accepted).toBe(1);
    // The connection is kept: later commands use it.
    expect(await login.run(['echo', 'again'])).toMatchObject({ code: 0, stdout: 'again\n' });
    expect(p.accepted).toBe(1);
  });

  test("a caller timing out in the backoff wait after a failed attempt leaves the others' reconnect be", async () => {
    const p = await proxy((n) => (n === 1 ? 'drop' : 0));
    const login = pool({ backoffMs: { initial: 1_000, max: 1_000 }, connectTimeoutMs: 5_000 }).executor(
      throughProxy(p),
    );
    const dropped = await rejection(login.run(['true']));
    expect(dropped).toMatchObject({ name: 'ExecutorError', kind: 'connect', permanent: false });
    expect(p.accepted).toBe(1);

    const { value, ms } = await timed(async () => {
      const impatient = rejection(login.run(['true'], { timeoutMs: 200 }));
      const patient = login.run(['echo', 'after the backoff']);
      const err = await impatient;
      expect(err).toMatchObject({ name: 'ExecutorError', kind: 'timeout', permanent: false });
      expect(p.accepted).toBe(1); // still waiting out the backoff
      return patient;
    });
    expect(value).toMatchObject({ code: 0, stdout: 'after the backoff\n' });
    expect(ms).toBeGreaterThanOrEqual(800); // the backoff was waited out, not skipped
    expect(p.accepted).toBe(2);
    expect(login.connects).toBe(2);
  });

  test("with no caller's signal, a login node never answering fails the attempt after connectTimeoutMs", async () => {
    const p = await proxy(() => 'hold');
    const login = pool({ connectTimeoutMs: 500 }).executor(throughProxy(p));
    const { value: err, ms } = await timed(() => rejection(login.run(['true'])));
    expect(err).toMatchObject({ name: 'ExecutorError', kind: 'connect', permanent: false });
    expect(err.message).toContain(`cannot connect to ${login.target}`);
    expect(ms).toBeGreaterThanOrEqual(450);
    expect(ms).toBeLessThan(3_000);
    expect(p.accepted).toBe(1);
  });
});

describe('connection events (the worker counts them: src/metrics.ts)', () => {
  test('each connection opened, each failed attempt by kind, a reconnect after a kept connection dropped', async () => {
    const p = await proxy((n) => (n === 1 ? 'drop' : 0));
    const events: string[] = [];
    const login = pool({
      backoffMs: { initial: 100, max: 100 },
      events: {
        opened: (target) => events.push(`opened ${target}`),
        reconnected: (target) => events.push(`reconnected ${target}`),
        failed: (target, kind) => events.push(`failed ${target} ${kind}`),
      },
    }).executor(throughProxy(p));
    const at = `127.0.0.1:${p.port}`;
    await rejection(login.run(['true']));
    expect(await login.run(['echo', 'up'])).toMatchObject({ code: 0, stdout: 'up\n' });
    expect(await login.run(['echo', 'kept'])).toMatchObject({ code: 0, stdout: 'kept\n' });
    expect(events).toEqual([`opened ${at}`, `failed ${at} connect`, `opened ${at}`]);

    p.cut();
    await waitFor('the drop to be noticed', async () => {
      const r = await login.run(['echo', 'back']).catch(() => undefined);
      return r?.stdout === 'back\n';
    });
    expect(events.slice(3)).toEqual([`opened ${at}`, `reconnected ${at}`]);
    expect(login.connects).toBe(3);
  });
});

describe('unusable identity files are refused before any connection', () => {
  const encrypted = () => {
    const file = path.join(scratch, `encrypted-${++files}`);
    const keygen = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-C', 'test', '-f', file], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(keygen.status).toBe(0);
    return file;
  };
  const cases: [string, () => string, RegExp][] = [
    [
      'garbage',
      () => scratchFile('not a key: hunter2 s3cr3t-t0ken\n'),
      /is not a private key ssh2 can read \(Unsupported key format\): give the path of an OpenSSH private key/,
    ],
    [
      'an encrypted key without its passphrase',
      encrypted,
      /is encrypted with a passphrase, and this worker has no way yet to unlock it/,
    ],
    [
      'a public key',
      () => scratchFile(fs.readFileSync(`${SITE_PATHS.operatorKey}.pub`)),
      /holds a public key: give the path of the private key/,
    ],
  ];

  test.each(cases)(
    '%s: permanent auth error naming the file and the fix, no TCP connection, none on asking again',
    async (_what, make, fix) => {
      const identityFile = make();
      const content = fs.readFileSync(identityFile, 'utf8');
      const p = await proxy();
      const login = pool().executor(throughProxy(p, { identityFile }));
      for (let attempt = 0; attempt < 2; attempt++) {
        const err = await rejection(login.run(['true']));
        expect(err).toBeInstanceOf(ExecutorError);
        expect(err).toMatchObject({ kind: 'auth', permanent: true });
        expect(err.message).toContain(`identity file ${identityFile} `);
        expect(err.message).toMatch(fix);
        // Never the key material: no line of the file, nor any longer piece of one.
        for (const line of content.split('\n').filter((l) => l.length > 8)) {
          for (let i = 0; i + 8 <= line.length; i += 8) expect(err.message).not.toContain(line.slice(i, i + 8 + 4));
        }
        expect(login.connects).toBe(0);
        expect(p.accepted).toBe(0);
      }
      // The proxy does count: the operator's key connects through it.
      const good = pool().executor(throughProxy(p));
      expect(await good.run(['true'])).toMatchObject({ code: 0 });
      expect(p.accepted).toBe(1);
    },
  );
});

describe('an unreadable known_hosts file', () => {
  const cases: [string, () => string, string][] = [
    ['missing', () => path.join(scratch, 'no-such-known-hosts'), 'it does not exist'],
    ['a directory', () => fs.mkdtempSync(path.join(scratch, 'known-hosts-dir-')), 'it is a directory'],
    ['under a file', () => path.join(scratchFile(''), 'known_hosts'), 'ENOTDIR'],
  ];

  test.each(cases)(
    '%s: permanent host-key error naming the file and the fix, no TCP connection',
    async (_what, make, why) => {
      const knownHostsFile = make();
      const p = await proxy();
      const login = pool().executor({ ...throughProxy(p), knownHostsFile });
      for (let attempt = 0; attempt < 2; attempt++) {
        const err = await rejection(login.run(['true']));
        expect(err).toBeInstanceOf(ExecutorError);
        expect(err).toMatchObject({ kind: 'host-key', permanent: true });
        expect(err.message).toBe(
          `known_hosts file ${knownHostsFile} cannot be read (${why}): refusing to connect to [127.0.0.1]:${p.port}. ` +
            `Make it a file readable by the worker's user that holds the host's verified key.`,
        );
        expect(login.connects).toBe(0);
        expect(p.accepted).toBe(0);
      }
    },
  );
});

describe('the forwarded key agent', () => {
  it('answers only the channel that asked for it, and no later session of the same connection', async () => {
    const login = pool().executor(LOGIN);
    // The channel that asks sees the key through the socket sshd made for it.
    const asked = await login.run(['sh', '-c', 'printf "%s\\n" "$SSH_AUTH_SOCK"; ssh-add -L'], { forwardAgent: true });
    expect(asked.code).toBe(0);
    const [socket, key] = asked.stdout.split('\n');
    expect(socket).toMatch(/^\/tmp\/ssh-[^/]+\/agent\.\d+$/);
    expect(key).toMatch(/^ssh-(ed25519|rsa) /);
    // sshd keeps that socket for the connection's life; a later session (a detached process, a co-tenant's job
    // of the same uid) that finds it gets no agent.
    const later = await login.run(['env', `SSH_AUTH_SOCK=${socket}`, 'ssh-add', '-L']);
    expect(later.stdout).not.toMatch(/^ssh-/m);
    expect(later.code).not.toBe(0);
    // Nor does a process the asking channel left running, once that channel has closed.
    const detached = await login.run(
      [
        'sh',
        '-c',
        'setsid sh -c "sleep 1; ssh-add -L > \\"$0\\" 2>&1; echo \\$? >> \\"$0\\"" "$1" </dev/null >/dev/null 2>&1 &',
        'sh',
        `/tmp/agent-probe-${process.pid}`,
      ],
      { forwardAgent: true },
    );
    expect(detached.code).toBe(0);
    await new Promise((r) => setTimeout(r, 2_500));
    const probe = await login.run(['cat', `/tmp/agent-probe-${process.pid}`]);
    await login.run(['rm', '-f', `/tmp/agent-probe-${process.pid}`]);
    expect(probe.stdout).not.toMatch(/^ssh-/m);
    expect(probe.stdout.trim().split('\n').pop()).not.toBe('0');
  });
});
