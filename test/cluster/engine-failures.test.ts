/**
 * The engine's own failures (TEMPORAL_BACKEND=cluster: two Temporal nodes on PostgreSQL, sandbox/cluster.ts), as
 * Temporal's pre-production checklist tells an operator to try them: a server node SIGKILLed and started again,
 * PostgreSQL stopped and started again, and the worker cut off the server for longer than every heartbeat timeout,
 * then healed. Each one strikes a lifecycle during setup, a lifecycle during monitoring, and a fleet while it grows.
 *
 * The worker runs as operators run it (src/worker.ts in its own process) against node 1's frontend; this suite's
 * client talks to node 2's. Afterwards, on the site: the lifecycle reaches monitoring (or the fleet its count) with
 * exactly one tunnel, mount set, instance, glidein and ad each, no glidein was ever doubled meanwhile, no workflow is
 * stuck (a drain ends each), and nothing is left. Where the worker's own connection was lost, its log says so, and
 * says when the server answered again.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { LaunchGlidein } from '../../src/workflows';
import { drainSignal, statusQuery } from '../../src/workflows/messages';
import { drainAllSignal, fleetStatusQuery, type FleetView } from '../../src/workflows/fleet-messages';
import { slotId } from '../../src/common/fleet-request';
import { localSiteWith } from '../../sandbox/sites';
import { createTestEnv } from '../../sandbox/temporal';
import {
  cutFrontend,
  healCuts,
  nodeRunning,
  postgresRunning,
  restartPostgres,
  startNode,
  startPostgres,
  stopNode,
  waitServing,
  NODES,
} from '../../sandbox/cluster';
import { sleep } from '../../sandbox/local-site';
import { expectNoSecretsInHistories, startWorkerProcess, type WorkerProcess } from '../support/worker-process';
import {
  EMPTY,
  expectAtMostOne,
  fleetPortLeases,
  fleetTunnels,
  footprint,
  localFleetSite,
  type GlideinFootprint,
} from '../../sandbox/site-state';
import { completedActivities } from '../support/history';

/**
 * The local site with monitoring reported every 10 s (one monitorGlidein activity each): a round after a
 * failure comes soon.
 */
const SITES = localSiteWith((p) => {
  p.monitor.reportEvery = '10s';
});

/** Longer than every heartbeat timeout of the lifecycle's activities (10–15 s). */
const CUT_MS = 20_000;

interface Failure {
  /**
   * Does the worker's own connection (to node 1's frontend) go away? Then its log must say so, and say it came back.
   */
  workerLosesServer: boolean;
  strike(): Promise<void>;
}

const FAILURES: Record<string, Failure> = {
  'node 1 (the worker’s frontend) SIGKILLed and restarted': {
    workerLosesServer: true,
    async strike() {
      await stopNode(0, 'SIGKILL');
      await sleep(6_000);
      await startNode(0);
    },
  },
  'PostgreSQL stopped and started again': {
    workerLosesServer: false,
    strike: () => restartPostgres(6_000),
  },
  [`the worker cut off the server for ${CUT_MS / 1000} s`]: {
    workerLosesServer: true,
    async strike() {
      cutFrontend(0);
      await sleep(CUT_MS);
      healCuts();
    },
  },
};
const FAILURE_NAMES = Object.keys(FAILURES);

let env: TestWorkflowEnvironment;
let worker: WorkerProcess | undefined;
let queues = 0;
/** What a test started, with how to drain it: whatever becomes of the test, afterEach ends these with its worker. */
const started: { handle: WorkflowHandle; drain: () => Promise<void> }[] = [];

async function startLifecycle(taskQueue: string, id: string): Promise<WorkflowHandle> {
  const handle = await env.client.workflow.start(LaunchGlidein, {
    taskQueue,
    workflowId: id,
    args: [{ site: 'local', lifetime: '10m' }],
  });
  started.push({ handle, drain: () => handle.signal(drainSignal) });
  return handle;
}

