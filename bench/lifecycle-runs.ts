/**
 * One lifecycle to "registered" and back down, the ways the lifecycle benchmarks compare (shared by
 * bench/lifecycle-overhead.ts and bench/wan-lifecycle.ts):
 *   (A) LaunchGlidein on a Temporal dev server with a worker: start, wait until the status query says
 *       'monitoring', signal 'stop', await the result; each step split into site commands, the activity's own
 *       polls and sleeps, and orchestration;
 *   (B) bench/manual-lifecycle.sh: OpenSSH with a ControlMaster, the same remote commands (bench/manual-plan.ts);
 *   (C) the same script with NAIVE=1: a new ssh connection per command.
 * And the tables both benchmarks print.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Client } from '@temporalio/client';
import type { ActivityDeps } from '../src/activities';
import { sshExecutors } from '../src/activities/site-access';
import type { StepOutcome } from '../src/common/types';
import type { SshPool } from '../src/remote/ssh';
import type { SiteRegistry } from '../src/site/load';
import type { SiteProfile } from '../src/site/profile';
import { LaunchGlidein } from '../src/workflows';
import { statusQuery, stopSignal } from '../src/workflows/messages';
import {
  describeMachine,
  num,
  ROOT,
  stats,
  table,
  TimedExecutor,
  writeResults,
  type CommandTiming,
  type MachineState,
  type Stats,
} from './lib';
import { writeManualPlan } from './manual-plan';

export const SCRIPT = path.join(ROOT, 'bench', 'manual-lifecycle.sh');
export const ORCHESTRATION_TARGET_MS = 15;

export interface ActivityTiming {
  workflowId?: string;
  activityType: string;
  start: number;
  end: number;
  ok: boolean;
}

export interface StepSplit {
  step: string;
  /** The step's start, workflow time (epoch ms). */
  startMs: number;
  /** Workflow time from the step's start to its end (status query). */
  stepMs: number;
  /** Wall time of the activity in the worker, all attempts. */
  activityMs: number;
  /** Time in site commands (sum of run() calls in that activity). */
  commandMs: number;
  commands: number;
  /** stepMs - activityMs. */
  orchestrationMs: number;
  /** activityMs - commandMs: the activity's own polls and sleeps. */
  waitMs: number;
}

export interface RunA {
  id: string;
  totalMs: number;
  toMonitoringMs: number;
  stopToResultMs: number;
  steps: StepSplit[];
  commands: number;
}

export interface RunB {
  id: string;
  totalMs: number;
  scriptMs: number;
  steps: Record<string, number>;
}

/** What A's worker recorded: every site command and every activity, tagged with their workflow. */
export interface Recorded {
  commands: CommandTiming[];
  activities: ActivityTiming[];
}

/** Activity dependencies whose site executors time every command into `recorded.commands`. */
export function timedDeps(registry: SiteRegistry, pool: SshPool, recorded: Recorded): ActivityDeps {
  return {
    sites: registry,
    ssh: pool,
    executorsFor: (p) => {
      const e = sshExecutors({ sites: registry, ssh: pool }, p);
      return {
        login: new TimedExecutor(e.login, (t) => recorded.commands.push(t)),
        node: new TimedExecutor(e.node, (t) => recorded.commands.push(t)),
      };
    },
  };
}

/** A: one LaunchGlidein at `site` to monitoring, stopped, awaited. */
export async function runA(
  client: Client,
  taskQueue: string,
  site: string,
  id: string,
  recorded: Recorded,
): Promise<RunA> {
  const t0 = performance.now();
  const handle = await client.workflow.start(LaunchGlidein, {
    taskQueue,
    workflowId: id,
    args: [{ site, lifetime: '10m' }],
  });
  for (let i = 0; ; i++) {
    const s = await handle.query(statusQuery);
    if (s.phase === 'monitoring') break;
    if (s.phase === 'failed' || s.phase === 'done' || i > 3000)
      throw new Error(
        `${id} did not reach monitoring: ${s.phase} ${JSON.stringify(s.steps.filter((x) => x.status === 'failed'))}`,
      );
    await new Promise((r) => setTimeout(r, 20));
  }
  const tMon = performance.now();
  await handle.signal(stopSignal);
  const result = await handle.result();
  const t1 = performance.now();
  return {
    id,
    totalMs: t1 - t0,
    toMonitoringMs: tMon - t0,
    stopToResultMs: t1 - tMon,
    steps: splitSteps(id, result.steps, recorded.activities, recorded.commands),
    commands: recorded.commands.filter((c) => c.workflowId === id).length,
  };
}

