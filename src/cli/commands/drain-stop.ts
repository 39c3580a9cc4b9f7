/**
 * `glidein drain <workflowId> [--wait]` and `glidein stop <workflowId> [--wait]`: the lifecycle's signal; with
 * --wait, until its teardown has given back everything on the site.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { drainSignal, statusQuery, stopSignal } from '../../workflows/messages';
import type { Context } from '../context';
import { CliError, EXIT } from '../errors';
import type { InputOf } from '../parse';
import { failureMessage } from '../workflow-outcome';

const SIGNALS = { drain: drainSignal, stop: stopSignal } as const;

async function signal(
  verb: keyof typeof SIGNALS,
  { workflowId: id, wait }: InputOf<'drain' | 'stop'>,
  ctx: Context,
): Promise<void> {
  const handle = (await ctx.client()).workflow.getHandle(id);
  try {
    await handle.signal(SIGNALS[verb]);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError)
      throw new CliError(`no running glidein workflow ${JSON.stringify(id)}`, EXIT.notFound);
    throw err;
  }
  if (!wait) {
    ctx.print({ workflowId: id, requested: verb }, () => `${verb} requested for ${id}; watch it: glidein status ${id}`);
    return;
  }
  let result: unknown;
  try {
    result = await handle.result();
  } catch (err) {
    throw new CliError(`${id} ended with an error: ${failureMessage(err)}`, EXIT.failed);
  }
  const status = await handle.query(statusQuery);
  ctx.print(
    { workflowId: id, result, held: status.held },
    () => `${id}: ${status.phase}; held on the site: ${status.held.map((h) => h.kind).join(', ') || 'nothing'}`,
  );
}

export const drain = (input: InputOf<'drain'>, ctx: Context) => signal('drain', input, ctx);
export const stop = (input: InputOf<'stop'>, ctx: Context) => signal('stop', input, ctx);
