/**
 * The pure rules LaunchGlidein decides by, without a server: which glidein id a workflow id derives, which carried
 * states a continued run accepts, and which failure type a failed run closes with.
 */
import { createHash } from 'node:crypto';
import {
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  RetryState,
  TimeoutFailure,
  TimeoutType,
} from '@temporalio/common';
import { HELD_KINDS, resumeStateSchema } from '../../src/common/carried-state';
import { CARRIED_TEXT, clipText, recordedCheck, recordedRegistration } from '../../src/common/carried-text';
import { refusedCarry } from '../../src/workflows/input';
import { HELD_ORDER } from '../../src/workflows/steps';
import { FailureType } from '../../src/common/failure-types';
import { holdResource } from '../../src/common/held';
import { isTunnelProcess } from '../../src/site/adapters';
import { parseSpawn, spawnedProcess } from '../../src/site/scripts';
import type { HeldResource } from '../../src/common/types';
import { glideinIdFor, legacyGlideinIdFor } from '../../src/common/request';
import { sha256Hex } from '../../src/common/sha256';
import { closingFailureType, failureType } from '../../src/workflows/closing-failure';

describe('glideinIdFor', () => {
  it('keeps a safe workflow id as it is and hashes any other', () => {
    expect(glideinIdFor('glidein-local-1')).toBe('glidein-local-1');
    expect(glideinIdFor('COLLIDE')).toMatch(/^collide--[0-9a-f]{16}$/);
    expect(glideinIdFor('a--b')).toMatch(/^a-b--[0-9a-f]{16}$/);
  });

  it('gives no two workflow ids one glidein id: a derived id can never be a literal one', () => {
    // The collision seen with the legacy derivation: the literal id equals the derived one.
    const derivedLegacy = legacyGlideinIdFor('COLLIDE');
    expect(legacyGlideinIdFor(derivedLegacy)).toBe(derivedLegacy);
    expect(glideinIdFor(derivedLegacy)).not.toBe(glideinIdFor('COLLIDE'));
    // Every derived id contains `--`, which no kept-as-is id does; so a literal workflow id equal to a derived
    // id is itself hashed, to something else.
    const derived = glideinIdFor('COLLIDE');
    expect(glideinIdFor(derived)).not.toBe(derived);
    const seen = new Map<string, string>();
    const ids = [
      'COLLIDE',
      'collide',
      derived,
      'Collide',
      'collide-',
      '-collide',
      'coll ide',
      'coll/ide',
      'x'.repeat(64),
      'x'.repeat(65),
      'x'.repeat(66),
      '',
      'é',
      'e',
    ];
    for (let i = 0; i < 2000; i++) ids.push(`wf ${i}`, `wf-${i}`, `WF-${i}`);
    for (const id of ids) {
      const g = glideinIdFor(id);
      expect(g).toMatch(/^[a-z0-9][a-z0-9-]{0,62}$/);
      expect(seen.get(g) ?? id).toBe(id);
      seen.set(g, id);
    }
  });

  it('hashes with SHA-256 as Node does, in the sandbox without crypto', () => {
    for (const text of [
      '',
      'abc',
      'COLLIDE',
      'é€𝄞',
      'x'.repeat(55),
      'x'.repeat(56),
      'x'.repeat(64),
      'x'.repeat(1000),
    ]) {
      expect(sha256Hex(text)).toBe(createHash('sha256').update(text, 'utf8').digest('hex'));
    }
  });
});

const NOW = '2026-12-02T10:00:00.000Z';
function carried(): any {
  return {
    workflowId: 'glidein-local-1',
    plan: {
      site: 'local',
      glideinId: 'glidein-local-1',
      lifetimeMs: 3_600_000,
      registrationTimeoutMs: 300_000,
      monitorIntervalMs: 30_000,
      monitorRoundMs: 600_000,
      drainGraceMs: 60_000,
      stopGraceMs: 10_000,
      repositories: ['cms.cern.ch'],
      workDir: '/tmp/glideins',
      collector: 'collector.example.org:9618',
      historyEvents: 5000,
    },
    status: {
      site: 'local',
      glideinId: 'glidein-local-1',
      phase: 'monitoring',
      steps: [{ step: 'openTunnel', status: 'ok', startedAt: NOW, durationMs: 120, detail: 'opened' }],
      held: [
        { kind: 'tunnel', socksPort: 1080 },
        { kind: 'cvmfs', repositories: ['cms.cern.ch'] },
        { kind: 'container', instance: 'glidein-glidein-local-1' },
        { kind: 'glidein' },
      ],
      deadline: Date.parse(NOW) + 3_600_000,
    },
    tunnelRepairs: 0,
  };
}

