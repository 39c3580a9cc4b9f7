/**
 * Every way a LaunchGlidein run ends, crossed with a teardown that released everything or left something held:
 * the end reason, how teardown stops the glidein, and how the execution closes (phase and failure type).
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  RetryState,
  TimeoutFailure,
  TimeoutType,
} from '@temporalio/common';
import { FailureType } from '../../src/common/failure-types';
import { decideClose, decideEnd, messageOf, type EndFacts } from '../../src/workflows/outcome';

/** What an activity cancelled by a stop, drain or cancel throws into the workflow. */
const interrupted = () =>
  new ActivityFailure(
    'activity cancelled',
    'monitorGlidein',
    '7',
    RetryState.CANCEL_REQUESTED,
    'w',
    new CancelledFailure('cancelled'),
  );
const stepFailed = (type: string) =>
  new ActivityFailure(
    'activity failed',
    'mountCvmfs',
    '3',
    RetryState.NON_RETRYABLE_FAILURE,
    'w',
    ApplicationFailure.nonRetryable(`mountCvmfs: cvmfs.repositories: no such repository`, type),
  );
const timedOut = () =>
  new ActivityFailure(
    'activity timed out',
    'startContainer',
    '5',
    RetryState.TIMEOUT,
    'w',
    new TimeoutFailure('heartbeat', undefined, TimeoutType.HEARTBEAT),
  );

type Case = [
  string,
  Partial<EndFacts>,
  { endReason?: string | RegExp; mode: 'drain' | 'stop'; ok: string; held: string },
];
const owned = (f: Partial<EndFacts>): EndFacts => ({ failure: undefined, cancelRequested: false, owned: true, ...f });

// [how it ended, facts, { end reason, teardown mode, close when teardown released all, close when it left a container
// }]
const CASES: Case[] = [
  [
    'lifetime reached',
    { endReason: 'lifetime' },
    { endReason: 'lifetime', mode: 'drain', ok: 'done', held: 'failed TeardownIncomplete' },
  ],
  [
    'the glidein exited by itself',
    { endReason: 'glidein exited: idle' },
    { endReason: 'glidein exited: idle', mode: 'stop', ok: 'done', held: 'failed TeardownIncomplete' },
  ],
  [
    'drained by signal',
    { shutdown: 'drain', failure: interrupted() },
    { endReason: 'drained', mode: 'drain', ok: 'done', held: 'failed TeardownIncomplete' },
  ],
  [
    'stopped by signal',
    { shutdown: 'stop', failure: interrupted() },
    { endReason: 'stopped', mode: 'stop', ok: 'done', held: 'failed TeardownIncomplete' },
  ],
  [
    'a stop carried into the next run (nothing ran)',
    { shutdown: 'stop' },
    { endReason: 'stopped', mode: 'stop', ok: 'done', held: 'failed TeardownIncomplete' },
  ],
  [
    'cancelled',
    { cancelRequested: true, failure: interrupted() },
    { endReason: 'cancelled', mode: 'stop', ok: 'cancelled', held: 'cancelled' },
  ],
  [
    'cancelled at a continue-as-new',
    { cancelRequested: true, failure: new CancelledFailure('cancelled at a continue-as-new') },
    { endReason: 'cancelled', mode: 'stop', ok: 'cancelled', held: 'cancelled' },
  ],
  [
    'cancelled after a stop: the stop wins',
    { cancelRequested: true, shutdown: 'stop', failure: interrupted() },
    { endReason: 'stopped', mode: 'stop', ok: 'done', held: 'failed TeardownIncomplete' },
  ],
  [
    'a step failed',
    { failure: stepFailed(FailureType.CvmfsMountFailed) },
    {
      endReason: /^failed: activity failed: mountCvmfs: cvmfs.repositories/,
      mode: 'stop',
      ok: 'failed CvmfsMountFailed',
      held: 'failed CvmfsMountFailed',
    },
  ],
  [
    'an activity timed out',
    { failure: timedOut() },
    {
      endReason: /^failed: activity timed out/,
      mode: 'stop',
      ok: 'failed ActivityTimedOut',
      held: 'failed ActivityTimedOut',
    },
  ],
  [
    'the glidein left the collector',
    { failure: ApplicationFailure.nonRetryable('gone', FailureType.GlideinUnregistered) },
    { endReason: 'failed: gone', mode: 'stop', ok: 'failed GlideinUnregistered', held: 'failed GlideinUnregistered' },
  ],
  [
    'a step failed during a drain',
    { shutdown: 'drain', failure: stepFailed(FailureType.GlideinStartFailed) },
    { endReason: /^failed: /, mode: 'drain', ok: 'failed GlideinStartFailed', held: 'failed GlideinStartFailed' },
  ],
];

function closeOf(facts: EndFacts, held: string[]): string {
  const close = decideClose(decideEnd(facts), held);
  return close.phase === 'failed' ? `failed ${close.failureType}` : close.phase;
}

describe.each(CASES)('a run that ends: %s', (_how, facts, expected) => {
  const end = decideEnd(owned(facts));

  it('has its end reason and teardown mode', () => {
    if (expected.endReason instanceof RegExp) expect(end.endReason).toMatch(expected.endReason);
    else expect(end.endReason).toBe(expected.endReason);
    expect(end.teardownMode).toBe(expected.mode);
    expect(end.conflict).toBe(false);
  });

  it('closes as expected when teardown released everything', () => {
    expect(closeOf(owned(facts), [])).toBe(expected.ok);
  });

  it('closes as expected when teardown left the container held, and says so', () => {
    expect(closeOf(owned(facts), ['container'])).toBe(expected.held);
    const close = decideClose(end, ['container']);
    if (close.phase === 'failed') expect(close.message).toMatch(/still held after teardown: container$/);
  });
});

describe('special ends', () => {
  it('a glidein of another workflow: nothing is released and the run fails as GlideinIdConflict', () => {
    const end = decideEnd(
      owned({ failure: ApplicationFailure.nonRetryable('claimed by another workflow', FailureType.GlideinIdConflict) }),
    );
    expect(end.conflict).toBe(true);
    expect(decideClose(end, [])).toMatchObject({ phase: 'failed', failureType: FailureType.GlideinIdConflict });
  });

  it('before the owned lifecycle, a cancel counted only when it surfaced as the failure (replays keep that)', () => {
    expect(decideEnd({ failure: undefined, cancelRequested: true, owned: false }).cancelled).toBe(false);
    expect(decideEnd({ failure: interrupted(), cancelRequested: true, owned: false }).cancelled).toBe(true);
    expect(decideEnd({ failure: undefined, cancelRequested: true, owned: true }).cancelled).toBe(true);
  });

  it('names an error with its cause once', () => {
    expect(messageOf(new Error('outer', { cause: new Error('inner') }))).toBe('outer: inner');
    expect(messageOf(new Error('outer: inner', { cause: new Error('inner') }))).toBe('outer: inner');
    expect(messageOf('plain')).toBe('plain');
  });
});
