/**
 * SSH executor on ssh2: one kept connection per host, commands as channels on it (login nodes throttle and
 * ban hosts that open many connections), queued below sshd's MaxSessions, host keys checked against
 * known_hosts and never accepted on first sight, reconnect with backoff after a drop, and an optional jump
 * through another connection (forwardOut), which is how the worker node is reached from outside.
 *
 * Connecting lives in ssh-connect.ts, running commands on a connection in ssh-channel.ts; this file puts
 * them together behind the Executor seam and keeps one connection per host.
 */
import type { Duplex } from 'node:stream';
import { ExecutorError, type CommandResult, type Executor, type RunOptions } from './executor';
import { commandLine } from './quote';
import { SshChannels } from './ssh-channel';
import { NO_SSH_EVENTS, SshLink, describeTarget, type ConnectOptions, type SshTarget } from './ssh-connect';

export { describeTarget, type SshEvents, type SshTarget } from './ssh-connect';

export interface SshOptions extends Partial<ConnectOptions> {
  /**
   * Concurrent exec channels per connection. OpenSSH's MaxSessions is 10 by default, and sshd frees a session
   * only in the main-loop pass after the client's channel close: a channel opened right after another closed
   * can find both counted. At most half of MaxSessions never meets "no more sessions".
   */
  maxChannels?: number;
}

const DEFAULTS = {
  maxChannels: 5,
  connectTimeoutMs: 20_000,
  keepaliveIntervalMs: 15_000,
  backoffMs: { initial: 500, max: 30_000 },
};

function targetKey(t: SshTarget): string {
  return t.jump ? `${targetKey(t.jump)}>${t.user}@${t.host}:${t.port}` : `${t.user}@${t.host}:${t.port}`;
}

/** One kept SSH connection and the channels on it. */
export class SshConnection implements Executor {
  readonly target: string;
  private readonly link: SshLink;
  private readonly channels: SshChannels;

  constructor(spec: SshTarget, options: Required<SshOptions>, via?: SshConnection) {
    this.target = describeTarget(spec);
    this.link = new SshLink(spec, this.target, options, via);
    this.channels = new SshChannels(this.target, options.maxChannels);
  }

  /** TCP connections opened so far (tests and benchmarks count them). */
  get connects(): number {
    return this.link.connects;
  }

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
    const line = commandLine(argv, opts.env);
    const signal = composeSignal(opts.signal, opts.timeoutMs);
    try {
      const client = await this.link.connected(signal);
      return await this.channels.run(client, line, {
        stdin: opts.stdin,
        signal,
        forwardAgent: opts.forwardAgent === true,
      });
    } catch (err) {
      if (signal?.aborted && !(err instanceof ExecutorError && err.permanent)) {
        // AbortSignal.timeout aborts with a TimeoutError (its timer may fire a millisecond before a Date.now()
        // deadline).
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
  forward(host: string, port: number, signal?: AbortSignal): Promise<Duplex> {
    return this.link.forward(host, port, signal);
  }

  close(): void {
    this.link.close();
  }
}

/** Keeps one SshConnection per host (and jump chain) for the life of the worker. */
export class SshPool {
  private readonly connections = new Map<string, SshConnection>();
  private readonly options: Required<SshOptions>;

  constructor(options: SshOptions = {}) {
    this.options = { ...DEFAULTS, log: () => undefined, events: NO_SSH_EVENTS, ...options };
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

function composeSignal(signal: AbortSignal | undefined, timeoutMs: number | undefined): AbortSignal | undefined {
  const signals = [signal, timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined].filter((s): s is AbortSignal => !!s);
  if (signals.length === 0) return undefined;
  return signals.length === 1 ? signals[0] : AbortSignal.any(signals);
}
