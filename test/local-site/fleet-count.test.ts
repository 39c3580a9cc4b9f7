/**
 * GlideinFleet on a real dev server against the local test site: real LaunchGlideins started, replaced, backed
 * off and drained by the fleet, and a real Temporal Schedule running it. The local site holds one glidein at a
 * time (its profile's SOCKS port is fixed), so these fleets count one.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { WorkflowHandle } from '@temporalio/client';
import { GlideinFleet } from '../../src/workflows';
import {
  drainAllSignal,
  fleetStatusQuery,
  pauseSignal,
  resumeSignal,
  setCountUpdate,
  type FleetView,
} from '../../src/workflows/fleet-messages';
import { GlideinFleet as GlideinFleetAttribute, statusQuery } from '../../src/workflows/messages';
import { siteProcesses, SITE_PATHS } from '../../sandbox/local-site';
import { slotId } from '../../src/workflows/fleet';
import { upsertFleetSchedule } from '../../src/fleet-schedule';
import { localSiteWith } from '../../sandbox/sites';
import { temporalCli } from '../../sandbox/temporal';
import { useDevServer, waitFor } from '../support/workflow-harness';
import { EMPTY, footprint } from '../../sandbox/site-state';

const { withWorker, env } = useDevServer();
/** A fleet of `count` on the local site, as `temporal workflow start --type GlideinFleet` would start it. */
const startFleet = (taskQueue: string, fleet: string, count: number) =>
  env().client.workflow.start(GlideinFleet, {
    taskQueue,
    workflowId: `fleet-${fleet}`,
    args: [{ site: 'local', count, fleet }],
  });
const run = promisify(execFile);

const FLEET = {
  maxGlideins: 1,
  maxStarting: 1,
  startsPerMinute: 10,
  maxFailedStarts: 2,
  failureWindow: '10m',
  probeAfter: '4s',
  maxProbeDelay: '8s',
  reconcileEvery: '1s',
};
const SITES = localSiteWith((p) => {
  p.fleet = FLEET;
});
const SHARED = localSiteWith((p) => {
  p.fleet = { ...FLEET, maxGlideins: 3, maxStarting: 3 };
  delete p.tunnel.socksPort;
  p.tunnel.socksPorts = '1180-1189';
});
const BROKEN = localSiteWith((p) => {
  p.fleet = FLEET;
  p.container.image = '/tmp/glidein-local-site/site/images/missing.sif';
});

const status = (h: WorkflowHandle) => h.query(fleetStatusQuery);
const until = (h: WorkflowHandle, what: string, ok: (v: FleetView) => boolean, timeoutMs = 90_000) =>
  waitFor(
    what,
    async () => {
      const v = await status(h);
      return ok(v) && v;
    },
    timeoutMs,
  );

/** Ends a glidein on the site the way HTCondor ends by itself (SIGTERM: it invalidates its ad first). */
function endGlidein(pids: number[]): void {
  for (const pid of pids) process.kill(pid, 'SIGTERM');
}

