/**
 * Cancel matrix on the fake site: the workflow is cancelled as the step after each setup step starts. Teardown
 * releases what was acquired so far, in reverse; the run closes as cancelled, with the memo saying so.
 */
import './runtime';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import type { GlideinActivities } from '../../src/activities';
import { statusQuery } from '../../src/workflows/messages';
import { EMPTY_FOOTPRINT, FAKE_SITE_DIR, fakeProfile } from '../../sandbox/fake-site';
import { SH_SCRIPTS } from '../../sandbox/fake-site/scripts';

const { MOUNT_LEASE } = SH_SCRIPTS;
import { stepsOf, waitFor } from '../workflow/harness';
import { glideinIdFor, useFakeSiteServer } from './harness';

const { withFakeSite, env } = useFakeSiteServer();
const WORK_DIR = `${FAKE_SITE_DIR}/site/work`;

/** Each setup step, the activity that follows it, and what teardown must release once it has completed. */
const MATRIX: Array<[string, keyof GlideinActivities, string[]]> = [
  ['openTunnel', 'verifyOutbound', ['closeTunnel', 'cleanupGlidein']],
  ['verifyOutbound', 'mountCvmfs', ['closeTunnel', 'cleanupGlidein']],
  ['mountCvmfs', 'startContainer', ['unmountCvmfs', 'closeTunnel', 'cleanupGlidein']],
  ['startContainer', 'preloadProxychains', ['stopContainer', 'unmountCvmfs', 'closeTunnel', 'cleanupGlidein']],
  ['preloadProxychains', 'startGlidein', ['stopContainer', 'unmountCvmfs', 'closeTunnel', 'cleanupGlidein']],
  [
    'startGlidein',
    'confirmRegistration',
    ['stopGlidein', 'stopContainer', 'unmountCvmfs', 'closeTunnel', 'cleanupGlidein'],
  ],
  [
    'confirmRegistration',
    'monitorGlidein',
    ['stopGlidein', 'stopContainer', 'unmountCvmfs', 'closeTunnel', 'cleanupGlidein'],
  ],
];

describe('cancel matrix on the fake site', () => {
  it.each(MATRIX)('cancelled after %s: releases what was acquired, in reverse', async (last, next, undo) => {
    const id = glideinIdFor(`cancel-${last.toLowerCase()}`);
    let cancelled = false;
    const wrap = (activities: GlideinActivities): GlideinActivities => ({
      ...activities,
      [next]: async (...args: unknown[]) => {
        if (!cancelled) {
          cancelled = true;
          await env().client.workflow.getHandle(id).cancel();
        }
        return (activities[next] as (...a: unknown[]) => Promise<unknown>)(...args);
      },
    });
    await withFakeSite(
      fakeProfile(),
      async ({ site, start }) => {
        const handle = await start(id);
        const err = await handle.result().catch((e) => e);
        expect(err).toBeInstanceOf(WorkflowFailedError);
        expect(err.cause).toBeInstanceOf(CancelledFailure);
        const { memo } = await handle.describe();
        expect(memo?.endReason).toBe('cancelled');
        expect(memo?.stillHeld).toBe('nothing');
        const status = await handle.query(statusQuery);
        expect(status.phase).toBe('cancelled');
        expect(status.held).toEqual([]);
        const steps = stepsOf(status);
        expect(steps).toContain(`${last}:ok`);
        const teardown = steps.slice(steps.findIndex((s) => undo.includes(s.split(':')[0])));
        // The step running when the cancel arrived may have finished first; its inverse then runs too.
        expect(teardown.every((s) => s.endsWith(':ok'))).toBe(true);
        expect(teardown.map((s) => s.split(':')[0]).slice(-undo.length)).toEqual(undo);
        expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
      },
      wrap,
    );
  });

  it('aborts a slow site command when cancelled mid-step, then releases the half-taken lease', async () => {
    const id = glideinIdFor('cancel-mid-mount');
    await withFakeSite(fakeProfile(), async ({ site, start }) => {
      // A first mount that takes 30 s (cvmfs filling its cache): the cancellation must not wait it out.
      site.faults.delays = [{ host: 'worker', match: (argv) => argv[2] === MOUNT_LEASE, ms: 30_000 }];
      const handle = await start(id);
      // The slow command itself in flight (the step running is not enough: it may not have sent it yet, and without
      // the delay it would finish before the cancellation).
      await waitFor('the slow mount command to be in flight', async () =>
        site.commands.some((c) => c.host === 'worker' && c.argv[2] === MOUNT_LEASE),
      );
      expect((await handle.query(statusQuery)).steps.at(-1)).toMatchObject({ step: 'mountCvmfs', status: 'running' });
      const cancelledAt = Date.now();
      site.faults.delays = [];
      await handle.cancel();
      const err = await handle.result().catch((e) => e);
      expect(err.cause).toBeInstanceOf(CancelledFailure);
      expect(Date.now() - cancelledAt).toBeLessThan(20_000);
      const steps = stepsOf(await handle.query(statusQuery));
      expect(steps.slice(steps.indexOf('mountCvmfs:failed'))).toEqual([
        'mountCvmfs:failed',
        'unmountCvmfs:ok',
        'closeTunnel:ok',
        'cleanupGlidein:ok',
      ]);
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  }, 40_000);
});