describe('the carried state of a continued run', () => {
  it('accepts what a monitoring run carries', () => {
    expect(resumeStateSchema.safeParse(carried()).success).toBe(true);
  });

  it.each<[string, (s: any) => void, string]>([
    [
      'a glidein id that leaves the work directory',
      (s) => (s.status.glideinId = '../../../../tmp/x'),
      'status.glideinId',
    ],
    ['a plan glidein id that leaves the work directory', (s) => (s.plan.glideinId = '../x'), 'plan.glideinId'],
    ['a relative work directory', (s) => (s.plan.workDir = 'tmp/x'), 'plan.workDir'],
    ['a phase other than monitoring', (s) => (s.status.phase = 'teardown'), 'status.phase'],
    ['one kind held twice', (s) => s.status.held.push({ kind: 'glidein' }), 'status.held'],
    ['an unknown kind', (s) => s.status.held.push({ kind: 'pidfile', path: '/tmp/x/tunnel.pid' }), 'status.held'],
    ['an instance not named after a glidein', (s) => (s.status.held[2].instance = 'someone-else'), 'status.held'],
    ['a field of its own', (s) => (s.status.pidFile = '/etc/passwd'), 'pidFile'],
    ['a history cap below 50', (s) => (s.plan.historyEvents = 1), 'plan.historyEvents'],
    ['a history cap that is not a number', (s) => (s.plan.historyEvents = 'many'), 'plan.historyEvents'],
    ['more tunnel repairs than are allowed', (s) => (s.tunnelRepairs = 99), 'tunnelRepairs'],
    [
      'a forged Slurm job id',
      (s) => s.status.held.push({ kind: 'allocation', jobName: 'glidein-local-1', jobId: '1; scancel -u all' }),
      'status.held',
    ],
    [
      'a step of no known name',
      (s) => s.status.steps.push({ step: 'rmRf', status: 'ok', startedAt: NOW }),
      'status.steps',
    ],
  ])('refuses %s, naming the field', (_what, spoil, field) => {
    const state = carried();
    spoil(state);
    const parsed = resumeStateSchema.safeParse(state);
    expect(parsed.success).toBe(false);
    const paths = parsed.error!.issues.map((i) => [...i.path, ...((i as { keys?: string[] }).keys ?? [])].join('.'));
    expect(paths.some((p) => p.startsWith(field) || p.endsWith(field))).toBe(true);
  });
});

describe('what a carried state may hold', () => {
  /** One of each kind the catalogue acquires, as a JSC-shaped glidein holds them while it monitors. */
  const everyKind = (): HeldResource[] =>
    HELD_ORDER.map((kind): HeldResource => {
      switch (kind) {
        case 'allocation':
          return { kind, jobName: 'glidein-local-1', jobId: '4711' };
        case 'tunnel':
          return { kind, socksPort: 1080 };
        case 'cvmfs':
          return { kind, repositories: ['cms.cern.ch'] };
        case 'container':
          return { kind, instance: 'glidein-glidein-local-1' };
        default:
          return { kind };
      }
    });

  it('admits exactly the kinds the step catalogue acquires, each once', () => {
    expect([...HELD_KINDS].sort()).toEqual([...HELD_ORDER].sort());
    const state = carried();
    state.status.held = everyKind();
    expect(resumeStateSchema.safeParse(state).success).toBe(true);
  });

  it('accepts site text clipped as a status records it, however long it came back', () => {
    const state = carried();
    const long = 'x'.repeat(100_000);
    state.status.held = everyKind();
    state.status.registration = recordedRegistration({ name: long, state: long, activity: long });
    state.status.lastCheck = recordedCheck({ at: NOW, tunnel: true, glidein: true, registered: true, detail: long });
    state.status.steps[0].detail = clipText(long, CARRIED_TEXT.detail);
    state.status.endReason = clipText(long, CARRIED_TEXT.endReason);
    state.status.ghost = clipText(long, CARRIED_TEXT.ghost);
    expect(resumeStateSchema.safeParse(state).success).toBe(true);
    expect(refusedCarry(state)).toBeUndefined();
    expect(state.status.registration.name).toBe(`${'x'.repeat(CARRIED_TEXT.registrationName - 1)}…`);
  });

  it('says which field the next run would refuse', () => {
    const state = carried();
    state.status.lastCheck = { at: 'yesterday', tunnel: true, glidein: true, registered: true };
    expect(refusedCarry(state)).toMatch(/^resume\.status\.lastCheck\.at: expected an ISO 8601 UTC time/);
  });
});

