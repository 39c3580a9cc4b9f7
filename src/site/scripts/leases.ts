/**
 * Shared cvmfs mounts, reference-counted per node. The leases of one node live in <lease root>/<node name>/<repo>/
 * (one empty file per glidein; `.ours` marks a mount that a lease holder made) and change only under flock on
 * <lease root>/<node name>/.lock, so concurrent glideins on one node, or a retry racing a mount its crashed attempt
 * left running, see one consistent state. Keyed by node name because the cvmfsexec directory may sit on a file
 * system shared by every node, while mounts are per node; the node's name is the batch system's where the command
 * runs in a job (Slurm's SLURMD_NODENAME, as squeue names the node; ../batch/), else `uname -n`. Whether a
 * repository is mounted is read from /proc/self/mounts (the mount point as the target's exact path).
 */

import { NODE_NAME_VARIABLES } from '../batch';
import { SAFE_PATH, UNSAFE_PATH_EXIT } from './prelude';

/**
 * The node a lease script keys its leases by: the one given, else a batch system's name for this node, else
 * uname -n (`${node:-${SLURMD_NODENAME:-$(uname -n)}}`).
 */
const NODE_KEY = `\${node:-${NODE_NAME_VARIABLES.reduceRight((or, name) => `\${${name}:-${or}}`, '$(uname -n)')}}`;

/** MOUNT_LEASE and MOUNT_RELEASE exit with this when the node's lock stays taken (sysexits' EX_TEMPFAIL). */
export const LEASE_LOCK_TIMEOUT_EXIT = 75;

/**
 * MOUNT_LEASE root=$1 repo=$2 id=$3 mountrepo=$4 target=$5: take this glidein's lease (before mounting, so a crash
 * leaves a lease the teardown finds), then mount unless it already is. Prints `mounted` (mounted now),
 * `shared <n>` (a lease holder's mount, n leases in all) or `external` (mounted by someone else: never ours to
 * unmount). A failed mountrepo drops the lease and the mark (nothing is mounted) and exits with mountrepo's
 * status, its output on stderr; 1 when the lease directory cannot be written, 75 when the lock stays taken, 77 when
 * a lease directory or mountrepo is a symbolic link, someone else's, or writable by others.
 * mountrepo runs without the lock's descriptor: the FUSE daemon it leaves behind must not hold the lock.
 */
export const MOUNT_LEASE = `${SAFE_PATH}set -u
umask 077
node=
base=$1/${NODE_KEY}; dir=$base/$2
for p in "$1" "$base" "$dir"; do safe_path "$p" || exit ${UNSAFE_PATH_EXIT}; done
safe_path "$4" root || exit ${UNSAFE_PATH_EXIT}
mkdir -p "$dir" || exit 1
exec 9>>"$base/.lock"
flock -w 120 9 || { echo "waited 120 s for the mount lock $base/.lock" >&2; exit ${LEASE_LOCK_TIMEOUT_EXIT}; }
: > "$dir/$3" || exit 1
if awk -v t="$5" '$2 == t { f = 1 } END { exit !f }' /proc/self/mounts; then
  if [ -e "$dir/.ours" ]; then echo "shared $(ls "$dir" | wc -l)"; else echo external; fi
  exit 0
fi
: > "$dir/.ours"
out=$("$4" "$2" 2>&1 9>&-); rc=$?
if [ $rc -ne 0 ]; then rm -f "$dir/$3" "$dir/.ours"; printf '%s\\n' "$out" >&2; exit $rc; fi
echo mounted`;

/**
 * MOUNT_RELEASE root=$1 repo=$2 id=$3 umountrepo=$4 target=$5 [node=$6]: drop this glidein's lease; the last holder
 * unmounts what a lease holder mounted (never an external mount). Prints `not-held`, `still-used <n>`,
 * `unmounted` or `not-mounted`. A failed umountrepo keeps the lease, so that a retry tries again, and exits with
 * its status. With $6, the leases of that node are released from elsewhere (the login node, once the node's job
 * has ended and its mounts with it): nothing is unmounted.
 */
