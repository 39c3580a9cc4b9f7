/**
 * How activity errors become Temporal failures: permanent faults (bad profile, refused host key or login, a
 * missing image) are non-retryable with a type an operator can search for; everything else retries.
 */
import { cancellationSignal } from './kit';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { redact, redactDeep } from '../common/redact';
import { CommandFailedError, ExecutorError, type TransportFailure } from '../remote/executor';
import { SiteProfileError } from '../site/load';
import { FailureType, PermanentFault, type FailureTypeName } from '../common/failure-types';
import { UNSAFE_PATH_EXIT } from '../site/scripts/prelude';

const TRANSPORT_FAILURES: Record<TransportFailure, FailureTypeName> = {
  'host-key': FailureType.HostKeyRejected,
  auth: FailureType.AuthRejected,
  connect: FailureType.SshConnect,
  channel: FailureType.SshChannel,
  timeout: FailureType.SshTimeout,
  aborted: FailureType.SshAborted,
};

/** What an activity step throws, as the failure Temporal records; `cancelled`: the activity was cancelled meanwhile. */
export function toFailure(step: string, err: unknown, cancelled = false): Error {
  // Raised as a failure already (our own code, or a log tail in the message): redacted all the same.
  if (err instanceof ApplicationFailure || err instanceof CancelledFailure) return redactFailure(err, 0);
  if (cancelled) return new CancelledFailure(`${step} cancelled`);
  const message = redact(`${step}: ${err instanceof Error ? err.message : String(err)}`);
  if (err instanceof PermanentFault) return ApplicationFailure.nonRetryable(message, err.type);
  if (err instanceof SiteProfileError) return ApplicationFailure.nonRetryable(message, FailureType.InvalidSiteProfile);
  if (err instanceof ExecutorError) {
    const type = TRANSPORT_FAILURES[err.kind];
    return err.permanent ? ApplicationFailure.nonRetryable(message, type) : ApplicationFailure.retryable(message, type);
  }
  // A site script refused a path a co-tenant could write or swap: no retry makes it safe.
  if (err instanceof CommandFailedError && err.result.code === UNSAFE_PATH_EXIT)
    return ApplicationFailure.nonRetryable(message, FailureType.SitePathUnsafe);
  if (err instanceof CommandFailedError) return ApplicationFailure.retryable(message, FailureType.CommandFailed);
  return ApplicationFailure.retryable(message, FailureType.StepError);
}

/** How far a failure's cause chain is rebuilt; the rest is cut, not sent unredacted. */
const MAX_CAUSES = 5;

/**
 * A redacted rebuild of an error, keeping its class where Temporal's failure converter looks at it. Rebuilt rather
 * than edited: the fields are readonly, and a failure that came off the wire carries its proto in `failure`, which
 * the converter would send as is.
 */
function redactFailure(err: Error, depth: number): Error {
  const cause = err.cause instanceof Error && depth < MAX_CAUSES ? redactFailure(err.cause, depth + 1) : undefined;
  let out: Error;
  if (err instanceof ApplicationFailure) {
    out = ApplicationFailure.create({
      message: redact(err.message),
      type: err.type ?? undefined,
      nonRetryable: err.nonRetryable ?? undefined,
      details: err.details ? (redactDeep(err.details) as unknown[]) : undefined,
      cause,
      nextRetryDelay: err.nextRetryDelay ?? undefined,
      category: err.category ?? undefined,
    });
  } else if (err instanceof CancelledFailure) {
    out = new CancelledFailure(
      redact(err.message),
      err.details ? (redactDeep(err.details) as unknown[]) : undefined,
      cause,
    );
  } else {
    // The converter sends any other error as its name, message, stack and cause.
    out = new Error(redact(err.message), { cause });
    out.name = err.name;
  }
  out.stack = err.stack === undefined ? undefined : redact(err.stack);
  return out;
}

/** Runs an activity body and converts what it throws. */
export async function asStep<T>(step: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    throw toFailure(step, err, cancellationSignal().aborted);
  }
}
