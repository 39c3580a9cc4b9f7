/**
 * A fleet's Temporal Schedule: it starts GlideinFleet every `every` and skips while the fleet still runs (overlap
 * SKIP), so the schedule is the fleet's switch and its watchdog: paused, it pauses the fleet's starts; deleted,
 * it ends the fleet run (the glideins go on, each to its own end); if the fleet run ever ends, the next action
 * starts it again. Creating a schedule that exists updates it.
 */
import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { fleetRequestSchema, type FleetRequest } from './common/fleet-request';
import { isDuration, parseDuration } from './common/duration';
import { formatIssues } from './common/validation';
import { drainAllSignal } from './workflows/fleet-messages';
import { GlideinFleet } from './common/search-attributes';

export interface FleetScheduleOptions {
  scheduleId: string;
  request: Omit<FleetRequest, 'scheduleId'>;
  taskQueue: string;
  /** How often the schedule looks whether its fleet runs: a duration such as "1m". */
  every: string;
  note?: string;
}

/** The fleet request a schedule starts with: validated here, so a bad schedule is refused before it exists. */
function fleetArgs(options: FleetScheduleOptions): FleetRequest {
  const parsed = fleetRequestSchema.safeParse({ ...options.request, scheduleId: options.scheduleId });
  if (!parsed.success) throw new Error(`the fleet schedule's request is invalid:\n${formatIssues(parsed.error)}`);
  return parsed.data;
}

/** How often the schedule acts, in ms; throws a message naming `every` on anything but a duration of 1s or more. */
export function everyMs(every: string): number {
  if (!isDuration(every) || parseDuration(every) < 1_000)
    throw new Error(`every: expected a duration of at least 1s such as "1m", got ${JSON.stringify(every)}`);
  return parseDuration(every);
}

/** Creates the schedule, or updates it when it exists; returns which. */
export async function upsertFleetSchedule(
  client: Client,
  options: FleetScheduleOptions,
): Promise<'created' | 'updated'> {
  const args = fleetArgs(options);
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'GlideinFleet',
    // Scheduled runs get this id with the scheduled time appended.
    workflowId: `fleet-${args.fleet ?? args.site}`,
    taskQueue: options.taskQueue,
    args: [args],
    // Visible from the start: a second run of the same fleet finds the first and yields to it.
    typedSearchAttributes: [{ key: GlideinFleet, value: args.fleet ?? args.site }],
    staticSummary: `GlideinFleet ${args.fleet ?? args.site}: ${args.count} glideins at ${args.site}`,
  };
  const handle = client.schedule.getHandle(options.scheduleId);
  try {
    await handle.update((previous) => ({
      ...previous,
      spec: { intervals: [{ every: everyMs(options.every) }] },
      action,
      policies: { ...previous.policies, overlap: ScheduleOverlapPolicy.SKIP },
      state: { ...previous.state, note: options.note ?? previous.state.note },
    }));
    return 'updated';
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
  }
  await client.schedule.create({
    scheduleId: options.scheduleId,
    spec: { intervals: [{ every: everyMs(options.every) }] },
    action,
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1m' },
    state: { note: options.note ?? `GlideinFleet for site ${args.site}` },
  });
  // The first run now rather than at the first interval, under the same SKIP as every other action (a trigger
  // in the create request would start one beside the interval's).
  await handle.trigger(ScheduleOverlapPolicy.SKIP);
  return 'created';
}

/**
 * Drains a whole site's fleet: the schedule is paused first (no new fleet run, no new starts), then every glidein
 * drains.
 */
export async function drainFleetSchedule(client: Client, scheduleId: string): Promise<string[]> {
  const handle = client.schedule.getHandle(scheduleId);
  await handle.pause('drain-all: every glidein of this fleet is being drained');
  const described = await handle.describe();
  const drained: string[] = [];
  for (const run of described.info.runningActions) {
    await client.workflow.getHandle(run.workflow.workflowId).signal(drainAllSignal);
    drained.push(run.workflow.workflowId);
  }
  return drained;
}
