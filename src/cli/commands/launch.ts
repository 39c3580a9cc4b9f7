/**
 * `glidein launch <site> [--lifetime <d>] [--id <workflowId>] [--follow]`: starts one LaunchGlidein; with --follow,
 * shows its setup live (../follow.ts) and ends with its registration, or with why it failed and what its teardown
 * gave back.
 */
import { userInfo } from 'node:os';
import { launchStartOptions } from '../../workflows/launch-options';
import { statusQuery } from '../../workflows/messages';
import { TEARDOWN_STEP_NAMES } from '../../workflows/steps';
import type { Context } from '../context';
import { CliError, EXIT } from '../errors';
import { followLaunch } from '../follow';
import type { InputOf } from '../parse';
import { oneLine } from '../terminal';
import { closedOutcome } from '../workflow-outcome';

export async function launch({ site, request, workflowId, follow }: InputOf<'launch'>, ctx: Context): Promise<void> {
  const { io, globals } = ctx;
  const client = await ctx.client();
  const handle = await client.workflow.start('LaunchGlidein', {
    taskQueue: globals.taskQueue,
    workflowId,
    args: [request],
    // Found in the Web UI by this line; the details say who asked and what the lifecycle will do.
    ...launchStartOptions(request, { requestedBy: `${userInfo().username} via glidein launch` }),
  });
  if (!follow) {
    ctx.print({ workflowId, runId: handle.firstExecutionRunId, site }, () =>
      [`started ${workflowId} at ${site}`, `follow it:  glidein status ${workflowId}   (or the Web UI)`].join('\n'),
    );
    return;
  }
  if (!globals.json) io.out(`launching ${workflowId} at ${site}`);
  // With --json, stdout carries only the final JSON: the view is silent.
  const end = await followLaunch(handle, { tty: io.tty, silent: globals.json });
  const registration = end.status?.registration;
  if (end.registered && registration) {
    ctx.print({ workflowId, site, registered: true, registration, node: end.status?.allocation?.node }, () =>
      [
        `registered: ${oneLine(`${registration.name} (${registration.state}/${registration.activity})`)} ` +
          `with the collector`,
        `  status: glidein status ${workflowId}    log: glidein logs ${workflowId} --glidein --follow`,
        `  end it: glidein drain ${workflowId}`,
      ].join('\n'),
    );
    return;
  }
  // The lifecycle gives back what it took before it ends: wait for that, and show it.
  const closed = end.closed ?? (await closedOutcome(handle));
  const final = await handle.query(statusQuery).catch(() => end.status);
  const teardown = (final?.steps ?? []).filter((st) => (TEARDOWN_STEP_NAMES as readonly string[]).includes(st.step));
  const reason = closed.message ?? final?.endReason ?? `the launch ended ${closed.status} without registering`;
  if (globals.json)
    io.out(JSON.stringify({ workflowId, site, registered: false, error: reason, status: final }, null, 2));
  else
    io.err(
      [
        `launch failed: ${reason}`,
        ...teardown.map((st) => `  teardown ${st.step}: ${st.status}${st.detail ? ` (${oneLine(st.detail)})` : ''}`),
      ].join('\n'),
    );
  throw new CliError('', EXIT.failed);
}
