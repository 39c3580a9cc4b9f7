/**
 * The step kit every activity uses: the SDK's own context functions (activities always run in one: the worker's,
 * or MockActivityEnvironment in tests and benchmarks), plus the one thing the SDK has not: heartbeats that go on,
 * with the latest details, while a step waits on something that does not report (a site command, a shared query,
 * a start slot).
 */
import { activityInfo, cancellationSignal, Context, heartbeat as sdkHeartbeat, log, sleep } from '@temporalio/activity';
import { redactResult } from '../common/redact';

export { activityInfo, cancellationSignal, log, sleep };

const latest = new WeakMap<Context, unknown>();

/**
 * Heartbeats with these details, redacted (the server keeps the last ones, and a timed-out attempt's failure carries
 * them), and keeps them as the ones a heartbeat while waiting repeats.
 */
export function heartbeat(details?: unknown): void {
  const clean = redactResult(details);
  latest.set(Context.current(), clean);
  sdkHeartbeat(clean);
}

/**
 * Runs `body`, heartbeating every `everyMs` meanwhile: with `details()` when given, else with the latest details
 * this activity heartbeat.
 */
export async function heartbeatWhile<T>(everyMs: number, body: () => Promise<T>, details?: () => unknown): Promise<T> {
  const context = Context.current();
  const timer = setInterval(() => {
    const now = details ? redactResult(details()) : latest.get(context);
    if (details) latest.set(context, now);
    context.heartbeat(now);
  }, everyMs);
  try {
    return await body();
  } finally {
    clearInterval(timer);
  }
}

/** The workflow this activity works for, as a glidein's claim records it. */
export function activityOwner(): { namespace: string; workflowId: string } {
  const info = activityInfo();
  return {
    namespace: info.workflowNamespace ?? info.namespace,
    workflowId: info.workflowExecution?.workflowId ?? `(activity ${info.activityId})`,
  };
}
