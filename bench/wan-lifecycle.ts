/**
 * The lifecycle benchmark over a WAN-shaped link: toxiproxy (bench/toxiproxy.ts) between the worker's machine
 * and the loopback site's login node, adding a round trip of 0, 10 and 30 ms (BENCH_RTTS). Commands for the
 * worker node cross it too (the node is reached by an ssh jump through the login connection); the site's own
 * traffic (the SOCKS tunnel from the node to the login node, the chain to KIT) does not.
 *
 * At each RTT, a profile of its own (sites/local.yaml with login.port = the proxy's port and
 * login.knownHostsFile = the operator's known_hosts with the login node's entry renamed to the proxy's port;
 * no host key is ever accepted on first sight) and, interleaved A B C A B C:
 *   (A) LaunchGlidein on a dev server with a worker (one SshPool: one kept ssh2 connection per host);
 *   (B) bench/manual-lifecycle.sh: bash + OpenSSH ControlMaster, the same commands (bench/manual-plan.ts);
 *   (C) the same script with NAIVE=1: a new ssh connection per command (the naive script).
 * Before them, the ssh2 round trip of `true` on the login node through the proxy (SshPool, as
 * bench/ssh-roundtrip.ts). Prints per RTT the A/B/C table and A's per-step table, then a summary.
 * Targets (printed, never asserted): A/B ≤ 1.0 at 0 ms and ≤ 0.9 at 10 ms; A/C ≤ 0.25 at 10 ms; the ssh2 round
 * trip ≤ 1.1 × RTT + 2 ms.
 *
 *   flock /tmp/glidein-site.lock npx ts-node bench/wan-lifecycle.ts
 *       env: BENCH_RTTS ("0,10,30"), BENCH_RUNS (5), BENCH_WARMUP (1), BENCH_N (50 round trips per RTT)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createActivities } from '../src/activities';
import type { ClientChannel } from 'ssh2';
import { SshPool } from '../src/remote/ssh';
import { describeTarget, NO_SSH_EVENTS, SshLink } from '../src/remote/ssh-connect';
import { SiteRegistry } from '../src/site/load';
import type { SiteProfile } from '../src/site/profile';
import { createTestEnv, workflowBundle } from '../sandbox/temporal';
import { joinLocalSite, leaveLocalSite } from '../sandbox/local-site';
import {
  benchCvmfsexec,
  benchSites,
  cleanUpBench,
  describeMachine,
  envInt,
  freePorts,
  machineState,
  num,
  SITES_DIR,
  stats,
  table,
  timedActivities,
  writeResults,
  type Stats,
} from './lib';
import {
  closeControlMaster,
  pairRatios,
  PER_STEP_CAPTION,
  perRunA,
  perRunTable,
  perStep,
  perStepTable,
  runA,
  runB,
  summaryRow,
  SUMMARY_HEADERS,
  timedDeps,
  type Recorded,
  type RunA,
  type RunB,
} from './lifecycle-runs';
import { Toxiproxy, type LatencyProxy } from './toxiproxy';

const RTTS = rtts(process.env.BENCH_RTTS ?? '0,10,30');
const RUNS = envInt('BENCH_RUNS', 5);
const WARMUP = envInt('BENCH_WARMUP', 1);
const N = envInt('BENCH_N', 50);
const ID_PREFIX = 'bench-wan-';

/** Targets by RTT (ms): A/B, A/C. */
const RATIO_AB_TARGET: Record<number, number> = { 0: 1.0, 10: 0.9 };
const RATIO_AC_TARGET: Record<number, number> = { 10: 0.25 };
const roundTripTarget = (rtt: number) => 1.1 * rtt + 2;

function rtts(spec: string): number[] {
  const xs = spec.split(',').map((s) => s.trim());
  if (xs.length === 0 || xs.some((x) => !/^\d{1,4}$/.test(x)))
    throw new Error(`BENCH_RTTS=${spec}: expected round trips in whole ms, comma-separated (e.g. 0,10,30)`);
  return [...new Set(xs.map(Number))].sort((x, y) => x - y);
}

