/**
 * TCP connections and exec channels on the site's sshds for 1, 10 and 100 concurrent glidein lifecycles
 * run through ONE SshPool (one worker process). Each lifecycle is the real thing, through the real activities
 * (bench/activity-lifecycle.ts): tunnel, outbound check, cvmfs, container, preload, glidein, registration, two
 * monitor checks, teardown — each with its own SOCKS port and glidein id `bench-conn-…`, all sharing one
 * cvmfsexec directory of the benchmark's own. Setup, monitoring and teardown are each started together.
 *
 * Counted from the sshd logs (LogLevel VERBOSE, the part written during the run): "Connection from … port P",
 * "Accepted publickey … port P", "Starting session … port P id I", "Close session … port P id I", attributed
 * to this process by the client ports its sockets had (sampled from /proc while the run went on), and the
 * worker node's by the ports the login sshd opened onwards for this process's jump. Max concurrent sessions
 * per connection is taken from the order in which sshd logged session starts and closes.
 * Target: 1 connection per host per worker process, never more than MaxSessions (10) sessions at once.
 *
 *   npx ts-node bench/ssh-connections.ts        env: BENCH_LIFECYCLES=1,10,100
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createActivities, type ActivityDeps } from '../src/activities';
import { sshExecutors } from '../src/activities/site-access';
import { SshPool } from '../src/remote/ssh';
import { SiteRegistry } from '../src/site/load';
import { ENDPOINTS, joinLocalSite, leaveLocalSite, SITE_DIR, SITE_PATHS } from '../sandbox/local-site';
import { ActivityLifecycle, Barrier } from './activity-lifecycle';
import {
  benchCvmfsexec,
  benchProcesses,
  benchSites,
  cleanUpBench,
  describeMachine,
  freePorts,
  machineState,
  table,
  TimedExecutor,
  writeResults,
  type CommandTiming,
} from './lib';
import { clientPorts, fingerprint, jumpedPorts, parseSshdLog, summarizeConnections } from './sockets';

const COUNTS = (process.env.BENCH_LIFECYCLES ?? '1,10,100')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => n > 0);
const MAX_SESSIONS = 10;
const LOGS = { login: path.join(SITE_DIR, 'login', 'sshd.log'), worker: path.join(SITE_DIR, 'worker', 'sshd.log') };

function logSize(file: string): number {
  return fs.statSync(file).size;
}
function readFrom(file: string, offset: number): string {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    fs.readSync(fd, buf, 0, buf.length, offset);
    return buf.toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

interface RunResult {
  lifecycles: number;
  ok: number;
  failed: number;
  retries: number;
  /** Retry reasons, counted (glidein-specific parts of the message blanked). */
  retried: Record<string, number>;
  errors: string[];
  wallSeconds: number;
  phaseSeconds: { setup: number; monitor: number; teardown: number };
  client: { connects: Record<string, number>; channels: { login: number; node: number } };
  login: SideCount;
  worker: SideCount;
  /**
   * Connections the glideins' own forward tunnels (ssh -D on the worker node, the site's key) opened to the login node.
   */
  tunnelConnections: number;
}

interface SideCount {
  /** New TCP connections in the log during the run, all origins. */
  connectionsInLog: number;
  /** Of those, this worker process's (for the worker node: opened by the login sshd for this process's jump). */
  ours: number;
  ourPorts: number[];
  /** Exec sessions on this process's connection(s). */
  sessions: number;
  maxConcurrentSessions: number;
  noMoreSessions: number;
  /** Connections not attributed to this process or its tunnels (other test runs, or unauthenticated). */
  other: number;
}

