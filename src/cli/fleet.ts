/**
 * `glidein fleet`: a site's GlideinFleet on a Temporal Schedule (src/cli/index.ts gives each verb its options and help).
 *   glidein fleet create|update <schedule> --site <site> --count <n> [--fleet <name>] [--lifetime 24h] [--every 1m] [--note …]
 *   glidein fleet pause|resume <schedule> [--note …]
 *   glidein fleet count <schedule> <n>      the running fleet's count now, and the schedule's for later runs
 *   glidein fleet drain <schedule>          drain the whole site: pause the schedule, drain every glidein
 *   glidein fleet status <schedule>         the schedule and its running fleet's status
 *   glidein fleet delete <schedule>         the fleet run ends; its glideins go on to their own ends
 */
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import { fleetRequestSchema } from '../common/fleet-request';
import { formatIssues } from '../common/validation';
import { drainFleetSchedule, everyMs, upsertFleetSchedule } from '../fleet-schedule';
import { fleetStatusQuery, setCountUpdate } from '../workflows/fleet-messages';
import { fleetCountInput, fleetRequestInput, UsageError } from './input';

export { UsageError };

const USAGE = `usage: fleet create|update <schedule> --site <site> --count <n> [--fleet <name>] [--lifetime <d>] [--every <d>] [--note <text>]
       fleet pause|resume <schedule> [--note <text>]
       fleet count <schedule> <n>
       fleet drain|status|delete <schedule>`;

export async function fleetCommand(argv: string[], client: Client, taskQueue: string): Promise<unknown> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      site: { type: 'string' },
      count: { type: 'string' },
      fleet: { type: 'string' },
      lifetime: { type: 'string' },
      every: { type: 'string', default: '1m' },
      note: { type: 'string' },
    },
  });
  const [verb, scheduleId, extra] = positionals;
  if (!verb || !scheduleId) throw new UsageError(USAGE);
  const handle = client.schedule.getHandle(scheduleId);
  switch (verb) {
    case 'create':
    case 'update': {
      const request = fleetRequestInput(scheduleId, values);
      try {
        everyMs(values.every!);
      } catch (err) {
        throw new UsageError(`--${(err as Error).message}`);
      }
      const outcome = await upsertFleetSchedule(client, {
        scheduleId,
        taskQueue,
        every: values.every!,
        note: values.note,
        request,
      });
      return { schedule: scheduleId, [outcome]: true };
    }
    case 'pause':
      await handle.pause(values.note ?? 'paused: no new glideins start; running ones go on');
      return { schedule: scheduleId, paused: true };
    case 'resume':
      await handle.unpause(values.note ?? 'resumed');
      return { schedule: scheduleId, paused: false };
    case 'count': {
      // Checked against the fleet's own bound first, then offered to the running fleet (whose validator has the last
      // word), and only then written into the schedule: a count refused anywhere is written nowhere.
      const count = fleetCountInput(extra);
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
    }
    case 'drain':
      return { schedule: scheduleId, paused: true, drainingFleets: await drainFleetSchedule(client, scheduleId) };
    case 'status': {
      const described = await handle.describe();
      const fleets = await Promise.all(
        described.info.runningActions.map((r) =>
          client.workflow.getHandle(r.workflow.workflowId).query(fleetStatusQuery),
        ),
      );
      return {
        schedule: scheduleId,
        paused: described.state.paused,
        note: described.state.note,
        skippedWhileRunning: described.info.numActionsSkippedOverlap,
        fleets,
      };
    }
    case 'delete':
      await handle.delete();
      return { schedule: scheduleId, deleted: true };
    default:
      throw new UsageError(`unknown command ${JSON.stringify(verb)}\n${USAGE}`);
  }
}
