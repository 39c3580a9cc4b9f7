/**
 * A GlideinFleet of N (BENCH_FLEET_SIZE, default 200) growing on the loopback site, side by side with its anchor,
 * one after the other in one run, each from an empty site and with its own worker process (bench/fleet-worker.ts:
 * production's set-up, compiled, plus timing):
 *   A  a real GlideinFleet workflow (count N) on a profile whose `fleet:` section allows N;
 *   B  the same N LaunchGlidein workflows started by this client at the pace that profile allows
 *      (fleet.startsPerMinute in any rolling minute, at most fleet.maxStarting in setup), as fleet-scale does.
 * For each: time to full (start until N glideins are monitoring), starts per minute (the most in any rolling 60 s,
 * against the profile's limit), the worker's TCP connections to the login sshd (and the onward ones to the node
 * sshd through it), site commands per glidein per hour while steady (a window of BENCH_FLEET_WINDOW seconds; every
 * command of the loopback site goes through the login sshd), the worker's CPU and RSS, for A the fleet's own
 * history length and observeFleet's time; then the drain (A: drain-all and the fleet's result; B: `drain` to each)
 * until nothing of it is left on the site.
 *
 *   npx ts-node bench/fleet-growth.ts
 *   env: BENCH_FLEET_SIZE (200)  BENCH_FLEET_WINDOW (120 s)  BENCH_FLEET_INTERVAL (60s: monitor.interval)
 *        BENCH_FLEET_MAX_STARTING (20)  BENCH_FLEET_STARTS_PER_MINUTE (120)  BENCH_FLEET_MAX_FAILED_STARTS (10)
 *        BENCH_FLEET_FAILURE_WINDOW (10m)  BENCH_FLEET_PROBE_AFTER (30s)  BENCH_FLEET_MAX_PROBE_DELAY (5m)
 *        BENCH_FLEET_RECONCILE_EVERY (5s)  BENCH_FLEET_SETUP_TIMEOUT (1800 s)  BENCH_FLEET_MODES (A,B)
 *        BENCH_RESULTS_NAME (fleet-growth)
 */
