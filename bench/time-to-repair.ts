/**
 * Time to repair (issue 14, part 4), on the loopback site, at the default monitor interval (60 s) and at 10 s:
 *   repair: the tunnel's ssh process SIGKILLed on the site (t0), the workflow starting its reopen — the monitor
 *     has noticed (t1, the repair's openTunnel step's start, workflow time), the tunnel reopened with a new pid
 *     (t2, that step's end; the new pid checked on the site), and the glidein heard from again by the stand-in
 *     collector (t3: the ad's UpdateSequenceNumber past the one it held at t0, polled every 100 ms). The ad
 *     itself stays listed throughout (it expires only after 15 minutes unheard), so "registered again" is the
 *     first update that reaches the collector through the new tunnel, not the status query's registration.
 *     The kill comes after a random wait of 0 to 1 interval from the previous repair's end (or from monitoring),
 *     so detection is the rest of the monitor's sleep: about interval / 2 on average.
 *   drain: from the drain signal to everything released: the workflow closed, and the site holding nothing of
 *     the glidein (sandbox/site-state.ts's footprint: tunnel, condor_master, container instance, mounts,
 *     collector ad, work directory; and its cvmfs mount leases). The local site allocates no Slurm job.
 * One LaunchGlidein per interval repairs BENCH_RUNS times (a new one after MAX_TUNNEL_REPAIRS - 1 repairs), then
 * is drained: one drain sample per glidein. Figures are printed, never asserted.
 *
 *   flock /tmp/glidein-site.lock npx ts-node bench/time-to-repair.ts
 *       env: BENCH_RUNS (3 repairs per interval), BENCH_INTERVALS ("60,10": monitor intervals in seconds)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { MAX_TUNNEL_REPAIRS } from '../src/common/carried-state';
import type { StepOutcome } from '../src/common/types';
import { LaunchGlidein } from '../src/workflows';
import { drainSignal, statusQuery, type GlideinStatus } from '../src/workflows/messages';
import { collectorAds, joinLocalSite, leaveLocalSite, siteProcesses, waitFor } from '../sandbox/local-site';
import { createTestEnv, createTestWorker } from '../sandbox/temporal';
import { EMPTY, footprint, type GlideinFootprint } from '../sandbox/site-state';
import {
  benchCvmfsexec,
  benchSites,
  cleanUpBench,
  describeMachine,
  envInt,
  freePorts,
  machineState,
  num,
  sleep,
  stats,
  table,
  writeResults,
  type Stats,
} from './lib';

const RUNS = envInt('BENCH_RUNS', 3);
const INTERVALS_S = intervals(process.env.BENCH_INTERVALS ?? '60,10');
const ID_PREFIX = 'bench-repair-';
/** Repairs per glidein: one fewer than the workflow tolerates before it gives up (TunnelUnstable). */
const REPAIRS_PER_GLIDEIN = MAX_TUNNEL_REPAIRS - 1;
/** How often the drain looks at the site (waitFor's polls: every 100 ms too). */
const POLL_MS = 100;

function intervals(spec: string): number[] {
  const xs = spec.split(',').map((s) => s.trim());
  if (xs.length === 0 || xs.some((x) => !/^\d{1,4}$/.test(x) || Number(x) < 1))
    throw new Error(`BENCH_INTERVALS=${spec}: expected monitor intervals in whole seconds, comma-separated`);
  return xs.map(Number);
}

interface Repair {
  intervalS: number;
  workflowId: string;
  /** The random wait before the kill, from the end of the previous repair (or from monitoring). */
  waitMs: number;
  oldPid: number;
  newPid?: number;
  /** t1 - t0: the monitor's next check found the tunnel down and the workflow started to reopen it. */
  detectMs?: number;
  /** t2 - t1: the repair's openTunnel step. */
  reopenMs?: number;
  /** t3 - t2: the glidein's next update reaching the collector through the new tunnel. */
  reregisterMs?: number;
  /** t3 - t0. */
  totalMs?: number;
  error?: string;
}

