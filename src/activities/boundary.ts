/**
 * The activity boundary: every activity the worker runs is wrapped here (createActivities), so that what it returns
 * is redacted like what it throws. A result is recorded in history and flows on into the status, the memo and the
 * workflow's result: a glidein's log tail in a monitor report must not carry its token there.
 */
import { redactResult } from '../common/redact';
import { toFailure } from './to-failure';
import { cancellationSignal } from './kit';

type Activity = (...args: never[]) => Promise<unknown>;

/**
 * `activities`, each returning its result redacted (every string, however deep; the shape unchanged) and throwing
 * its failure redacted (toFailure: a failure asStep already converted is rebuilt the same).
 */
export function atBoundary<T extends Record<string, Activity>>(activities: T): T {
  return Object.fromEntries(
    Object.entries(activities).map(([name, activity]) => [
      name,
      async (...args: never[]) => {
        try {
          return redactResult(await activity(...args));
        } catch (err) {
          throw toFailure(name, err, cancellationSignal().aborted);
        }
      },
    ]),
  ) as T;
}
