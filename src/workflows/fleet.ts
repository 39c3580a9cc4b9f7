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
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { GlideinActivities } from '../activities';
import { FailureType } from '../common/failure-types';
import {
  fleetCarriedSchema,
  fleetRequestSchema,
  slotId,
  type FleetCarried,
  type FleetRequest,
} from '../common/fleet-request';
import { launchStartOptions } from './launch-options';
import { formatIssues, siteName } from '../common/validation';
import type { FleetPlan } from '../site/plan';
import { Fleet } from './fleet-state';
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

/**
 * This function only wires the parts together, as LaunchGlidein does: the input is accepted or refused, a Fleet
 * (./fleet-state.ts) answers the messages and decides each round, and this observes and acts on its decisions.
 */
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

  const fleet = new Fleet(request, carried);
  fleet.setHandlers();
  fleet.setPhase(fleet.phase);
  const plan: FleetPlan = await planning.planFleet(request.site);

  for (; ; fleet.rounds++) {
    if (fleet.shouldContinueAsNew(plan)) {
      await condition(allHandlersFinished);
      return continueAsNew<typeof GlideinFleet>({ ...request, carried: fleet.carry(info.workflowId) });
    }
    const observed = await watching.observeFleet(fleet.observation(plan));
    const decision = fleet.decide(plan, observed);
    if (!decision) break;
    await Promise.all([
      ...decision.start.map((slot) => startSlot(fleet, slot)),
      ...decision.drain.map((slot) => drainSlot(fleet, slot)),
    ]);
    fleet.setPhase(fleet.phaseAfter(decision));
    if (fleet.drainedAll(decision)) {
      fleet.endReason = 'drained';
      break;
    }
    await fleet.nextRound(plan.reconcileEveryMs);
  }
  fleet.setPhase('done');
  return { fleet: fleet.name, site: request.site, endReason: fleet.endReason ?? 'done', rounds: fleet.rounds };
}

/** Starts a LaunchGlidein in `slot`, a child the fleet abandons: it outlives this run. */
async function startSlot(fleet: Fleet, slot: number): Promise<void> {
  const { request } = fleet;
  const workflowId = slotId(fleet.name, slot);
  const launch = { site: request.site, ...(request.lifetime ? { lifetime: request.lifetime } : {}) };
  try {
    const child = await startChild(LaunchGlidein, {
      workflowId,
      args: [launch],
      // Its summary and details in the Web UI name the fleet and the slot (user metadata: replay ignores it).
      ...launchStartOptions(launch, { fleet: fleet.name, slot }),
      // The glidein outlives this run: its continue-as-new, its end and its cancellation alike.
      parentClosePolicy: ParentClosePolicy.ABANDON,
      cancellationType: ChildWorkflowCancellationType.ABANDON,
      typedSearchAttributes: [{ key: GlideinFleetAttribute, value: fleet.name }],
    });
    fleet.noteStarted(slot, child.firstExecutionRunId);
    log.info('glidein started', { fleet: fleet.name, workflowId });
  } catch (err) {
    // Already running under its id: that is this slot's glidein, never a second one; the next round sees it.
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
}

/** Asks the glidein in `slot` to drain (it finishes its jobs within its drain grace, then tears down). */
async function drainSlot(fleet: Fleet, slot: number): Promise<void> {
  const workflowId = slotId(fleet.name, slot);
  try {
    await getExternalWorkflowHandle(workflowId).signal(drainSignal);
    log.info('glidein drained', { fleet: fleet.name, workflowId });
  } catch (err) {
    // It ended meanwhile: nothing to drain.
    log.info('glidein to drain had already ended', { fleet: fleet.name, workflowId, error: String(err) });
  }
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
