/**
 * `glidein fleet …`: a site's GlideinFleet on a Temporal Schedule. Each verb prints its result as JSON, with or
 * without --json.
 *   glidein fleet create|update <schedule> --site <site> --count <n> [--fleet <name>] [--lifetime 24h]
 *                               [--every 1m] [--note …]
 *   glidein fleet pause|resume <schedule> [--note …]
 *   glidein fleet count <schedule> <n>      the running fleet's count now, and the schedule's for later runs
 *   glidein fleet drain <schedule>          drain the whole site: pause the schedule, drain every glidein
 *   glidein fleet status <schedule>         the schedule and its running fleet's status
 *   glidein fleet delete <schedule>         the fleet run ends; its glideins go on to their own ends
 */
import { ScheduleNotFoundError, type Client } from '@temporalio/client';
import { fleetRequestSchema } from '../../common/fleet-request';
import { formatIssues } from '../../common/validation';
import { drainFleetSchedule, upsertFleetSchedule } from '../../fleet-schedule';
import { fleetStatusQuery, setCountUpdate } from '../../workflows/fleet-messages';
import type { Context } from '../context';
import { CliError, EXIT } from '../errors';
import { UsageError } from '../input';
import type { InputOf } from '../parse';

/** One verb: what it asks of Temporal, and the result it prints. */
function verb<I extends { scheduleId: string }>(
  run: (client: Client, input: I, taskQueue: string) => Promise<unknown>,
): (input: I, ctx: Context) => Promise<void> {
  return async (input, ctx) => {
    let result: unknown;
    try {
      result = await run(await ctx.client(), input, ctx.globals.taskQueue);
    } catch (err) {
      if (err instanceof UsageError) throw new CliError(err.message, EXIT.usage);
      if (err instanceof ScheduleNotFoundError)
        throw new CliError(`no fleet schedule ${JSON.stringify(input.scheduleId)}`, EXIT.notFound);
      throw err;
    }
    ctx.print(result, () => JSON.stringify(result, null, 2));
  };
}

/** `create` and `update` both write the schedule, creating it if need be. */
const upsert = verb(
  async (client, { scheduleId, request, every, note }: InputOf<'fleet create' | 'fleet update'>, taskQueue) => {
    const outcome = await upsertFleetSchedule(client, { scheduleId, taskQueue, every, note, request });
    return { schedule: scheduleId, [outcome]: true };
  },
);
export const fleetCreate: (input: InputOf<'fleet create'>, ctx: Context) => Promise<void> = upsert;
export const fleetUpdate: (input: InputOf<'fleet update'>, ctx: Context) => Promise<void> = upsert;

export const fleetPause = verb(async (client, { scheduleId, note }: InputOf<'fleet pause'>) => {
  await client.schedule.getHandle(scheduleId).pause(note ?? 'paused: no new glideins start; running ones go on');
  return { schedule: scheduleId, paused: true };
});

export const fleetResume = verb(async (client, { scheduleId, note }: InputOf<'fleet resume'>) => {
  await client.schedule.getHandle(scheduleId).unpause(note ?? 'resumed');
  return { schedule: scheduleId, paused: false };
});

/**
 * The count was checked against the fleet's own bound by the parser; here it is offered to the running fleet (whose
 * validator has the last word), and only then written into the schedule: a count refused anywhere is written nowhere.
 */
export const fleetCount = verb(async (client, { scheduleId, count }: InputOf<'fleet count'>) => {
  const handle = client.schedule.getHandle(scheduleId);
  const running = (await handle.describe()).info.runningActions;
  for (const run of running)
    await client.workflow.getHandle(run.workflow.workflowId).executeUpdate(setCountUpdate, { args: [count] });
  await handle.update((previous) => {
    const action = previous.action as { args?: Array<Record<string, unknown>> };
    const args = fleetRequestSchema.safeParse({ ...action.args?.[0], count });
    if (!args.success)
      throw new UsageError(`the schedule's fleet request would be invalid:\n${formatIssues(args.error)}`);
    return { ...previous, action: { ...previous.action, args: [args.data] } } as never;
  });
  return { schedule: scheduleId, count, fleetsUpdated: running.map((r) => r.workflow.workflowId) };
});

export const fleetDrain = verb(async (client, { scheduleId }: InputOf<'fleet drain'>) => ({
  schedule: scheduleId,
  paused: true,
  drainingFleets: await drainFleetSchedule(client, scheduleId),
}));

export const fleetStatus = verb(async (client, { scheduleId }: InputOf<'fleet status'>) => {
  const described = await client.schedule.getHandle(scheduleId).describe();
  const fleets = await Promise.all(
    described.info.runningActions.map((r) => client.workflow.getHandle(r.workflow.workflowId).query(fleetStatusQuery)),
  );
  return {
    schedule: scheduleId,
    paused: described.state.paused,
    note: described.state.note,
    skippedWhileRunning: described.info.numActionsSkippedOverlap,
    fleets,
  };
});

export const fleetDelete = verb(async (client, { scheduleId }: InputOf<'fleet delete'>) => {
  await client.schedule.getHandle(scheduleId).delete();
  return { schedule: scheduleId, deleted: true };
});
