/**
 * Shared by the benchmarks: statistics, tables, result files, site profiles for benchmarks (own SOCKS ports,
 * own cvmfsexec directory, own glidein ids `bench-…`), a timing Executor decorator, CPU/memory sampling of
 * processes, and a clean-up of whatever a benchmark left on the site. Measurements, not tests.
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parse, stringify } from 'yaml';
import { Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { CommandResult, Executor, RunOptions } from '../src/remote/executor';
import { commandLine } from '../src/remote/quote';
import { SITE_SCRIPTS } from '../src/site/scripts';
import { ROOT } from '../sandbox/temporal-cli';
import {
  allProcesses,
  localSite,
  SITE_PATHS,
  siteMounts,
  siteProcesses,
  type SiteProcess,
} from '../sandbox/local-site';

export { ROOT };
export const RESULTS_DIR = path.join(ROOT, 'bench', 'results');
export const SITES_DIR = path.join(ROOT, 'sites');

// ---------------------------------------------------------------------------------------------------
// Statistics and output

export interface Stats {
  n: number;
  min: number;
  median: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function stats(values: readonly number[]): Stats {
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    min: s[0] ?? NaN,
    median: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    max: s[s.length - 1] ?? NaN,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN,
  };
}

/** A number for a table: fixed decimals, or "-" when there is none. */
export function num(x: number | undefined | null, digits = 1): string {
  return x === undefined || x === null || Number.isNaN(x) ? '-' : x.toFixed(digits);
}

