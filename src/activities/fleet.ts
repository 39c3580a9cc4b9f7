/**
 * What a GlideinFleet learns from Temporal itself: its site's limits (the profile, loaded here in the worker), and
 * each slot's LaunchGlidein as the server describes it (strongly consistent, unlike a visibility list), with the
 * state of the schedule that runs the fleet. Read-only: starting and draining are the workflow's own commands.
 */
import { WorkflowFailedError, ScheduleNotFoundError, type Client } from '@temporalio/client';
import { ApplicationFailure, WorkflowNotFoundError } from '@temporalio/common';
import { FailureType, PermanentFault } from '../common/failure-types';
import { z } from 'zod';
import { claimSchema } from '../common/carried-state';
import { fleetName, fleetRequestSchema, slotId } from '../common/fleet-request';
import { GlideinPhase } from '../common/search-attributes';
import { formatIssues, siteName } from '../common/validation';
import { redact } from '../common/redact';
import { fleetPlanFor, type FleetPlan } from '../site/plan';
import type { SlotObservation } from '../common/fleet-request';
import type { ActivityDeps } from './deps';
import { asStep } from './to-failure';
import { adaptersFor } from '../site/adapters';
import { activityInfo, cancellationSignal, heartbeat } from './kit';

const slotNumber = z.number().int().min(1).max(99_999);
const observationRequestSchema = z.strictObject({
  fleet: fleetName,
  site: siteName,
  slots: z.array(slotNumber).max(20_000),
  /** Runs whose end the fleet has not counted yet: for those that closed, the observation says why they ended. */
  uncounted: z
    .array(
      z.strictObject({
        slot: slotNumber,
        runId: z
          .string()
          .max(100)
          .regex(/^[A-Za-z0-9-]+$/),
      }),
    )
    .max(20_000),
  /**
   * Slots where the fleet knows a run (it started one, or saw one): described one by one when the visibility list
   * does not show them running (they may have closed, or be too new to be listed). Absent in runs made before it
   * existed: every slot is described.
   */
  known: z.array(slotNumber).max(20_000).optional(),
  scheduleId: fleetRequestSchema.shape.scheduleId,
});

export type FleetObservationRequest = z.output<typeof observationRequestSchema>;

export interface FleetObservation {
  slots: SlotObservation[];
  schedulePaused: boolean;
  /** The fleet's schedule no longer exists: the fleet run ends (its glideins go on). */
  scheduleGone: boolean;
  /** Glideins the pool wants at this site, from the profile's demand probe (fleet.demand); absent without one. */
  demand?: number;
  /** Why the probe gave no number this round (the fleet keeps the last one it had). */
  demandError?: string;
  /** Another run of this fleet that runs longer than this one: this one yields (two would fight over the slots). */
  yieldTo?: string;
}

const STARTING = new Set(['planning', 'setup', 'registering']);

/** A running LaunchGlidein's phase (its GlideinPhase search attribute) as fleet capacity. */
export function slotStateOf(phase: string | undefined): 'starting' | 'running' | 'draining' {
  if (phase === undefined || STARTING.has(phase)) return 'starting';
  return phase === 'monitoring' ? 'running' : 'draining';
}

export function createFleetActivities(deps: ActivityDeps) {
  const client = (): Client => {
    if (!deps.temporal)
      throw new PermanentFault(
        'this worker was started without a Temporal client, so it cannot run GlideinFleet',
        FailureType.InvalidRequest,
      );
    return deps.temporal;
  };
  /** The profile's demand probe on the login node: a whole number on the first line of its output. */
  async function probeDemand(site: string): Promise<Pick<FleetObservation, 'demand' | 'demandError'>> {
    const profile = await deps.sites.get(site);
    const probe = profile.fleet.demand;
    if (!probe) return {};
    try {
      const login = deps.executorsFor
        ? deps.executorsFor(profile).login
        : adaptersFor(profile).nodeAccess.executors(deps.ssh).login;
      const result = await login.run(probe.command, { timeoutMs: 60_000, signal: cancellationSignal() });
      const first = result.stdout.split('\n')[0].trim();
      if (result.code === 0 && /^\d{1,6}$/.test(first)) return { demand: Number(first) };
      return {
        demandError:
          `fleet.demand ${probe.command[0]} exited with ${result.code} and printed ` +
          `${JSON.stringify(redact(first).slice(0, 80))}, not a whole number`,
      };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return { demandError: `fleet.demand ${probe.command[0]} failed: ${redact(message)}` };
    }
  }
  return {
    async planFleet(site: string): Promise<FleetPlan> {
      return asStep('planFleet', async () => fleetPlanFor(await deps.sites.get(site)));
    },

    async observeFleet(request: FleetObservationRequest): Promise<FleetObservation> {
      return asStep('observeFleet', async () => {
        // It names workflow ids and a visibility query: checked again here, as every activity checks its input.
        const checked = observationRequestSchema.safeParse(request);
        if (!checked.success)
          throw new PermanentFault(
            `observeFleet input is invalid:\n${formatIssues(checked.error)}`,
            FailureType.InvalidRequest,
          );
        const temporal = client();
        const uncounted = new Map(request.uncounted.map((u) => [u.slot, u.runId]));
        // One visibility list for the running ones; a describe (strongly consistent) only for slots the fleet knows
        // a run in that the list does not show running. A slot neither listed nor known is free: were its glidein too
        // new to be listed, a start there finds it already running, and counts it the next round.
        const listed = request.known ? await runningSlots(temporal, request.fleet) : undefined;
        const known = new Set([...(request.known ?? []), ...uncounted.keys()]);
        const slots = await Promise.all(
          request.slots.map(async (slot): Promise<SlotObservation> => {
            const workflowId = slotId(request.fleet, slot);
            if (listed) {
              const running = listed.get(slot);
              if (running && !uncounted.has(slot)) return running;
              if (!known.has(slot)) return { slot, state: 'free' };
            }
            let described;
            try {
              described = await temporal.workflow.getHandle(workflowId).describe();
            } catch (err) {
              if (err instanceof WorkflowNotFoundError) return { slot, state: 'free' };
              throw err;
            }
            const { runId } = described;
            if (described.status.name === 'RUNNING') {
              const phase = described.typedSearchAttributes.get(GlideinPhase);
              return {
                slot,
                state: slotStateOf(phase),
                runId,
                startedAt: described.startTime.getTime(),
                ...claimOf(described.memo),
              };
            }
            const closedAt = (described.closeTime ?? described.startTime).getTime();
            const outcome = described.status.name === 'COMPLETED' ? 'completed' : 'failed';
            const reason =
              outcome === 'failed' && uncounted.get(slot) === runId
                ? await whyItEnded(temporal, workflowId, runId, described.status.name)
                : undefined;
            return { slot, state: 'closed', runId, closedAt, outcome, reason };
          }),
        );
        heartbeat({ observed: slots.length });
        let schedulePaused = false;
        let scheduleGone = false;
        if (request.scheduleId) {
          try {
            schedulePaused = (await temporal.schedule.getHandle(request.scheduleId).describe()).state.paused;
          } catch (err) {
            if (!(err instanceof ScheduleNotFoundError)) throw err;
            scheduleGone = true;
          }
        }
        const demand = await probeDemand(request.site);
        const yieldTo = await olderRunOf(temporal, request.fleet);
        return { slots, schedulePaused, scheduleGone, ...demand, ...(yieldTo ? { yieldTo } : {}) };
      });
    },
  };
}

