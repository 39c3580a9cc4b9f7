/**
 * One worker process monitoring N glideins (BENCH_FLEET=100,500,1000): N real LaunchGlidein workflows on a
 * dev server, each a real glidein on the loopback site (its own SOCKS tunnel, container instance stand-in and
 * condor_master stand-in; all on the one "worker node", sharing one cvmfsexec directory of the benchmark's
 * own), monitored by one worker process (bench/fleet-worker.ts: production's worker set-up plus timing).
 * Nothing in the production code is replaced: every monitor check is the real two round trips (inspect, then
 * condor_status in the container through the chain).
 *
 * For each N: start the workflows (BENCH_FLEET_START_RATE per second), wait until all are monitoring, measure
 * for BENCH_FLEET_WINDOW seconds — CPU % of the worker, the dev server and the whole machine, the worker's RSS,
 * workflow task latency (the SDK's Prometheus histograms) and status-query round trips, check-loop lateness
 * (how late each monitor check runs against its interval), command times — then stop them all and wait for
 * teardown. Before each N the memory one glidein took at the previous N is projected; an N that would not fit
 * in half of the available memory is skipped and said so.
 *
 *   npx ts-node bench/fleet-scale.ts
 *   env: BENCH_FLEET (100,500,1000)  BENCH_FLEET_INTERVAL (60s: monitor.interval)
 *        BENCH_FLEET_REPORT (10m: reportEvery)  BENCH_FLEET_WINDOW (180 s)  BENCH_FLEET_START_RATE (20/s)
 *        BENCH_ACTIVITY_SLOTS (production's MAX_CONCURRENT_ACTIVITIES)
 *        BENCH_FLEET_SETUP_TIMEOUT (1800 s)  BENCH_FLEET_MEM_FRACTION (0.5)  BENCH_RESULTS_NAME (fleet-scale)
 */
import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { parseDuration } from '../src/common/duration';
import { LaunchGlidein } from '../src/workflows';
import { configFromEnv } from '../src/worker';
import { statusQuery, stopSignal } from '../src/workflows/messages';
import { createTestEnv } from '../sandbox/temporal';
import { joinLocalSite, leaveLocalSite } from '../sandbox/local-site';
import {
  ask,
  benchCvmfsexec,
  buildWorker,
  benchProcesses,
  benchSites,
  cleanUpBench,
  CpuWindow,
  describeMachine,
  envInt,
  freePorts,
  machineState,
  meminfo,
  memoryMb,
  num,
  serverPids,
  sleep,
  sshdSessions,
  startWorker,
  stats,
  table,
  writeResults,
  type Stats,
} from './lib';

const FLEET = (process.env.BENCH_FLEET ?? '100,500,1000')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => n > 0);
const INTERVAL = process.env.BENCH_FLEET_INTERVAL ?? '60s';
const REPORT = process.env.BENCH_FLEET_REPORT ?? '10m';
const WINDOW_S = envInt('BENCH_FLEET_WINDOW', 180);
const START_RATE = envInt('BENCH_FLEET_START_RATE', 20);
const SETUP_TIMEOUT_S = envInt('BENCH_FLEET_SETUP_TIMEOUT', 1800);
const MEM_FRACTION = Number(process.env.BENCH_FLEET_MEM_FRACTION ?? '0.5');
const SLOTS = process.env.BENCH_ACTIVITY_SLOTS;
let workerScript = '';
const PRODUCTION_SLOTS = `production default (${configFromEnv({}).maxConcurrentActivities})`;
const METRICS_PORT = freePorts(1, 29_400)[0];
/** Name of the results file (bench/results/<name>.json), e.g. for a run with other settings. */
const NAME = process.env.BENCH_RESULTS_NAME ?? 'fleet-scale';

interface WorkerStats {
  checks: number;
  glideinsChecked: number;
  checkMs: Stats;
  lateWithinRound: Stats;
  lateNewRound: Stats;
  commandMs: Record<string, Stats>;
  commandsPerActivityType: Record<string, number>;
  activityRuns: Record<string, number>;
}

