/**
 * A glidein lifecycle driven straight through the real activities (MockActivityEnvironment, one per call,
 * tagged with the glidein id and the activity type), retried as LaunchGlidein's retry policy would (1 s, ×2,
 * a few attempts; non-retryable failures are not retried). Used where a benchmark needs many concurrent
 * lifecycles through one SshPool without a Temporal server in the measurement.
 */
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { GlideinActivities } from '../src/activities';
import type { GlideinRef } from '../src/common/types';
import { sleep } from './lib';

const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

export interface LifecycleOutcome {
  glideinId: string;
  ok: boolean;
  retries: number;
  /** Why attempts were retried: "<activity>: <first line of the error>". */
  retried: string[];
  errors: string[];
  /** Wall ms per activity (last attempt). */
  steps: Record<string, number>;
}

/** Every `parties` callers wait at the barrier until all have arrived. */
export class Barrier {
  private arrived = 0;
  private release!: () => void;
  private readonly all = new Promise<void>((r) => (this.release = r));
  constructor(private readonly parties: number) {
    if (parties === 0) this.release();
  }
  arrive(): Promise<void> {
    if (++this.arrived >= this.parties) this.release();
    return this.all;
  }
}

export class ActivityLifecycle {
  readonly outcome: LifecycleOutcome;
  private seq = 0;

  constructor(
    private readonly acts: GlideinActivities,
    readonly ref: GlideinRef,
  ) {
    this.outcome = { glideinId: ref.glideinId, ok: true, retries: 0, retried: [], errors: [], steps: {} };
  }

  /** One activity, with retries like the workflow's (maxAttempts, 1 s initial, ×2). */
  async call<K extends keyof GlideinActivities>(
    name: K,
    args: Parameters<GlideinActivities[K]>,
    maxAttempts = 4,
  ): Promise<Awaited<ReturnType<GlideinActivities[K]>>> {
    for (let attempt = 1; ; attempt++) {
      const env = new MockActivityEnvironment(
        {
          activityType: name,
          activityId: String(++this.seq),
          attempt,
          workflowExecution: { workflowId: this.ref.glideinId, runId: 'bench' },
        },
        { logger: quietLogger },
      );
      const t0 = Date.now();
      try {
        const fn = this.acts[name] as (...a: unknown[]) => Promise<Awaited<ReturnType<GlideinActivities[K]>>>;
        const r = (await env.run(fn, ...(args as unknown[]))) as Awaited<ReturnType<GlideinActivities[K]>>;
        this.outcome.steps[name] = Date.now() - t0;
        return r;
      } catch (err) {
        const nonRetryable = err instanceof ApplicationFailure && err.nonRetryable;
        if (nonRetryable || attempt >= maxAttempts) throw err;
        this.outcome.retries++;
        this.outcome.retried.push(
          `${name}: ${(err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 200)}`,
        );
        await sleep(Math.min(30_000, 1000 * 2 ** (attempt - 1)));
      }
    }
  }

  /**
   * The setup steps in LaunchGlidein's order (no Slurm): tunnel, outbound check, cvmfs, container, preload, glidein,
   * registration.
   */
  async setup(registrationTimeoutMs = 60_000): Promise<void> {
    const ref = this.ref;
    await this.call('openTunnel', [ref]);
    await this.call('verifyOutbound', [ref]);
    await this.call('mountCvmfs', [ref], 3);
    await this.call('startContainer', [ref]);
    await this.call('preloadProxychains', [ref]);
    await this.call('startGlidein', [ref]);
    await this.call('confirmRegistration', [ref, registrationTimeoutMs], 3);
  }

  /** One monitor round of `checks` checks `intervalMs` apart. */
  async monitor(checks: number, intervalMs: number): Promise<void> {
    const now = Date.now();
    const report = await this.call(
      'monitorGlidein',
      [this.ref, { deadline: now + 3_600_000, roundEnd: now + (checks - 1) * intervalMs, intervalMs }],
      1,
    );
    if (report.end !== 'round-complete') throw new Error(`monitor ended with ${report.end}: ${report.detail ?? ''}`);
  }

  /** Teardown in reverse, each inverse retried, going on past failures (as the workflow does). */
  async teardown(mode: 'stop' | 'drain' = 'stop'): Promise<void> {
    const ref = this.ref;
    const steps: Array<() => Promise<unknown>> = [
      () => this.call('stopGlidein', [ref, mode], 5),
      () => this.call('stopContainer', [ref], 5),
      () => this.call('unmountCvmfs', [ref], 5),
      () => this.call('closeTunnel', [ref], 5),
    ];
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        this.fail(err);
      }
    }
  }

  fail(err: unknown): void {
    this.outcome.ok = false;
    this.outcome.errors.push(err instanceof Error ? err.message : String(err));
  }
}
