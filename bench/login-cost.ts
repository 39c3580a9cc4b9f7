/**
 * Login-node cost as a figure (issue 14): site commands and their bytes per glidein during setup, per hour while
 * monitoring, and during teardown, on the loopback site —
 *   1      one LaunchGlidein alone;
 *   fleet  BENCH_FLEET LaunchGlidein at once (shared queries are counted once and divided among the glideins);
 *   script bench/manual-lifecycle.sh (bash + OpenSSH ControlMaster, the same commands), counted by its COUNT_LOG;
 *   naive  monitoring done naively, computed: one condor_status and one squeue per glidein per interval.
 * The worker is bench/fleet-worker.ts (production's set-up, compiled), whose TimedExecutor counts every command
 * and its bytes: the command line as sent and its stdin; its stdout and stderr (payload, not SSH framing).
 *
 * What counts as a login-node command: every command the worker runs on the site. Commands for the login node
 * run there; commands for the worker node cross it — here as a channel through the login sshd's jump (the
 * loopback site's `workerNode.via: jump`), at JSC as an `srun --overlap` process on the login node. Both are
 * counted, and the tables say which target each went to.
 *
 * Phases: setup is every command of a setup activity (not monitorGlidein) from the first start until all are
 * monitoring; monitoring is every command in a window of BENCH_WINDOW seconds once all are monitoring (after one
 * interval to settle); teardown is every command of a teardown activity from the stop signal until nothing is
 * left on the site. The script has no monitoring. Target (printed, not asserted): ≤ 1 login-node command per
 * glidein per monitor interval for the fleet, judged per check (a check waits an interval after the previous one
 * ended, so on a slow machine there are fewer checks than intervals; the figure per configured interval is beside it).
 *
 *   flock /tmp/glidein-site.lock npx ts-node bench/login-cost.ts
 *   env: BENCH_FLEET (100)  BENCH_INTERVAL (10s: monitor.interval)  BENCH_WINDOW (60 s)  BENCH_START_RATE (4/s)
 *        BENCH_SETUP_TIMEOUT (900 s)
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parseDuration } from '../src/common/duration';
import { SiteRegistry } from '../src/site/load';
import { stopSignal } from '../src/workflows/messages';
import { TEARDOWN_STEP_NAMES } from '../src/workflows/steps';
import { joinLocalSite, leaveLocalSite } from '../sandbox/local-site';
import { createTestEnv } from '../sandbox/temporal';
import type { CommandGroup } from './fleet-worker';
import {
  ask,
  benchCvmfsexec,
  benchProcesses,
  benchSites,
  buildWorker,
  cleanUpBench,
  describeMachine,
  envInt,
  freePortRange,
  freePorts,
  machineState,
  manyGlideins,
  num,
  sleep,
  startWorker,
  table,
  writeResults,
} from './lib';
import { closeControlMaster, runB } from './lifecycle-runs';

const FLEET = envInt('BENCH_FLEET', 100);
const INTERVAL = process.env.BENCH_INTERVAL ?? '10s';
const INTERVAL_S = parseDuration(INTERVAL) / 1000;
const WINDOW_S = envInt('BENCH_WINDOW', 60);
const START_RATE = envInt('BENCH_START_RATE', 4);
const SETUP_TIMEOUT_S = envInt('BENCH_SETUP_TIMEOUT', 900);
/** Commands per glidein per interval with nothing shared: one condor_status and one squeue. */
const NAIVE_PER_INTERVAL = 2;
const TARGET_PER_INTERVAL = 1;
const PROFILE = 'bench-cost';
const SCRIPT_PROFILE = 'bench-cost-script';
/** The bash script's steps named as LaunchGlidein's: those of teardown, and the rest (`connect` included) setup. */
const TEARDOWN = new Set<string>(TEARDOWN_STEP_NAMES);

