/**
 * GlideinFleet's state (src/workflows/fleet-state.ts) without a server: what each message does to it, what the
 * setCount validator refuses, when the phase reaches the search attributes, what a round takes in from its
 * observation, and what a continued run carries. The workflow API is stood in for; the rules themselves are
 * fleet-rules.test.ts's, the workflow end to end test/fake-site/fleet.test.ts's.
 */
const handlers = new Map<string, { handler: (...args: any[]) => unknown; validator?: (...args: any[]) => void }>();
const upserts: unknown[] = [];

jest.mock('@temporalio/workflow', () => ({
  ...jest.requireActual('@temporalio/workflow'),
  setHandler: (def: { name: string }, handler: (...args: any[]) => unknown, options?: { validator?: () => void }) =>
    void handlers.set(def.name, { handler, validator: options?.validator }),
  upsertSearchAttributes: (attributes: unknown) => void upserts.push(attributes),
  log: { info: () => undefined },
}));

// (after the mock, which ts-jest hoists above everything anyway)
import { fleetCarriedSchema, type SlotObservation } from '../../src/common/fleet-request';
import type { FleetPlan } from '../../src/site/plan';
import { Fleet } from '../../src/workflows/fleet-state';
import type { FleetView } from '../../src/workflows/fleet-messages';

const PLAN: FleetPlan = {
  site: 'jsc',
  limits: {
    maxGlideins: 3,
    maxStarting: 3,
    startsPerMinute: 30,
    maxFailedStarts: 2,
    failureWindowMs: 600_000,
    probeAfterMs: 60_000,
    maxProbeDelayMs: 240_000,
    maxLive: 6,
  },
  reconcileEveryMs: 60_000,
  historyEvents: 5_000,
  demandProbe: true,
};
const T0 = Date.parse('2026-12-02T12:00:00Z');

function newFleet(count = 2): Fleet {
  const fleet = new Fleet({ site: 'jsc', count, fleet: 'booster', scheduleId: 'fleet-booster' });
  fleet.setHandlers();
  return fleet;
}
const query = () => handlers.get('status')!.handler() as FleetView;
const signal = (name: string) => handlers.get(name)!.handler();
const running = (slot: number): SlotObservation => ({ slot, state: 'running', runId: `run-${slot}`, startedAt: T0 });
const observed = (slots: SlotObservation[], extra: Record<string, unknown> = {}) => ({
  slots,
  schedulePaused: false,
  scheduleGone: false,
  ...extra,
});

beforeEach(() => {
  handlers.clear();
  upserts.length = 0;
  jest.useFakeTimers({ now: T0 });
});
afterEach(() => jest.useRealTimers());

describe('messages', () => {
  it('wires the status query, the setCount update and the drain-all, pause and resume signals', () => {
    newFleet();
    expect([...handlers.keys()]).toEqual(['status', 'setCount', 'drain-all', 'pause', 'resume']);
    expect(query()).toMatchObject({ fleet: 'booster', site: 'jsc', phase: 'planning', desired: 2, rounds: 0 });
  });

  it('setCount takes a count within 0-10000, wakes the round and answers with the new view', () => {
    const fleet = newFleet();
    const { handler, validator } = handlers.get('setCount')!;
    expect(() => validator!(0)).not.toThrow();
    expect(() => validator!(10_000)).not.toThrow();
    expect(handler(5)).toMatchObject({ desired: 5 });
    expect(fleet.wake).toBe(true);
    expect(query().desired).toBe(5);
  });

  it.each([
    [-1, 'count: expected at least 0, got -1'],
    [10_001, 'count: expected at most 10000, got 10001'],
    [1.5, 'count: expected a whole number, got 1.5'],
    ['3', 'count: Invalid input: expected number, received string, got "3"'],
    [null, 'count: Invalid input: expected number, received null, got null'],
  ])('the setCount validator refuses %p, naming the field, and the count stays as it was', (count, message) => {
    newFleet();
    expect(() => handlers.get('setCount')!.validator!(count)).toThrow(message);
    expect(query().desired).toBe(2);
  });

  it('pause, resume and drain-all set what they say and wake the round', () => {
    const fleet = newFleet();
    signal('pause');
    expect(query()).toMatchObject({ paused: true, drainAll: false });
    expect(fleet.wake).toBe(true);
    fleet.wake = false;
    signal('resume');
    expect(query().paused).toBe(false);
    expect(fleet.wake).toBe(true);
    fleet.wake = false;
    signal('drain-all');
    expect(query().drainAll).toBe(true);
    expect(fleet.wake).toBe(true);
  });
});