interface Drain {
  intervalS: number;
  workflowId: string;
  endReason?: string;
  /** Drain signal → the workflow closed (its result). */
  closedMs?: number;
  /** Drain signal → the site holds nothing of the glidein. */
  siteClearMs?: number;
  /** The later of the two: everything released. */
  releasedMs?: number;
  /** Teardown steps and their durations (workflow time), in order. */
  teardown: Array<{ step: string; ms?: number }>;
  left?: string;
  error?: string;
}

/** What the site holds of one glidein: its footprint at the benchmark's port and mounts, and its mount leases. */
async function siteHolds(
  glideinId: string,
  where: { socksPort: number; cvmfsexecDir: string },
): Promise<GlideinFootprint & { leases: string[] }> {
  const fp = await footprint(glideinId, { socksPort: where.socksPort, cvmfsDist: `${where.cvmfsexecDir}/dist/cvmfs` });
  // <cvmfsexecDir>/.leases/<node>/<repository>/<glideinId> (src/site/scripts/leases.ts).
  const root = path.join(where.cvmfsexecDir, '.leases');
  const leases: string[] = [];
  for (const node of readdir(root))
    for (const repo of readdir(path.join(root, node)))
      if (fs.existsSync(path.join(root, node, repo, glideinId))) leases.push(`${node}/${repo}`);
  return { ...fp, leases };
}

function readdir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** What is left, in a few words ('' when nothing is). */
function leftOver(h: GlideinFootprint & { leases: string[] }): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries({ ...h, workDir: undefined }))
    if (Array.isArray(v) && v.length) parts.push(`${k} ${v.join(',')}`);
  if (h.workDir) parts.push('work directory');
  return parts.join('; ');
}

const isEmpty = (h: GlideinFootprint & { leases: string[] }) =>
  h.leases.length === 0 && JSON.stringify({ ...h, leases: undefined }) === JSON.stringify({ ...EMPTY });

/** The tunnel processes on the benchmark's SOCKS port. */
function tunnelPids(socksPort: number): number[] {
  const re = new RegExp(` -[DR] 127\\.0\\.0\\.1:${socksPort} `);
  return siteProcesses()
    .filter((p) => p.argv[0] === 'ssh' && re.test(p.cmdline))
    .map((p) => p.pid);
}

/** The sequence number of the glidein's ad as the collector last received it (undefined: not listed). */
async function adSequence(glideinId: string): Promise<number | undefined> {
  const [ad] = await collectorAds(`GlideinLaunchId == "${glideinId}"`);
  return ad ? Number(ad.UpdateSequenceNumber) : undefined;
}

const tunnelSteps = (s: { steps: StepOutcome[] }) => s.steps.filter((x) => x.step === 'openTunnel');

/** Starts a glidein and waits until it is monitoring and the collector has heard from it twice. */
async function launch(
  start: (id: string) => Promise<WorkflowHandle<typeof LaunchGlidein>>,
  id: string,
): Promise<WorkflowHandle<typeof LaunchGlidein>> {
  const handle = await start(id);
  const status = await waitFor(
    'monitoring',
    async () => {
      const s = await handle.query(statusQuery);
      if (s.phase === 'failed' || s.phase === 'done' || s.phase === 'cancelled')
        throw new Error(`${id} ended before monitoring: ${s.phase} ${s.endReason ?? ''}`);
      return s.phase === 'monitoring' && s;
    },
    180_000,
  );
  const first = await waitFor('the first update', () => adSequence(status.glideinId), 30_000);
  await waitFor('a second update', async () => ((await adSequence(status.glideinId)) ?? 0) > first, 30_000);
  return handle;
}

