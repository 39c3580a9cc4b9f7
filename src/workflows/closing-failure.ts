/**
 * How a failed LaunchGlidein names its failure: pure functions of the failure chain, kept out of the workflow
 * function so that the choice has a test of its own.
 */
import { ApplicationFailure, TimeoutFailure } from '@temporalio/common';
import { FailureType } from '../common/failure-types';

/**
 * The type a failed run closes with: the fault's own type when there was a fault (whatever teardown did after
 * it), TeardownIncomplete when the only trouble was a teardown that left something held.
 */
export function closingFailureType(fault: unknown, teardownFailed: boolean): string {
  if (fault !== undefined) return failureType(fault)!;
  return teardownFailed ? FailureType.TeardownIncomplete : FailureType.StepError;
}

/** The first typed ApplicationFailure in the cause chain, or how it timed out. */
export function failureType(err: unknown): string | undefined {
  if (err === undefined) return undefined;
  let e: unknown = err;
  let timedOut = false;
  while (e instanceof Error) {
    if (e instanceof ApplicationFailure && e.type) return e.type;
    if (e instanceof TimeoutFailure) timedOut = true;
    e = (e as { cause?: unknown }).cause;
  }
  return timedOut ? FailureType.ActivityTimedOut : FailureType.StepError;
}
