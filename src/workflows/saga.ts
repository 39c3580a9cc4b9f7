/**
 * The saga of one LaunchGlidein run: plan, set up, monitor, and at the end release what is held and close. Every
 * step is run as the catalogue (./steps.ts) declares it — its activity and options, its arguments, what it holds
 * before it runs and what it learnt — and teardown gives back each held resource by its catalogued inverse, in
 * reverse, shielded from cancellation, on success, failure, drain, stop and cancellation alike.
 */
import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  upsertMemo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { GlideinActivities } from '../activities';
import { MAX_TUNNEL_REPAIRS } from '../common/carried-state';
import { CARRIED_TEXT, clipText, recordedCheck } from '../common/carried-text';
import { FailureType } from '../common/failure-types';
import type { HeldResource, ShutdownMode, StepName } from '../common/types';
import type { LaunchPlan } from '../site/plan';
import type { ResumeState } from './input';
import type { GlideinStatus } from './messages';
import { decideClose, decideEnd, messageOf } from './outcome';
import type { GlideinLifecycle } from './state';
import {
  activitySummary,
  FINAL_STEPS,
  HELD_ORDER,
  INVERSE_OF,
  monitorRoundMs,
  releasedBefore,
  SETUP_STEP_NAMES,
  setupGraph,
  STEPS,
  TEARDOWN_STEP_NAMES,
  type ActivityOf,
  type SetupContext,
  type SetupStepName,
  type TeardownContext,
} from './steps';

export interface LaunchResult {
  site: string;
  glideinId: string;
  endReason: string;
  registration?: GlideinStatus['registration'];
  steps: GlideinStatus['steps'];
}

const TEARDOWN_STEPS = new Set<StepName>(TEARDOWN_STEP_NAMES);

/** The work directory's retirement: the final teardown step, run once only the resource it precedes is held. */
const RETIRE = FINAL_STEPS[0];
const RETIRE_BEFORE_KIND = (Object.keys(INVERSE_OF) as HeldResource['kind'][]).find(
  (kind) => INVERSE_OF[kind] === RETIRE.before,
);

/**
 * The activity of a step, with these options: typed to that activity alone. Its summary in the Web UI says what the
 * step touches, from `ctx` (user metadata on the command: replay ignores it, so no patch is needed).
 */
export function activityFor<N extends StepName>(
  name: N,
  options: ActivityOptions,
  ctx: Parameters<typeof activitySummary>[1],
): ActivityOf<N> {
  const activities: Record<string, unknown> = proxyActivities<GlideinActivities>({
    ...options,
    summary: activitySummary(name, ctx),
  });
  return activities[STEPS[name].activity] as ActivityOf<N>;
}

/**
 * planLaunch reads the profile in the worker and touches no site: since the patch it runs as a local activity, in
 * the workflow task that asks for it (no activity task round trip, no scheduled/started/completed events). Runs
 * recorded before it replay the activity they recorded.
 */
function planLaunch(lifecycle: GlideinLifecycle): GlideinActivities['planLaunch'] {
  if (!patched('local-plan')) return activityFor('planLaunch', STEPS.planLaunch.options, lifecycle);
  const { startToCloseTimeout, retry } = STEPS.planLaunch.options;
  return proxyLocalActivities<GlideinActivities>({
    startToCloseTimeout,
    retry,
    summary: activitySummary('planLaunch', lifecycle),
  }).planLaunch;
}

/** A catalogue entry as the saga runs it: the catalogue has typed each field against its own activity. */
interface Declared<C> {
  options: ActivityOptions | ((ctx: C) => ActivityOptions);
  args?: (ctx: C) => unknown[];
  describe?: (result: unknown) => string | undefined;
}

const optionsOf = <C>(step: Pick<Declared<C>, 'options'>, ctx: C): ActivityOptions =>
  typeof step.options === 'function' ? step.options(ctx) : step.options;

/** Runs a catalogued step with its options and arguments, recorded in the status. */
function runStep<C extends SetupContext | TeardownContext>(
  lifecycle: GlideinLifecycle,
  name: StepName,
  ctx: C,
): Promise<unknown> {
  const step = STEPS[name] as unknown as Declared<C>;
  const activity = activityFor(name, optionsOf(step, ctx), ctx) as (...args: unknown[]) => Promise<unknown>;
  return lifecycle.step(name, () => activity(...(step.args?.(ctx) ?? [ctx.ref])), step.describe);
}