/**
 * B (or C with `naive`): bench/manual-lifecycle.sh on a plan for `profile`. B keeps its ControlMaster at
 * `controlSocket` between runs (closeControlMaster ends it); C opens a connection per command. `countLog`: the
 * script's COUNT_LOG (each command's bytes, each step's end).
 */
export async function runB(
  profile: SiteProfile,
  id: string,
  controlSocket: string,
  planDir: string,
  opts: { naive?: boolean; countLog?: string } = {},
): Promise<RunB> {
  const plan = writeManualPlan(profile, id, controlSocket, planDir);
  const { wallMs, out } = await runScript(plan.file, {
    ...process.env,
    ...(opts.naive ? { NAIVE: '1' } : {}),
    ...(opts.countLog ? { COUNT_LOG: opts.countLog } : {}),
  });
  const steps: Record<string, number> = {};
  let scriptMs = NaN;
  for (const line of out.split('\n')) {
    const [kind, name, ms] = line.split(' ');
    if (kind === 'step') steps[name] = Number(ms);
    if (kind === 'total') scriptMs = Number(name);
  }
  return { id, totalMs: wallMs, scriptMs, steps };
}

function runScript(plan: string, env: NodeJS.ProcessEnv): Promise<{ wallMs: number; out: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('bash', [SCRIPT, plan], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const wallMs = performance.now() - t0;
      if (code !== 0)
        reject(new Error(`manual-lifecycle.sh exited ${code}: ${err.trim().split('\n').slice(-5).join(' | ')}`));
      else resolve({ wallMs, out });
    });
  });
}

/** Ends B's ControlMaster (if it runs); resolves when ssh -O exit has returned. */
export function closeControlMaster(controlSocket: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('ssh', ['-F', '/dev/null', '-S', controlSocket, '-O', 'exit', 'x'], { stdio: 'ignore' });
    child.on('error', () => resolve());
    child.on('close', () => resolve());
  });
}

/** The time covered by at least one of the steps (steps side by side count once). */
function coveredMs(steps: Pick<StepSplit, 'startMs' | 'stepMs'>[]): number {
  const spans = steps.map((s) => [s.startMs, s.startMs + s.stepMs]).sort((x, y) => x[0] - y[0]);
  let covered = 0;
  let reach = -Infinity;
  for (const [from, to] of spans) {
    if (to <= reach) continue;
    covered += to - Math.max(from, reach);
    reach = to;
  }
  return covered;
}

/** Joins a run's steps (workflow time) with the activities' wall time and their commands, by activity type. */
export function splitSteps(
  id: string,
  steps: StepOutcome[],
  activities: ActivityTiming[],
  commands: CommandTiming[],
): StepSplit[] {
  const activityOf = (step: string) => (step === 'monitor' ? 'monitorGlidein' : step);
  return steps
    .filter((s) => s.step !== 'monitor' && s.durationMs !== undefined)
    .map((s) => {
      const type = activityOf(s.step);
      const acts = activities.filter((x) => x.workflowId === id && x.activityType === type);
      const cmds = commands.filter((c) => c.workflowId === id && c.activityType === type);
      const activityMs = acts.reduce((t, x) => t + (x.end - x.start), 0);
      const commandMs = cmds.reduce((t, c) => t + (c.end - c.start), 0);
      return {
        step: s.step,
        startMs: Date.parse(s.startedAt),
        stepMs: s.durationMs!,
        activityMs,
        commandMs,
        commands: cmds.length,
        orchestrationMs: s.durationMs! - activityMs,
        waitMs: activityMs - commandMs,
      };
    });
}

