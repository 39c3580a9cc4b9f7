/**
 * LaunchGlidein: one glidein's lifecycle on one site, as a saga. Each acquiring step registers its inverse
 * before it runs (every inverse looks at the site first, so undoing a step that never got anywhere is a
 * no-op, and a half-done step is still undone); teardown runs the inverses in reverse, shielded from
 * cancellation, on success, failure, drain, stop and cancellation alike. Monitoring runs in rounds and
 * continues-as-new carrying the held resources, so history stays bounded however long the glidein lives.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { GlideinActivities } from '../activities';
import { instanceName } from '../common/naming';
import { MAX_TUNNEL_REPAIRS, resumeStateSchema, TEARDOWN_STEP_NAMES } from '../common/carried-state';
import { FailureType } from '../common/failure-types';
import { decideClose, decideEnd, messageOf } from './outcome';
import { holdResource } from '../common/held';
import {
  glideinIdFor,
  InvalidRequestError,
  legacyGlideinIdFor,
  parseGlideinRequest,
  type GlideinRequest,
} from '../common/request';
import type { GlideinRef, HeldResource, ShutdownMode, StepName, StepOutcome, UndoOutcome } from '../common/types';
import { formatIssues, siteName } from '../common/validation';
import type { LaunchPlan } from '../site/profile';
import {
  drainSignal,
  GlideinId,
  GlideinPhase,
  GlideinSite,
  statusQuery,
  stopSignal,
  type GlideinStatus,
  type Phase,
} from './messages';

/** State carried into the next run by continue-as-new; validated by resumeStateSchema on the way in. */
export interface ResumeState {
  /** The workflow that carried it: a run accepts only its own. */
  workflowId?: string;
  plan: LaunchPlan;
  status: GlideinStatus;
  tunnelRepairs: number;
}

/**
 * The public input is exactly the request. `resume` is accepted only in a run that another run of this same
 * workflow continued-as-new into, and only naming this workflow and the glidein it derives.
 */
export type LaunchGlideinInput = GlideinRequest & {
  resume?: ResumeState;
};

/**
 * One patch for the owned lifecycle: the collision-free glidein id, the history cap from the plan (at least one
 * monitor round per run), shutdowns honoured at the continue-as-new boundary, the live memo and the work
 * directory's clean-up. Histories recorded before it replay as they ran.
 */
const OWNED_LIFECYCLE = 'owned-lifecycle';

export interface LaunchResult {
  site: string;
  glideinId: string;
  endReason: string;
  registration?: GlideinStatus['registration'];
  steps: StepOutcome[];
}

const TEARDOWN_STEPS = new Set<StepName>(TEARDOWN_STEP_NAMES);
const DEFAULT_HISTORY_EVENTS = 5_000;

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

const plan = proxyActivities<GlideinActivities>(setupOptions(30_000, 3));
const site = proxyActivities<GlideinActivities>(setupOptions(120_000, 4, 15_000));
const cvmfs = proxyActivities<GlideinActivities>(setupOptions(600_000, 3, 15_000));
// A tunnel start may queue behind others towards the same sshd (tunnel.startsInFlight), heartbeating while it
// waits: a fleet starting at once must not time out in that queue.
const tunnels = proxyActivities<GlideinActivities>(setupOptions(1_800_000, 4, 15_000));
const undo = proxyActivities<GlideinActivities>({
  startToCloseTimeout: 180_000,
  heartbeatTimeout: 15_000,
  retry: retry(5),
});