/** One repair: kill the tunnel after a random wait, and time the monitor, the reopen and the next update. */
async function repair(
  handle: WorkflowHandle<typeof LaunchGlidein>,
  intervalS: number,
  socksPort: number,
): Promise<Repair> {
  const waitMs = Math.round(Math.random() * intervalS * 1000);
  await sleep(waitMs);
  const before = await handle.query(statusQuery);
  const repairsBefore = tunnelSteps(before).length;
  const [oldPid, ...more] = tunnelPids(socksPort);
  const out: Repair = { intervalS, workflowId: handle.workflowId, waitMs, oldPid };
  if (oldPid === undefined || more.length)
    return { ...out, error: `tunnel pids before the kill: ${[oldPid, ...more]}` };
  const t0 = Date.now();
  process.kill(oldPid, 'SIGKILL');
  // Updates after the kill cannot reach the collector until the tunnel is back.
  const seq0 = (await adSequence(before.glideinId)) ?? 0;
  try {
    const step = await waitFor(
      'the repair',
      async () => {
        const s: GlideinStatus = await handle.query(statusQuery);
        const r = tunnelSteps(s)[repairsBefore];
        if (r?.status === 'failed') throw new Error(`the repair failed: ${r.error}`);
        if (s.phase !== 'monitoring') throw new Error(`the workflow left monitoring: ${s.phase} ${s.endReason ?? ''}`);
        return r?.status === 'ok' && r;
      },
      intervalS * 1000 + 120_000,
    );
    const t1 = Date.parse(step.startedAt);
    const t2 = t1 + (step.durationMs ?? NaN);
    await waitFor('the registration again', async () => ((await adSequence(before.glideinId)) ?? 0) > seq0, 60_000);
    const t3 = Date.now();
    const pids = tunnelPids(socksPort);
    return {
      ...out,
      newPid: pids[0],
      detectMs: t1 - t0,
      reopenMs: t2 - t1,
      reregisterMs: t3 - t2,
      totalMs: t3 - t0,
      error:
        pids.length !== 1 || pids[0] === oldPid
          ? `tunnel pids after the repair: ${pids.join(',') || 'none'}`
          : undefined,
    };
  } catch (err) {
    return { ...out, error: err instanceof Error ? err.message : String(err) };
  }
}

/** Drains the glidein and times the workflow's close and the site's clearing. */
async function drain(
  handle: WorkflowHandle<typeof LaunchGlidein>,
  intervalS: number,
  where: { socksPort: number; cvmfsexecDir: string },
): Promise<Drain> {
  const { glideinId } = await handle.query(statusQuery);
  const out: Drain = { intervalS, workflowId: handle.workflowId, teardown: [] };
  const t0 = Date.now();
  await handle.signal(drainSignal);
  let closedAt: number | undefined;
  const closed = handle.result().then(
    (r) => {
      closedAt = Date.now();
      out.endReason = r.endReason;
      out.teardown = teardownSteps(r.steps, t0);
    },
    (err: unknown) => {
      closedAt = Date.now();
      out.error = `the workflow failed: ${err instanceof Error ? err.message : String(err)}`;
    },
  );
  let clearAt: number | undefined;
  let last: Awaited<ReturnType<typeof siteHolds>> | undefined;
  while (Date.now() - t0 < 180_000 && (closedAt === undefined || clearAt === undefined)) {
    last = await siteHolds(glideinId, where);
    if (isEmpty(last)) clearAt ??= Date.now();
    else clearAt = undefined; // cleared, then something came back: not released
    if (closedAt === undefined || clearAt === undefined) await sleep(POLL_MS);
  }
  await Promise.race([closed, sleep(1_000)]);
  out.closedMs = closedAt === undefined ? undefined : closedAt - t0;
  out.siteClearMs = clearAt === undefined ? undefined : clearAt - t0;
  if (out.closedMs !== undefined && out.siteClearMs !== undefined)
    out.releasedMs = Math.max(out.closedMs, out.siteClearMs);
  if (clearAt === undefined && last) out.left = leftOver(last);
  return out;
}

