/**
 * What LaunchGlidein counts (src/workflows/metrics.ts), with the SDK's workflow metric meter stood in for: phases
 * entered and left (a new glidein once, a continued run not again), steps by status and failure type, tunnel repairs
 * and the registration latency. The real meter is exercised end to end in test/programs/metrics.test.ts.
 */
import { ActivityFailure, ApplicationFailure, CancelledFailure, RetryState } from '@temporalio/common';

const recorded: Array<{ kind: string; name: string; value: number; tags: Record<string, unknown> }> = [];
let startTime = new Date(0);
let now = 0;

jest.mock('@temporalio/workflow', () => {
  const common = jest.requireActual('@temporalio/common') as typeof import('@temporalio/common');
  const metric = (kind: string) => (name: string) => {
    const record = (value: number, tags: Record<string, unknown> = {}) =>
      void recorded.push({ kind, name, value, tags });
    return { name, add: record, record, set: record };
  };
  return {
    isCancellation: (err: unknown) =>
      err instanceof common.CancelledFailure ||
      (err instanceof common.ActivityFailure && err.cause instanceof common.CancelledFailure),
    metricMeter: {
      createCounter: metric('counter'),
      createHistogram: metric('histogram'),
      createGauge: metric('gauge'),
    },
    workflowInfo: () => ({ startTime }),
  };
});

// (after the mock, which ts-jest hoists above everything anyway)
import { notePhase, observeStep } from '../../src/workflows/metrics';
import type { Phase } from '../../src/workflows/messages';

/** A lifecycle at site `jsc`, planned (a worker found the profile) unless `planned` is false. */
function lifecycle(
  phase: Phase,
  steps: unknown[] = [],
  planned = true,
): { ref: { site: string }; status: { phase: Phase; steps: unknown[] }; plan?: unknown } {
  return { ref: { site: 'jsc' }, status: { phase, steps }, ...(planned ? { plan: {} } : {}) };
}

beforeEach(() => {
  recorded.length = 0;
  jest.spyOn(Date, 'now').mockImplementation(() => now);
});
afterEach(() => jest.restoreAllMocks());

const counted = () => recorded.map((r) => `${r.name} ${JSON.stringify(r.tags)} ${r.value}`);

describe('glideins by phase', () => {
  it('a new glidein enters planning on its first setPhase; each change leaves one phase and enters the next', () => {
    const l = lifecycle('planning', [], false);
    notePhase(l, 'planning');
    l.status.steps.push({});
    notePhase(l, 'planning'); // a repeat later in the run: nothing
    l.plan = {};
    notePhase(l, 'setup');
    l.status.phase = 'setup'; // as setPhase does after notePhase
    notePhase(l, 'registering');
    // Planning is counted under `unknown`, entered and left alike: the site is a label once a worker has its profile.
    expect(counted()).toEqual([
      'glidein_phase_entered {"site":"unknown","phase":"planning"} 1',
      'glidein_phase_left {"site":"unknown","phase":"planning"} 1',
      'glidein_phase_entered {"site":"jsc","phase":"setup"} 1',
      'glidein_phase_left {"site":"jsc","phase":"setup"} 1',
      'glidein_phase_entered {"site":"jsc","phase":"registering"} 1',
    ]);
  });

  it('a site no worker knows adds no label value, however many glideins name one', async () => {
    for (let i = 0; i < 50; i++) {
      const l = { ref: { site: `hostile-${i}` }, status: { phase: 'planning' as Phase, steps: [] as unknown[] } };
      notePhase(l, 'planning');
      const refused = ApplicationFailure.nonRetryable('no profile', 'InvalidRequest');
      await expect(observeStep(l, 'planLaunch', () => Promise.reject(refused))()).rejects.toBe(refused);
      l.status.steps.push({});
      notePhase(l, 'failed');
    }
    expect(new Set(recorded.map((r) => r.tags.site))).toEqual(new Set(['unknown']));
  });

  it("planLaunch's success labels its own duration with the site", async () => {
    const l = lifecycle('planning', [], false);
    await observeStep(l, 'planLaunch', async () => ({ lifetimeMs: 1 }))();
    expect(counted()).toEqual(['glidein_step_duration_seconds {"site":"jsc","step":"planLaunch","status":"ok"} 0']);
  });

  it('a continued run does not enter its carried phase again (the run before did), nor when monitoring resumes', () => {
    const l = lifecycle('monitoring', [{}, {}]);
    notePhase(l, 'monitoring');
    notePhase(l, 'monitoring');
    expect(recorded).toEqual([]);
    notePhase(l, 'teardown');
    expect(counted()).toEqual([
      'glidein_phase_left {"site":"jsc","phase":"monitoring"} 1',
      'glidein_phase_entered {"site":"jsc","phase":"teardown"} 1',
    ]);
  });
});

describe('steps', () => {
  it('records the duration by status; a failure by its type; a cancellation as neither ok nor a failure', async () => {
    now = 1_000;
    const ok = observeStep(lifecycle('setup'), 'mountCvmfs', async () => {
      now += 2_500;
      return 'mounted';
    });
    await expect(ok()).resolves.toBe('mounted');

    const failure = new ActivityFailure(
      'activity failed',
      'startContainer',
      '5',
      RetryState.NON_RETRYABLE_FAILURE,
      'worker',
      ApplicationFailure.nonRetryable('no image', 'ContainerStartFailed'),
    );
    await expect(observeStep(lifecycle('setup'), 'startContainer', () => Promise.reject(failure))()).rejects.toBe(
      failure,
    );
    const cancelled = new CancelledFailure('drained');
    await expect(observeStep(lifecycle('setup'), 'startGlidein', () => Promise.reject(cancelled))()).rejects.toBe(
      cancelled,
    );
    expect(counted()).toEqual([
      'glidein_step_duration_seconds {"site":"jsc","step":"mountCvmfs","status":"ok"} 2.5',
      'glidein_step_failures {"site":"jsc","step":"startContainer","type":"ContainerStartFailed"} 1',
      'glidein_step_duration_seconds {"site":"jsc","step":"startContainer","status":"failed"} 0',
      'glidein_step_duration_seconds {"site":"jsc","step":"startGlidein","status":"cancelled"} 0',
    ]);
  });

  it('counts openTunnel in monitoring as a tunnel repair; registration latency from the workflow start', async () => {
    startTime = new Date(10_000);
    now = 70_000;
    await observeStep(lifecycle('monitoring'), 'openTunnel', async () => 'reopened')();
    await observeStep(lifecycle('setup'), 'openTunnel', async () => 'opened')();
    await observeStep(lifecycle('registering'), 'confirmRegistration', async () => 'registered')();
    expect(counted()).toEqual([
      'glidein_step_duration_seconds {"site":"jsc","step":"openTunnel","status":"ok"} 0',
      'glidein_tunnel_repairs {"site":"jsc","status":"ok"} 1',
      'glidein_step_duration_seconds {"site":"jsc","step":"openTunnel","status":"ok"} 0',
      'glidein_registration_latency_seconds {"site":"jsc"} 60',
      'glidein_step_duration_seconds {"site":"jsc","step":"confirmRegistration","status":"ok"} 0',
    ]);
  });
});
