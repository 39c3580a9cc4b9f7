/**
 * /cvmfs without root: cvmfsexec's `mountrepo <repo>` mounts each repository under <cvmfsexecDir>/dist/cvmfs.
 * Glideins on one node share those mounts, so each takes a lease per repository (MOUNT_LEASE) before it
 * mounts, and gives it back on teardown (MOUNT_RELEASE): the last one out unmounts, never a mount that was
 * there before any glidein. The leases are files on the site, so a retry, a crashed worker's successor and the
 * teardown all find them; they change under a lock on the node, so concurrent glideins never race on a mount.
 */
import type { GlideinRef, UndoOutcome } from '../common/types';
import { lastLines, runChecked, type Executor } from '../remote/executor';
import { UNSAFE_PATH_EXIT } from '../site/scripts/prelude';
import { FailureType, PermanentFault } from '../common/failure-types';
import type { ActivityDeps } from './deps';
import { asStep } from './to-failure';
import { activityInfo, heartbeat } from './kit';
import { isAllocationEnded, siteAccess, type SiteAccess } from './site-access';

/**
 * The repositories this glidein holds a lease on, in the profile's order (others, from an older profile, last).
 * `from`: asked on another host (the login node) about `node`'s leases.
 */
async function leasedRepositories(access: SiteAccess, from?: { host: Executor; node: string }): Promise<string[]> {
  const { cvmfs } = access.adapters;
  const result = await runChecked(
    from?.host ?? access.node,
    'listing the mount leases',
    cvmfs.heldArgv(access.ref.glideinId, from?.node),
    access.opts(),
  );
  const held = cvmfs.parseHeld(result.stdout);
  const order = access.profile.cvmfs.repositories;
  const rank = (r: string) => (order.includes(r) ? order.indexOf(r) : order.length);
  return held.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

export interface MountOutcome {
  /** Mounted by this glidein or by another glidein on the node that holds a lease too. */
  mounted: string[];
  /** Mounted by someone outside the leases (the site itself): used, never unmounted. */
  alreadyMounted: string[];
  /** Of `mounted`, the repositories other glideins hold leases on as well. */
  shared?: string[];
}

export function createCvmfsActivities(deps: ActivityDeps) {
  return {
    async mountCvmfs(ref: GlideinRef): Promise<MountOutcome> {
      return asStep('mountCvmfs', async () => {
        const access = await siteAccess(deps, ref, 'claim');
        const { profile, node } = access;
        const { cvmfs } = access.adapters;
        const outcome: Required<MountOutcome> = { mounted: [], alreadyMounted: [], shared: [] };
        // cvmfs's proxy, set where cvmfsexec reads it, and the mount run inside the chain (the tunnel, then KIT):
        // its connections to that proxy leave the compute node the one way there is.
        const { httpProxy } = profile.cvmfs;
        if (httpProxy !== undefined)
          await runChecked(
            node,
            'setting CVMFS_HTTP_PROXY for cvmfsexec',
            cvmfs.proxyConfigArgv(httpProxy),
            access.opts(),
          );
        const env =
          httpProxy !== undefined ? access.adapters.chain.chainedEnv(access.paths.proxychainsConf) : undefined;
        for (const repo of profile.cvmfs.repositories) {
          heartbeat({ mounting: repo });
          const result = await node.run(
            cvmfs.mountArgv(repo, ref.glideinId),
            access.opts({ timeoutMs: 360_000, persists: true, env }),
          );
          if (result.code !== 0) {
            const why = lastLines(result.stderr || result.stdout, 3);
            if (result.code === UNSAFE_PATH_EXIT)
              throw new PermanentFault(`cvmfs: refused on ${node.target}: ${why}`, FailureType.SitePathUnsafe);
            const message = `mountrepo ${repo} failed on ${node.target}: ${why}`;
            const permanent = cvmfs.permanentCause(why, activityInfo().attempt);
            if (permanent)
              throw new PermanentFault(`${permanent.field ?? 'cvmfs.repositories'}: ${message}`, permanent.type);
            throw new Error(message);
          }
          const lease = cvmfs.parseMount(result.stdout);
          if (lease.state === 'external') outcome.alreadyMounted.push(repo);
          else outcome.mounted.push(repo);
          if (lease.state === 'shared' && lease.holders > 1) outcome.shared.push(repo);
        }
        return outcome;
      });
    },

    async unmountCvmfs(ref: GlideinRef): Promise<UndoOutcome> {
      return asStep('unmountCvmfs', async () => {
        const access = await siteAccess(deps, ref);
        try {
          return await release(access);
        } catch (err) {
          // The node's job has ended (srun access): its mounts ended with their FUSE daemons, and the node is
          // out of reach. The leases are files on the shared file system: drop them from the login node, or a
          // next glidein on that node would count this one as a holder for ever.
          if (!isAllocationEnded(err) || !ref.node) throw err;
          const released = await release(access, { host: access.login, node: ref.node });
          return { detail: `${err.message}; its mounts ended with it; leases: ${released.detail}` };
        }
      });
    },
  };

  async function release(access: SiteAccess, from?: { host: Executor; node: string }): Promise<UndoOutcome> {
    const { ref } = access;
    const { cvmfs } = access.adapters;
    const unmounted: string[] = [];
    const stillUsed: string[] = [];
    for (const repo of (await leasedRepositories(access, from)).reverse()) {
      heartbeat({ unmounting: repo });
      const result = await runChecked(
        from?.host ?? access.node,
        from ? `releasing the lease on ${repo}` : `umountrepo ${repo}`,
        cvmfs.releaseArgv(repo, ref.glideinId, from?.node),
        access.opts({ timeoutMs: 120_000 }),
      );
      const outcome = cvmfs.parseRelease(result.stdout);
      if (outcome.state === 'unmounted') unmounted.push(repo);
      if (outcome.state === 'still-used')
        stillUsed.push(`${repo} (${outcome.holders} other glidein${outcome.holders === 1 ? '' : 's'})`);
    }
    const parts = [
      unmounted.length ? `unmounted ${unmounted.join(', ')}` : '',
      stillUsed.length ? `left for others: ${stillUsed.join(', ')}` : '',
    ].filter(Boolean);
    return { detail: parts.join('; ') || 'nothing of ours mounted' };
  }
}
