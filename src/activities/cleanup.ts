/**
 * After a clean teardown the glidein's directory is moved to `<workDir>/.done/<id>.<epoch>` (its logs kept for
 * glidein.keepLogs, then removed), so a site account does not fill up with the directories of past glideins and
 * the glidein id (and its claim) is free again.
 */
import { parseDuration } from '../common/duration';
import { FailureType, PermanentFault } from '../common/failure-types';
import type { GlideinRef, UndoOutcome } from '../common/types';
import { runChecked } from '../remote/executor';
import { parseRetire, retireArgv } from '../site/scripts/ownership';
import type { ActivityDeps } from './deps';
import { asStep } from './to-failure';
import { claimLine, forgetOwnership } from './ownership';
import { directoryHosts, isAllocationEnded, siteAccess } from './site-access';

/** Moves a torn-down glidein's directory to `<workDir>/.done/` on each host that keeps part of it. */
export function createCleanupActivities(deps: ActivityDeps) {
  return {
    async cleanupGlidein(ref: GlideinRef): Promise<UndoOutcome> {
      return asStep('cleanupGlidein', async () => {
        const access = await siteAccess(deps, ref);
        const { profile, paths } = access;
        const done = `${profile.workDir}/.done`;
        const keepMinutes = Math.ceil(parseDuration(profile.glidein.keepLogs) / 60_000);
        const outcomes: string[] = [];
        for (const host of directoryHosts(access)) {
          let result;
          try {
            result = await runChecked(
              host,
              'moving the work directory aside',
              retireArgv(paths.dir, claimLine(), done, keepMinutes),
              access.opts(),
            );
          } catch (err) {
            // The node's job has ended (srun access): the node is out of reach; the login node's side remains.
            if (host === access.node && isAllocationEnded(err)) continue;
            throw err;
          }
          const answer = parseRetire(result.stdout);
          if (answer.state === 'theirs')
            throw new PermanentFault(
              `the glidein directory ${paths.dir} on ${host.target} is claimed by another workflow; left alone`,
              FailureType.GlideinIdConflict,
            );
          forgetOwnership(host, paths.dir);
          if (answer.state === 'moved')
            outcomes.push(`logs kept in ${answer.to} on ${host.target} for ${profile.glidein.keepLogs}`);
        }
        return { detail: outcomes.join('; ') || 'no work directory left' };
      });
    },
  };
}
