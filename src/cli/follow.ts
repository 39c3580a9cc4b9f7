/**
 * `glidein launch --follow`: a live view of a lifecycle's setup, one line per step with a spinner while it runs and
 * its time once done (listr2's default renderer on a terminal, plain lines otherwise), ending with the glidein's
 * registration or the error. The steps come from the workflow's status query, polled: the view is a reader of the
 * workflow, never a part of it, so closing it changes nothing.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { Listr, type ListrTask } from 'listr2';
import type { StepOutcome } from '../common/types';
import { statusQuery, type GlideinStatus } from '../workflows/messages';
import { setupOrder, type StepName } from '../workflows/steps';
import { forTerminal, oneLine } from './terminal';
import { closedOutcome, type ClosedOutcome } from './workflow-outcome';

export interface FollowOptions {
  /** Render for a terminal (spinners, redraws) or as plain lines. */
  tty: boolean;
  /** Render nothing (--json: stdout is the result's alone). */
  silent?: boolean;
  pollMs?: number;
}

export interface FollowEnd {
  registered: boolean;
  status?: GlideinStatus;
  closed?: ClosedOutcome;
}

type Seen = { kind: 'ok' | 'failed'; outcome: StepOutcome } | { kind: 'skipped' } | { kind: 'ended' };

/** Watches one LaunchGlidein through its status query until it registers or ends. */
class Tracker {
  status?: GlideinStatus;
  closed?: ClosedOutcome;
  private waiters: Array<() => void> = [];
  private stopped = false;

  constructor(
    private readonly handle: WorkflowHandle,
    private readonly order: readonly StepName[],
    private readonly pollMs: number,
  ) {}

  async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const description = await this.handle.describe();
        if (description.status.name !== 'RUNNING') this.closed = await closedOutcome(this.handle);
        this.status = await this.handle.query(statusQuery);
      } catch {
        // A workflow whose first task has not run yet cannot answer; a closed one that failed before answering has
        // `closed` set. Either way, look again.
      }
      this.wake();
      if (this.closed || this.registered()) break;
      await new Promise((r) => setTimeout(r, this.pollMs));
    }
    this.stopped = true;
    this.wake();
  }

  stop(): void {
    this.stopped = true;
    this.wake();
  }

  registered(): boolean {
    return this.status?.steps.some((s) => s.step === 'confirmRegistration' && s.status === 'ok') ?? false;
  }

  /** Resolves once `step` has an outcome, a later step has started without it, or the workflow has ended. */
  async waitFor(step: StepName): Promise<Seen> {
    for (;;) {
      const seen = this.look(step);
      if (seen) return seen;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private look(step: StepName): Seen | undefined {
    const steps = this.status?.steps ?? [];
    const mine = [...steps].reverse().find((s) => s.step === step);
    if (mine?.status === 'ok' || mine?.status === 'failed') return { kind: mine.status, outcome: mine };
    if (!mine) {
      const later = this.order.slice(this.order.indexOf(step) + 1);
      if (steps.some((s) => later.includes(s.step))) return { kind: 'skipped' };
    }
    if (this.closed || this.stopped) return { kind: 'ended' };
    return undefined;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

const seconds = (ms: number | undefined) => `${((ms ?? 0) / 1000).toFixed(1)}s`;

export async function followLaunch(handle: WorkflowHandle, options: FollowOptions): Promise<FollowEnd> {
  // Every step a lifecycle can run before monitoring; those this site does not use are marked as such.
  const order = setupOrder({ slurm: true, credentials: true });
  const tracker = new Tracker(handle, order, options.pollMs ?? 500);
  const tasks: ListrTask[] = order.map((step) => ({
    title: step,
    task: async (_ctx, task) => {
      const seen = await tracker.waitFor(step);
      switch (seen.kind) {
        case 'ok': {
          // listr2 writes to the terminal itself: what came from the site is made safe here.
          const detail = seen.outcome.detail ? `: ${oneLine(seen.outcome.detail)}` : '';
          task.title = `${step} (${seconds(seen.outcome.durationMs)})${detail}`;
          return;
        }
        case 'skipped':
          // The terminal view shows the skip's message in place of the title; plain lines show both.
          task.skip(options.tty ? `${step}: not used at this site` : 'not used at this site');
          return;
        case 'failed':
          throw new Error(
            forTerminal(
              `${step} failed after ${seconds(seen.outcome.durationMs)}: ${seen.outcome.error ?? 'no reason given'}`,
            ),
          );
        case 'ended':
          throw new Error(
            forTerminal(
              `${step}: the lifecycle ended: ${tracker.closed?.message ?? tracker.closed?.status ?? 'stopped'}`,
            ),
          );
      }
    },
  }));
  const list = new Listr(tasks, {
    concurrent: false,
    exitOnError: true,
    renderer: options.silent ? 'silent' : 'default',
    fallbackRenderer: 'simple',
    fallbackRendererCondition: !options.silent && !options.tty,
    rendererOptions: { collapseSkips: true, showErrorMessage: true },
    fallbackRendererOptions: { timestamp: undefined },
  });
  const polling = tracker.run();
  try {
    await list.run();
  } catch {
    // The failing task has said why; what follows (teardown) is printed by the caller from the final status.
  } finally {
    tracker.stop();
    await polling;
  }
  return { registered: tracker.registered(), status: tracker.status, closed: tracker.closed };
}
