/**
 * LaunchGlidein: one glidein's lifecycle on one site, as a saga. This function only wires the parts together, as
 * samples-typescript's safe-message-handlers does: the input is accepted or refused (./input.ts), a state object
 * answers the messages (./state.ts), the saga plans, sets up, monitors and tears down (./saga.ts) step by step as
 * the catalogue declares them (./steps.ts), and how the run ends is decided by pure functions (./outcome.ts).
 * Monitoring continues-as-new carrying the held resources, so history stays bounded however long the glidein lives.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  condition,
  continueAsNew,
  log,
  patched,
  workflowInfo,
} from '@temporalio/workflow';
import { FailureType } from '../common/failure-types';
import {
  acceptInput,
  CHECKED_CARRY,
  OWNED_LIFECYCLE,
  refusedCarry,
  refuseInput,
  type LaunchGlideinInput,
} from './input';
import { finish, work, type LaunchResult } from './saga';
import { GlideinLifecycle } from './state';

export type { LaunchGlideinInput, ResumeState } from './input';
export type { LaunchResult } from './saga';

export async function LaunchGlidein(input: LaunchGlideinInput): Promise<LaunchResult> {
  const info = workflowInfo();
  const owned = patched(OWNED_LIFECYCLE);
  const accepted = acceptInput(input, info, owned);
  if ('refused' in accepted) refuseInput(accepted, info);
  const { request } = accepted;

  const lifecycle = new GlideinLifecycle(accepted, owned, info.workflowId);
  lifecycle.setHandlers();
  lifecycle.setPhase(lifecycle.status.phase);
  const { next, ...ended } = await work(lifecycle, request.lifetime);
  let failure = ended.failure;

  if (next) {
    if (!owned) {
      await condition(allHandlersFinished);
      return continueAsNew<typeof LaunchGlidein>({
        ...request,
        // Runs recorded before the owned lifecycle carried their cap in the input.
        maxHistoryEvents: lifecycle.historyCap(),
        resume: next,
      } as LaunchGlideinInput);
    }
    // Shielded: a cancellation while handlers finish must reach the teardown below, not end the run here.
    await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
    const cancelled = lifecycle.root.consideredCancelled;
    if (!lifecycle.status.shutdown && !cancelled) {
      const resume = { ...next, workflowId: info.workflowId };
      // The next run checks what it is given against resumeStateSchema and refuses it whole: carry only what it
      // will accept, and if that ever fails, drain and give everything back here rather than leave it unwatched.
      const refused = refusedCarry(resume);
      if (refused === undefined || !patched(CHECKED_CARRY))
        return continueAsNew<typeof LaunchGlidein>({ ...request, resume });
      log.error('the state to carry into the next run is invalid; tearing down instead', {
        glideinId: lifecycle.ref.glideinId,
        refused,
      });
      lifecycle.status.shutdown = 'drain';
      failure = ApplicationFailure.nonRetryable(
        `could not continue-as-new, the state to carry is invalid (${refused}); drained and torn down instead`,
        FailureType.CarriedStateInvalid,
      );
    }
    if (cancelled && !lifecycle.status.shutdown) failure = new CancelledFailure('cancelled at a continue-as-new');
  }
  return finish(lifecycle, failure);
}
