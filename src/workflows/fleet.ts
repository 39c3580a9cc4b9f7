/**
 * GlideinFleet: keeps a site's share of the pool filled. Each round it observes its slots (the LaunchGlidein
 * running under each deterministic id `glidein-<fleet>-<slot>`), asks the pure rules what to do
 * (fleet-rules.ts), starts what is missing as children it abandons (they outlive the fleet run, its
 * continue-as-new and its cancellation) and drains the surplus by signal. Its memory of starts, failures and
 * back-off is workflow state, carried by continue-as-new: a worker crash or a server restart loses none of it.
 *
 * It usually runs from a Temporal Schedule (overlap SKIP): while the fleet runs, the schedule's later actions
 * are skipped; pausing the schedule pauses starts (the fleet reads its schedule each round), deleting it ends
 * the fleet run and leaves the glideins running.
 */
import {
  ApplicationFailure,
  ChildWorkflowCancellationType,
  ParentClosePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { GlideinActivities } from '../activities';
import { FailureType } from '../common/failure-types';
import {
  fleetCarriedSchema,
  fleetCount,
  fleetRequestSchema,
  slotId,
  type FleetCarried,
  type FleetRequest,
} from '../common/fleet-request';
import { launchStartOptions } from './launch-options';
import { formatIssues, siteName } from '../common/validation';
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
import { LaunchGlidein } from './launch-glidein';
import { drainSignal, GlideinFleet as GlideinFleetAttribute, GlideinPhase, GlideinSite } from './messages';

export type GlideinFleetInput = FleetRequest & { carried?: FleetCarried };

export interface FleetResult {
  fleet: string;
  site: string;
  endReason: string;
  rounds: number;
}

const planning = proxyActivities<Pick<GlideinActivities, 'planFleet'>>({
  startToCloseTimeout: 30_000,
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 },
});
const watching = proxyActivities<Pick<GlideinActivities, 'observeFleet'>>({
  startToCloseTimeout: 120_000,
  // Observation only reads: retried for as long as the server or worker is away, never a reason to fail the fleet.
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '60s' },
});

export { slotId };

