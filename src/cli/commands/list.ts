/** `glidein list [--site <s>] [--phase <p>] [--limit <n>]`: LaunchGlideins from visibility, newest first. */
import type { Context } from '../context';
import type { InputOf } from '../parse';
import { renderTable } from '../render';

export async function list({ site, phase, limit }: InputOf<'list'>, ctx: Context): Promise<void> {
  // Both values are checked by the parser (a site profile name, one of the phases): safe inside the quotes.
  const clauses = [`WorkflowType = 'LaunchGlidein'`];
  if (site) clauses.push(`GlideinSite = '${site}'`);
  if (phase) clauses.push(`GlideinPhase = '${phase}'`);
  const rows: Array<Record<string, string>> = [];
  for await (const wf of (await ctx.client()).workflow.list({ query: clauses.join(' AND ') })) {
    const attr = (name: string) => String((wf.searchAttributes?.[name] as unknown[] | undefined)?.[0] ?? '');
    rows.push({
      workflowId: wf.workflowId,
      site: attr('GlideinSite'),
      phase: attr('GlideinPhase'),
      status: wf.status.name,
      started: wf.startTime.toISOString(),
    });
    if (rows.length >= limit) break;
  }
  ctx.print(rows, () => (rows.length ? renderTable(rows) : 'no glideins'));
}