/** Commands and bytes (sent, received), summed. */
interface Cost {
  commands: number;
  sentBytes: number;
  receivedBytes: number;
}

const ZERO: Cost = { commands: 0, sentBytes: 0, receivedBytes: 0 };
const add = (a: Cost, b: Cost): Cost => ({
  commands: a.commands + b.commands,
  sentBytes: a.sentBytes + b.sentBytes,
  receivedBytes: a.receivedBytes + b.receivedBytes,
});
const scale = (a: Cost, f: number): Cost => ({
  commands: a.commands * f,
  sentBytes: a.sentBytes * f,
  receivedBytes: a.receivedBytes * f,
});

/** One phase of one run: the total, and the commands by target and kind. */
interface Phase {
  seconds: number;
  total: Cost;
  groups: CommandGroup[];
}

interface LaunchRun {
  glideins: number;
  monitoring: number;
  setup: Phase;
  /** checks: the monitor checks (one per glidein and interval, each an inspect) that started in the window. */
  monitor: Phase & { checks: number };
  teardown: Phase & { completed: number; leftovers: number };
}

interface WindowStats {
  checks: number;
  commandCounts: { groups: CommandGroup[] };
}

/** The loopback site's node target reads "user@node (via login)": it crosses the login node. */
const where = (target: string) => (target.includes('(via ') ? 'node via login' : 'login');

function phase(groups: CommandGroup[], seconds: number, keep: (g: CommandGroup) => boolean): Phase {
  const kept = groups.filter(keep);
  return { seconds, total: kept.reduce<Cost>(add, ZERO), groups: kept };
}

async function count(env: TestWorkflowEnvironment, query: string): Promise<number> {
  return (await env.client.workflow.count(query)).count;
}

/** N LaunchGlidein through setup, a monitoring window, and teardown, with the worker's command counts for each. */
async function launchRun(
  env: TestWorkflowEnvironment,
  worker: ChildProcess,
  taskQueue: string,
  idPrefix: string,
  n: number,
  ports: number[],
  log: (s: string) => void,
): Promise<LaunchRun> {
  const windowStats = (from: number, to: number) =>
    ask<{ stats: WindowStats }>(worker, { type: 'stats', from, to }, 'stats').then((r) => r.stats);
  const stats = async (from: number, to: number) => (await windowStats(from, to)).commandCounts.groups;
  const ids = `WorkflowType = "LaunchGlidein" AND WorkflowId STARTS_WITH "${idPrefix}"`;
  const notMonitor = (g: CommandGroup) => g.activityType !== 'monitorGlidein';

  const t0 = Date.now();
  const handles: WorkflowHandle[] = [];
  for (let k = 0; k < n; k++) {
    handles.push(
      await env.client.workflow.start('LaunchGlidein', {
        taskQueue,
        workflowId: `${idPrefix}${k + 1}`,
        args: [{ site: PROFILE }],
      }),
    );
    if ((k + 1) % START_RATE === 0) await sleep(Math.max(0, t0 + ((k + 1) * 1000) / START_RATE - Date.now()));
  }
  let monitoring = 0;
  while (Date.now() - t0 < SETUP_TIMEOUT_S * 1000) {
    monitoring = await count(env, `${ids} AND ExecutionStatus = "Running" AND GlideinPhase = "monitoring"`);
    if (monitoring >= n) break;
    await sleep(1000);
  }
  const t1 = Date.now();
  const setup = phase(await stats(t0, t1), (t1 - t0) / 1000, notMonitor);
  log(`  ${monitoring}/${n} monitoring after ${num((t1 - t0) / 1000, 0)} s; ${setup.total.commands} setup commands`);
  if (monitoring < n) log(`  (setup timed out after ${SETUP_TIMEOUT_S} s: the per-glidein figures divide by ${n})`);

  await sleep(INTERVAL_S * 1000);
  const w0 = Date.now();
  await sleep(WINDOW_S * 1000);
  const w1 = Date.now();
  const ws = await windowStats(w0, w1);
  const monitor = { ...phase(ws.commandCounts.groups, (w1 - w0) / 1000, () => true), checks: ws.checks };
  log(`  window ${num((w1 - w0) / 1000, 0)} s: ${monitor.total.commands} commands, ${monitor.checks} checks`);

  const t2 = Date.now();
  for (const h of handles) await h.signal(stopSignal).catch(() => undefined);
  let running = n;
  let leftovers = 0;
  while (Date.now() - t2 < SETUP_TIMEOUT_S * 1000) {
    running = await count(env, `${ids} AND ExecutionStatus = "Running"`);
    leftovers = benchProcesses(idPrefix, ports).length;
    if (running === 0 && leftovers === 0) break;
    await sleep(1000);
  }
  const t3 = Date.now();
  const teardown = phase(await stats(t2, t3), (t3 - t2) / 1000, notMonitor);
  const completed = await count(env, `${ids} AND ExecutionStatus = "Completed"`);
  log(`  teardown ${num((t3 - t2) / 1000, 0)} s: ${completed}/${n} completed, ${leftovers} leftover processes`);
  return { glideins: n, monitoring, setup, monitor, teardown: { ...teardown, completed, leftovers } };
}

