/**
 * How /cvmfs appears on the worker node (the cvmfs provider). Today one: cvmfsexec's `mountrepo <repo>` mounts
 * each repository without root under <cvmfsexecDir>/dist/cvmfs, shared by the glideins of a node through leases
 * (src/site/scripts/leases.ts). A site where /cvmfs is already mounted would be a second provider: the same
 * interface, a container bind of /cvmfs itself, and mount/release commands that only look.
 */
import { FailureType } from '../../common/failure-types';
import { firstPermanent, type PermanentCause, type PermanentRule } from '../failure-rules';
import type { SiteProfile } from '../profile';
import {
  listLeasesArgv,
  mountLeaseArgv,
  mountReleaseArgv,
  parseLeases,
  parseMountLease,
  parseMountRelease,
  type LeaseOutcome,
  type ReleaseOutcome,
} from '../scripts/leases';
import { setConfigLineArgv } from '../scripts/files';

export interface CvmfsProvider {
  /** What the container binds to make /cvmfs appear in it (`src:/cvmfs`). */
  readonly containerBind: string;
  /** Take this glidein's lease on a repository, mounting it unless it is; the tool's output on stderr if it fails. */
  mountArgv(repo: string, glideinId: string): string[];
  parseMount(stdout: string): LeaseOutcome;
  /**
   * Drop this glidein's lease; the last holder unmounts what a holder mounted. With `node`: that node's lease,
   * dropped from elsewhere (its job has ended), unmounting nothing.
   */
  releaseArgv(repo: string, glideinId: string, node?: string): string[];
  parseRelease(stdout: string): ReleaseOutcome;
  /** The repositories this glidein holds a lease on, on the node (or on `node`, asked from elsewhere). */
  heldArgv(glideinId: string, node?: string): string[];
  parseHeld(stdout: string): string[];
  /** Sets CVMFS_HTTP_PROXY in the provider's configuration (cvmfsexec: dist/etc/cvmfs/default.local). */
  proxyConfigArgv(httpProxy: string): string[];
  /** Whether what a failed mount printed says retrying cannot help (at this attempt of the step). */
  readonly permanentCause: PermanentCause;
}

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

export function cvmfsFor(profile: SiteProfile): CvmfsProvider {
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
