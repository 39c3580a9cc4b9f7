/**
 * History events per lifecycle (setup + teardown) and per hour of monitoring, and proof that continue-as-new
 * caps each run: one real LaunchGlidein on the loopback site with a profile copy where monitor.interval=1s and
 * monitor.reportEvery=2s, monitor.historyEvents=150, monitoring for ~60 s, then 'stop'. Every run of the
 * chain is fetched (client.workflow.getHandle(id, runId).fetchHistory()) and its events counted by phase;
 * test/histories/*.json are counted the same way. Events per hour are extrapolated from the events per monitor
 * round for the default monitor.reportEvery (10m). Target: ≤ 150 events for setup + teardown.
 *
 *   npx ts-node bench/history-size.ts        env: BENCH_MONITOR_SECONDS (60), BENCH_MAX_HISTORY (150)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { LaunchGlidein } from '../src/workflows';
import { statusQuery, stopSignal } from '../src/workflows/messages';
import { createTestEnv, createTestWorker } from '../sandbox/temporal';
import { joinLocalSite, leaveLocalSite } from '../sandbox/local-site';
import {
  benchCvmfsexec,
  benchSites,
  cleanUpBench,
  describeMachine,
  envInt,
  freePorts,
  machineState,
  num,
  ROOT,
  stats,
  table,
  writeResults,
} from './lib';

const MONITOR_SECONDS = envInt('BENCH_MONITOR_SECONDS', 60);
const MAX_HISTORY = envInt('BENCH_MAX_HISTORY', 150);
const TARGET = 150;
const SITE = 'bench-hist';
const ROUND_MS = 2_000;
const DEFAULT_ROUND_MS = 600_000;

interface JsonEvent {
  eventId: string;
  eventType: string;
  activityTaskScheduledEventAttributes?: { activityType?: { name?: string } };
  workflowExecutionSignaledEventAttributes?: { signalName?: string };
  workflowExecutionStartedEventAttributes?: { continuedExecutionRunId?: string };
}

interface RunCount {
  runId?: string;
  events: number;
  /** Before the first monitor round was scheduled (first run only). */
  setup: number;
  /** From the drain/stop signal or the cancel request to the end (last run only). */
  teardown: number;
  monitoring: number;
  monitorRounds: number;
  /** Events per completed monitor round in this run (monitoring events / rounds). */
  eventsPerRound: number;
  /** Events between consecutive monitor rounds being scheduled (steady state). */
  roundGaps: number[];
  /** Events before the first monitor round was scheduled (a continued run's start). */
  beforeFirstRound: number;
  /** Events after the last round's workflow task (a continued-as-new run's close), assuming 6 events per round. */
  afterLastRound: number;
  closedBy: string;
}

const type = (e: JsonEvent) => e.eventType.replace(/^EVENT_TYPE_/, '');
const isMonitorScheduled = (e: JsonEvent) =>
  type(e) === 'ACTIVITY_TASK_SCHEDULED' &&
  e.activityTaskScheduledEventAttributes?.activityType?.name === 'monitorGlidein';
const isShutdown = (e: JsonEvent) =>
  type(e) === 'WORKFLOW_EXECUTION_CANCEL_REQUESTED' ||
  (type(e) === 'WORKFLOW_EXECUTION_SIGNALED' &&
    ['drain', 'stop'].includes(e.workflowExecutionSignaledEventAttributes?.signalName ?? ''));

