/**
 * The cvmfs provider cvmfsexec: `mountrepo <repo>` mounts each repository without root under
 * <cvmfsexecDir>/dist/cvmfs, shared by the glideins of a node through leases (src/site/scripts/leases.ts).
 */
import { FailureType } from '../../common/failure-types';
import { firstPermanent, type PermanentRule } from '../failure-rules';
import type { SiteProfile } from '../profile';
import {
  listLeasesArgv,
  mountLeaseArgv,
  mountReleaseArgv,
  parseLeases,
  parseMountLease,
  parseMountRelease,
} from '../scripts/leases';
import { setConfigLineArgv } from '../scripts/files';
import type { CvmfsProvider } from './cvmfs-provider';

/** What cvmfsexec's `mountrepo` says when retrying cannot help. */
export const MOUNTREPO_PERMANENT: readonly PermanentRule[] = [
  {
    pattern: /proxy auto-discovery failed|CVMFS_HTTP_PROXY is not set/i,
    type: FailureType.CvmfsMountFailed,
    fix: 'set cvmfs.httpProxy: a compute node cannot discover a proxy by itself',
    field: 'cvmfs.httpProxy',
  },
  {
    pattern: /catalog|not found|no such|Failed to initialize/i,
    type: FailureType.CvmfsMountFailed,
    fix: 'check cvmfs.repositories, and that cvmfs.httpProxy serves them',
    fromAttempt: 3,
  },
];

/** Where cvmfsexec mounts the repositories. */
export function cvmfsMountRoot(profile: SiteProfile): string {
  return `${profile.cvmfs.cvmfsexecDir}/dist/cvmfs`;
}

/** Where a site's cvmfs leases live: beside the cvmfsexec it mounts with. */
export function leaseRoot(profile: Pick<SiteProfile, 'cvmfs'>): string {
  return `${profile.cvmfs.cvmfsexecDir}/.leases`;
}

export function cvmfsexecFor(profile: SiteProfile): CvmfsProvider {
  const dir = profile.cvmfs.cvmfsexecDir;
  const root = cvmfsMountRoot(profile);
  const lease = (repo: string, glideinId: string, tool: string, node?: string) => ({
    node,
    root: leaseRoot(profile),
    repo,
    glideinId,
    tool: `${dir}/${tool}`,
    target: `${root}/${repo}`,
  });
  return {
    containerBind: `${root}:/cvmfs`,
    mountArgv: (repo, glideinId) => mountLeaseArgv(lease(repo, glideinId, 'mountrepo')),
    parseMount: parseMountLease,
    releaseArgv: (repo, glideinId, node) => mountReleaseArgv(lease(repo, glideinId, 'umountrepo', node)),
    parseRelease: parseMountRelease,
    heldArgv: (glideinId, node) => listLeasesArgv(leaseRoot(profile), glideinId, node),
    parseHeld: parseLeases,
    proxyConfigArgv: (httpProxy) =>
      setConfigLineArgv(`${dir}/dist/etc/cvmfs/default.local`, 'CVMFS_HTTP_PROXY', `CVMFS_HTTP_PROXY='${httpProxy}'`),
    permanentCause: (output, attempt) => firstPermanent(MOUNTREPO_PERMANENT, output, attempt),
  };
}
