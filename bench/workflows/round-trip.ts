/**
 * For bench/engine-backends.ts: n no-op activities one after another. The bench reads each one's round trip from
 * the history (server time): the workflow's own clock is too coarse for it.
 */
import { proxyActivities } from '@temporalio/workflow';

const { noop } = proxyActivities<{ noop(): Promise<void> }>({ startToCloseTimeout: '30s' });

export async function roundTrips(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await noop();
}