/**
 * Whether a glidein runs a job, from the `claim` its LaunchGlidein keeps in its memo (read back from the server:
 * checked, and ignored when it is not what LaunchGlidein writes).
 */
export function claimOf(memo: Record<string, unknown> | undefined): { busy?: boolean; idleSinceMs?: number } {
  const claim = claimSchema.safeParse(memo?.claim);
  if (!claim.success) return {};
  const idleSinceMs = claim.data.idleSince ? Date.parse(claim.data.idleSince) : undefined;
  return { busy: claim.data.claimed, ...(idleSinceMs !== undefined && !claim.data.claimed ? { idleSinceMs } : {}) };
}

/** The fleet's running LaunchGlideins as the visibility store lists them, by slot. */
async function runningSlots(client: Client, fleet: string): Promise<Map<number, SlotObservation>> {
  const bySlot = new Map<number, SlotObservation>();
  const prefix = slotId(fleet, 0).slice(0, -1);
  const query = `WorkflowType = 'LaunchGlidein' AND GlideinFleet = '${fleet}' AND ExecutionStatus = 'Running'`;
  for await (const run of client.workflow.list({ query })) {
    const slot = Number(run.workflowId.slice(prefix.length));
    if (!run.workflowId.startsWith(prefix) || !Number.isInteger(slot) || slotId(fleet, slot) !== run.workflowId)
      continue;
    bySlot.set(slot, {
      slot,
      state: slotStateOf(run.typedSearchAttributes.get(GlideinPhase)),
      runId: run.runId,
      startedAt: run.startTime.getTime(),
      ...claimOf(run.memo),
    });
  }
  return bySlot;
}

/**
 * The run of this fleet that started first, when it is not this one. Every run of a fleet carries its GlideinFleet
 * attribute from its start (the schedule's action) or its first task; all of them order the same way, so exactly
 * one keeps the fleet.
 */
async function olderRunOf(client: Client, fleet: string): Promise<string | undefined> {
  const self = activityInfo().workflowExecution?.workflowId;
  const runs: Array<{ id: string; start: number }> = [];
  const query = `WorkflowType = 'GlideinFleet' AND GlideinFleet = '${fleet}' AND ExecutionStatus = 'Running'`;
  for await (const run of client.workflow.list({ query })) {
    runs.push({ id: run.workflowId, start: run.startTime.getTime() });
    if (runs.length >= 20) break;
  }
  runs.sort((a, b) => a.start - b.start || a.id.localeCompare(b.id));
  const first = runs[0]?.id;
  return first && first !== self && runs.some((r) => r.id === self) ? first : undefined;
}

/** The failure type and message of a closed run, shortened and redacted: it goes into the fleet's status. */
async function whyItEnded(client: Client, workflowId: string, runId: string, status: string): Promise<string> {
  try {
    await client.workflow.getHandle(workflowId, runId, { followRuns: false }).result();
    return status.toLowerCase();
  } catch (err) {
    const cause = err instanceof WorkflowFailedError ? err.cause : err;
    const type = cause instanceof ApplicationFailure && cause.type ? `${cause.type}: ` : '';
    const message = cause instanceof Error ? cause.message : String(cause);
    return redact(`${type}${message}`).slice(0, 300) || status.toLowerCase();
  }
}