/**
 * The operator's known_hosts with the login node's entries (`[host]:port`, or `host` at port 22) renamed to
 * `[127.0.0.1]:<proxyPort>`, the host the worker now dials; other entries (the worker node's) as they are.
 * Throws if there is none to rename (a hashed entry cannot be): the key is never accepted on first sight.
 */
function knownHostsThroughProxy(text: string, login: { host: string; port: number }, proxyPort: number): string {
  const name = login.port === 22 ? login.host : `[${login.host}]:${login.port}`;
  const renamed = `[127.0.0.1]:${proxyPort}`;
  let found = 0;
  const lines = text.split('\n').map((line) => {
    const fields = line.trim().split(/\s+/);
    if (line.trim() === '' || line.trim().startsWith('#')) return line;
    const at = fields[0].startsWith('@') ? 1 : 0;
    const names = (fields[at] ?? '').split(',');
    if (!names.includes(name)) return line;
    found++;
    fields[at] = names.map((n) => (n === name ? renamed : n)).join(',');
    return fields.join(' ');
  });
  if (found === 0)
    throw new Error(`no plain known_hosts entry for ${name} to rename for the proxy (hashed entries cannot be)`);
  return lines.join('\n');
}

/**
 * The floor a transport that keeps a channel open could reach: `true` written to one `sh` kept running on the login
 * node over an ssh2 connection through the proxy, each command's end read back as a marker — one network round trip
 * per command, where an exec channel per command (SshPool) costs two. Measured only: the worker does not work so.
 */
async function keptChannelRoundTrips(profile: SiteProfile, n: number): Promise<number[]> {
  const target = {
    host: profile.login.host,
    port: profile.login.port,
    user: profile.login.user,
    identityFile: profile.login.identityFile,
    knownHostsFile: profile.login.knownHostsFile,
  };
  const link = new SshLink(target, describeTarget(target), {
    connectTimeoutMs: 15_000,
    keepaliveIntervalMs: 15_000,
    backoffMs: { initial: 500, max: 5_000 },
    log: () => undefined,
    events: NO_SSH_EVENTS,
  });
  try {
    const client = await link.connected();
    const shell = await new Promise<ClientChannel>((resolve, reject) =>
      client.exec('sh', (err, stream) => (err ? reject(err) : resolve(stream))),
    );
    let out = '';
    let waiting: (() => void) | undefined;
    shell.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('@0\n')) {
        out = '';
        waiting?.();
      }
    });
    const once = () =>
      new Promise<void>((resolve) => {
        waiting = resolve;
        shell.write('true; echo "@$?"\n');
      });
    for (let i = 0; i < 5; i++) await once();
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await once();
      samples.push(performance.now() - t0);
    }
    shell.end('exit\n');
    return samples;
  } finally {
    link.close();
  }
}

/** ssh2 round trips of `true` on the login node through the proxy: a fresh SshPool, 5 warm-up, then n. */
async function roundTrips(profile: SiteProfile, n: number): Promise<{ samples: number[]; connects: number }> {
  const pool = new SshPool();
  try {
    const login = pool.executor({
      host: profile.login.host,
      port: profile.login.port,
      user: profile.login.user,
      identityFile: profile.login.identityFile,
      knownHostsFile: profile.login.knownHostsFile,
    });
    for (let i = 0; i < 5; i++) await login.run(['true']);
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const r = await login.run(['true']);
      samples.push(performance.now() - t0);
      if (r.code !== 0) throw new Error(`true exited ${r.code}: ${r.stderr}`);
    }
    return { samples, connects: login.connects };
  } finally {
    pool.close();
  }
}

interface AtRtt {
  rttMs: number;
  proxy: LatencyProxy;
  site: string;
  roundTrip: Stats & { connects: number; target: number; met: boolean; keptChannel: Stats };
  /** A's workflow ids at this RTT start with it. */
  aPrefix: string;
  a: RunA[];
  b: RunB[];
  c: RunB[];
}