import type { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { parseDuration } from '../src/common/duration';
import { drainSignal } from '../src/workflows/messages';
import { drainAllSignal, fleetStatusQuery, type FleetView } from '../src/workflows/fleet-messages';
import type { FleetResult } from '../src/workflows/fleet';
import { createTestEnv } from '../sandbox/temporal';
import { joinLocalSite, leaveLocalSite } from '../sandbox/local-site';
import { clientPorts, jumpedPorts } from './sockets';
import {
  ask,
  benchCvmfsexec,
  benchProcesses,
  benchSites,
  buildWorker,
  cleanUpBench,
  CpuWindow,
  describeMachine,
  envInt,
  freePortRange,
  machineState,
  manyGlideins,
  memoryMb,
  num,
  sleep,
  startWorker,
  table,
  writeResults,
  type Stats,
} from './lib';

const N = envInt('BENCH_FLEET_SIZE', 200);
const WINDOW_S = envInt('BENCH_FLEET_WINDOW', 120);
const INTERVAL = process.env.BENCH_FLEET_INTERVAL ?? '60s';
const SETUP_TIMEOUT_S = envInt('BENCH_FLEET_SETUP_TIMEOUT', 1800);
const MODES = (process.env.BENCH_FLEET_MODES ?? 'A,B').split(',').map((m) => m.trim().toUpperCase());
const NAME = process.env.BENCH_RESULTS_NAME ?? 'fleet-growth';
const FLEET_LIMITS = {
  maxGlideins: N,
  maxStarting: envInt('BENCH_FLEET_MAX_STARTING', 20),
  startsPerMinute: envInt('BENCH_FLEET_STARTS_PER_MINUTE', 120),
  maxFailedStarts: envInt('BENCH_FLEET_MAX_FAILED_STARTS', 10),
  failureWindow: process.env.BENCH_FLEET_FAILURE_WINDOW ?? '10m',
  probeAfter: process.env.BENCH_FLEET_PROBE_AFTER ?? '30s',
  maxProbeDelay: process.env.BENCH_FLEET_MAX_PROBE_DELAY ?? '5m',
  reconcileEvery: process.env.BENCH_FLEET_RECONCILE_EVERY ?? '5s',
};
const PROFILE = 'bench-growth';
/** The login sshd the worker reaches (sites/local.yaml), and the worker node's sshd behind it. */
const LOGIN = { ip: '127.0.0.1', port: 2201 };
const NODE = { ip: '127.0.0.2', port: 2202 };
const MINUTE = 60_000;

interface ModeResult {
  mode: 'A' | 'B';
  what: string;
  taskQueue: string;
  setup: {
    seconds: number;
    monitoring: number;
    failed: number;
    timedOut: boolean;
    /** A: when the fleet's own status first said N running. */
    fleetSaysFullSeconds?: number;
    /** LaunchGlidein workflows started (replacements of failed ones included). */
    starts: number;
    /** The most starts in any rolling 60 s window. */
    maxStartsPerMinute: number;
    /** The most glideins in setup at once: A as the fleet's status said, B as this client counted. */
    maxStarting: number;
  };
  ssh: {
    /** The worker's established TCP connections to the login sshd: the most at any sample (setup and window). */
    loginConnectionsMax: number;
    /** The onward connections the login sshd opened to the worker node's sshd for the worker (ssh -J). */
    nodeConnectionsMax: number;
    /** SshPool's connects per target over the whole run (reconnects included). */
    poolConnects: Record<string, number>;
    samples: number;
  };
  window?: {
    seconds: number;
    commands: number;
    commandsByTarget: Record<string, number>;
    commandsByWhat: Record<string, number>;
    commandsByActivityType: Record<string, number>;
    perGlideinPerHour: number;
    naivePerGlideinPerHour: number;
    workerCpuPct: number;
    machineCpuPct: number;
    workerRssMb: { start: number; max: number; end: number };
    observeFleetMs?: Stats;
    monitorChecks: number;
  };
  fleet?: { historyLength: number; runs: number; rounds?: number; status?: Partial<FleetView> };
  teardown?: {
    seconds: number;
    endReason?: string;
    completed: number;
    failed: number;
    stillRunning: number;
    leftovers: number;
  };
}

function maxInRollingMinute(times: number[]): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; j < t.length; j++) {
    while (t[j] - t[i] >= MINUTE) i++;
    best = Math.max(best, j - i + 1);
  }
  return best;
}

async function count(env: TestWorkflowEnvironment, query: string): Promise<number> {
  return (await env.client.workflow.count(query)).count;
}

async function listIds(env: TestWorkflowEnvironment, query: string): Promise<Array<{ id: string; start: number }>> {
  const out: Array<{ id: string; start: number }> = [];
  for await (const w of env.client.workflow.list({ query }))
    out.push({ id: w.workflowId, start: w.startTime.getTime() });
  return out;
}

/** Samples the worker's SSH connections: established TCP to the login sshd, and the sshd's onward ones to the node. */
class SshSampler {
  loginMax = 0;
  nodeMax = 0;
  samples = 0;
  constructor(private readonly pid: number) {}
  sample(): void {
    const login = clientPorts([this.pid], LOGIN.ip, LOGIN.port);
    const node = jumpedPorts(login, LOGIN.ip, LOGIN.port, NODE.ip, NODE.port);
    this.loginMax = Math.max(this.loginMax, login.length);
    this.nodeMax = Math.max(this.nodeMax, node.length);
    this.samples++;
  }
}