/** One row of the summary table: N, median, min, max, spread. */
export function summaryRow(label: string, s: Stats, digits = 0): Array<string | number> {
  return [label, s.n, num(s.median, digits), num(s.min, digits), num(s.max, digits), num(s.max - s.min, digits)];
}

export const SUMMARY_HEADERS = ['', 'N', 'median ms', 'min ms', 'max ms', 'spread (max-min) ms'];

/** Ratios of the per-pair totals (x[i] / y[i]). */
export function pairRatios(x: ReadonlyArray<{ totalMs: number }>, y: ReadonlyArray<{ totalMs: number }>): Stats {
  return stats(x.map((r, i) => r.totalMs / y[i].totalMs));
}

export interface PerStep {
  step: string;
  stepMs: number;
  activityMs: number;
  commandMs: number;
  commands: number;
  waitMs: number;
  orchestrationMs: number;
  /** B's time for the step (median). */
  bMs: number;
  /** C's, when C ran. */
  cMs?: number;
}

/** A's steps, medians over the runs, beside B's (and C's) time for the same step. */
export function perStep(a: RunA[], b: RunB[], c?: RunB[]): PerStep[] {
  const names = [...new Set(a.flatMap((r) => r.steps.map((s) => s.step)))];
  const scriptStep = (runs: RunB[], step: string) =>
    stats(runs.map((r) => r.steps[step]).filter((x) => x !== undefined)).median;
  return names.map((step) => {
    const xs = a.flatMap((r) => r.steps.filter((s) => s.step === step));
    const med = (f: (s: StepSplit) => number) => stats(xs.map(f)).median;
    return {
      step,
      stepMs: med((s) => s.stepMs),
      activityMs: med((s) => s.activityMs),
      commandMs: med((s) => s.commandMs),
      commands: med((s) => s.commands),
      waitMs: med((s) => s.waitMs),
      orchestrationMs: med((s) => s.orchestrationMs),
      bMs: scriptStep(b, step),
      ...(c ? { cMs: scriptStep(c, step) } : {}),
    };
  });
}

export const PER_STEP_CAPTION =
  'A per step (medians over runs; ms): step = activity in the worker + orchestration; activity = site ' +
  'commands + its own polls/sleeps';

export function perStepTable(per: PerStep[]): string {
  const withC = per.some((p) => p.cMs !== undefined);
  return table(
    [
      'step',
      'step (wf time)',
      'commands',
      'in commands',
      'polls/sleeps',
      'orchestration',
      'B step',
      ...(withC ? ['C step'] : []),
    ],
    per.map((p) => [
      p.step,
      num(p.stepMs, 0),
      num(p.commands, 0),
      num(p.commandMs, 1),
      num(p.waitMs, 1),
      num(p.orchestrationMs, 1),
      num(p.bMs, 0),
      ...(withC ? [num(p.cMs, 0)] : []),
    ]),
  );
}

export interface PerRunA {
  commandMs: Stats;
  waitMs: Stats;
  orchestrationMs: Stats;
  outsideStepsMs: Stats;
  /** Step time that overlapped other steps (steps side by side): the sum of step times minus the time they cover. */
  sideBySideMs: Stats;
  orchestrationPerStep: Stats;
  /** One site command of A's (ssh2 channel), over all of them. */
  commandEach: Stats;
}

