/**
 * Crash matrix: the worker runs as its own process and is SIGKILLed at phase boundaries of a lifecycle and in
 * the middle of monitoring; a new worker process picks the lifecycle up. At every point the site holds at most
 * one of each resource (never a second tunnel, mount, instance or glidein), after recovery exactly one, and
 * after teardown nothing.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { LaunchGlidein } from '../../src/workflows';
import { drainSignal, statusQuery } from '../../src/workflows/messages';
import { createTestEnv } from '../helpers/temporal';
import { expectNoSecretsInHistories, startWorkerProcess, type WorkerProcess } from '../helpers/worker-process';
import { EMPTY, footprint, type GlideinFootprint } from '../workflow/site-state';

const TASK_QUEUE = `crash-${process.pid}`;
let env: TestWorkflowEnvironment;
let worker: WorkerProcess | undefined;

function startWorker(): WorkerProcess {
  return startWorkerProcess(env, TASK_QUEUE, { LOG_LEVEL: 'error' });
}

/** SIGKILL: the worker process dies as in a crash, mid-whatever it was doing. */
async function killWorker(): Promise<void> {
  const w = worker;
  worker = undefined;
  await w?.stop('SIGKILL');
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Activity types that have completed, in order, from the workflow's history (no worker needed to read it). */
async function completed(handle: WorkflowHandle): Promise<string[]> {
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = new Map<string, string>();
  const done: string[] = [];
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes) scheduled.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '');
    const c = e.activityTaskCompletedEventAttributes;
    if (c) done.push(scheduled.get(String(c.scheduledEventId)) ?? '?');
  }
  return done;
}

const atMostOne = (f: GlideinFootprint) => {
  expect(f.tunnels.length).toBeLessThanOrEqual(1);
  expect(f.glideins.length).toBeLessThanOrEqual(1);
  expect(f.instances.length).toBeLessThanOrEqual(1);
  expect(new Set(f.mounts).size).toBe(f.mounts.length);
  expect(f.ads.length).toBeLessThanOrEqual(1);
};

beforeAll(async () => {
  env = await createTestEnv();
}, 120_000);

afterAll(async () => {
  await killWorker();
  if (env) await expectNoSecretsInHistories(env);
  await env?.teardown();
}, 60_000);

describe('crash matrix: the worker process is killed, a new one finishes the lifecycle', () => {
  it.each([['openTunnel'], ['verifyOutbound'], ['mountCvmfs'], ['startContainer'], ['preloadProxychains'], ['startGlidein'], ['confirmRegistration']])(
    'killed right after %s completed: recovers to exactly one of everything, drains to nothing',
    async (boundary) => {
      const id = `wf-crash-${boundary.toLowerCase()}-${Date.now()}`;
      worker = startWorker();
      const handle = await env.client.workflow.start(LaunchGlidein, { taskQueue: TASK_QUEUE, workflowId: id, args: [{ site: 'local', lifetime: '10m' }] });
      await until(`${boundary} to complete`, async () => (await completed(handle)).includes(boundary));
      await killWorker();
      atMostOne(await footprint(id));

      worker = startWorker();
      const status = await until('monitoring after the restart', async () => {
        const s = await handle.query(statusQuery);
        return s.phase === 'monitoring' && s;
      });
      expect(status.steps.filter((s) => s.status === 'failed')).toEqual([]);
      const held = await footprint(id);
      expect([held.tunnels.length, held.glideins.length, held.instances.length, held.mounts.length, held.ads.length]).toEqual([1, 1, 1, 2, 1]);

      await handle.signal(drainSignal);
      expect((await handle.result()).endReason).toBe('drained');
      await killWorker();
      expect(await footprint(id)).toEqual(EMPTY);
    },
    240_000,
  );

  it.each([['stopGlidein'], ['stopContainer'], ['unmountCvmfs']])(
    'killed during teardown right after %s completed: a new worker finishes the teardown, nothing is left',
    async (boundary) => {
      const id = `wf-crash-td-${boundary.toLowerCase()}-${Date.now()}`;
      worker = startWorker();
      const handle = await env.client.workflow.start(LaunchGlidein, { taskQueue: TASK_QUEUE, workflowId: id, args: [{ site: 'local', lifetime: '10m' }] });
      await until('monitoring', async () => (await handle.query(statusQuery)).phase === 'monitoring');
      await handle.signal(drainSignal);
      await until(`${boundary} to complete`, async () => (await completed(handle)).includes(boundary));
      await killWorker();
      atMostOne(await footprint(id));
      worker = startWorker();
      expect((await handle.result()).endReason).toBe('drained');
      await killWorker();
      expect(await footprint(id)).toEqual(EMPTY);
    },
    240_000,
  );

  it('killed in the middle of monitoring: the new worker resumes monitoring the same glidein, no duplicates', async () => {
    const id = `wf-crash-monitor-${Date.now()}`;
    worker = startWorker();
    const handle = await env.client.workflow.start(LaunchGlidein, { taskQueue: TASK_QUEUE, workflowId: id, args: [{ site: 'local', lifetime: '10m' }] });
    await until('monitoring', async () => (await handle.query(statusQuery)).phase === 'monitoring');
    const before = await footprint(id);
    await new Promise((r) => setTimeout(r, 1_000)); // the monitor activity is running now
    await killWorker();
    worker = startWorker();
    // The monitor's heartbeat times out and it is retried on the new worker; the glidein was never touched.
    await until('a monitor check by the new worker', async () => {
      const events = (await handle.fetchHistory()).events ?? [];
      return events.some((e) => e.activityTaskTimedOutEventAttributes) || events.filter((e) => e.activityTaskStartedEventAttributes).length > 0;
    }, 60_000);
    expect(await footprint(id)).toEqual(before);
    await handle.signal(drainSignal);
    expect((await handle.result()).endReason).toBe('drained');
    await killWorker();
    expect(await footprint(id)).toEqual(EMPTY);
  }, 240_000);
});
