/**
 * How activity errors become Temporal failures: permanent faults (bad profile, refused host key or login, a
 * missing image) are non-retryable with a type an operator can search for; everything else retries.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { redact } from '../common/redact';
import { CommandFailedError, ExecutorError } from '../remote/executor';
import { SiteProfileError } from '../site/load';

/** A fault that retrying cannot fix. */
export class PermanentFault extends Error {
  override name = 'PermanentFault';
  constructor(
    message: string,
    readonly type: string,
  ) {
    super(message);
  }
}

export function toFailure(step: string, err: unknown): Error {
  if (err instanceof ApplicationFailure || err instanceof CancelledFailure) return err;
  if (cancelled()) return new CancelledFailure(`${step} cancelled`);
  const message = redact(`${step}: ${err instanceof Error ? err.message : String(err)}`);
  if (err instanceof PermanentFault) return ApplicationFailure.nonRetryable(message, err.type);
  if (err instanceof SiteProfileError) return ApplicationFailure.nonRetryable(message, 'InvalidSiteProfile');
  if (err instanceof ExecutorError) {
    const type = { 'host-key': 'HostKeyRejected', auth: 'AuthRejected' }[err.kind as string] ?? `Ssh${err.kind[0].toUpperCase()}${err.kind.slice(1)}`;
    return err.permanent ? ApplicationFailure.nonRetryable(message, type) : ApplicationFailure.retryable(message, type);
  }
  if (err instanceof CommandFailedError) return ApplicationFailure.retryable(message, 'CommandFailed');
  return ApplicationFailure.retryable(message, 'StepError');
}

/** Runs an activity body and converts what it throws. */
export async function asStep<T>(step: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    throw toFailure(step, err);
  }
}

function cancelled(): boolean {
  try {
    return Context.current().cancellationSignal.aborted;
  } catch {
    return false;
  }
}
