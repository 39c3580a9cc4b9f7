/**
 * Processes on the site, named by pid files that record "pid starttime": a pid alone can be reused by another
 * process after a crash; the pair cannot. Three scripts, each with its argv builder and the parser of its answer:
 * SPAWN_DETACHED starts and records a process, INSPECT_PROCESSES looks at recorded processes and listening ports,
 * SIGNAL_RECORDED signals a recorded process (only if it is still the one recorded) and waits for its end.
 */
import type { ProcessRef } from '../../common/types';
import { runChecked, type Executor, type RunOptions } from '../../remote/executor';
import { PROC_STAT } from './prelude';

/** The spawned child exits with this when it cannot record itself (so it never runs unrecorded). */
export const SPAWN_UNRECORDED_EXIT = 127;

/**
 * What SPAWN_DETACHED's child runs (as `sh -c`, inside the spawn's single-quoted `record`): record itself as
 * "pid starttime" in $1, atomically, then exec $2…. Exported for the syntax check; never run on its own.
 */
export const SPAWN_CHILD = `${PROC_STAT}proc_stat $$ || exit ${SPAWN_UNRECORDED_EXIT}
printf "%s %s\\n" $$ "$p_start" > "$1.tmp" && mv "$1.tmp" "$1" || exit ${SPAWN_UNRECORDED_EXIT}
shift; exec "$@"`;

/**
 * Start argv[7…] detached in its own session, output appended to $1, recorded as "pid starttime" in $2; print
 * `started <pid> <start>` or `exited <pid>`. Without a marker or a port, the process is watched for $5 tenths of a
 * second and reported `exited` if it ends within them (a start command that cannot run dies at once), so starting
 * and seeing it survive its start is one round trip. With a marker ($3) and a wait in seconds ($4), the log is
 * started afresh and the script returns only once the marker appears in it (or the process ends, or the wait is
 * over: `waiting <pid> <start>`), so that what the process needs from this session (a forwarded agent) stays
 * there until it is done with it. With a TCP port ($6) instead, it returns once the process lives and itself
 * listens on that port on this host (a forward tunnel's SOCKS port; a listener of anyone else's, a squatter's, is not
 * taken for it): the wait for a port done on the site, not polled over ssh. The child records itself in $2 ("pid
 * starttime", replacing the old record) before it execs the command, so a spawn whose script is killed half-way (an
 * aborted activity) never leaves a process behind that no pid file names. Always exits 0.
 */
export const SPAWN_DETACHED = `${PROC_STAT}umask 077
log=$1; pidfile=$2; marker=$3; wait=$4; settle=$5; port=$6; shift 6
[ -n "$marker" ] && : > "$log"
rm -f "$pidfile"
record='${SPAWN_CHILD}'
setsid sh -c "$record" sh "$pidfile" "$@" </dev/null >>"$log" 2>&1 &
pid=$!
i=0
while [ ! -s "$pidfile" ] && [ $i -lt 100 ]; do sleep 0.02; i=$((i + 1)); done
{ read -r _ start _; } < "$pidfile" 2>/dev/null || { echo "exited $pid"; exit 0; }
ended() { proc_stat "$pid" || return 0; case $p_state in ''|Z|X) return 0;; esac; return 1; }
i=0
if [ -z "$marker" ] && [ -z "$port" ]; then
  while [ $i -lt "$settle" ]; do
    sleep 0.1; i=$((i + 1))
    ended && { echo "exited $pid"; exit 0; }
  done
  echo "started $pid $start"; exit 0
fi
hex=$(printf '%04X' "$port" 2>/dev/null)
ready() {
  [ -n "$marker" ] && { grep -qF -- "$marker" "$log"; return; }
  for t in /proc/net/tcp /proc/net/tcp6; do
    [ -r $t ] || continue
    for ino in $(awk -v p="$hex" 'NR > 1 && $4 == "0A" { split($2, a, ":"); if (a[2] == p) print $10 }' $t); do
      ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF "socket:[$ino]" && return 0
    done
  done
  return 1
}
while [ $i -lt $((wait * 20)) ]; do
  ended && { echo "exited $pid"; exit 0; }
  ready && { echo "started $pid $start"; exit 0; }
  sleep 0.05; i=$((i + 1))
done
echo "waiting $pid $start"`;

/**
 * Report the processes named in pid files ("pid starttime") and the listening TCP sockets:
 *   proc <pidfile> <pid> <recorded start> <actual start or -> <cmdline with spaces>
 *   listen <port in hex>
 * A pid file that cannot be read shows as `proc <pidfile> - - - -`. Always exits 0.
 */