async function main(): Promise<void> {
  await joinLocalSite();
  const before = machineState();
  const tag = Date.now().toString(36);
  const base = await new SiteRegistry(SITES_DIR).get('local');
  const [apiPort, socksPort, ...proxyPorts] = freePorts(2 + RTTS.length, 22_000);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'glidein-bench-wan-'));
  const cvmfsexecDir = await benchCvmfsexec('wan');
  let sitesDir: string | undefined;
  let toxi: Toxiproxy | undefined;
  let env: TestWorkflowEnvironment | undefined;
  const sockets: string[] = [];
  const pool = new SshPool();
  try {
    console.log(
      `lifecycle over a WAN-shaped link (toxiproxy → login ${base.login.host}:${base.login.port}) at RTT ` +
        `${RTTS.join(', ')} ms: ` +
        `A (LaunchGlidein) vs B (bash + OpenSSH ControlMaster) vs C (a new ssh connection per command), ` +
        `${RUNS} runs each (+${WARMUP} warm-up), interleaved; ${describeMachine(before)}\n`,
    );
    toxi = await Toxiproxy.start(apiPort, path.join(work, 'toxiproxy.log'));
    const knownHosts = fs.readFileSync(base.login.knownHostsFile, 'utf8');
    const proxies = new Map<number, LatencyProxy>();
    for (const [i, rtt] of RTTS.entries()) {
      const port = proxyPorts[i];
      proxies.set(rtt, await toxi.latencyProxy(`wan-${rtt}ms`, port, `${base.login.host}:${base.login.port}`, rtt));
      fs.writeFileSync(path.join(work, `known_hosts-${port}`), knownHostsThroughProxy(knownHosts, base.login, port));
    }
    const siteOf = (rtt: number) => `bench-wan-${rtt}ms`;
    sitesDir = benchSites(
      RTTS.map((rtt) => ({
        name: siteOf(rtt),
        change: (p) => {
          const port = proxies.get(rtt)!.port;
          p.login.host = '127.0.0.1';
          p.login.port = port;
          p.login.knownHostsFile = path.join(work, `known_hosts-${port}`);
          p.tunnel.socksPort = socksPort;
          p.cvmfs.cvmfsexecDir = cvmfsexecDir;
        },
      })),
    );
    const registry = new SiteRegistry(sitesDir);

    // The ssh2 round trip straight to the login node, then at each RTT, before any lifecycle (the worker not
    // yet polling).
    const direct = stats((await roundTrips(base, N)).samples);
    console.log(
      `direct (no proxy): ssh2 round trip of \`true\` on the login node, median ${num(direct.median, 2)} ms ` +
        `(p90 ${num(direct.p90, 2)}, min ${num(direct.min, 2)}; N ${direct.n})`,
    );
    const roundTrip = new Map<number, AtRtt['roundTrip']>();
    for (const rtt of RTTS) {
      const r = await roundTrips(await registry.get(siteOf(rtt)), N);
      const s = stats(r.samples);
      const target = roundTripTarget(rtt);
      const kept = stats(await keptChannelRoundTrips(await registry.get(siteOf(rtt)), N));
      roundTrip.set(rtt, { ...s, connects: r.connects, target, met: s.median <= target, keptChannel: kept });
      console.log(
        `RTT ${rtt} ms: ssh2 round trip of \`true\` on the login node, median ${num(s.median, 2)} ms (p90 ` +
          `${num(s.p90, 2)}, min ${num(s.min, 2)}; N ${s.n}), ${num(s.median - direct.median, 2)} over direct; ` +
          `target ≤ ${num(target, 1)} ms; over a kept channel (the floor, not the worker's transport) ` +
          `${num(kept.median, 2)} ms`,
      );
    }
    console.log();

    env = await createTestEnv();
    const recorded: Recorded = { commands: [], activities: [] };
    const taskQueue = `bench-wan-${tag}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: await workflowBundle(),
      activities: timedActivities(createActivities(timedDeps(registry, pool, recorded)), (t) =>
        recorded.activities.push(t),
      ),
    });
    const client = env.client;

    const results: AtRtt[] = [];
    await worker.runUntil(async () => {
      for (const rtt of RTTS) {
        const site = siteOf(rtt);
        const profile = await registry.get(site);
        // B's ControlMaster was opened through this RTT's proxy: a socket of its own per RTT.
        const socket = path.join(work, `cm-${rtt}.sock`);
        sockets.push(socket);
        const aPrefix = `${ID_PREFIX}a-${tag}-${rtt}-`;
        const at: AtRtt = {
          rttMs: rtt,
          proxy: proxies.get(rtt)!,
          site,
          roundTrip: roundTrip.get(rtt)!,
          aPrefix,
          a: [],
          b: [],
          c: [],
        };
        for (let i = 0; i < WARMUP + RUNS; i++) {
          const warm = i < WARMUP;
          const ra = await runA(client, taskQueue, site, `${aPrefix}${i}`, recorded);
          const rb = await runB(profile, `${ID_PREFIX}b-${tag}-${rtt}-${i}`, socket, work);
          const rc = await runB(profile, `${ID_PREFIX}c-${tag}-${rtt}-${i}`, socket, work, { naive: true });
          console.log(
            `RTT ${rtt} ms, ${warm ? 'warm-up' : `run ${i - WARMUP + 1}`}: A ${num(ra.totalMs, 0)} ms (to ` +
              `monitoring ${num(ra.toMonitoringMs, 0)}, stop→result ${num(ra.stopToResultMs, 0)}), B ` +
              `${num(rb.totalMs, 0)} ms, C ${num(rc.totalMs, 0)} ms`,
          );
          if (!warm) {
            at.a.push(ra);
            at.b.push(rb);
            at.c.push(rc);
          }
        }
        await closeControlMaster(socket);
        results.push(at);
      }
    });
    const after = machineState();
    report(results, direct, recorded, before, after);
  } finally {
    pool.close();
    for (const socket of sockets) await closeControlMaster(socket);
    await env?.teardown();
    await toxi?.stop();
    const left = cleanUpBench({ idPrefix: ID_PREFIX, ports: [socksPort], cvmfsexecDir, sitesDir });
    if (left.processes || left.mounts)
      console.log(`clean-up removed ${left.processes} leftover processes, ${left.mounts} mounts`);
    fs.rmSync(work, { recursive: true, force: true });
    await leaveLocalSite();
  }
}

function report(
  results: AtRtt[],
  direct: Stats,
  recorded: Recorded,
  before: ReturnType<typeof machineState>,
  after: ReturnType<typeof machineState>,
): void {
  const rows = results.map((r) => {
    const sa = stats(r.a.map((x) => x.totalMs));
    const sb = stats(r.b.map((x) => x.totalMs));
    const sc = stats(r.c.map((x) => x.totalMs));
    const ab = pairRatios(r.a, r.b);
    const ac = pairRatios(r.a, r.c);
    const per = perStep(r.a, r.b, r.c);
    const run = perRunA(r.a, recorded.commands, r.aPrefix);
    return { r, sa, sb, sc, ab, ac, per, run };
  });

  for (const { r, sa, sb, sc, ab, ac, per, run } of rows) {
    console.log(
      `\n=== RTT ${r.rttMs} ms (toxiproxy ${r.proxy.listen} → ${r.proxy.upstream}, latency ` +
        `${Math.floor(r.rttMs / 2)} ms up, ${r.rttMs - Math.floor(r.rttMs / 2)} ms down) ===`,
    );
    console.log(
      table(SUMMARY_HEADERS, [
        summaryRow('A LaunchGlidein (start → monitoring → stop → result)', sa),
        summaryRow('B manual-lifecycle.sh (ControlMaster)', sb),
        summaryRow('C manual-lifecycle.sh NAIVE=1 (a new ssh connection per command)', sc),
        summaryRow('ratio A/B (per pair)', ab, 3),
        summaryRow('ratio A/C (per pair)', ac, 3),
      ]),
    );
    console.log();
    console.log(PER_STEP_CAPTION);
    console.log(perStepTable(per));
    console.log();
    console.log(perRunTable(run));
  }

  const mark = (met: boolean | undefined) => (met === undefined ? '-' : met ? 'met' : 'MISSED');
  /** Met, missed, or undefined when there is no value (no runs). */
  const meets = (value: number | undefined, target: number | undefined) =>
    value === undefined || target === undefined || Number.isNaN(value) ? undefined : value <= target;
  console.log('\n=== Summary (medians; ratios per pair) ===');
  console.log(
    table(
      [
        'RTT ms',
        'ssh2 true ms',
        'over direct',
        'target ms',
        '',
        'kept channel ms',
        'A ms',
        'B ms',
        'C ms',
        'A/B',
        'target',
        '',
        'A/C',
        'target',
        '',
      ],
      rows.map(({ r, sa, sb, sc, ab, ac }) => {
        const tab = RATIO_AB_TARGET[r.rttMs];
        const tac = RATIO_AC_TARGET[r.rttMs];
        return [
          r.rttMs,
          num(r.roundTrip.median, 2),
          num(r.roundTrip.median - direct.median, 2),
          num(r.roundTrip.target, 1),
          mark(r.roundTrip.met),
          num(r.roundTrip.keptChannel.median, 2),
          num(sa.median, 0),
          num(sb.median, 0),
          num(sc.median, 0),
          num(ab.median, 3),
          tab === undefined ? '-' : `≤ ${num(tab, 2)}`,
          mark(meets(ab.median, tab)),
          num(ac.median, 3),
          tac === undefined ? '-' : `≤ ${num(tac, 2)}`,
          mark(meets(ac.median, tac)),
        ];
      }),
    ),
  );
  const targets: Array<{ what: string; rtt: number; target: number; value: number | undefined; met?: boolean }> = [];
  for (const [rtt, target] of Object.entries(RATIO_AB_TARGET)) {
    const row = rows.find((x) => x.r.rttMs === Number(rtt));
    targets.push({ what: 'A/B', rtt: Number(rtt), target, value: row?.ab.median, met: meets(row?.ab.median, target) });
  }
  for (const [rtt, target] of Object.entries(RATIO_AC_TARGET)) {
    const row = rows.find((x) => x.r.rttMs === Number(rtt));
    targets.push({ what: 'A/C', rtt: Number(rtt), target, value: row?.ac.median, met: meets(row?.ac.median, target) });
  }
  for (const { r } of rows)
    targets.push({
      what: 'ssh2 round trip (ms)',
      rtt: r.rttMs,
      target: r.roundTrip.target,
      value: r.roundTrip.median,
      met: r.roundTrip.met,
    });
  console.log(`ssh2 round trip of \`true\` straight to the login node (no proxy): ${num(direct.median, 2)} ms median`);
  const [lo, hi] = [rows[0]?.r, rows[rows.length - 1]?.r];
  if (lo && hi && hi.rttMs > lo.rttMs)
    console.log(
      `ssh2 round trip grows by ` +
        `${num((hi.roundTrip.median - lo.roundTrip.median) / (hi.rttMs - lo.rttMs), 2)} ms per ms of RTT ` +
        `(${lo.rttMs} → ${hi.rttMs} ms): one network round trip per command would be 1`,
    );
  console.log();
  for (const t of targets)
    console.log(
      `target ${t.what} ≤ ${num(t.target, t.what.startsWith('ssh2') ? 1 : 2)} at ${t.rtt} ms: ` +
        (t.value === undefined
          ? 'not measured (RTT not in BENCH_RTTS)'
          : `${mark(t.met)} (${num(t.value, t.what.startsWith('ssh2') ? 2 : 3)})`),
    );
  console.log(`\nmachine before: ${describeMachine(before)}`);
  console.log(`machine after:  ${describeMachine(after)}`);
  const file = writeResults('wan-lifecycle', {
    bench: 'wan-lifecycle',
    machine: { before, after },
    rttsMs: results.map((r) => r.rttMs),
    roundTripDirect: direct,
    runs: RUNS,
    warmup: WARMUP,
    targets,
    byRtt: rows.map(({ r, sa, sb, sc, ab, ac, per, run }) => ({
      rttMs: r.rttMs,
      proxy: r.proxy,
      site: r.site,
      roundTrip: r.roundTrip,
      summary: { a: sa, b: sb, c: sc, ratioAB: ab, ratioAC: ac, perRunA: run },
      perStep: per,
      a: r.a,
      b: r.b,
      c: r.c,
    })),
  });
  console.log(`wrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