/** The script's COUNT_LOG: `cmd <sent> <received>` per command, `step <name>` at each step's end. */
function scriptCosts(logText: string): { setup: Cost; teardown: Cost; steps: Record<string, Cost> } {
  const steps: Record<string, Cost> = {};
  let pending = ZERO;
  for (const line of logText.split('\n')) {
    const [kind, a, b] = line.split(' ');
    if (kind === 'cmd') pending = add(pending, { commands: 1, sentBytes: Number(a), receivedBytes: Number(b) });
    if (kind === 'step') {
      steps[a] = add(steps[a] ?? ZERO, pending);
      pending = ZERO;
    }
  }
  const sum = (setup: boolean) =>
    Object.entries(steps)
      .filter(([name]) => TEARDOWN.has(name) !== setup)
      .reduce<Cost>((t, [, c]) => add(t, c), ZERO);
  return { setup: sum(true), teardown: sum(false), steps };
}

async function main(): Promise<void> {
  const workerScript = await buildWorker();
  await joinLocalSite();
  const before = machineState();
  const tag = Date.now().toString(36);
  const prefix = `bench-cost-${tag}-`;
  const range = freePortRange(FLEET + 10, 20_000);
  const ports = Array.from({ length: range.last - range.first + 1 }, (_, k) => range.first + k);
  const [scriptPort] = freePorts(1, range.last + 1);
  console.log(
    `login-node cost: bench/manual-lifecycle.sh, then 1 glidein, then a fleet of ${FLEET}; monitor.interval ` +
      `${INTERVAL}, window ${WINDOW_S} s; ${describeMachine(before)}\n`,
  );
  const cvmfsexecDir = await benchCvmfsexec('cost');
  const sitesDir = benchSites([
    {
      name: PROFILE,
      change: manyGlideins({ ports: range, cvmfsexecDir, interval: INTERVAL }),
    },
    {
      name: SCRIPT_PROFILE,
      change: (p) => {
        p.tunnel.socksPort = scriptPort;
        p.cvmfs.cvmfsexecDir = cvmfsexecDir;
      },
    },
  ]);
  const planDir = fs.mkdtempSync(path.join(os.tmpdir(), 'glidein-bench-cost-'));
  const controlSocket = path.join(planDir, 'cm.sock');
  const countLog = path.join(planDir, 'count.log');
  let env: TestWorkflowEnvironment | undefined;
  let worker: ChildProcess | undefined;
  const runs: LaunchRun[] = [];
  let script: ReturnType<typeof scriptCosts> | undefined;
  try {
    console.log('script (bench/manual-lifecycle.sh, counted):');
    const profile = await new SiteRegistry(sitesDir).get(SCRIPT_PROFILE);
    const b = await runB(profile, `${prefix}script`, controlSocket, planDir, { countLog });
    await closeControlMaster(controlSocket);
    script = scriptCosts(fs.readFileSync(countLog, 'utf8'));
    console.log(
      `  ${num(b.totalMs, 0)} ms; ${script.setup.commands} setup and ${script.teardown.commands} teardown commands`,
    );

    env = await createTestEnv();
    const taskQueue = `bench-cost-${tag}`;
    worker = await startWorker(workerScript, env, { sitesDir, taskQueue });
    for (const n of [1, FLEET]) {
      console.log(`${n} LaunchGlidein:`);
      runs.push(await launchRun(env, worker, taskQueue, `${prefix}${n}-`, n, ports, (s) => console.log(s)));
      writeResults('login-cost', { bench: 'login-cost', partial: true, machine: { before }, runs, script });
    }
  } finally {
    if (worker?.connected) worker.send({ type: 'shutdown' });
    if (worker) await Promise.race([new Promise((r) => worker!.once('exit', r)), sleep(30_000)]);
    if (worker && worker.exitCode === null) worker.kill('SIGKILL');
    await closeControlMaster(controlSocket);
    await env?.teardown();
    const left = cleanUpBench({ idPrefix: prefix, ports: [...ports, scriptPort], cvmfsexecDir, sitesDir });
    if (left.processes || left.mounts)
      console.log(`clean-up removed ${left.processes} leftover processes, ${left.mounts} mounts`);
    fs.rmSync(planDir, { recursive: true, force: true });
    await leaveLocalSite();
  }
  const after = machineState();
  const summary = report(runs, script!);
  console.log(`machine before: ${describeMachine(before)}`);
  console.log(`machine after:  ${describeMachine(after)}`);
  const file = writeResults('login-cost', {
    bench: 'login-cost',
    machine: { before, after },
    settings: { fleet: FLEET, interval: INTERVAL, windowSeconds: WINDOW_S, startRate: START_RATE },
    summary,
    runs,
    script,
  });
  console.log(`wrote ${file}`);
}

