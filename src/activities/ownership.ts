/**
 * Who owns a glidein's directory on the site. The first step that touches `<workDir>/<glideinId>/` claims it
 * for its workflow (namespace and workflow id, from the activity's own context, never from input), written
 * atomically with `ln` so two workflows racing for one id cannot both win; every later activity checks the
 * claim and touches nothing when it names another workflow (`GlideinIdConflict`). Two Temporal namespaces,
 * clusters or workers pointed at one site account, or two workflow ids that derive one glidein id, can then
 * never share (and later kill) each other's tunnel, container or glidein.
 */
import { activityOwner } from './kit';
import { FailureType, PermanentFault } from '../common/failure-types';
import { runChecked, type Executor, type RunOptions } from '../remote/executor';
import { CLAIM_FILE, claimArgv, parseClaim, type ClaimMode, type ClaimOutcome } from '../site/scripts/ownership';

/** This activity's workflow, as the claim records it: one line, whatever characters the workflow id holds. */
export function claimLine(): string {
  return JSON.stringify(activityOwner());
}

/** Claims seen to be ours, per host and directory: a claim never changes hands while its glidein lives. */
const confirmed = new Set<string>();
const MAX_CONFIRMED = 50_000;

export type Ownership = 'ours' | 'absent';

/** Claims (or checks the claim on) a glidein's directory on one host; throws GlideinIdConflict if it is not ours. */
export async function ensureOwnership(
  exec: Executor,
  dir: string,
  mode: ClaimMode,
  opts: RunOptions,
): Promise<Ownership> {
  const claim = claimLine();
  const key = `${exec.target}\u0000${dir}\u0000${claim}`;
  if (confirmed.has(key)) return 'ours';
  const result = await runChecked(exec, 'checking who owns the glidein directory', claimArgv(dir, claim, mode), opts);
  let answer: ClaimOutcome;
  try {
    answer = parseClaim(result.stdout);
  } catch {
    throw new Error(
      `unexpected answer from the ownership check on ${exec.target}: ${result.stdout.trim().slice(0, 200)}`,
    );
  }
  if (answer.state === 'theirs') {
    throw new PermanentFault(
      `the glidein directory ${dir} on ${exec.target} is claimed by another workflow ` +
        `(${dir}/${CLAIM_FILE}); nothing was touched. ` +
        'Another workflow id, namespace or Temporal cluster derives the same glidein id on this site ' +
        'account: start this one under another workflow id.',
      FailureType.GlideinIdConflict,
    );
  }
  if (answer.state === 'ours') {
    if (confirmed.size >= MAX_CONFIRMED) confirmed.clear();
    confirmed.add(key);
  }
  return answer.state;
}

/** Forgets a claim this process confirmed (its directory was retired). */
export function forgetOwnership(exec: Executor, dir: string): void {
  confirmed.delete(`${exec.target}\u0000${dir}\u0000${claimLine()}`);
}
