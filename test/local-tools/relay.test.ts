/**
 * The login-node relay (RELAY_PY), run as the tunnel runs it (from a file) and as `python3 -c`, against a SOCKS5
 * client written here and the real proxychains4: the secret file, authentication only by username/password, the
 * allow-list, relaying both ways with half-close, how the site's inspection sees it, the end on SIGTERM; the
 * handshake deadline and caps against a flood from one address and from many, and the end at --die-at.
 * RELAY_TEST_PYTHON picks another interpreter (e.g. a Python 3.6).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { isTunnelProcess } from '../../src/site/tunnel';
import { inspectArgv, parseInspect } from '../../src/site/scripts/processes';
import { RELAY_MARKER, RELAY_PY, RELAY_READY, relayArgv, type RelayArgs } from '../../src/site/scripts/relay';

const run = promisify(execFile);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-'));
const secretFile = path.join(dir, 'secret');
const python = process.env.RELAY_TEST_PYTHON;
const children = new Set<ChildProcess>();

async function until(what: string, condition: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`waited ${ms} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Relay {
  child: ChildProcess;
  port: number;
  stderr: () => string;
  exited: Promise<number | null>;
}

/**
 * Starts a relay on 127.0.0.1, port 0 (any free one), and returns once it prints that it listens: from a file as
 * the tunnel runs it, or as `python3 -c RELAY_PY` (relayArgv).
 */
async function startRelay(
  allow: string[],
  from: 'file' | 'argv',
  extra: Pick<RelayArgs, 'dieAt' | 'handshakeSeconds'> = {},
): Promise<Relay> {
  const argv = relayArgv({ python, listenHost: '127.0.0.1', port: 0, secretFile, allow, ...extra });
  const program = path.join(dir, 'relay.py');
  fs.writeFileSync(program, RELAY_PY);
  const [cmd, ...args] = from === 'file' ? [argv[0], program, ...argv.slice(3)] : argv;
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // 'close', not 'exit': its stdio has ended then, so stderr holds all it logged (the die time's lines come last).
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  let ended = false;
  void exited.then(() => (ended = true));
  await until('the relay to listen', () => ended || stdout.includes('\n'));
  const ready = new RegExp(`^${RELAY_READY} 127\\.0\\.0\\.1:(\\d+)\\n`).exec(stdout);
  if (!ready) throw new Error(`the relay did not start: ${stdout}${stderr}`);
  return { child, port: Number(ready[1]), stderr: () => stderr, exited };
}

/** A client socket with what it has received so far, read in exact amounts. */
class Client {
  received = Buffer.alloc(0);
  ended = false;
  closed = false;
  /** When the connection ended (Date.now()). */
  endedAt?: number;
  private constructor(readonly sock: net.Socket) {
    const end = () => {
      this.ended = true;
      this.endedAt ??= Date.now();
    };
    sock.on('data', (d) => (this.received = Buffer.concat([this.received, d])));
    sock.on('end', end);
    sock.on('error', end);
    sock.on('close', () => {
      end();
      this.closed = true;
    });
  }

