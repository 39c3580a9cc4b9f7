/**
 * The worker process of bench/fleet-scale.ts (started by it; not run by hand): the production worker's
 * configuration (src/worker.ts: namespace, task queue, workflowsPath, createActivities over one SshPool), plus
 * for measuring — the SDK's Prometheus metrics on BENCH_METRICS_ADDRESS, every site command timed by an
 * Executor decorator (ActivityDeps.executorsFor) and every monitor round's arguments recorded — and, when
 * BENCH_ACTIVITY_SLOTS is set, maxConcurrentActivityTaskExecutions (else production's MAX_CONCURRENT_ACTIVITIES).
 * Like production it hands the activities a Temporal Client on its own connection (GlideinFleet's observeFleet).
 * Answers {type:'stats', from, to} over IPC with check-loop lateness, command times and counts and activity
 * times in that window; {type:'shutdown'}.
 */
import { performance } from 'node:perf_hooks';
import { Context } from '@temporalio/activity';
import { Client } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../src/activities';
import { sshExecutors } from '../src/activities/site-access';
import type { MonitorRound } from '../src/activities/monitor';
import type { GlideinRef } from '../src/common/types';
import { SshPool } from '../src/remote/ssh';
import { SiteRegistry } from '../src/site/load';
import { configFromEnv, fleetOptions, workflowSource } from '../src/worker';
import { stats, TimedExecutor, type CommandTiming } from './lib';

const env = process.env;
/** Finer histogram buckets (ms) than the SDK's defaults for the latencies the benchmark reports. */
const BUCKETS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000,
];
const LATENCIES = [
  'workflow_task_schedule_to_start_latency',
  'workflow_task_execution_latency',
  'workflow_task_replay_latency',
  'activity_schedule_to_start_latency',
  'activity_execution_latency',
];
const epoch = (t: number) => performance.timeOrigin + t;

interface Check {
  id: string;
  start: number;
  end: number;
  /**
   * When this check was due: the end of the previous check + interval (or the round's end), or the end of the previous
   * round.
   */
  due?: number;
  firstOfRound: boolean;
}

interface Round {
  id: string;
  start: number;
  end?: number;
  roundEnd: number;
  intervalMs: number;
  checks: Check[];
}

const rounds = new Map<string, Round[]>();
const commandTimes = new Map<string, number[]>();
const perActivityType = new Map<string, number>();
/** Activity executions per type (all attempts), since the start. */
const activityRuns = new Map<string, number>();
/** Every site command: when it started (epoch ms), where it ran, what it was, in which activity type, its bytes. */
const commands: Array<{
  at: number;
  target: string;
  what: string;
  activityType: string;
  sentBytes: number;
  receivedBytes: number;
}> = [];
/** Every activity execution: [start epoch ms, duration ms] per activity type. */
const activityTimes = new Map<string, number[]>();

function onCommand(t: CommandTiming): void {
  commands.push({
    at: epoch(t.start),
    target: t.target,
    what: t.what,
    activityType: t.activityType ?? '-',
    sentBytes: t.sentBytes,
    receivedBytes: t.receivedBytes,
  });
  perActivityType.set(t.activityType ?? '-', (perActivityType.get(t.activityType ?? '-') ?? 0) + 1);
  const key = t.activityType === 'monitorGlidein' ? `monitor ${t.what}` : 'setup/teardown';
  let xs = commandTimes.get(key);
  if (!xs) commandTimes.set(key, (xs = []));
  xs.push(epoch(t.start), t.end - t.start);
  if (t.activityType !== 'monitorGlidein' || !t.workflowId) return;
  const round = rounds.get(t.workflowId)?.at(-1);
  if (!round) return;
  // A check is the inspect (first command) through the condor_status (last).
  if (t.what === 'inspect')
    round.checks.push({
      id: t.workflowId,
      start: epoch(t.start),
      end: epoch(t.end),
      firstOfRound: round.checks.length === 0,
    });
  else if (round.checks.length) round.checks[round.checks.length - 1].end = epoch(t.end);
}

