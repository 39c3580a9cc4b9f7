/**
 * The same lifecycle to "registered" and back down on the loopback site, two ways, interleaved A B A B:
 *   (A) LaunchGlidein on a Temporal dev server with a worker: start, wait until the status query says
 *       'monitoring', signal 'stop', await the result;
 *   (B) bench/manual-lifecycle.sh: OpenSSH with a ControlMaster to the worker node through the login node,
 *       issuing the same remote commands (built by the activities' own builders, bench/manual-plan.ts) in the
 *       same order with the same polling cadence.
 * For A, each step's duration (status query / result, workflow time) is split into site commands (an
 * Executor decorator timing run(), passed through ActivityDeps.executorsFor), other time inside the activity
 * (its polls and sleeps) and orchestration (the rest: Temporal scheduling, dispatch, workflow tasks).
 * Targets: ratio A/B ≤ 1.0; orchestration ≤ 15 ms per step (median).
 *
 *   npx ts-node bench/lifecycle-overhead.ts        env: BENCH_RUNS (5), BENCH_WARMUP (1), BENCH_EAGER (1: eager activities on the server;
 *                                                  results in lifecycle-overhead-eager.json)
 *   npx ts-node bench/lifecycle-overhead.ts --plan <glidein-id>   writes a plan for manual-lifecycle.sh, prints its path
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { createActivities, type ActivityDeps } from '../src/activities';
import { sshExecutors } from '../src/activities/site-access';
import type { StepOutcome } from '../src/common/types';
import { SshPool } from '../src/remote/ssh';
import { SiteRegistry } from '../src/site/load';
import { LaunchGlidein } from '../src/workflows';
import { GlideinId, GlideinPhase, GlideinSite, statusQuery, stopSignal } from '../src/workflows/messages';
import { createTestEnv, temporalCli, workflowBundle } from '../sandbox/temporal';
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
  TimedExecutor,
  timedActivities,
  writeResults,
  type CommandTiming,
} from './lib';
import { writeManualPlan } from './manual-plan';

const RUNS = envInt('BENCH_RUNS', 5);
const WARMUP = envInt('BENCH_WARMUP', 1);
const SITE = 'bench-lo';
const SCRIPT = path.join(ROOT, 'bench', 'manual-lifecycle.sh');
const ORCHESTRATION_TARGET_MS = 15;
/** BENCH_EAGER=1: the dev server with eager activity execution (system.enableActivityEagerExecution). */
const EAGER = process.env.BENCH_EAGER === '1';

interface ActivityTiming {
  workflowId?: string;
  activityType: string;
  start: number;
  end: number;
  ok: boolean;
}