export const MOUNT_RELEASE = `${SAFE_PATH}set -u
umask 077
node=\${6:-}
base=$1/${NODE_KEY}; dir=$base/$2
[ -e "$dir/$3" ] || { echo not-held; exit 0; }
for p in "$1" "$base" "$dir"; do safe_path "$p" || exit ${UNSAFE_PATH_EXIT}; done
[ -n "$node" ] || safe_path "$4" root || exit ${UNSAFE_PATH_EXIT}
exec 9>>"$base/.lock"
flock -w 60 9 || { echo "waited 60 s for the mount lock $base/.lock" >&2; exit ${LEASE_LOCK_TIMEOUT_EXIT}; }
rm -f "$dir/$3"
n=$(ls "$dir" | wc -l)
[ "$n" -gt 0 ] && { echo "still-used $n"; exit 0; }
if [ -z "$node" ] && [ -e "$dir/.ours" ] && awk -v t="$5" '$2 == t { f = 1 } END { exit !f }' /proc/self/mounts; then
  out=$("$4" "$2" 2>&1 9>&-); rc=$?
  if [ $rc -ne 0 ]; then : > "$dir/$3"; printf '%s\\n' "$out" >&2; exit $rc; fi
  rm -f "$dir/.ours"; echo unmounted; exit 0
fi
rm -f "$dir/.ours"; echo not-mounted`;

/**
 * LIST_LEASES root=$1 id=$2 [node=$3]: the repositories this glidein holds a lease on, on this node (or $3), one a
 * line.
 */
export const LIST_LEASES = `node=\${3:-}
for f in "$1/${NODE_KEY}"/*/"$2"; do [ -e "$f" ] && basename "$(dirname "$f")"; done; exit 0`;

export interface LeaseArgs {
  /** Where the leases live (for cvmfsexec: beside it). */
  root: string;
  repo: string;
  glideinId: string;
  /** The command that mounts (MOUNT_LEASE) or unmounts (MOUNT_RELEASE) one repository, given its name. */
  tool: string;
  /** The repository's mount point, as /proc/self/mounts names it. */
  target: string;
  /** MOUNT_RELEASE only: release the leases of this node from elsewhere, unmounting nothing. */
  node?: string;
}

const leaseArgv = (script: string, a: LeaseArgs) => [
  'sh',
  '-c',
  script,
  'sh',
  a.root,
  a.repo,
  a.glideinId,
  a.tool,
  a.target,
  ...(a.node ? [a.node] : []),
];

export const mountLeaseArgv = (a: LeaseArgs): string[] => leaseArgv(MOUNT_LEASE, a);
export const mountReleaseArgv = (a: LeaseArgs): string[] => leaseArgv(MOUNT_RELEASE, a);

export function listLeasesArgv(root: string, glideinId: string, node?: string): string[] {
  return ['sh', '-c', LIST_LEASES, 'sh', root, glideinId, ...(node ? [node] : [])];
}

export type LeaseOutcome = { state: 'mounted' } | { state: 'shared'; holders: number } | { state: 'external' };

export type ReleaseOutcome =
  { state: 'not-held' | 'unmounted' | 'not-mounted' } | { state: 'still-used'; holders: number };

function answer(script: string, stdout: string): Error {
  return new Error(`${script} answered ${JSON.stringify(stdout.slice(0, 200))}`);
}

export function parseMountLease(stdout: string): LeaseOutcome {
  const [state, holders, ...rest] = stdout.trim().split(/\s+/);
  if (rest.length === 0) {
    if ((state === 'mounted' || state === 'external') && holders === undefined) return { state };
    if (state === 'shared' && /^\d+$/.test(holders ?? '')) return { state, holders: Number(holders) };
  }
  throw answer('the mount lease', stdout);
}

export function parseMountRelease(stdout: string): ReleaseOutcome {
  const [state, holders, ...rest] = stdout.trim().split(/\s+/);
  if (rest.length === 0) {
    if ((state === 'not-held' || state === 'unmounted' || state === 'not-mounted') && holders === undefined)
      return { state };
    if (state === 'still-used' && /^\d+$/.test(holders ?? '')) return { state, holders: Number(holders) };
  }
  throw answer('the mount release', stdout);
}

export function parseLeases(stdout: string): string[] {
  return stdout.split('\n').filter(Boolean);
}
