/**
 * What one run of GlideinFleet knows, and how it answers messages: the count asked for, pause and drain-all, its
 * memory of starts and failures, what its last round saw, and its phase. Each round it takes in what was observed
 * and asks the pure rules (./fleet-rules.ts) what to do; the workflow function (./fleet.ts) observes and acts on the
 * site's glideins, this only records and decides, as ./state.ts does for LaunchGlidein.
 */
import { condition, log, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { FleetObservation, FleetObservationRequest } from '../activities/fleet';
import { fleetCount, slotId, type FleetCarried, type FleetRequest } from '../common/fleet-request';
import type { FleetPlan } from '../site/plan';
import {
  drainAllSignal,
  fleetStatusQuery,
  pauseSignal,
  resumeSignal,
  setCountUpdate,
  type FleetPhase,
  type FleetView,
} from './fleet-messages';
import {
  decideFleet,
  emptyMemory,
  noteStarted,
  type FleetDecision,
  type FleetMemory,
  type FleetStatus,
} from './fleet-rules';
import { GlideinFleet as GlideinFleetAttribute, GlideinPhase, GlideinSite } from './messages';

export class Fleet {
  readonly request: FleetRequest;
  /** Names its glideins (`glidein-<name>-<slot>`) and is their GlideinFleet search attribute. */
  readonly name: string;
  desired: number;
  /** Starts paused by the `pause` signal. */
  paused: boolean;
  drainAll: boolean;
  memory: FleetMemory;
  schedulePaused = false;
  /** The demand probe's last number: a round whose probe fails keeps it (a broken probe never drains the fleet). */
  demand?: number;
  demandError?: string;
  /** A message changed what the fleet should do: the wait between rounds ends at once. */
  wake = false;
  rounds = 0;
  // What the last round saw; a continued run reports its predecessor's until its own first round.
  last?: FleetStatus;
  lastRoundAt?: string;
  slots: FleetView['slots'];
  phase: FleetPhase;
  endReason?: string;
  /** The phase has been written to the search attributes by this run. */
  private phaseShown = false;

  constructor(request: FleetRequest, carried?: FleetCarried) {
    this.request = request;
    this.name = request.fleet ?? request.site;
    this.desired = carried?.desired ?? request.count;
    this.paused = carried?.paused ?? false;
    this.drainAll = carried?.drainAll ?? false;
    this.memory = carried?.memory ?? emptyMemory();
    this.demand = carried?.demand;
    this.last = carried?.seen?.status;
    this.lastRoundAt = carried?.seen?.lastRoundAt;
    this.slots = carried?.seen?.slots ?? [];
    this.phase = carried?.seen?.phase ?? 'planning';
  }

  setHandlers(): void {
    setHandler(fleetStatusQuery, () => this.view());
    // The request's own bound (fleetCount), which `glidein fleet count` checks before it writes anything.
    setHandler(setCountUpdate, (count: number) => this.setCount(count), { validator: checkCount });
    setHandler(drainAllSignal, () => this.requestDrainAll());
    setHandler(pauseSignal, () => this.pause());
    setHandler(resumeSignal, () => this.resume());
  }

  view(): FleetView {
    const { last } = this;
    return {
      fleet: this.name,
      site: this.request.site,
      phase: this.phase,
      paused: this.paused,
      schedulePaused: this.schedulePaused,
      drainAll: this.drainAll,
      desired: this.desired,
      target: last?.target ?? 0,
      running: last?.running ?? 0,
      starting: last?.starting ?? 0,
      draining: last?.draining ?? 0,
      failedInWindow: last?.failedInWindow ?? this.memory.failures.length,
      demand: last?.demand,
      held: last?.held,
      backoff: last?.backoff,
      slots: this.slots,
      rounds: this.rounds,
      lastRoundAt: this.lastRoundAt,
      endReason: this.endReason,
      demandError: this.demandError,
    };
  }

  /** The `setCount` update, once its validator has accepted `count`. */
  setCount(count: number): FleetView {
    this.desired = count;
    this.wake = true;
    log.info('fleet count changed', { fleet: this.name, desired: this.desired });
    return this.view();
  }

  requestDrainAll(): void {
    this.drainAll = true;
    this.wake = true;
  }

  pause(): void {
    this.paused = true;
    this.wake = true;
  }

  resume(): void {
    this.paused = false;
    this.wake = true;
  }

  /** Writes the phase to the search attributes when it changes, and the first time in each run. */
  setPhase(next: FleetPhase): void {
    if (next === this.phase && this.phaseShown) return;
    this.phase = next;
    this.phaseShown = true;
    upsertSearchAttributes([
      { key: GlideinPhase, value: next },
      { key: GlideinSite, value: this.request.site },
      { key: GlideinFleetAttribute, value: this.name },
    ]);
  }

  /** Time to continue-as-new, before this round: never before the run's first round, so no cap can make it loop. */
  shouldContinueAsNew(plan: FleetPlan): boolean {
    return (
      this.rounds > 0 && (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= plan.historyEvents)
    );
  }

  /** What the next run continues from (checked there by fleetCarriedSchema). */
  carry(workflowId: string): FleetCarried {
    const { last } = this;
    return {
      workflowId,
      desired: this.desired,
      paused: this.paused,
      drainAll: this.drainAll,
      memory: this.memory,
      demand: this.demand,
      seen: last && { status: last, slots: this.slots, phase: this.phase, lastRoundAt: this.lastRoundAt },
    };
  }

  /** What this round asks observeFleet. */
  observation(plan: FleetPlan): FleetObservationRequest {
    const { memory } = this;
    return {
      fleet: this.name,
      site: this.request.site,
      slots: slotsToObserve(plan, memory),
      uncounted: Object.entries(memory.slots)
        .filter(([, s]) => s.runId && !s.counted)
        .map(([slot, s]) => ({ slot: Number(slot), runId: s.runId! })),
      // A run whose end the fleet counted is over: its slot is free unless listed running again.
      known: Object.entries(memory.slots)
        .filter(([, s]) => s.runId && !s.counted)
        .map(([slot]) => Number(slot)),
      scheduleId: this.request.scheduleId,
    };
  }

  /**
   * Takes in what this round observed and decides what to start and drain; undefined when this run is to end instead
   * (another run holds the fleet, or its schedule is gone), `endReason` saying why.
   */
  decide(plan: FleetPlan, observed: FleetObservation): FleetDecision | undefined {
    if (observed.yieldTo) {
      this.endReason = `fleet ${this.name} is already run by ${observed.yieldTo}; this run leaves it that`;
      return undefined;
    }
    if (observed.scheduleGone) {
      this.endReason = `schedule ${this.request.scheduleId} was deleted; the fleet's glideins go on running`;
      return undefined;
    }
    this.schedulePaused = observed.schedulePaused;
    if (observed.demand !== undefined) this.demand = observed.demand;
    this.demandError = observed.demandError;
    const decision = decideFleet({
      now: Date.now(),
      desired: this.desired,
      demand: this.demand,
      startsPaused: this.paused || this.schedulePaused,
      drainAll: this.drainAll,
      limits: plan.limits,
      slots: observed.slots,
      memory: this.memory,
    });
    this.last = decision.status;
    this.memory = decision.memory;
    this.lastRoundAt = new Date().toISOString();
    this.slots = observed.slots
      .filter((s) => s.state !== 'free')
      .map((s) => ({
        slot: s.slot,
        id: slotId(this.name, s.slot),
        state: s.state,
        runId: 'runId' in s ? s.runId : undefined,
        ...('busy' in s && s.busy !== undefined ? { busy: s.busy } : {}),
      }));
    return decision;
  }

  /** Records the run a start made in `slot`, or found running under its id (fleet-rules.ts, noteStarted). */
  noteStarted(slot: number, runId: string): void {
    noteStarted(this.memory, slot, runId);
  }

  /** The phase once a round has acted on `decision`. */
  phaseAfter(decision: FleetDecision): FleetPhase {
    if (this.drainAll) return 'draining';
    if (this.memory.backoff) return 'backing-off';
    if (this.paused || this.schedulePaused) return 'paused';
    return decision.status.running >= decision.status.target ? 'steady' : 'filling';
  }

  /** Drain-all is done: the round saw nothing of the fleet running, starting or draining. */
  drainedAll(decision: FleetDecision): boolean {
    const { status } = decision;
    return this.drainAll && status.running + status.starting === 0 && status.draining === 0;
  }

  /** Waits for the next round: `ms`, or less if a message comes meanwhile. */
  async nextRound(ms: number): Promise<void> {
    this.wake = false;
    await condition(() => this.wake, ms);
  }
}

/** The update's validator: a count outside the request's bound is refused before the update is recorded. */
function checkCount(count: number): void {
  const checked = fleetCount.safeParse(count);
  if (!checked.success) throw new Error(`count: ${checked.error.issues[0].message}, got ${JSON.stringify(count)}`);
}

/** The slots to look at: the fleet's share, and every slot it remembers (a draining one may lie beyond it). */
function slotsToObserve(plan: FleetPlan, memory: FleetMemory): number[] {
  const slots = new Set<number>();
  for (let slot = 1; slot <= plan.limits.maxGlideins; slot++) slots.add(slot);
  for (const key of Object.keys(memory.slots)) slots.add(Number(key));
  return [...slots].sort((a, b) => a - b);
}