function countRun(events: JsonEvent[], runId?: string): RunCount {
  const firstMonitor = events.findIndex(isMonitorScheduled);
  const shutdown = events.findIndex(isShutdown);
  const isFirst = !events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
  const last = events[events.length - 1];
  const closedBy = last ? type(last) : 'none';
  const setup = isFirst ? (firstMonitor >= 0 ? firstMonitor : shutdown >= 0 ? shutdown : events.length) : 0;
  const teardown = shutdown >= 0 ? events.length - shutdown : 0;
  const monitoring = events.length - setup - teardown;
  // A round is one monitorGlidein scheduled and completed before the shutdown.
  const rounds =
    events.filter((e, i) => isMonitorScheduled(e) && (shutdown < 0 || i < shutdown)).length - (shutdown >= 0 ? 1 : 0);
  const completeRounds = Math.max(0, rounds);
  const scheduled = events.map((e, i) => (isMonitorScheduled(e) ? i : -1)).filter((i) => i >= 0);
  const roundGaps = scheduled.slice(1).map((i, k) => i - scheduled[k]);
  const lastScheduled = scheduled[scheduled.length - 1] ?? -1;
  return {
    runId,
    events: events.length,
    setup,
    teardown,
    monitoring,
    monitorRounds: completeRounds,
    eventsPerRound: completeRounds > 0 ? monitoring / completeRounds : NaN,
    roundGaps,
    beforeFirstRound: firstMonitor,
    afterLastRound:
      closedBy === 'WORKFLOW_EXECUTION_CONTINUED_AS_NEW' && lastScheduled >= 0
        ? events.length - lastScheduled - 6
        : NaN,
    closedBy,
  };
}

function fileHistories(): Array<{ name: string; count: RunCount }> {
  const dir = path.join(ROOT, 'test', 'histories');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({
      name: f,
      count: countRun((JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { events: JsonEvent[] }).events),
    }));
}

