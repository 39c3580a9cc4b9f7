/**
 * What a cvmfs provider is to the lifecycle: how /cvmfs appears on the worker node and in the container (one kind
 * per file beside this one; index.ts picks one per profile).
 */
import type { PermanentCause } from '../failure-rules';
import type { LeaseOutcome, ReleaseOutcome } from '../scripts/leases';

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
