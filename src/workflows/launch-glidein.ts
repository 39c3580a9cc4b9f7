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
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
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
import { glideinIdFor, InvalidRequestError, parseGlideinRequest, type GlideinRequest } from '../common/request';
import type { GlideinRef, HeldResource, ShutdownMode, StepName, StepOutcome, UndoOutcome } from '../common/types';
import type { LaunchPlan } from '../site/profile';
import { drainSignal, GlideinId, GlideinPhase, GlideinSite, statusQuery, stopSignal, type GlideinStatus, type Phase } from './messages';

/** State carried into the next run by continue-as-new. */
export interface ResumeState {
  plan: LaunchPlan;
  status: GlideinStatus;
  tunnelRepairs: number;
}

export type LaunchGlideinInput = GlideinRequest & {
  /** Set only by the workflow itself when it continues-as-new. */
  resume?: ResumeState;
  /** Continue-as-new after this many history events while monitoring (tests set it low). */
  maxHistoryEvents?: number;
};

export interface LaunchResult {
  site: string;
  glideinId: string;
  endReason: string;
  registration?: GlideinStatus['registration'];
  steps: StepOutcome[];
}

const MAX_TUNNEL_REPAIRS = 5;

const TEARDOWN_STEPS = new Set<StepName>(['stopGlidein', 'stopContainer', 'unmountCvmfs', 'closeTunnel', 'releaseNode']);

const retry = (maximumAttempts: number): ActivityOptions['retry'] => ({
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval: '30s',
  maximumAttempts,
});