describe('GlideinFleet', () => {
  it('keeps its count: starts one, replaces one killed on the site, holds if paused, drains at count 0', async () => {
    const fleet = `f${Date.now() % 1_000_000}`;
    const glidein = slotId(fleet, 1);
    await withWorker(SITES, async (w) => {
      const handle = await startFleet(w.taskQueue, fleet, 1);
      const first = await until(handle, 'a running glidein', (v) => v.running === 1 && v.phase === 'steady');
      expect((await footprint(glidein)).glideins).toHaveLength(1);
      const described = await env().client.workflow.getHandle(glidein).describe();
      expect(described.typedSearchAttributes.get(GlideinFleetAttribute)).toBe(fleet);
      // In the Web UI's list, the glidein names its fleet and slot.
      expect(await described.staticSummary()).toBe(
        `Glidein at local for the profile's lifetime · fleet ${fleet} slot 1`,
      );
      expect(await described.staticDetails()).toContain(`**Requested by:** GlideinFleet \`${fleet}\`, slot 1`);
      const firstRun = first.slots[0].runId;

      // Paused: a glidein that dies is not replaced.
      await handle.signal(pauseSignal);
      endGlidein((await footprint(glidein)).glideins);
      const paused = await until(
        handle,
        'the dead glidein gone, nothing started',
        (v) => v.running + v.starting === 0 && v.draining === 0,
      );
      expect(paused.held).toBe('starts are paused');
      expect(paused.phase).toBe('paused');

      // Resumed: replaced, in the same slot, by a new run; one glidein on the site.
      await handle.signal(resumeSignal);
      await until(handle, 'a replacement', (v) => v.running === 1 && v.slots[0].runId !== firstRun);
      expect((await footprint(glidein)).glideins).toHaveLength(1);
      expect((await status(handle)).failedInWindow).toBe(0);

      // Count 0: drained, gracefully, and nothing left on the site.
      const after = await handle.executeUpdate(setCountUpdate, { args: [0] });
      expect(after.desired).toBe(0);
      await until(handle, 'drained', (v) => v.running + v.starting + v.draining === 0);
      const result = await env().client.workflow.getHandle(glidein).result();
      expect(result.endReason).toBe('drained');
      await handle.cancel();
    });
    expect(await footprint(glidein)).toEqual(EMPTY);
  });

  it('fills a fleet of three on one worker node, each with its own SOCKS port; shrinks it newest first', async () => {
    const fleet = `m${Date.now() % 1_000_000}`;
    const ids = [1, 2, 3].map((slot) => slotId(fleet, slot));
    await withWorker(SHARED, async (w) => {
      const handle = await startFleet(w.taskQueue, fleet, 3);
      await until(handle, 'three running glideins', (v) => v.running === 3, 180_000);
      const ports = await Promise.all(ids.map(async (id) => socksPortOf(id)));
      expect(new Set(ports).size).toBe(3);
      for (const port of ports) expect(port).toBeGreaterThanOrEqual(1180);
      expect(sharedTunnels().sort()).toEqual([...ports].sort());
      for (const id of ids) expect((await footprint(id)).glideins).toHaveLength(1);
      expect(leasedPorts().sort()).toEqual([...ports].map(String).sort());

      // One killed on the site: replaced in its slot, with a port of its own again.
      // Replaced by a new glidein in a free slot (slot 2 itself is not free while its old glidein tears down).
      const runs = (v: FleetView) => v.slots.filter((s) => s.state === 'running').map((s) => s.runId);
      const before = runs(await status(handle));
      endGlidein((await footprint(ids[1])).glideins);
      await until(handle, 'a replacement', (v) => v.running === 3 && runs(v).some((r) => !before.includes(r)), 120_000);
      expect(sharedTunnels()).toHaveLength(3);

      // Down to one: the two newest drain, gracefully.
      await handle.executeUpdate(setCountUpdate, { args: [1] });
      const one = await until(handle, 'one left', (v) => v.running === 1 && v.draining === 0, 120_000);
      expect(one.slots.filter((s) => s.state === 'running')).toHaveLength(1);
      await handle.signal(drainAllSignal);
      expect((await handle.result()).endReason).toBe('drained');
    });
    // Every slot the fleet may have used (a replacement takes the lowest free one).
    for (let slot = 1; slot <= 6; slot++) expect(await footprint(slotId(fleet, slot))).toEqual(EMPTY);
    expect(sharedTunnels()).toEqual([]);
    expect(leasedPorts()).toEqual([]);
  });

  it('continues-as-new with its memory: the same glidein goes on, and no second one starts', async () => {
    const fleet = `c${Date.now() % 1_000_000}`;
    const glidein = slotId(fleet, 1);
    const sites = localSiteWith((p) => {
      p.fleet = { ...FLEET, historyEvents: 50 };
    });
    await withWorker(sites, async (w) => {
      const handle = await startFleet(w.taskQueue, fleet, 1);
      const running = await until(handle, 'a running glidein', (v) => v.running === 1);
      const glideinRun = running.slots[0].runId;
      await waitFor(
        'the fleet to continue-as-new',
        async () => (await handle.describe()).runId !== handle.firstExecutionRunId,
        90_000,
      );
      const after = await until(handle, 'a round of the new run', (v) => v.rounds > 0 && v.running === 1);
      expect(after.slots[0].runId).toBe(glideinRun);
      expect(await countRuns(glidein)).toBe(1);
      await handle.executeUpdate(setCountUpdate, { args: [0] });
      await until(handle, 'drained', (v) => v.running + v.starting + v.draining === 0);
      await handle.cancel();
    });
    expect(await footprint(glidein)).toEqual(EMPTY);
  });

  it('backs off on a lasting failure: stops starting, says why, probes one start at a time, leaves none', async () => {
    const fleet = `b${Date.now() % 1_000_000}`;
    const glidein = slotId(fleet, 1);
    await withWorker(BROKEN, async (w) => {
      const handle = await startFleet(w.taskQueue, fleet, 1);
      const backingOff = await until(handle, 'backing off', (v) => v.phase === 'backing-off');
      expect(backingOff.backoff?.why).toMatch(/2 failed starts .*ContainerStartFailed|image/);
      const attrs = (await handle.describe()).typedSearchAttributes;
      expect(attrs.get(GlideinFleetAttribute)).toBe(fleet);
      // Watch it for a while: without the back-off each failing start (a few seconds) would be followed by another.
      await new Promise((r) => setTimeout(r, 20_000));
      const runs = await countRuns(glidein);
      // Two failed starts, then probes 4 s, 8 s, 8 s … apart, each taking its own setup and teardown time.
      expect(runs).toBeGreaterThanOrEqual(3);
      expect(runs).toBeLessThanOrEqual(6);
      await handle.cancel();
      await waitFor('the last probe to end', async () => (await countRuns(glidein, 'Running')) === 0, 60_000);
    });
    expect(await footprint(glidein)).toEqual(EMPTY);
  });

  it('runs from a Schedule: skips while the fleet runs, pauses with the schedule, ends when deleted', async () => {
    const fleet = `s${Date.now() % 1_000_000}`;
    const glidein = slotId(fleet, 1);
    const scheduleId = `fleet-schedule-${fleet}`;
    await withWorker(SITES, async (w) => {
      const client = env().client;
      // Created exactly as the README shows, with the temporal CLI.
      await run(temporalCli(), [
        'schedule',
        'create',
        '--schedule-id',
        scheduleId,
        '--interval',
        '2s',
        '--overlap-policy',
        'Skip',
        '--workflow-id',
        `fleet-${fleet}`,
        '--type',
        'GlideinFleet',
        '--task-queue',
        w.taskQueue,
        '--input',
        JSON.stringify({ site: 'local', count: 1, fleet, scheduleId }),
        '--address',
        env().address,
        '--namespace',
        env().namespace ?? 'default',
      ]);
      // Creating it again updates it.
      expect(
        await upsertFleetSchedule(client, {
          scheduleId,
          taskQueue: w.taskQueue,
          every: '2s',
          request: { site: 'local', count: 1, fleet },
        }),
      ).toBe('updated');
      const schedule = client.schedule.getHandle(scheduleId);
      const fleetRun = await waitFor('the schedule to start the fleet', async () => {
        const running = (await schedule.describe()).info.runningActions;
        return running[0]?.workflow.workflowId;
      });
      const handle = client.workflow.getHandle(fleetRun);
      await until(handle, 'a running glidein', (v) => v.running === 1);
      await waitFor('a skipped action', async () => (await schedule.describe()).info.numActionsSkippedOverlap > 0);
      expect((await schedule.describe()).info.runningActions).toHaveLength(1);

      await schedule.pause('test');
      await until(handle, 'the fleet paused by its schedule', (v) => v.schedulePaused && v.phase === 'paused');
      expect((await footprint(glidein)).glideins).toHaveLength(1); // running glideins are left alone

      await schedule.delete();
      const result = await handle.result();
      expect(result.endReason).toMatch(/deleted/);
      expect((await footprint(glidein)).glideins).toHaveLength(1); // the glidein outlives the fleet run
      const g = client.workflow.getHandle(glidein);
      await g.signal('drain');
      expect(((await g.result()) as { endReason: string }).endReason).toBe('drained');
    });
    expect(await footprint(glidein)).toEqual(EMPTY);
  });
});

/** The SOCKS ports of the site's tunnels in the shared range. */
function sharedTunnels(): number[] {
  return siteProcesses()
    .map((p) => / -[DR] 127\.0\.0\.1:(11[89]\d) /.exec(p.cmdline)?.[1])
    .filter((p): p is string => !!p)
    .map(Number);
}

/** The port leases on the (one) worker node of the local site. */
function leasedPorts(): string[] {
  const dir = path.join(SITE_PATHS.workDir, '.ports', os.hostname());
  return existsSync(dir) ? readdirSync(dir).filter((f) => /^\d+$/.test(f)) : [];
}

async function socksPortOf(glideinId: string): Promise<number> {
  const s = await env().client.workflow.getHandle(glideinId).query(statusQuery);
  const tunnel = s.held.find((h) => h.kind === 'tunnel');
  return tunnel?.kind === 'tunnel' ? tunnel.socksPort : 0;
}

async function countRuns(workflowId: string, status?: string): Promise<number> {
  let n = 0;
  const query = `WorkflowId = '${workflowId}'${status ? ` AND ExecutionStatus = '${status}'` : ''}`;
  for await (const _ of env().client.workflow.list({ query })) n++;
  return n;
}
