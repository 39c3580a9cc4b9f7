/**
 * Who owns a glidein's directory on the site. The first step that touches `<workDir>/<glideinId>/` claims it
 * for its workflow (namespace and workflow id, from the activity's own context, never from input), written
 * atomically with `ln` so two workflows racing for one id cannot both win; every later activity checks the
 * claim and touches nothing when it names another workflow (`GlideinIdConflict`). Two Temporal namespaces,
 * clusters or workers pointed at one site account, or two workflow ids that derive one glidein id, can then
 * never share (and later kill) each other's tunnel, container or glidein.
 */
import { activityOwner } from './kit';
import { FailureType } from '../common/failure-types';
import { runChecked, type Executor, type RunOptions } from '../remote/executor';
import { PermanentFault } from './failures';

/** The claim file, beside the pid files and logs it protects. */
export const CLAIM_FILE = '.claim';

/**
 * $1 directory, $2 the claim line, $3 `claim` (create the directory if need be) or `verify`. Prints `ours`,
 * `absent` (verify, and no directory: nothing of anyone's to protect) or `theirs <the claim found>`. An existing
 * directory without a claim (made before claims existed) is claimed by the first workflow that looks.
 */
export const CLAIM_GLIDEIN = `dir=$1; claim=$2; mode=$3; f="$dir/${CLAIM_FILE}"
if [ ! -f "$f" ]; then
  if [ ! -d "$dir" ]; then
    [ "$mode" = claim ] || { echo absent; exit 0; }
    mkdir -p "$dir" || exit 1
  fi
  tmp="$f.$$"
  printf '%s\\n' "$claim" > "$tmp" || exit 1
  ln "$tmp" "$f" 2>/dev/null; rm -f "$tmp"
fi
found=$(cat "$f") || exit 1
if [ "$found" = "$claim" ]; then echo ours; else printf 'theirs %s\\n' "$found"; fi`;

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
  mode: 'claim' | 'verify',
  opts: RunOptions,
): Promise<Ownership> {
  const claim = claimLine();
  const key = `${exec.target}\u0000${dir}\u0000${claim}`;
  if (confirmed.has(key)) return 'ours';
  const result = await runChecked(
    exec,
    'checking who owns the glidein directory',
    ['sh', '-c', CLAIM_GLIDEIN, 'sh', dir, claim, mode],
    opts,
  );
  const answer = result.stdout.trim();
  if (answer === 'ours') {
    if (confirmed.size >= MAX_CONFIRMED) confirmed.clear();
    confirmed.add(key);
    return 'ours';
  }
  if (answer === 'absent') return 'absent';
  if (answer.startsWith('theirs')) {
    throw new PermanentFault(
      `the glidein directory ${dir} on ${exec.target} is claimed by another workflow (${dir}/${CLAIM_FILE}); nothing was touched. ` +
        'Another workflow id, namespace or Temporal cluster derives the same glidein id on this site account: start this one under another workflow id.',
      FailureType.GlideinIdConflict,
    );
  }
  throw new Error(`unexpected answer from the ownership check on ${exec.target}: ${answer.slice(0, 200)}`);
}

/** Forgets a claim this process confirmed (its directory was retired). */
export function forgetOwnership(exec: Executor, dir: string): void {
  confirmed.delete(`${exec.target}\u0000${dir}\u0000${claimLine()}`);
}
