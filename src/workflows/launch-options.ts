/**
 * How a LaunchGlidein reads in the Temporal Web UI and `temporal workflow describe` before it has done anything:
 * its static summary (one line) and static details (markdown), given wherever it is started — by a client, the
 * operator's command, or a GlideinFleet starting a slot. Pure and workflow-free: the workflow sandbox runs it too.
 */
import { SETUP_STEP_NAMES, STEPS, TEARDOWN_STEP_NAMES } from './steps';
import type { GlideinRequest } from '../common/request';

/** Who asked for the glidein: a fleet's slot, or a person or tool (e.g. "alice via glidein launch"). */
export interface LaunchOrigin {
  fleet?: string;
  slot?: number;
  requestedBy?: string;
}

/** The start options that name a glidein in the UI: pass them to `client.workflow.start` or `startChild`. */
export interface LaunchStartOptions {
  staticSummary: string;
  staticDetails: string;
}

/** One line, short, no markdown of its own: free text from a caller never breaks the layout. */
const plain = (text: string, max = 120) =>
  text
    .replace(/[`*_[\]<>|#]/g, '')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, max);

export function launchStartOptions(request: GlideinRequest, origin: LaunchOrigin = {}): LaunchStartOptions {
  const lifetime = request.lifetime ?? "the profile's lifetime";
  const { fleet, slot } = origin;
  const requestedBy = origin.requestedBy ? plain(origin.requestedBy) : undefined;
  const inFleet = fleet !== undefined ? ` · fleet ${fleet}${slot !== undefined ? ` slot ${slot}` : ''}` : '';
  const staticSummary = `Glidein at ${request.site} for ${lifetime}${inFleet}`;

  const setup = SETUP_STEP_NAMES.map((n) => {
    const requires = (STEPS[n] as { requires?: string }).requires;
    return requires ? `${n} (${requires === 'slurm' ? 'Slurm sites' : 'with pool credentials'})` : n;
  });
  const by =
    fleet !== undefined
      ? `GlideinFleet ` +
        `\`${fleet}\`${slot !== undefined ? `, slot ${slot}` : ''}${requestedBy ? ` (${requestedBy})` : ''}`
      : (requestedBy ?? 'a client');
  const staticDetails = [
    `- **Site:** \`${request.site}\` (sites/${request.site}.yaml)`,
    `- **Lifetime:** ` +
      `${request.lifetime ? `\`${request.lifetime}\`` : "the site profile's `glidein.lifetime`"}, then drained`,
    `- **Requested by:** ${by}`,
    '',
    '**What it will do:**',
    `1. plan from the site profile, then set up (steps that do not need each other side by side): ${setup.join(' → ')}`,
    '2. monitor the glidein and its registration in the collector until the lifetime ends ' +
      '(continuing-as-new as history grows)',
    `3. on a drain, stop, cancellation, failure or the end of its lifetime, give back what it holds in ` +
      `reverse (what nothing else uses side by side): ${TEARDOWN_STEP_NAMES.join(' → ')}`,
    '',
    "Current state: the workflow's current details and its memo; step by step: the status query (`status`).",
  ].join('\n');
  return { staticSummary, staticDetails };
}