/**
 * Plans (unless a continued run carries the plan), sets up and monitors, in the work scope that a stop or drain
 * cancels. Returns what went wrong, or the state to continue-as-new with.
 */
export async function work(
  lifecycle: GlideinLifecycle,
  lifetime: string | undefined,
): Promise<{ failure?: unknown; next?: ResumeState }> {
  // A stop or drain that reached the previous run as it continued-as-new ends this one.
  if (lifecycle.owned && lifecycle.status.shutdown) return {};
  // Asked before planning: a patch first asked in the activation that resolves a local activity (planLaunch) is
  // not seen on replay (the marker follows the local activity's in the same task), and the run would not replay.
  const concurrent = patched('concurrent-steps');
  try {
    const next = await lifecycle.work.run(async () => {
      if (!lifecycle.plan) {
        lifecycle.plan = await lifecycle.step(
          'planLaunch',
          () => planLaunch(lifecycle)(lifecycle.ref, lifetime),
          STEPS.planLaunch.describe,
        );
        lifecycle.status.deadline = Date.now() + lifecycle.plan.lifetimeMs;
        await setup(lifecycle, lifecycle.plan, concurrent);
      }
      return monitor(lifecycle, lifecycle.plan);
    });
    return { next };
  } catch (failure) {
    return { failure };
  }
}

/**
 * Every setup step the site needs, each recorded as held before it runs. Since the patch 'concurrent-steps' a step
 * starts as soon as the steps it needs have succeeded (the chain check beside the mounts, the credential beside
 * both); once one fails, no further step starts, the running ones are waited for (teardown never races a
 * half-started resource), and of the failures the earliest step's in catalogue order is the setup's. Runs recorded
 * before it replay one step after another, in catalogue order.
 */
async function setup(lifecycle: GlideinLifecycle, plan: LaunchPlan, concurrent: boolean): Promise<void> {
  lifecycle.setPhase('setup');
  const ctx: SetupContext = { ref: lifecycle.ref, plan, status: lifecycle.status };
  const graph = setupGraph({ slurm: !!plan.slurm, credentials: !!plan.credentials });
  if (!concurrent) {
    for (const { name } of graph) await setupStep(lifecycle, name, ctx);
    return;
  }
  const from = lifecycle.status.steps.length;
  const running = new Map<SetupStepName, Promise<void>>();
  const failed: { name: SetupStepName; error: unknown }[] = [];
  const run = (name: SetupStepName, needs: SetupStepName[]): Promise<void> => {
    let started = running.get(name);
    if (!started) {
      started = (async () => {
        await Promise.all(needs.map((n) => running.get(n)));
        if (failed.length > 0) return; // another step failed meanwhile: start nothing more
        try {
          await setupStep(lifecycle, name, ctx);
        } catch (error) {
          failed.push({ name, error });
          throw error;
        }
      })();
      running.set(name, started);
    }
    return started;
  };
  await Promise.allSettled(graph.map(({ name, needs }) => run(name, needs)));
  lifecycle.sortSteps(from, SETUP_STEP_NAMES);
  lifecycle.status.held.sort((a, b) => HELD_ORDER.indexOf(a.kind) - HELD_ORDER.indexOf(b.kind));
  // Of steps that failed side by side, the earliest in catalogue order names the cause: a chain check that failed
  // beside mounts that could not reach their proxies through that chain.
  failed.sort((a, b) => SETUP_STEP_NAMES.indexOf(a.name) - SETUP_STEP_NAMES.indexOf(b.name));
  if (failed.length > 0) throw failed[0].error;
}

/** One setup step: held before it runs, then what it learnt. */
async function setupStep(lifecycle: GlideinLifecycle, name: SetupStepName, ctx: SetupContext): Promise<void> {
  const step = STEPS[name];
  if (step.enters) lifecycle.setPhase(step.enters);
  const acquires = step.acquires as
    | { before: (ctx: SetupContext) => HeldResource; after?: (r: unknown, ctx: SetupContext) => HeldResource }
    | undefined;
  if (acquires) lifecycle.hold(acquires.before(ctx));
  const result = await runStep(lifecycle, name, ctx);
  if (acquires?.after) lifecycle.hold(acquires.after(result, ctx));
  (step.record as ((r: unknown, ctx: SetupContext) => void) | undefined)?.(result, ctx);
  lifecycle.showDetails(); // the node, the registration: known now
}