async function runMode(
  env: TestWorkflowEnvironment,
  mode: 'A' | 'B',
  workerScript: string,
  sitesDir: string,
  tag: string,
  prefix: string,
  ports: number[],
  log: (s: string) => void,
): Promise<ModeResult> {
  const taskQueue = `bench-growth-${tag}-${mode.toLowerCase()}`;
  // A's glideins are glidein-<fleet>-<slot>; B's are <prefix>b-<k>. Both fall under cleanUpBench({ idPrefix: prefix }).
  const fleet = `${prefix}a`;
  const idPrefix = mode === 'A' ? `glidein-${fleet}-` : `${prefix}b-`;
  const ids = `WorkflowType = "LaunchGlidein" AND WorkflowId STARTS_WITH "${idPrefix}"`;
  const left = benchProcesses(prefix, ports).length;
  if (left > 0) throw new Error(`the site is not empty before ${mode}: ${left} processes of ${prefix}`);
  const child: ChildProcess = await startWorker(workerScript, env, { sitesDir, taskQueue });
  const pid = child.pid!;
  const ssh = new SshSampler(pid);
  const result: ModeResult = {
    mode,
    what: mode === 'A' ? `GlideinFleet fleet-${fleet} (count ${N})` : `${N} LaunchGlidein started by the client`,
    taskQueue,
    setup: {
      seconds: NaN,
      monitoring: 0,
      failed: 0,
      timedOut: false,
      starts: 0,
      maxStartsPerMinute: 0,
      maxStarting: 0,
    },
    ssh: { loginConnectionsMax: 0, nodeConnectionsMax: 0, poolConnects: {}, samples: 0 },
  };
  let fleetHandle: WorkflowHandle | undefined;
  const bHandles: WorkflowHandle[] = [];
  try {
    await sleep(1000);
    // Grow.
    const t0 = performance.now();
    let pacer: Promise<void> = Promise.resolve();
    let stopPacer = false;
    if (mode === 'A') {
      fleetHandle = await env.client.workflow.start('GlideinFleet', {
        taskQueue,
        workflowId: `fleet-${fleet}`,
        args: [{ site: PROFILE, count: N, fleet }],
      });
    } else {
      pacer = paceStarts(env, taskQueue, idPrefix, ids, bHandles, result, () => stopPacer);
    }
    let fleetMaxStarting = 0;
    let nextSsh = 0;
    for (;;) {
      result.setup.monitoring = await count(
        env,
        `${ids} AND ExecutionStatus = "Running" AND GlideinPhase = "monitoring"`,
      );
      result.setup.failed = await count(env, `${ids} AND ExecutionStatus != "Running"`);
      if (fleetHandle) {
        const view = await fleetHandle.query(fleetStatusQuery).catch(() => undefined);
        if (view) {
          fleetMaxStarting = Math.max(fleetMaxStarting, view.starting);
          if (view.running >= N && result.setup.fleetSaysFullSeconds === undefined)
            result.setup.fleetSaysFullSeconds = (performance.now() - t0) / 1000;
        }
      }
      if (performance.now() >= nextSsh) {
        ssh.sample();
        nextSsh = performance.now() + 5000;
      }
      if (result.setup.monitoring >= N) break;
      if (performance.now() - t0 > SETUP_TIMEOUT_S * 1000) {
        result.setup.timedOut = true;
        break;
      }
      await sleep(1000);
    }
    result.setup.seconds = (performance.now() - t0) / 1000;
    stopPacer = true;
    await pacer;
    const started = await listIds(env, ids);
    result.setup.starts = started.length;
    result.setup.maxStartsPerMinute = maxInRollingMinute(started.map((s) => s.start));
    if (mode === 'A') result.setup.maxStarting = fleetMaxStarting;
    log(
      `  ${mode}: ${result.setup.monitoring}/${N} monitoring after ${num(result.setup.seconds, 0)} s` +
        `${result.setup.timedOut ? ' (timed out)' : ''}; ${result.setup.starts} starts, at most ` +
        `${result.setup.maxStartsPerMinute} in a rolling minute, ${result.setup.failed} closed`,
    );

    // Steady.
    const cpu = new CpuWindow(() => [pid]);
    const from = Date.now();
    const rss: number[] = [];
    const until = performance.now() + WINDOW_S * 1000;
    while (performance.now() < until) {
      rss.push(memoryMb(pid)?.rss ?? NaN);
      ssh.sample();
      await sleep(Math.min(5000, Math.max(0, until - performance.now())));
    }
    const to = Date.now();
    const c = cpu.read();
    rss.push(memoryMb(pid)?.rss ?? NaN);
    const { stats: ws, connects } = await ask<{
      stats: {
        checks: number;
        commandCounts: {
          total: number;
          byTarget: Record<string, number>;
          byWhat: Record<string, number>;
          byActivityType: Record<string, number>;
        };
        activityMs: Record<string, Stats>;
      };
      connects: Record<string, number>;
    }>(child, { type: 'stats', from, to }, 'stats');
    const glideins = Math.max(1, result.setup.monitoring);
    const hours = (to - from) / 3_600_000;
    const rssOk = rss.filter((x) => !Number.isNaN(x));
    result.window = {
      seconds: (to - from) / 1000,
      commands: ws.commandCounts.total,
      commandsByTarget: ws.commandCounts.byTarget,
      commandsByWhat: ws.commandCounts.byWhat,
      commandsByActivityType: ws.commandCounts.byActivityType,
      perGlideinPerHour: ws.commandCounts.total / glideins / hours,
      naivePerGlideinPerHour: (2 * 3_600_000) / parseDuration(INTERVAL),
      workerCpuPct: c.processPct,
      machineCpuPct: c.machinePct,
      workerRssMb: { start: rssOk[0], max: Math.max(...rssOk), end: rssOk[rssOk.length - 1] },
      observeFleetMs: ws.activityMs.observeFleet,
      monitorChecks: ws.checks,
    };
    result.ssh.poolConnects = connects;
    log(
      `  ${mode}: window ${num(result.window.seconds, 0)} s: ${ws.commandCounts.total} site commands ` +
        `(${num(result.window.perGlideinPerHour, 1)} per glidein per hour), worker ${num(c.processPct, 1)}% of ` +
        `a core, RSS max ${num(result.window.workerRssMb.max, 0)} MB`,
    );
    if (fleetHandle) {
      const d = await fleetHandle.describe();
      const view = await fleetHandle.query(fleetStatusQuery).catch(() => undefined);
      result.fleet = {
        historyLength: d.historyLength,
        runs: await count(env, `WorkflowId = "fleet-${fleet}"`),
        rounds: view?.rounds,
        status: view && {
          phase: view.phase,
          desired: view.desired,
          target: view.target,
          running: view.running,
          starting: view.starting,
          draining: view.draining,
          failedInWindow: view.failedInWindow,
        },
      };
    }

    // Drain.
    const t1 = performance.now();
    if (fleetHandle) {
      await fleetHandle.signal(drainAllSignal);
    } else {
      for (const h of bHandles) await h.signal(drainSignal).catch(() => undefined);
    }
    let endReason: string | undefined;
    const fleetDone = fleetHandle
      ? (fleetHandle.result() as Promise<FleetResult>).then(
          (r) => (endReason = r.endReason),
          (err: unknown) => (endReason = `failed: ${err instanceof Error ? err.message : String(err)}`),
        )
      : Promise.resolve();
    let running = N;
    let leftovers = 0;
    while (performance.now() - t1 < SETUP_TIMEOUT_S * 1000) {
      running = await count(env, `${ids} AND ExecutionStatus = "Running"`);
      leftovers = benchProcesses(prefix, ports).length;
      if (running === 0 && leftovers === 0 && (!fleetHandle || endReason !== undefined)) break;
      await sleep(1000);
    }
    await Promise.race([fleetDone, sleep(1000)]);
    result.teardown = {
      seconds: (performance.now() - t1) / 1000,
      endReason,
      completed: await count(env, `${ids} AND ExecutionStatus = "Completed"`),
      failed: await count(env, `${ids} AND ExecutionStatus != "Completed" AND ExecutionStatus != "Running"`),
      stillRunning: running,
      leftovers,
    };
    result.ssh.loginConnectionsMax = ssh.loginMax;
    result.ssh.nodeConnectionsMax = ssh.nodeMax;
    result.ssh.samples = ssh.samples;
    log(
      `  ${mode}: teardown ${num(result.teardown.seconds, 0)} s${endReason ? ` (fleet: ${endReason})` : ''}: ` +
        `${result.teardown.completed} completed, ${result.teardown.failed} not, ${running} running, ` +
        `${leftovers} leftover processes`,
    );
  } finally {
    if (child.connected) child.send({ type: 'shutdown' });
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(30_000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
    const found = cleanUpBench({ idPrefix: prefix, ports });
    if (found.processes > 0) log(`  ${mode}: clean-up killed ${found.processes} leftover processes`);
  }
  return result;
}

/**
 * B's client: starts LaunchGlidein workflows by the fleet's rules — at most startsPerMinute in any rolling minute
 * and at most maxStarting still planning, in setup or registering (as the fleet's slotStateOf counts them; a run
 * that closed no longer counts) — until N have been started.
 */
async function paceStarts(
  env: TestWorkflowEnvironment,
  taskQueue: string,
  idPrefix: string,
  ids: string,
  handles: WorkflowHandle[],
  result: ModeResult,
  stop: () => boolean,
): Promise<void> {
  const starts: number[] = [];
  const open = new Set<string>();
  while (handles.length < N && !stop()) {
    if (open.size > 0) {
      const done = new Set(
        (
          await listIds(
            env,
            `${ids} AND (ExecutionStatus != "Running" OR GlideinPhase = "monitoring" OR GlideinPhase = "teardown")`,
          )
        ).map((w) => w.id),
      );
      for (const id of [...open]) if (done.has(id)) open.delete(id);
    }
    const now = Date.now();
    while (starts.length && now - starts[0] >= MINUTE) starts.shift();
    const room = Math.min(
      FLEET_LIMITS.maxStarting - open.size,
      FLEET_LIMITS.startsPerMinute - starts.length,
      N - handles.length,
    );
    for (let k = 0; k < room; k++) {
      const workflowId = `${idPrefix}${handles.length + 1}`;
      handles.push(
        await env.client.workflow.start('LaunchGlidein', { taskQueue, workflowId, args: [{ site: PROFILE }] }),
      );
      starts.push(Date.now());
      open.add(workflowId);
    }
    result.setup.maxStarting = Math.max(result.setup.maxStarting, open.size);
    await sleep(500);
  }
}

async function main(): Promise<void> {
  const workerScript = await buildWorker();
  await joinLocalSite();
  const before = machineState();
  const tag = Date.now().toString(36);
  const prefix = `bench-growth-${tag}-`;
  const range = freePortRange(N + 10, 20_000);
  const ports = Array.from({ length: range.last - range.first + 1 }, (_, k) => range.first + k);
  console.log(
    `fleet growth: N=${N}, monitor.interval ${INTERVAL}, window ${WINDOW_S} s, SOCKS ports ` +
      `${range.first}-${range.last}, fleet limits ${JSON.stringify(FLEET_LIMITS)}; ` +
      `${describeMachine(before)}\n`,
  );
  const cvmfsexecDir = await benchCvmfsexec('growth');
  const sitesDir = benchSites([
    {
      name: PROFILE,
      change: (p) => {
        manyGlideins({ ports: range, cvmfsexecDir, interval: INTERVAL })(p);
        p.fleet = { ...FLEET_LIMITS };
      },
    },
  ]);
  let env: TestWorkflowEnvironment | undefined;
  const results: ModeResult[] = [];
  const settings = { n: N, interval: INTERVAL, windowSeconds: WINDOW_S, fleet: FLEET_LIMITS, ports: range, prefix };
  try {
    env = await createTestEnv();
    for (const mode of MODES) {
      if (mode !== 'A' && mode !== 'B') throw new Error(`BENCH_FLEET_MODES: unknown mode ${mode}`);
      console.log(`${mode}:`);
      results.push(await runMode(env, mode, workerScript, sitesDir, tag, prefix, ports, (s) => console.log(s)));
      writeResults(NAME, { bench: 'fleet-growth', partial: true, machine: { before }, settings, results });
    }
  } finally {
    await env?.teardown();
    cleanUpBench({ idPrefix: prefix, ports, cvmfsexecDir, sitesDir });
    await leaveLocalSite();
  }
  const after = machineState();
  report(results, before, after);
  const file = writeResults(NAME, { bench: 'fleet-growth', machine: { before, after }, settings, results });
  console.log(`wrote ${file}`);
}

function report(
  results: ModeResult[],
  before: ReturnType<typeof machineState>,
  after: ReturnType<typeof machineState>,
) {
  const limit = FLEET_LIMITS.startsPerMinute;
  const rows: Array<[string, (r: ModeResult) => string]> = [
    ['glideins monitoring / closed during growth', (r) => `${r.setup.monitoring}/${N} / ${r.setup.failed}`],
    [
      'time to full (start → N monitoring), s',
      (r) =>
        `${num(r.setup.seconds, 0)}${r.setup.timedOut ? ' (timed out)' : ''}` +
        (r.setup.fleetSaysFullSeconds !== undefined ? ` (fleet status: ${num(r.setup.fleetSaysFullSeconds, 0)})` : ''),
    ],
    ['LaunchGlidein starts', (r) => String(r.setup.starts)],
    [
      `starts per minute, most in a rolling 60 s (limit ${limit})`,
      (r) =>
        `${r.setup.maxStartsPerMinute}` +
        (r.mode === 'A' ? ` — honoured: ${r.setup.maxStartsPerMinute <= limit ? 'yes' : 'no'}` : ''),
    ],
    [`most in setup at once (limit ${FLEET_LIMITS.maxStarting})`, (r) => String(r.setup.maxStarting)],
    [
      'worker SSH connections: login sshd / node sshd (most seen)',
      (r) => `${r.ssh.loginConnectionsMax} / ${r.ssh.nodeConnectionsMax} (${r.ssh.samples} samples)`,
    ],
    [
      'SshPool connects per target',
      (r) =>
        Object.entries(r.ssh.poolConnects)
          .map(([k, v]) => `${k.includes('>') ? 'node' : 'login'} ${v}`)
          .join(', ') || '-',
    ],
    [
      `site commands per glidein per hour, steady (naive ${num((2 * 3_600_000) / parseDuration(INTERVAL), 0)})`,
      (r) =>
        r.window
          ? `${num(r.window.perGlideinPerHour, 1)} (${r.window.commands} in ${num(r.window.seconds, 0)} s)`
          : '-',
    ],
    [
      'site commands in window by command',
      (r) =>
        r.window
          ? Object.entries(r.window.commandsByWhat)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ') || 'none'
          : '-',
    ],
    ['worker CPU % of a core, steady', (r) => num(r.window?.workerCpuPct, 1)],
    ['machine CPU %, steady', (r) => num(r.window?.machineCpuPct, 0)],
    [
      'worker RSS MB, steady start / max',
      (r) => (r.window ? `${num(r.window.workerRssMb.start, 0)} / ${num(r.window.workerRssMb.max, 0)}` : '-'),
    ],
    [
      'observeFleet ms, median / p90 (steady)',
      (r) =>
        r.window?.observeFleetMs
          ? `${num(r.window.observeFleetMs.median, 0)} / ${num(r.window.observeFleetMs.p90, 0)} ` +
            `(${r.window.observeFleetMs.n} rounds)`
          : '-',
    ],
    [
      'fleet history length (runs)',
      (r) => (r.fleet ? `${r.fleet.historyLength} (${r.fleet.runs} run${r.fleet.runs === 1 ? '' : 's'})` : '-'),
    ],
    [
      'teardown s (until the site is empty)',
      (r) =>
        r.teardown
          ? `${num(r.teardown.seconds, 0)}${r.teardown.endReason ? ` (endReason ${r.teardown.endReason})` : ''}`
          : '-',
    ],
    [
      'completed / not / still running / leftover processes',
      (r) =>
        r.teardown
          ? `${r.teardown.completed} / ${r.teardown.failed} / ${r.teardown.stillRunning} / ${r.teardown.leftovers}`
          : '-',
    ],
  ];
  console.log();
  console.log(
    table(
      ['', ...results.map((r) => (r.mode === 'A' ? 'A: GlideinFleet' : 'B: client-paced launches'))],
      rows.map(([label, f]) => [label, ...results.map(f)]),
    ),
  );
  console.log(`machine before: ${describeMachine(before)}`);
  console.log(`machine after:  ${describeMachine(after)}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
