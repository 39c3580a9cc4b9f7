/**
 * LaunchGlidein's input, accepted or refused before anything runs: the request, and in a run continued from another
 * one the state it carried.
 */
import { ApplicationFailure, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { resumeStateSchema } from '../common/carried-state';
import { FailureType } from '../common/failure-types';
import { instanceName } from '../common/naming';
import {
  glideinIdFor,
  InvalidRequestError,
  legacyGlideinIdFor,
  parseGlideinRequest,
  type GlideinRequest,
} from '../common/request';
import { formatIssues, siteName } from '../common/validation';
import type { LaunchPlan } from '../site/plan';
import { GlideinId, GlideinPhase, GlideinSite, type GlideinStatus } from './messages';

/** State carried into the next run by continue-as-new; validated by resumeStateSchema on the way in. */
export interface ResumeState {
  /** The workflow that carried it: a run accepts only its own. */
  workflowId?: string;
  plan: LaunchPlan;
  status: GlideinStatus;
  tunnelRepairs: number;
}

/**
 * The public input is exactly the request. `resume` is accepted only in a run that another run of this same
 * workflow continued-as-new into, and only naming this workflow and the glidein it derives.
 */
export type LaunchGlideinInput = GlideinRequest & {
  resume?: ResumeState;
};

/**
 * One patch for the owned lifecycle: the collision-free glidein id, the history cap from the plan (at least one
 * monitor round per run), shutdowns honoured at the continue-as-new boundary, the live memo and the work
 * directory's clean-up. Histories recorded before it replay as they ran.
 */
export const OWNED_LIFECYCLE = 'owned-lifecycle';

/**
 * Asked only when a state to carry fails its schema: the run then drains and tears down instead of continuing-as-new
 * into a run that would refuse it. Runs recorded before it continued-as-new (and their next run refused the state).
 */
export const CHECKED_CARRY = 'checked-carry';

/** Why the next run would refuse this state (resumeStateSchema, as acceptInput applies it), or undefined. */
export function refusedCarry(resume: ResumeState): string | undefined {
  const parsed = resumeStateSchema.safeParse(resume);
  return parsed.success ? undefined : resumeIssues(parsed.error);
}

const resumeIssues = (error: Parameters<typeof formatIssues>[0]) => formatIssues(error).replace(/^/gm, 'resume.');

export type Accepted = { request: GlideinRequest; resume?: ResumeState; legacyCap?: number };
type Refused = { refused: string; site?: string };

/** Fails the run as InvalidRequest, still findable in the Web UI's list of failed glideins. */
export function refuseInput(refused: Refused, info: ReturnType<typeof workflowInfo>): never {
  upsertSearchAttributes([
    { key: GlideinPhase, value: 'failed' },
    { key: GlideinId, value: glideinIdFor(info.workflowId) },
    ...(refused.site ? [{ key: GlideinSite, value: refused.site }] : []),
  ]);
  throw ApplicationFailure.nonRetryable(refused.refused, FailureType.InvalidRequest);
}

/**
 * The whole input, validated before anything runs. A first run takes exactly the request. A run continued from
 * another one also takes the carried state, if it passes its schema and names this workflow and the glidein id
 * this workflow derives (states carried before OWNED_LIFECYCLE name neither and bring their history cap).
 */
export function acceptInput(input: unknown, info: ReturnType<typeof workflowInfo>, owned: boolean): Accepted | Refused {
  const raw = (input !== null && typeof input === 'object' && !Array.isArray(input) ? input : {}) as Record<
    string,
    unknown
  >;
  const site = siteName.safeParse(raw.site).success ? (raw.site as string) : undefined;
  const refuse = (why: string): Refused => ({ refused: `LaunchGlidein input is invalid:\n${why}`, site });
  const continued = info.continuedFromExecutionRunId !== undefined;
  const { resume: rawResume, maxHistoryEvents, ...rest } = raw;
  let request: GlideinRequest;
  try {
    // Histories recorded before OWNED_LIFECYCLE may carry the old test knob maxHistoryEvents in a first run.
    request = parseGlideinRequest(continued || !owned ? rest : input);
  } catch (err) {
    if (err instanceof InvalidRequestError) return { refused: err.message, site };
    throw err;
  }
  let legacyCap: number | undefined;
  if (maxHistoryEvents !== undefined) {
    if (typeof maxHistoryEvents !== 'number' || !Number.isInteger(maxHistoryEvents) || maxHistoryEvents < 0)
      return refuse('maxHistoryEvents: expected a whole number');
    legacyCap = maxHistoryEvents;
  }
  if (!continued) return owned ? { request } : { request, legacyCap };
  if (rawResume === undefined) return { request, legacyCap };
  const parsed = resumeStateSchema.safeParse(rawResume);
  if (!parsed.success) return refuse(resumeIssues(parsed.error));
  const resume = parsed.data as ResumeState;
  const { status, plan: carriedPlan } = resume;
  if (resume.workflowId !== undefined && resume.workflowId !== info.workflowId)
    return refuse('resume.workflowId: carried by another workflow');
  // Only states carried before OWNED_LIFECYCLE bring the old cap; its value is used only where it was then.
  if (resume.workflowId !== undefined && legacyCap !== undefined)
    return refuse("maxHistoryEvents: not an input (the history cap is the site profile's monitor.historyEvents)");
  const mine = [glideinIdFor(info.workflowId), legacyGlideinIdFor(info.workflowId)];
  if (!mine.includes(status.glideinId))
    return refuse(`resume.status.glideinId: not the glidein id this workflow derives (${mine[0]})`);
  if (carriedPlan.glideinId !== status.glideinId)
    return refuse('resume.plan.glideinId: differs from resume.status.glideinId');
  if (status.site !== request.site || carriedPlan.site !== request.site)
    return refuse(`resume.status.site: differs from site ${request.site}`);
  for (const h of status.held) {
    if (h.kind === 'allocation' && h.jobName !== status.glideinId)
      return refuse('resume.status.held: the allocation names another glidein');
    if (h.kind === 'container' && h.instance !== instanceName(status.glideinId))
      return refuse('resume.status.held: the container names another glidein');
    if (h.kind === 'cvmfs' && h.repositories.some((r) => !carriedPlan.repositories.includes(r)))
      return refuse('resume.status.held: cvmfs names a repository the plan does not');
  }
  return { request, resume, legacyCap };
}
