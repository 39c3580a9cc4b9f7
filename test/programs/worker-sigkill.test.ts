/**
 * Crash matrix: the worker runs as its own process and is SIGKILLed at phase boundaries of a lifecycle, in
 * the middle of the long activities (the tunnel coming up, between two mounts, registration polling) and of
 * monitoring; a new worker process picks the lifecycle up. At every point the site holds at most
 * one of each resource (never a second tunnel, mount, instance or glidein), after recovery exactly one, and
 * after teardown nothing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { LaunchGlidein } from '../../src/workflows';
import { drainSignal, statusQuery } from '../../src/workflows/messages';
import { localSiteWith } from '../../sandbox/sites';
import { createTestEnv } from '../../sandbox/temporal';
import { SITE_PATHS, siteMounts, siteProcesses } from '../../sandbox/local-site';
import { expectNoSecretsInHistories, startWorkerProcess, type WorkerProcess } from '../support/worker-process';
import { EMPTY, expectAtMostOne, footprint } from '../../sandbox/site-state';
import { completedActivities } from '../support/history';

const TASK_QUEUE = `crash-${process.pid}`;
let env: TestWorkflowEnvironment;
let worker: WorkerProcess | undefined;

function startWorker(sitesDir?: string): WorkerProcess {
  return startWorkerProcess(env, TASK_QUEUE, { LOG_LEVEL: 'error', ...(sitesDir ? { SITES_DIR: sitesDir } : {}) });
}

/** SIGKILL: the worker process dies as in a crash, mid-whatever it was doing. */
async function killWorker(): Promise<void> {
  const w = worker;
  worker = undefined;
  await w?.stop('SIGKILL');
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 120_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * A new worker takes the lifecycle over: it reaches monitoring with no failed step and exactly one of each
 * resource, and a drain leaves nothing.
 */
async function recoverAndDrain(id: string, handle: WorkflowHandle, sitesDir?: string): Promise<void> {
  worker = startWorker(sitesDir);
  const status = await until('monitoring after the restart', async () => {
    const s = await handle.query(statusQuery);
    return s.phase === 'monitoring' && s;
  });
  expect(status.steps.filter((s) => s.status === 'failed')).toEqual([]);
  const held = await footprint(id);
  expect([
    held.tunnels.length,
    held.glideins.length,
    held.instances.length,
    held.mounts.length,
    held.ads.length,
  ]).toEqual([1, 1, 1, 2, 1]);
  await handle.signal(drainSignal);
  expect((await handle.result()).endReason).toBe('drained');
  await killWorker();
  expect(await footprint(id)).toEqual(EMPTY);
}

beforeAll(async () => {
  env = await createTestEnv();
}, 120_000);

afterAll(async () => {
  await killWorker();
  if (env) await expectNoSecretsInHistories(env);
  await env?.teardown();
}, 60_000);

describe('crash matrix: the worker process is killed, a new one finishes the lifecycle', () => {
  // Every boundary, plain and JSC-shaped, is proved on the fake site (test/fake-site/crash-matrix.test.ts); here those
  // that hold a real process across a real SIGKILL: the ssh tunnel, and the glidein in its container.
  it.each([['openTunnel'], ['startGlidein']])(
    'killed right after %s completed: recovers to exactly one of everything, drains to nothing',
    async (boundary) => {
      const id = `wf-crash-${boundary.toLowerCase()}-${Date.now()}`;
      worker = startWorker();
      const handle = await env.client.workflow.start(LaunchGlidein, {
        taskQueue: TASK_QUEUE,
        workflowId: id,
        args: [{ site: 'local', lifetime: '10m' }],
      });
      await until(`${boundary} to complete`, async () => (await completedActivities(handle)).includes(boundary));
      await killWorker();
      expectAtMostOne(await footprint(id));

      await recoverAndDrain(id, handle);
    },
    240_000,
  );

  it.each([['stopContainer']])(
    'killed during teardown right after %s completed: a new worker finishes the teardown, nothing is left',
    async (boundary) => {
      const id = `wf-crash-td-${boundary.toLowerCase()}-${Date.now()}`;
      worker = startWorker();
      const handle = await env.client.workflow.start(LaunchGlidein, {
        taskQueue: TASK_QUEUE,
        workflowId: id,
        args: [{ site: 'local', lifetime: '10m' }],
      });
      await until('monitoring', async () => (await handle.query(statusQuery)).phase === 'monitoring');
      await handle.signal(drainSignal);
      await until(`${boundary} to complete`, async () => (await completedActivities(handle)).includes(boundary));
      await killWorker();
      expectAtMostOne(await footprint(id));
      worker = startWorker();
      expect((await handle.result()).endReason).toBe('drained');
      await killWorker();
      expect(await footprint(id)).toEqual(EMPTY);
    },
    240_000,
  );

  it('killed in the middle of monitoring: the new worker monitors the same glidein on, no duplicates', async () => {
    const id = `wf-crash-monitor-${Date.now()}`;
    worker = startWorker();
    const handle = await env.client.workflow.start(LaunchGlidein, {
      taskQueue: TASK_QUEUE,
      workflowId: id,
      args: [{ site: 'local', lifetime: '10m' }],
    });
    await until('monitoring', async () => (await handle.query(statusQuery)).phase === 'monitoring');
    const before = await footprint(id);
    await new Promise((r) => setTimeout(r, 1_000)); // the monitor activity is running now
    await killWorker();
    worker = startWorker();
    // The monitor's heartbeat times out and it is retried on the new worker; the glidein was never touched.
    // Shown by the monitor activity itself: its pending attempt runs on the new worker and has heartbeated a check.
    const newWorker = `${worker!.child.pid}@`;
    await until(
      'a monitor check by the new worker',
      async () => {
        const pending = (await handle.describe()).raw.pendingActivities?.find(
          (a) => a.activityType?.name === 'monitorGlidein',
        );
        if (!pending?.lastWorkerIdentity?.startsWith(newWorker)) return false;
        const data = pending.heartbeatDetails?.payloads?.[0]?.data;
        return !!data && (JSON.parse(Buffer.from(data).toString('utf8')) as { checks?: number }).checks! >= 1;
      },
      90_000,
    );
    expect(await footprint(id)).toEqual(before);
    await handle.signal(drainSignal);
    expect((await handle.result()).endReason).toBe('drained');
    await killWorker();
    expect(await footprint(id)).toEqual(EMPTY);
  }, 240_000);

  /**
   * Killed while an activity is running, at a point the site shows: the retry on the new worker (after the
   * heartbeat timeout) must find what the dead attempt did, or is still doing, and never do it twice.
   */
  async function crashMidActivity(opts: {
    name: string;
    activity: string;
    sitesDir?: string;
    at: string;
    reached: (id: string, handle: WorkflowHandle) => Promise<boolean>;
  }) {
    const id = `wf-crash-mid-${opts.name}-${Date.now()}`;
    worker = startWorker(opts.sitesDir);
    const handle = await env.client.workflow.start(LaunchGlidein, {
      taskQueue: TASK_QUEUE,
      workflowId: id,
      args: [{ site: 'local', lifetime: '10m' }],
    });
    await until(opts.at, () => opts.reached(id, handle), 120_000, 15);
    await killWorker();
    expect(await completedActivities(handle)).not.toContain(opts.activity); // killed in the middle, not after it
    expectAtMostOne(await footprint(id));

    await recoverAndDrain(id, handle, opts.sitesDir);
    return handle;
  }

  it('killed during openTunnel, its ssh started but not up: the retry takes that tunnel over, no second', async () => {
    await crashMidActivity({
      name: 'tunnel',
      activity: 'openTunnel',
      at: 'the tunnel ssh on the worker node',
      reached: async () => siteProcesses().some((p) => p.argv[0] === 'ssh' && / -D 127\.0\.0\.1:1080 /.test(p.cmdline)),
    });
  }, 240_000);

  it('killed during mountCvmfs, the second mount under way: the retry waits for it, mounts nothing twice', async () => {
    // Each mount takes 2 s, as a first mount filling cvmfs's cache does (a knob of the stand-in mountrepo).
    const knob = path.join(SITE_PATHS.cvmfsexecDir, '.standin-mount-seconds');
    fs.writeFileSync(knob, '2\n', { mode: 0o644 });
    try {
      await crashMidActivity({
        name: 'mount',
        activity: 'mountCvmfs',
        at: 'the first repository mounted',
        reached: async () => siteMounts().some((m) => m.target === `${SITE_PATHS.cvmfsDist}/cms.cern.ch`),
      });
    } finally {
      fs.rmSync(knob, { force: true });
    }
  }, 240_000);

  it('killed while confirmRegistration polls: the retry polls to the same deadline, one glidein, one ad', async () => {
    // The glidein's first update comes 8 s after its start (HTCondor's UPDATE_OFFSET): registration takes polls.
    const sitesDir = localSiteWith((p) => (p.glidein.config.UPDATE_OFFSET = '8'));
    try {
      const handle = await crashMidActivity({
        name: 'registration',
        activity: 'confirmRegistration',
        sitesDir,
        at: 'confirmRegistration to have polled',
        reached: async (_id, h) => {
          const pending = (await h.describe()).raw.pendingActivities ?? [];
          return pending.some((a) => a.activityType?.name === 'confirmRegistration' && a.heartbeatDetails);
        },
      });
      // It completed in a later attempt than the one that was killed.
      const events = (await handle.fetchHistory()).events ?? [];
      const scheduled = events.find(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'confirmRegistration',
      );
      const started = events.find(
        (e) => String(e.activityTaskStartedEventAttributes?.scheduledEventId) === String(scheduled?.eventId),
      );
      expect(started?.activityTaskStartedEventAttributes?.attempt).toBeGreaterThan(1);
    } finally {
      fs.rmSync(sitesDir, { recursive: true, force: true });
    }
  }, 240_000);
});
