/**
 * `glidein logs <workflowId> [--glidein|--tunnel|--container] [--follow] [--bytes <n>]`: a log on the site, read by
 * the worker (ReadGlideinLog), redacted there; with --follow, what is added, until the glidein ends.
 */
import type { LogChunk } from '../../common/operator-requests';
import { glideinStatus, runTool, type Context } from '../context';
import type { InputOf } from '../parse';

export async function logs({ workflowId: id, which, follow, bytes }: InputOf<'logs'>, ctx: Context): Promise<void> {
  const { io, globals } = ctx;
  const client = await ctx.client();
  const status = await glideinStatus(client, id);
  // The glidein id and its site only: the worker finds its node and job on the site, and checks the claim.
  const request = { site: status.site, glideinId: status.glideinId, which };
  let chunk = await runTool<LogChunk>(ctx, 'ReadGlideinLog', `logs-${status.glideinId}`, {
    ...request,
    tail: true,
    maxBytes: bytes,
  });
  const emit = (c: LogChunk) => {
    if (globals.json) io.out(JSON.stringify(c));
    else if (c.text) io.out(c.text.replace(/\n$/, ''));
  };
  if (!chunk.path && !globals.json) io.err(`no ${which} log of ${id} on the site (yet, or any more)`);
  emit(chunk);
  if (!follow) return;
  const handle = client.workflow.getHandle(id);
  for (;;) {
    await new Promise((r) => setTimeout(r, 3_000));
    const running = (await handle.describe()).status.name === 'RUNNING';
    const next = await runTool<LogChunk>(ctx, 'ReadGlideinLog', `logs-${status.glideinId}`, {
      ...request,
      offset: chunk.size < (chunk.offset ?? 0) ? 0 : (chunk.end ?? chunk.size),
      maxBytes: 1024 * 1024,
    });
    if (next.text) emit(next);
    chunk = next.path ? next : chunk;
    if (!running) return;
  }
}