/** Monitors until the lifetime ends or a fault; returns a resume state when it is time to continue-as-new. */
async function monitor(lifecycle: GlideinLifecycle, plan: LaunchPlan): Promise<ResumeState | undefined> {
  const { ref, status } = lifecycle;
  lifecycle.setPhase('monitoring');
  const roundMs = monitorRoundMs(plan);
  const ctx: SetupContext = { ref, plan, status };
  const watch = activityFor('monitor', STEPS.monitor.options(plan), ctx);
  const reopen = activityFor('openTunnel', optionsOf(STEPS.openTunnel, ctx), ctx);
  const deadline = status.deadline ?? Date.now() + plan.lifetimeMs;
  for (let rounds = 0; ; rounds++) {
    if (lifecycle.shouldContinueAsNew(rounds)) return lifecycle.resumeState(plan);
    const report = await watch(ref, {
      deadline,
      roundEnd: Math.min(deadline, Date.now() + roundMs),
      intervalMs: plan.monitorIntervalMs,
    });
    status.lastCheck = report.last && recordedCheck(report.last);
    lifecycle.noteClaim(report);
    lifecycle.showDetails();
    switch (report.end) {
      case 'round-complete':
        continue;
      case 'deadline':
        status.endReason = 'lifetime';
        return undefined;
      case 'glidein-exited':
        // Glideins end themselves (idle timeout, retirement): a normal end, reported as such.
        status.endReason = clipText(`glidein exited: ${report.detail ?? ''}`.trim(), CARRIED_TEXT.endReason);
        status.ghost = report.ghost && clipText(report.ghost, CARRIED_TEXT.ghost);
        if (report.ghost)
          log.warn('ghost glidein: its process ended but the collector still lists it', {
            glideinId: ref.glideinId,
            ad: report.ghost,
          });
        return undefined;
      case 'allocation-ended':
        // The node is no longer the glidein's: a normal end (like a glidein's own), and teardown looks at the site.
        status.endReason = clipText(report.detail ?? 'the allocation ended', CARRIED_TEXT.endReason);
        log.warn('the allocation ended under the glidein', { glideinId: ref.glideinId, detail: report.detail });
        return undefined;
      case 'tunnel-down':
        if (++lifecycle.tunnelRepairs > MAX_TUNNEL_REPAIRS)
          throw ApplicationFailure.nonRetryable(
            `the tunnel went down ${lifecycle.tunnelRepairs} times; giving up`,
            FailureType.TunnelUnstable,
          );
        log.warn('tunnel down, reopening', { glideinId: ref.glideinId, repairs: lifecycle.tunnelRepairs });
        // The tunnel is held already: reopening it changes nothing teardown needs to know.
        await lifecycle.step(
          'openTunnel',
          // With the glidein's die time, as at setup: a reopened relay ends by itself too.
          () => reopen(...STEPS.openTunnel.args(ctx)),
          (t) => `reopened after a drop: pid ${t.process.pid}`,
        );
        continue;
      case 'unregistered':
        throw ApplicationFailure.nonRetryable(
          `glidein ${ref.glideinId} is running but no longer in the collector: ${report.detail}`,
          FailureType.GlideinUnregistered,
        );
    }
  }
}

/**
 * Decides how the run ended (./outcome.ts), releases what is held unless it is another workflow's, writes the
 * memo, and closes: returns the result, or throws the cancellation or the failure.
 */
