/**
 * Fixed shell programs run with `sh -c <script> sh <args…>`. The scripts are constants; every value reaches
 * them as a positional argument, quoted by commandLine(). This is how a step does "look, then act" in one
 * round trip without ever building a shell string from input.
 */

/**
 * Start argv[5…] detached in its own session, output appended to $1, recorded as "pid starttime" in $2; print
 * `started <pid> <start>` or `exited <pid>`. With a marker ($3) and a wait in seconds ($4), the log is started
 * afresh and the script returns only once the marker appears in it (or the process ends, or the wait is over:
 * `waiting <pid> <start>`), so that what the process needs from this session (a forwarded agent) stays there
 * until it is done with it.
 */
export const SPAWN_DETACHED = `log=$1; pidfile=$2; marker=$3; wait=$4; shift 4
[ -n "$marker" ] && : > "$log"
setsid "$@" </dev/null >>"$log" 2>&1 &
pid=$!
stat=$(cat /proc/$pid/stat 2>/dev/null) || { echo "exited $pid"; exit 0; }
start=$(printf '%s\\n' "$stat" | sed 's/^.*) //' | cut -d' ' -f20)
printf '%s %s\\n' "$pid" "$start" > "$pidfile.tmp" && mv "$pidfile.tmp" "$pidfile"
[ -z "$marker" ] && { echo "started $pid $start"; exit 0; }
i=0
while [ $i -lt $((wait * 10)) ]; do
  grep -qF -- "$marker" "$log" && { echo "started $pid $start"; exit 0; }
  case $(sed 's/^.*) //' /proc/$pid/stat 2>/dev/null | cut -d' ' -f1) in ''|Z|X) echo "exited $pid"; exit 0;; esac
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

/** Signal the process group led by a recorded pid, only if the pid still has the recorded start time. */
export const SIGNAL_RECORDED = `sig=$1; pidfile=$2
{ read -r pid start _; } < "$pidfile" 2>/dev/null || { echo "no-pidfile"; exit 0; }
case $pid in ''|*[!0-9]*) echo "no-pidfile"; exit 0;; esac
stat=$(cat /proc/$pid/stat 2>/dev/null) || { echo "gone"; exit 0; }
rest=$(printf '%s\\n' "$stat" | sed 's/^.*) //')
actual=$(printf '%s\\n' "$rest" | cut -d' ' -f20)
[ "$actual" = "$start" ] || { echo "gone"; exit 0; }
case $(printf '%s\\n' "$rest" | cut -d' ' -f1) in Z|X) echo "gone"; exit 0;; esac
kill -s "$sig" -- "-$pid" 2>/dev/null || kill -s "$sig" "$pid" 2>/dev/null
echo "signalled $pid"`;

/** Write stdin to $2 (mode 600) inside directory $1, atomically. */
export const WRITE_FILE = `umask 077; mkdir -p "$1" && cat > "$2.tmp" && mv "$2.tmp" "$2"`;

/** Append a line to $1 unless it is already there. */
export const APPEND_UNIQUE = `mkdir -p "$(dirname "$1")" && { grep -qxF "$2" "$1" 2>/dev/null || printf '%s\\n' "$2" >> "$1"; }`;

/** Mount targets (second field of /proc/self/mounts), octal escapes left as the kernel writes them. */
export const LIST_MOUNTS = `cut -d' ' -f2 /proc/self/mounts`;

/** TCP connect to $1:$2 and close: the probe run under proxychains. */
export const TCP_PROBE = `exec 3<>"/dev/tcp/$1/$2"`;
