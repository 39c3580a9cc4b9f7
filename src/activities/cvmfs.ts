/**
 * /cvmfs without root: cvmfsexec's `mountrepo <repo>` mounts each repository under <cvmfsexecDir>/dist/cvmfs.
 * A repository is written to the glidein's cvmfs.repos before it is mounted, so after a crash the retry and
 * the teardown know which mounts are this glidein's (and leave ones that were there before alone).
 */
import type { GlideinRef, UndoOutcome } from '../common/types';
import { lastLines, runChecked, type Executor, type RunOptions } from '../remote/executor';
import { APPEND_UNIQUE, LIST_MOUNTS } from '../remote/scripts';
import type { ActivityDeps } from './deps';
import { PermanentFault, asStep } from './failures';
import { cvmfsMountRoot } from './container';
import { heartbeat, siteAccess } from './site-access';

/** /proc/self/mounts escapes space, tab, newline and backslash as octal. */
function unescapeMount(target: string): string {
  return target.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export async function mountedTargets(exec: Executor, opts: RunOptions): Promise<Set<string>> {
  const result = await runChecked(exec, 'reading the mount table', ['sh', '-c', LIST_MOUNTS], opts);
  return new Set(result.stdout.split('\n').filter(Boolean).map(unescapeMount));
}

async function ownedRepositories(exec: Executor, intentFile: string, opts: RunOptions): Promise<string[]> {
  const result = await exec.run(['cat', intentFile], opts);
  return result.code === 0 ? result.stdout.split('\n').filter(Boolean) : [];
}

export function createCvmfsActivities(deps: ActivityDeps) {
  return {
    async mountCvmfs(ref: GlideinRef): Promise<{ mounted: string[]; alreadyMounted: string[] }> {
      return asStep('mountCvmfs', async () => {
        const access = await siteAccess(deps, ref);
        const { profile, node, paths } = access;
        const root = cvmfsMountRoot(profile);
        const owned = new Set(await ownedRepositories(node, paths.cvmfsIntent, access.opts()));
        const mounts = await mountedTargets(node, access.opts());
        const mounted: string[] = [];
        const alreadyMounted: string[] = [];
        for (const repo of profile.cvmfs.repositories) {
          if (mounts.has(`${root}/${repo}`)) {
            // Ours from an earlier attempt counts as mounted by us; someone else's is left to them.
            (owned.has(repo) ? mounted : alreadyMounted).push(repo);
            continue;
          }
          await runChecked(node, 'recording the mount', ['sh', '-c', APPEND_UNIQUE, 'sh', paths.cvmfsIntent, repo], access.opts());
          heartbeat({ mounting: repo });
          const result = await node.run([`${profile.cvmfs.cvmfsexecDir}/mountrepo`, repo], access.opts({ timeoutMs: 240_000 }));
          if (result.code !== 0) {
            const why = lastLines(result.stderr || result.stdout, 3);
            const message = `mountrepo ${repo} failed on ${node.target}: ${why}`;
            if (/catalog|not found|no such|Failed to initialize/i.test(why)) throw new PermanentFault(`cvmfs.repositories: ${message}`, 'CvmfsMountFailed');
            throw new Error(message);
          }
          mounted.push(repo);
        }
        return { mounted, alreadyMounted };
      });
    },

    async unmountCvmfs(ref: GlideinRef): Promise<UndoOutcome> {
      return asStep('unmountCvmfs', async () => {
        const access = await siteAccess(deps, ref);
        const { profile, node, paths } = access;
        const root = cvmfsMountRoot(profile);
        const owned = await ownedRepositories(node, paths.cvmfsIntent, access.opts());
        const mounts = await mountedTargets(node, access.opts());
        const unmounted: string[] = [];
        for (const repo of owned.filter((r) => mounts.has(`${root}/${r}`)).reverse()) {
          heartbeat({ unmounting: repo });
          await runChecked(node, `umountrepo ${repo}`, [`${profile.cvmfs.cvmfsexecDir}/umountrepo`, repo], access.opts({ timeoutMs: 120_000 }));
          unmounted.push(repo);
        }
        await runChecked(node, 'forgetting the mounts', ['rm', '-f', paths.cvmfsIntent], access.opts());
        return { detail: unmounted.length ? `unmounted ${unmounted.join(', ')}` : 'nothing of ours mounted' };
      });
    },
  };
}