describe('the failure type a failed run closes with', () => {
  const timeout = () =>
    new ActivityFailure(
      'activity timed out',
      'mountCvmfs',
      '1',
      RetryState.TIMEOUT,
      'worker',
      new TimeoutFailure('heartbeat timeout', undefined, TimeoutType.HEARTBEAT),
    );

  it('is the first typed failure in the cause chain', () => {
    const inner = ApplicationFailure.nonRetryable('no such repository', FailureType.CvmfsMountFailed);
    expect(
      failureType(new ActivityFailure('failed', 'mountCvmfs', '1', RetryState.NON_RETRYABLE_FAILURE, 'w', inner)),
    ).toBe('CvmfsMountFailed');
  });

  it('is ActivityTimedOut when an activity timed out, not a generic StepError', () => {
    expect(failureType(timeout())).toBe(FailureType.ActivityTimedOut);
  });

  it('keeps the fault’s type if teardown also failed; TeardownIncomplete when teardown was the sole trouble', () => {
    expect(closingFailureType(timeout(), true)).toBe(FailureType.ActivityTimedOut);
    expect(closingFailureType(ApplicationFailure.nonRetryable('gone', FailureType.GlideinUnregistered), true)).toBe(
      FailureType.GlideinUnregistered,
    );
    expect(closingFailureType(undefined, true)).toBe(FailureType.TeardownIncomplete);
  });

  it('is StepError for an untyped failure', () => {
    expect(failureType(new Error('boom'))).toBe(FailureType.StepError);
    expect(failureType(new CancelledFailure('cancelled'))).toBe(FailureType.StepError);
    expect(failureType(undefined)).toBeUndefined();
  });
});

describe('what a lifecycle holds', () => {
  it('keeps one entry per kind, in the order taken, and updates an entry in place without touching the others', () => {
    const held: HeldResource[] = [];
    holdResource(held, { kind: 'allocation', jobName: 'g-1' });
    holdResource(held, { kind: 'tunnel', socksPort: 0 });
    // What allocateNode learnt arrives after the tunnel was recorded: it must not overwrite the tunnel.
    holdResource(held, { kind: 'allocation', jobName: 'g-1', jobId: '42' });
    holdResource(held, { kind: 'tunnel', socksPort: 1080 });
    holdResource(held, { kind: 'cvmfs', repositories: ['cms.cern.ch'] });
    expect(held).toEqual([
      { kind: 'allocation', jobName: 'g-1', jobId: '42' },
      { kind: 'tunnel', socksPort: 1080 },
      { kind: 'cvmfs', repositories: ['cms.cern.ch'] },
    ]);
  });
});

describe("a glidein's tunnel, as opening, monitoring and closing all judge it", () => {
  const recorded = { pid: 4242, startTime: '123456' };
  it.each<[string, Parameters<typeof isTunnelProcess>[0], boolean]>([
    [
      'a live ssh -D',
      { pidFile: 'tunnel.pid', recorded, alive: true, cmdline: 'ssh -N -D 127.0.0.1:1080 glidein@login' },
      true,
    ],
    [
      'a live ssh -R (the reverse tunnel)',
      { pidFile: 'tunnel.pid', recorded, alive: true, cmdline: '/usr/bin/ssh -v -N -R 1080 worker' },
      true,
    ],
    [
      'a live process that is not ssh, under the recorded pid and start time',
      { pidFile: 'tunnel.pid', recorded, alive: true, cmdline: 'sleep 600' },
      false,
    ],
    ['an ssh without a forward', { pidFile: 'tunnel.pid', recorded, alive: true, cmdline: 'ssh login uptime' }, false],
    ['a dead tunnel', { pidFile: 'tunnel.pid', recorded, alive: false, cmdline: 'ssh -N -D 1080 login' }, false],
    ['no pid file', { pidFile: 'tunnel.pid', alive: false }, false],
  ])('%s: %s', (_what, proc, expected) => {
    expect(isTunnelProcess(proc)).toBe(expected);
  });
});

describe('what a detached spawn answers', () => {
  it('reads started, waiting and exited, and a waiting spawn still names its running process', () => {
    expect(parseSpawn('started 4242 123456\n')).toEqual({ started: { pid: 4242, startTime: '123456' } });
    expect(parseSpawn('waiting 4242 123456')).toEqual({ stillWaiting: { pid: 4242, startTime: '123456' } });
    expect(parseSpawn('exited 4242')).toEqual({ exitedAtOnce: 4242 });
    // A reverse tunnel whose "remote forward success" did not show in time may still come up: its port decides.
    expect(spawnedProcess(parseSpawn('waiting 4242 123456'))).toEqual({ pid: 4242, startTime: '123456' });
    expect(spawnedProcess(parseSpawn('started 4242 123456'))).toEqual({ pid: 4242, startTime: '123456' });
    expect(spawnedProcess(parseSpawn('exited 4242'))).toBeUndefined();
  });

  it.each([
    '',
    'started',
    'started 0 1',
    'started -1 5',
    'started 12 x',
    'started 12 34 extra',
    'waiting 1e3 5',
    'exited',
    'exited $(id)',
    'pwned 1 2',
  ])('refuses the answer %j', (answer) => {
    expect(() => parseSpawn(answer)).toThrow('not started/waiting/exited');
  });
});