interface StepSplit {
  step: string;
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

interface RunA {
  id: string;
  totalMs: number;
  toMonitoringMs: number;
  stopToResultMs: number;
  steps: StepSplit[];
  commands: number;
}

interface RunB {
  id: string;
  totalMs: number;
  scriptMs: number;
  steps: Record<string, number>;
}

function runScript(plan: string): Promise<{ wallMs: number; out: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('bash', [SCRIPT, plan], { stdio: ['ignore', 'pipe', 'pipe'] });
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

async function main(): Promise<void> {
  const planArg = process.argv.indexOf('--plan');
  if (planArg >= 0) {
    const id = process.argv[planArg + 1];
    if (!id || !/^bench-[a-z0-9-]+$/.test(id)) throw new Error('--plan <glidein-id>: an id starting with bench-');
    const sites = new SiteRegistry(path.join(ROOT, 'sites'));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glidein-bench-plan-'));
    const plan = writeManualPlan(await sites.get('local'), id, path.join(dir, 'cm.sock'), dir);
    console.log(plan.file);
    return;
  }

  await joinLocalSite();
  const before = machineState();
  const tag = Date.now().toString(36);
  const [port] = freePorts(1, 22_000);
  const cvmfsexecDir = await benchCvmfsexec('lo');
  const sitesDir = benchSites([
    {
      name: SITE,
      change: (p) => {
        p.tunnel.socksPort = port;
        p.cvmfs.cvmfsexecDir = cvmfsexecDir;
      },
    },
  ]);
  const planDir = fs.mkdtempSync(path.join(os.tmpdir(), 'glidein-bench-plans-'));
  const controlSocket = path.join(planDir, 'cm.sock');
  let env: TestWorkflowEnvironment | undefined;
  const pool = new SshPool();
  try {
    console.log(
      `lifecycle A (LaunchGlidein on a dev server${EAGER ? ' with eager activity execution' : ''}) vs B (bash + OpenSSH ControlMaster), ${RUNS} runs each (+${WARMUP} warm-up), interleaved; ${describeMachine(before)}\n`,
    );
    env = EAGER
      ? await TestWorkflowEnvironment.createLocal({
          server: {
            executable: { type: 'existing-path', path: temporalCli() },
            searchAttributes: [GlideinSite, GlideinId, GlideinPhase],
            extraArgs: ['--dynamic-config-value', 'system.enableActivityEagerExecution=true'],
          },
        })
      : await createTestEnv();
    const registry = new SiteRegistry(sitesDir);
    const profile = await registry.get(SITE);
    const commands: CommandTiming[] = [];
    const activities: ActivityTiming[] = [];
    const deps: ActivityDeps = {
      sites: registry,
      ssh: pool,
      executorsFor: (p) => {
        const e = sshExecutors({ sites: registry, ssh: pool }, p);
        return {
          login: new TimedExecutor(e.login, (t) => commands.push(t)),
          node: new TimedExecutor(e.node, (t) => commands.push(t)),
        };
      },
    };
    const taskQueue = `bench-lo-${tag}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: await workflowBundle(),
      activities: timedActivities(createActivities(deps), (t) => activities.push(t)),
    });
    const client = env.client;

    const runA = async (id: string): Promise<RunA> => {
      const t0 = performance.now();
      const handle = await client.workflow.start(LaunchGlidein, {
        taskQueue,
        workflowId: id,
        args: [{ site: SITE, lifetime: '10m' }],
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
        steps: splitSteps(id, result.steps, activities, commands),
        commands: commands.filter((c) => c.workflowId === id).length,
      };
    };
    const runB = async (id: string): Promise<RunB> => {
      const plan = writeManualPlan(profile, id, controlSocket, planDir);
      const { wallMs, out } = await runScript(plan.file);
      const steps: Record<string, number> = {};
      let scriptMs = NaN;
      for (const line of out.split('\n')) {
        const [kind, name, ms] = line.split(' ');
        if (kind === 'step') steps[name] = Number(ms);
        if (kind === 'total') scriptMs = Number(name);
      }
      return { id, totalMs: wallMs, scriptMs, steps };
    };

    const a: RunA[] = [];
    const b: RunB[] = [];
    await worker.runUntil(async () => {
      for (let i = 0; i < WARMUP + RUNS; i++) {
        const warm = i < WARMUP;
        const ra = await runA(`bench-lo-a-${tag}-${i}`);
        const rb = await runB(`bench-lo-b-${tag}-${i}`);
        console.log(
          `${warm ? 'warm-up' : `run ${i - WARMUP + 1}`}: A ${num(ra.totalMs, 0)} ms (to monitoring ${num(ra.toMonitoringMs, 0)}, stop→result ${num(ra.stopToResultMs, 0)}), B ${num(rb.totalMs, 0)} ms`,
        );
        if (!warm) {
          a.push(ra);
          b.push(rb);
        }
      }
    });
    const after = machineState();
    report(a, b, before, after, commands);
  } finally {
    pool.close();
    spawn('ssh', ['-F', '/dev/null', '-S', controlSocket, '-O', 'exit', 'x'], { stdio: 'ignore' }).on(
      'error',
      () => undefined,
    );
    await env?.teardown();
    const left = cleanUpBench({ idPrefix: 'bench-lo-', ports: [port], cvmfsexecDir, sitesDir });
    if (left.processes || left.mounts)
      console.log(`clean-up removed ${left.processes} leftover processes, ${left.mounts} mounts`);
    fs.rmSync(planDir, { recursive: true, force: true });
    await leaveLocalSite();
  }
}

/** Joins a run's steps (workflow time) with the activities' wall time and their commands, by activity type. */
function splitSteps(
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
        stepMs: s.durationMs!,
        activityMs,
        commandMs,
        commands: cmds.length,
        orchestrationMs: s.durationMs! - activityMs,
        waitMs: activityMs - commandMs,
      };
    });
}

function report(
  a: RunA[],
  b: RunB[],
  before: ReturnType<typeof machineState>,
  after: ReturnType<typeof machineState>,
  commands: CommandTiming[],
): void {
  const sa = stats(a.map((r) => r.totalMs));
  const sb = stats(b.map((r) => r.totalMs));
  const ratios = stats(a.map((r, i) => r.totalMs / b[i].totalMs));
  console.log();
  console.log(
    table(
      ['', 'N', 'median ms', 'min ms', 'max ms', 'spread (max-min) ms'],
      [
        [
          'A LaunchGlidein (start → monitoring → stop → result)',
          sa.n,
          num(sa.median, 0),
          num(sa.min, 0),
          num(sa.max, 0),
          num(sa.max - sa.min, 0),
        ],
        [
          'B manual-lifecycle.sh (ControlMaster)',
          sb.n,
          num(sb.median, 0),
          num(sb.min, 0),
          num(sb.max, 0),
          num(sb.max - sb.min, 0),
        ],
        [
          'ratio A/B (per pair)',
          ratios.n,
          num(ratios.median, 3),
          num(ratios.min, 3),
          num(ratios.max, 3),
          num(ratios.max - ratios.min, 3),
        ],
      ],
    ),
  );

  // Per step, medians over the runs.
  const names = [...new Set(a.flatMap((r) => r.steps.map((s) => s.step)))];
  const per = names.map((step) => {
    const xs = a.flatMap((r) => r.steps.filter((s) => s.step === step));
    const med = (f: (s: StepSplit) => number) => stats(xs.map(f)).median;
    const bStep = stats(b.map((r) => r.steps[step]).filter((x) => x !== undefined)).median;
    return {
      step,
      stepMs: med((s) => s.stepMs),
      activityMs: med((s) => s.activityMs),
      commandMs: med((s) => s.commandMs),
      commands: med((s) => s.commands),
      waitMs: med((s) => s.waitMs),
      orchestrationMs: med((s) => s.orchestrationMs),
      bMs: bStep,
    };
  });
  console.log();
  console.log(
    'A per step (medians over runs; ms): step = activity in the worker + orchestration; activity = site commands + its own polls/sleeps',
  );
  console.log(
    table(
      ['step', 'step (wf time)', 'commands', 'in commands', 'polls/sleeps', 'orchestration', 'B step'],
      per.map((p) => [
        p.step,
        num(p.stepMs, 0),
        num(p.commands, 0),
        num(p.commandMs, 1),
        num(p.waitMs, 1),
        num(p.orchestrationMs, 1),
        num(p.bMs, 0),
      ]),
    ),
  );
  const allOrch = stats(a.flatMap((r) => r.steps.map((s) => s.orchestrationMs)));
  const sumOrch = stats(a.map((r) => r.steps.reduce((t, s) => t + s.orchestrationMs, 0)));
  const sumCmd = stats(a.map((r) => r.steps.reduce((t, s) => t + s.commandMs, 0)));
  const sumWait = stats(a.map((r) => r.steps.reduce((t, s) => t + s.waitMs, 0)));
  const outside = stats(a.map((r) => r.totalMs - r.steps.reduce((t, s) => t + s.stepMs, 0)));
  const cmdA = stats(commands.filter((c) => c.workflowId?.startsWith('bench-lo-a-')).map((c) => c.end - c.start));
  console.log();
  console.log(
    table(
      ['A, per run (medians)', 'ms'],
      [
        ['site commands (sum)', num(sumCmd.median, 0)],
        ["activities' own polls and sleeps (sum)", num(sumWait.median, 0)],
        ['orchestration inside steps (sum)', num(sumOrch.median, 0)],
        ['outside steps (start, query polling, monitor until stop, signal, result)', num(outside.median, 0)],
        ['orchestration per step, median over all steps and runs', num(allOrch.median, 1)],
        ['orchestration per step, p90', num(allOrch.p90, 1)],
        ['one site command (ssh2 channel), median over all', num(cmdA.median, 1)],
      ],
    ),
  );
  const ratioMet = ratios.median <= 1.0;
  const orchMet = allOrch.median <= ORCHESTRATION_TARGET_MS;
  console.log(
    `\ntarget ratio A/B ≤ 1.0: ${ratioMet ? 'met' : 'MISSED'} (${num(ratios.median, 3)}); orchestration ≤ ${ORCHESTRATION_TARGET_MS} ms per step (median): ${orchMet ? 'met' : 'MISSED'} (${num(allOrch.median, 1)} ms)`,
  );
  console.log(`machine after: ${describeMachine(after)}`);
  const file = writeResults(EAGER ? 'lifecycle-overhead-eager' : 'lifecycle-overhead', {
    bench: 'lifecycle-overhead',
    eagerActivities: EAGER,
    machine: { before, after },
    runs: a.length,
    target: { ratio: 1.0, ratioMet, orchestrationMsPerStep: ORCHESTRATION_TARGET_MS, orchestrationMet: orchMet },
    summary: {
      a: sa,
      b: sb,
      ratio: ratios,
      orchestrationPerStep: allOrch,
      perRun: { commandMs: sumCmd, waitMs: sumWait, orchestrationMs: sumOrch, outsideStepsMs: outside },
      commandMs: cmdA,
    },
    perStep: per,
    a,
    b,
  });
  console.log(`wrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
