/** Plain-text views for the terminal: a status, a table. Every value shown is one line, safe for a terminal. */
import type { GlideinStatus } from '../workflows/messages';
import { oneLine } from './terminal';

export function renderTable(unsafeRows: Array<Record<string, string>>): string {
  const rows = unsafeRows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, oneLine(v ?? '')])));
  const columns = Object.keys(rows[0] ?? {});
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => r[c] ?? '')))].join(
    '\n',
  );
}

const seconds = (ms: number | undefined) => (ms === undefined ? '' : `${(ms / 1000).toFixed(1)}s`);

export function renderStatus(workflowId: string, status: GlideinStatus): string {
  const lines = [
    // The lines above the table: each one line, whatever the status holds.
    ...headLines(workflowId, status).map(oneLine),
    '',
    renderTable(
      status.steps.map((s) => ({
        step: s.step,
        status: s.status,
        time: seconds(s.durationMs),
        detail: s.error ?? s.detail ?? '',
      })),
    ),
  ];
  return lines.join('\n');
}

function headLines(workflowId: string, status: GlideinStatus): string[] {
  return [
    `${workflowId}: ${status.phase} at ${status.site} (glidein ${status.glideinId})`,
    ...(status.allocation ? [`  node: ${status.allocation.node} (Slurm job ${status.allocation.jobId})`] : []),
    ...(status.registration
      ? [`  registered: ${status.registration.name} (${status.registration.state}/${status.registration.activity})`]
      : []),
    ...(status.claim
      ? [`  claim: ${status.claim.claimed ? 'running a job' : `idle since ${status.claim.idleSince}`}`]
      : []),
    ...(status.deadline ? [`  drains at: ${new Date(status.deadline).toISOString()}`] : []),
    ...(status.lastCheck ? [`  last check: ${JSON.stringify(status.lastCheck)}`] : []),
    ...(status.shutdown ? [`  shutdown requested: ${status.shutdown}`] : []),
    ...(status.endReason ? [`  ended: ${status.endReason}`] : []),
    `  holds on the site: ${status.held.map((h) => h.kind).join(', ') || 'nothing'}`,
  ];
}
