/**
 * SSH executor on ssh2: one kept connection per host, commands as channels on it (login nodes throttle and
 * ban hosts that open many connections), queued below sshd's MaxSessions, host keys checked against
 * known_hosts and never accepted on first sight, reconnect with backoff after a drop, and an optional jump
 * through another connection (forwardOut), which is how the worker node is reached from outside.
 */
import { readFile } from 'node:fs/promises';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { Client, utils, type ClientChannel, type ConnectConfig, type ExecOptions, type ParsedKey } from 'ssh2';
import { ExecutorError, OutputBuffer, type CommandResult, type Executor, type RunOptions } from './executor';
import { blobType, fingerprint, hostKeyAlgorithms, knownHostsName, readHostKeys, unreadable } from './known-hosts';
import { KeyAgent } from './key-agent';
import { commandLine } from './quote';
import { Semaphore } from './semaphore';

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  /** Path of the private key on this machine; read when connecting, never logged or returned. */
  identityFile: string;
  knownHostsFile: string;
  /** Reach this host through another one (forwardOut on the jump host's connection). */
  jump?: SshTarget;
}

export interface SshOptions {
  /**
   * Concurrent exec channels per connection. OpenSSH's MaxSessions is 10 by default, and sshd frees a session
   * only in the main-loop pass after the client's channel close: a channel opened right after another closed
   * can find both counted. At most half of MaxSessions never meets "no more sessions".
   */
  maxChannels?: number;
  connectTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  /** First and longest wait between failed connection attempts. */
  backoffMs?: { initial: number; max: number };
  log?: (event: string, fields: Record<string, unknown>) => void;
}

const DEFAULTS = {
  maxChannels: 5,
  connectTimeoutMs: 20_000,
  keepaliveIntervalMs: 15_000,
  backoffMs: { initial: 500, max: 30_000 },
};

export function describeTarget(t: SshTarget): string {
  const here = `${t.user}@${t.host}:${t.port}`;
  return t.jump ? `${here} (via ${t.jump.host}:${t.jump.port})` : here;
}

function targetKey(t: SshTarget): string {
  return t.jump ? `${targetKey(t.jump)}>${t.user}@${t.host}:${t.port}` : `${t.user}@${t.host}:${t.port}`;
}

/** One kept SSH connection and the channels on it. */
export class SshConnection implements Executor {
  readonly target: string;
  private client?: Promise<Client>;
  private live?: Client;
  private readonly channels: Semaphore;
  private failures = 0;
  private nextAttemptAt = 0;
  /** TCP connections opened so far (tests and benchmarks count them). */
  connects = 0;

