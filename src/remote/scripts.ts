/**
 * Fixed shell programs run with `sh -c <script> sh <args…>`. The scripts are constants; every value reaches
 * them as a positional argument, quoted by commandLine(). This is how a step does "look, then act" in one
 * round trip without ever building a shell string from input.
 */

/**
 * Start argv[6…] detached in its own session, output appended to $1, recorded as "pid starttime" in $2; print
 * `started <pid> <start>` or `exited <pid>`. Without a marker, the process is watched for $5 tenths of a second
 * and reported `exited` if it ends within them (a start command that cannot run dies at once), so starting and
 * seeing it survive its start is one round trip. With a marker ($3) and a wait in seconds ($4), the log is
 * started afresh and the script returns only once the marker appears in it (or the process ends, or the wait is
 * over: `waiting <pid> <start>`), so that what the process needs from this session (a forwarded agent) stays
 * there until it is done with it. The child records itself in $2 ("pid starttime", replacing the old record)
 * before it execs the command, so a spawn whose script is killed half-way (an aborted activity) never leaves a
 * process behind that no pid file names.
 */
export const SPAWN_DETACHED = `log=$1; pidfile=$2; marker=$3; wait=$4; settle=$5; shift 5
[ -n "$marker" ] && : > "$log"
rm -f "$pidfile"
record='rest=$(sed "s/^.*) //" /proc/$$/stat) || exit 127
printf "%s %s\\n" $$ "$(printf "%s\\n" "$rest" | cut -d" " -f20)" > "$1.tmp" && mv "$1.tmp" "$1" || exit 127
shift; exec "$@"'
setsid sh -c "$record" sh "$pidfile" "$@" </dev/null >>"$log" 2>&1 &
pid=$!
i=0
while [ ! -s "$pidfile" ] && [ $i -lt 100 ]; do sleep 0.02; i=$((i + 1)); done
{ read -r _ start _; } < "$pidfile" 2>/dev/null || { echo "exited $pid"; exit 0; }
ended() { case $(sed 's/^.*) //' /proc/$pid/stat 2>/dev/null | cut -d' ' -f1) in ''|Z|X) return 0;; esac; return 1; }
i=0
if [ -z "$marker" ]; then
  while [ $i -lt "$settle" ]; do
    sleep 0.1; i=$((i + 1))
    ended && { echo "exited $pid"; exit 0; }
  done
  echo "started $pid $start"; exit 0
fi
while [ $i -lt $((wait * 10)) ]; do
  grep -qF -- "$marker" "$log" && { echo "started $pid $start"; exit 0; }
  ended && { echo "exited $pid"; exit 0; }
  sleep 0.1; i=$((i + 1))
done
echo "waiting $pid $start"`;

/**
 * Report the processes named in pid files ("pid starttime") and the listening TCP sockets:
 *   proc <pidfile> <pid> <recorded start> <actual start or -> <cmdline with spaces>
 *   listen <port in hex>
 */
export const INSPECT_PROCESSES = `for f; do
  { read -r pid start _; } < "$f" 2>/dev/null || { echo "proc $f - - - -"; continue; }
  case $pid in ''|*[!0-9]*) echo "proc $f - - - -"; continue;; esac
  stat=$(cat /proc/$pid/stat 2>/dev/null) || { echo "proc $f $pid $start - -"; continue; }
  rest=$(printf '%s\\n' "$stat" | sed 's/^.*) //')
  actual=$(printf '%s\\n' "$rest" | cut -d' ' -f20)
  # A zombie (Z) or dead (X) process has ended; where nothing reaps orphans it lingers in /proc.
  case $(printf '%s\\n' "$rest" | cut -d' ' -f1) in Z|X) actual=-;; esac
  cmd=$(tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null)
  echo "proc $f $pid $start $actual $cmd"
done
for t in /proc/net/tcp /proc/net/tcp6; do
  [ -r $t ] && awk 'NR > 1 && $4 == "0A" { split($2, a, ":"); print "listen " a[2] }' $t
done
exit 0`;

/**
 * Signal ($1; none if empty) the process group led by a recorded pid ($2), only if the pid still has the
 * recorded start time: prints `no-pidfile`, `gone` (not running: nothing sent) or `signalled <pid>`. With $3,
 * then wait up to $3 tenths of a second for it to end, on the site: `ended <pid>` or `running <pid>`, so a stop
 * is one round trip per wait instead of a poll each.
 */
