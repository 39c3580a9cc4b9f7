/**
 * Watches the worker's own connection to the Temporal server and says when it is lost and when it is back.
 *
 * The worker itself needs nothing of this: its polls, heartbeats and completions are retried by the SDK over the same
 * connection, which reconnects by itself. What an operator lacks without it is the word: a frontend killed, a network
 * cut or a database restart shows in the worker's log as a `Temporal server unreachable` line and, once its calls go
 * through again, as `Temporal server reachable again` with how long it was gone. One cheap call (GetSystemInfo) on
 * the worker's connection every `everyMs`; nothing else is logged while it answers.
 */
import type { NativeConnection } from '@temporalio/worker';

export interface ConnectionWatchLog {
  warn(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
}

export interface ConnectionWatchOptions {
  address: string;
  everyMs?: number;
  /** How long one check may take before it counts as unanswered (default 3 s). */
  timeoutMs?: number;
  now?: () => number;
}

export type ConnectionProbe = () => Promise<unknown>;

/**
 * The probe the worker uses: GetSystemInfo on its own connection. (The SDK retries an unavailable server for several
 * seconds inside one call, whatever its deadline; the watch's own timeout is what bounds a check.)
 */
export function systemInfoProbe(connection: NativeConnection): ConnectionProbe {
  return () => connection.workflowService.getSystemInfo({});
}

export class ConnectionWatch {
  private timer?: NodeJS.Timeout;
  private lostAt?: number;
  private checking = false;
  private stopped = false;

  constructor(
    private readonly probe: ConnectionProbe,
    private readonly log: ConnectionWatchLog,
    private readonly options: ConnectionWatchOptions,
  ) {}

  /** Whether the last check went unanswered. */
  get lost(): boolean {
    return this.lostAt !== undefined;
  }

  start(): this {
    this.schedule();
    return this;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** One check: logs a change of state, nothing otherwise. */
  async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    const now = this.options.now ?? Date.now;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeoutMs = this.options.timeoutMs ?? 3_000;
      const probe = this.probe();
      probe.catch(() => undefined);
      await Promise.race([
        probe,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      if (this.lostAt !== undefined) {
        const downMs = now() - this.lostAt;
        this.lostAt = undefined;
        this.log.info({ temporal: this.options.address, downMs }, 'Temporal server reachable again');
      }
    } catch (err) {
      if (this.lostAt === undefined) {
        this.lostAt = now();
        this.log.warn(
          { temporal: this.options.address, error: err instanceof Error ? err.message : String(err) },
          'Temporal server unreachable: polls, heartbeats and completions are retried until it answers',
        );
      }
    } finally {
      if (timer) clearTimeout(timer);
      this.checking = false;
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.check().finally(() => this.schedule());
    }, this.options.everyMs ?? 5_000);
    this.timer.unref();
  }
}