  /** From `localAddress` (another address of 127/8 stands for another host), 127.0.0.1 by default. */
  static async open(port: number, localAddress = '127.0.0.1'): Promise<Client> {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress });
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    return new Client(sock);
  }

  async read(n: number): Promise<Buffer> {
    await until(`${n} bytes`, () => this.received.length >= n || this.ended);
    if (this.received.length < n) throw new Error(`the connection ended after ${this.received.toString('hex')}`);
    const head = this.received.subarray(0, n);
    this.received = this.received.subarray(n);
    return head;
  }

  /** Username/password authentication; the status (0: accepted). */
  async authenticate(password: string): Promise<number> {
    this.sock.write(Buffer.from([5, 1, 2]));
    expect([...(await this.read(2))]).toEqual([5, 2]);
    const user = Buffer.from('glidein');
    const pass = Buffer.from(password);
    this.sock.write(Buffer.concat([Buffer.from([1, user.length]), user, Buffer.from([pass.length]), pass]));
    const [version, status] = await this.read(2);
    expect(version).toBe(1);
    return status;
  }

  /** CONNECT to an IPv4 address; the reply code (0: connected). */
  async connect(host: string, port: number): Promise<number> {
    const portBytes = Buffer.alloc(2);
    portBytes.writeUInt16BE(port);
    this.sock.write(Buffer.concat([Buffer.from([5, 1, 0, 1, ...host.split('.').map(Number)]), portBytes]));
    const [version, code, , kind] = await this.read(4);
    expect(version).toBe(5);
    expect([1, 4]).toContain(kind);
    await this.read(kind === 1 ? 6 : 18);
    return code;
  }

  destroy(): void {
    this.sock.destroy();
  }
}

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('the login-node relay', () => {
  let relay: Relay;
  let secret: string;
  let echo: net.Server;
  let web: http.Server;
  const port = (server: net.Server | http.Server) => (server.address() as net.AddressInfo).port;

  beforeAll(async () => {
    // Echoes what it gets, and ends its side when the client ends its own.
    echo = net.createServer((s) => {
      s.on('error', () => s.destroy());
      s.pipe(s);
    });
    web = http.createServer((_req, res) => res.end('through the relay\n'));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    // The web server is allowed by a name that resolves to its address.
    relay = await startRelay([`127.0.0.1:${port(echo)}`, `localhost:${port(web)}`], 'file');
    secret = fs.readFileSync(secretFile, 'utf8').trim();
  });

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await new Promise((r) => echo.close(r));
    await new Promise((r) => web.close(r));
  });

  it('creates its secret file, 0600 with 64 hex digits; a second relay (python3 -c) keeps that secret', async () => {
    expect(fs.statSync(secretFile).mode & 0o777).toBe(0o600);
    expect(secret).toMatch(/^[0-9a-f]{64}$/);
    const second = await startRelay([], 'argv');
    expect(second.port).not.toBe(relay.port);
    expect(fs.readFileSync(secretFile, 'utf8').trim()).toBe(secret);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });

  it('is taken for a live tunnel by its marker in what INSPECT_PROCESSES reports of it', async () => {
    const pidFile = path.join(dir, 'relay.pid');
    const start = fs
      .readFileSync(`/proc/${relay.child.pid}/stat`, 'utf8')
      .replace(/^.*\) /s, '')
      .split(' ')[19];
    fs.writeFileSync(pidFile, `${relay.child.pid} ${start}\n`);
    const [cmd, ...args] = inspectArgv([pidFile]);
    const proc = parseInspect((await run(cmd, args)).stdout).processes.get(pidFile);
    expect(proc?.cmdline?.split(' ')).toContain(RELAY_MARKER);
    expect(isTunnelProcess(proc)).toBe(true);
  });

  it('answers a client that offers no authentication with "no acceptable method"', async () => {
    const c = await Client.open(relay.port);
    c.sock.write(Buffer.from([5, 1, 0]));
    expect([...(await c.read(2))]).toEqual([5, 0xff]);
    await until('the relay to close', () => c.ended);
    c.destroy();
  });

  it('refuses a wrong password and closes the connection, logging why but not the password', async () => {
    const c = await Client.open(relay.port);
    expect(await c.authenticate('0'.repeat(64))).not.toBe(0);
    await until('the relay to close', () => c.ended);
    c.destroy();
    await until('the refusal in the log', () => relay.stderr().includes('wrong password'));
    expect(relay.stderr()).not.toContain('0'.repeat(64));
    expect(relay.stderr()).not.toContain(secret);
  });

  it('connects to an allowed target and relays both ways, half-closes included', async () => {
    const c = await Client.open(relay.port);
    expect(await c.authenticate(secret)).toBe(0);
    expect(await c.connect('127.0.0.1', port(echo))).toBe(0);
    c.sock.write('ping\n');
    expect((await c.read(5)).toString()).toBe('ping\n');
    const big = Buffer.alloc(1 << 20, 'x');
    c.sock.end(big); // the echo server ends its side once it has sent everything back
    expect((await c.read(big.length)).equals(big)).toBe(true);
    await until('the relay to pass on the end', () => c.ended);
    c.destroy();
  });

  it('allows a target by an allowed name that resolves to its address', async () => {
    const c = await Client.open(relay.port);
    expect(await c.authenticate(secret)).toBe(0);
    expect(await c.connect('127.0.0.1', port(web))).toBe(0);
    c.destroy();
  });

  it('refuses a target that is not allowed with "not allowed by ruleset"', async () => {
    const other = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    try {
      const c = await Client.open(relay.port);
      expect(await c.authenticate(secret)).toBe(0);
      expect(await c.connect('127.0.0.1', port(other))).toBe(2);
      await until('the relay to close', () => c.ended);
      c.destroy();
      // Logged before the relay closed, but its stderr is another pipe: read it until the line is there.
      await until('the refusal in the log', () => relay.stderr().includes(`127.0.0.1:${port(other)} is not allowed`));
    } finally {
      await new Promise((r) => other.close(r));
    }
  });

  it('is the first hop of a real proxychains4, which needs the secret', async () => {
    const conf = (password: string) => {
      const file = path.join(dir, `proxychains-${password.length}.conf`);
      fs.writeFileSync(
        file,
        `strict_chain\nquiet_mode\n[ProxyList]\nsocks5 127.0.0.1 ${relay.port} glidein ${password}\n`,
      );
      return file;
    };
    const curl = (file: string) =>
      run('/usr/bin/proxychains4', ['-f', file, 'curl', '-s', '--max-time', '30', `http://127.0.0.1:${port(web)}/`], {
        timeout: 60_000,
      });
    expect((await curl(conf(secret))).stdout).toBe('through the relay\n');
    await expect(curl(conf('wrong'))).rejects.toThrow();
  });

  it('cuts a handshake incomplete 3 s after accept: one that trickles a byte at a time, and a silent one', async () => {
    const silent = await Client.open(relay.port);
    const trickle = await Client.open(relay.port);
    const opened = Date.now();
    // A greeting and an authentication one byte every 400 ms: each byte comes in time, the whole never does.
    const pass = Buffer.from('0'.repeat(64));
    const bytes = [5, 1, 2, 1, 7, ...Buffer.from('glidein'), pass.length, ...pass];
    let sent = 0;
    const timer = setInterval(() => {
      if (!trickle.ended && sent < bytes.length) trickle.sock.write(Buffer.from([bytes[sent++]]));
    }, 400);
    try {
      await until('both to be cut', () => silent.ended && trickle.ended, 9_000);
    } finally {
      clearInterval(timer);
    }
    for (const c of [silent, trickle]) {
      expect(c.endedAt! - opened).toBeGreaterThanOrEqual(2_900);
      expect(c.endedAt! - opened).toBeLessThan(9_000);
      c.destroy();
    }
    expect([...trickle.received.subarray(0, 2)]).toEqual([5, 2]); // it was heard, and answered, all along
    expect(sent).toBeGreaterThan(5);
    await until('the cuts in the log', () => relay.stderr().split('no complete SOCKS request within 3 s').length === 3);
  });

  it('ends with exit code 0 on SIGTERM', async () => {
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  });
});

