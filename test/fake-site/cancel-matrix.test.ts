/**
 * Cancel matrix on the fake site: the workflow is cancelled as each setup step starts. Teardown
 * releases what was acquired so far, in reverse; the run closes as cancelled, with the memo saying so.
 */
import '../support/fake-site-runtime';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import type { GlideinActivities } from '../../src/activities';
import { statusQuery } from '../../src/workflows/messages';
import { EMPTY_FOOTPRINT, FAKE_SITE_DIR, fakeProfile } from '../../sandbox/fake-site';
import { SH_SCRIPTS } from '../../sandbox/fake-site/scripts';

const { MOUNT_LEASE } = SH_SCRIPTS;
import { setupGraph, STEPS, teardownOrder, type StepName } from '../../src/workflows/steps';
import { splitSteps, stepsOf, waitFor } from '../support/workflow-harness';
import { glideinIdFor, useFakeSiteServer } from '../support/fake-site-harness';

const { withFakeSite, env } = useFakeSiteServer();
const WORK_DIR = `${FAKE_SITE_DIR}/site/work`;

/**
 * Each setup step on the fake site, and the monitor: the workflow is cancelled as it starts. Steps that do not need
 * each other run side by side, so what else ran by then varies; what must hold does not.
 */
const MATRIX = [...setupGraph({ slurm: false }).slice(1), { name: 'monitor' as const, needs: ['confirmRegistration'] }];

describe('cancel matrix on the fake site', () => {
  it.each(MATRIX.map((s) => [s.name, s] as const))(
    'cancelled as %s starts: releases what was acquired, in reverse',
    async (name, { needs }) => {
      const next = STEPS[name].activity;
      const id = glideinIdFor(`cancel-${name.toLowerCase()}`);
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
          // What it needed had finished; the step running when the cancel arrived may have finished first.
          for (const need of needs) expect(steps).toContain(`${need}:ok`);
          const { setup, teardown } = splitSteps(steps);
          expect(teardown.every((s) => s.endsWith(':ok'))).toBe(true);
          // Teardown gave back exactly what the steps that ran took, in the reverse of setup's order.
          expect(teardown.map((s) => s.split(':')[0])).toEqual(
            teardownOrder(setup.map((s) => s.split(':')[0]) as StepName[]),
          );
          expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
        },
        wrap,
      );
    },
  );

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
      expect((await handle.query(statusQuery)).steps.find((s) => s.step === 'mountCvmfs')).toMatchObject({
        status: 'running',
      });
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