/** Setup steps wait for a cancelled attempt to finish, so teardown never races a half-started resource. */
const setupOptions = (startToCloseTimeout: number, maximumAttempts = 4, heartbeatTimeout?: number): ActivityOptions => ({
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
const undo = proxyActivities<GlideinActivities>({ startToCloseTimeout: 180_000, heartbeatTimeout: 15_000, retry: retry(5) });

export async function LaunchGlidein(input: LaunchGlideinInput): Promise<LaunchResult> {
  const { resume, maxHistoryEvents = 5_000, ...rawRequest } = input ?? ({} as LaunchGlideinInput);
  let request: GlideinRequest;
  try {
    request = parseGlideinRequest(rawRequest);
  } catch (err) {
    if (err instanceof InvalidRequestError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidRequest');
    throw err;
  }
  const ref: GlideinRef = { site: request.site, glideinId: resume?.status.glideinId ?? glideinIdFor(workflowInfo().workflowId), node: resume?.status.allocation?.node };
  const status: GlideinStatus = resume?.status ?? { site: ref.site, glideinId: ref.glideinId, phase: 'planning', steps: [], held: [] };
  let tunnelRepairs = resume?.tunnelRepairs ?? 0;

  setHandler(statusQuery, () => status);
  const work = new CancellationScope();
  const requestShutdown = (mode: ShutdownMode) => () => {
    if (status.shutdown === 'stop' || status.phase === 'teardown' || status.phase === 'done') return;
    status.shutdown = mode;
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
  };

  /** Runs one step and records its outcome and duration for the status query. */
  async function step<T>(name: StepName, run: () => Promise<T>, describe: (r: T) => string | undefined = () => undefined): Promise<T> {
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

  const hold = (resource: HeldResource) => {
    if (!status.held.some((h) => h.kind === resource.kind)) status.held.push(resource);
  };

  let launchPlan = resume?.plan;
  let failure: unknown;
  let continueWith: ResumeState | undefined;

  setPhase(status.phase === 'planning' ? 'planning' : status.phase);
  try {
    await work.run(async () => {
      if (!launchPlan) {
        launchPlan = await step('planLaunch', () => plan.planLaunch(ref, request.lifetime), (p) => `lifetime ${p.lifetimeMs / 1000} s on ${p.site}`);
        status.deadline = Date.now() + launchPlan.lifetimeMs;
        await setup(launchPlan);
      }
      continueWith = await monitor(launchPlan);
    });
  } catch (err) {
    failure = err;
  }

  if (continueWith) {
    await condition(allHandlersFinished);
    return continueAsNew<typeof LaunchGlidein>({ ...request, maxHistoryEvents, resume: continueWith });
  }

  const cancelled = failure !== undefined && isCancellation(failure);
  const shutdownMode: ShutdownMode = status.shutdown ?? (status.endReason === 'lifetime' ? 'drain' : 'stop');
  if (cancelled && !status.shutdown) status.endReason = 'cancelled';
  else if (status.shutdown && (cancelled || failure === undefined)) status.endReason ??= status.shutdown === 'drain' ? 'drained' : 'stopped';
  else if (failure) status.endReason = `failed: ${messageOf(failure)}`;

  await teardown(shutdownMode);

  const result: LaunchResult = { site: ref.site, glideinId: ref.glideinId, endReason: status.endReason ?? 'done', registration: status.registration, steps: status.steps };
  const teardownFailed = status.held.length > 0;
  // How it ended and what teardown did, on the closed execution (Web UI, `temporal workflow describe`), whatever
  // the close: a cancelled workflow has no result to carry it.
  if (patched('memo-end-reason')) {
    upsertMemo({
      endReason: result.endReason,
      teardown: status.steps.filter((s) => TEARDOWN_STEPS.has(s.step)).map((s) => `${s.step}: ${s.status === 'ok' ? s.detail : `failed: ${s.error}`}`),
      stillHeld: status.held.map((h) => h.kind).join(', ') || 'nothing',
    });
  }
  if (cancelled && !status.shutdown) {
    setPhase('cancelled');
    throw failure; // closes as cancelled; the memo, the status query and the history show the teardown
  }
  if ((failure && !(cancelled && status.shutdown)) || teardownFailed) {
    setPhase('failed');
    const what = failure ? messageOf(failure) : 'teardown left resources held';
    throw ApplicationFailure.create({
      message: `LaunchGlidein ${ref.glideinId} at ${ref.site} failed: ${what}${teardownFailed ? `; still held after teardown: ${status.held.map((h) => h.kind).join(', ')}` : ''}`,
      type: failureType(failure) ?? 'TeardownIncomplete',
      nonRetryable: true,
      details: [result],
      cause: failure instanceof Error ? failure : undefined,
    });
  }
  setPhase('done');
  return result;

  async function setup(p: LaunchPlan): Promise<void> {
    setPhase('setup');
    if (p.slurm) {
      hold({ kind: 'allocation', jobName: ref.glideinId });
      const allocator = proxyActivities<GlideinActivities>(setupOptions(p.slurm.queueTimeoutMs + 120_000, 4, 15_000));
      const allocation = await step('allocateNode', () => allocator.allocateNode(ref, p.slurm!.queueTimeoutMs), (a) => `${a.reused ? 'found' : 'submitted'} job ${a.jobId}, running on ${a.node}`);
      ref.node = allocation.node;
      status.allocation = { jobId: allocation.jobId, node: allocation.node };
      status.held[status.held.length - 1] = { kind: 'allocation', jobName: ref.glideinId, jobId: allocation.jobId };
      // Drain in time for the glidein to finish before Slurm ends the job.
      if (allocation.timeLeftMs !== undefined) {
        status.deadline = Math.min(status.deadline ?? Infinity, Date.now() + allocation.timeLeftMs - p.drainGraceMs - 60_000);
      }
    }
    hold({ kind: 'tunnel', socksPort: 0 });
    const tunnel = await step('openTunnel', () => tunnels.openTunnel(ref), (t) => `${t.reused ? 'reused' : 'opened'} SOCKS 127.0.0.1:${t.socksPort}, pid ${t.process.pid}`);
    status.held[status.held.length - 1] = { kind: 'tunnel', socksPort: tunnel.socksPort };
    await step('verifyOutbound', () => site.verifyOutbound(ref), (r) => `reached ${r.target}: ${r.chain}`);
    hold({ kind: 'cvmfs', repositories: p.repositories });
    await step('mountCvmfs', () => cvmfs.mountCvmfs(ref), (r) => `mounted ${r.mounted.join(', ') || 'nothing'}${r.shared?.length ? ` (shared with other glideins: ${r.shared.join(', ')})` : ''}${r.alreadyMounted.length ? `; already there: ${r.alreadyMounted.join(', ')}` : ''}`);
    hold({ kind: 'container', instance: instanceName(ref.glideinId) });
    await step('startContainer', () => site.startContainer(ref), (r) => `${r.reused ? 'reused' : 'started'} instance ${r.instance}, pid ${r.pid}`);
    await step('preloadProxychains', () => site.preloadProxychains(ref), (r) => r.chain);
    hold({ kind: 'glidein' });
    // The glidein retires at the deadline and is gone one drain window later, by itself if need be.
    const retireAt = Math.floor((status.deadline ?? Date.now() + p.lifetimeMs) / 1000);
    const retirement = { retireAt, dieAt: retireAt + Math.ceil(p.drainGraceMs / 1000) };
    await step('startGlidein', () => site.startGlidein(ref, retirement), (r) => `${r.reused ? 'reused' : 'started'} pid ${r.process.pid}`);
    setPhase('registering');
    const registration = proxyActivities<GlideinActivities>(setupOptions(p.registrationTimeoutMs + 60_000, 3, 15_000));
    status.registration = await step('confirmRegistration', () => registration.confirmRegistration(ref, p.registrationTimeoutMs), (r) => `${r.name} ${r.state}/${r.activity}`);
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
    for (;;) {
      if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= maxHistoryEvents) {
        return { plan: p, status, tunnelRepairs };
      }
      const report = await watch.monitorGlidein(ref, { deadline, roundEnd: Math.min(deadline, Date.now() + roundMs), intervalMs: p.monitorIntervalMs });
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
          if (report.ghost) log.warn('ghost glidein: its process ended but the collector still lists it', { glideinId: ref.glideinId, ad: report.ghost });
          return undefined;
        case 'tunnel-down':
          if (++tunnelRepairs > MAX_TUNNEL_REPAIRS) throw ApplicationFailure.nonRetryable(`the tunnel went down ${tunnelRepairs} times; giving up`, 'TunnelUnstable');
          log.warn('tunnel down, reopening', { glideinId: ref.glideinId, repairs: tunnelRepairs });
          await step('openTunnel', () => tunnels.openTunnel(ref), (t) => `reopened after a drop: pid ${t.process.pid}`);
          continue;
        case 'unregistered':
          throw ApplicationFailure.nonRetryable(`glidein ${ref.glideinId} is running but no longer in the collector: ${report.detail}`, 'GlideinUnregistered');
      }
    }
  }

  async function teardown(mode: ShutdownMode): Promise<void> {
    setPhase('teardown');
    await CancellationScope.nonCancellable(async () => {
      for (const resource of [...status.held].reverse()) {
        try {
          await release(resource, mode);
          status.held.splice(status.held.indexOf(resource), 1);
        } catch (err) {
          log.error('teardown step failed; continuing with the rest', { glideinId: ref.glideinId, resource: resource.kind, error: messageOf(err) });
        }
      }
    });
  }

  function release(resource: HeldResource, mode: ShutdownMode): Promise<UndoOutcome> {
    const describe = (r: UndoOutcome) => r.detail;
    switch (resource.kind) {
      case 'glidein': {
        const stopper = proxyActivities<GlideinActivities>({
          startToCloseTimeout: ((mode === 'drain' ? launchPlan?.drainGraceMs : launchPlan?.stopGraceMs) ?? 600_000) + 120_000,
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

function messageOf(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error && cause.message && !err.message.includes(cause.message) ? `${err.message}: ${cause.message}` : err.message;
  }
  return String(err);
}

function failureType(err: unknown): string | undefined {
  let e: unknown = err;
  while (e instanceof Error) {
    if (e instanceof ApplicationFailure && e.type) return e.type;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