const kb = (bytes: number) => num(bytes / 1024, 1);
const cost = (c: Cost | undefined, digits: number) =>
  c ? [num(c.commands, digits), `${kb(c.sentBytes)} / ${kb(c.receivedBytes)}`] : ['-', '-'];

function report(runs: LaunchRun[], script: ReturnType<typeof scriptCosts>) {
  const per = runs.map((r) => {
    const g = Math.max(1, r.glideins);
    const hours = r.monitor.seconds / 3600;
    const hourly = scale(r.monitor.total, 1 / g / hours);
    return {
      glideins: r.glideins,
      setup: scale(r.setup.total, 1 / g),
      monitorPerHour: hourly,
      monitorPerInterval: (hourly.commands * INTERVAL_S) / 3600,
      // A check waits an interval after the previous one ended: on a slow machine checks come less often than
      // every interval, and the figure per configured interval falls. Per check it does not.
      monitorPerCheck: r.monitor.checks ? r.monitor.total.commands / r.monitor.checks : NaN,
      checkEverySeconds: r.monitor.checks ? (r.monitor.seconds * g) / r.monitor.checks : NaN,
      teardown: scale(r.teardown.total, 1 / g),
    };
  });
  const naivePerHour = (NAIVE_PER_INTERVAL * 3600) / INTERVAL_S;
  const columns = [...per.map((p) => `LaunchGlidein, ${p.glideins === 1 ? '1 glidein' : `fleet of ${p.glideins}`}`)];
  const rows: Array<Array<string>> = [];
  const line = (label: string, cells: Array<Cost | undefined>, script: Cost | undefined, naive: string[], d = 1) => {
    rows.push([`${label}: commands`, ...cells.map((c) => cost(c, d)[0]), cost(script, 0)[0], naive[0]]);
    rows.push([`${label}: kB sent / received`, ...cells.map((c) => cost(c, d)[1]), cost(script, 0)[1], naive[1]]);
  };
  line(
    'setup, per glidein',
    per.map((p) => p.setup),
    script.setup,
    ['-', '-'],
  );
  line(
    'monitoring, per glidein per hour',
    per.map((p) => p.monitorPerHour),
    undefined,
    [`${num(naivePerHour, 0)} (computed)`, '-'],
  );
  rows.push([
    `monitoring, per glidein per interval (${INTERVAL}): commands`,
    ...per.map((p) => num(p.monitorPerInterval, 2)),
    '-',
    `${NAIVE_PER_INTERVAL} (computed)`,
  ]);
  rows.push([
    'monitoring, per glidein per check: commands',
    ...per.map((p) => num(p.monitorPerCheck, 3)),
    '-',
    `${NAIVE_PER_INTERVAL} (computed)`,
  ]);
  rows.push(['monitoring: a check every … s per glidein', ...per.map((p) => num(p.checkEverySeconds, 1)), '-', '-']);
  line(
    'teardown, per glidein',
    per.map((p) => p.teardown),
    script.teardown,
    ['-', '-'],
  );
  console.log();
  console.log(
    table(['per glidein', ...columns, 'bash script (1)', 'naive monitoring: condor_status + squeue each'], rows),
  );

  // Where the commands went, per phase, for the largest run: target and command, counts per glidein.
  const largest = runs[runs.length - 1];
  if (largest) {
    const g = Math.max(1, largest.glideins);
    const breakdown: Array<Array<string>> = [];
    for (const [name, ph, f] of [
      ['setup', largest.setup, 1 / g],
      ['monitoring (per hour)', largest.monitor, 3600 / largest.monitor.seconds / g],
      ['teardown', largest.teardown, 1 / g],
    ] as const) {
      const byKey = new Map<string, Cost>();
      for (const x of ph.groups) {
        const key = `${where(x.target)}\0${x.what}`;
        byKey.set(key, add(byKey.get(key) ?? ZERO, x));
      }
      for (const [key, c] of [...byKey].sort((a, b) => b[1].commands - a[1].commands)) {
        const [target, what] = key.split('\0');
        breakdown.push([name, target, what, num(c.commands * f, 2), kb(c.sentBytes * f), kb(c.receivedBytes * f)]);
      }
    }
    console.log();
    console.log(`fleet of ${largest.glideins}, per glidein, by target and command:`);
    console.log(table(['phase', 'target', 'command', 'commands', 'kB sent', 'kB received'], breakdown));
  }

  const fleet = per.find((p) => p.glideins === FLEET && FLEET > 1) ?? per[per.length - 1];
  // Judged per check (one check is one interval's work), which the machine's speed does not change.
  const value = fleet?.monitorPerCheck;
  const known = value !== undefined && !Number.isNaN(value);
  const met = known && value <= TARGET_PER_INTERVAL;
  console.log(
    `\ntarget ≤ ${TARGET_PER_INTERVAL} login-node command per glidein per monitor interval (fleet of ` +
      `${fleet?.glideins ?? FLEET}, shared queries divided; per check): ` +
      (!known
        ? '-'
        : `${met ? 'MET' : 'MISSED'} ` +
          `(${num(value, 3)}${met ? '' : `, by ${num((value / TARGET_PER_INTERVAL - 1) * 100, 1)} %`}; per ` +
          `configured interval ${num(fleet?.monitorPerInterval, 3)}, a check every ` +
          `${num(fleet?.checkEverySeconds, 1)} s; naive ${NAIVE_PER_INTERVAL})`),
  );
  return { perGlidein: per, naivePerHour, naivePerInterval: NAIVE_PER_INTERVAL, target: { value, met } };
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
