/**
 * What LaunchGlidein does when something changes under a running glidein, and when teardown itself fails.
 * Faults are real: processes killed on the site, the collector stopped, a container runtime that cannot stop.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { drainSignal, statusQuery } from '../../src/workflows/messages';
import { localSiteWith } from '../../sandbox/sites';
import {
  allProcesses,
  collectorAds,
  SITE_PATHS,
  siteProcesses,
  startService,
  stopService,
} from '../../sandbox/local-site';
import { SETUP, stepsOf, TEARDOWN, useDevServer, waitFor, waitForPhase } from '../support/workflow-harness';
import { EMPTY, footprint } from '../../sandbox/site-state';

const { withWorker, start, env } = useDevServer();

/** The local site with a one-second monitor interval, so faults are noticed quickly. */
const fastMonitor = (more: (p: any) => void = () => undefined) =>
  localSiteWith((p) => {
    p.monitor.interval = '1s';
    more(p);
  });

/** Signals each pid; one that ended since it was listed (a session closing by itself) is not an error. */
function kill(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
}

describe('LaunchGlidein while monitoring', () => {
  it('reopens a tunnel that died and keeps the glidein running', async () => {
    const id = `wf-tunnel-${Date.now()}`;
    await withWorker(fastMonitor(), async (w) => {
      const handle = await start(w, id);
      await waitForPhase(handle, 'monitoring');
      const [oldTunnel] = (await footprint(id)).tunnels;
      const [glidein] = (await footprint(id)).glideins;
      kill([oldTunnel], 'SIGKILL');

      const repaired = await waitFor(
        'the tunnel to be reopened',
        async () => {
          const s = await handle.query(statusQuery);
          return stepsOf(s).filter((x) => x === 'openTunnel:ok').length === 2 && s;
        },
        30_000,
      );
      expect(repaired.phase).toBe('monitoring');
      const now = await footprint(id);
      expect(now.tunnels).toHaveLength(1);
      expect(now.tunnels[0]).not.toBe(oldTunnel);
      expect(now.glideins).toEqual([glidein]);

      await handle.signal(drainSignal);
      expect((await handle.result()).endReason).toBe('drained');
    });
    expect(await footprint(id)).toEqual(EMPTY);
  });

  it('continues-as-new while monitoring, carrying what it holds, and the new run still tears it all down', async () => {
    const id = `wf-can-${Date.now()}`;
    await withWorker(
      fastMonitor((p) => ((p.monitor.reportEvery = '1s'), (p.monitor.historyEvents = 100))),
      async (w) => {
        const handle = await start(w, id, { site: 'local', lifetime: '10m' });
        const firstRun = (await handle.describe()).runId;
        await waitFor('a continue-as-new', async () => (await handle.describe()).runId !== firstRun, 60_000);
        const status = await waitForPhase(handle, 'monitoring');
        expect(status.held.map((h) => h.kind)).toEqual(['tunnel', 'cvmfs', 'container', 'credential', 'glidein']);
        expect(stepsOf(status).slice(0, SETUP.length)).toEqual(SETUP); // the first run's steps are carried over
        const held = await footprint(id);
        expect([held.tunnels.length, held.glideins.length, held.instances.length, held.ads.length]).toEqual([
          1, 1, 1, 1,
        ]);

        const firstHistory = await handle.client.getHandle(id, firstRun).fetchHistory();
        const events = firstHistory.events ?? [];
        expect(events.length).toBeLessThanOrEqual(110);
        expect(events[events.length - 1].workflowExecutionContinuedAsNewEventAttributes).toBeTruthy();

        await handle.signal(drainSignal);
        const result = await handle.result();
        expect(result.endReason).toBe('drained');
        expect(stepsOf(result).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
      },
    );
    expect(await footprint(id)).toEqual(EMPTY);
  });

  it('survives a restart of the login node sshd: reconnects once, reopens the tunnel, keeps the glidein', async () => {
    const id = `wf-sshd-${Date.now()}`;
    await withWorker(fastMonitor(), async (w) => {
      const handle = await start(w, id);
      await waitForPhase(handle, 'monitoring');
      const before = await footprint(id);
      expect(w.ssh.connectCounts()['glidein@127.0.0.1:2201']).toBe(1);

      // sshd restarts: the listener goes, and every session with it (ours, the jump to the worker node, the tunnel's).
      await stopService('login');
      try {
        kill(
          allProcesses()
            .filter((p) => p.cmdline.startsWith('sshd: glidein'))
            .map((p) => p.pid),
          'SIGKILL',
        );
      } finally {
        await startService('login'); // never leave the shared test site without its login node
      }

      const repaired = await waitFor(
        'the tunnel to be reopened after the restart',
        async () => {
          const s = await handle.query(statusQuery);
          return stepsOf(s).filter((x) => x === 'openTunnel:ok').length === 2 && s.phase === 'monitoring' && s;
        },
        60_000,
      );
      expect(repaired.held.map((h) => h.kind)).toEqual(['tunnel', 'cvmfs', 'container', 'credential', 'glidein']);
      const after = await footprint(id);
      expect(after.glideins).toEqual(before.glideins); // the glidein was never restarted or doubled
      expect(after.instances).toEqual(before.instances);
      expect(after.tunnels).toHaveLength(1);
      expect(w.ssh.connectCounts()['glidein@127.0.0.1:2201']).toBe(2); // one reconnect, not one per command

      await handle.signal(drainSignal);
      expect((await handle.result()).endReason).toBe('drained');
    });
    expect(await footprint(id)).toEqual(EMPTY);
  });

  it('the glidein retires and ends itself at its deadline while no worker runs (GLIDEIN_ToRetire/ToDie)', async () => {
    const id = `wf-retire-${Date.now()}`;
    const sites = fastMonitor((p) => (p.glidein.drainGrace = '4s'));
    const queue = `retire-${Date.now()}`;
    let deadline = 0;
    await withWorker(
      sites,
      async (w) => {
        const handle = await start(w, id, { site: 'local', lifetime: '12s' });
        const status = await waitForPhase(handle, 'monitoring');
        deadline = status.deadline!;
        const [ad] = await collectorAds(`GlideinLaunchId == "${id}"`);
        expect(ad.GLIDEIN_ToRetire).toBe(Math.floor(deadline / 1000));
        expect(ad.GLIDEIN_ToDie).toBe(Math.floor(deadline / 1000) + 4);
        expect(ad.State).toBe('Unclaimed');
      },
      queue,
    );
    // No worker now. Past the retire time the slot takes no new jobs (Owner); past the die time it is gone.
    await waitFor(
      'the slot to retire',
      async () => (await collectorAds(`GlideinLaunchId == "${id}"`))[0]?.State === 'Owner',
      30_000,
    );
    await waitFor(
      'the glidein to end by itself',
      async () =>
        (await footprint(id)).glideins.length === 0 && (await collectorAds(`GlideinLaunchId == "${id}"`)).length === 0,
      30_000,
    );
    expect(Date.now()).toBeGreaterThanOrEqual(deadline);
    // A worker comes back: the lifecycle sees the glidein gone and tears the rest down.
    await withWorker(
      sites,
      async () => {
        const result = await env().client.workflow.getHandle(id).result();
        expect(result.endReason).toMatch(/^glidein exited|^lifetime/);
        expect(stepsOf(result).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
      },
      queue,
    );
    expect(await footprint(id)).toEqual(EMPTY);
  });

  it('ends normally and tears down when the glidein exits by itself', async () => {
    const id = `wf-exit-${Date.now()}`;
    await withWorker(fastMonitor(), async (w) => {
      const handle = await start(w, id);
      await waitForPhase(handle, 'monitoring');
      kill((await footprint(id)).glideins, 'SIGTERM'); // HTCondor's own shutdown: it invalidates its ad
      const result = await handle.result();
      expect(result.endReason).toMatch(/^glidein exited/);
      expect(stepsOf(result).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
      expect(result.steps.find((s) => s.step === 'stopGlidein')?.detail).toBe('no glidein running');
    });
    expect(await footprint(id)).toEqual(EMPTY);
  });

  it('reports a ghost when the pilot dies without invalidating its ad, and does not count it as alive', async () => {
    const id = `wf-ghost-${Date.now()}`;
    await withWorker(fastMonitor(), async (w) => {
      const handle = await start(w, id);
      await waitForPhase(handle, 'monitoring');
      kill((await footprint(id)).glideins, 'SIGKILL'); // no chance to invalidate: the ad stays until it expires
      const result = await handle.result();
      expect(result.endReason).toMatch(/ghost until its ad expires/);
      const status = await handle.query(statusQuery);
      expect(status.ghost).toBe(`slot1@${id}@${hostname()}`);
      expect(status.lastCheck).toMatchObject({ glidein: false, registered: false });
      expect(stepsOf(result).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
    });
    // Everything of ours is gone; only the collector's ad is left, as in a real pool, until it expires.
    expect(await footprint(id)).toEqual({ ...EMPTY, ads: [`slot1@${id}@${hostname()}`] });
  });

  it('fails as GlideinUnregistered after teardown when the collector loses the glidein', async () => {
    const id = `wf-unreg-${Date.now()}`;
    try {
      await withWorker(fastMonitor(), async (w) => {
        const handle = await start(w, id);
        await waitForPhase(handle, 'monitoring');
        await stopService('collector');
        const err = await handle.result().catch((e) => e);
        await startService('collector');
        expect(err).toBeInstanceOf(WorkflowFailedError);
        expect((err.cause as ApplicationFailure).type).toBe('GlideinUnregistered');
        const status = await handle.query(statusQuery);
        expect(stepsOf(status).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
        expect(status.held).toEqual([]);
      });
    } finally {
      await startService('collector');
    }
    expect(await footprint(id)).toEqual(EMPTY);
  });

  it('goes on past an inverse that fails, and fails as TeardownIncomplete naming what is still held', async () => {
    const id = `wf-stuck-${Date.now()}`;
    // A container runtime whose `instance stop` fails, as apptainer does when it cannot signal the instance.
    const stuck = `${SITE_PATHS.siteRoot}/bin/apptainer-nostop`;
    writeFileSync(
      stuck,
      `#!/bin/sh\n[ "$1 $2" = "instance stop" ] && { echo "FATAL:   failed to stop instance $3" >&2; exit ` +
        `255; }\nexec ${SITE_PATHS.apptainer} "$@"\n`,
    );
    chmodSync(stuck, 0o755);
    try {
      await withWorker(
        fastMonitor((p) => (p.container.executable = stuck)),
        async (w) => {
          const handle = await start(w, id);
          await waitForPhase(handle, 'monitoring');
          await handle.signal(drainSignal);
          const err = await handle.result().catch((e) => e);
          expect(err).toBeInstanceOf(WorkflowFailedError);
          const failure = err.cause as ApplicationFailure;
          expect(failure.type).toBe('TeardownIncomplete');
          expect(failure.message).toContain('still held after teardown: container');
          const status = await handle.query(statusQuery);
          expect(stepsOf(status).slice(-5)).toEqual([
            'stopGlidein:ok',
            'removeCredential:ok',
            'stopContainer:failed',
            'unmountCvmfs:ok',
            'closeTunnel:ok',
          ]);
          expect(status.held).toEqual([{ kind: 'container', instance: `glidein-${id}` }]);
          const left = await footprint(id);
          // The work directory stays (not retired to .done) while something in it is still held.
          expect({ ...left, instances: [] }).toEqual({ ...EMPTY, workDir: true });
          expect(left.instances).toHaveLength(1);
        },
      );
    } finally {
      kill(
        siteProcesses()
          .filter((p) => p.cmdline.includes(`[glidein-${id}]`))
          .map((p) => p.pid),
        'SIGKILL',
      );
    }
  });
});
