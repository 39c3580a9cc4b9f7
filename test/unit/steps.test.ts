/**
 * The step catalogue, without a server: the orders, names and options everything else derives from it are the ones
 * the lifecycle has always had (recorded histories, carried states and the workflow suites depend on them), and the
 * catalogue is whole: every resource setup takes has exactly one step that gives it back.
 */
import { STAGE_OF, STEP_NAMES as COMMON_STEP_NAMES } from '../../src/common/step-names';
import { ActivityCancellationType } from '@temporalio/common';
import { heldResourceSchema, resumeStateSchema } from '../../src/common/carried-state';
import type { GlideinRef, HeldResource } from '../../src/common/types';
import type { GlideinStatus } from '../../src/workflows/messages';
import type { LaunchPlan } from '../../src/site/plan';
import {
  FINAL_STEPS,
  INVERSE_OF,
  releasedBefore,
  SETUP_STEP_NAMES,
  setupGraph,
  setupOrder,
  STEP_NAMES,
  STEPS,
  TEARDOWN_STEP_NAMES,
  teardownOrder,
  type SetupContext,
  type StepName,
} from '../../src/workflows/steps';

const PLAN: LaunchPlan = {
  site: 'jsc',
  glideinId: 'glidein-jsc-1',
  lifetimeMs: 3_600_000,
  registrationTimeoutMs: 300_000,
  monitorIntervalMs: 30_000,
  monitorRoundMs: 120_000,
  drainGraceMs: 900_000,
  stopGraceMs: 60_000,
  repositories: ['cms.cern.ch', 'oasis.opensciencegrid.org'],
  workDir: '/p/scratch/glideins/glidein-jsc-1',
  collector: 'collector.example.org:9618',
  slurm: { timeLimitMs: 86_400_000, queueTimeoutMs: 1_800_000 },
};

const context = (plan: LaunchPlan = PLAN): SetupContext => {
  const ref: GlideinRef = { site: plan.site, glideinId: plan.glideinId };
  const status: GlideinStatus = { site: ref.site, glideinId: ref.glideinId, phase: 'setup', steps: [], held: [] };
  return { ref, plan, status };
};

const acquiredBy = (name: StepName): HeldResource['kind'] | undefined =>
  (STEPS[name] as { acquires?: { kind: HeldResource['kind'] } }).acquires?.kind;

