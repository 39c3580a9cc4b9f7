/**
 * GlideinFleet on a real dev server against the in-memory fake site: its real LaunchGlideins started, sharing one
 * worker node with a SOCKS port each, replaced, drained; a persistent failure backing off. Asserts on the site
 * (processes, port leases) and on the fleet's status.
 */
import '../support/fake-site-runtime';
import type { WorkflowHandle } from '@temporalio/client';
import { FAKE_SITE_DIR, fakeProfile } from '../../sandbox/fake-site';
import type { GlideinActivities } from '../../src/activities';
import { GlideinFleet } from '../../src/workflows';
import { slotId } from '../../src/workflows/fleet';
import { drainAllSignal, fleetStatusQuery, setCountUpdate, type FleetView } from '../../src/workflows/fleet-messages';
import { statusQuery } from '../../src/workflows/messages';
import { waitFor } from '../support/workflow-harness';
import { useFakeSiteServer } from '../support/fake-site-harness';

const { withFakeSite, env } = useFakeSiteServer();
const WORK_DIR = `${FAKE_SITE_DIR}/site/work`;

function fleetProfile(fleet: Record<string, unknown> = {}): Record<string, any> {
  const profile = fakeProfile();
  delete profile.tunnel.socksPort;
  profile.tunnel.socksPorts = '1080-1089';
  profile.fleet = {
    maxGlideins: 3,
    maxStarting: 3,
    startsPerMinute: 30,
    maxFailedStarts: 2,
    failureWindow: '10m',
    probeAfter: '3s',
    maxProbeDelay: '6s',
    reconcileEvery: '1s',
    idleTime: '0s',
    ...fleet,
  };
  return profile;
}

let fleets = 0;
const fleetName = () => `fast${Date.now().toString(36)}${++fleets}`;
/** A new fleet of `count` on the fake site's profile `site`, as `temporal workflow start --type GlideinFleet` would. */
async function startFleet(taskQueue: string, site: string, count: number) {
  const fleet = fleetName();
  const handle = await env().client.workflow.start(GlideinFleet, {
    taskQueue,
    workflowId: `fleet-${fleet}`,
    args: [{ site, count, fleet }],
  });
  return { fleet, handle };
}

