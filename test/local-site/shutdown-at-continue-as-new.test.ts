/**
 * Every end tears down at the continue-as-new boundary. The profile's history cap (monitor.historyEvents, its
 * minimum 50) is below what setup alone records, so the first monitor round of the first run ends in a
 * continue-as-new; a cancel, stop or drain is delivered just before it (while that round runs), during it (in
 * the very workflow task that decides to continue: the monitor round sends it before it completes) and just
 * after it (as soon as the second run exists). Each must tear everything down, write the memo, leave the phase
 * search attribute final, and leave nothing on the site.
 */
import { Context } from '@temporalio/activity';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import type { GlideinActivities } from '../../src/activities';
import { drainSignal, GlideinPhase, statusQuery, stopSignal } from '../../src/workflows/messages';
import { localSiteWith } from '../../sandbox/sites';
import { useDevServer, waitFor } from '../support/workflow-harness';
import { EMPTY, footprint } from '../../sandbox/site-state';

const { withWorker, start, env } = useDevServer();

const SITES = localSiteWith((p) => {
  p.monitor.interval = '1s';
  p.monitor.reportEvery = '1s';
  p.monitor.historyEvents = 50;
});

type End = 'cancel' | 'stop' | 'drain';
type Moment = 'before' | 'during' | 'after';

/** What a test does to the workflow, run by the monitor activity of its first run at `when`. */
let armed: { workflowId: string; when: 'round-start' | 'round-end'; act: () => Promise<void> } | undefined;

function wrap(activities: GlideinActivities): GlideinActivities {
  return {
    ...activities,
    async monitorGlidein(ref, round) {
      const trigger = () => {
        const a = armed;
        const info = Context.current().info;
        if (!a || info.workflowExecution?.workflowId !== a.workflowId) return undefined;
        return a;
      };
      const before = trigger();
      if (before?.when === 'round-start') {
        armed = undefined;
        await before.act();
      }
      const report = await activities.monitorGlidein(ref, round);
      const after = trigger();
      if (after?.when === 'round-end' && report.end === 'round-complete') {
        armed = undefined;
        await after.act();
      }
      return report;
    },
  };
}

async function deliver(handle: WorkflowHandle, end: End): Promise<void> {
  const current = env().client.workflow.getHandle(handle.workflowId);
  if (end === 'cancel') await current.cancel();
  else await current.signal(end === 'stop' ? stopSignal : drainSignal);
}

const CASES: Array<[End, Moment]> = (['cancel', 'stop', 'drain'] as End[]).flatMap((end) =>
  (['before', 'during', 'after'] as Moment[]).map((m): [End, Moment] => [end, m]),
);

describe('shutdown at the continue-as-new boundary', () => {
  it.each(CASES)(
    '%s delivered %s a continue-as-new: teardown runs, the memo is written, the phase is final',
    async (end, moment) => {
      const id = `wf-edge-${end}-${moment}-${Date.now()}`;
      await withWorker(
        SITES,
        async (w) => {
          const handle = await start(w, id, { site: 'local', lifetime: '10m' });
          const firstRun = (await handle.describe()).runId;
          if (moment === 'before') armed = { workflowId: id, when: 'round-start', act: () => deliver(handle, end) };
          if (moment === 'during') armed = { workflowId: id, when: 'round-end', act: () => deliver(handle, end) };
          if (moment === 'after') {
            await waitFor(
              'a continue-as-new',
              async () => (await env().client.workflow.getHandle(id).describe()).runId !== firstRun,
              60_000,
            );
            await deliver(handle, end);
          }

          const last = env().client.workflow.getHandle(id);
          const outcome = await last.result().then(
            (r) => r,
            (e) => e,
          );
          if (end === 'cancel') {
            expect(outcome).toBeInstanceOf(WorkflowFailedError);
            expect((outcome as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
          } else {
            expect(outcome.endReason).toBe(end === 'stop' ? 'stopped' : 'drained');
          }
          const description = await last.describe();
          expect(description.memo?.endReason).toBe(
            end === 'cancel' ? 'cancelled' : end === 'stop' ? 'stopped' : 'drained',
          );
          expect(description.memo?.stillHeld).toBe('nothing');
          expect(description.searchAttributes[GlideinPhase.name]).toEqual([end === 'cancel' ? 'cancelled' : 'done']);
          const status = await last.query(statusQuery);
          expect(status.held).toEqual([]);
          expect(
            status.steps.filter((s) => s.step === 'stopGlidein' || s.step === 'closeTunnel').map((s) => s.status),
          ).toEqual(['ok', 'ok']);

          // The moment was the one meant: during = in the first run, after its history passed the cap.
          const runs = description.runId === firstRun ? 1 : 2;
          if (moment === 'after') expect(runs).toBe(2);
          else expect(runs).toBe(1);
          if (moment === 'during') {
            const events = (await env().client.workflow.getHandle(id, firstRun).fetchHistory()).events ?? [];
            const delivered = events.findIndex(
              (e) => e.workflowExecutionSignaledEventAttributes || e.workflowExecutionCancelRequestedEventAttributes,
            );
            expect(delivered).toBeGreaterThanOrEqual(50);
          }
        },
        undefined,
        { wrap },
      );
      expect(await footprint(id)).toEqual(EMPTY);
    },
  );
});
