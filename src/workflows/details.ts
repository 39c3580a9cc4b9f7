/**
 * How a running LaunchGlidein reads in the Web UI: its current details (markdown, shown beside the static ones)
 * and the identity its memo carries. Pure functions of the status: the state object (./state.ts) shows them as the
 * phase, the steps and the monitor's checks change.
 */
import type { HeldResource } from '../common/types';
import type { GlideinStatus } from './messages';

const held = (h: HeldResource): string => {
  switch (h.kind) {
    case 'allocation':
      return `Slurm job ${h.jobId ?? `${h.jobName} (submitting)`}`;
    case 'tunnel':
      return h.socksPort ? `tunnel :${h.socksPort}` : 'tunnel (opening)';
    case 'cvmfs':
      return `CVMFS ${h.repositories.join(', ')}`;
    case 'container':
      return `container ${h.instance}`;
    default:
      return h.kind;
  }
};

const yes = (ok: boolean | undefined) => (ok ? 'up' : 'DOWN');

/** The current details: phase, where it runs, its registration, what it holds, its deadline and last check. */
export function currentDetails(status: GlideinStatus): string {
  const { allocation, registration, lastCheck: check, claim } = status;
  const step = status.steps.at(-1);
  const lines = [
    `**Phase:** ${status.phase}${status.shutdown ? ` (${status.shutdown} requested)` : ''}`,
    `**Node:** ${allocation ? `${allocation.node} (Slurm job ${allocation.jobId})` : "the profile's worker node"}`,
    `**Registration:** ` +
      `${registration ? `${registration.name} (${registration.state}/${registration.activity})` : 'not yet'}`,
    `**Holds:** ${status.held.map(held).join(', ') || 'nothing'}`,
  ];
  if (status.deadline) lines.push(`**Deadline:** ${new Date(status.deadline).toISOString()} (drained then)`);
  if (check) {
    const job = claim ? (claim.claimed ? ', running a job' : `, idle since ${claim.idleSince ?? '?'}`) : '';
    lines.push(
      `**Last check:** ${check.at}: tunnel ${yes(check.tunnel)}, glidein ${yes(check.glidein)}, ` +
        `${check.registered ? 'registered' : 'NOT registered'}${job}${check.detail ? ` (${check.detail})` : ''}`,
    );
  }
  if (step) {
    const outcome = step.status === 'failed' ? `failed: ${(step.error ?? '').slice(0, 300)}` : step.status;
    lines.push(`**Last step:** ${step.step} ${outcome}${step.detail ? ` — ${step.detail}` : ''}`);
  }
  if (status.endReason) lines.push(`**End:** ${status.endReason}`);
  // A list: markdown joins plain lines into one paragraph.
  return lines.map((l) => `- ${l}`).join('\n');
}

/** What the memo names once known: the glidein, its site, its node and its registration. */
export function memoIdentity(status: GlideinStatus): Record<string, string> {
  return {
    site: status.site,
    glideinId: status.glideinId,
    ...(status.allocation ? { node: status.allocation.node, jobId: status.allocation.jobId } : {}),
    ...(status.registration ? { registration: status.registration.name } : {}),
  };
}