/** Waits for the fleet's status to satisfy `ok`; on a timeout, says where it stood. */
async function until(h: WorkflowHandle, what: string, ok: (v: FleetView) => boolean, timeoutMs = 40_000) {
  let last: FleetView | undefined;
  try {
    return await waitFor(
      what,
      async () => {
        last = await h.query(fleetStatusQuery);
        return ok(last) && last;
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; the fleet: ${JSON.stringify(last)}`);
  }
}

const runningRuns = (v: FleetView) => v.slots.filter((s) => s.state === 'running').map((s) => s.runId);

describe('GlideinFleet on the fake site', () => {
  it('fills three on one node with a SOCKS port each, replaces one that exits, shrinks, leaves nothing', async () => {
    await withFakeSite(fleetProfile(), async ({ site, name, taskQueue }) => {
      const { fleet, handle } = await startFleet(taskQueue, name, 3);
      await until(handle, 'three running', (v) => v.running === 3);
      const ports = site.tunnels().map((t) => t.socksPort);
      expect(new Set(ports).size).toBe(3);
      expect(site.footprint(WORK_DIR).leases.filter((l) => l.includes(':port '))).toHaveLength(3);

      // A new glidein in a free slot (slot 2 itself while its old one is still tearing down is not free).
      const before = runningRuns(await handle.query(fleetStatusQuery));
      site.exitGlidein(slotId(fleet, 2));
      await until(handle, 'a replacement', (v) => v.running === 3 && runningRuns(v).some((r) => !before.includes(r)));
      expect(site.tunnels()).toHaveLength(3);

      await handle.executeUpdate(setCountUpdate, { args: [1] });
      await until(handle, 'one left', (v) => v.running === 1 && v.draining === 0);
      await handle.signal(drainAllSignal);
      expect((await handle.result()).endReason).toBe('drained');
      const left = site.footprint(WORK_DIR);
      expect(left.processes).toEqual([]);
      expect(left.instances).toEqual([]);
      expect(left.leases).toEqual([]);
    });
  });

  it('follows the demand probe within its count, and a broken probe keeps the last number, never drains', async () => {
    const file = `${FAKE_SITE_DIR}/site/home/demand`;
    const profile = fleetProfile();
    profile.fleet.demand = { command: ['cat', file] };
    await withFakeSite(profile, async ({ site, name, taskQueue }) => {
      const wants = (n: number | undefined) =>
        n === undefined ? site.hosts.login.files.delete(file) : site.hosts.login.files.set(file, `${n}\n`);
      wants(1);
      const { handle } = await startFleet(taskQueue, name, 3);
      await until(handle, 'one, as demanded', (v) => v.running === 1 && v.demand === 1);
      wants(2);
      await until(handle, 'two', (v) => v.running === 2 && v.target === 2);
      wants(undefined);
      const broken = await until(handle, 'the probe broken', (v) => v.demandError !== undefined);
      expect(broken.demandError).toMatch(/fleet.demand cat exited with 1/);
      await new Promise((r) => setTimeout(r, 2_500));
      expect(await handle.query(fleetStatusQuery)).toMatchObject({ running: 2, target: 2, draining: 0 });
      wants(0);
      await until(handle, 'drained to the demand', (v) => v.running + v.starting + v.draining === 0 && v.target === 0);
      await handle.signal(drainAllSignal);
      await handle.result();
      expect(site.footprint(WORK_DIR).processes).toEqual([]);
    });
  });

  it('under a lower demand drains the idle glideins and keeps the one running a job', async () => {
    const file = `${FAKE_SITE_DIR}/site/home/demand`;
    const profile = fleetProfile({ idleTime: '3s' });
    profile.fleet.demand = { command: ['cat', file] };
    await withFakeSite(profile, async ({ site, name, taskQueue }) => {
      site.hosts.login.files.set(file, '3\n');
      const { fleet, handle } = await startFleet(taskQueue, name, 3);
      await until(handle, 'three running', (v) => v.running === 3);
      const busy = slotId(fleet, 1);
      site.claimGlidein(busy);
      // LaunchGlidein sees the claim, in its status and in its memo (where the fleet reads it).
      const glidein = env().client.workflow.getHandle(busy);
      await waitFor('the claim in the memo', async () => (await glidein.describe()).memo?.claim, 30_000);
      expect((await glidein.query(statusQuery)).claim).toEqual({ claimed: true });
      expect((await glidein.describe()).memo?.claim).toEqual({ claimed: true });
      site.hosts.login.files.set(file, '1\n');
      const one = await until(handle, 'the idle two drained', (v) => v.running === 1 && v.draining === 0, 60_000);
      expect(one.slots.filter((s) => s.state === 'running').map((s) => [s.id, s.busy])).toEqual([[busy, true]]);
      // Released by its schedd, it is idle again, since then.
      site.claimGlidein(busy, false);
      await waitFor(
        'idle again',
        async () => (await glidein.query(statusQuery)).claim?.claimed === false && (await glidein.query(statusQuery)),
        30_000,
      );
      await handle.signal(drainAllSignal);
      expect((await handle.result()).endReason).toBe('drained');
      expect(site.footprint(WORK_DIR).processes).toEqual([]);
    });
  });

  it('continues-as-new without losing a glidein or what it saw (its status never drops to zero)', async () => {
    // Each observation takes a while, so that a continued run spends time before its first round.
    const slowObservation = (a: GlideinActivities): GlideinActivities => ({
      ...a,
      async observeFleet(request) {
        await new Promise((r) => setTimeout(r, 400));
        return a.observeFleet(request);
      },
    });
    await withFakeSite(
      fleetProfile({ historyEvents: 50 }),
      async ({ site, name, taskQueue }) => {
        const { handle } = await startFleet(taskQueue, name, 2);
        const full = await until(handle, 'two running', (v) => v.running === 2);
        const runs = runningRuns(full);
        const fleetRuns = new Set<string>();
        const deadline = Date.now() + 40_000;
        for (let i = 0; fleetRuns.size < 3 && Date.now() < deadline; i++) {
          expect((await handle.query(fleetStatusQuery)).running).toBe(2);
          if (i % 10 === 0) fleetRuns.add((await handle.describe()).runId);
        }
        expect(fleetRuns.size).toBeGreaterThanOrEqual(3); // it did continue-as-new, twice
        expect(runningRuns(await handle.query(fleetStatusQuery)).sort()).toEqual(runs.sort());
        expect(site.tunnels()).toHaveLength(2);
        await handle.signal(drainAllSignal);
        expect((await handle.result()).endReason).toBe('drained');
      },
      slowObservation,
    );
  });

  it('backs off on a persistent failure: a bounded number of starts, the reason in its status', async () => {
    await withFakeSite(fleetProfile({ maxGlideins: 1, maxStarting: 1 }), async ({ site, name, taskQueue }) => {
      site.faults.instanceStartFails = { times: Infinity, output: 'FATAL:   could not open image: no such file' };
      const { handle } = await startFleet(taskQueue, name, 1);
      const backingOff = await until(handle, 'backing off', (v) => v.phase === 'backing-off');
      expect(backingOff.backoff?.why).toMatch(/[2-9] failed starts within 600 s; last: ContainerStartFailed/);
      await new Promise((r) => setTimeout(r, 8_000));
      const starts = site.commands.filter((c) => c.argv.includes('instance') && c.argv.includes('start')).length;
      // Two failed starts, then a probe 3 s and one 6 s later at most; without the back-off, one every second or two.
      expect(starts).toBeGreaterThanOrEqual(2);
      expect(starts).toBeLessThanOrEqual(5);
      await handle.signal(drainAllSignal);
      await handle.result();
    });
  });
});
