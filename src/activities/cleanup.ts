/**
 * After a clean teardown the glidein's directory is moved to `<workDir>/.done/<id>.<epoch>` (its logs kept for
 * glidein.keepLogs, then removed), so a site account does not fill up with the directories of past glideins and
 * the glidein id (and its claim) is free again.
 */
import { parseDuration } from '../common/duration';
import { FailureType } from '../common/failure-types';
import type { GlideinRef, UndoOutcome } from '../common/types';
import { runChecked } from '../remote/executor';
import type { ActivityDeps } from './deps';
import { asStep, PermanentFault } from './failures';
import { CLAIM_FILE, claimLine, forgetOwnership } from './ownership';
import { directoryHosts, siteAccess } from './site-access';

/**
 * $1 directory, $2 the claim line, $3 the directory of finished glideins, $4 minutes to keep them. Moves this
 * glidein's directory (logs and all) there under `<id>.<epoch seconds>` if the claim is ours, then removes
 * finished directories older than the keep time. Prints `moved <dest>`, `absent` or `theirs`.
 */
export const RETIRE_GLIDEIN = `dir=$1; claim=$2; done=$3; keep=$4
if [ -d "$dir" ]; then
  found=$(cat "$dir/${CLAIM_FILE}" 2>/dev/null)
  if [ -n "$found" ] && [ "$found" != "$claim" ]; then echo theirs; exit 0; fi
  mkdir -p "$done" || exit 1
  dest="$done/$(basename "$dir").$(date +%s)"
  mv "$dir" "$dest" && touch "$dest" || exit 1
  echo "moved $dest"
else
  echo absent
fi
find "$done" -mindepth 1 -maxdepth 1 -mmin +"$keep" -exec rm -rf {} + 2>/dev/null
exit 0`;

/** Moves a torn-down glidein's directory to `<workDir>/.done/` on each host that keeps part of it. */
export function createCleanupActivities(deps: ActivityDeps) {
  return {
    async cleanupGlidein(ref: GlideinRef): Promise<UndoOutcome> {
      return asStep('cleanupGlidein', async () => {
        const access = await siteAccess(deps, ref);
        const { profile, paths } = access;
        const done = `${profile.workDir}/.done`;
        const keepMinutes = String(Math.ceil(parseDuration(profile.glidein.keepLogs) / 60_000));
        const outcomes: string[] = [];
        for (const host of directoryHosts(access)) {
          const result = await runChecked(
            host,
            'moving the work directory aside',
            ['sh', '-c', RETIRE_GLIDEIN, 'sh', paths.dir, claimLine(), done, keepMinutes],
            access.opts(),
          );
          const answer = result.stdout.trim();
          if (answer === 'theirs')
            throw new PermanentFault(
              `the glidein directory ${paths.dir} on ${host.target} is claimed by another workflow; left alone`,
              FailureType.GlideinIdConflict,
            );
          forgetOwnership(host, paths.dir);
          if (answer.startsWith('moved '))
            outcomes.push(`logs kept in ${answer.slice(6)} on ${host.target} for ${profile.glidein.keepLogs}`);
        }
        return { detail: outcomes.join('; ') || 'no work directory left' };
      });
    },
  };
}
