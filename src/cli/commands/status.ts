/** `glidein status <workflowId>`: a glidein's status query, as a view or as JSON. */
import { glideinStatus, type Context } from '../context';
import type { InputOf } from '../parse';
import { renderStatus } from '../render';

export async function status({ workflowId }: InputOf<'status'>, ctx: Context): Promise<void> {
  const found = await glideinStatus(await ctx.client(), workflowId);
  ctx.print(found, () => renderStatus(workflowId, found));
}