/** A's time per run by where it went; `idPrefix` picks A's commands among those recorded. */
export function perRunA(a: RunA[], commands: CommandTiming[], idPrefix: string): PerRunA {
  return {
    commandMs: stats(a.map((r) => r.steps.reduce((t, s) => t + s.commandMs, 0))),
    waitMs: stats(a.map((r) => r.steps.reduce((t, s) => t + s.waitMs, 0))),
    orchestrationMs: stats(a.map((r) => r.steps.reduce((t, s) => t + s.orchestrationMs, 0))),
    outsideStepsMs: stats(a.map((r) => r.totalMs - coveredMs(r.steps))),
    sideBySideMs: stats(a.map((r) => r.steps.reduce((t, s) => t + s.stepMs, 0) - coveredMs(r.steps))),
    orchestrationPerStep: stats(a.flatMap((r) => r.steps.map((s) => s.orchestrationMs))),
    commandEach: stats(commands.filter((c) => c.workflowId?.startsWith(idPrefix)).map((c) => c.end - c.start)),
  };
}

export function perRunTable(p: PerRunA): string {
  return table(
    ['A, per run (medians)', 'ms'],
    [
      ['site commands (sum)', num(p.commandMs.median, 0)],
      ["activities' own polls and sleeps (sum)", num(p.waitMs.median, 0)],
      ['orchestration inside steps (sum)', num(p.orchestrationMs.median, 0)],
      ['step time saved by steps side by side (sum of steps - time covered by steps)', num(p.sideBySideMs.median, 0)],
      ['outside steps (start, query polling, monitor until stop, signal, result)', num(p.outsideStepsMs.median, 0)],
      ['orchestration per step, median over all steps and runs', num(p.orchestrationPerStep.median, 1)],
      ['orchestration per step, p90', num(p.orchestrationPerStep.p90, 1)],
      ['one site command (ssh2 channel), median over all', num(p.commandEach.median, 1)],
    ],
  );
}

/** bench/lifecycle-overhead.ts's report: A vs B, per step, per run, its targets; writes its results file. */
export function report(
  a: RunA[],
  b: RunB[],
  before: MachineState,
  after: MachineState,
  commands: CommandTiming[],
  opts: { eager: boolean; idPrefixA: string },
): void {
  const sa = stats(a.map((r) => r.totalMs));
  const sb = stats(b.map((r) => r.totalMs));
  const ratios = pairRatios(a, b);
  console.log();
  console.log(
    table(SUMMARY_HEADERS, [
      summaryRow('A LaunchGlidein (start → monitoring → stop → result)', sa),
      summaryRow('B manual-lifecycle.sh (ControlMaster)', sb),
      summaryRow('ratio A/B (per pair)', ratios, 3),
    ]),
  );

  const per = perStep(a, b);
  console.log();
  console.log(PER_STEP_CAPTION);
  console.log(perStepTable(per));
  const run = perRunA(a, commands, opts.idPrefixA);
  console.log();
  console.log(perRunTable(run));
  const allOrch = run.orchestrationPerStep;
  const ratioMet = ratios.median <= 1.0;
  const orchMet = allOrch.median <= ORCHESTRATION_TARGET_MS;
  console.log(
    `\ntarget ratio A/B ≤ 1.0: ${ratioMet ? 'met' : 'MISSED'} (${num(ratios.median, 3)}); orchestration ≤ ` +
      `${ORCHESTRATION_TARGET_MS} ms per step (median): ${orchMet ? 'met' : 'MISSED'} ` +
      `(${num(allOrch.median, 1)} ms)`,
  );
  console.log(`machine after: ${describeMachine(after)}`);
  const file = writeResults(opts.eager ? 'lifecycle-overhead-eager' : 'lifecycle-overhead', {
    bench: 'lifecycle-overhead',
    eagerActivities: opts.eager,
    machine: { before, after },
    runs: a.length,
    target: { ratio: 1.0, ratioMet, orchestrationMsPerStep: ORCHESTRATION_TARGET_MS, orchestrationMet: orchMet },
    summary: {
      a: sa,
      b: sb,
      ratio: ratios,
      orchestrationPerStep: allOrch,
      perRun: {
        commandMs: run.commandMs,
        waitMs: run.waitMs,
        orchestrationMs: run.orchestrationMs,
        outsideStepsMs: run.outsideStepsMs,
      },
      commandMs: run.commandEach,
    },
    perStep: per,
    a,
    b,
  });
  console.log(`wrote ${file}`);
}