export const INSPECT_PROCESSES = `${PROC_STAT}for f; do
  { read -r pid start _; } < "$f" 2>/dev/null || { echo "proc $f - - - -"; continue; }
  case $pid in ''|*[!0-9]*) echo "proc $f - - - -"; continue;; esac
  proc_stat "$pid" || { echo "proc $f $pid $start - -"; continue; }
  actual=$p_start
  # A zombie (Z) or dead (X) process has ended; where nothing reaps orphans it lingers in /proc.
  case $p_state in Z|X) actual=-;; esac
  # One line whatever the argv holds (a newline in an argument would split the answer).
  cmd=$(tr '\\0\\n' '  ' < /proc/$pid/cmdline 2>/dev/null)
  printf '%s\\n' "proc $f $pid $start $actual $cmd"
done
for t in /proc/net/tcp /proc/net/tcp6; do
  [ -r $t ] && awk 'NR > 1 && $4 == "0A" { split($2, a, ":"); print "listen " a[2] }' $t
done
exit 0`;

/**
 * Signal ($1; none if empty) the process group led by a recorded pid ($2), only if the pid still has the
 * recorded start time: prints `no-pidfile`, `gone` (not running: nothing sent) or `signalled <pid>`. With $3,
 * then wait up to $3 tenths of a second for it to end, on the site: `ended <pid>` or `running <pid>`, so a stop
 * is one round trip per wait instead of a poll each. Always exits 0.
 */