async function main(): Promise<void> {
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: {
      // Core warns when a monitor round cancelled by TRY_CANCEL completes after its workflow closed: expected here.
      logging: { filter: { core: 'ERROR', other: 'ERROR' }, forward: {} },
      ...(env.BENCH_METRICS_ADDRESS
        ? {
            metrics: {
              prometheus: {
                bindAddress: env.BENCH_METRICS_ADDRESS,
                histogramBucketOverrides: Object.fromEntries(LATENCIES.map((m) => [m, BUCKETS])),
              },
            },
          }
        : {}),
    },
  });
  const connection = await NativeConnection.connect({ address: env.BENCH_TEMPORAL_ADDRESS! });
  const ssh = new SshPool();
  const registry = new SiteRegistry(env.BENCH_SITES_DIR!);
  const namespace = env.BENCH_NAMESPACE ?? 'default';
  const deps: ActivityDeps = {
    sites: registry,
    ssh,
    // As src/worker.ts: GlideinFleet observes its glideins through the worker's own connection.
    temporal: new Client({ connection, namespace }),
    executorsFor: (profile) => {
      const e = sshExecutors({ sites: registry, ssh }, profile);
      return { login: new TimedExecutor(e.login, onCommand), node: new TimedExecutor(e.node, onCommand) };
    },
  };
  const activities = createActivities(deps);
  for (const [name, fn] of Object.entries(activities) as Array<
    [keyof typeof activities, (...a: unknown[]) => Promise<unknown>]
  >) {
    (activities as Record<string, unknown>)[name] = async (...args: unknown[]) => {
      activityRuns.set(name, (activityRuns.get(name) ?? 0) + 1);
      const start = Date.now();
      try {
        return await fn(...args);
      } finally {
        let xs = activityTimes.get(name);
        if (!xs) activityTimes.set(name, (xs = []));
        xs.push(start, Date.now() - start);
      }
    };
  }
  const monitor = activities.monitorGlidein;
  activities.monitorGlidein = async (ref: GlideinRef, round: MonitorRound) => {
    const id = Context.current().info.workflowExecution?.workflowId ?? ref.glideinId;
    let list = rounds.get(id);
    if (!list) rounds.set(id, (list = []));
    const r: Round = { id, start: Date.now(), roundEnd: round.roundEnd, intervalMs: round.intervalMs, checks: [] };
    list.push(r);
    try {
      return await monitor(ref, round);
    } finally {
      r.end = Date.now();
    }
  };
  // Production's sizing (src/worker.ts: MAX_CONCURRENT_ACTIVITIES, WORKFLOW_CACHE_SIZE), unless the benchmark sets
  // slots.
  const config = configFromEnv(env);
  const slots = env.BENCH_ACTIVITY_SLOTS ? Number(env.BENCH_ACTIVITY_SLOTS) : undefined;
  const worker = await Worker.create({
    connection,
    namespace,
    taskQueue: env.BENCH_TASK_QUEUE!,
    ...workflowSource(),
    activities,
    ...fleetOptions(config),
    ...(slots ? { maxConcurrentActivityTaskExecutions: slots } : {}),
  });

  process.on('message', (m: { type: string; from?: number; to?: number }) => {
    if (m.type === 'stats')
      process.send?.({
        type: 'stats',
        stats: windowStats(m.from ?? 0, m.to ?? Date.now()),
        connects: ssh.connectCounts(),
      });
    if (m.type === 'shutdown') worker.shutdown();
  });
  process.on('disconnect', () => worker.shutdown()); // the benchmark went away
  process.send?.({ type: 'ready' });
  await worker.run();
  ssh.close();
  await connection.close();
}

/** Site commands of one activity type, target and kind in a window, with their bytes (CommandTiming's). */
export interface CommandGroup {
  activityType: string;
  target: string;
  what: string;
  commands: number;
  sentBytes: number;
  receivedBytes: number;
}

/** Check-loop lateness and command times for checks that started in [from, to]. */
function windowStats(from: number, to: number) {
  const within: Check[] = [];
  const firstLate: number[] = [];
  const loopLate: number[] = [];
  const checksPerGlidein = new Map<string, number>();
  for (const [id, list] of rounds) {
    for (let r = 0; r < list.length; r++) {
      const round = list[r];
      for (let k = 0; k < round.checks.length; k++) {
        const c = round.checks[k];
        if (k === 0) c.due = r > 0 ? list[r - 1].end : undefined;
        else c.due = Math.min(round.checks[k - 1].end + round.intervalMs, round.roundEnd);
        if (c.start < from || c.start > to) continue;
        within.push(c);
        checksPerGlidein.set(id, (checksPerGlidein.get(id) ?? 0) + 1);
        if (c.due === undefined) continue;
        (k === 0 ? firstLate : loopLate).push(c.start - c.due);
      }
    }
  }
  const cmd: Record<string, ReturnType<typeof stats>> = {};
  for (const [key, xs] of commandTimes) {
    const d: number[] = [];
    for (let i = 0; i < xs.length; i += 2) if (xs[i] >= from && xs[i] <= to) d.push(xs[i + 1]);
    cmd[key] = stats(d);
  }
  const inWindow = commands.filter((c) => c.at >= from && c.at <= to);
  const countBy = (key: (c: (typeof commands)[number]) => string) => {
    const out: Record<string, number> = {};
    for (const c of inWindow) out[key(c)] = (out[key(c)] ?? 0) + 1;
    return out;
  };
  const detail = new Map<string, CommandGroup>();
  for (const c of inWindow) {
    const k = `${c.activityType}\0${c.target}\0${c.what}`;
    let g = detail.get(k);
    if (!g)
      detail.set(
        k,
        (g = {
          activityType: c.activityType,
          target: c.target,
          what: c.what,
          commands: 0,
          sentBytes: 0,
          receivedBytes: 0,
        }),
      );
    g.commands++;
    g.sentBytes += c.sentBytes;
    g.receivedBytes += c.receivedBytes;
  }
  const activityMs: Record<string, ReturnType<typeof stats>> = {};
  for (const [name, xs] of activityTimes) {
    const d: number[] = [];
    for (let i = 0; i < xs.length; i += 2) if (xs[i] >= from && xs[i] <= to) d.push(xs[i + 1]);
    if (d.length) activityMs[name] = stats(d);
  }
  return {
    checks: within.length,
    glideinsChecked: checksPerGlidein.size,
    checkMs: stats(within.map((c) => c.end - c.start)),
    /** Within a round: how late a check started after it was due (previous check's end + interval). */
    lateWithinRound: stats(loopLate),
    /**
     * First check of a round: how long after the previous round ended (orchestration + waiting for an activity slot).
     */
    lateNewRound: stats(firstLate),
    commandMs: cmd,
    commandsPerActivityType: Object.fromEntries(perActivityType),
    activityRuns: Object.fromEntries(activityRuns),
    /** Site commands that started in the window: all, per target, per command, per activity type. */
    commandCounts: {
      total: inWindow.length,
      byTarget: countBy((c) => c.target),
      byWhat: countBy((c) => c.what),
      byActivityType: countBy((c) => c.activityType),
      /** Commands and bytes per activity type, target and command (the breakdown the others sum). */
      groups: [...detail.values()],
    },
    /** Activities (all types) that started in the window: their wall time in this worker. */
    activityMs,
  };
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