/** The steps the drain set off (the teardown), with their durations. */
function teardownSteps(steps: StepOutcome[], drainedAt: number): Drain['teardown'] {
  return steps
    .filter((s) => Date.parse(s.startedAt) >= drainedAt)
    .map((s) => ({ step: `${s.step}${s.status === 'ok' ? '' : ` (${s.status})`}`, ms: s.durationMs }));
}

async function main(): Promise<void> {
  await joinLocalSite();
  const before = machineState();
  const tag = Date.now().toString(36);
  const [socksPort] = freePorts(1, 23_000);
  const cvmfsexecDir = await benchCvmfsexec('repair');
  const where = { socksPort, cvmfsexecDir };
  const siteOf = (s: number) => `bench-repair-${s}s`;
  const sitesDir = benchSites(
    INTERVALS_S.map((s) => ({
      name: siteOf(s),
      change: (p) => {
        p.tunnel.socksPort = socksPort;
        p.cvmfs.cvmfsexecDir = cvmfsexecDir;
        // The profile's defaults (60 s is the default interval; a report every 10 minutes), but for the interval.
        p.monitor = { interval: `${s}s` };
      },
    })),
  );
  const env = await createTestEnv();
  const w = await createTestWorker(env, sitesDir, `bench-repair-${tag}`);
  const repairs: Repair[] = [];
  const drains: Drain[] = [];
  try {
    console.log(
      `time to repair: ${RUNS} tunnel kills per monitor interval (${INTERVALS_S.map((s) => `${s} s`).join(', ')}), ` +
        `each after a random wait of 0 to 1 interval, then a drain per glidein; SOCKS port ${socksPort}; ` +
        `${describeMachine(before)}\n`,
    );
    await w.worker.runUntil(async () => {
      for (const intervalS of INTERVALS_S) {
        let n = 0;
        for (let g = 0; n < RUNS || g === 0; g++) {
          const id = `${ID_PREFIX}${tag}-${intervalS}s-${g}`;
          const handle = await launch(
            (wid) =>
              env.client.workflow.start(LaunchGlidein, {
                taskQueue: w.taskQueue,
                workflowId: wid,
                args: [{ site: siteOf(intervalS), lifetime: '1h' }],
              }),
            id,
          );
          for (let i = 0; i < REPAIRS_PER_GLIDEIN && n < RUNS; i++, n++) {
            const r = await repair(handle, intervalS, socksPort);
            repairs.push(r);
            console.log(
              `interval ${intervalS} s, kill ${n + 1} (after ${num(r.waitMs / 1000, 1)} s): ` +
                (r.error && r.totalMs === undefined
                  ? `FAILED: ${r.error}`
                  : `detect ${num(r.detectMs! / 1000, 2)} s, reopen ${num(r.reopenMs! / 1000, 2)} s, ` +
                    `re-register ${num(r.reregisterMs! / 1000, 2)} s, total ${num(r.totalMs! / 1000, 2)} s ` +
                    `(tunnel pid ${r.oldPid} → ${r.newPid})${r.error ? `; ${r.error}` : ''}`),
            );
            if (r.totalMs === undefined) break;
          }
          const d = await drain(handle, intervalS, where);
          drains.push(d);
          console.log(
            `interval ${intervalS} s, drain of ${id}: closed after ${num((d.closedMs ?? NaN) / 1000, 2)} s ` +
              `(${d.endReason ?? d.error}), ` +
              `site clear after ${num((d.siteClearMs ?? NaN) / 1000, 2)} s` +
              (d.left ? `; still on the site: ${d.left}` : ''),
          );
          if (repairs.at(-1)?.totalMs === undefined) break;
        }
      }
    });
  } finally {
    w.ssh.close();
    await env.teardown();
    const left = cleanUpBench({ idPrefix: ID_PREFIX, ports: [socksPort], cvmfsexecDir, sitesDir });
    if (left.processes || left.mounts)
      console.log(`clean-up removed ${left.processes} leftover processes, ${left.mounts} mounts`);
    await leaveLocalSite();
  }
  const after = machineState();
  report(repairs, drains, before, after);
}

