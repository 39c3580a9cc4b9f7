/**
 * Continue-as-new on the fake site: the next run carries what the glidein holds and still tears it all down; a stop,
 * drain or cancel delivered in the very task that continues-as-new, or just after, ends it cleanly.
 */
import './runtime';
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import type { GlideinActivities } from '../../src/activities';
import { drainSignal, GlideinPhase, statusQuery, stopSignal } from '../../src/workflows/messages';
import { EMPTY_FOOTPRINT, FAKE_SITE_DIR, fakeProfile } from '../../sandbox/fake-site';
import { FAKE_SETUP as SETUP, FAKE_TEARDOWN as TEARDOWN, stepsOf, waitFor, waitForPhase } from '../workflow/harness';
import { glideinIdFor, useFakeSiteServer, type Handle } from './harness';

const { withFakeSite, env } = useFakeSiteServer();
const WORK_DIR = `${FAKE_SITE_DIR}/site/work`;

/** The profile's history cap at its minimum (50): setup alone passes it, so the first round continues-as-new. */
const capped = () => {
  const p = fakeProfile();
  p.monitor = { interval: '1s', reportEvery: '1s', historyEvents: 50 };
  return p;
};

describe('continue-as-new on the fake site', () => {
  it('carries what it holds into the next run, which still tears it all down', async () => {
    const id = glideinIdFor('can');
    await withFakeSite(capped(), async ({ site, start }) => {
      const handle = await start(id);
      const firstRun = (await handle.describe()).runId;
      await waitFor('a continue-as-new', async () => (await handle.describe()).runId !== firstRun, 20_000);
      const status = await waitForPhase(handle, 'monitoring');
      expect(stepsOf(status).slice(0, SETUP.length)).toEqual(SETUP);
      expect(status.held.map((h) => h.kind)).toEqual(['tunnel', 'cvmfs', 'container', 'glidein']);
      expect(site.glidein(id)).toBeDefined();
      await handle.signal(stopSignal);
      const result = await env().client.workflow.getHandle(id).result();
      expect(result.endReason).toBe('stopped');
      expect(stepsOf(result).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });

  type End = 'stop' | 'drain' | 'cancel';
  const deliver = async (handle: Handle, end: End) => {
    const current = env().client.workflow.getHandle(handle.workflowId);
    if (end === 'cancel') await current.cancel();
    else await current.signal(end === 'stop' ? stopSignal : drainSignal);
  };

  /** Delivers `end` from inside the first run's monitor round, as it completes: in the task that continues-as-new. */
  const atRoundEnd =
    (workflowId: string, act: () => Promise<void>) =>
    (activities: GlideinActivities): GlideinActivities => ({
      ...activities,
      async monitorGlidein(ref, round) {
        const report = await activities.monitorGlidein(ref, round);
        const mine = Context.current().info.workflowExecution?.workflowId === workflowId;
        if (mine && report.end === 'round-complete' && !delivered.has(workflowId)) {
          delivered.add(workflowId);
          await act();
        }
        return report;
      },
    });
  const delivered = new Set<string>();

  it.each([
    ['stop', 'during'],
    ['drain', 'during'],
    ['cancel', 'during'],
    ['cancel', 'after'],
  ] as Array<[End, 'during' | 'after']>)(
    '%s delivered %s a continue-as-new: teardown runs, the memo is written, the phase is final',
    async (end, moment) => {
      const id = glideinIdFor(`edge-${end}-${moment}`);
      let handle: Handle | undefined;
      const wrap = moment === 'during' ? atRoundEnd(id, () => deliver(handle!, end)) : undefined;
      await withFakeSite(
        capped(),
        async ({ site, start }) => {
          handle = await start(id);
          const firstRun = (await handle.describe()).runId;
          if (moment === 'after') {
            await waitFor('a continue-as-new', async () => (await handle!.describe()).runId !== firstRun, 20_000);
            await deliver(handle, end);
          }
          const last = env().client.workflow.getHandle(id);
          const outcome = await last.result().then(
            (r) => r,
            (e) => e,
          );
          const reason = { cancel: 'cancelled', stop: 'stopped', drain: 'drained' }[end];
          if (end === 'cancel') expect(outcome.cause).toBeInstanceOf(CancelledFailure);
          else expect(outcome.endReason).toBe(reason);
          const description = await last.describe();
          expect(description.memo?.endReason).toBe(reason);
          expect(description.memo?.stillHeld).toBe('nothing');
          expect(description.searchAttributes[GlideinPhase.name]).toEqual([end === 'cancel' ? 'cancelled' : 'done']);
          expect(description.runId === firstRun ? 'first run' : 'second run').toBe(
            moment === 'during' ? 'first run' : 'second run',
          );
          const status = await last.query(statusQuery);
          expect(status.held).toEqual([]);
          expect(stepsOf(status).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
          expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
        },
        wrap,
      );
    },
  );
});
