/**
 * LaunchGlidein's decisions on a real dev server, against the in-memory fake site: every way a lifecycle ends,
 * with teardown that works and teardown that cannot release something. Asserts on the site (nothing left), the
 * status query, the memo and the failure type.
 */
import '../support/fake-site-runtime';
import { WorkflowFailedError } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { workflowBundle } from '../../sandbox/temporal';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { EMPTY_FOOTPRINT, FAKE_SITE_DIR, fakeProfile } from '../../sandbox/fake-site';
import { drainSignal, GlideinPhase, statusQuery, stopSignal } from '../../src/workflows/messages';
import { FAKE_SETUP as SETUP, FAKE_TEARDOWN as TEARDOWN, stepsOf, waitForPhase } from '../support/workflow-harness';
import { glideinIdFor, useFakeSiteServer, type Handle } from '../support/fake-site-harness';

const { withFakeSite } = useFakeSiteServer();
const WORK_DIR = `${FAKE_SITE_DIR}/site/work`;

type End = 'drain' | 'stop' | 'cancel';

const ENDS: Record<End, { endReason: string; phase: string }> = {
  drain: { endReason: 'drained', phase: 'done' },
  stop: { endReason: 'stopped', phase: 'done' },
  cancel: { endReason: 'cancelled', phase: 'cancelled' },
};

