/**
 * For bench/engine-backends.ts: n activities one after another. It returns each one's round trip by the workflow's
 * own clock, which is too coarse here (a flat 100 ms); the bench reads the round trips from the history instead.
 */
import { proxyActivities } from '@temporalio/workflow';

const { noop } = proxyActivities<{ noop(): Promise<void> }>({ startToCloseTimeout: '30s' });

/** Workflow time from scheduling each activity to the task that sees it done (ms). */
export async function roundTrips(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = Date.now();
    await noop();
    out.push(Date.now() - t);
  }
  return out;
}
