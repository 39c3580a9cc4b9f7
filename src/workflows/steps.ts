/**
 * The step catalogue: every step of a glidein lifecycle declared once — its activity, what it takes on the site and
 * the step that gives it back, its activity options, and how its outcome reads in the status. The saga
 * (./saga.ts), the step names the carried state accepts, the teardown order and the tests' expectations all derive
 * from this table. Adding a step is one entry here (and its activity).
 *
 * Pure and deterministic: the workflow sandbox runs it, and carried-state.ts, clients and tests import it.
 */
import { ActivityCancellationType, type ActivityOptions } from '@temporalio/common';
import type { GlideinActivities } from '../activities';
import { recordedRegistration } from '../common/carried-text';
import { instanceName } from '../common/naming';
import type { GlideinRef, HeldResource, ShutdownMode } from '../common/types';
import { STAGE_OF, STEP_NAMES as NAMED, type StepName } from '../common/step-names';
import type { LaunchPlan } from '../site/plan';
import type { GlideinStatus, Phase } from './messages';

type ActivityName = keyof GlideinActivities;
type ResultOf<A extends ActivityName> = Awaited<ReturnType<GlideinActivities[A]>>;
type Kind = HeldResource['kind'];
type Held<K extends Kind> = Extract<HeldResource, { kind: K }>;

/** What a setup step's arguments, options and records are worked out from. */
export interface SetupContext {
  /** Mutable: allocateNode names the node every later step runs on. */
  ref: GlideinRef;
  plan: LaunchPlan;
  status: GlideinStatus;
}

/** What a teardown step's arguments and options are worked out from. */
export interface TeardownContext {
  ref: GlideinRef;
  /** Absent only when planning never finished, and then nothing is held. */
  plan?: LaunchPlan;
  mode: ShutdownMode;
}

type Options<C> = ActivityOptions | ((ctx: C) => ActivityOptions);

/** Activities that take only the ref get it; any other says how its arguments are made, so none is forgotten. */
type ArgsOf<A extends ActivityName, C> =
  Parameters<GlideinActivities[A]> extends [GlideinRef]
    ? { args?: undefined }
    : { args: (ctx: C) => Parameters<GlideinActivities[A]> };

interface StepBase<A extends ActivityName> {
  activity: A;
  /** The status's detail for a step that succeeded. */
  describe?: (result: ResultOf<A>) => string | undefined;
}

/** What the step touches on the site, for its activity's summary in the Web UI (see activitySummary). */
type Touches<C> = { touches: (ctx: C) => string };

/** Loads the plan; runs once per lifecycle, before the phase leaves planning. */
type PlanStep<A extends ActivityName> = StepBase<A> &
  Touches<{ ref: GlideinRef }> & { stage: 'plan'; options: ActivityOptions };

/**
 * What a step takes on the site, recorded before it runs (its inverse looks at the site first, so a step that never
 * got anywhere, or got half-way, is undone all the same) and again with what it learnt.
 */
type Acquisition<A extends ActivityName> = {
  [K in Kind]: {
    kind: K;
    inverse: string;
    before: (ctx: SetupContext) => Held<K>;
    after?: (result: ResultOf<A>, ctx: SetupContext) => Held<K>;
  };
}[Kind];

type SetupStep<A extends ActivityName> = StepBase<A> &
  ArgsOf<A, SetupContext> &
  Touches<SetupContext> & {
    stage: 'setup';
    options: Options<SetupContext>;
    /** Runs only on sites whose plan has this. */
    requires?: 'slurm' | 'credentials';
    /**
     * The earlier setup steps whose results this one uses (the node, the port, the mounts, the container, the chain);
     * one that does not run on the site (`requires`) is left out. Steps that do not need each other run side by side
     * (since the patch 'concurrent-steps'), and teardown gives back in the reverse of this order (concurrentTeardown).
     */
    needs?: readonly string[];
    /** Needs whose resource may be given back before (or beside) this step's: its inverse does not use them. */
    releasedWithout?: readonly string[];
    /** The phase the lifecycle enters as this step starts. */
    enters?: Phase;
    acquires?: Acquisition<A>;
    /** What else the status and later steps learn from its result. */
    record?: (result: ResultOf<A>, ctx: SetupContext) => void;
  };

/** The monitor: rounds of one activity, not a recorded step; the name is the one its failures carry. */
type MonitorStep<A extends ActivityName> = Touches<SetupContext> & {
  stage: 'monitor';
  activity: A;
  options: (plan: LaunchPlan) => ActivityOptions;
};