describe('LaunchGlidein on the fake site', () => {
  it('reaches registration through the chain, holds one of everything, and drains back to nothing', async () => {
    const id = glideinIdFor('happy');
    await withFakeSite(fakeProfile(), async ({ site, start }) => {
      const handle = await start(id);
      const monitoring = await waitForPhase(handle, 'monitoring');
      expect(stepsOf(monitoring)).toEqual(SETUP);
      expect(monitoring.registration).toMatchObject({ state: 'Unclaimed', activity: 'Idle' });
      expect(monitoring.held.map((h) => h.kind)).toEqual(['tunnel', 'cvmfs', 'container', 'glidein']);
      expect(site.tunnels()).toHaveLength(1);
      expect(site.glidein(id)).toBeDefined();
      const held = site.footprint(WORK_DIR);
      expect(held.instances).toEqual([`glidein-${id}`]);
      expect(held.mounts).toHaveLength(2);
      expect(site.adNames()).toEqual([`slot1@${id}@wn01`]);

      await handle.signal(drainSignal);
      const result = await handle.result();
      expect(result.endReason).toBe('drained');
      expect(stepsOf(result).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
      expect(result.steps.find((s) => s.step === 'stopGlidein')?.detail).toMatch(/graceful shutdown, SIGTERM/);
      expect(site.adNames()).toEqual([]);
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });

  describe.each(['drain', 'stop', 'cancel'] as End[])('%s while monitoring', (end) => {
    const deliver = async (handle: Handle) => {
      if (end === 'cancel') await handle.cancel();
      else await handle.signal(end === 'drain' ? drainSignal : stopSignal);
    };

    it('tears everything down in reverse, writes the memo and leaves nothing', async () => {
      const id = glideinIdFor(end);
      await withFakeSite(fakeProfile(), async ({ site, start }) => {
        const handle = await start(id);
        await waitForPhase(handle, 'monitoring');
        await deliver(handle);
        const outcome = await handle.result().then(
          (r) => r,
          (e) => e,
        );
        if (end === 'cancel') {
          expect(outcome).toBeInstanceOf(WorkflowFailedError);
          expect(outcome.cause).toBeInstanceOf(CancelledFailure);
        } else expect(outcome.endReason).toBe(ENDS[end].endReason);
        const status = await handle.query(statusQuery);
        expect(status.phase).toBe(ENDS[end].phase);
        expect(stepsOf(status).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
        expect(status.held).toEqual([]);
        const { memo, searchAttributes } = await handle.describe();
        expect(memo?.endReason).toBe(ENDS[end].endReason);
        expect(memo?.stillHeld).toBe('nothing');
        expect(searchAttributes[GlideinPhase.name]).toEqual([ENDS[end].phase]);
        const stop = status.steps.find((s) => s.step === 'stopGlidein')?.detail;
        expect(stop).toMatch(end === 'drain' ? /graceful shutdown, SIGTERM/ : /SIGTERM/);
        expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
      });
    });

    it('when an inverse fails, goes on with the rest and reports what is still held', async () => {
      const id = glideinIdFor(`${end}-undo`);
      await withFakeSite(fakeProfile(), async ({ site, start }) => {
        const handle = await start(id);
        await waitForPhase(handle, 'monitoring');
        // The worker node's sshd refuses the container's stop: a permanent fault, so no retry hides it.
        site.faults.refuse = [{ host: 'worker', match: (argv) => argv.includes('stop') && argv.includes('instance') }];
        await deliver(handle);
        const err = await handle.result().catch((e) => e);
        expect(err).toBeInstanceOf(WorkflowFailedError);
        if (end === 'cancel') expect(err.cause).toBeInstanceOf(CancelledFailure);
        else {
          expect(err.cause).toBeInstanceOf(ApplicationFailure);
          expect(err.cause.type).toBe('TeardownIncomplete');
          expect(err.cause.message).toContain('still held after teardown: container');
        }
        const status = await handle.query(statusQuery);
        expect(status.phase).toBe(end === 'cancel' ? 'cancelled' : 'failed');
        expect(status.held.map((h) => h.kind)).toEqual(['container']);
        // The rest is released past the failure; the work directory stays while something is held.
        expect(stepsOf(status).slice(-4)).toEqual([
          'stopGlidein:ok',
          'stopContainer:failed',
          'unmountCvmfs:ok',
          'closeTunnel:ok',
        ]);
        const { memo } = await handle.describe();
        expect(memo?.endReason).toBe(ENDS[end].endReason);
        expect(memo?.stillHeld).toBe('container');
        expect(site.footprint(WORK_DIR)).toEqual({
          ...EMPTY_FOOTPRINT,
          instances: [`glidein-${id}`],
          workDirs: [`worker:${WORK_DIR}/${id}`],
        });
      });
    });
  });

  it('refuses bad input before any command runs on the site, naming the field', async () => {
    const id = glideinIdFor('bad');
    await withFakeSite(fakeProfile(), async ({ site, name, start }) => {
      const handle = await start(id, { site: name, lifetime: '$(reboot)' });
      const err = await handle.result().catch((e) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(err.cause.type).toBe('InvalidRequest');
      expect(err.cause.message).toContain('lifetime: expected a duration');
      const history = await handle.fetchHistory();
      expect(history.events?.some((e) => e.activityTaskScheduledEventAttributes)).toBe(false);
      expect(site.commandCount).toBe(0);
    });
  });

  it('replays what it recorded: a run whose planning (a local activity) failed, and one that drained', async () => {
    // A patch first asked in the task that resolves a local activity would not be seen on replay: both ends checked.
    const histories: Array<[string, Awaited<ReturnType<Handle['fetchHistory']>>]> = [];
    await withFakeSite(fakeProfile(), async ({ start }) => {
      const handle = await start(glideinIdFor('replay-plan-fails'), { site: 'nosuchsite', lifetime: '10m' });
      const err = await handle.result().catch((e) => e);
      expect(err.cause.type).toBe('InvalidSiteProfile');
      histories.push(['planning failed', await handle.fetchHistory()]);
    });
    await withFakeSite(fakeProfile(), async ({ start }) => {
      const handle = await start(glideinIdFor('replay-drain'));
      await waitForPhase(handle, 'monitoring');
      await handle.signal(drainSignal);
      expect((await handle.result()).endReason).toBe('drained');
      histories.push(['drained', await handle.fetchHistory()]);
    });
    for (const [name, history] of histories)
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, name);
  });

  it('touches nothing of a glidein directory another workflow has claimed', async () => {
    const id = glideinIdFor('theirs');
    const other = { namespace: 'default', workflowId: 'someone-else' };
    await withFakeSite(fakeProfile(), async ({ site, start }) => {
      site.seedClaim(`${WORK_DIR}/${id}`, other);
      const handle = await start(id);
      const err = await handle.result().catch((e) => e);
      expect(err.cause.type).toBe('GlideinIdConflict');
      const status = await handle.query(statusQuery);
      expect(status.held).toEqual([]);
      expect(stepsOf(status)).toEqual(['planLaunch:ok', 'openTunnel:failed']);
      expect((await handle.describe()).memo?.teardown).toEqual(['skipped: the glidein belongs to another workflow']);
      // Only the ownership check ran; the claim is still the other workflow's.
      expect(new Set(site.commands.map((c) => c.what))).toEqual(new Set(['CLAIM_GLIDEIN']));
      expect(site.hosts.worker.files.get(`${WORK_DIR}/${id}/.claim`)).toBe(`${JSON.stringify(other)}\n`);
      expect(site.footprint(WORK_DIR).processes).toEqual([]);
    });
  });
});