  constructor(
    private readonly spec: SshTarget,
    private readonly options: Required<SshOptions>,
    private readonly via?: SshConnection,
  ) {
    this.target = describeTarget(spec);
    this.channels = new Semaphore(options.maxChannels);
  }

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
    const line = commandLine(argv, opts.env);
    const signal = composeSignal(opts.signal, opts.timeoutMs);
    try {
      const client = await this.connected(signal);
      const release = await this.channels.acquire(signal);
      try {
        return await this.exec(client, line, opts.stdin, signal, opts.forwardAgent === true);
      } finally {
        release();
      }
    } catch (err) {
      if (signal?.aborted && !(err instanceof ExecutorError && err.permanent)) {
        // AbortSignal.timeout aborts with a TimeoutError (its timer may fire a millisecond before a Date.now() deadline).
        const timedOut =
          !opts.signal?.aborted && (signal.reason as { name?: string } | undefined)?.name === 'TimeoutError';
        throw timedOut
          ? new ExecutorError(`${argv[0]} on ${this.target} timed out after ${opts.timeoutMs} ms`, 'timeout')
          : new ExecutorError(`${argv[0]} on ${this.target} aborted`, 'aborted');
      }
      throw err;
    }
  }

  /**
   * A forwarded TCP stream from this host to another (used to jump to the worker node). `signal` gives up the
   * wait for this connection; opening the stream itself is limited by connectTimeoutMs.
   */
  async forward(host: string, port: number, signal?: AbortSignal): Promise<Duplex> {
    const client = await this.connected(signal);
    const timeoutMs = this.options.connectTimeoutMs;
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(
          new ExecutorError(
            `cannot reach ${host}:${port} through ${this.target}: no answer within ${timeoutMs} ms`,
            'connect',
          ),
        );
      }, timeoutMs);
      client.forwardOut('127.0.0.1', 0, host, port, (err, stream) => {
        clearTimeout(timer);
        if (settled) {
          stream?.destroy(); // nobody waits for it any more
          return;
        }
        settled = true;
        if (err)
          reject(new ExecutorError(`cannot reach ${host}:${port} through ${this.target}: ${err.message}`, 'connect'));
        else resolve(stream);
      });
    });
  }

  close(): void {
    const client = this.client;
    this.client = undefined;
    void client?.then((c) => c.end()).catch(() => undefined);
  }

  /**
   * The connection, shared by all callers. The connect attempt follows no caller's signal (one caller's
   * timeout must not fail the others' wait); each caller stops waiting when its own signal aborts.
   */
  private connected(signal?: AbortSignal): Promise<Client> {
    if (signal?.aborted) return Promise.reject(new ExecutorError(`connecting to ${this.target} aborted`, 'aborted'));
    if (!this.client) {
      const attempt = this.connect();
      this.client = attempt;
      attempt.catch(() => {
        if (this.client === attempt) this.client = undefined;
      });
    }
    return untilAborted(this.client, signal, `connecting to ${this.target} aborted`);
  }

  /** One connect attempt; each step has its own limit (backoff, connectTimeoutMs), so it always ends. */
  private async connect(): Promise<Client> {
    const wait = this.nextAttemptAt - Date.now();
    if (wait > 0) await sleep(wait);
    const { spec } = this;
    const known = await readHostKeys(spec.knownHostsFile, spec.host, spec.port);
    const name = knownHostsName(spec.host, spec.port);
    if (known.keys.length === 0) {
      throw new ExecutorError(
        `host key of ${name} is not in ${spec.knownHostsFile}: refusing to connect. Get the key's fingerprint from the site's ` +
          `documentation or administrators and add the verified key to that file (ssh-keyscan -p ${spec.port} ${spec.host} shows what the host offers).`,
        'host-key',
        true,
      );
    }
    const privateKey = await readIdentity(spec.identityFile);
    // Serves the same key as an agent, forwarded only on channels that ask for it (the reverse tunnel).
    const agent = new KeyAgent(privateKey);
    let sock: Duplex;
    try {
      sock = this.via
        ? await this.via.forward(spec.host, spec.port)
        : await openSocket(spec.host, spec.port, this.options.connectTimeoutMs);
    } catch (err) {
      this.noteFailure();
      if (err instanceof ExecutorError) throw err;
      throw new ExecutorError(`cannot connect to ${name}: ${(err as Error).message}`, 'connect');
    }

    let offered: Buffer | undefined;
    const client = new Client();
    const config: ConnectConfig = {
      sock,
      username: spec.user,
      privateKey,
      agent,
      readyTimeout: this.options.connectTimeoutMs,
      keepaliveInterval: this.options.keepaliveIntervalMs,
      keepaliveCountMax: 3,
      algorithms: { serverHostKey: hostKeyAlgorithms(known.keys) as never },
      hostVerifier: (key: Buffer) => {
        offered = key;
        return !known.revoked.some((k) => k.blob.equals(key)) && known.keys.some((k) => k.blob.equals(key));
      },
    };
    this.connects++;
    this.options.log('ssh connecting', { target: this.target });
    try {
      // readyTimeout limits the handshake; ssh2 clears it when the socket closes, and a close in the key
      // exchange comes without an error, so a close settles the wait too. The first error settles it; the
      // listener stays, as ssh2 may emit more (a timeout, then "Connection lost") and an unheard one throws.
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error & { level?: string }) =>
          reject(
            this.classify(
              err,
              offered,
              known.keys.map((k) => k.type),
            ),
          );
        client.on('error', onError);
        client.once('ready', () => {
          client.off('error', onError);
          resolve();
        });
        client.once('close', () =>
          reject(
            new ExecutorError(
              `cannot connect to ${this.target}: the connection closed during the handshake`,
              'connect',
            ),
          ),
        );
        client.connect(config);
      });
    } catch (err) {
      this.noteFailure();
      client.end();
      sock.destroy(); // a refused connection must not linger on the login node
      throw err;
    }
    this.failures = 0;
    client.on('error', (err) => this.options.log('ssh connection error', { target: this.target, error: err.message }));
    client.once('close', () => {
      this.options.log('ssh connection closed', { target: this.target });
      if (this.live === client) {
        this.live = undefined;
        this.client = undefined;
      }
    });
    this.live = client;
    this.options.log('ssh connected', { target: this.target });
    return client;
  }

  private classify(err: Error & { level?: string }, offered: Buffer | undefined, knownTypes: string[]): ExecutorError {
    const name = knownHostsName(this.spec.host, this.spec.port);
    if (/host denied|verification failed/i.test(err.message)) {
      const what = offered ? `${blobType(offered)} ${fingerprint(offered)}` : 'an unverifiable key';
      return new ExecutorError(
        `host key of ${name} does not match ${this.spec.knownHostsFile} (the host offered ${what}; the file has ${knownTypes.join(', ')}). ` +
          `The key changed or someone is in the middle: confirm the new fingerprint with the site before replacing the entry (ssh-keygen -R '${name}' -f ${this.spec.knownHostsFile}).`,
        'host-key',
        true,
      );
    }
    if (err.level === 'client-authentication') {
      return new ExecutorError(
        `${this.target} refused the key ${this.spec.identityFile} for user ${this.spec.user}`,
        'auth',
        true,
      );
    }
    return new ExecutorError(`cannot connect to ${this.target}: ${err.message}`, 'connect');
  }

  private noteFailure(): void {
    const { initial, max } = this.options.backoffMs;
    this.failures++;
    this.nextAttemptAt = Date.now() + Math.min(max, initial * 2 ** (this.failures - 1));
  }

  private exec(
    client: Client,
    line: string,
    stdin: string | undefined,
    signal: AbortSignal | undefined,
    agentForward: boolean,
  ): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      // ssh2 honours a per-channel agentForward (auth-agent-req) though its typings do not list it.
      const execOptions = { agentForward } as unknown as ExecOptions;
      client.exec(line, execOptions, (err, stream: ClientChannel) => {
        if (err) {
          reject(new ExecutorError(`cannot open a channel on ${this.target}: ${err.message}`, 'channel'));
          return;
        }
        const stdout = new OutputBuffer();
        const stderr = new OutputBuffer();
        let code: number | null = null;
        let signalName: string | null = null;
        let gaveUp: NodeJS.Timeout | undefined;
        const onAbort = () => {
          signalChannel(stream, 'KILL');
          stream.close();
          // sshd holds a session channel open until its command exits; don't wait on a server that ignored the signal.
          gaveUp = setTimeout(() => reject(new ExecutorError('aborted', 'aborted')), ABORT_GRACE_MS);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        if (signal?.aborted) onAbort(); // aborted while the channel was opening
        stream.on('data', (c: Buffer) => stdout.push(c));
        stream.stderr.on('data', (c: Buffer) => stderr.push(c));
        stream.on('exit', (exitCode: number | null, sig?: string) => {
          code = exitCode;
          signalName = sig ?? null;
        });
        stream.on('close', () => {
          clearTimeout(gaveUp);
          signal?.removeEventListener('abort', onAbort);
          if (signal?.aborted) reject(new ExecutorError('aborted', 'aborted'));
          else if (code === null && signalName === null)
            reject(new ExecutorError(`the channel on ${this.target} closed before the command exited`, 'channel'));
          else resolve({ code, signal: signalName, stdout: stdout.toString(), stderr: stderr.toString() });
        });
        stream.end(stdin ?? '');
      });
    });
  }
}