describe('phase', () => {
  it('reaches the search attributes the first time in a run and then only when it changes', () => {
    const fleet = newFleet();
    fleet.setPhase(fleet.phase);
    fleet.setPhase('planning');
    fleet.setPhase('filling');
    fleet.setPhase('filling');
    expect(upserts.map((u: any) => u.map((a: any) => `${a.key.name}=${a.value}`).join(' '))).toEqual([
      'GlideinPhase=planning GlideinSite=jsc GlideinFleet=booster',
      'GlideinPhase=filling GlideinSite=jsc GlideinFleet=booster',
    ]);
  });

  it('after a round: draining over backing off over paused, then steady or filling', () => {
    const fleet = newFleet(2);
    const d = fleet.decide(PLAN, observed([running(1)]))!;
    expect(fleet.phaseAfter(d)).toBe('filling');
    fleet.schedulePaused = true;
    expect(fleet.phaseAfter(d)).toBe('paused');
    fleet.memory.backoff = { why: 'failing', since: T0, probeAt: T0, delayMs: 1 };
    expect(fleet.phaseAfter(d)).toBe('backing-off');
    fleet.drainAll = true;
    expect(fleet.phaseAfter(d)).toBe('draining');
  });
});

describe('a round', () => {
  it('observes the share and every remembered slot, and asks for the runs whose end it has not counted', () => {
    const fleet = newFleet();
    fleet.noteStarted(7, 'run-7');
    fleet.memory.slots[2] = { runId: 'run-2', registered: true, counted: true };
    expect(fleet.observation(PLAN)).toEqual({
      fleet: 'booster',
      site: 'jsc',
      slots: [1, 2, 3, 7],
      uncounted: [{ slot: 7, runId: 'run-7' }],
      known: [7],
      scheduleId: 'fleet-booster',
    });
  });

  it('records what it saw: starts what is lacking, keeps the last demand when the probe fails', () => {
    const fleet = newFleet(3);
    const first = fleet.decide(PLAN, observed([running(1), { slot: 2, state: 'free' }], { demand: 2 }))!;
    expect(first.start).toEqual([2]);
    expect(query()).toMatchObject({
      demand: 2,
      running: 1,
      target: 2,
      lastRoundAt: new Date(T0).toISOString(),
      slots: [{ slot: 1, id: 'glidein-booster-1', state: 'running', runId: 'run-1' }],
    });
    fleet.decide(PLAN, observed([running(1)], { demandError: 'probe exited 1' }));
    expect(query()).toMatchObject({ demand: 2, target: 2, demandError: 'probe exited 1' });
  });

  it('paused by signal or by its schedule, it starts nothing', () => {
    const fleet = newFleet(3);
    signal('pause');
    expect(fleet.decide(PLAN, observed([]))!.start).toEqual([]);
    signal('resume');
    expect(fleet.decide(PLAN, observed([], { schedulePaused: true }))!.start).toEqual([]);
    expect(query()).toMatchObject({ schedulePaused: true, held: 'starts are paused' });
  });

  it('ends the run, saying why, when another run holds the fleet or its schedule is gone', () => {
    const yielding = newFleet();
    expect(yielding.decide(PLAN, observed([], { yieldTo: 'run-older' }))).toBeUndefined();
    expect(yielding.endReason).toBe('fleet booster is already run by run-older; this run leaves it that');
    const orphan = newFleet();
    expect(orphan.decide(PLAN, observed([], { scheduleGone: true }))).toBeUndefined();
    expect(orphan.endReason).toBe("schedule fleet-booster was deleted; the fleet's glideins go on running");
  });

  it('drain-all is done once nothing runs, starts or drains', () => {
    const fleet = newFleet();
    signal('drain-all');
    const draining = fleet.decide(PLAN, observed([running(1)]))!;
    expect(draining.drain).toEqual([1]);
    expect(fleet.drainedAll(draining)).toBe(false);
    expect(fleet.drainedAll(fleet.decide(PLAN, observed([{ slot: 1, state: 'free' }]))!)).toBe(true);
  });
});

describe('continue-as-new', () => {
  it('a new run carries nothing it has not seen; a continued run reports its predecessor and carries it on', () => {
    const first = newFleet(3);
    expect(first.carry('fleet-booster').seen).toBeUndefined();
    first.decide(PLAN, observed([running(1)], { demand: 2 }));
    signal('pause');
    first.setPhase(first.phaseAfter(first.decide(PLAN, observed([running(1)]))!));
    const carried = fleetCarriedSchema.parse(JSON.parse(JSON.stringify(first.carry('fleet-booster'))));

    const next = new Fleet({ site: 'jsc', count: 1, fleet: 'booster', scheduleId: 'fleet-booster' }, carried);
    expect(next.view()).toEqual({ ...first.view(), rounds: 0, schedulePaused: false, demandError: undefined });
    expect(next.view()).toMatchObject({ desired: 3, paused: true, demand: 2, phase: 'paused', running: 1 });
    expect(next.carry('fleet-booster')).toEqual(carried);
  });
});
