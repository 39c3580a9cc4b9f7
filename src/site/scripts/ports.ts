/**
 * SOCKS ports leased per worker node, so that many glideins share a node (and, with a reverse tunnel, a login
 * node): the leases of one node are files <root>/<node name>/<port> holding the glidein id, changed only under
 * flock on <root>/<node name>/.lock. A glidein finds its own lease again (a retry, a tunnel reopened after a drop,
 * a new worker after a crash) and never takes a port another glidein leases or some other process listens on.
 * Keyed by node name because the work directory may sit on a file system that every node shares.
 */
import { LEASE_LOCK_TIMEOUT_EXIT } from './leases';
import { SAFE_PATH, UNSAFE_PATH_EXIT } from './prelude';

/**
 * PORT_LEASE root=$1 id=$2 first=$3 last=$4: prints `found <port>` (this glidein's lease), `leased <port>` (a
 * free port, now leased) or `exhausted` (every port of the range is leased or listening; on stderr, how many the
 * glideins lease and which uids listen on the rest, so a squatting co-tenant is named); exits 75 when the lock
 * stays taken, 1 when the lease directory cannot be written, 77 when it is a symbolic link, someone else's, or
 * writable by others.
 */
export const PORT_LEASE = `${SAFE_PATH}set -u
umask 077
base=$1/$(uname -n)
for p in "$1" "$base"; do safe_path "$p" || exit ${UNSAFE_PATH_EXIT}; done
mkdir -p "$base" || exit 1
exec 9>>"$base/.lock"
flock -w 60 9 || { echo "waited 60 s for the port lock $base/.lock" >&2; exit ${LEASE_LOCK_TIMEOUT_EXIT}; }
for f in "$base"/*; do
  [ -f "$f" ] || continue
  owner=; read -r owner < "$f" || true
  [ "$owner" = "$2" ] && { echo "found \${f##*/}"; exit 0; }
done
listening=$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
  awk 'NR > 1 && $4 == "0A" { split($2, a, ":"); print a[2], $8 }')
p=$3
while [ "$p" -le "$4" ]; do
  if [ ! -e "$base/$p" ] && ! printf '%s\\n' "$listening" | grep -q "^$(printf '%04X' "$p") "; then
    printf '%s\\n' "$2" > "$base/$p" || exit 1
    echo "leased $p"; exit 0
  fi
  p=$((p + 1))
done
# Who holds the range, for the operator: glideins' leases, and listeners by uid (a co-tenant squatting the range).
leased=$(find "$base" -maxdepth 1 -type f ! -name .lock | wc -l)
printf '%s\\n' "$listening" | awk -v first="$3" -v last="$4" 'NF == 2 { p = 0; h = toupper($1)
    for (i = 1; i <= length(h); i++) p = p * 16 + index("0123456789ABCDEF", substr(h, i, 1)) - 1
    if (p >= first && p <= last) n[$2]++ }
  END { for (u in n) printf "uid %s listens on %d of them\\n", u, n[u] }' | sort | head -5 >&2
echo "$leased leased by glideins on this node" >&2
echo exhausted`;

/** PORT_RELEASE root=$1 id=$2: drops this glidein's lease; prints `released <port>` or `not-held`. */
export const PORT_RELEASE = `${SAFE_PATH}set -u
base=$1/$(uname -n)
[ -d "$base" ] || { echo not-held; exit 0; }
for p in "$1" "$base"; do safe_path "$p" || exit ${UNSAFE_PATH_EXIT}; done
exec 9>>"$base/.lock"
flock -w 60 9 || { echo "waited 60 s for the port lock $base/.lock" >&2; exit ${LEASE_LOCK_TIMEOUT_EXIT}; }
for f in "$base"/*; do
  [ -f "$f" ] || continue
  owner=; read -r owner < "$f" || true
  [ "$owner" = "$2" ] && { rm -f "$f"; echo "released \${f##*/}"; exit 0; }
done
echo not-held`;

export interface PortLeaseArgs {
  root: string;
  glideinId: string;
  first: number;
  last: number;
}

export function portLeaseArgv(a: PortLeaseArgs): string[] {
  return ['sh', '-c', PORT_LEASE, 'sh', a.root, a.glideinId, String(a.first), String(a.last)];
}

export function portReleaseArgv(root: string, glideinId: string): string[] {
  return ['sh', '-c', PORT_RELEASE, 'sh', root, glideinId];
}

export type PortLease = { state: 'found' | 'leased'; port: number } | { state: 'exhausted' };
export type PortRelease = { state: 'released'; port: number } | { state: 'not-held' };

const PORT = /^[1-9]\d{0,4}$/;

export function parsePortLease(stdout: string): PortLease {
  const [state, port, ...rest] = stdout.trim().split(/\s+/);
  if (rest.length === 0) {
    if ((state === 'found' || state === 'leased') && PORT.test(port ?? '')) return { state, port: Number(port) };
    if (state === 'exhausted' && port === undefined) return { state };
  }
  throw new Error(`the port lease answered ${JSON.stringify(stdout.slice(0, 200))}`);
}

export function parsePortRelease(stdout: string): PortRelease {
  const [state, port, ...rest] = stdout.trim().split(/\s+/);
  if (rest.length === 0) {
    if (state === 'released' && PORT.test(port ?? '')) return { state, port: Number(port) };
    if (state === 'not-held' && port === undefined) return { state };
  }
  throw new Error(`the port release answered ${JSON.stringify(stdout.slice(0, 200))}`);
}