export const SIGNAL_RECORDED = `sig=$1; pidfile=$2; wait=$3
{ read -r pid start _; } < "$pidfile" 2>/dev/null || { echo "no-pidfile"; exit 0; }
case $pid in ''|*[!0-9]*) echo "no-pidfile"; exit 0;; esac
running() {
  rest=$(sed 's/^.*) //' /proc/$pid/stat 2>/dev/null) || return 1
  [ "$(printf '%s\\n' "$rest" | cut -d' ' -f20)" = "$start" ] || return 1
  case $(printf '%s\\n' "$rest" | cut -d' ' -f1) in Z|X) return 1;; esac
}
running || { echo "gone"; exit 0; }
[ -n "$sig" ] && { kill -s "$sig" -- "-$pid" 2>/dev/null || kill -s "$sig" "$pid" 2>/dev/null; }
[ -z "$wait" ] && { echo "signalled $pid"; exit 0; }
i=0
while [ $i -lt "$wait" ]; do
  sleep 0.1; i=$((i + 1))
  running || { echo "ended $pid"; exit 0; }
done
echo "running $pid"`;

/** Write stdin to $2 (mode 600) inside directory $1, atomically. */
export const WRITE_FILE = `umask 077; mkdir -p "$1" && cat > "$2.tmp" && mv "$2.tmp" "$2"`;

/** TCP connect to $1:$2 and close: the probe run under proxychains. */
export const TCP_PROBE = `exec 3<>"/dev/tcp/$1/$2"`;

/**
 * Shared cvmfs mounts, reference-counted per node. The leases of one node live in $1/<node name>/<repo>/ (one
 * empty file per glidein; `.ours` marks a mount that a lease holder made) and change only under flock on
 * $1/<node name>/.lock, so concurrent glideins on one node, or a retry racing a mount its crashed attempt
 * left running, see one consistent state. Keyed by node name because the cvmfsexec directory may sit on a
 * file system shared by every node, while mounts are per node.
 *
 * MOUNT_LEASE repo=$2 id=$3 mountrepo=$4 target=$5: take this glidein's lease (before mounting, so a crash
 * leaves a lease the teardown finds), then mount unless it already is. Prints `mounted` (mounted now),
 * `shared <n>` (a lease holder's mount, n leases in all) or `external` (mounted by someone else: never ours to
 * unmount). A failed mountrepo drops the lease and the mark (nothing is mounted) and exits with mountrepo's
 * status, its output on stderr.
 * mountrepo runs without the lock's descriptor: the FUSE daemon it leaves behind must not hold the lock.
 */
export const MOUNT_LEASE = `set -u
base=$1/$(uname -n); dir=$base/$2
mkdir -p "$dir" || exit 1
exec 9>>"$base/.lock"
flock -w 120 9 || { echo "waited 120 s for the mount lock $base/.lock" >&2; exit 75; }
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
 * MOUNT_RELEASE repo=$2 id=$3 umountrepo=$4 target=$5: drop this glidein's lease; the last holder unmounts
 * what a lease holder mounted (never an external mount). Prints `not-held`, `still-used <n>`, `unmounted` or
 * `not-mounted`. A failed umountrepo keeps the lease, so that a retry tries again.
 */
export const MOUNT_RELEASE = `set -u
base=$1/$(uname -n); dir=$base/$2
[ -e "$dir/$3" ] || { echo not-held; exit 0; }
exec 9>>"$base/.lock"
flock -w 60 9 || { echo "waited 60 s for the mount lock $base/.lock" >&2; exit 75; }
rm -f "$dir/$3"
n=$(ls "$dir" | wc -l)
[ "$n" -gt 0 ] && { echo "still-used $n"; exit 0; }
if [ -e "$dir/.ours" ] && awk -v t="$5" '$2 == t { f = 1 } END { exit !f }' /proc/self/mounts; then
  out=$("$4" "$2" 2>&1 9>&-); rc=$?
  if [ $rc -ne 0 ]; then : > "$dir/$3"; printf '%s\\n' "$out" >&2; exit $rc; fi
  rm -f "$dir/.ours"; echo unmounted; exit 0
fi
rm -f "$dir/.ours"; echo not-mounted`;

/** The repositories this glidein ($2) holds a lease on, on this node (leases under $1, as above). */
export const LIST_LEASES = `for f in "$1/$(uname -n)"/*/"$2"; do [ -e "$f" ] && basename "$(dirname "$f")"; done; exit 0`;