export async function GlideinFleet(input: GlideinFleetInput): Promise<FleetResult> {
  const info = workflowInfo();
  const accepted = acceptFleetInput(input, info);
  if ('refused' in accepted) {
    upsertSearchAttributes([
      { key: GlideinPhase, value: 'failed' },
      ...(accepted.site ? [{ key: GlideinSite, value: accepted.site }] : []),
    ]);
    throw ApplicationFailure.nonRetryable(accepted.refused, FailureType.InvalidRequest);
  }
  const { request, carried } = accepted;
  const fleet = request.fleet ?? request.site;

  let desired = carried?.desired ?? request.count;
  let paused = carried?.paused ?? false;
  let drainAll = carried?.drainAll ?? false;
  let memory: FleetMemory = carried?.memory ?? emptyMemory();
  let schedulePaused = false;
  /** The demand probe's last number: a round whose probe fails keeps it (a broken probe never drains the fleet). */
  let demand = carried?.demand;
  let demandError: string | undefined;
  let wake = false;
  let rounds = 0;
  // What the last round saw; a continued run reports its predecessor's until its own first round.
  let last: FleetStatus | undefined = carried?.seen?.status;
  let lastRoundAt = carried?.seen?.lastRoundAt;
  let slots: FleetView['slots'] = carried?.seen?.slots ?? [];
  let phase: FleetPhase = carried?.seen?.phase ?? 'planning';
  let phaseShown = false;
  let endReason: string | undefined;

  const view = (): FleetView => ({
    fleet,
    site: request.site,
    phase,
    paused,
    schedulePaused,
    drainAll,
    desired,
    target: last?.target ?? 0,
    running: last?.running ?? 0,
    starting: last?.starting ?? 0,
    draining: last?.draining ?? 0,
    failedInWindow: last?.failedInWindow ?? memory.failures.length,
    demand: last?.demand,
    held: last?.held,
    backoff: last?.backoff,
    slots,
    rounds,
    lastRoundAt,
    endReason,
    demandError,
  });
  const setPhase = (next: FleetPhase) => {
    if (next === phase && phaseShown) return;
    phase = next;
    phaseShown = true;
    upsertSearchAttributes([
      { key: GlideinPhase, value: next },
      { key: GlideinSite, value: request.site },
      { key: GlideinFleetAttribute, value: fleet },
    ]);
  };

  setHandler(fleetStatusQuery, view);
  setHandler(
    setCountUpdate,
    (count: number) => {
      desired = count;
      wake = true;
      log.info('fleet count changed', { fleet, desired });
      return view();
    },
    {
      // The request's own bound (fleetCount), which `glidein fleet count` checks before it writes anything.
      validator: (count: number) => {
        const checked = fleetCount.safeParse(count);
        if (!checked.success)
          throw new Error(`count: ${checked.error.issues[0].message}, got ${JSON.stringify(count)}`);
      },
    },
  );
  setHandler(drainAllSignal, () => {
    drainAll = true;
    wake = true;
  });
  setHandler(pauseSignal, () => {
    paused = true;
    wake = true;
  });
  setHandler(resumeSignal, () => {
    paused = false;
    wake = true;
  });

  setPhase(phase);
  const plan: FleetPlan = await planning.planFleet(request.site);

  for (; ; rounds++) {
    if (rounds > 0 && (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= plan.historyEvents)) {
      await condition(allHandlersFinished);
      return continueAsNew<typeof GlideinFleet>({
        ...request,
        carried: {
          workflowId: info.workflowId,
          desired,
          paused,
          drainAll,
          memory,
          demand,
          seen: last && { status: last, slots, phase, lastRoundAt },
        },
      });
    }
    const observed = await watching.observeFleet({
      fleet,
      site: request.site,
      slots: slotsToObserve(plan, memory),
      uncounted: Object.entries(memory.slots)
        .filter(([, s]) => s.runId && !s.counted)
        .map(([slot, s]) => ({ slot: Number(slot), runId: s.runId! })),
      // A run whose end the fleet counted is over: its slot is free unless listed running again.
      known: Object.entries(memory.slots)
        .filter(([, s]) => s.runId && !s.counted)
        .map(([slot]) => Number(slot)),
      scheduleId: request.scheduleId,
    });
    if (observed.yieldTo) {
      endReason = `fleet ${fleet} is already run by ${observed.yieldTo}; this run leaves it that`;
      break;
    }
    if (observed.scheduleGone) {
      endReason = `schedule ${request.scheduleId} was deleted; the fleet's glideins go on running`;
      break;
    }
    schedulePaused = observed.schedulePaused;
    if (observed.demand !== undefined) demand = observed.demand;
    demandError = observed.demandError;
    const decision = decideFleet({
      now: Date.now(),
      desired,
      demand,
      startsPaused: paused || schedulePaused,
      drainAll,
      limits: plan.limits,
      slots: observed.slots,
      memory,
    });
    last = decision.status;
    memory = decision.memory;
    lastRoundAt = new Date().toISOString();
    slots = observed.slots
      .filter((s) => s.state !== 'free')
      .map((s) => ({
        slot: s.slot,
        id: slotId(fleet, s.slot),
        state: s.state,
        runId: 'runId' in s ? s.runId : undefined,
        ...('busy' in s && s.busy !== undefined ? { busy: s.busy } : {}),
      }));

    await Promise.all([
      ...decision.start.map((slot) => startSlot(slot)),
      ...decision.drain.map((slot) => drainSlot(slot)),
    ]);
    setPhase(phaseOf(decision));
    if (drainAll && decision.status.running + decision.status.starting === 0 && decision.status.draining === 0) {
      endReason = 'drained';
      break;
    }
    wake = false;
    await condition(() => wake, plan.reconcileEveryMs);
  }
  setPhase('done');
  return { fleet, site: request.site, endReason: endReason ?? 'done', rounds };

  async function startSlot(slot: number): Promise<void> {
    const workflowId = slotId(fleet, slot);
    const launch = { site: request.site, ...(request.lifetime ? { lifetime: request.lifetime } : {}) };
    try {
      const child = await startChild(LaunchGlidein, {
        workflowId,
        args: [launch],
        // Its summary and details in the Web UI name the fleet and the slot (user metadata: replay ignores it).
        ...launchStartOptions(launch, { fleet, slot }),
        // The glidein outlives this run: its continue-as-new, its end and its cancellation alike.
        parentClosePolicy: ParentClosePolicy.ABANDON,
        cancellationType: ChildWorkflowCancellationType.ABANDON,
        typedSearchAttributes: [{ key: GlideinFleetAttribute, value: fleet }],
      });
      noteStarted(memory, slot, child.firstExecutionRunId);
      log.info('glidein started', { fleet, workflowId });
    } catch (err) {
      // Already running under its id: that is this slot's glidein, never a second one; the next round sees it.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }

  async function drainSlot(slot: number): Promise<void> {
    const workflowId = slotId(fleet, slot);
    try {
      await getExternalWorkflowHandle(workflowId).signal(drainSignal);
      log.info('glidein drained', { fleet, workflowId });
    } catch (err) {
      // It ended meanwhile: nothing to drain.
      log.info('glidein to drain had already ended', { fleet, workflowId, error: String(err) });
    }
  }

  function phaseOf(d: FleetDecision): FleetPhase {
    if (drainAll) return 'draining';
    if (memory.backoff) return 'backing-off';
    if (paused || schedulePaused) return 'paused';
    return d.status.running >= d.status.target ? 'steady' : 'filling';
  }
}

/** The slots to look at: the fleet's share, and every slot it remembers (a draining one may lie beyond it). */
function slotsToObserve(plan: FleetPlan, memory: FleetMemory): number[] {
  const slots = new Set<number>();
  for (let slot = 1; slot <= plan.limits.maxGlideins; slot++) slots.add(slot);
  for (const key of Object.keys(memory.slots)) slots.add(Number(key));
  return [...slots].sort((a, b) => a - b);
}

type Accepted = { request: FleetRequest; carried?: FleetCarried } | { refused: string; site?: string };

/** The whole input, validated before anything runs; a carried state only in a run continued from this workflow. */
function acceptFleetInput(input: unknown, info: ReturnType<typeof workflowInfo>): Accepted {
  const raw = (input !== null && typeof input === 'object' && !Array.isArray(input) ? input : {}) as Record<
    string,
    unknown
  >;
  const site = siteName.safeParse(raw.site).success ? (raw.site as string) : undefined;
  const refuse = (why: string): Accepted => ({ refused: `GlideinFleet input is invalid:\n${why}`, site });
  const { carried: rawCarried, ...rest } = raw;
  const continued = info.continuedFromExecutionRunId !== undefined;
  const parsed = fleetRequestSchema.safeParse(continued ? rest : raw);
  if (!parsed.success) return refuse(formatIssues(parsed.error));
  if (!continued || rawCarried === undefined) return { request: parsed.data };
  const carried = fleetCarriedSchema.safeParse(rawCarried);
  if (!carried.success) return refuse(formatIssues(carried.error).replace(/^/gm, 'carried.'));
  if (carried.data.workflowId !== info.workflowId) return refuse('carried.workflowId: carried by another workflow');
  return { request: parsed.data, carried: carried.data };
}