/** Keeps one SshConnection per host (and jump chain) for the life of the worker. */
export class SshPool {
  private readonly connections = new Map<string, SshConnection>();
  private readonly options: Required<SshOptions>;

  constructor(options: SshOptions = {}) {
    this.options = { ...DEFAULTS, log: () => undefined, ...options };
  }

  executor(target: SshTarget): SshConnection {
    const key = targetKey(target);
    let connection = this.connections.get(key);
    if (!connection) {
      const via = target.jump ? this.executor(target.jump) : undefined;
      connection = new SshConnection(target, this.options, via);
      this.connections.set(key, connection);
    }
    return connection;
  }

  /** TCP connections opened per target, for tests and benchmarks. */
  connectCounts(): Record<string, number> {
    return Object.fromEntries([...this.connections].map(([key, c]) => [key, c.connects]));
  }

  close(): void {
    // Close the innermost (jumped) connections first.
    for (const connection of [...this.connections.values()].reverse()) connection.close();
    this.connections.clear();
  }
}

/** How long an aborted command's channel may take to close before run() rejects anyway. */
const ABORT_GRACE_MS = 2_000;

/**
 * Sends a signal request on a session channel. ssh2's Channel.signal() does nothing once the channel's stdin
 * is ended (the stream is no longer writable), and exec() ends stdin at once, so the request goes to the
 * protocol directly. OpenSSH's sshd delivers it with killpg() to the command's process group.
 */