export async function finish(lifecycle: GlideinLifecycle, failure: unknown): Promise<LaunchResult> {
  const { ref, status } = lifecycle;
  const end = decideEnd({
    failure,
    shutdown: status.shutdown,
    endReason: status.endReason,
    cancelRequested: lifecycle.root.consideredCancelled,
    owned: lifecycle.owned,
  });
  status.endReason = end.endReason;

  if (end.conflict) {
    // Everything "held" is another workflow's: release nothing.
    log.warn('the glidein belongs to another workflow; nothing is released', { glideinId: ref.glideinId });
    status.held = [];
  } else {
    await teardown(lifecycle, end.teardownMode);
  }

  const result: LaunchResult = {
    site: ref.site,
    glideinId: ref.glideinId,
    endReason: status.endReason ?? 'done',
    registration: status.registration,
    steps: status.steps,
  };
  // How it ended and what teardown did, on the closed execution (Web UI, `temporal workflow describe`), whatever
  // the close: a cancelled workflow has no result to carry it.
  if (patched('memo-end-reason')) {
    upsertMemo({
      endReason: result.endReason,
      teardown: end.conflict
        ? ['skipped: the glidein belongs to another workflow']
        : status.steps
            .filter((s) => TEARDOWN_STEPS.has(s.step))
            .map((s) => `${s.step}: ${s.status === 'ok' ? s.detail : `failed: ${s.error}`}`),
      stillHeld: lifecycle.heldKinds(),
    });
  }
  const close = decideClose(
    end,
    status.held.map((h) => h.kind),
  );
  lifecycle.setPhase(close.phase);
  if (close.phase === 'cancelled') {
    // closes as cancelled; the memo, the status query and the history show the teardown
    throw failure ?? new CancelledFailure('cancelled');
  }
  if (close.phase === 'failed') {
    throw ApplicationFailure.create({
      message: `LaunchGlidein ${ref.glideinId} at ${ref.site} failed: ${close.message}`,
      type: close.failureType,
      nonRetryable: true,
      details: [result],
      cause: end.fault instanceof Error ? end.fault : undefined,
    });
  }
  return result;
}

/** Gives back every held resource by its inverse, last taken first, logging and going on past one that fails. */
async function teardown(lifecycle: GlideinLifecycle, mode: ShutdownMode): Promise<void> {
  const { ref, status } = lifecycle;
  lifecycle.setPhase('teardown');
  const ctx: TeardownContext = { ref, plan: lifecycle.plan, mode };
  let retired = false;
  const retireWhenClear = async () => {
    // Nothing but planning ran: there is no directory to retire.
    if (retired || !lifecycle.owned || !status.steps.some((s) => s.step !== 'planLaunch')) return;
    if (status.held.some((r) => r.kind !== RETIRE_BEFORE_KIND)) return;
    retired = true;
    await retire(lifecycle, ctx);
  };
  const release = async (resource: HeldResource) => {
    try {
      await runStep(lifecycle, INVERSE_OF[resource.kind], ctx);
      lifecycle.released(resource);
    } catch (err) {
      log.error('teardown step failed; continuing with the rest', {
        glideinId: ref.glideinId,
        resource: resource.kind,
        error: messageOf(err),
      });
    }
  };
  await CancellationScope.nonCancellable(async () => {
    if (!patched('concurrent-steps')) {
      for (const resource of [...status.held].reverse()) {
        if (resource.kind === RETIRE_BEFORE_KIND) await retireWhenClear();
        await release(resource);
      }
      await retireWhenClear();
      return;
    }
    // Since the patch: each resource once those that need it are given back (or failed to be), the rest side by
    // side; the work directory once all but the node is, and the node last.
    const from = status.steps.length;
    const held = [...status.held];
    const released = new Map<HeldResource['kind'], Promise<void>>();
    const giveBack = (resource: HeldResource): Promise<void> => {
      let done = released.get(resource.kind);
      if (!done) {
        const first = held.filter((h) => releasedBefore(resource.kind).includes(h.kind));
        done = Promise.all(first.map(giveBack)).then(() => release(resource));
        released.set(resource.kind, done);
      }
      return done;
    };
    await Promise.all(held.filter((h) => h.kind !== RETIRE_BEFORE_KIND).map(giveBack));
    await retireWhenClear();
    const node = held.find((h) => h.kind === RETIRE_BEFORE_KIND);
    if (node) await giveBack(node);
    await retireWhenClear();
    lifecycle.sortSteps(from, TEARDOWN_STEP_NAMES);
  });
}

/** Moves the work directory aside once nothing is held any more; a failure here is only logged. */
async function retire(lifecycle: GlideinLifecycle, ctx: TeardownContext): Promise<void> {
  await CancellationScope.nonCancellable(async () => {
    try {
      await runStep(lifecycle, RETIRE.name, ctx);
    } catch (err) {
      log.warn('the work directory was not cleaned up', { glideinId: ctx.ref.glideinId, error: messageOf(err) });
    }
  });
}
