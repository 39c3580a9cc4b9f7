/**
 * The dev server beside the production-shaped cluster (two Temporal nodes on PostgreSQL, sandbox/cluster.ts), in one
 * run, interleaved where it can be:
 *   1. activity round trip: a workflow running BENCH_TRIPS no-op activities one after another, each one's round trip
 *      from its history (scheduled → the workflow task that sees it done, server time), one worker in this process;
 *   2. orchestration per step: LaunchGlidein on the loopback site to monitoring and stopped (BENCH_RUNS per
 *      backend), each step's workflow time minus the time its activity ran in the worker (bench/lifecycle-runs.ts);
 *   3. fleet-100 setup: bench/fleet-growth.ts (mode A: a GlideinFleet of BENCH_FLEET_SIZE, its own worker process)
 *      on each backend in turn: time to full, then drained.
 * On the cluster, the client and the worker talk to node 1's frontend (the shards are spread over both nodes).
 *
 *   flock /tmp/glidein-site.lock npx ts-node bench/engine-backends.ts
 *   env: BENCH_TRIPS (200)  BENCH_RUNS (5)  BENCH_FLEET_SIZE (100; 0 skips part 3)  BENCH_FLEET_WINDOW (10 s)
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { createActivities } from '../src/activities';
import { SshPool } from '../src/remote/ssh';
import { SiteRegistry } from '../src/site/load';
import { createTestEnv, workflowBundle } from '../sandbox/temporal';
import { joinLocalSite, leaveLocalSite } from '../sandbox/local-site';
import { clusterState, createNamespace, startCluster, stopCluster } from '../sandbox/cluster';
import { perRunA, runA, timedDeps, type RunA, type Recorded } from './lifecycle-runs';
import {
  benchCvmfsexec,
  benchSites,
  cleanUpBench,
  describeMachine,
  envInt,
  freePorts,
  machineState,
  num,
  RESULTS_DIR,
  ROOT,
  stats,
  table,
  timedActivities,
  writeResults,
  type Stats,
} from './lib';

const TRIPS = envInt('BENCH_TRIPS', 200);
const RUNS = envInt('BENCH_RUNS', 5);
const FLEET = envInt('BENCH_FLEET_SIZE', 100);
const FLEET_WINDOW = envInt('BENCH_FLEET_WINDOW', 10);
const SITE = 'bench-eng';
const BACKENDS = ['dev', 'cluster'] as const;
type Backend = (typeof BACKENDS)[number];

interface BackendSetup {
  env: TestWorkflowEnvironment;
  worker: Worker;
  taskQueue: string;
}

async function envFor(backend: Backend): Promise<TestWorkflowEnvironment> {
  if (backend === 'dev') return createTestEnv();
  const namespace = `bench-${Date.now().toString(36)}`;
  await createNamespace(namespace);
  return TestWorkflowEnvironment.createFromExistingServer({ address: clusterState().frontends[0], namespace });
}

type HistoryEvent = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>[number];

/**
 * Each activity's round trip from the server's own clock (the workflow's Date.now() moves in steps too coarse for
 * this): from its ActivityTaskScheduled to the WorkflowTaskStarted that follows its completion.
 */
function roundTripsOf(events: HistoryEvent[]): number[] {
  const ms = (e: HistoryEvent) => Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
  const out: number[] = [];
  let scheduledAt: number | undefined;
  let completed = false;
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes) {
      scheduledAt = ms(e);
      completed = false;
    } else if (e.activityTaskCompletedEventAttributes) completed = true;
    else if (e.workflowTaskStartedEventAttributes && completed && scheduledAt !== undefined) {
      out.push(ms(e) - scheduledAt);
      scheduledAt = undefined;
      completed = false;
    }
  }
  return out;
}

