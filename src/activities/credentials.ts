/**
 * The pool credential step (src/activities/credential-files.ts does the reading, checking and writing): staged into
 * the glidein's directory before the glidein starts, refused non-retryably when it would expire first, and
 * removed at teardown, before the directory's logs are kept.
 */
import type { GlideinRef, UndoOutcome } from '../common/types';
import { runChecked } from '../remote/executor';
import {
  checkLifetime,
  credentialPaths,
  describeStaged,
  digestOf,
  forgetStaged,
  readCredentials,
  rememberStaged,
  writeCredentials,
  type StagedCredential,
} from './credential-files';
import type { ActivityDeps } from './deps';
import { asStep } from './to-failure';
import { isAllocationEnded, siteAccess } from './site-access';

export function createCredentialActivities(deps: ActivityDeps) {
  return {
    /** `untilMs`: the glidein's end (its deadline and a drain window); a credential expiring before is refused. */
    async stageCredential(ref: GlideinRef, untilMs: number): Promise<{ staged: StagedCredential[] }> {
      return asStep('stageCredential', async () => {
        const access = await siteAccess(deps, ref, 'claim');
        const files = await readCredentials(access.profile);
        checkLifetime(files, untilMs);
        await writeCredentials(access, files);
        rememberStaged(ref.glideinId, digestOf(files));
        return { staged: describeStaged(files) };
      });
    },

    async removeCredential(ref: GlideinRef): Promise<UndoOutcome> {
      return asStep('removeCredential', async () => {
        const access = await siteAccess(deps, ref);
        const argv = ['rm', '-f', '--', ...credentialPaths(access)];
        forgetStaged(ref.glideinId);
        try {
          await runChecked(access.node, 'removing the pool credential', argv, access.opts());
        } catch (err) {
          // The node's job has ended (srun access): the directory is on the file system the login node shares.
          if (!isAllocationEnded(err)) throw err;
          await runChecked(access.login, 'removing the pool credential', argv, access.opts());
        }
        return { detail: 'removed the pool credential from the glidein directory' };
      });
    },
  };
}