export async function LaunchGlidein(input: LaunchGlideinInput): Promise<LaunchResult> {
  const info = workflowInfo();
  const root = CancellationScope.current();
  const owned = patched(OWNED_LIFECYCLE);
  const accepted = acceptInput(input, info, owned);
  if ('refused' in accepted) {
    // Refused before anything ran: still findable in the Web UI's list of failed glideins.
    upsertSearchAttributes([
      { key: GlideinPhase, value: 'failed' },
      { key: GlideinId, value: glideinIdFor(info.workflowId) },
      ...(accepted.site ? [{ key: GlideinSite, value: accepted.site }] : []),
    ]);
    throw ApplicationFailure.nonRetryable(accepted.refused, FailureType.InvalidRequest);
  }
  const { request, resume, legacyCap } = accepted;
  const ref: GlideinRef = {
    site: request.site,
    glideinId:
      resume?.status.glideinId ?? (owned ? glideinIdFor(info.workflowId) : legacyGlideinIdFor(info.workflowId)),
    node: resume?.status.allocation?.node,
  };
  const status: GlideinStatus = resume?.status ?? {
    site: ref.site,
    glideinId: ref.glideinId,
    phase: 'planning',
    steps: [],
    held: [],
  };
  let tunnelRepairs = resume?.tunnelRepairs ?? 0;

  setHandler(statusQuery, () => status);
  const work = new CancellationScope();
  const requestShutdown = (mode: ShutdownMode) => () => {
    if (
      status.phase === 'teardown' ||
      status.phase === 'done' ||
      status.phase === 'failed' ||
      status.phase === 'cancelled'
    )
      return;
    if (owned) {
      // A drain never softens a stop; a repeated or carried request still cancels the work.
      if (status.shutdown !== 'stop') status.shutdown = mode;
    } else {
      if (status.shutdown === 'stop') return;
      status.shutdown = mode;
    }
    log.info('shutdown requested', { mode, glideinId: ref.glideinId });
    work.cancel();
  };
  setHandler(drainSignal, requestShutdown('drain'));
  setHandler(stopSignal, requestShutdown('stop'));

  const setPhase = (phase: Phase) => {
    status.phase = phase;
    upsertSearchAttributes([
      { key: GlideinPhase, value: phase },
      { key: GlideinSite, value: ref.site },
      { key: GlideinId, value: ref.glideinId },
    ]);
    // While it runs too, not only once it has closed: what it is doing and what it holds.
    if (owned) upsertMemo({ phase, held: heldKinds() });
  };
  const heldKinds = () => status.held.map((h) => h.kind).join(', ') || 'nothing';

  /** Runs one step and records its outcome and duration for the status query. */
  async function step<T>(
    name: StepName,
    run: () => Promise<T>,
    describe: (r: T) => string | undefined = () => undefined,
  ): Promise<T> {
    const outcome: StepOutcome = { step: name, status: 'running', startedAt: new Date().toISOString() };
    status.steps.push(outcome);
    const started = Date.now();
    try {
      const result = await run();
      outcome.status = 'ok';
      outcome.detail = describe(result);
      return result;
    } catch (err) {
      outcome.status = 'failed';
      outcome.error = messageOf(err);
      throw err;
    } finally {
      outcome.durationMs = Date.now() - started;
    }
  }

  /** Records a resource before the step that takes it, or what its step learnt about it (one entry per kind). */
  const hold = (resource: HeldResource) => holdResource(status.held, resource);

  let launchPlan = resume?.plan;
  let failure: unknown;
  let continueWith: ResumeState | undefined;
  const historyCap = () =>
    owned ? (launchPlan?.historyEvents ?? DEFAULT_HISTORY_EVENTS) : (legacyCap ?? DEFAULT_HISTORY_EVENTS);

  setPhase(status.phase === 'planning' ? 'planning' : status.phase);
  // A stop or drain that reached the previous run as it continued-as-new ends this one.
  if (!(owned && status.shutdown)) {
    try {
      await work.run(async () => {
        if (!launchPlan) {
          launchPlan = await step(
            'planLaunch',
            () => plan.planLaunch(ref, request.lifetime),
            (p) => `lifetime ${p.lifetimeMs / 1000} s on ${p.site}`,
          );
          status.deadline = Date.now() + launchPlan.lifetimeMs;
          await setup(launchPlan);
        }
        continueWith = await monitor(launchPlan);
      });
    } catch (err) {
      failure = err;
    }
  }

  if (continueWith) {
    if (!owned) {
      await condition(allHandlersFinished);
      return continueAsNew<typeof LaunchGlidein>({
        ...request,
        maxHistoryEvents: legacyCap ?? DEFAULT_HISTORY_EVENTS,
        resume: continueWith,
      } as LaunchGlideinInput);
    }
    // Shielded: a cancellation while handlers finish must reach the teardown below, not end the run here.
    await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
    if (!status.shutdown && !root.consideredCancelled) {
      return continueAsNew<typeof LaunchGlidein>({
        ...request,
        resume: { ...continueWith, workflowId: info.workflowId },
      });
    }
    if (root.consideredCancelled && !status.shutdown) failure = new CancelledFailure('cancelled at a continue-as-new');
  }

  const end = decideEnd({
    failure,
    shutdown: status.shutdown,
    endReason: status.endReason,
    cancelRequested: root.consideredCancelled,
    owned,
  });
  status.endReason = end.endReason;

  if (end.conflict) {
    // Everything "held" is another workflow's: release nothing.
    log.warn('the glidein belongs to another workflow; nothing is released', { glideinId: ref.glideinId });
    status.held = [];
  } else {
    await teardown(end.teardownMode);
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
      stillHeld: heldKinds(),
    });
  }
  const close = decideClose(
    end,
    status.held.map((h) => h.kind),
  );
  setPhase(close.phase);
  if (close.phase === 'cancelled') {
    throw failure ?? new CancelledFailure('cancelled'); // closes as cancelled; the memo, the status query and the history show the teardown
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

  /** Moves the work directory aside once nothing is held any more; a failure here is only logged. */
  async function cleanup(): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      try {
        await step(
          'cleanupGlidein',
          () => undo.cleanupGlidein(ref),
          (r) => r.detail,
        );
      } catch (err) {
        log.warn('the work directory was not cleaned up', { glideinId: ref.glideinId, error: messageOf(err) });
      }
    });
  }

  async function setup(p: LaunchPlan): Promise<void> {
    setPhase('setup');
    if (p.slurm) {
      hold({ kind: 'allocation', jobName: ref.glideinId });
      const allocator = proxyActivities<GlideinActivities>(setupOptions(p.slurm.queueTimeoutMs + 120_000, 4, 15_000));
      const allocation = await step(
        'allocateNode',
        () => allocator.allocateNode(ref, p.slurm!.queueTimeoutMs),
        (a) => `${a.reused ? 'found' : 'submitted'} job ${a.jobId}, running on ${a.node}`,
      );
      ref.node = allocation.node;
      status.allocation = { jobId: allocation.jobId, node: allocation.node };
      hold({ kind: 'allocation', jobName: ref.glideinId, jobId: allocation.jobId });
      // Drain in time for the glidein to finish before Slurm ends the job.
      if (allocation.timeLeftMs !== undefined) {
        status.deadline = Math.min(
          status.deadline ?? Infinity,
          Date.now() + allocation.timeLeftMs - p.drainGraceMs - 60_000,
        );
      }
    }
    hold({ kind: 'tunnel', socksPort: 0 });
    const tunnel = await step(
      'openTunnel',
      () => tunnels.openTunnel(ref),
      (t) => `${t.reused ? 'reused' : 'opened'} SOCKS 127.0.0.1:${t.socksPort}, pid ${t.process.pid}`,
    );
    hold({ kind: 'tunnel', socksPort: tunnel.socksPort });
    await step(
      'verifyOutbound',
      () => site.verifyOutbound(ref),
      (r) => `reached ${r.target}: ${r.chain}`,
    );
    hold({ kind: 'cvmfs', repositories: p.repositories });
    await step(
      'mountCvmfs',
      () => cvmfs.mountCvmfs(ref),
      (r) =>
        `mounted ${r.mounted.join(', ') || 'nothing'}${r.shared?.length ? ` (shared with other glideins: ${r.shared.join(', ')})` : ''}${r.alreadyMounted.length ? `; already there: ${r.alreadyMounted.join(', ')}` : ''}`,
    );
    hold({ kind: 'container', instance: instanceName(ref.glideinId) });
    await step(
      'startContainer',
      () => site.startContainer(ref),
      (r) => `${r.reused ? 'reused' : 'started'} instance ${r.instance}, pid ${r.pid}`,
    );
    await step(
      'preloadProxychains',
      () => site.preloadProxychains(ref),
      (r) => r.chain,
    );
    hold({ kind: 'glidein' });
    // The glidein retires at the deadline and is gone one drain window later, by itself if need be.
    const retireAt = Math.floor((status.deadline ?? Date.now() + p.lifetimeMs) / 1000);
    const retirement = { retireAt, dieAt: retireAt + Math.ceil(p.drainGraceMs / 1000) };
    await step(
      'startGlidein',
      () => site.startGlidein(ref, retirement),
      (r) => `${r.reused ? 'reused' : 'started'} pid ${r.process.pid}`,
    );
    setPhase('registering');
    const registration = proxyActivities<GlideinActivities>(setupOptions(p.registrationTimeoutMs + 60_000, 3, 15_000));
    status.registration = await step(
      'confirmRegistration',
      () => registration.confirmRegistration(ref, p.registrationTimeoutMs),
      (r) => `${r.name} ${r.state}/${r.activity}`,
    );
  }

  /** Monitors until the lifetime ends or a fault; returns a resume state when it is time to continue-as-new. */
  async function monitor(p: LaunchPlan): Promise<ResumeState | undefined> {
    setPhase('monitoring');
    // Plans recorded before monitor.reportEvery existed carry no round length: they used 10 minutes.
    const roundMs = p.monitorRoundMs ?? 600_000;
    const watch = proxyActivities<GlideinActivities>({
      startToCloseTimeout: roundMs + p.monitorIntervalMs + 120_000,
      heartbeatTimeout: 10_000, // the monitor heartbeats every second while it waits
      retry: { ...retry(10), maximumInterval: '60s' },
      // Monitoring only reads the site: on drain or stop, teardown need not wait for it to notice.
      cancellationType: ActivityCancellationType.TRY_CANCEL,
    });
    const deadline = status.deadline ?? Date.now() + p.lifetimeMs;
    const timeToContinue = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= historyCap();
    for (let rounds = 0; ; rounds++) {
      // Every run monitors for at least one round before it continues-as-new: no cap can make it loop.
      if (owned ? rounds > 0 && timeToContinue() : timeToContinue()) return { plan: p, status, tunnelRepairs };
      const report = await watch.monitorGlidein(ref, {
        deadline,
        roundEnd: Math.min(deadline, Date.now() + roundMs),
        intervalMs: p.monitorIntervalMs,
      });
      status.lastCheck = report.last;
      switch (report.end) {
        case 'round-complete':
          continue;
        case 'deadline':
          status.endReason = 'lifetime';
          return undefined;
        case 'glidein-exited':
          // Glideins end themselves (idle timeout, retirement): a normal end, reported as such.
          status.endReason = `glidein exited: ${report.detail ?? ''}`.trim();
          status.ghost = report.ghost;
          if (report.ghost)
            log.warn('ghost glidein: its process ended but the collector still lists it', {
              glideinId: ref.glideinId,
              ad: report.ghost,
            });
          return undefined;
        case 'tunnel-down':
          if (++tunnelRepairs > MAX_TUNNEL_REPAIRS)
            throw ApplicationFailure.nonRetryable(
              `the tunnel went down ${tunnelRepairs} times; giving up`,
              FailureType.TunnelUnstable,
            );
          log.warn('tunnel down, reopening', { glideinId: ref.glideinId, repairs: tunnelRepairs });
          await step(
            'openTunnel',
            () => tunnels.openTunnel(ref),
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

  async function teardown(mode: ShutdownMode): Promise<void> {
    setPhase('teardown');
    let cleaned = false;
    // The work directory is retired once all else is released, and before the Slurm job: its node keeps part of it.
    const cleanupWhenClear = async () => {
      if (cleaned || !owned || !status.steps.some((s) => s.step !== 'planLaunch')) return;
      if (status.held.some((r) => r.kind !== 'allocation')) return;
      cleaned = true;
      await cleanup();
    };
    await CancellationScope.nonCancellable(async () => {
      for (const resource of [...status.held].reverse()) {
        if (resource.kind === 'allocation') await cleanupWhenClear();
        try {
          await release(resource, mode);
          status.held.splice(status.held.indexOf(resource), 1);
        } catch (err) {
          log.error('teardown step failed; continuing with the rest', {
            glideinId: ref.glideinId,
            resource: resource.kind,
            error: messageOf(err),
          });
        }
      }
      await cleanupWhenClear();
    });
  }

  function release(resource: HeldResource, mode: ShutdownMode): Promise<UndoOutcome> {
    const describe = (r: UndoOutcome) => r.detail;
    switch (resource.kind) {
      case 'glidein': {
        const stopper = proxyActivities<GlideinActivities>({
          startToCloseTimeout:
            ((mode === 'drain' ? launchPlan?.drainGraceMs : launchPlan?.stopGraceMs) ?? 600_000) + 120_000,
          heartbeatTimeout: 15_000,
          retry: retry(5),
        });
        return step('stopGlidein', () => stopper.stopGlidein(ref, mode), describe);
      }
      case 'container':
        return step('stopContainer', () => undo.stopContainer(ref), describe);
      case 'cvmfs':
        return step('unmountCvmfs', () => undo.unmountCvmfs(ref), describe);
      case 'tunnel':
        return step('closeTunnel', () => undo.closeTunnel(ref), describe);
      case 'allocation':
        return step('releaseNode', () => undo.releaseNode(ref), describe);
    }
  }
}

type Accepted =
  { request: GlideinRequest; resume?: ResumeState; legacyCap?: number } | { refused: string; site?: string };

/**
 * The whole input, validated before anything runs. A first run takes exactly the request. A run continued from
 * another one also takes the carried state, if it passes its schema and names this workflow and the glidein id
 * this workflow derives (states carried before OWNED_LIFECYCLE name neither and bring their history cap).
 */
function acceptInput(input: unknown, info: ReturnType<typeof workflowInfo>, owned: boolean): Accepted {
  const raw = (input !== null && typeof input === 'object' && !Array.isArray(input) ? input : {}) as Record<
    string,
    unknown
  >;
  const site = siteName.safeParse(raw.site).success ? (raw.site as string) : undefined;
  const refuse = (why: string): Accepted => ({ refused: `LaunchGlidein input is invalid:\n${why}`, site });
  const continued = info.continuedFromExecutionRunId !== undefined;
  const { resume: rawResume, maxHistoryEvents, ...rest } = raw;
  let request: GlideinRequest;
  try {
    // Histories recorded before OWNED_LIFECYCLE may carry the old test knob maxHistoryEvents in a first run.
    request = parseGlideinRequest(continued || !owned ? rest : input);
  } catch (err) {
    if (err instanceof InvalidRequestError) return { refused: err.message, site };
    throw err;
  }
  let legacyCap: number | undefined;
  if (maxHistoryEvents !== undefined) {
    if (typeof maxHistoryEvents !== 'number' || !Number.isInteger(maxHistoryEvents) || maxHistoryEvents < 0)
      return refuse('maxHistoryEvents: expected a whole number');
    legacyCap = maxHistoryEvents;
  }
  if (!continued) return owned ? { request } : { request, legacyCap };
  if (rawResume === undefined) return { request, legacyCap };
  const parsed = resumeStateSchema.safeParse(rawResume);
  if (!parsed.success) return refuse(formatIssues(parsed.error).replace(/^/gm, 'resume.'));
  const resume = parsed.data as ResumeState;
  const { status, plan: carriedPlan } = resume;
  if (resume.workflowId !== undefined && resume.workflowId !== info.workflowId)
    return refuse('resume.workflowId: carried by another workflow');
  // Only states carried before OWNED_LIFECYCLE bring the old cap; its value is used only where it was then.
  if (resume.workflowId !== undefined && legacyCap !== undefined)
    return refuse("maxHistoryEvents: not an input (the history cap is the site profile's monitor.historyEvents)");
  const mine = [glideinIdFor(info.workflowId), legacyGlideinIdFor(info.workflowId)];
  if (!mine.includes(status.glideinId))
    return refuse(`resume.status.glideinId: not the glidein id this workflow derives (${mine[0]})`);
  if (carriedPlan.glideinId !== status.glideinId)
    return refuse('resume.plan.glideinId: differs from resume.status.glideinId');
  if (status.site !== request.site || carriedPlan.site !== request.site)
    return refuse(`resume.status.site: differs from site ${request.site}`);
  for (const h of status.held) {
    if (h.kind === 'allocation' && h.jobName !== status.glideinId)
      return refuse('resume.status.held: the allocation names another glidein');
    if (h.kind === 'container' && h.instance !== instanceName(status.glideinId))
      return refuse('resume.status.held: the container names another glidein');
    if (h.kind === 'cvmfs' && h.repositories.some((r) => !carriedPlan.repositories.includes(r)))
      return refuse('resume.status.held: cvmfs names a repository the plan does not');
  }
  return { request, resume, legacyCap };
}