/** bench/fleet-growth.ts, mode A, on one backend; its results file. */
function fleetGrowth(backend: Backend): Promise<{ seconds: number; monitoring: number; workerCpuPct?: number }> {
  const name = `engine-backends-fleet-${backend}`;
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [require.resolve('ts-node/dist/bin'), path.join(ROOT, 'bench', 'fleet-growth.ts')],
      {
        cwd: ROOT,
        stdio: ['ignore', 'inherit', 'inherit'],
        env: {
          ...process.env,
          TEMPORAL_BACKEND: backend,
          TS_NODE_TRANSPILE_ONLY: 'true',
          BENCH_FLEET_SIZE: String(FLEET),
          BENCH_FLEET_MODES: 'A',
          BENCH_FLEET_WINDOW: String(FLEET_WINDOW),
          // The profile's upper bounds: the fleet's own pacing should not hide the engine's.
          BENCH_FLEET_MAX_STARTING: String(Math.min(FLEET, 50)),
          BENCH_FLEET_STARTS_PER_MINUTE: '600',
          BENCH_RESULTS_NAME: name,
        },
      },
    );
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`fleet-growth on ${backend} exited with ${code}`));
      const data = JSON.parse(fs.readFileSync(path.join(RESULTS_DIR, `${name}.json`), 'utf8'));
      const a = data.results[0];
      resolve({ seconds: a.setup.seconds, monitoring: a.setup.monitoring, workerCpuPct: a.steady?.workerCpuPct });
    });
  });
}

