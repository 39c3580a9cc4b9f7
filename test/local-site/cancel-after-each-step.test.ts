/**
 * Cancel matrix: the workflow is cancelled right after each setup step and while monitoring. Teardown releases
 * exactly what was acquired so far (by that step, what it needed, and what ran beside it), in reverse order; the
 * workflow closes as cancelled, and the cancellation carries the teardown's outcome.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { statusQuery } from '../../src/workflows/messages';
import { setupGraph, TEARDOWN_STEP_NAMES, teardownOrder, type StepName } from '../../src/workflows/steps';
import { SITES_DIR } from '../../sandbox/sites';
import { stepsOf, useDevServer, waitFor } from '../support/workflow-harness';
import { EMPTY, footprint } from '../../sandbox/site-state';

const { withWorker, start } = useDevServer();

async function completedSteps(handle: WorkflowHandle): Promise<string[]> {
  return (await handle.query(statusQuery)).steps.filter((s) => s.status === 'ok').map((s) => s.step);
}

const GRAPH = setupGraph({ slurm: false, credentials: true });

/** `step` and every step it needs, directly or not: what has surely run once it has completed. */
function withNeeds(step: StepName): StepName[] {
  const all = new Set<StepName>([step]);
  const visit = (n: StepName) =>
    GRAPH.find((g) => g.name === n)?.needs.forEach((m) => {
      if (!all.has(m)) {
        all.add(m);
        visit(m);
      }
    });
  visit(step);
  return [...all];
}

/**
 * What teardown must release at least, in order, once `last` has completed: what it and the steps it needs took.
 * Steps that do not need it may have run beside it; their inverses run too.
 */
const UNDO: Record<string, string[]> = Object.fromEntries(
  GRAPH.map(({ name }) => [name, teardownOrder(withNeeds(name))]),
);

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
        expect(undone).toEqual(expect.arrayContaining(UNDO[last]));
        // Exactly what the steps that ran took, in the reverse of setup's order.
        const ran = steps.slice(0, setupEnd).map((s) => s.split(':')[0]) as StepName[];
        expect(undone).toEqual(teardownOrder(ran));
      });
      expect(await footprint(id)).toEqual(EMPTY);
    },
  );
});
