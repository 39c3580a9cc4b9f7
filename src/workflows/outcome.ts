/**
 * How a LaunchGlidein run ends, as pure functions of what happened: whether it counts as cancelled, how teardown
 * stops the glidein, the end reason, and then how the execution closes (phase, failure type). The workflow
 * function only gathers the facts and acts on the answer, so every combination has a unit test
 * (test/unit/outcome.test.ts) without a server.
 */
import { isCancellation } from '@temporalio/workflow';
import { FailureType } from '../common/failure-types';
import type { ShutdownMode } from '../common/types';
import { closingFailureType, failureType } from './closing-failure';

export interface EndFacts {
  /** What the work scope threw, if anything (a stop or drain interrupts it with a cancellation). */
  failure: unknown;
  /** A stop or drain requested by signal (or carried from the previous run). */
  shutdown?: ShutdownMode;
  /** The end reason monitoring set (lifetime, the glidein exited), if it ended by itself. */
  endReason?: string;
  /** The workflow itself was cancelled (its root scope). */
  cancelRequested: boolean;
  /** Behind patched('owned-lifecycle'); before it, a cancellation counted only when it surfaced as the failure. */
  owned: boolean;
}

export interface End {
  cancelled: boolean;
  /** The glidein's directory is another workflow's: nothing may be released. */
  conflict: boolean;
  /** How teardown stops the glidein: drain when asked to or at the end of its lifetime, else stop. */
  teardownMode: ShutdownMode;
  endReason?: string;
  /** The failure that is the run's fault: not the cancellation by which a stop or drain interrupted the work. */
  fault?: unknown;
}

export function decideEnd(facts: EndFacts): End {
  const { failure, shutdown, owned } = facts;
  const cancelled = owned
    ? facts.cancelRequested && !shutdown
    : failure !== undefined && isCancellation(failure) && !shutdown;
  let endReason = facts.endReason;
  if (cancelled) endReason = 'cancelled';
  else if (shutdown && (failure === undefined || isCancellation(failure)))
    endReason ??= shutdown === 'drain' ? 'drained' : 'stopped';
  else if (failure) endReason = `failed: ${messageOf(failure)}`;
  return {
    cancelled,
    conflict: failureType(failure) === FailureType.GlideinIdConflict,
    teardownMode: shutdown ?? (facts.endReason === 'lifetime' ? 'drain' : 'stop'),
    endReason,
    fault: failure !== undefined && !(isCancellation(failure) && shutdown) ? failure : undefined,
  };
}

export type Close =
  { phase: 'cancelled' } | { phase: 'failed'; failureType: string; message: string } | { phase: 'done' };

/** How the execution closes once teardown has run (or been skipped); `stillHeld` names what it could not release. */
export function decideClose(end: End, stillHeld: string[]): Close {
  if (end.cancelled) return { phase: 'cancelled' };
  const teardownFailed = stillHeld.length > 0;
  if (end.fault === undefined && !teardownFailed) return { phase: 'done' };
  const what = end.fault !== undefined ? messageOf(end.fault) : 'teardown left resources held';
  return {
    phase: 'failed',
    failureType: closingFailureType(end.fault, teardownFailed),
    message: `${what}${teardownFailed ? `; still held after teardown: ${stillHeld.join(', ')}` : ''}`,
  };
}

/** An error's message with its cause's, once. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error && cause.message && !err.message.includes(cause.message)
      ? `${err.message}: ${cause.message}`
      : err.message;
  }
  return String(err);
}
