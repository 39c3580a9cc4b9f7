/** For bench/engine-backends.ts: n activities one after another; each one's round trip as the workflow sees it. */
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