interface FleetResult {
  n: number;
  skipped?: string;
  activitySlots: number | string;
  setup?: {
    seconds: number;
    monitoring: number;
    failed: number;
    perMinute: number;
    /** The SDK's latency histograms over the setup (when workflow tasks happen; steady monitoring has none). */
    metrics: Record<string, { count: number; meanMs: number; p50Ms: number; p99Ms: number }>;
    cpu: { workerPct: number; serverPct: number; machinePct: number };
  };
  window?: {
    seconds: number;
    cpu: { workerPct: number; serverPct: number; machinePct: number };
    /** The worker's RSS when ready (no workflows yet), at the window's start and end, and the most seen. */
    workerRssMb: { ready: number; start: number; end: number; max: number };
    memAvailableDropMb: number;
    /**
     * Projected memory per glidein: its site processes (PSS, incl. the sshd sessions of its tunnel) + worker and server
     * growth.
     */
    memPerGlideinMb: number;
    sitePssPerGlideinMb: number;
    workerGrowthPerGlideinMb: number;
    serverGrowthPerGlideinMb: number;
    /** Site processes per glidein (its own and the new sshd sessions). */
    processesPerGlidein: number;
    /** openTunnel runs beyond one per glidein (tunnel repairs, retries). */
    extraOpenTunnels: number;
    queryMs: Stats;
    metrics: Record<string, { count: number; meanMs: number; p50Ms: number; p99Ms: number }>;
    worker: WorkerStats;
    connects: Record<string, number>;
    /** Checks expected in the window: each glidein checks every interval + one check's duration. */
    expectedChecks: number;
  };
  teardown?: { seconds: number; completed: number; notCompleted: number; leftovers: number };
}

// ---------------------------------------------------------------------------------------------------
// Prometheus scraping (the SDK's histograms)

type Histograms = Map<string, { buckets: Array<[number, number]>; sum: number; count: number }>;

function scrape(port: number): Promise<Histograms> {
  return new Promise((resolve) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics', timeout: 5000 }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d));
        res.on('end', () => resolve(parseHistograms(body)));
      })
      .on('error', () => resolve(new Map()));
  });
}

/** Histograms summed over their labels (except le); only the latency ones we report. */
function parseHistograms(text: string): Histograms {
  const out: Histograms = new Map();
  const latencies = [
    'workflow_task_schedule_to_start_latency',
    'workflow_task_execution_latency',
    'workflow_task_replay_latency',
    'activity_schedule_to_start_latency',
    'activity_execution_latency',
  ];
  const wanted = new RegExp(
    `^(temporal_(?:${latencies.join('|')}))(_bucket|_sum|_count)\\{?([^}]*)\\}? ([\\d.e+-]+|\\+Inf)$`,
  );
  for (const line of text.split('\n')) {
    const m = wanted.exec(line);
    if (!m) continue;
    const [, name, kind, labels, value] = m;
    let h = out.get(name);
    if (!h) out.set(name, (h = { buckets: [], sum: 0, count: 0 }));
    if (kind === '_sum') h.sum += Number(value);
    else if (kind === '_count') h.count += Number(value);
    else {
      const le = /le="([^"]+)"/.exec(labels)?.[1] ?? '+Inf';
      const bound = le === '+Inf' ? Infinity : Number(le);
      const existing = h.buckets.find((b) => b[0] === bound);
      if (existing) existing[1] += Number(value);
      else h.buckets.push([bound, Number(value)]);
    }
  }
  for (const h of out.values()) h.buckets.sort((a, b) => a[0] - b[0]);
  return out;
}

