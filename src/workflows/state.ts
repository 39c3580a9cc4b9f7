/**
 * What one run of LaunchGlidein knows, and how it answers messages: the status (phase, steps, held resources), the
 * shutdown asked for, and when to continue-as-new. The saga (./saga.ts) acts on the site; this only records.
 */
import {
  CancellationScope,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { CARRIED_TEXT, clipText } from '../common/carried-text';
import { holdResource } from '../common/held';
import { glideinIdFor, legacyGlideinIdFor } from '../common/request';
import type { GlideinRef, HeldResource, MonitorReport, ShutdownMode, StepName, StepOutcome } from '../common/types';
import type { LaunchPlan } from '../site/plan';
import { currentDetails, memoIdentity } from './details';
import type { Accepted, ResumeState } from './input';
import {
  drainSignal,
  GlideinId,
  GlideinPhase,
  GlideinSite,
  statusQuery,
  stopSignal,
  type GlideinClaim,
  type GlideinStatus,
  type Phase,
} from './messages';
import { notePhase, observeStep } from './metrics';
import { messageOf } from './outcome';

export const DEFAULT_HISTORY_EVENTS = 5_000;

/** Phases in which a stop or drain has nothing left to stop. */
const ENDING: readonly Phase[] = ['teardown', 'done', 'failed', 'cancelled'];

export class GlideinLifecycle {
  readonly owned: boolean;
  readonly ref: GlideinRef;
  readonly status: GlideinStatus;
  /** Absent until planLaunch has run (a continued run carries it). */
  plan?: LaunchPlan;
  tunnelRepairs: number;
  /** The workflow's own scope (built in the workflow function): cancelled when the workflow is. */
  readonly root = CancellationScope.current();
  /** Setup and monitoring run in it; a stop or drain cancels it. */
  readonly work = new CancellationScope();
  /** A history cap from the input, only in runs recorded before the owned lifecycle. */
  private readonly legacyCap?: number;

  constructor(accepted: Accepted, owned: boolean, workflowId: string) {
    const { request, resume } = accepted;
    this.owned = owned;
    this.legacyCap = accepted.legacyCap;
    this.ref = {
      site: request.site,
      glideinId: resume?.status.glideinId ?? (owned ? glideinIdFor(workflowId) : legacyGlideinIdFor(workflowId)),
      node: resume?.status.allocation?.node,
      jobId: resume?.status.allocation?.jobId,
      socksPort: heldSocksPort(resume?.status.held),
    };
    this.status = resume?.status ?? {
      site: this.ref.site,
      glideinId: this.ref.glideinId,
      phase: 'planning',
      steps: [],
      held: [],
    };
    this.plan = resume?.plan;
    this.tunnelRepairs = resume?.tunnelRepairs ?? 0;
  }

  setHandlers(): void {
    setHandler(statusQuery, () => this.status);
    setHandler(drainSignal, () => this.requestShutdown('drain'));
    setHandler(stopSignal, () => this.requestShutdown('stop'));
  }

  requestShutdown(mode: ShutdownMode): void {
    const { status } = this;
    if (ENDING.includes(status.phase)) return;
    if (this.owned) {
      // A drain never softens a stop; a repeated or carried request still cancels the work.
      if (status.shutdown !== 'stop') status.shutdown = mode;
    } else {
      if (status.shutdown === 'stop') return;
      status.shutdown = mode;
    }
    log.info('shutdown requested', { mode, glideinId: this.ref.glideinId });
    this.showDetails();
    this.work.cancel();
  }

  setPhase(phase: Phase): void {
    notePhase(this, phase);
    this.status.phase = phase;
    upsertSearchAttributes([
      { key: GlideinPhase, value: phase },
      { key: GlideinSite, value: this.ref.site },
      { key: GlideinId, value: this.ref.glideinId },
    ]);
    // While it runs too, not only once it has closed: what it is doing and what it holds, and (since the patch)
    // which glidein it is, where, and its registration once known.
    if (this.owned)
      upsertMemo({ phase, held: this.heldKinds(), ...(patched('memo-identity') ? memoIdentity(this.status) : {}) });
    this.showDetails();
  }

  /** The Web UI's current details, from the status (not a command: replay is unaffected). */
  showDetails(): void {
    setCurrentDetails(currentDetails(this.status));
  }

  /**
   * What a monitor round saw of the glidein's claim: claimed, or idle since its last claim (or since it registered).
   * Written to the memo when it changes, where its fleet reads it (observeFleet: the visibility list, or a describe).
   */
  noteClaim(report: MonitorReport): void {
    const { last } = report;
    if (!last?.registered) return;
    const previous = this.status.claim;
    const claimed = last.claimed === true;
    const registeredAt = this.status.steps.find((s) => s.step === 'confirmRegistration' && s.status === 'ok');
    const idleSince = claimed
      ? undefined
      : (report.lastClaimedAt ??
        (previous?.claimed === false ? previous.idleSince : undefined) ??
        (previous?.claimed ? last.at : undefined) ??
        (registeredAt
          ? new Date(Date.parse(registeredAt.startedAt) + (registeredAt.durationMs ?? 0)).toISOString()
          : last.at));
    const claim = { claimed, ...(idleSince ? { idleSince } : {}) };
    this.status.claim = claim;
    const shown = workflowInfo().memo?.claim as GlideinClaim | undefined;
    if (shown?.claimed === claim.claimed && shown.idleSince === claim.idleSince) return;
    if (this.owned && patched('memo-claim')) upsertMemo({ claim });
  }

  heldKinds(): string {
    return this.status.held.map((h) => h.kind).join(', ') || 'nothing';
  }

  /** Records a resource before the step that takes it, or what its step learnt about it (one entry per kind). */
  hold(resource: HeldResource): void {
    holdResource(this.status.held, resource);
  }

  released(resource: HeldResource): void {
    this.status.held.splice(this.status.held.indexOf(resource), 1);
  }

  /** Runs one step and records its outcome and duration for the status query. */
  async step<T>(name: StepName, run: () => Promise<T>, describe?: (result: T) => string | undefined): Promise<T> {
    run = observeStep(this, name, run);
    const outcome: StepOutcome = { step: name, status: 'running', startedAt: new Date().toISOString() };
    this.status.steps.push(outcome);
    this.showDetails();
    const started = Date.now();
    try {
      const result = await run();
      outcome.status = 'ok';
      const detail = describe?.(result);
      if (detail !== undefined) outcome.detail = clipText(detail, CARRIED_TEXT.detail);
      return result;
    } catch (err) {
      outcome.status = 'failed';
      outcome.error = clipText(messageOf(err), CARRIED_TEXT.error);
      throw err;
    } finally {
      outcome.durationMs = Date.now() - started;
      this.showDetails();
    }
  }

  /**
   * Puts the steps recorded since `from` in the order `order` lists them (steps that ran side by side finish in any
   * order; the status lists them as the catalogue does, each with its start time). A stable sort: a step recorded
   * twice keeps its two places in turn.
   */
  sortSteps(from: number, order: readonly StepName[]): void {
    const rank = (s: StepOutcome) => {
      const at = order.indexOf(s.step);
      return at < 0 ? order.length : at;
    };
    const tail = this.status.steps.splice(from);
    this.status.steps.push(
      ...tail
        .map((s, i) => ({ s, i }))
        .sort((a, b) => rank(a.s) - rank(b.s) || a.i - b.i)
        .map(({ s }) => s),
    );
    this.showDetails();
  }

  historyCap(): number {
    return this.owned
      ? (this.plan?.historyEvents ?? DEFAULT_HISTORY_EVENTS)
      : (this.legacyCap ?? DEFAULT_HISTORY_EVENTS);
  }

  /** Time to continue-as-new, before monitoring round `round` of this run. */
  shouldContinueAsNew(round: number): boolean {
    const due = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= this.historyCap();
    // Every run monitors for at least one round before it continues-as-new: no cap can make it loop.
    return this.owned ? round > 0 && due() : due();
  }

  /** What the next run continues from. */
  resumeState(plan: LaunchPlan): ResumeState {
    return { plan, status: this.status, tunnelRepairs: this.tunnelRepairs };
  }
}

/** The port a carried tunnel holds (0 while its step had not returned yet: none). */
function heldSocksPort(held: HeldResource[] | undefined): number | undefined {
  const tunnel = held?.find((h) => h.kind === 'tunnel');
  return tunnel?.kind === 'tunnel' && tunnel.socksPort > 0 ? tunnel.socksPort : undefined;
}