type TeardownStep<A extends ActivityName> = StepBase<A> &
  ArgsOf<A, TeardownContext> &
  Touches<TeardownContext> & {
    stage: 'teardown';
    options: Options<TeardownContext>;
    /** A step that is no resource's inverse runs once all else is released, just before this step. */
    before?: string;
  };

const plan = <A extends ActivityName>(spec: Omit<PlanStep<A>, 'stage'>): PlanStep<A> => ({ stage: 'plan', ...spec });
const setup = <A extends ActivityName>(spec: Omit<SetupStep<A>, 'stage'>): SetupStep<A> =>
  ({ stage: 'setup', ...spec }) as SetupStep<A>;
const monitor = <A extends ActivityName>(spec: Omit<MonitorStep<A>, 'stage'>): MonitorStep<A> => ({
  stage: 'monitor',
  ...spec,
});
const teardown = <A extends ActivityName>(spec: Omit<TeardownStep<A>, 'stage'>): TeardownStep<A> =>
  ({ stage: 'teardown', ...spec }) as TeardownStep<A>;

const retry = (maximumAttempts: number): ActivityOptions['retry'] => ({
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval: '30s',
  maximumAttempts,
});

/** Setup steps wait for a cancelled attempt to finish, so teardown never races a half-started resource. */
const setupOptions = (
  startToCloseTimeout: number,
  maximumAttempts = 4,
  heartbeatTimeout?: number,
): ActivityOptions => ({
  startToCloseTimeout,
  heartbeatTimeout,
  retry: retry(maximumAttempts),
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

const ON_SITE = setupOptions(120_000, 4, 15_000);
const UNDO: ActivityOptions = { startToCloseTimeout: 180_000, heartbeatTimeout: 15_000, retry: retry(5) };
const undone = (r: { detail: string }) => r.detail;

/** Where a step runs: the node Slurm handed out, or (`worker`) the profile's worker node. */
const on = (ref: GlideinRef) => ref.node ?? 'worker';
const port = (ref: GlideinRef) => (ref.socksPort ? `:${ref.socksPort}` : ':<leased port>');

/**
 * How long the holder job must last for the glidein's whole life: registering, its lifetime, a drain and a stop, and
 * ten minutes for setup and teardown. The activity keeps it within the profile's timeLimit; Slurm then ends the job
 * (and everything in it) by its own clock, whatever becomes of the workflow.
 */
export function holderWalltimeMs(plan: LaunchPlan): number {
  return plan.registrationTimeoutMs + plan.lifetimeMs + plan.drainGraceMs + plan.stopGraceMs + 600_000;
}

/**
 * The glidein retires at the deadline and is gone one drain window later, by itself if need be (epoch seconds):
 * what startGlidein configures, and what the relay (openTunnel) ends by.
 */
export function glideinLife(plan: LaunchPlan, status: GlideinStatus): { retireAt: number; dieAt: number } {
  const retireAt = Math.floor((status.deadline ?? Date.now() + plan.lifetimeMs) / 1000);
  return { retireAt, dieAt: retireAt + Math.ceil(plan.drainGraceMs / 1000) };
}

/** Plans recorded before monitor.reportEvery existed carry no round length: they used 10 minutes. */
export const monitorRoundMs = (p: LaunchPlan): number => p.monitorRoundMs ?? 600_000;

/** In lifecycle order: planning, setup, the monitor, then the steps that give back what setup took. */
export const STEPS = {
  planLaunch: plan({
    activity: 'planLaunch',
    options: setupOptions(30_000, 3),
    touches: ({ ref }) => `sites/${ref.site}.yaml for ${ref.glideinId}`,
    describe: (p) => `lifetime ${p.lifetimeMs / 1000} s on ${p.site}`,
  }),
  allocateNode: setup({
    activity: 'allocateNode',
    requires: 'slurm',
    options: ({ plan }) => setupOptions(plan.slurm!.queueTimeoutMs + 120_000, 4, 15_000),
    args: ({ ref, plan }) => [ref, plan.slurm!.queueTimeoutMs, holderWalltimeMs(plan)],
    touches: ({ ref }) => `Slurm job ${ref.glideinId}`,
    acquires: {
      kind: 'allocation',
      inverse: 'releaseNode',
      before: ({ ref }) => ({ kind: 'allocation', jobName: ref.glideinId }),
      after: (a, { ref }) => ({ kind: 'allocation', jobName: ref.glideinId, jobId: a.jobId }),
    },
    record: (a, { ref, plan, status }) => {
      ref.node = a.node;
      ref.jobId = a.jobId;
      status.allocation = { jobId: a.jobId, node: a.node };
      // Drain in time for the glidein to finish before Slurm ends the job.
      if (a.timeLeftMs !== undefined) {
        status.deadline = Math.min(status.deadline ?? Infinity, Date.now() + a.timeLeftMs - plan.drainGraceMs - 60_000);
      }
    },
    describe: (a) => `${a.reused ? 'found' : 'submitted'} job ${a.jobId}, running on ${a.node}`,
  }),
  openTunnel: setup({
    activity: 'openTunnel',
    needs: ['allocateNode'],
    // A tunnel start may queue behind others towards the same sshd (tunnel.startsInFlight), heartbeating while it
    // waits: a fleet starting at once must not time out in that queue.
    options: setupOptions(1_800_000, 4, 15_000),
    // The relay ends by itself at the glidein's die time, even if no worker is left to close it.
    args: ({ ref, plan, status }) => [ref, { dieAt: glideinLife(plan, status).dieAt }],
    touches: ({ ref }) => `login→${on(ref)}${port(ref)}`,
    acquires: {
      kind: 'tunnel',
      inverse: 'closeTunnel',
      before: () => ({ kind: 'tunnel', socksPort: 0 }),
      after: (t) => ({ kind: 'tunnel', socksPort: t.socksPort }),
    },
    // Every later step reaches the chain through the port this glidein's tunnel leased.
    record: (t, { ref }) => {
      ref.socksPort = t.socksPort;
    },
    describe: (t) => `${t.reused ? 'reused' : 'opened'} SOCKS port ${t.socksPort}, pid ${t.process.pid}`,
  }),
  verifyOutbound: setup({
    activity: 'verifyOutbound',
    needs: ['openTunnel'],
    options: ON_SITE,
    touches: ({ ref, plan }) => `${on(ref)}${port(ref)} → collector ${plan.collector}`,
    describe: (r) => `reached ${r.target}: ${r.chain}${r.checked?.length ? `; ${r.checked.join('; ')}` : ''}`,
  }),
  mountCvmfs: setup({
    activity: 'mountCvmfs',
    // cvmfs reaches its proxies through the chain: the tunnel must be up (the check of the chain runs beside it).
    needs: ['openTunnel'],
    // Unmounting needs no network: the tunnel may close beside it.
    releasedWithout: ['openTunnel'],
    options: setupOptions(600_000, 3, 15_000),
    touches: ({ ref, plan }) => `${plan.repositories.join(', ')} on ${on(ref)}`,
    acquires: {
      kind: 'cvmfs',
      inverse: 'unmountCvmfs',
      before: ({ plan }) => ({ kind: 'cvmfs', repositories: plan.repositories }),
    },
    describe: (r) =>
      `mounted ${r.mounted.join(', ') || 'nothing'}` +
      (r.shared?.length ? ` (shared with other glideins: ${r.shared.join(', ')})` : '') +
      (r.alreadyMounted.length ? `; already there: ${r.alreadyMounted.join(', ')}` : ''),
  }),
  startContainer: setup({
    activity: 'startContainer',
    needs: ['mountCvmfs'],
    options: ON_SITE,
    touches: ({ ref }) => `instance ${instanceName(ref.glideinId)} on ${on(ref)}`,
    acquires: {
      kind: 'container',
      inverse: 'stopContainer',
      before: ({ ref }) => ({ kind: 'container', instance: instanceName(ref.glideinId) }),
    },
    describe: (r) => `${r.reused ? 'reused' : 'started'} instance ${r.instance}, pid ${r.pid}`,
  }),
  preloadProxychains: setup({
    activity: 'preloadProxychains',
    needs: ['startContainer', 'verifyOutbound'],
    options: ON_SITE,
    touches: ({ ref }) => `${instanceName(ref.glideinId)} → SOCKS${port(ref)}`,
    describe: (r) => r.chain,
  }),
  stageCredential: setup({
    activity: 'stageCredential',
    needs: ['allocateNode'],
    requires: 'credentials',
    options: ON_SITE,
    touches: ({ ref, plan }) => `${plan.credentials?.join(', ') || 'credentials'} into ${plan.workDir} on ${on(ref)}`,
    // It must be accepted until the glidein is gone: its deadline and one drain window.
    args: ({ ref, plan, status }) => [ref, (status.deadline ?? Date.now() + plan.lifetimeMs) + plan.drainGraceMs],
    acquires: { kind: 'credential', inverse: 'removeCredential', before: () => ({ kind: 'credential' }) },
    describe: (r) =>
      r.staged.map((c) => `${c.kind} from ${c.file}${c.expiresAt ? `, valid until ${c.expiresAt}` : ''}`).join('; '),
  }),
  startGlidein: setup({
    activity: 'startGlidein',
    needs: ['preloadProxychains', 'stageCredential'],
    options: ON_SITE,
    touches: ({ ref, plan }) => `glidein in ${instanceName(ref.glideinId)} on ${on(ref)} → ${plan.collector}`,
    args: ({ ref, plan, status }) => [ref, glideinLife(plan, status)],
    acquires: { kind: 'glidein', inverse: 'stopGlidein', before: () => ({ kind: 'glidein' }) },
    describe: (r) => `${r.reused ? 'reused' : 'started'} pid ${r.process.pid}`,
  }),
  confirmRegistration: setup({
    activity: 'confirmRegistration',
    needs: ['startGlidein'],
    enters: 'registering',
    options: ({ plan }) => setupOptions(plan.registrationTimeoutMs + 60_000, 3, 15_000),
    args: ({ ref, plan }) => [ref, plan.registrationTimeoutMs],
    touches: ({ ref, plan }) => `${ref.glideinId} in collector ${plan.collector}`,
    record: (r, { status }) => {
      status.registration = recordedRegistration(r);
    },
    describe: (r) => `${r.name} ${r.state}/${r.activity}`,
  }),
  monitor: monitor({
    activity: 'monitorGlidein',
    touches: ({ ref, plan }) => `${ref.glideinId} on ${on(ref)}, tunnel${port(ref)}, collector ${plan.collector}`,
    options: (plan) => ({
      startToCloseTimeout: monitorRoundMs(plan) + plan.monitorIntervalMs + 120_000,
      heartbeatTimeout: 10_000, // the monitor heartbeats every second while it waits
      retry: { ...retry(10), maximumInterval: '60s' },
      // Monitoring only reads the site: on drain or stop, teardown need not wait for it to notice.
      cancellationType: ActivityCancellationType.TRY_CANCEL,
    }),
  }),
  stopGlidein: teardown({
    activity: 'stopGlidein',
    // Long enough for the glidein's own grace: its running jobs finish on a drain.
    options: ({ plan, mode }) => ({
      startToCloseTimeout: ((mode === 'drain' ? plan?.drainGraceMs : plan?.stopGraceMs) ?? 600_000) + 120_000,
      heartbeatTimeout: 15_000,
      retry: retry(5),
    }),
    args: ({ ref, mode }) => [ref, mode],
    touches: ({ ref, mode }) => `${mode} ${ref.glideinId} on ${on(ref)}`,
    describe: undone,
  }),
  removeCredential: teardown({
    activity: 'removeCredential',
    options: UNDO,
    touches: ({ ref, plan }) => `credentials in ${plan?.workDir ?? ref.glideinId} on ${on(ref)}`,
    describe: undone,
  }),
  stopContainer: teardown({
    activity: 'stopContainer',
    options: UNDO,
    touches: ({ ref }) => `instance ${instanceName(ref.glideinId)} on ${on(ref)}`,
    describe: undone,
  }),
  unmountCvmfs: teardown({
    activity: 'unmountCvmfs',
    options: UNDO,
    touches: ({ ref, plan }) => `${plan?.repositories.join(', ') ?? 'repositories'} on ${on(ref)}`,
    describe: undone,
  }),
  closeTunnel: teardown({
    activity: 'closeTunnel',
    options: UNDO,
    touches: ({ ref }) => `login→${on(ref)}${port(ref)}`,
    describe: undone,
  }),
  // The work directory is retired once all else is released, and before the Slurm job: its node keeps part of it.
  cleanupGlidein: teardown({
    activity: 'cleanupGlidein',
    options: UNDO,
    touches: ({ ref, plan }) => `${plan?.workDir ?? ref.glideinId} on ${on(ref)}`,
    describe: undone,
    before: 'releaseNode',
  }),
  releaseNode: teardown({
    activity: 'releaseNode',
    options: UNDO,
    touches: ({ ref }) => `Slurm job ${ref.jobId ?? ref.glideinId}`,
    describe: undone,
  }),
} satisfies Record<StepName, unknown>;

export type Steps = typeof STEPS;
export type { StepName };
type StepsIn<S extends Steps[StepName]['stage']> = {
  [N in StepName]: Steps[N]['stage'] extends S ? N : never;
}[StepName];
export type SetupStepName = StepsIn<'setup'>;
export type TeardownStepName = StepsIn<'teardown'>;
/** The activity a step runs, exactly: a step's proxy type-checks no other. */
export type ActivityOf<N extends StepName> = GlideinActivities[Steps[N]['activity']];

/**
 * A step's activity summary in the Web UI and `temporal workflow describe`: the activity, the site, and what the
 * step touches there, e.g. `openTunnel jsc-box login→jsccpu12:1081`.
 */
export function activitySummary(name: StepName, ctx: { ref: GlideinRef }): string {
  const step = STEPS[name] as { activity: string; touches: (ctx: unknown) => string };
  return `${step.activity} ${ctx.ref.site} ${step.touches(ctx)}`.slice(0, 200);
}

/** Every step name, in lifecycle order: the names a status (and a carried one) may hold. */
export const STEP_NAMES = Object.keys(STEPS) as StepName[];

// The catalogue declares exactly the steps common/step-names.ts names, in its order and stages: checked as it loads
// (the types check the keys; this, the order and the stages).
if (STEP_NAMES.join() !== NAMED.join() || STEP_NAMES.some((n) => STEPS[n].stage !== STAGE_OF[n]))
  throw new Error(`the step catalogue (${STEP_NAMES.join()}) is not common/step-names.ts (${NAMED.join()})`);

const namesIn = <N extends StepName>(stage: Steps[StepName]['stage']) =>
  STEP_NAMES.filter((n) => STEPS[n].stage === stage) as N[];

/** The setup steps in the order they run (each only if its site needs it). */
export const SETUP_STEP_NAMES = namesIn<SetupStepName>('setup');
const TEARDOWN_NAMES = namesIn<TeardownStepName>('teardown');

/** Each kind of held resource, and the step that gives it back. */
export const INVERSE_OF = inverses();

function inverses(): Record<Kind, TeardownStepName> {
  const found: Partial<Record<Kind, TeardownStepName>> = {};
  for (const name of SETUP_STEP_NAMES) {
    const acquires: { kind: Kind; inverse: string } | undefined = STEPS[name].acquires;
    if (!acquires) continue;
    if (!TEARDOWN_NAMES.includes(acquires.inverse as TeardownStepName))
      throw new Error(
        `step catalogue: ${name}.acquires.inverse names '${acquires.inverse}', which is not a teardown step ` +
          `(declare it in STEPS with teardown(…))`,
      );
    if (found[acquires.kind])
      throw new Error(
        `step catalogue: ${name} acquires '${acquires.kind}', which ${found[acquires.kind]} already gives back`,
      );
    found[acquires.kind] = acquires.inverse as TeardownStepName;
  }
  return found as Record<Kind, TeardownStepName>;
}

/** The teardown steps that are no resource's inverse, with the step each runs before. */
export const FINAL_STEPS = TEARDOWN_NAMES.filter((n) => !Object.values(INVERSE_OF).includes(n)).map((name) => {
  const before = (STEPS[name] as { before?: string }).before;
  if (before !== undefined && !TEARDOWN_NAMES.includes(before as TeardownStepName))
    throw new Error(`step catalogue: ${name}.before names '${before}', which is not a teardown step`);
  return { name, before: before as TeardownStepName | undefined };
});

/** The steps a lifecycle runs up to monitoring, on a site that does or does not allocate a node. */
export function setupOrder(site: { slurm: boolean; credentials?: boolean }): StepName[] {
  const setupSteps = SETUP_STEP_NAMES.filter((n) => {
    const requires = STEPS[n].requires;
    return requires === undefined || !!site[requires];
  });
  return [...namesIn('plan'), ...setupSteps];
}

/**
 * The teardown after the given steps succeeded: the inverses of what they took, in reverse, each final step just
 * before the step it names (or last when that one does not run).
 */
export function teardownOrder(ran: readonly StepName[]): TeardownStepName[] {
  const order = ran
    .flatMap((n) => {
      const acquires: { kind: Kind } | undefined = (STEPS[n] as { acquires?: { kind: Kind } }).acquires;
      return acquires ? [INVERSE_OF[acquires.kind]] : [];
    })
    .reverse();
  for (const { name, before } of FINAL_STEPS) {
    const at = before === undefined ? -1 : order.indexOf(before);
    order.splice(at < 0 ? order.length : at, 0, name);
  }
  return order;
}

/** Every teardown step in the order teardown runs them (each only if its resource is held). */
export const TEARDOWN_STEP_NAMES = teardownOrder(SETUP_STEP_NAMES);

/** Each setup step's `needs`, checked: every one an earlier setup step, so catalogue order is a valid order too. */
const NEEDS = needsOf();

function needsOf(): Record<SetupStepName, SetupStepName[]> {
  const found = {} as Record<SetupStepName, SetupStepName[]>;
  SETUP_STEP_NAMES.forEach((name, at) => {
    const needs = ((STEPS[name] as { needs?: readonly string[] }).needs ?? []) as SetupStepName[];
    for (const need of needs)
      if (!SETUP_STEP_NAMES.slice(0, at).includes(need))
        throw new Error(`step catalogue: ${name}.needs names '${need}', which is not an earlier setup step`);
    found[name] = [...needs];
  });
  return found;
}

/**
 * What a step's resource needs while it is given back: its needs, but for those it is released without, what they
 * needed in turn (the mounts need the node still, not the tunnel).
 */
const NEEDS_TO_RELEASE = {} as Record<SetupStepName, SetupStepName[]>;
for (const n of SETUP_STEP_NAMES) {
  const without = (STEPS[n] as { releasedWithout?: readonly string[] }).releasedWithout ?? [];
  for (const w of without)
    if (!NEEDS[n].includes(w as SetupStepName))
      throw new Error(`step catalogue: ${n}.releasedWithout names '${w}', which is not one of its needs`);
  NEEDS_TO_RELEASE[n] = [...new Set(NEEDS[n].flatMap((m) => (without.includes(m) ? NEEDS_TO_RELEASE[m] : [m])))];
}

/** Every setup step `name` needs (in `graph`), directly or through the steps it needs. */
function neededBy(name: SetupStepName, graph: Record<SetupStepName, SetupStepName[]> = NEEDS): Set<SetupStepName> {
  const all = new Set<SetupStepName>();
  const visit = (n: SetupStepName): void => {
    for (const m of graph[n]) {
      if (all.has(m)) continue;
      all.add(m);
      visit(m);
    }
  };
  visit(name);
  return all;
}

/**
 * The setup steps a site runs (setupOrder, without planning), each with the steps among them it waits for: a need
 * that does not run there stands for what it needs in turn.
 */
export function setupGraph(site: {
  slurm: boolean;
  credentials?: boolean;
}): { name: SetupStepName; needs: SetupStepName[] }[] {
  const runs = new Set(setupOrder(site));
  const waitsFor = (n: SetupStepName): SetupStepName[] => NEEDS[n].flatMap((m) => (runs.has(m) ? [m] : waitsFor(m)));
  return SETUP_STEP_NAMES.filter((n) => runs.has(n)).map((name) => ({ name, needs: [...new Set(waitsFor(name))] }));
}

/** Each kind of held resource, in the order setup takes them one after another: the order a status lists them. */
export const HELD_ORDER = SETUP_STEP_NAMES.flatMap((n) => {
  const acquires: { kind: Kind } | undefined = (STEPS[n] as { acquires?: { kind: Kind } }).acquires;
  return acquires ? [acquires.kind] : [];
});

const ACQUIRED_BY = Object.fromEntries(
  SETUP_STEP_NAMES.flatMap((n) => {
    const acquires: { kind: Kind } | undefined = (STEPS[n] as { acquires?: { kind: Kind } }).acquires;
    return acquires ? [[acquires.kind, n]] : [];
  }),
) as Record<Kind, SetupStepName>;

/**
 * The kinds of resource to give back before `kind`: those whose step needs (directly or not, and not only to start:
 * `releasedWithout`) the step that took `kind` — the glidein before the tunnel it talks through, the container
 * before the mounts it binds. The reverse of
 * setup's order, and no more: what nothing else needs is given back side by side.
 */
export function releasedBefore(kind: Kind): Kind[] {
  return (Object.keys(ACQUIRED_BY) as Kind[]).filter(
    (other) => other !== kind && neededBy(ACQUIRED_BY[other], NEEDS_TO_RELEASE).has(ACQUIRED_BY[kind]),
  );
}
