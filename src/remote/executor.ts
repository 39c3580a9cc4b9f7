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
  /**
   * The command leaves processes behind that must live as long as the glidein's allocation (a tunnel, a mount,
   * a container instance, the glidein). Where commands run as Slurm steps, whose processes end with the step,
   * such a command is handed to the holder job itself; elsewhere this changes nothing.
   */
  persists?: boolean;
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

/**
 * Keeps the first `limit` bytes of a stream's output (commands that flood stdout can't exhaust memory), decoded once.
 */
export class OutputBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private truncated = false;
  /** `limit`: bytes kept; the rest is dropped and the text says so. */
  constructor(private readonly limit = 1 << 20) {}
  push(chunk: Buffer | string): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const room = this.limit - this.size;
    if (bytes.length > room) this.truncated = true;
    if (room <= 0) return;
    const kept = bytes.length > room ? bytes.subarray(0, room) : bytes;
    this.chunks.push(kept);
    this.size += kept.length;
  }
  /** The output as text, decoded once: a character split across two chunks stays whole. */
  toString(): string {
    let all = Buffer.concat(this.chunks, this.size);
    if (this.truncated) {
      // Cut at a character boundary: back off over UTF-8 continuation bytes (10xxxxxx) and the lead byte before them.
      let end = all.length;
      let back = 0;
      while (back < 3 && end - back - 1 >= 0 && (all[end - back - 1] & 0xc0) === 0x80) back++;
      if (back > 0 || (end > 0 && all[end - 1] >= 0xc0)) {
        const lead = all[end - back - 1];
        const width = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
        if (width > back + 1) end = end - back - 1;
      }
      all = all.subarray(0, end);
    }
    const text = all.toString('utf8');
    return this.truncated ? `${text}\n[output truncated]` : text;
  }
}
