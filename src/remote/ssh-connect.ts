/**
 * Connecting to one SSH host: the identity file and known_hosts checked before any socket is opened, a TCP
 * socket or a jump through another connection (forwardOut), the handshake under its own timeout, each failure
 * sorted into permanent (host key, refused key) or retryable, and a backoff between failed attempts. One
 * connect attempt is shared by all callers; the connection is kept until it drops or is closed.
 */
import { readFile } from 'node:fs/promises';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { Client, utils, type ConnectConfig, type ParsedKey } from 'ssh2';
import { ExecutorError, type TransportFailure } from './executor';
import { agentOf, KeyAgent } from './key-agent';
import { HostKeyCheck, unreadable } from './known-hosts';

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

export interface ConnectOptions {
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
  /** First and longest wait between failed connection attempts. */
  backoffMs: { initial: number; max: number };
  log: (event: string, fields: Record<string, unknown>) => void;
  /** What happens to connections, for counters (the worker's metrics, src/metrics.ts). */
  events: SshEvents;
}

/**
 * A host's connections, named host:port: each opened (TCP, before the handshake), each made again after a kept one
 * dropped, each failed attempt.
 */
export interface SshEvents {
  opened(target: string): void;
  reconnected(target: string): void;
  failed(target: string, kind: TransportFailure): void;
}

export const NO_SSH_EVENTS: SshEvents = {
  opened: () => undefined,
  reconnected: () => undefined,
  failed: () => undefined,
};

/** The connection a jumped host is reached through: it opens a forwarded TCP stream to the host. */
export interface Jump {
  forward(host: string, port: number, signal?: AbortSignal): Promise<Duplex>;
}

export function describeTarget(t: SshTarget): string {
  const here = `${t.user}@${t.host}:${t.port}`;
  return t.jump ? `${here} (via ${t.jump.host}:${t.jump.port})` : here;
}

/** One kept SSH connection to a host: connected on first use, again after a drop, never twice at once. */
export class SshLink implements Jump {
  private client?: Promise<Client>;
  private live?: Client;
  private failures = 0;
  private nextAttemptAt = 0;
  /** Whether a connection was up before: the next one is a reconnect. */
  private wasConnected = false;
  /** host:port, as the events name it. */
  private get endpoint(): string {
    return `${this.spec.host}:${this.spec.port}`;
  }
  /** TCP connections opened so far (tests and benchmarks count them). */
  connects = 0;

  constructor(
    private readonly spec: SshTarget,
    readonly target: string,
    private readonly options: ConnectOptions,
    private readonly via?: Jump,
  ) {}

  /**
   * The connection, shared by all callers. The connect attempt follows no caller's signal (one caller's
   * timeout must not fail the others' wait); each caller stops waiting when its own signal aborts.
   */
  connected(signal?: AbortSignal): Promise<Client> {
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

  /** One connect attempt; each step has its own limit (backoff, connectTimeoutMs), so it always ends. */
  private async connect(): Promise<Client> {
    const wait = this.nextAttemptAt - Date.now();
    if (wait > 0) await sleep(wait);
    const { spec } = this;
    const hostKeys = await HostKeyCheck.load(spec.knownHostsFile, spec.host, spec.port);
    const privateKey = await readIdentity(spec.identityFile);
    // Serves the same key as an agent, answering only while a channel that asked for it is open (the reverse tunnel).
    const agent = new KeyAgent(privateKey);
    let sock: Duplex;
    try {
      sock = this.via
        ? await this.via.forward(spec.host, spec.port)
        : await openSocket(spec.host, spec.port, this.options.connectTimeoutMs);
    } catch (err) {
      this.noteFailure();
      const failure =
        err instanceof ExecutorError
          ? err
          : new ExecutorError(`cannot connect to ${hostKeys.name}: ${(err as Error).message}`, 'connect');
      this.options.events.failed(this.endpoint, failure.kind);
      throw failure;
    }

    const client = new Client();
    agentOf.set(client, agent);
    const config: ConnectConfig = {
      sock,
      username: spec.user,
      privateKey,
      agent,
      readyTimeout: this.options.connectTimeoutMs,
      keepaliveInterval: this.options.keepaliveIntervalMs,
      keepaliveCountMax: 3,
      algorithms: { serverHostKey: hostKeys.algorithms as never },
      hostVerifier: hostKeys.verify,
    };
    this.connects++;
    this.options.events.opened(this.endpoint);
    this.options.log('ssh connecting', { target: this.target });
    try {
      await handshake(client, config, this.target, (err) => this.classify(err, hostKeys));
    } catch (err) {
      this.noteFailure();
      this.options.events.failed(this.endpoint, err instanceof ExecutorError ? err.kind : 'connect');
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
    if (this.wasConnected) this.options.events.reconnected(this.endpoint);
    this.wasConnected = true;
    this.options.log('ssh connected', { target: this.target });
    return client;
  }

  /** A handshake failure as the user should see it: permanent when retrying cannot help. */
  private classify(err: Error & { level?: string }, hostKeys: HostKeyCheck): ExecutorError {
    if (/host denied|verification failed/i.test(err.message)) return hostKeys.mismatch();
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
}

/**
 * The SSH handshake on `sock` (in `config`), settled by the first of ready, error (through `fail`) or close.
 * readyTimeout limits it; ssh2 clears that timer when the socket closes, and a close in the key exchange comes
 * without an error, so a close settles the wait too. The error listener stays: ssh2 may emit more (a timeout,
 * then "Connection lost"), and an unheard one throws.
 */
function handshake(
  client: Client,
  config: ConnectConfig,
  target: string,
  fail: (err: Error & { level?: string }) => ExecutorError,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error & { level?: string }) => reject(fail(err));
    client.on('error', onError);
    client.once('ready', () => {
      client.off('error', onError);
      resolve();
    });
    client.once('close', () =>
      reject(new ExecutorError(`cannot connect to ${target}: the connection closed during the handshake`, 'connect')),
    );
    client.connect(config);
  });
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
      `identity file ${file} cannot be read (${unreadable(err)}): give the path of a private key readable ` +
        `by the worker's user`,
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
      `identity file ${file} is not a private key ssh2 can ` +
        `read${key instanceof Error ? ` (${key.message})` : ''}: give the path of an OpenSSH private key ` +
        `(ssh-keygen -t ed25519 makes one)`,
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