async function main(): Promise<void> {
  await joinLocalSite();
  let ownCluster = false;
  try {
    clusterState();
  } catch {
    console.log('starting a Temporal cluster on PostgreSQL (sandbox/cluster.ts) for this run');
    await startCluster();
    ownCluster = true;
  }
  const before = machineState();
  const tag = Date.now().toString(36);
  const [port] = freePorts(1, 22_400);
  const cvmfsexecDir = await benchCvmfsexec('eng');
  const sitesDir = benchSites([
    {
      name: SITE,
      change: (p) => {
        p.tunnel.socksPort = port;
        p.cvmfs.cvmfsexecDir = cvmfsexecDir;
      },
    },
  ]);
  const pool = new SshPool();
  const setups: Partial<Record<Backend, BackendSetup>> = {};
  const recorded: Record<Backend, Recorded> = {
    dev: { commands: [], activities: [] },
    cluster: { commands: [], activities: [] },
  };
  const trips: Record<Backend, number[]> = { dev: [], cluster: [] };
  const runs: Record<Backend, RunA[]> = { dev: [], cluster: [] };
  const fleet: Partial<Record<Backend, { seconds: number; monitoring: number }>> = {};
  try {
    console.log(
      `dev server vs two-node cluster on PostgreSQL: ${TRIPS} activity round trips, ${RUNS} lifecycles (+1 ` +
        `warm-up) each, interleaved; then a fleet of ${FLEET} on each; ${describeMachine(before)}\n`,
    );
    const registry = new SiteRegistry(sitesDir);
    const roundTripBundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('./workflows/round-trip'),
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
    });
    for (const backend of BACKENDS) {
      const env = await envFor(backend);
      const taskQueue = `bench-eng-${backend}-${tag}`;
      const worker = await Worker.create({
        connection: env.nativeConnection,
        namespace: env.namespace,
        taskQueue,
        workflowBundle: await workflowBundle(),
        activities: timedActivities(createActivities(timedDeps(registry, pool, recorded[backend])), (t) =>
          recorded[backend].activities.push(t),
        ),
      });
      setups[backend] = { env, worker, taskQueue };
    }
    // Round trips: a worker per backend on a task queue of its own, both running while the two workflows alternate.
    const tripWorkers = await Promise.all(
      BACKENDS.map((backend) =>
        Worker.create({
          connection: setups[backend]!.env.nativeConnection,
          namespace: setups[backend]!.env.namespace,
          taskQueue: `bench-eng-trips-${backend}-${tag}`,
          workflowBundle: roundTripBundle,
          activities: { noop: async () => undefined },
        }),
      ),
    );
    const all = [...BACKENDS.map((b) => setups[b]!.worker), ...tripWorkers];
    const running = all.map((w) => w.run());
    try {
      for (let round = 0; round < 4; round++)
        for (const backend of BACKENDS) {
          const handle = await setups[backend]!.env.client.workflow.start('roundTrips', {
            taskQueue: `bench-eng-trips-${backend}-${tag}`,
            workflowId: `bench-eng-trips-${backend}-${tag}-${round}`,
            args: [Math.ceil(TRIPS / 4)],
          });
          await handle.result();
          trips[backend].push(...roundTripsOf((await handle.fetchHistory()).events ?? []));
        }
      for (let i = 0; i <= RUNS; i++)
        for (const backend of BACKENDS) {
          const s = setups[backend]!;
          const r = await runA(s.env.client, s.taskQueue, SITE, `bench-eng-${backend}-${tag}-${i}`, recorded[backend]);
          console.log(
            `${i === 0 ? 'warm-up' : `run ${i}`} ${backend.padEnd(7)}: to monitoring ` +
              `${num(r.toMonitoringMs, 0)} ms, stop→result ${num(r.stopToResultMs, 0)} ms`,
          );
          if (i > 0) runs[backend].push(r);
        }
    } finally {
      for (const w of all) w.shutdown();
      await Promise.allSettled(running);
    }
    for (const backend of BACKENDS) await setups[backend]!.env.teardown();

    if (FLEET > 0)
      for (const backend of BACKENDS) {
        console.log(
          `\nfleet of ${FLEET} on the ${backend === 'dev' ? 'dev server' : 'cluster'} (bench/fleet-growth.ts, mode A):`,
        );
        fleet[backend] = await fleetGrowth(backend);
      }

    const after = machineState();
    const trip: Record<Backend, Stats> = { dev: stats(trips.dev), cluster: stats(trips.cluster) };
    const per = Object.fromEntries(
      BACKENDS.map((b) => [b, perRunA(runs[b], recorded[b].commands, `bench-eng-${b}-`)]),
    ) as Record<Backend, ReturnType<typeof perRunA>>;
    const toMon = (b: Backend) => stats(runs[b].map((r) => r.toMonitoringMs));
    const total = (b: Backend) => stats(runs[b].map((r) => r.totalMs));
    console.log(`\n${describeMachine(after)}\n`);
    console.log(
      table(
        ['measure (median [p90])', 'dev server', 'cluster (2 nodes, PostgreSQL)', 'cluster / dev'],
        [
          [
            `activity round trip (ms, ${TRIPS} each)`,
            `${num(trip.dev.median, 1)} [${num(trip.dev.p90, 1)}]`,
            `${num(trip.cluster.median, 1)} [${num(trip.cluster.p90, 1)}]`,
            num(trip.cluster.median / trip.dev.median, 2),
          ],
          [
            'orchestration per step (ms)',
            `${num(per.dev.orchestrationPerStep.median, 1)} [${num(per.dev.orchestrationPerStep.p90, 1)}]`,
            `${num(per.cluster.orchestrationPerStep.median, 1)} [${num(per.cluster.orchestrationPerStep.p90, 1)}]`,
            num(per.cluster.orchestrationPerStep.median / per.dev.orchestrationPerStep.median, 2),
          ],
          [
            'lifecycle to monitoring (ms)',
            num(toMon('dev').median, 0),
            num(toMon('cluster').median, 0),
            num(toMon('cluster').median / toMon('dev').median, 2),
          ],
          [
            'lifecycle start → stopped (ms)',
            num(total('dev').median, 0),
            num(total('cluster').median, 0),
            num(total('cluster').median / total('dev').median, 2),
          ],
          ...(FLEET > 0
            ? [
                [
                  `fleet of ${FLEET}: time to full (s)`,
                  `${num(fleet.dev?.seconds, 1)} (${fleet.dev?.monitoring} up)`,
                  `${num(fleet.cluster?.seconds, 1)} (${fleet.cluster?.monitoring} up)`,
                  num((fleet.cluster?.seconds ?? NaN) / (fleet.dev?.seconds ?? NaN), 2),
                ],
              ]
            : []),
        ],
      ),
    );
    const file = writeResults('engine-backends', {
      bench: 'engine-backends',
      machine: { before, after },
      settings: { trips: TRIPS, runs: RUNS, fleet: FLEET },
      roundTripMs: trip,
      orchestrationPerStepMs: { dev: per.dev.orchestrationPerStep, cluster: per.cluster.orchestrationPerStep },
      toMonitoringMs: { dev: toMon('dev'), cluster: toMon('cluster') },
      fleet,
    });
    console.log(`\nresults: ${file}`);
  } finally {
    pool.close();
    const left = cleanUpBench({ idPrefix: 'bench-eng-', ports: [port], cvmfsexecDir, sitesDir });
    if (left.processes || left.mounts)
      console.log(`clean-up removed ${left.processes} leftover processes, ${left.mounts} mounts`);
    if (ownCluster) await stopCluster();
    await leaveLocalSite();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
