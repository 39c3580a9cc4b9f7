/**
 * Cancel matrix: the workflow is cancelled right after each setup step and while monitoring. Teardown releases
 * exactly what was acquired so far, in reverse order; the workflow closes as cancelled, and the cancellation
 * carries the teardown's outcome.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { statusQuery } from '../../src/workflows/messages';
import { TEARDOWN_STEP_NAMES } from '../../src/workflows/steps';
import { SITES_DIR } from '../../sandbox/sites';
import { stepsOf, TEARDOWN, useDevServer, waitFor } from './harness';
import { EMPTY, footprint } from './site-state';

const { withWorker, start } = useDevServer();

async function completedSteps(handle: WorkflowHandle): Promise<string[]> {
  return (await handle.query(statusQuery)).steps.filter((s) => s.status === 'ok').map((s) => s.step);
}

/** What teardown must release, in order, once `last` has completed. */
const UNDO: Record<string, string[]> = {
  openTunnel: ['closeTunnel', 'cleanupGlidein'],
  verifyOutbound: ['closeTunnel', 'cleanupGlidein'],
  mountCvmfs: ['unmountCvmfs', 'closeTunnel', 'cleanupGlidein'],
  startContainer: ['stopContainer', 'unmountCvmfs', 'closeTunnel', 'cleanupGlidein'],
  preloadProxychains: ['stopContainer', 'unmountCvmfs', 'closeTunnel', 'cleanupGlidein'],
  stageCredential: ['removeCredential', 'stopContainer', 'unmountCvmfs', 'closeTunnel', 'cleanupGlidein'],
  // From the glidein on, everything: the lifecycle's whole teardown.
  startGlidein: TEARDOWN.map((t) => t.split(':')[0]),
  confirmRegistration: TEARDOWN.map((t) => t.split(':')[0]),
};

describe('cancel matrix', () => {
  it.each(Object.keys(UNDO))(
    'cancelled after %s: releases what was acquired, in reverse, and closes as cancelled',
    async (last) => {
      const id = `wf-cancel-${last.toLowerCase()}-${Date.now()}`;
      await withWorker(SITES_DIR, async (w) => {
        const handle = await start(w, id);
        await waitFor(`${last} to complete`, async () => (await completedSteps(handle)).includes(last));
        await handle.cancel();
        const err = await handle.result().catch((e) => e);
        expect(err).toBeInstanceOf(WorkflowFailedError);
        const cancelled = err.cause as CancelledFailure;
        expect(cancelled).toBeInstanceOf(CancelledFailure);
        // The closed execution's memo says how it ended and what teardown did.
        const { memo } = await handle.describe();
        expect(memo?.endReason).toBe('cancelled');
        expect((memo?.teardown as string[]).map((t) => t.split(':')[0])).toEqual(expect.arrayContaining(UNDO[last]));
        expect(memo?.stillHeld).toBe('nothing');

        const status = await handle.query(statusQuery);
        expect(status.phase).toBe('cancelled');
        expect(status.held).toEqual([]);
        const steps = stepsOf(status);
        const setupEnd = steps.findIndex((s) => TEARDOWN_STEP_NAMES.includes(s.split(':')[0] as never));
        const teardown = steps.slice(setupEnd);
        // The step running when the cancel arrived may have finished first; its inverse then runs too.
        expect(teardown.every((s) => s.endsWith(':ok'))).toBe(true);
        const undone = teardown.map((s) => s.split(':')[0]);
        expect(undone.slice(-UNDO[last].length)).toEqual(UNDO[last]);
      });
      expect(await footprint(id)).toEqual(EMPTY);
    },
  );
});
