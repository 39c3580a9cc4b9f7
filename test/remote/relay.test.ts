/**
 * The login-node relay (RELAY_PY), run as the tunnel runs it (from a file) and as `python3 -c`, against a SOCKS5
 * client written here and the real proxychains4: the secret file, authentication only by username/password, the
 * allow-list, relaying both ways with half-close, how the site's inspection sees it, and the end on SIGTERM.
 * RELAY_TEST_PYTHON picks another interpreter (e.g. a Python 3.6).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { isTunnelProcess } from '../../src/site/adapters/tunnel';
import { inspectArgv, parseInspect } from '../../src/site/scripts/processes';
import { RELAY_MARKER, RELAY_PY, RELAY_READY, relayArgv } from '../../src/site/scripts/relay';

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
async function startRelay(allow: string[], from: 'file' | 'argv'): Promise<Relay> {
  const argv = relayArgv({ python, listenHost: '127.0.0.1', port: 0, secretFile, allow });
  const program = path.join(dir, 'relay.py');
  fs.writeFileSync(program, RELAY_PY);
  const [cmd, ...args] = from === 'file' ? [argv[0], program, ...argv.slice(3)] : argv;
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
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
  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d) => (this.received = Buffer.concat([this.received, d])));
    sock.on('end', () => (this.ended = true));
    sock.on('error', () => (this.ended = true));
    sock.on('close', () => (this.closed = this.ended = true));
  }

  static async open(port: number): Promise<Client> {
    const sock = net.connect(port, '127.0.0.1');
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
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates its secret file, 0600 with 64 hex digits, and a second relay (python3 -c) keeps that secret', async () => {
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
      expect(relay.stderr()).toContain(`127.0.0.1:${port(other)} is not allowed`);
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

  it('ends with exit code 0 on SIGTERM', async () => {
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  });
});
