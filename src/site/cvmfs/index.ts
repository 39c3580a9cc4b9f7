/**
 * How /cvmfs appears on the worker node (the cvmfs provider), one kind per file. Today one, cvmfsexec.ts, and no
 * profile field to choose: a site where /cvmfs is already mounted would be a second provider (the same interface, a
 * container bind of /cvmfs itself, and mount/release commands that only look), its file here and a `cvmfs.provider`
 * field in the profile schema to choose it.
 */
import type { SiteProfile } from '../profile';
import type { CvmfsProvider } from './cvmfs-provider';
import { cvmfsexecFor } from './cvmfsexec';

export function cvmfsFor(profile: SiteProfile): CvmfsProvider {
  return cvmfsexecFor(profile);
}

export type { CvmfsProvider } from './cvmfs-provider';
export { cvmfsMountRoot, leaseRoot, MOUNTREPO_PERMANENT } from './cvmfsexec';