function signalChannel(stream: ClientChannel, name: string): void {
  const channel = stream as unknown as {
    outgoing?: { id: number; state: string };
    _client?: { _protocol?: { signal?: (id: number, signal: string) => void } };
  };
  const protocol = channel._client?._protocol;
  if (
    !channel.outgoing ||
    (channel.outgoing.state !== 'open' && channel.outgoing.state !== 'eof') ||
    typeof protocol?.signal !== 'function'
  )
    return;
  try {
    protocol.signal(channel.outgoing.id, name);
  } catch {
    // the connection is gone; closing the channel is all that is left
  }
}

/**
 * The identity file's key, checked before any connection is opened: a key that cannot be used would fail
 * after the TCP connect, and every retry would cost the login node's firewall one more connection.
 */
async function readIdentity(file: string): Promise<Buffer> {
  let privateKey: Buffer;
  try {
    privateKey = await readFile(file);
  } catch (err) {
    throw new ExecutorError(
      `identity file ${file} cannot be read (${unreadable(err)}): give the path of a private key readable by the worker's user`,
      'auth',
      true,
    );
  }
  // ssh2's messages name the format or the cipher, never key material.
  const parsed = utils.parseKey(privateKey);
  // A file with several keys parses to an array (its typings do not say so); ssh2 then uses the first.
  const key: ParsedKey | Error | undefined = Array.isArray(parsed) ? (parsed as ParsedKey[])[0] : parsed;
  if (key instanceof Error && /passphrase/i.test(key.message)) {
    throw new ExecutorError(
      `identity file ${file} is encrypted with a passphrase, and this worker has no way yet to unlock it: give a key ` +
        `the site accepts without a passphrase, readable only by the worker's user`,
      'auth',
      true,
    );
  }
  if (!key || key instanceof Error) {
    throw new ExecutorError(
      `identity file ${file} is not a private key ssh2 can read${key instanceof Error ? ` (${key.message})` : ''}: give the path of an OpenSSH private key (ssh-keygen -t ed25519 makes one)`,
      'auth',
      true,
    );
  }
  if (!key.isPrivateKey()) {
    throw new ExecutorError(
      `identity file ${file} holds a public key: give the path of the private key (the file without .pub)`,
      'auth',
      true,
    );
  }
  return privateKey;
}

function openSocket(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    sock.setNoDelay(true); // Nagle + delayed ACK would add ~40 ms to every command
    const fail = (err: Error) => {
      cleanup();
      sock.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const onError = (err: Error) => fail(err);
    const cleanup = () => {
      clearTimeout(timer);
      sock.off('error', onError);
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      cleanup();
      resolve(sock);
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or an 'aborted' ExecutorError as soon as `signal` aborts; the promise itself goes on. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined, message: string): Promise<T> {
  if (!signal) return promise;
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new ExecutorError(message, 'aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

function composeSignal(signal: AbortSignal | undefined, timeoutMs: number | undefined): AbortSignal | undefined {
  const signals = [signal, timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined].filter((s): s is AbortSignal => !!s);
  if (signals.length === 0) return undefined;
  return signals.length === 1 ? signals[0] : AbortSignal.any(signals);
}