function startWorker(sitesDir?: string): { worker: WorkerProcess; taskQueue: string } {
  const taskQueue = `engine-${process.pid}-${++queues}`;
  worker = startWorkerProcess(env, taskQueue, { LOG_LEVEL: 'info', ...(sitesDir ? { SITES_DIR: sitesDir } : {}) });
  return { worker, taskQueue };
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 180_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}; ` +
          `worker log:\n${worker?.log().slice(-3000)}`,
      );
    await sleep(250);
  }
}

/** Runs `strike` while sampling the site: never two of anything for `ids` at any moment of the failure. */
async function strikeWatching(failure: Failure, ids: string[]): Promise<void> {
  let striking = true;
  const samples: GlideinFootprint[] = [];
  const sampler = (async () => {
    while (striking) {
      for (const id of ids) samples.push(await footprint(id));
      await sleep(500);
    }
  })();
  try {
    await failure.strike();
  } finally {
    striking = false;
    await sampler;
  }
  for (const f of samples) expectAtMostOne(f);
}

async function expectWorkerSaidIt(failure: Failure, w: WorkerProcess): Promise<void> {
  if (!failure.workerLosesServer) return;
  await until('the worker to say it lost the server and has it back', async () => {
    const log = w.log();
    return log.includes('Temporal server unreachable') && log.includes('Temporal server reachable again');
  });
}

async function expectMonitoringWithOneOfEach(handle: WorkflowHandle, id: string): Promise<void> {
  const status = await until('monitoring', async () => {
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
}

async function drainToNothing(handle: WorkflowHandle, id: string): Promise<void> {
  await handle.signal(drainSignal);
  expect((await until('the drain to end the lifecycle', () => handle.result())).endReason).toBe('drained');
  expect(await footprint(id)).toEqual(EMPTY);
}

beforeAll(async () => {
  env = await createTestEnv();
}, 120_000);

/**
 * Whatever a test did, the next one starts on a whole cluster (both nodes up, the database up, no cut) and a clean
 * site: what the test left running is drained by its own worker before that worker stops.
 */
afterEach(async () => {
  healCuts();
  if (!postgresRunning()) startPostgres();
  for (const n of NODES) {
    if (!nodeRunning(n)) await startNode(n);
    await waitServing(n);
  }
  for (const { handle, drain } of started.splice(0)) {
    const running = await handle.describe().then(
      (d) => d.status.name === 'RUNNING',
      () => false,
    );
    if (!running) continue;
    await drain().catch(() => undefined);
    await until(
      `${handle.workflowId} to end after its test`,
      () =>
        handle.result().then(
          () => true,
          () => true,
        ),
      120_000,
    ).catch(() => undefined);
  }
  await worker?.stop('SIGINT');
  worker = undefined;
}, 300_000);

afterAll(async () => {
  if (env) await expectNoSecretsInHistories(env);
  await env?.teardown();
}, 60_000);

describe('a lifecycle through the engine’s failures', () => {
  it.each(FAILURE_NAMES)(
    'during setup: %s; it reaches monitoring with one of each, never two, and drains to nothing',
    async (name) => {
      const failure = FAILURES[name];
      const { worker: w, taskQueue } = startWorker(SITES);
      const id = `engine-setup-${FAILURE_NAMES.indexOf(name)}-${Date.now()}`;
      const handle = await startLifecycle(taskQueue, id);
      // Struck with the tunnel up and the mounts under way: the middle of setup.
      await until(
        'openTunnel to complete',
        async () => (await completedActivities(handle)).includes('openTunnel'),
        90_000,
      );
      await strikeWatching(failure, [id]);
      await expectMonitoringWithOneOfEach(handle, id);
      await expectWorkerSaidIt(failure, w);
      await drainToNothing(handle, id);
    },
    300_000,
  );

  it.each(FAILURE_NAMES)(
    'during monitoring: %s; monitoring goes on with one of each, never two, and drains to nothing',
    async (name) => {
      const failure = FAILURES[name];
      const { worker: w, taskQueue } = startWorker(SITES);
      const id = `engine-monitor-${FAILURE_NAMES.indexOf(name)}-${Date.now()}`;
      const handle = await startLifecycle(taskQueue, id);
      await expectMonitoringWithOneOfEach(handle, id);
      await strikeWatching(failure, [id]);
      await expectMonitoringWithOneOfEach(handle, id);
      // The lifecycle still answers and acts: a monitoring round completes after the failure.
      const rounds = (await completedActivities(handle)).filter((a) => a === 'monitorGlidein').length;
      await until('a monitoring round after the failure', async () => {
        const done = (await completedActivities(handle)).filter((a) => a === 'monitorGlidein').length;
        return done > rounds;
      });
      await expectWorkerSaidIt(failure, w);
      await drainToNothing(handle, id);
    },
    300_000,
  );
});

const FLEET_SITES = localFleetSite();

describe('a growing fleet through the engine’s failures', () => {
  it.each(FAILURE_NAMES)(
    'mid-growth: %s; exactly the desired three, one tunnel and lease each, none started twice, drained to nothing',
    async (name) => {
      const failure = FAILURES[name];
      const { worker: w, taskQueue } = startWorker(FLEET_SITES);
      const fleet = `eng${FAILURE_NAMES.indexOf(name)}${Date.now() % 100_000}`;
      const slots = [1, 2, 3, 4, 5, 6].map((slot) => slotId(fleet, slot));
      const handle = await env.client.workflow.start('GlideinFleet', {
        taskQueue,
        workflowId: `fleet-${fleet}`,
        args: [{ site: 'local', count: 3, fleet }],
      });
      started.push({ handle, drain: () => handle.signal(drainAllSignal) });
      const view = (): Promise<FleetView> => handle.query(fleetStatusQuery);
      await until('the fleet growing', async () => {
        const v = await view();
        return v.starting + v.running > 0 && v.running < 3;
      });
      await strikeWatching(failure, slots);

      const full = await until(
        'three running after the failure',
        async () => {
          const v = await view();
          return v.running === 3 && v.starting === 0 && v;
        },
        300_000,
      );
      const glideins = await Promise.all(slots.map(async (id) => (await footprint(id)).glideins.length));
      expect(glideins.reduce((a, b) => a + b, 0)).toBe(3);
      expect(Math.max(...glideins)).toBe(1);
      expect(fleetTunnels()).toHaveLength(3);
      expect(new Set(fleetTunnels()).size).toBe(3);
      expect(fleetPortLeases().sort()).toEqual(fleetTunnels().map(String).sort());
      // None started twice: every LaunchGlidein the fleet ever started is one of the three running.
      const expected = full.slots
        .filter((s) => s.state === 'running')
        .map((s) => `${s.id}:RUNNING`)
        .sort();
      const listed = async () => {
        const launched: string[] = [];
        for await (const e of env.client.workflow.list({
          query: `WorkflowType = 'LaunchGlidein' AND GlideinFleet = '${fleet}'`,
        }))
          launched.push(`${e.workflowId}:${e.status.name}`);
        return launched.sort();
      };
      // Visibility trails the histories by a moment: wait until it shows the three, then insist on exactly those.
      await until('visibility to list the three', async () => (await listed()).length >= 3, 30_000);
      expect(await listed()).toEqual(expected);
      await expectWorkerSaidIt(failure, w);

      await handle.signal(drainAllSignal);
      expect(
        await until('the fleet drained', async () => (await handle.result()) as { endReason: string }),
      ).toMatchObject({ endReason: 'drained' });
      for (const id of slots) expect(await footprint(id)).toEqual(EMPTY);
      expect(fleetTunnels()).toEqual([]);
      expect(fleetPortLeases()).toEqual([]);
    },
    600_000,
  );
});
