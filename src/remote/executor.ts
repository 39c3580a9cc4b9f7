/** The seam between activities and the site: run an argv somewhere and get its exit status and output. */

export interface RunOptions {
  env?: Readonly<Record<string, string>>;
  stdin?: string;
  /** Kill the command and fail after this long. */
  timeoutMs?: number;
  /** The activity's cancellation signal: aborting kills the command. */
  signal?: AbortSignal;
  /**
   * SSH only: forward our key agent on this one channel (the command can authenticate onwards with our key
   * while the channel is open; the key never leaves the worker).
   */
  forwardAgent?: boolean;
}

export interface CommandResult {
  /** Exit code, or null when the command died of a signal. */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface Executor {
  /** Where commands run, for messages: "glidein@127.0.0.2:2202 (via 127.0.0.1:2201)". */
  readonly target: string;
  run(argv: readonly string[], options?: RunOptions): Promise<CommandResult>;
}

/** Why a command could not be run at all (as opposed to running and failing). */
export type TransportFailure = 'connect' | 'host-key' | 'auth' | 'channel' | 'timeout' | 'aborted';

export class ExecutorError extends Error {
  override name = 'ExecutorError';
  constructor(
    message: string,
    readonly kind: TransportFailure,
    /** Permanent faults (unknown host key, refused key) must not be retried. */
    readonly permanent = false,
  ) {
    super(message);
  }
}

/** A command that ran and exited non-zero (or by a signal). */
export class CommandFailedError extends Error {
  override name = 'CommandFailedError';
  constructor(
    readonly what: string,
    readonly target: string,
    readonly result: CommandResult,
  ) {
    const status = result.code === null ? `was killed by ${result.signal}` : `exited with ${result.code}`;
    const detail = lastLines(result.stderr || result.stdout, 6);
    super(`${what} on ${target} ${status}${detail ? `: ${detail}` : ''}`);
  }
}

/** Run and demand exit 0. */
export async function runChecked(
  executor: Executor,
  what: string,
  argv: readonly string[],
  options?: RunOptions,
): Promise<CommandResult> {
  const result = await executor.run(argv, options);
  if (result.code !== 0) throw new CommandFailedError(what, executor.target, result);
  return result;
}

export function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n').trim();
}

/** Keeps the first `limit` characters of a stream's output; commands that flood stdout can't exhaust memory. */
export class OutputBuffer {
  private chunks: string[] = [];
  private size = 0;
  private truncated = false;
  constructor(private readonly limit = 1 << 20) {}
  push(chunk: Buffer | string): void {
    if (this.size >= this.limit) {
      this.truncated = true;
      return;
    }
    const text = chunk.toString();
    this.chunks.push(text);
    this.size += text.length;
  }
  toString(): string {
    const text = this.chunks.join('');
    return this.truncated ? `${text.slice(0, this.limit)}\n[output truncated]` : text;
  }
}