function report(
  repairs: Repair[],
  drains: Drain[],
  before: ReturnType<typeof machineState>,
  after: ReturnType<typeof machineState>,
): void {
  const s = (xs: Array<number | undefined>): Stats => stats(xs.filter((x): x is number => x !== undefined));
  const row = (label: string, st: Stats): Array<string | number> => [
    label,
    st.n,
    num(st.median / 1000, 2),
    num(st.min / 1000, 2),
    num(st.max / 1000, 2),
  ];
  const byInterval = INTERVALS_S.map((intervalS) => {
    const rs = repairs.filter((r) => r.intervalS === intervalS && r.totalMs !== undefined);
    return {
      intervalS,
      failed: repairs.filter((r) => r.intervalS === intervalS && r.totalMs === undefined).length,
      wait: s(rs.map((r) => r.waitMs)),
      detect: s(rs.map((r) => r.detectMs)),
      reopen: s(rs.map((r) => r.reopenMs)),
      reregister: s(rs.map((r) => r.reregisterMs)),
      total: s(rs.map((r) => r.totalMs)),
    };
  });
  console.log('\n=== Time to repair: tunnel killed (SIGKILL) → noticed → reopened → glidein heard from again ===');
  console.log(
    table(
      ['monitor interval', 'what', 'N', 'median s', 'min s', 'max s'],
      byInterval.flatMap((b) =>
        [
          row('kill → monitor noticed (openTunnel started)', b.detect),
          row('noticed → tunnel reopened (new pid)', b.reopen),
          row('reopened → collector heard from the glidein', b.reregister),
          row('total: kill → registered again', b.total),
          row('(random wait before the kill)', b.wait),
        ].map((r) => [`${b.intervalS} s${b.failed ? ` (${b.failed} failed)` : ''}`, ...r]),
      ),
    ),
  );
  const released = s(drains.map((d) => d.releasedMs));
  console.log('\n=== Drain → everything released (workflow closed, nothing of the glidein on the site) ===');
  console.log(
    table(
      ['what', 'N', 'median s', 'min s', 'max s'],
      [
        row('drain → workflow closed', s(drains.map((d) => d.closedMs))),
        row('drain → site clear', s(drains.map((d) => d.siteClearMs))),
        row('drain → everything released', released),
      ],
    ),
  );
  const steps = new Map<string, number[]>();
  for (const d of drains)
    for (const t of d.teardown) if (t.ms !== undefined) steps.set(t.step, [...(steps.get(t.step) ?? []), t.ms]);
  console.log(
    `teardown steps (median ms): ${[...steps].map(([step, ms]) => `${step} ${num(stats(ms).median, 0)}`).join(', ')}`,
  );
  const unreleased = drains.filter((d) => d.releasedMs === undefined);
  if (unreleased.length)
    console.log(
      `NOT released: ` +
        `${unreleased.map((d) => `${d.workflowId}: ${d.error ?? ''} ${d.left ?? 'workflow still open'}`).join('; ')}`,
    );
  console.log(`\nmachine before: ${describeMachine(before)}`);
  console.log(`machine after:  ${describeMachine(after)}`);
  const file = writeResults('time-to-repair', {
    bench: 'time-to-repair',
    machine: { before, after },
    runs: RUNS,
    intervalsS: INTERVALS_S,
    repairsPerGlidein: REPAIRS_PER_GLIDEIN,
    summary: {
      byInterval,
      drain: { closed: s(drains.map((d) => d.closedMs)), siteClear: s(drains.map((d) => d.siteClearMs)), released },
    },
    repairs,
    drains,
  });
  console.log(`wrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
