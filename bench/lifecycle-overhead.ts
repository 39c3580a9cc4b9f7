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
 *   npx ts-node bench/lifecycle-overhead.ts        env: BENCH_RUNS (5), BENCH_WARMUP (1), BENCH_EAGER (1: eager
 *                                                  activities on the server; results in lifecycle-overhead-eager.json)
 *   npx ts-node bench/lifecycle-overhead.ts --plan <glidein-id>   writes a plan for manual-lifecycle.sh, prints its
 *                                                                path
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { createActivities } from '../src/activities';
import { SshPool } from '../src/remote/ssh';
import { SiteRegistry } from '../src/site/load';
import { GlideinId, GlideinPhase, GlideinSite } from '../src/workflows/messages';
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
  timedActivities,
} from './lib';
import { report, runA, runB, timedDeps, type Recorded, type RunA, type RunB } from './lifecycle-runs';
import { writeManualPlan } from './manual-plan';

const RUNS = envInt('BENCH_RUNS', 5);
const WARMUP = envInt('BENCH_WARMUP', 1);
const SITE = 'bench-lo';
/** BENCH_EAGER=1: the dev server with eager activity execution (system.enableActivityEagerExecution). */
const EAGER = process.env.BENCH_EAGER === '1';

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
      `lifecycle A (LaunchGlidein on a dev server${EAGER ? ' with eager activity execution' : ''}) vs B ` +
        `(bash + OpenSSH ControlMaster), ${RUNS} runs each (+${WARMUP} warm-up), interleaved; ` +
        `${describeMachine(before)}\n`,
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
    const recorded: Recorded = { commands: [], activities: [] };
    const deps = timedDeps(registry, pool, recorded);
    const taskQueue = `bench-lo-${tag}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: await workflowBundle(),
      activities: timedActivities(createActivities(deps), (t) => recorded.activities.push(t)),
    });
    const client = env.client;

    const a: RunA[] = [];
    const b: RunB[] = [];
    await worker.runUntil(async () => {
      for (let i = 0; i < WARMUP + RUNS; i++) {
        const warm = i < WARMUP;
        const ra = await runA(client, taskQueue, SITE, `bench-lo-a-${tag}-${i}`, recorded);
        const rb = await runB(profile, `bench-lo-b-${tag}-${i}`, controlSocket, planDir);
        console.log(
          `${warm ? 'warm-up' : `run ${i - WARMUP + 1}`}: A ${num(ra.totalMs, 0)} ms (to monitoring ` +
            `${num(ra.toMonitoringMs, 0)}, stop→result ${num(ra.stopToResultMs, 0)}), B ` +
            `${num(rb.totalMs, 0)} ms`,
        );
        if (!warm) {
          a.push(ra);
          b.push(rb);
        }
      }
    });
    const after = machineState();
    report(a, b, before, after, recorded.commands, { eager: EAGER, idPrefixA: 'bench-lo-a-' });
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

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