describe('the step catalogue', () => {
  it('declares exactly the steps common/step-names.ts names, in its order and stages', () => {
    expect(STEP_NAMES).toEqual([...COMMON_STEP_NAMES]);
    for (const n of STEP_NAMES) expect([n, STEPS[n].stage]).toEqual([n, STAGE_OF[n]]);
  });

  it('names the steps a status has always held, in lifecycle order', () => {
    expect(STEP_NAMES).toEqual([
      'planLaunch',
      'allocateNode',
      'openTunnel',
      'verifyOutbound',
      'mountCvmfs',
      'startContainer',
      'preloadProxychains',
      'stageCredential',
      'startGlidein',
      'confirmRegistration',
      'monitor',
      'stopGlidein',
      'removeCredential',
      'stopContainer',
      'unmountCvmfs',
      'closeTunnel',
      'cleanupGlidein',
      'releaseNode',
    ]);
  });

  it('derives the teardown order the memo and carried states have always used', () => {
    expect(TEARDOWN_STEP_NAMES).toEqual([
      'stopGlidein',
      'removeCredential',
      'stopContainer',
      'unmountCvmfs',
      'closeTunnel',
      'cleanupGlidein',
      'releaseNode',
    ]);
    // Every teardown step is in it: none is declared and never run.
    expect([...TEARDOWN_STEP_NAMES].sort()).toEqual(STEP_NAMES.filter((n) => STEPS[n].stage === 'teardown').sort());
  });

  it('derives what the workflow suites expected of a site without Slurm', () => {
    // These are the arrays test/support/workflow-harness.ts spelt out by hand before the catalogue.
    expect(setupOrder({ slurm: false })).toEqual([
      'planLaunch',
      'openTunnel',
      'verifyOutbound',
      'mountCvmfs',
      'startContainer',
      'preloadProxychains',
      'startGlidein',
      'confirmRegistration',
    ]);
    expect(teardownOrder(setupOrder({ slurm: false }))).toEqual([
      'stopGlidein',
      'stopContainer',
      'unmountCvmfs',
      'closeTunnel',
      'cleanupGlidein',
    ]);
  });

  it('stages the pool credential last before the glidein starts, and removes it right after the glidein stops', () => {
    const ran = setupOrder({ slurm: false, credentials: true });
    expect(ran.slice(-3)).toEqual(['stageCredential', 'startGlidein', 'confirmRegistration']);
    expect(teardownOrder(ran).slice(0, 3)).toEqual(['stopGlidein', 'removeCredential', 'stopContainer']);
    expect(setupOrder({ slurm: true, credentials: false })).not.toContain('stageCredential');
  });

  it('allocates the node first and releases it last, after the work directory, on a Slurm site', () => {
    expect(setupOrder({ slurm: true }).slice(0, 3)).toEqual(['planLaunch', 'allocateNode', 'openTunnel']);
    expect(teardownOrder(setupOrder({ slurm: true })).slice(-2)).toEqual(['cleanupGlidein', 'releaseNode']);
  });

  it('tears down in the reverse of the order setup acquires', () => {
    for (const [slurm, credentials] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ]) {
      const ran = setupOrder({ slurm, credentials });
      const acquired = ran.map(acquiredBy).filter((k) => k !== undefined);
      const released = teardownOrder(ran).filter((n) => !FINAL_STEPS.some((f) => f.name === n));
      expect(released).toEqual(acquired.reverse().map((kind) => INVERSE_OF[kind]));
    }
  });

  it('runs side by side what does not need each other: chain check beside the mounts, credential beside all', () => {
    const graph = Object.fromEntries(setupGraph({ slurm: true, credentials: true }).map((s) => [s.name, s.needs]));
    expect(graph).toEqual({
      allocateNode: [],
      openTunnel: ['allocateNode'],
      verifyOutbound: ['openTunnel'],
      mountCvmfs: ['openTunnel'],
      startContainer: ['mountCvmfs'],
      preloadProxychains: ['startContainer', 'verifyOutbound'],
      stageCredential: ['allocateNode'],
      startGlidein: ['preloadProxychains', 'stageCredential'],
      confirmRegistration: ['startGlidein'],
    });
    // Without Slurm, the steps that needed the node need nothing; without credentials, the glidein only the chain.
    const plain = setupGraph({ slurm: false });
    expect(plain.map((s) => s.name)).toEqual(setupOrder({ slurm: false }).slice(1));
    expect(plain.find((s) => s.name === 'openTunnel')?.needs).toEqual([]);
    expect(plain.find((s) => s.name === 'startGlidein')?.needs).toEqual(['preloadProxychains']);
    // Catalogue order is one order the graph allows: runs recorded before it replay in that order.
    for (const { name, needs } of setupGraph({ slurm: true, credentials: true }))
      for (const need of needs) expect(SETUP_STEP_NAMES.indexOf(need)).toBeLessThan(SETUP_STEP_NAMES.indexOf(name));
  });

  it('gives back each resource after those that use it, and the tunnel beside the mounts', () => {
    expect(releasedBefore('glidein')).toEqual([]);
    for (const kind of ['tunnel', 'container', 'credential'] as const)
      expect(releasedBefore(kind)).toEqual(['glidein']);
    // The mounts after the container that binds them; unmounting needs no tunnel, so it closes beside them.
    expect(releasedBefore('cvmfs').sort()).toEqual(['container', 'glidein']);
    expect(releasedBefore('tunnel')).not.toContain('cvmfs');
    expect(releasedBefore('allocation').sort()).toEqual(['container', 'credential', 'cvmfs', 'glidein', 'tunnel']);
    // Whatever the concurrency, the sequential teardown order is one it allows.
    for (const kind of Object.keys(INVERSE_OF) as HeldResource['kind'][])
      for (const first of releasedBefore(kind))
        expect(TEARDOWN_STEP_NAMES.indexOf(INVERSE_OF[first])).toBeLessThan(
          TEARDOWN_STEP_NAMES.indexOf(INVERSE_OF[kind]),
        );
  });

  it('gives every kind of held resource exactly one inverse, and every inverse one kind', () => {
    const kinds = heldResourceSchema.options.map((o) => o.shape.kind.value).sort();
    expect(Object.keys(INVERSE_OF).sort()).toEqual(kinds);
    const inverses = Object.values(INVERSE_OF);
    expect(new Set(inverses).size).toBe(inverses.length);
    for (const inverse of inverses) expect(STEPS[inverse].stage).toBe('teardown');
    for (const kind of kinds) {
      expect(SETUP_STEP_NAMES.filter((n) => acquiredBy(n) === kind)).toHaveLength(1);
    }
  });

  it('retires the work directory only as its one final step, before the node is released', () => {
    expect(FINAL_STEPS).toEqual([{ name: 'cleanupGlidein', before: 'releaseNode' }]);
  });

  it('holds each resource before its step, as the carried state accepts it, and updates it after', () => {
    const ctx = context();
    const held = SETUP_STEP_NAMES.flatMap((n) => {
      const acquires = (STEPS[n] as { acquires?: { before: (c: SetupContext) => HeldResource } }).acquires;
      return acquires ? [acquires.before(ctx)] : [];
    });
    expect(held).toEqual([
      { kind: 'allocation', jobName: 'glidein-jsc-1' },
      { kind: 'tunnel', socksPort: 0 },
      { kind: 'cvmfs', repositories: ['cms.cern.ch', 'oasis.opensciencegrid.org'] },
      { kind: 'container', instance: 'glidein-jsc-1' },
      { kind: 'credential' },
      { kind: 'glidein' },
    ]);
    for (const h of held) expect(heldResourceSchema.safeParse(h).success).toBe(true);
    const allocation = { jobId: '4711', node: 'jwc01', timeLeftMs: 7_200_000, reused: false };
    expect(STEPS.allocateNode.acquires!.after!(allocation, ctx)).toEqual({
      kind: 'allocation',
      jobName: 'glidein-jsc-1',
      jobId: '4711',
    });
    const tunnel = { socksPort: 1080, process: { pid: 42, startTime: '1' }, reused: true };
    expect(STEPS.openTunnel.acquires!.after!(tunnel, ctx)).toEqual({ kind: 'tunnel', socksPort: 1080 });
  });

  it('keeps the activity options the lifecycle has always had', () => {
    const ctx = context();
    const wait = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;
    const retry = (maximumAttempts: number) => ({
      initialInterval: '1s',
      backoffCoefficient: 2,
      maximumInterval: '30s',
      maximumAttempts,
    });
    const setup = (startToCloseTimeout: number, attempts: number, heartbeatTimeout?: number) => ({
      startToCloseTimeout,
      heartbeatTimeout,
      retry: retry(attempts),
      cancellationType: wait,
    });
    const undo = { startToCloseTimeout: 180_000, heartbeatTimeout: 15_000, retry: retry(5) };
    const of = (name: StepName, c: unknown = ctx) => {
      const options = (STEPS[name] as { options: unknown }).options;
      return typeof options === 'function' ? options(c) : options;
    };
    expect(of('planLaunch')).toEqual(setup(30_000, 3));
    expect(of('allocateNode')).toEqual(setup(1_800_000 + 120_000, 4, 15_000));
    expect(of('openTunnel')).toEqual(setup(1_800_000, 4, 15_000));
    for (const n of [
      'verifyOutbound',
      'startContainer',
      'preloadProxychains',
      'stageCredential',
      'startGlidein',
    ] as const)
      expect(of(n)).toEqual(setup(120_000, 4, 15_000));
    expect(of('mountCvmfs')).toEqual(setup(600_000, 3, 15_000));
    expect(of('confirmRegistration')).toEqual(setup(300_000 + 60_000, 3, 15_000));
    expect(of('monitor', PLAN)).toEqual({
      startToCloseTimeout: 120_000 + 30_000 + 120_000,
      heartbeatTimeout: 10_000,
      retry: { ...retry(10), maximumInterval: '60s' },
      cancellationType: ActivityCancellationType.TRY_CANCEL,
    });
    // A plan recorded before monitor.reportEvery: 10-minute rounds.
    expect(of('monitor', { ...PLAN, monitorRoundMs: undefined }).startToCloseTimeout).toBe(600_000 + 30_000 + 120_000);
    for (const n of TEARDOWN_STEP_NAMES.filter((t) => t !== 'stopGlidein')) expect(of(n)).toEqual(undo);
    const stop = (plan: LaunchPlan | undefined, mode: string) =>
      of('stopGlidein', { ref: ctx.ref, plan, mode }).startToCloseTimeout;
    expect(stop(PLAN, 'drain')).toBe(900_000 + 120_000);
    expect(stop(PLAN, 'stop')).toBe(60_000 + 120_000);
    expect(stop(undefined, 'stop')).toBe(600_000 + 120_000);
  });

  it('passes each activity the arguments it takes', () => {
    const ctx = context();
    // The holder job lasts registration + lifetime + drain + stop + 10 min: 300 + 3600 + 900 + 60 + 600 s.
    expect(STEPS.allocateNode.args(ctx)).toEqual([ctx.ref, 1_800_000, 5_460_000]);
    expect(STEPS.confirmRegistration.args(ctx)).toEqual([ctx.ref, 300_000]);
    ctx.status.deadline = 1_700_000_000_500;
    // Retires at the deadline, gone one drain grace later.
    expect(STEPS.startGlidein.args(ctx)).toEqual([ctx.ref, { retireAt: 1_700_000_000, dieAt: 1_700_000_900 }]);
    // The relay ends by itself by the glidein's own die time.
    expect(STEPS.openTunnel.args(ctx)).toEqual([ctx.ref, { dieAt: 1_700_000_900 }]);
    expect(STEPS.stopGlidein.args({ ref: ctx.ref, plan: PLAN, mode: 'drain' })).toEqual([ctx.ref, 'drain']);
  });

  it('records the node, and a deadline that leaves the drain grace before Slurm ends the job', () => {
    const ctx = context();
    ctx.status.deadline = Date.now() + 86_400_000;
    const before = Date.now();
    STEPS.allocateNode.record!({ jobId: '4711', node: 'jwc01', timeLeftMs: 7_200_000, reused: true }, ctx);
    expect(ctx.ref.node).toBe('jwc01');
    expect(ctx.status.allocation).toEqual({ jobId: '4711', node: 'jwc01' });
    expect(ctx.status.deadline).toBeGreaterThanOrEqual(before + 7_200_000 - 900_000 - 60_000);
    expect(ctx.status.deadline).toBeLessThanOrEqual(Date.now() + 7_200_000 - 900_000 - 60_000);
  });

  it('describes outcomes in the words the status has always used', () => {
    expect(STEPS.mountCvmfs.describe!({ mounted: ['cms.cern.ch'], shared: ['oasis'], alreadyMounted: ['atlas'] })).toBe(
      'mounted cms.cern.ch (shared with other glideins: oasis); already there: atlas',
    );
    expect(STEPS.mountCvmfs.describe!({ mounted: [], alreadyMounted: [] })).toBe('mounted nothing');
    expect(STEPS.planLaunch.describe!(PLAN)).toBe('lifetime 3600 s on jsc');
    expect(STEPS.closeTunnel.describe!({ detail: 'no tunnel was running' })).toBe('no tunnel was running');
  });

  it('lets a carried state name every catalogued step and no other', () => {
    const steps = STEP_NAMES.map((step) => ({ step, status: 'ok', startedAt: '2026-01-01T00:00:00Z' }));
    const carried = (s: unknown[]) => ({
      workflowId: 'glidein-jsc-1',
      plan: PLAN,
      status: { site: 'jsc', glideinId: 'glidein-jsc-1', phase: 'monitoring', steps: s, held: [] },
      tunnelRepairs: 0,
    });
    expect(resumeStateSchema.safeParse(carried(steps)).success).toBe(true);
    expect(resumeStateSchema.safeParse(carried([{ ...steps[0], step: 'rmRf' }])).success).toBe(false);
  });
});