/** A plain text table, columns padded; numbers right-aligned. */
export function table(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const cells = [headers.map(String), ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  const numeric = headers.map(
    (_, c) => rows.length > 0 && rows.every((r) => /^[-+]?[\d.,]+%?$|^-$/.test(String(r[c] ?? ''))),
  );
  const line = (r: readonly string[]) =>
    r
      .map((cell, c) => (numeric[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join('  ')
      .trimEnd();
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** Writes bench/results/<name>.json and returns its path. */
export function writeResults(name: string, data: unknown): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  return file;
}

export function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v}: expected a number`);
  return n;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------------
// The machine

export interface MachineState {
  at: string;
  cores: number;
  loadavg: number[];
  /** pids of jest processes (other engineers' test runs). */
  jest: number[];
  memAvailableMb: number;
  memTotalMb: number;
}

export function machineState(): MachineState {
  const jest = allProcesses()
    .filter((p) => p.pid !== process.pid && p.argv.some((a) => /\bjest\b/.test(a)))
    .map((p) => p.pid);
  return {
    at: new Date().toISOString(),
    cores: os.cpus().length,
    loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
    jest,
    memAvailableMb: Math.round(meminfo('MemAvailable') / 1024),
    memTotalMb: Math.round(meminfo('MemTotal') / 1024),
  };
}

export function describeMachine(m: MachineState): string {
  return (
    `${m.cores} cores, load ${m.loadavg.join(' ')}, ` +
    `${m.jest.length ? `jest running (pids ${m.jest.join(',')})` : 'no jest running'}, ` +
    `${m.memAvailableMb} MB available`
  );
}

/** kB from /proc/meminfo. */
export function meminfo(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** CPU time (user+system, ms) of a process, or undefined when it is gone. */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** The whole machine's busy and total CPU time (ms, summed over cores), from /proc/stat. */
export function machineCpuMs(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3] + (f[4] ?? 0);
  return { busy: ((total - idle) * 1000) / CLOCK_TICKS, total: (total * 1000) / CLOCK_TICKS };
}

/** Resident and proportional set size (MB) of a process (PSS counts shared pages once over all sharers). */
export function memoryMb(pid: number): { rss: number; pss: number } | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const rss = Number(/^Rss:\s+(\d+)/m.exec(text)?.[1] ?? NaN);
    const pss = Number(/^Pss:\s+(\d+)/m.exec(text)?.[1] ?? NaN);
    return { rss: rss / 1024, pss: pss / 1024 };
  } catch {
    return undefined;
  }
}

/** Samples CPU% of some processes and of the machine between start() and stop(). */
export class CpuWindow {
  private startProc = new Map<number, number>();
  private startMachine = machineCpuMs();
  private startAt = performance.now();

  constructor(private readonly pids: () => number[]) {
    this.start();
  }

  start(): void {
    this.startAt = performance.now();
    this.startMachine = machineCpuMs();
    this.startProc = new Map(this.pids().map((p) => [p, cpuMs(p) ?? 0]));
  }

  /** CPU% of the given processes (100 = one core) and of the machine (100 = all cores), since start(). */
  read(): { seconds: number; processPct: number; machinePct: number } {
    const seconds = (performance.now() - this.startAt) / 1000;
    let used = 0;
    for (const [pid, before] of this.startProc) used += (cpuMs(pid) ?? before) - before;
    const m = machineCpuMs();
    const machinePct = ((m.busy - this.startMachine.busy) / Math.max(1, m.total - this.startMachine.total)) * 100;
    return { seconds, processPct: used / 10 / Math.max(seconds, 1e-3), machinePct };
  }
}

// ---------------------------------------------------------------------------------------------------
// Site profiles for benchmarks

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ProfileChange = (profile: Record<string, any>) => void;

/** A sites directory holding, for each entry, `<name>.yaml`: sites/local.yaml renamed, with `change` applied. */
export function benchSites(entries: ReadonlyArray<{ name: string; change?: ProfileChange }>): string {
  const base = fs.readFileSync(path.join(SITES_DIR, 'local.yaml'), 'utf8');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glidein-bench-sites-'));
  for (const { name, change } of entries) {
    const profile = parse(base);
    profile.name = name;
    change?.(profile);
    fs.writeFileSync(path.join(dir, `${name}.yaml`), stringify(profile));
  }
  return dir;
}

/**
 * A profile for many glideins on the one worker node: a SOCKS port each from `ports`, the benchmark's own
 * cvmfsexec directory, monitor.interval `interval` with production's reportEvery (10 m), HTCondor's default
 * startd update interval and room for a slow registration under load.
 */
export function manyGlideins(opts: {
  ports: { first: number; last: number };
  cvmfsexecDir: string;
  interval: string;
}): ProfileChange {
  return (p) => {
    delete p.tunnel.socksPort;
    p.tunnel.socksPorts = `${opts.ports.first}-${opts.ports.last}`;
    p.cvmfs.cvmfsexecDir = opts.cvmfsexecDir;
    p.monitor = { interval: opts.interval, reportEvery: '10m' };
    p.glidein.config.UPDATE_INTERVAL = '300';
    p.glidein.registrationTimeout = '10m';
  };
}

/** Local TCP ports in use (any address, any state). */
function takenPorts(): Set<number> {
  const taken = new Set<number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 3) taken.add(parseInt(f[1].split(':')[1], 16));
    }
  }
  return taken;
}

/** Ports that nothing listens on (TCP, any address), from `from` upwards. */
export function freePorts(count: number, from: number): number[] {
  const taken = takenPorts();
  const ports: number[] = [];
  for (let p = from; ports.length < count && p < 32_000; p++) if (!taken.has(p)) ports.push(p);
  if (ports.length < count) throw new Error(`not enough free ports from ${from}`);
  return ports;
}

/** `count` consecutive ports that nothing uses, the first at or above `from` (a profile's socksPorts range). */
export function freePortRange(count: number, from: number): { first: number; last: number } {
  const taken = takenPorts();
  let first = from;
  for (let p = from; p < 32_000; p++) {
    if (taken.has(p)) first = p + 1;
    else if (p - first + 1 === count) return { first, last: p };
  }
  throw new Error(`no ${count} consecutive free ports from ${from}`);
}

/**
 * A cvmfsexec directory of the benchmark's own, made on the worker node as user glidein: the site's mountrepo
 * and umountrepo and a link to the site's store, its own dist/cvmfs. Other test runs check that the site's
 * dist/cvmfs holds none of their mounts at the end; the benchmark's mounts never meet theirs.
 */
export async function benchCvmfsexec(tag: string): Promise<string> {
  const dir = path.join(SITE_PATHS.workDir, `bench-cvmfsexec-${tag}-${process.pid}`);
  const r = await localSite().ssh('worker', [
    'sh',
    '-c',
    'mkdir -p "$1/dist/cvmfs" && cp "$2" "$3" "$1/" && ln -sfn "$4" "$1/store"',
    'sh',
    dir,
    SITE_PATHS.mountrepo,
    SITE_PATHS.umountrepo,
    SITE_PATHS.cvmfsStore,
  ]);
  if (r.code !== 0) throw new Error(`cannot make ${dir}: ${r.stderr}`);
  return dir;
}

function environ(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/**
 * Processes of user glidein that belong to benchmark glideins (`bench-` ids, and a benchmark fleet's
 * `glidein-bench-…` ids) or to the given SOCKS ports.
 */
export function benchProcesses(idPrefix = 'bench-', ports: readonly number[] = []): SiteProcess[] {
  const portRe = ports.length ? new RegExp(` -[DR] 127\\.0\\.0\\.1:(${ports.join('|')}) `) : undefined;
  const names = [`_CONDOR_GLIDEIN_NAME=${idPrefix}`, `_CONDOR_GLIDEIN_NAME=glidein-${idPrefix}`];
  return siteProcesses().filter(
    (p) =>
      p.cmdline.includes(`[glidein-${idPrefix}`) ||
      (portRe !== undefined && p.argv[0] === 'ssh' && portRe.test(p.cmdline)) ||
      (p.cmdline.includes('condor_master') && environ(p.pid).some((v) => names.some((n) => v.startsWith(n)))),
  );
}

/**
 * Whatever a benchmark left behind (after a crash or a failed teardown): its processes killed, its mounts
 * unmounted, its cvmfsexec directory and glidein directories removed. Returns what it found.
 */
export function cleanUpBench(opts: {
  idPrefix: string;
  ports?: readonly number[];
  cvmfsexecDir?: string;
  sitesDir?: string;
}): { processes: number; mounts: number } {
  const procs = benchProcesses(opts.idPrefix, opts.ports ?? []);
  for (const p of procs) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  let mounts = 0;
  if (opts.cvmfsexecDir) {
    for (const m of siteMounts()
      .filter((x) => x.target.startsWith(`${opts.cvmfsexecDir}/`))
      .sort((a, b) => b.target.length - a.target.length)) {
      spawnSync('umount', ['-l', m.target], { stdio: 'ignore' });
      mounts++;
    }
    fs.rmSync(opts.cvmfsexecDir, { recursive: true, force: true });
  }
  for (const entry of safeReaddir(SITE_PATHS.workDir)) {
    if (entry.startsWith(opts.idPrefix) || entry.startsWith(`glidein-${opts.idPrefix}`))
      fs.rmSync(path.join(SITE_PATHS.workDir, entry), { recursive: true, force: true });
  }
  const instances = path.join(SITE_PATHS.home, '.apptainer', 'instances');
  for (const sub of ['app', 'logs']) {
    for (const host of safeReaddir(path.join(instances, sub))) {
      for (const user of safeReaddir(path.join(instances, sub, host))) {
        for (const entry of safeReaddir(path.join(instances, sub, host, user))) {
          if (entry.startsWith(`glidein-${opts.idPrefix}`))
            fs.rmSync(path.join(instances, sub, host, user, entry), { recursive: true, force: true });
        }
      }
    }
  }
  if (opts.sitesDir) fs.rmSync(opts.sitesDir, { recursive: true, force: true });
  return { processes: procs.length, mounts };
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------------------
// Timing the site commands

export interface CommandTiming {
  /** The activity the command ran in (from the activity context), if any. */
  workflowId?: string;
  runId?: string;
  activityId?: string;
  activityType?: string;
  argv0: string;
  /** A short name for what the command is (the script or program). */
  what: string;
  target: string;
  /** performance.timeOrigin-relative ms. */
  start: number;
  end: number;
  code: number | null | 'error';
  /** Bytes to the site: the command line as sent (commandLine(), env included) and its stdin. */
  sentBytes: number;
  /** Bytes back: stdout and stderr (as kept by the executor; 0 when the command could not run). */
  receivedBytes: number;
}

/**
 * The site scripts by their text: `inspect`, `spawn`, `signal`, `write-file`, else the constant's name in kebab case.
 */
const SCRIPT_NAMES = new Map<string, string>(
  Object.entries(SITE_SCRIPTS).map(([name, script]) => [
    script,
    ({ INSPECT_PROCESSES: 'inspect', SPAWN_DETACHED: 'spawn', SIGNAL_RECORDED: 'signal' } as Record<string, string>)[
      name
    ] ?? name.toLowerCase().replace(/_/g, '-'),
  ]),
);

/** Names a command by the program it runs, or by its fixed script for `sh -c <script>`. */
export function commandName(argv: readonly string[]): string {
  if ((argv[0] === 'sh' || argv[0] === 'bash') && argv[1] === '-c') {
    const script = argv[2] ?? '';
    const known = SCRIPT_NAMES.get(script);
    if (known) return known;
    if (script.startsWith('for f; do')) return 'inspect';
    if (script.startsWith('log=$1')) return 'spawn';
    if (script.startsWith('sig=$1')) return 'signal';
    if (script.startsWith('umask 077')) return 'write-file';
    if (script.startsWith('mkdir -p "$(dirname')) return 'append-unique';
    if (script.startsWith("cut -d' '")) return 'list-mounts';
    return 'sh-script';
  }
  const base = path.basename(argv[0]);
  if (base === 'apptainer' || base === 'singularity')
    return (
      `${base} ${argv[1] === 'instance' ? `instance ${argv[2]}` : argv[1]}` +
      (argv[1] === 'exec' ? ` ${path.basename(argv[3] ?? '')}` : '')
    );
  return base;
}

/** An Executor that times every run() of another and reports it, tagged with the activity it ran in. */
export class TimedExecutor implements Executor {
  constructor(
    private readonly inner: Executor,
    private readonly sink: (t: CommandTiming) => void,
  ) {}

  get target(): string {
    return this.inner.target;
  }

  async run(argv: readonly string[], options?: RunOptions): Promise<CommandResult> {
    let info: ReturnType<typeof Context.current>['info'] | undefined;
    try {
      info = Context.current().info;
    } catch {
      info = undefined;
    }
    const sentBytes =
      Buffer.byteLength(commandLine(argv, options?.env)) + Buffer.byteLength(options?.stdin ?? '', 'utf8');
    const start = performance.now();
    let code: CommandTiming['code'] = 'error';
    let receivedBytes = 0;
    try {
      const result = await this.inner.run(argv, options);
      code = result.code;
      receivedBytes = Buffer.byteLength(result.stdout) + Buffer.byteLength(result.stderr);
      return result;
    } finally {
      this.sink({
        workflowId: info?.workflowExecution?.workflowId,
        runId: info?.workflowExecution?.runId,
        activityId: info?.activityId,
        activityType: info?.activityType,
        argv0: argv[0],
        what: commandName(argv),
        target: this.inner.target,
        start,
        end: performance.now(),
        code,
        sentBytes,
        receivedBytes,
      });
    }
  }
}

/** Wraps every activity function so its wall time (in this worker) is reported, tagged like the commands. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function timedActivities<T extends Record<string, (...args: any[]) => Promise<unknown>>>(
  activities: T,
  sink: (t: {
    workflowId?: string;
    runId?: string;
    activityId?: string;
    activityType: string;
    start: number;
    end: number;
    ok: boolean;
  }) => void,
): T {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    out[name] = async (...args: unknown[]) => {
      const info = Context.current().info;
      const start = performance.now();
      let ok = false;
      try {
        const r = await fn(...args);
        ok = true;
        return r;
      } finally {
        sink({
          workflowId: info.workflowExecution?.workflowId,
          runId: info.workflowExecution?.runId,
          activityId: info.activityId,
          activityType: name,
          start,
          end: performance.now(),
          ok,
        });
      }
    };
  }
  return out as T;
}

/** The operator's login-node target, as the shipped profile names it. */
export const LOGIN_TARGET = {
  host: '127.0.0.1',
  port: 2201,
  user: 'glidein',
  identityFile: SITE_PATHS.operatorKey,
  knownHostsFile: SITE_PATHS.operatorKnownHosts,
};

/** OpenSSH client options for the operator's key and known_hosts (no user config). */
export function opensshOptions(): string[] {
  return [
    '-F',
    '/dev/null',
    '-i',
    SITE_PATHS.operatorKey,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${SITE_PATHS.operatorKnownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
  ];
}

/** Waits until the machine is quiet (load < 1, no jest) for at most maxMs; returns the state it ended in. */
export async function waitForQuiet(
  maxMs: number,
  log: (s: string) => void = () => undefined,
): Promise<MachineState & { quiet: boolean }> {
  const until = Date.now() + maxMs;
  for (;;) {
    const m = machineState();
    const quiet = m.loadavg[0] < 1 && m.jest.length === 0;
    if (quiet || Date.now() >= until) return { ...m, quiet };
    log(`waiting for a quiet machine: ${describeMachine(m)}`);
    await sleep(30_000);
  }
}

// ---------------------------------------------------------------------------------------------------
// The fleet worker process (bench/fleet-worker.ts)

const BUILD_DIR = path.join(ROOT, 'bench', '.build');

/**
 * The worker runs as production does, compiled (no ts-node, no TypeScript compiler in its memory) with the
 * prebuilt workflow bundle: bench/fleet-worker.ts and what it imports go to bench/.build.
 */
export async function buildWorker(): Promise<string> {
  const built = spawnSync(
    process.execPath,
    [require.resolve('typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.bench.json')],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (built.status !== 0) throw new Error(`compiling the fleet worker failed:\n${built.stdout}${built.stderr}`);
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('../src/workflows'),
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
  });
  fs.writeFileSync(path.join(BUILD_DIR, 'src', 'workflow-bundle.js'), code);
  return path.join(BUILD_DIR, 'bench', 'fleet-worker.js');
}

/**
 * Starts the built fleet worker (bench/fleet-worker.ts) for one task queue and sites directory; resolves when it is
 * polling.
 */
export function startWorker(
  workerScript: string,
  env: TestWorkflowEnvironment,
  opts: { sitesDir: string; taskQueue: string; metricsPort?: number; slots?: number },
): Promise<ChildProcess> {
  const child = fork(workerScript, [], {
    execArgv: [],
    cwd: ROOT,
    env: {
      ...process.env,
      BENCH_TEMPORAL_ADDRESS: env.address,
      BENCH_NAMESPACE: env.namespace ?? 'default',
      BENCH_TASK_QUEUE: opts.taskQueue,
      BENCH_SITES_DIR: opts.sitesDir,
      BENCH_METRICS_ADDRESS: opts.metricsPort ? `127.0.0.1:${opts.metricsPort}` : '',
      BENCH_ACTIVITY_SLOTS: opts.slots ? String(opts.slots) : '',
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { type: string }) =>
      m.type === 'ready' ? resolve(child) : reject(new Error(`worker said ${m.type}`)),
    );
    child.once('exit', (code) => reject(new Error(`the fleet worker exited with ${code}`)));
  });
}

/** Sends the worker a message and resolves with its first answer of the given type. */
export function ask<T>(child: ChildProcess, message: object, type: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string }) => {
      if (m.type !== type) return;
      child.off('message', on);
      resolve(m as T);
    };
    child.on('message', on);
    child.send(message);
  });
}

/** sshd session processes (not the listeners): `sshd: glidein…`. */
export function sshdSessions(): number[] {
  return allProcesses()
    .filter((p) => p.cmdline.startsWith('sshd: ') && !p.cmdline.includes('[listener]'))
    .map((p) => p.pid);
}

/** The dev server's processes (`temporal server start-dev`). */
export function serverPids(): number[] {
  return allProcesses()
    .filter((p) => /(^|\/)temporal$/.test(p.argv[0] ?? '') && p.argv.includes('start-dev'))
    .map((p) => p.pid);
}