function histogramDelta(
  a: Histograms,
  b: Histograms,
): Record<string, { count: number; meanMs: number; p50Ms: number; p99Ms: number }> {
  const out: Record<string, { count: number; meanMs: number; p50Ms: number; p99Ms: number }> = {};
  for (const [name, hb] of b) {
    const ha = a.get(name) ?? { buckets: [], sum: 0, count: 0 };
    const count = hb.count - ha.count;
    const buckets = hb.buckets.map(
      ([le, c]) => [le, c - (ha.buckets.find((x) => x[0] === le)?.[1] ?? 0)] as [number, number],
    );
    const q = (p: number) => {
      const target = p * count;
      const hit = buckets.find(([, c]) => c >= target);
      return hit ? hit[0] : NaN;
    };
    out[name.replace(/^temporal_/, '')] = {
      count,
      meanMs: count ? (hb.sum - ha.sum) / count : NaN,
      p50Ms: q(0.5),
      p99Ms: q(0.99),
    };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------

async function countWhere(env: TestWorkflowEnvironment, query: string): Promise<number> {
  return (await env.client.workflow.count(query)).count;
}

async function runFleet(
  env: TestWorkflowEnvironment,
  n: number,
  cvmfsexecDir: string,
  log: (s: string) => void,
): Promise<FleetResult> {
  const tag = Date.now().toString(36);
  const prefix = `bench-fleet-${tag}-`;
  const ports = freePorts(n, 23_000);
  const slots = SLOTS ? Number(SLOTS) : undefined;
  const sitesDir = benchSites(
    ports.map((port, k) => ({
      name: `bench-fleet-${k}`,
      change: (p) => {
        p.tunnel.socksPort = port;
        p.cvmfs.cvmfsexecDir = cvmfsexecDir;
        p.monitor = { interval: INTERVAL, reportEvery: REPORT };
        // HTCondor's default: a startd updates the collector every 5 minutes (the first update at once).
        p.glidein.config.UPDATE_INTERVAL = '300';
        p.glidein.registrationTimeout = '10m';
      },
    })),
  );
  const taskQueue = `bench-fleet-${tag}`;
  const result: FleetResult = { n, activitySlots: slots ?? PRODUCTION_SLOTS };
  const child = await startWorker(workerScript, env, { sitesDir, taskQueue, metricsPort: METRICS_PORT, slots });
  await sleep(2000);
  const memBefore = meminfo('MemAvailable') / 1024;
  const rssReady = memoryMb(child.pid!)?.rss ?? NaN;
  const serverRssReady = serverPids().reduce((t, p) => t + (memoryMb(p)?.rss ?? 0), 0);
  const sessionsBefore = new Set(sshdSessions());
  const handles: Array<WorkflowHandle<typeof LaunchGlidein>> = [];
  const idQuery = `WorkflowId STARTS_WITH "${prefix}"`;
  try {
    // Start.
    const ms0 = await scrape(METRICS_PORT);
    const setupCpu = new CpuWindow(() => [child.pid!]);
    const setupServerCpu = new CpuWindow(() => serverPids());
    const t0 = performance.now();
    for (let k = 0; k < n; k++) {
      handles.push(
        await env.client.workflow.start(LaunchGlidein, {
          taskQueue,
          workflowId: `${prefix}${k}`,
          args: [{ site: `bench-fleet-${k}`, lifetime: '6h' }],
        }),
      );
      if ((k + 1) % START_RATE === 0)
        await sleep(Math.max(0, (k + 1) * (1000 / START_RATE) - (performance.now() - t0)));
    }
    log(`  started ${n} workflows in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    let monitoring = 0;
    let failed = 0;
    for (;;) {
      monitoring = await countWhere(env, `${idQuery} AND GlideinPhase = "monitoring"`);
      failed = await countWhere(env, `${idQuery} AND ExecutionStatus != "Running"`);
      if (monitoring + failed >= n) break;
      if (performance.now() - t0 > SETUP_TIMEOUT_S * 1000) {
        log(`  setup timed out: ${monitoring} monitoring, ${failed} closed`);
        break;
      }
      await sleep(2000);
    }
    const setupS = (performance.now() - t0) / 1000;
    const sc = setupCpu.read();
    result.setup = {
      seconds: setupS,
      monitoring,
      failed,
      perMinute: (monitoring / setupS) * 60,
      metrics: histogramDelta(ms0, await scrape(METRICS_PORT)),
      cpu: { workerPct: sc.processPct, serverPct: setupServerCpu.read().processPct, machinePct: sc.machinePct },
    };
    log(`  ${monitoring}/${n} monitoring after ${setupS.toFixed(0)} s (${failed} closed)`);

    // Measure.
    const workerPid = child.pid!;
    const servers = serverPids();
    const win = new CpuWindow(() => [workerPid]);
    const serverWin = new CpuWindow(() => servers);
    const from = Date.now();
    const m0 = await scrape(METRICS_PORT);
    const rss: number[] = [];
    const queries: number[] = [];
    const until = performance.now() + WINDOW_S * 1000;
    while (performance.now() < until) {
      rss.push(memoryMb(workerPid)?.rss ?? NaN);
      for (let q = 0; q < 5; q++) {
        const h = handles[Math.floor(Math.random() * handles.length)];
        const q0 = performance.now();
        try {
          await h.query(statusQuery);
          queries.push(performance.now() - q0);
        } catch {
          // closed (failed) workflows do not answer fast; ignore
        }
      }
      await sleep(5000);
    }
    const to = Date.now();
    const m1 = await scrape(METRICS_PORT);
    const cpu = win.read();
    const serverCpu = serverWin.read();
    const { stats: ws, connects } = await ask<{ stats: WorkerStats; connects: Record<string, number> }>(
      child,
      { type: 'stats', from, to },
      'stats',
    );
    const memDrop = memBefore - meminfo('MemAvailable') / 1024;
    const newSessions = sshdSessions().filter((p) => !sessionsBefore.has(p));
    const own = benchProcesses(prefix, ports).map((p) => p.pid);
    const sitePss = [...own, ...newSessions].reduce((t, p) => t + (memoryMb(p)?.pss ?? 0), 0);
    const per = (x: number) => x / Math.max(1, monitoring);
    const workerGrowth = per((rss[0] ?? rssReady) - rssReady);
    const serverGrowth = per(servers.reduce((t, p) => t + (memoryMb(p)?.rss ?? 0), 0) - serverRssReady);
    result.window = {
      seconds: cpu.seconds,
      cpu: { workerPct: cpu.processPct, serverPct: serverCpu.processPct, machinePct: cpu.machinePct },
      workerRssMb: {
        ready: rssReady,
        start: rss[0],
        end: rss[rss.length - 1],
        max: Math.max(...rss.filter((x) => !Number.isNaN(x))),
      },
      memAvailableDropMb: memDrop,
      memPerGlideinMb: per(sitePss) + Math.max(0, workerGrowth) + Math.max(0, serverGrowth),
      sitePssPerGlideinMb: per(sitePss),
      workerGrowthPerGlideinMb: workerGrowth,
      serverGrowthPerGlideinMb: serverGrowth,
      processesPerGlidein: per(own.length + newSessions.length),
      extraOpenTunnels: (ws.activityRuns.openTunnel ?? 0) - n,
      queryMs: stats(queries),
      metrics: histogramDelta(m0, m1),
      worker: ws,
      connects,
      expectedChecks: Math.round((monitoring * (to - from)) / (parseDuration(INTERVAL) + (ws.checkMs.median || 0))),
    };
    if (result.window.extraOpenTunnels > 0)
      log(
        `  note: ${result.window.extraOpenTunnels} openTunnel runs beyond one per glidein (retries, e.g. ` +
          `tunnel ssh refused by the login sshd's MaxStartups, or tunnels reopened)`,
      );
    log(
      `  window ${cpu.seconds.toFixed(0)} s: machine ${cpu.machinePct.toFixed(0)}% busy, worker ` +
        `${cpu.processPct.toFixed(0)}% of a core, ${ws.checks} checks (expected ` +
        `~${result.window.expectedChecks}), late within round p50 ${num(ws.lateWithinRound.median, 0)} ms p99 ` +
        `${num(ws.lateWithinRound.p99, 0)} ms`,
    );

    // Stop and tear down.
    const t1 = performance.now();
    for (let k = 0; k < handles.length; k++) {
      await handles[k].signal(stopSignal).catch(() => undefined);
      if ((k + 1) % START_RATE === 0)
        await sleep(Math.max(0, (k + 1) * (1000 / START_RATE) - (performance.now() - t1)));
    }
    let running = n;
    while (performance.now() - t1 < SETUP_TIMEOUT_S * 1000) {
      running = await countWhere(env, `${idQuery} AND ExecutionStatus = "Running"`);
      if (running === 0) break;
      await sleep(2000);
    }
    const completed = await countWhere(env, `${idQuery} AND ExecutionStatus = "Completed"`);
    const leftovers = benchProcesses(prefix, ports).length;
    result.teardown = { seconds: (performance.now() - t1) / 1000, completed, notCompleted: n - completed, leftovers };
    log(
      `  teardown ${result.teardown.seconds.toFixed(0)} s: ${completed}/${n} completed, ${leftovers} ` +
        `leftover processes`,
    );
  } finally {
    if (child.connected) child.send({ type: 'shutdown' });
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(30_000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
    cleanUpBench({ idPrefix: prefix, ports, sitesDir });
  }
  return result;
}

async function main(): Promise<void> {
  workerScript = await buildWorker();
  await joinLocalSite();
  const before = machineState();
  console.log(
    `fleet scale: one worker process, N glideins, monitor.interval ${INTERVAL}, reportEvery ${REPORT}, ` +
      `window ${WINDOW_S} s; ${describeMachine(before)}\n`,
  );
  const cvmfsexecDir = await benchCvmfsexec('fleet');
  let env: TestWorkflowEnvironment | undefined;
  const results: FleetResult[] = [];
  try {
    env = await createTestEnv();
    let perGlideinMb: number | undefined;
    for (const n of FLEET) {
      const available = meminfo('MemAvailable') / 1024;
      if (perGlideinMb !== undefined && perGlideinMb * n > MEM_FRACTION * available) {
        const why =
          `projected ${Math.round(perGlideinMb * n)} MB (${perGlideinMb.toFixed(1)} MB per glidein at the ` +
          `previous N) > ${MEM_FRACTION} × ${Math.round(available)} MB available`;
        console.log(`N=${n}: skipped: ${why}`);
        results.push({ n, skipped: why, activitySlots: SLOTS ? Number(SLOTS) : PRODUCTION_SLOTS });
        continue;
      }
      console.log(`N=${n}:`);
      const r = await runFleet(env, n, cvmfsexecDir, (s) => console.log(s));
      results.push(r);
      // Written after every N: a long run that is interrupted keeps what it measured.
      writeResults(NAME, {
        bench: 'fleet-scale',
        partial: true,
        machine: { before, now: machineState() },
        settings: settings(),
        results,
      });
      report([r], before, machineState(), false);
      if (r.window && r.window.memPerGlideinMb > 0) perGlideinMb = r.window.memPerGlideinMb;
    }
  } finally {
    await env?.teardown();
    cleanUpBench({ idPrefix: 'bench-fleet-', cvmfsexecDir });
    await leaveLocalSite();
  }
  const after = machineState();
  report(results, before, after, true);
}

function settings() {
  return {
    fleet: FLEET,
    interval: INTERVAL,
    reportEvery: REPORT,
    windowSeconds: WINDOW_S,
    startRate: START_RATE,
    activitySlots: SLOTS ?? PRODUCTION_SLOTS,
  };
}

function report(
  results: FleetResult[],
  before: ReturnType<typeof machineState>,
  after: ReturnType<typeof machineState>,
  final: boolean,
): void {
  const ran = results.filter((r) => r.window);
  console.log();
  console.log(
    table(
      [
        'N',
        'setup s',
        'setup /min',
        'machine CPU %',
        'worker CPU % (1 core)',
        'server CPU %',
        'worker RSS MB ready/max',
        'MB per glidein',
        'checks done/expected',
        'check ms p50/p99',
        'late in round p50/p99 ms',
        'new round after p50/max ms',
        'query ms p50/p99',
      ],
      ran.map((r) => {
        const w = r.window!;
        return [
          r.n,
          num(r.setup!.seconds, 0),
          num(r.setup!.perMinute, 0),
          num(w.cpu.machinePct, 0),
          num(w.cpu.workerPct, 0),
          num(w.cpu.serverPct, 0),
          `${num(w.workerRssMb.ready, 0)}/${num(w.workerRssMb.max, 0)}`,
          num(w.memPerGlideinMb, 1),
          `${w.worker.checks}/${w.expectedChecks}`,
          `${num(w.worker.checkMs.median, 0)}/${num(w.worker.checkMs.p99, 0)}`,
          `${num(w.worker.lateWithinRound.median, 0)}/${num(w.worker.lateWithinRound.p99, 0)}`,
          `${num(w.worker.lateNewRound.median, 0)}/${num(w.worker.lateNewRound.max, 0)}`,
          `${num(w.queryMs.median, 0)}/${num(w.queryMs.p99, 0)}`,
        ];
      }),
    ),
  );
  console.log();
  console.log(
    'During setup (all workflows starting): CPU, and the SDK histograms (mean / p50 / p99 ms; p50/p99 are ' +
      'bucket bounds):',
  );
  console.log(
    table(
      [
        'N',
        'machine CPU %',
        'worker CPU %',
        'server CPU %',
        'WFT schedule→start',
        'WFT execution',
        'activity schedule→start',
        'workflow tasks',
      ],
      ran.map((r) => {
        const m = r.setup!.metrics;
        const h = (k: string) => (m[k] ? `${num(m[k].meanMs, 1)}/${num(m[k].p50Ms, 0)}/${num(m[k].p99Ms, 0)}` : '-');
        return [
          r.n,
          num(r.setup!.cpu.machinePct, 0),
          num(r.setup!.cpu.workerPct, 0),
          num(r.setup!.cpu.serverPct, 0),
          h('workflow_task_schedule_to_start_latency'),
          h('workflow_task_execution_latency'),
          h('activity_schedule_to_start_latency'),
          m.workflow_task_execution_latency?.count ?? 0,
        ];
      }),
    ),
  );
  console.log();
  console.log(
    'While monitoring (the window): SDK histograms as above, monitor command times in the worker (incl. ' +
      'waiting for a channel), memory, teardown:',
  );
  console.log(
    table(
      [
        'N',
        'WFT schedule→start',
        'WFT execution',
        'activity schedule→start',
        'inspect p50/p99',
        'condor_status p50/p99',
        'site MB/glidein',
        'processes/glidein',
        'teardown s',
        'completed',
        'leftovers',
      ],
      ran.map((r) => {
        const m = r.window!.metrics;
        const h = (k: string) => (m[k] ? `${num(m[k].meanMs, 1)}/${num(m[k].p50Ms, 0)}/${num(m[k].p99Ms, 0)}` : '-');
        const c = (k: string) =>
          r.window!.worker.commandMs[k]
            ? `${num(r.window!.worker.commandMs[k].median, 0)}/${num(r.window!.worker.commandMs[k].p99, 0)}`
            : '-';
        return [
          r.n,
          h('workflow_task_schedule_to_start_latency'),
          h('workflow_task_execution_latency'),
          h('activity_schedule_to_start_latency'),
          c('monitor inspect'),
          c('monitor apptainer exec condor_status'),
          num(r.window!.sitePssPerGlideinMb, 1),
          num(r.window!.processesPerGlidein, 1),
          num(r.teardown?.seconds, 0),
          `${r.teardown?.completed ?? '-'}/${r.n}`,
          r.teardown?.leftovers ?? '-',
        ];
      }),
    ),
  );
  for (const r of results.filter((x) => x.skipped)) console.log(`N=${r.n} skipped: ${r.skipped}`);
  console.log(`machine ${final ? 'after' : 'now'}: ${describeMachine(after)}`);
  if (!final) return;
  const file = writeResults(NAME, { bench: 'fleet-scale', machine: { before, after }, settings: settings(), results });
  console.log(`wrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