async function runOnce(n: number): Promise<RunResult> {
  const tag = `${Date.now().toString(36)}`;
  const ports = freePorts(n, 21_000);
  const cvmfsexecDir = await benchCvmfsexec(`conn-${n}`);
  const sitesDir = benchSites(
    ports.map((port, k) => ({
      name: `bench-conn-${k}`,
      change: (p) => {
        p.tunnel.socksPort = port;
        p.cvmfs.cvmfsexecDir = cvmfsexecDir;
        p.glidein.config.UPDATE_INTERVAL = '60';
      },
    })),
  );
  const pool = new SshPool();
  const timings: CommandTiming[] = [];
  const sink = (t: CommandTiming) => timings.push(t);
  const deps: ActivityDeps = {
    sites: new SiteRegistry(sitesDir),
    ssh: pool,
    executorsFor: (profile) => {
      const e = sshExecutors({ sites: deps.sites, ssh: pool }, profile);
      return { login: new TimedExecutor(e.login, sink), node: new TimedExecutor(e.node, sink) };
    },
  };
  const acts = createActivities(deps);
  const lifecycles = ports.map(
    (_, k) => new ActivityLifecycle(acts, { site: `bench-conn-${k}`, glideinId: `bench-conn-${tag}-${k}` }),
  );

  const logStart = { login: logSize(LOGS.login), worker: logSize(LOGS.worker) };
  const ourLogin = new Set<number>();
  const ourJumped = new Set<number>();
  const tunnelPorts = new Set<number>();
  const observe = () => {
    for (const p of clientPorts([process.pid], ENDPOINTS.login.host, ENDPOINTS.login.port)) ourLogin.add(p);
    for (const p of jumpedPorts(
      [...ourLogin],
      ENDPOINTS.login.host,
      ENDPOINTS.login.port,
      ENDPOINTS.worker.host,
      ENDPOINTS.worker.port,
    ))
      ourJumped.add(p);
  };
  const observeTunnels = () => {
    const pids = benchProcesses('bench-conn-', ports)
      .filter((p) => p.argv[0] === 'ssh')
      .map((p) => p.pid);
    for (const p of clientPorts(pids, ENDPOINTS.login.host, ENDPOINTS.login.port)) tunnelPorts.add(p);
  };
  const sampler = setInterval(observe, 1000);

  const t0 = performance.now();
  const phase = { setup: 0, monitor: 0, teardown: 0 };
  const setUp = new Barrier(n);
  const monitored = new Barrier(n);
  try {
    await Promise.all(
      lifecycles.map(async (lc) => {
        let ready = true;
        try {
          await lc.setup();
        } catch (err) {
          lc.fail(err);
          ready = false;
        }
        await setUp.arrive();
        if (phase.setup === 0) {
          phase.setup = performance.now() - t0;
          observe();
          observeTunnels();
        }
        if (ready) {
          try {
            await lc.monitor(2, 1000);
          } catch (err) {
            lc.fail(err);
          }
        }
        await monitored.arrive();
        if (phase.monitor === 0) phase.monitor = performance.now() - t0 - phase.setup;
        await lc.teardown();
      }),
    );
    observe();
  } finally {
    clearInterval(sampler);
  }
  const wall = performance.now() - t0;
  phase.teardown = wall - phase.setup - phase.monitor;
  await new Promise((r) => setTimeout(r, 300)); // let sshd write the last close lines
  const connects = pool.connectCounts();
  pool.close();
  const left = cleanUpBench({ idPrefix: `bench-conn-${tag}`, ports, cvmfsexecDir, sitesDir });
  if (left.processes || left.mounts)
    console.log(`  (clean-up removed ${left.processes} leftover processes, ${left.mounts} mounts)`);

  const siteKey = fingerprint(`${SITE_PATHS.siteKey}.pub`);
  const count = (file: string, ours: Set<number>, tunnels: Set<number>): SideCount & { tunnels: number } => {
    const events = parseSshdLog(readFrom(file, file === LOGS.login ? logStart.login : logStart.worker));
    const conns = summarizeConnections(events);
    const mine = [...conns.values()].filter((c) => ours.has(c.port));
    const tunnelConns = [...conns.values()].filter(
      (c) => tunnels.has(c.port) || (c.key === siteKey && !ours.has(c.port)),
    );
    return {
      connectionsInLog: conns.size,
      ours: mine.length,
      ourPorts: mine.map((c) => c.port),
      sessions: mine.reduce((a, c) => a + c.sessions, 0),
      maxConcurrentSessions: Math.max(0, ...mine.map((c) => c.maxConcurrentSessions)),
      noMoreSessions: events.filter((e) => e.kind === 'no-more-sessions').length,
      other: conns.size - mine.length - tunnelConns.length,
      tunnels: tunnelConns.length,
    };
  };
  const login = count(LOGS.login, ourLogin, tunnelPorts);
  const worker = count(LOGS.worker, ourJumped, new Set());
  const outcomes = lifecycles.map((l) => l.outcome);
  return {
    lifecycles: n,
    ok: outcomes.filter((o) => o.ok).length,
    failed: outcomes.filter((o) => !o.ok).length,
    retries: outcomes.reduce((a, o) => a + o.retries, 0),
    retried: countBy(
      outcomes.flatMap((o) => o.retried.map((r) => r.replace(/bench-conn-[a-z0-9-]+/g, '<id>').replace(/\d+/g, 'N'))),
    ),
    errors: outcomes.flatMap((o) => o.errors.map((e) => `${o.glideinId}: ${e}`)).slice(0, 20),
    wallSeconds: wall / 1000,
    phaseSeconds: { setup: phase.setup / 1000, monitor: phase.monitor / 1000, teardown: phase.teardown / 1000 },
    client: {
      connects,
      channels: {
        login: timings.filter((t) => !t.target.includes('via')).length,
        node: timings.filter((t) => t.target.includes('via')).length,
      },
    },
    login: withoutTunnels(login),
    worker: withoutTunnels(worker),
    tunnelConnections: login.tunnels,
  };
}

