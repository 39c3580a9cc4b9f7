/**
 * Processes on the site, named by pid files that record "pid starttime": a pid alone can be reused by
 * another process after a crash; the pair cannot.
 */
import type { ProcessRef } from '../common/types';
import { runChecked, type Executor, type RunOptions } from '../remote/executor';
import { INSPECT_PROCESSES, SIGNAL_RECORDED, SPAWN_DETACHED } from '../remote/scripts';

export interface ProcessState {
  pidFile: string;
  /** The recorded process, if the pid file exists. */
  recorded?: ProcessRef;
  /** True when the recorded pid runs with the recorded start time. */
  alive: boolean;
  cmdline?: string;
}

/**
 * The one rule for "this glidein's tunnel is alive": the process its pid file names runs with the recorded
 * start time and is an ssh with a dynamic forward. Opening, monitoring and closing all decide by it.
 */
export function isTunnelProcess(proc: ProcessState | undefined): proc is ProcessState & { recorded: ProcessRef } {
  return !!proc?.alive && !!proc.recorded && /\bssh\b.*-[DR]/.test(proc.cmdline ?? '');
}

export interface SiteSnapshot {
  processes: Map<string, ProcessState>;
  listening: Set<number>;
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
  const result = await runChecked(
    exec,
    'inspecting processes',
    ['sh', '-c', INSPECT_PROCESSES, 'sh', ...pidFiles],
    opts,
  );
  return parseInspect(result.stdout);
}

export type SpawnResult = { started: ProcessRef } | { exitedAtOnce: number } | { stillWaiting: ProcessRef };

export interface SpawnOptions {
  log: string;
  pidFile: string;
  /** Return only once this text appears in the (fresh) log, within `seconds`. */
  awaitLog?: { marker: string; seconds: number };
  /** Without awaitLog: watch the process this long on the site, and report `exitedAtOnce` if it ends within it. */
  settleMs?: number;
}

/** Starts argv detached in its own session, output appended to `log`, and records it in `pidFile`. */
export async function spawnDetached(
  exec: Executor,
  argv: string[],
  files: SpawnOptions,
  opts: RunOptions,
): Promise<SpawnResult> {
  const settle = files.awaitLog ? 0 : tenths(files.settleMs ?? 0);
  const awaited = files.awaitLog
    ? [files.awaitLog.marker, String(files.awaitLog.seconds), '0']
    : ['', '0', String(settle)];
  const timeoutMs = files.awaitLog
    ? files.awaitLog.seconds * 1000 + 30_000
    : settle > 0
      ? settle * 100 + 30_000
      : opts.timeoutMs;
  const result = await runChecked(
    exec,
    `starting ${argv[0]}`,
    ['sh', '-c', SPAWN_DETACHED, 'sh', files.log, files.pidFile, ...awaited, ...argv],
    { ...opts, timeoutMs },
  );
  return parseSpawn(result.stdout);
}

/** SPAWN_DETACHED's answer: `started <pid> <starttime>`, `waiting <pid> <starttime>` or `exited <pid>`; anything else is refused. */
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

/** Sends a signal to the recorded process group; returns false if the recorded process is gone. */
export async function signalRecorded(
  exec: Executor,
  signal: 'TERM' | 'QUIT' | 'KILL',
  pidFile: string,
  opts: RunOptions,
): Promise<boolean> {
  const result = await runChecked(
    exec,
    `sending SIG${signal}`,
    ['sh', '-c', SIGNAL_RECORDED, 'sh', signal, pidFile],
    opts,
  );
  return result.stdout.startsWith('signalled');
}

export type WaitOutcome = { state: 'no-pidfile' | 'gone' } | { state: 'ended' | 'running'; pid: number };

/**
 * One round trip: sends `signal` (none if undefined) to the recorded process group, then waits on the site up
 * to `waitMs` for the process to end. `gone`: it was not running (nothing sent).
 */
export async function signalAndWait(
  exec: Executor,
  signal: 'TERM' | 'QUIT' | 'KILL' | undefined,
  pidFile: string,
  waitMs: number,
  opts: RunOptions,
): Promise<WaitOutcome> {
  const wait = tenths(waitMs);
  const result = await runChecked(
    exec,
    signal ? `sending SIG${signal}` : 'waiting for a process to end',
    ['sh', '-c', SIGNAL_RECORDED, 'sh', signal ?? '', pidFile, String(wait)],
    { ...opts, timeoutMs: wait * 100 + 30_000 },
  );
  const [state, pid] = result.stdout.trim().split(/\s+/);
  if (state === 'ended' || state === 'running') return { state, pid: Number(pid) };
  if (state === 'no-pidfile' || state === 'gone') return { state };
  throw new Error(`unexpected output from the stop script on ${exec.target}: ${result.stdout.trim().slice(0, 200)}`);
}

function tenths(ms: number): number {
  return Math.max(0, Math.ceil(ms / 100));
}

export async function tailFile(exec: Executor, file: string, lines: number, opts: RunOptions): Promise<string> {
  const result = await exec.run(['tail', '-n', String(lines), file], opts);
  return result.stdout.trim();
}