export const SIGNAL_RECORDED = `${PROC_STAT}sig=$1; pidfile=$2; wait=$3
{ read -r pid start _; } < "$pidfile" 2>/dev/null || { echo "no-pidfile"; exit 0; }
case $pid in ''|*[!0-9]*) echo "no-pidfile"; exit 0;; esac
running() {
  proc_stat "$pid" || return 1
  [ "$p_start" = "$start" ] || return 1
  case $p_state in Z|X) return 1;; esac
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

// --- spawn ------------------------------------------------------------------------------------------------

export type SpawnResult = { started: ProcessRef } | { exitedAtOnce: number } | { stillWaiting: ProcessRef };

export interface SpawnOptions {
  log: string;
  pidFile: string;
  /** Return only once this text appears in the (fresh) log, within `seconds`. */
  awaitLog?: { marker: string; seconds: number };
  /** Return only once the process lives and this TCP port listens on the host it runs on, within `seconds`. */
  awaitListen?: { port: number; seconds: number };
  /**
   * Without awaitLog or awaitListen: watch the process this long on the site, and report `exitedAtOnce` if it ends
   * within it.
   */
  settleMs?: number;
}

export function spawnArgv(argv: readonly string[], files: SpawnOptions): string[] {
  const { awaitLog, awaitListen } = files;
  if (awaitListen && !(Number.isInteger(awaitListen.port) && awaitListen.port > 0 && awaitListen.port < 65_536))
    throw new Error(`a spawn cannot wait for port ${awaitListen.port}: not a TCP port`);
  const awaited = awaitLog
    ? [awaitLog.marker, String(awaitLog.seconds), '0', '']
    : awaitListen
      ? ['', String(awaitListen.seconds), '0', String(awaitListen.port)]
      : ['', '0', String(tenths(files.settleMs ?? 0)), ''];
  return ['sh', '-c', SPAWN_DETACHED, 'sh', files.log, files.pidFile, ...awaited, ...argv];
}

/** How long the spawn itself may take: its wait on the site, and time for the round trip. */
export function spawnTimeoutMs(files: SpawnOptions, otherwise?: number): number | undefined {
  const awaited = files.awaitLog ?? files.awaitListen;
  if (awaited) return awaited.seconds * 1000 + 30_000;
  const settle = tenths(files.settleMs ?? 0);
  return settle > 0 ? settle * 100 + 30_000 : otherwise;
}

/**
 * SPAWN_DETACHED's answer: `started <pid> <starttime>`, `waiting <pid> <starttime>` or `exited <pid>`; anything else is
 * refused.
 */
export function parseSpawn(stdout: string): SpawnResult {
  const words = stdout.trim().split(/\s+/);
  if (
    (words[0] === 'started' || words[0] === 'waiting') &&
    words.length === 3 &&
    /^[1-9]\d{0,9}$/.test(words[1]) &&
    /^\d{1,20}$/.test(words[2])
  ) {
    const ref = { pid: Number(words[1]), startTime: words[2] };
    return words[0] === 'started' ? { started: ref } : { stillWaiting: ref };
  }
  if (words[0] === 'exited' && words.length === 2 && /^[1-9]\d{0,9}$/.test(words[1]))
    return { exitedAtOnce: Number(words[1]) };
  throw new Error(`the spawn on the site answered ${JSON.stringify(stdout.slice(0, 200))}, not started/waiting/exited`);
}

/**
 * The process a spawn left running, if any: a `waiting` spawn (its log marker did not show in time) still
 * runs, and what it does decides (for a tunnel, whether its port listens), as for any other.
 */
export function spawnedProcess(result: SpawnResult): ProcessRef | undefined {
  if ('started' in result) return result.started;
  if ('stillWaiting' in result) return result.stillWaiting;
  return undefined;
}

/** Starts argv detached in its own session, output appended to `log`, and records it in `pidFile`. */
export async function spawnDetached(
  exec: Executor,
  argv: string[],
  files: SpawnOptions,
  opts: RunOptions,
): Promise<SpawnResult> {
  const result = await runChecked(exec, `starting ${argv[0]}`, spawnArgv(argv, files), {
    ...opts,
    timeoutMs: spawnTimeoutMs(files, opts.timeoutMs),
  });
  return parseSpawn(result.stdout);
}

// --- inspect ----------------------------------------------------------------------------------------------

export interface ProcessState {
  pidFile: string;
  /** The recorded process, if the pid file exists. */
  recorded?: ProcessRef;
  /** True when the recorded pid runs with the recorded start time. */
  alive: boolean;
  cmdline?: string;
}

export interface SiteSnapshot {
  processes: Map<string, ProcessState>;
  listening: Set<number>;
}

export function inspectArgv(pidFiles: readonly string[]): string[] {
  return ['sh', '-c', INSPECT_PROCESSES, 'sh', ...pidFiles];
}

export function parseInspect(stdout: string): SiteSnapshot {
  const processes = new Map<string, ProcessState>();
  const listening = new Set<number>();
  for (const line of stdout.split('\n')) {
    if (line.startsWith('listen ')) {
      listening.add(parseInt(line.slice(7).trim(), 16));
    } else if (line.startsWith('proc ')) {
      const [, pidFile, pid, start, actual, ...cmd] = line.split(' ');
      const recorded = pid !== '-' && start !== '-' ? { pid: Number(pid), startTime: start } : undefined;
      const alive = !!recorded && actual !== '-' && actual === start;
      processes.set(pidFile, { pidFile, recorded, alive, cmdline: alive ? cmd.join(' ').trim() : undefined });
    }
  }
  return { processes, listening };
}

/** One round trip: the state of every given pid file and the listening TCP ports of the node. */
export async function inspect(exec: Executor, pidFiles: string[], opts: RunOptions): Promise<SiteSnapshot> {
  const result = await runChecked(exec, 'inspecting processes', inspectArgv(pidFiles), opts);
  return parseInspect(result.stdout);
}

// --- signal -----------------------------------------------------------------------------------------------

export type Signal = 'TERM' | 'QUIT' | 'KILL';

export type SignalOutcome =
  { state: 'no-pidfile' | 'gone' } | { state: 'signalled'; pid: number } | { state: 'ended' | 'running'; pid: number };

/** `waitMs`: then wait on the site this long for the process to end (`ended` / `running` instead of `signalled`). */
export function signalArgv(signal: Signal | undefined, pidFile: string, waitMs?: number): string[] {
  return [
    'sh',
    '-c',
    SIGNAL_RECORDED,
    'sh',
    signal ?? '',
    pidFile,
    ...(waitMs === undefined ? [] : [String(tenths(waitMs))]),
  ];
}

export function parseSignal(stdout: string): SignalOutcome {
  const [state, pid, ...rest] = stdout.trim().split(/\s+/);
  if (rest.length === 0) {
    if ((state === 'no-pidfile' || state === 'gone') && pid === undefined) return { state };
    if ((state === 'signalled' || state === 'ended' || state === 'running') && /^[1-9]\d{0,9}$/.test(pid ?? ''))
      return { state, pid: Number(pid) };
  }
  throw new Error(`the signal script answered ${JSON.stringify(stdout.slice(0, 200))}`);
}

/** Sends a signal to the recorded process group; returns false if the recorded process is gone. */
export async function signalRecorded(
  exec: Executor,
  signal: Signal,
  pidFile: string,
  opts: RunOptions,
): Promise<boolean> {
  const result = await runChecked(exec, `sending SIG${signal}`, signalArgv(signal, pidFile), opts);
  return result.stdout.startsWith('signalled');
}

export type WaitOutcome = { state: 'no-pidfile' | 'gone' } | { state: 'ended' | 'running'; pid: number };

/**
 * One round trip: sends `signal` (none if undefined) to the recorded process group, then waits on the site up
 * to `waitMs` for the process to end. `gone`: it was not running (nothing sent).
 */
export async function signalAndWait(
  exec: Executor,
  signal: Signal | undefined,
  pidFile: string,
  waitMs: number,
  opts: RunOptions,
): Promise<WaitOutcome> {
  const result = await runChecked(
    exec,
    signal ? `sending SIG${signal}` : 'waiting for a process to end',
    signalArgv(signal, pidFile, waitMs),
    { ...opts, timeoutMs: tenths(waitMs) * 100 + 30_000 },
  );
  const unexpected = () =>
    new Error(`unexpected output from the stop script on ${exec.target}: ${result.stdout.trim().slice(0, 200)}`);
  let outcome: SignalOutcome;
  try {
    outcome = parseSignal(result.stdout);
  } catch {
    throw unexpected();
  }
  // With a wait the script answers how the wait ended, never just `signalled`.
  if (outcome.state === 'signalled') throw unexpected();
  return outcome;
}

function tenths(ms: number): number {
  return Math.max(0, Math.ceil(ms / 100));
}

export async function tailFile(exec: Executor, file: string, lines: number, opts: RunOptions): Promise<string> {
  const result = await exec.run(['tail', '-n', String(lines), file], opts);
  return result.stdout.trim();
}