describe('the login-node relay under a flood, and at its die time', () => {
  let echo: net.Server;
  let secret: string;
  const clients: Client[] = [];
  const port = (server: net.Server) => (server.address() as net.AddressInfo).port;

  beforeAll(async () => {
    echo = net.createServer((s) => {
      s.on('error', () => s.destroy());
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  });

  afterAll(async () => {
    for (const c of clients) c.destroy();
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await new Promise((r) => echo.close(r));
  });

  /** `n` connections from `from` that never say a word, opened 100 at a time: a later batch is accepted later. */
  async function flood(relayPort: number, n: number, from: string): Promise<Client[]> {
    const opened: Client[] = [];
    for (let i = 0; i < n; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => Client.open(relayPort, from)));
      opened.push(...batch);
      clients.push(...batch);
    }
    return opened;
  }

  const closedOf = (cs: Client[]) => cs.filter((c) => c.closed).length;

  /** A relay whose handshakes wait a minute, so that only the caps close a flood while the test looks. */
  async function patientRelay(): Promise<Relay> {
    const r = await startRelay([`127.0.0.1:${port(echo)}`], 'file', { handshakeSeconds: 60 });
    secret = fs.readFileSync(secretFile, 'utf8').trim();
    return r;
  }

  /** The glidein's client, from `from`: authenticated, connected to the echo server, relaying. */
  async function glidein(relayPort: number, from: string): Promise<Client> {
    const c = await Client.open(relayPort, from);
    clients.push(c);
    expect(await c.authenticate(secret)).toBe(0);
    expect(await c.connect('127.0.0.1', port(echo))).toBe(0);
    c.sock.write('ping\n');
    expect((await c.read(5)).toString()).toBe('ping\n');
    return c;
  }

  it('keeps 128 handshakes from one address, the oldest go; the glidein on that address still relays', async () => {
    const r = await patientRelay();
    // More than the 1,024 connections that used to be counted before authentication, from the glidein's node.
    const flooders = await flood(r.port, 1_100, '127.0.0.1');
    await until('the relay to close all but 128', () => closedOf(flooders) === 1_100 - 128);
    expect(flooders.slice(0, 900).every((c) => c.closed)).toBe(true);
    expect(flooders.slice(1_000).some((c) => c.closed)).toBe(false);
    const ours = await glidein(r.port, '127.0.0.1');
    // Its handshake took the oldest one's place; relaying, it counts against the flood's budget no more.
    await until('one more of the flood to make room', () => closedOf(flooders) === 1_100 - 128 + 1);
    const more = await flood(r.port, 300, '127.0.0.1');
    await until('the second wave to be capped', () => closedOf(flooders) + closedOf(more) === 1_400 - 128);
    expect(ours.ended).toBe(false);
    ours.sock.write('pong\n');
    expect((await ours.read(5)).toString()).toBe('pong\n');
    // Every one of those closings is a refusal the log would hold: it holds at most 60 a minute, and the count.
    expect(r.stderr().split('\n').length).toBeLessThan(70);
    r.child.kill('SIGTERM');
    expect(await r.exited).toBe(0);
  });

  it('keeps 512 handshakes in all, closing those of the address holding most; a glidein elsewhere relays', async () => {
    const r = await patientRelay();
    const sources = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6'];
    const waves: Client[][] = [];
    for (const from of sources) waves.push(await flood(r.port, 110, from));
    const all = waves.flat();
    await until('the relay to close all but 512', () => closedOf(all) === 550 - 512);
    // Each address below its own cap (128): the address holding the most gave way each time, so they end even.
    expect(waves.map((wave) => wave.length - closedOf(wave))).toEqual([102, 102, 102, 102, 104]);
    const ours = await glidein(r.port, '127.0.0.9');
    await until('one more of the flood to make room', () => closedOf(all) === 550 - 512 + 1);
    expect(ours.ended).toBe(false);
    r.child.kill('SIGTERM');
    expect(await r.exited).toBe(0);
  });

  it('ends by itself at --die-at with exit code 0, its relayed connections with it', async () => {
    const dieAt = Math.ceil(Date.now() / 1000) + 3;
    const r = await startRelay([`127.0.0.1:${port(echo)}`], 'file', { dieAt });
    secret = fs.readFileSync(secretFile, 'utf8').trim();
    const ours = await glidein(r.port, '127.0.0.1');
    const code = await Promise.race([
      r.exited,
      new Promise((resolve) => setTimeout(() => resolve('running'), 10_000).unref()),
    ]);
    expect(code).toBe(0);
    expect(Date.now()).toBeGreaterThanOrEqual(dieAt * 1000);
    expect(Date.now()).toBeLessThan(dieAt * 1000 + 5_000);
    const at = new Date(dieAt * 1000).toISOString().replace(/\.000Z$/, 'Z');
    expect(r.stderr()).toContain(`ends at its die time ${at}`);
    expect(r.stderr()).toContain(`reached its die time ${at}: stopped`);
    await until('the relayed connection to end', () => ours.ended);
  });

  it('refuses to start for a die time already past (exit 2); relayArgv refuses one not in whole seconds', async () => {
    const past = Math.floor(Date.now() / 1000) - 5;
    await expect(startRelay([], 'file', { dieAt: past })).rejects.toThrow(/the die time .* has passed/);
    for (const dieAt of [1.5, -1, 0, Number.NaN, 2 ** 60])
      expect(() => relayArgv({ listenHost: '127.0.0.1', port: 0, secretFile, allow: [], dieAt })).toThrow(
        'relay die-at:',
      );
  });
});