async function main(): Promise<void> {
  await joinLocalSite();
  const before = machineState();
  const tag = Date.now().toString(36);
  const [port] = freePorts(1, 22_100);
  const cvmfsexecDir = await benchCvmfsexec('hist');
  const sitesDir = benchSites([
    {
      name: SITE,
      change: (p) => {
        p.tunnel.socksPort = port;
        p.cvmfs.cvmfsexecDir = cvmfsexecDir;
        p.monitor = { interval: '1s', reportEvery: `${ROUND_MS / 1000}s`, historyEvents: MAX_HISTORY };
      },
    },
  ]);
  let env: TestWorkflowEnvironment | undefined;
  const id = `bench-hist-${tag}`;
  try {
    console.log(
      `history size: one LaunchGlidein, monitor.interval=1s, reportEvery=${ROUND_MS / 1000}s, ` +
        `monitor.historyEvents=${MAX_HISTORY}, ~${MONITOR_SECONDS} s of monitoring; ` +
        `${describeMachine(before)}\n`,
    );
    env = await createTestEnv();
    const w = await createTestWorker(env, sitesDir, `bench-hist-${tag}`);
    const client = env.client;
    const runs: RunCount[] = [];
    try {
      await w.worker.runUntil(async () => {
        const handle = await client.workflow.start(LaunchGlidein, {
          taskQueue: w.taskQueue,
          workflowId: id,
          args: [{ site: SITE, lifetime: '1h' }],
        });
        for (let i = 0; (await handle.query(statusQuery)).phase !== 'monitoring'; i++) {
          if (i > 600) throw new Error('the glidein never reached monitoring');
          await new Promise((r) => setTimeout(r, 100));
        }
        console.log(`monitoring; waiting ${MONITOR_SECONDS} s`);
        await new Promise((r) => setTimeout(r, MONITOR_SECONDS * 1000));
        await handle.signal(stopSignal);
        const result = await handle.result();
        console.log(`ended: ${result.endReason}`);
        // Walk the chain back from the last run.
        let runId: string | undefined = (await handle.describe()).runId;
        const chain: Array<{ runId: string; events: JsonEvent[] }> = [];
        while (runId) {
          const history: Parameters<typeof historyToJSON>[0] = await client.workflow
            .getHandle(id, runId)
            .fetchHistory();
          const events: JsonEvent[] = (JSON.parse(historyToJSON(history)) as { events: JsonEvent[] }).events;
          chain.unshift({ runId, events });
          runId = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
        }
        runs.push(...chain.map((c) => countRun(c.events, c.runId)));
      });
    } finally {
      w.ssh.close();
    }

    const files = fileHistories();
    const perRound = stats(runs.flatMap((r) => r.roundGaps)).median;
    // What continuing adds besides the rounds: the new run's start (started, workflow task, search attributes)
    // before its first round, and the old run's close after its last round.
    const perRunOverhead = runs.length > 1 ? runs[1].beforeFirstRound + runs[0].afterLastRound : NaN;
    const setupTeardown = runs[0].setup + runs[runs.length - 1].teardown;
    const perHourDefault = (3_600_000 / DEFAULT_ROUND_MS) * perRound;
    const perHourBench = (3_600_000 / ROUND_MS) * perRound;
    const maxRun = Math.max(...runs.map((r) => r.events));

    console.log();
    console.log(
      table(
        ['run', 'events', 'setup', 'monitoring', 'teardown', 'monitor rounds', 'events/round', 'closed by'],
        runs.map((r, i) => [
          i + 1,
          r.events,
          r.setup,
          r.monitoring,
          r.teardown,
          r.monitorRounds,
          num(r.eventsPerRound, 1),
          r.closedBy.replace('WORKFLOW_EXECUTION_', ''),
        ]),
      ),
    );
    console.log();
    console.log(
      table(
        ['recorded history (test/histories)', 'events', 'setup', 'monitoring', 'teardown'],
        files.map((f) => [f.name, f.count.events, f.count.setup, f.count.monitoring, f.count.teardown]),
      ),
    );
    console.log();
    console.log(
      table(
        ['figure', 'value'],
        [
          ['setup + teardown events (this run)', setupTeardown],
          ['events per monitor round (steady state, median)', num(perRound, 1)],
          ['events a continued run adds besides its rounds', num(perRunOverhead, 0)],
          [`events per hour of monitoring, reportEvery ${ROUND_MS / 1000}s (this bench)`, num(perHourBench, 0)],
          ['events per hour of monitoring, reportEvery 10m (default)', num(perHourDefault, 0)],
          [`largest run (monitor.historyEvents ${MAX_HISTORY})`, maxRun],
          ['runs in the chain', runs.length],
          [
            'hours until the default cap (5000 events) at reportEvery 10m',
            num((5000 - runs[0].setup) / perHourDefault, 0),
          ],
        ],
      ),
    );
    const met = setupTeardown <= TARGET && files.every((f) => f.count.setup + f.count.teardown <= TARGET);
    const capped = runs
      .slice(0, -1)
      .every((r) => r.closedBy === 'WORKFLOW_EXECUTION_CONTINUED_AS_NEW' && r.events <= MAX_HISTORY + perRound + 3);
    console.log(
      `\ntarget ≤ ${TARGET} events for setup + teardown: ${met ? 'met' : 'MISSED'} (${setupTeardown} here; ` +
        `recorded: ${files.map((f) => f.count.setup + f.count.teardown).join(', ')})`,
    );
    console.log(
      `continue-as-new capped every run but the last at ≤ monitor.historyEvents + one round: ` +
        `${capped && runs.length > 1 ? 'yes' : 'NO'} (largest ${maxRun})`,
    );
    const after = machineState();
    console.log(`machine after: ${describeMachine(after)}`);
    const file = writeResults('history-size', {
      bench: 'history-size',
      machine: { before, after },
      settings: {
        monitorInterval: '1s',
        reportEvery: `${ROUND_MS / 1000}s`,
        historyEvents: MAX_HISTORY,
        monitorSeconds: MONITOR_SECONDS,
      },
      target: { setupTeardownEvents: TARGET, met, cappedByContinueAsNew: capped && runs.length > 1 },
      summary: {
        setupTeardown,
        eventsPerRound: perRound,
        perRunOverhead,
        eventsPerHourAtBenchRound: perHourBench,
        eventsPerHourAtDefaultRound: perHourDefault,
        largestRun: maxRun,
        runs: runs.length,
      },
      runs,
      recorded: files,
    });
    console.log(`wrote ${file}`);
  } finally {
    await env?.teardown();
    cleanUpBench({ idPrefix: 'bench-hist-', ports: [port], cvmfsexecDir, sitesDir });
    await leaveLocalSite();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