function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

function withoutTunnels({ tunnels: _tunnels, ...side }: SideCount & { tunnels: number }): SideCount {
  return side;
}

async function main(): Promise<void> {
  await joinLocalSite();
  const before = machineState();
  console.log(
    `connections and channels on the site's sshds, one SshPool, N concurrent lifecycles; ${describeMachine(before)}\n`,
  );
  const results: RunResult[] = [];
  try {
    for (const n of COUNTS) {
      console.log(`N=${n}: running…`);
      const r = await runOnce(n);
      results.push(r);
      console.log(
        `  ${r.ok}/${n} lifecycles ok, ${r.retries} retries, ${r.wallSeconds.toFixed(1)} s (setup ` +
          `${r.phaseSeconds.setup.toFixed(1)}, monitor ${r.phaseSeconds.monitor.toFixed(1)}, teardown ` +
          `${r.phaseSeconds.teardown.toFixed(1)})`,
      );
      for (const e of r.errors.slice(0, 5)) console.log(`  error: ${e}`);
      for (const [why, times] of Object.entries(r.retried)) console.log(`  retried ${times}×: ${why}`);
    }
  } finally {
    await leaveLocalSite();
  }
  const after = machineState();
  console.log();
  console.log(
    table(
      [
        'N',
        'ok',
        'worker→login conns (client/sshd)',
        'worker→node conns (client/sshd)',
        'exec channels login/node (client)',
        'sessions login/node (sshd)',
        'max concurrent sessions per conn',
        '"no more sessions"',
        'tunnel conns (ssh -D)',
        'other conns in logs',
      ],
      results.map((r) => {
        const loginKey = Object.keys(r.client.connects).find((k) => !k.includes('>')) ?? '';
        const nodeKey = Object.keys(r.client.connects).find((k) => k.includes('>')) ?? '';
        return [
          r.lifecycles,
          r.ok,
          `${r.client.connects[loginKey] ?? 0}/${r.login.ours}`,
          `${r.client.connects[nodeKey] ?? 0}/${r.worker.ours}`,
          `${r.client.channels.login}/${r.client.channels.node}`,
          `${r.login.sessions}/${r.worker.sessions}`,
          Math.max(r.login.maxConcurrentSessions, r.worker.maxConcurrentSessions),
          r.login.noMoreSessions + r.worker.noMoreSessions,
          r.tunnelConnections,
          r.login.other + r.worker.other,
        ];
      }),
    ),
  );
  const oneEach = results.every(
    (r) => r.login.ours === 1 && r.worker.ours === 1 && Object.values(r.client.connects).every((c) => c === 1),
  );
  const underMax = results.every(
    (r) =>
      Math.max(r.login.maxConcurrentSessions, r.worker.maxConcurrentSessions) <= MAX_SESSIONS &&
      r.login.noMoreSessions + r.worker.noMoreSessions === 0,
  );
  console.log(
    `\ntarget 1 connection per host per worker process: ${oneEach ? 'met' : 'MISSED'}; never more than ` +
      `MaxSessions (${MAX_SESSIONS}) at once: ${underMax ? 'met' : 'MISSED'}`,
  );
  console.log(`machine after: ${describeMachine(after)}`);
  const file = writeResults('ssh-connections', {
    bench: 'ssh-connections',
    machine: { before, after },
    target: { oneConnectionPerHost: oneEach, underMaxSessions: underMax, maxSessions: MAX_SESSIONS },
    results,
  });
  console.log(`wrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
