/** The fleet's decisions, round by round, without a server: starts, limits, backoff and probes, drains. */
import {
  decideFleet,
  emptyMemory,
  noteStarted,
  type FleetInputs,
  type FleetLimits,
  type FleetMemory,
  type SlotObservation,
} from '../../src/workflows/fleet-rules';
import { claimOf } from '../../src/activities/fleet';

const LIMITS: FleetLimits = {
  maxGlideins: 10,
  maxStarting: 5,
  startsPerMinute: 100,
  maxFailedStarts: 3,
  failureWindowMs: 600_000,
  probeAfterMs: 60_000,
  maxProbeDelayMs: 240_000,
  maxLive: 20,
};

const T0 = Date.parse('2026-12-02T12:00:00Z');

function round(over: Partial<FleetInputs>): ReturnType<typeof decideFleet> {
  return decideFleet({ now: T0, desired: 3, limits: LIMITS, slots: [], memory: emptyMemory(), ...over });
}

type Live = Extract<SlotObservation, { state: 'starting' | 'running' | 'draining' }>;
type Closed = Extract<SlotObservation, { state: 'closed' }>;
const run = (slot: number, state: Live['state'], extra: Partial<Live> = {}): Live => ({
  slot,
  state,
  runId: `run-${slot}`,
  startedAt: T0 - 1000 * (100 - slot),
  ...extra,
});
const closed = (slot: number, outcome: 'completed' | 'failed', runId = `run-${slot}`): Closed => ({
  slot,
  state: 'closed',
  runId,
  closedAt: T0,
  outcome,
  reason: outcome === 'failed' ? 'ContainerImageMissing' : undefined,
});

/** The memory after the fleet started these slots as these runs. */
function started(...slots: number[]): FleetMemory {
  const memory = emptyMemory();
  for (const slot of slots) noteStarted(memory, slot, `run-${slot}`);
  return memory;
}

describe('starting', () => {
  it('starts what the count lacks, in the lowest free slots', () => {
    const d = round({ desired: 3 });
    expect(d.start).toEqual([1, 2, 3]);
    expect(d.drain).toEqual([]);
    expect(d.status).toMatchObject({ target: 3, running: 0, starting: 0, held: undefined });
  });

  it('counts registered and starting glideins as capacity, and never starts a slot that is running', () => {
    const d = round({ desired: 4, slots: [run(1, 'running'), run(3, 'starting')], memory: started(1, 3) });
    expect(d.start).toEqual([2, 4]);
    expect(d.status).toMatchObject({ running: 1, starting: 1 });
  });

  it('never counts a draining glidein as capacity, nor starts its slot', () => {
    const d = round({ desired: 2, slots: [run(1, 'running'), run(2, 'draining')], memory: started(1, 2) });
    expect(d.start).toEqual([3]);
    expect(d.status).toMatchObject({ running: 1, draining: 1 });
  });

  it('replaces a glidein that ended', () => {
    const d = round({ desired: 2, slots: [run(1, 'running'), closed(2, 'completed')], memory: started(1, 2) });
    expect(d.start).toEqual([2]);
    expect(d.status.failedInWindow).toBe(0);
  });

  it('waits for a draining glidein to free its port or node when the site holds no more (limits.maxLive)', () => {
    const limits = { ...LIMITS, maxGlideins: 1, maxLive: 1 };
    const d = round({ desired: 1, limits, slots: [run(1, 'draining')], memory: started(1) });
    expect(d.start).toEqual([]);
    expect(d.status.held).toMatch(/draining ones included/);
    expect(round({ desired: 1, limits, slots: [closed(1, 'completed')], memory: started(1) }).start).toEqual([1]);
  });

  it('holds starts to limits.maxStarting and says so', () => {
    const d = round({ desired: 8, limits: { ...LIMITS, maxStarting: 2 }, slots: [run(1, 'starting')] });
    expect(d.start).toEqual([2]);
    expect(d.status.held).toMatch(/maxStarting/);
  });

  it('holds starts to limits.startsPerMinute over a rolling minute', () => {
    const memory = { ...emptyMemory(), starts: [T0 - 70_000, T0 - 50_000, T0 - 10_000] };
    const d = round({ desired: 8, limits: { ...LIMITS, startsPerMinute: 3 }, memory });
    expect(d.start).toEqual([1]); // the start 70 s ago no longer counts
    expect(d.memory.starts).toEqual([T0 - 50_000, T0 - 10_000, T0]);
    expect(d.status.held).toMatch(/starts in the last minute/);
  });

  it('never asks for more than limits.maxGlideins', () => {
    expect(round({ desired: 50, limits: { ...LIMITS, maxStarting: 50 } }).start).toHaveLength(10);
  });

  it('starts nothing while paused, and leaves running glideins alone', () => {
    const d = round({ desired: 3, startsPaused: true, slots: [run(1, 'running')], memory: started(1) });
    expect(d.start).toEqual([]);
    expect(d.drain).toEqual([]);
    expect(d.status.held).toBe('starts are paused');
  });
});

describe('failures back off, then probe one start at a time', () => {
  it('stops starting after limits.maxFailedStarts failed starts in the window, and says why', () => {
    const d = round({
      desired: 5,
      slots: [closed(1, 'failed'), closed(2, 'failed'), closed(3, 'failed')],
      memory: started(1, 2, 3),
    });
    expect(d.start).toEqual([]);
    expect(d.status.failedInWindow).toBe(3);
    expect(d.status.backoff?.why).toMatch(/3 failed starts within 600 s; last: ContainerImageMissing/);
    expect(d.status.held).toMatch(/backing off/);
  });

  it('does not count a glidein that registered and later failed as a failed start', () => {
    let memory = started(1);
    memory = round({ desired: 1, slots: [run(1, 'running')], memory }).memory;
    const d = round({ desired: 1, slots: [closed(1, 'failed')], memory });
    expect(d.status.failedInWindow).toBe(0);
    expect(d.start).toEqual([1]);
  });

  it('counts a run once, and never an older run of the slot', () => {
    const memory = started(1);
    const first = round({ desired: 1, slots: [closed(1, 'failed')], memory });
    expect(first.memory.failures).toHaveLength(1);
    const again = round({ desired: 0, slots: [closed(1, 'failed')], memory: first.memory });
    expect(again.memory.failures).toHaveLength(1);
    const older = round({ desired: 0, slots: [closed(2, 'failed', 'an-older-run')], memory: started(2) });
    expect(older.memory.failures).toHaveLength(0);
  });

  it('forgets failures older than the window', () => {
    const memory = { ...emptyMemory(), failures: [{ at: T0 - 700_000, slot: 1, reason: 'x' }] };
    expect(round({ memory }).memory.failures).toEqual([]);
  });

  it('probes one start after limits.probeAfterMs, doubles the delay after a failed probe, resumes on success', () => {
    let memory = started(1, 2, 3);
    let d = round({ desired: 5, slots: [closed(1, 'failed'), closed(2, 'failed'), closed(3, 'failed')], memory });
    memory = d.memory;
    // Not yet due.
    d = round({ now: T0 + 30_000, desired: 5, memory });
    expect(d.start).toEqual([]);
    // Due: exactly one probe.
    d = round({ now: T0 + 61_000, desired: 5, memory });
    expect(d.start).toEqual([1]);
    noteStarted(d.memory, 1, 'probe-1');
    memory = d.memory;
    // While the probe is in flight, nothing else starts.
    d = round({ now: T0 + 62_000, desired: 5, slots: [{ ...run(1, 'starting'), runId: 'probe-1' }], memory });
    expect(d.start).toEqual([]);
    expect(d.status.held).toMatch(/probe in slot 1/);
    // The probe fails: the next one waits twice as long.
    d = round({ now: T0 + 90_000, desired: 5, slots: [{ ...closed(1, 'failed'), runId: 'probe-1' }], memory });
    expect(d.start).toEqual([]);
    expect(d.memory.backoff?.probeAt).toBe(T0 + 90_000 + 120_000);
    memory = d.memory;
    d = round({ now: T0 + 211_000, desired: 5, memory });
    expect(d.start).toEqual([1]);
    noteStarted(d.memory, 1, 'probe-2');
    // The probe registers: back to normal starts.
    d = round({ now: T0 + 220_000, desired: 5, slots: [{ ...run(1, 'running'), runId: 'probe-2' }], memory: d.memory });
    expect(d.memory.backoff).toBeUndefined();
    expect(d.status.failedInWindow).toBe(0);
    expect(d.start).toEqual([2, 3, 4, 5]);
  });

  it('never restarts in a loop: a start that always fails is tried a bounded number of times in an hour', () => {
    let memory = emptyMemory();
    let starts = 0;
    let failing: Array<{ slot: number; runId: string }> = [];
    for (let t = 0; t < 3_600_000; t += 10_000) {
      // Every run fails before the next round sees it.
      const slots: SlotObservation[] = failing.map(({ slot, runId }) => ({
        slot,
        state: 'closed',
        runId,
        closedAt: T0 + t,
        outcome: 'failed',
        reason: 'ContainerImageMissing',
      }));
      const d = decideFleet({ now: T0 + t, desired: 10, limits: LIMITS, slots, memory });
      memory = d.memory;
      failing = d.start.map((slot) => {
        const runId = `run-${t}-${slot}`;
        noteStarted(memory, slot, runId);
        return { slot, runId };
      });
      starts += d.start.length;
    }
    // 5 at first (maxStarting), then probes at 1, 2, 4, 4, 4 … minutes: far from one per round (360).
    expect(starts).toBeLessThanOrEqual(5 + 20);
  });
});

describe('scaling down drains, never stops', () => {
  it('drains the surplus when the count is lowered: starting first, then the newest, busy ones last', () => {
    const slots = [
      run(1, 'running', { busy: true, startedAt: T0 - 5000 }),
      run(2, 'running', { startedAt: T0 - 9000 }),
      run(3, 'running', { startedAt: T0 - 4000 }),
      run(4, 'starting'),
    ];
    const d = round({ desired: 1, slots, memory: started(1, 2, 3, 4) });
    expect(d.drain).toEqual([4, 3, 2]);
    expect(d.start).toEqual([]);
    expect(d.status).toMatchObject({ draining: 3 });
  });

  it('does not drain twice: a drained glidein is no longer capacity, nor replaced while the count is low', () => {
    const first = round({ desired: 1, slots: [run(1, 'running'), run(2, 'running')], memory: started(1, 2) });
    expect(first.drain).toEqual([2]);
    const next = round({ desired: 1, slots: [run(1, 'running'), run(2, 'running')], memory: first.memory });
    expect(next.drain).toEqual([]);
    expect(next.start).toEqual([]);
    expect(next.status).toMatchObject({ running: 1, draining: 1 });
  });

  it('under a lower demand drains only glideins without a job', () => {
    const slots = [run(1, 'running', { busy: true }), run(2, 'running', { busy: true }), run(3, 'running')];
    const d = round({ desired: 3, demand: 0, slots, memory: started(1, 2, 3) });
    expect(d.drain).toEqual([3]);
    expect(d.status.target).toBe(0);
  });

  it('under a lower demand drains a glidein only once it has been without a job for the idle time', () => {
    const limits = { ...LIMITS, idleTimeMs: 600_000 };
    const slots = [
      run(1, 'running', { busy: false, idleSinceMs: T0 - 900_000 }),
      run(2, 'running', { busy: false, idleSinceMs: T0 - 60_000 }),
      run(3, 'running', { busy: true }),
      run(4, 'starting'),
    ];
    const d = round({ desired: 4, demand: 0, limits, slots, memory: started(1, 2, 3, 4) });
    // The one still starting and the one idle for 15 minutes; not the one idle for a minute, never the busy one.
    expect(d.drain.sort()).toEqual([1, 4]);
    // Without a claim in its memo, a glidein counts as idle since it started.
    const old = run(5, 'running', { startedAt: T0 - 3_600_000 });
    const unknown = round({ desired: 1, demand: 0, limits, slots: [old], memory: started(5) });
    expect(unknown.drain).toEqual([5]);
    // A lower count (the operator's) drains whatever it must, idle or not, busy last.
    const lower = round({ desired: 1, limits, slots: slots.slice(0, 3), memory: started(1, 2, 3) });
    expect(lower.drain.sort()).toEqual([1, 2]);
  });

  it('starts only what the demand asks for', () => {
    expect(round({ desired: 5, demand: 2 }).start).toEqual([1, 2]);
  });

  it('drains every glidein on drain-all and starts none', () => {
    const slots = [run(1, 'running', { busy: true }), run(2, 'starting')];
    const d = round({ desired: 3, drainAll: true, slots, memory: started(1, 2) });
    expect(d.drain.sort()).toEqual([1, 2]);
    expect(d.start).toEqual([]);
  });
});

describe("a glidein's claim, read back from its memo", () => {
  it('takes what LaunchGlidein writes, and ignores anything else', () => {
    expect(claimOf({ claim: { claimed: true } })).toEqual({ busy: true });
    expect(claimOf({ claim: { claimed: false, idleSince: '2026-12-02T11:50:00.000Z' } })).toEqual({
      busy: false,
      idleSinceMs: T0 - 600_000,
    });
    for (const memo of [
      undefined,
      {},
      { claim: 'busy' },
      { claim: { claimed: 'yes' } },
      { claim: { claimed: false, idleSince: 'yesterday' } },
      { claim: { claimed: true, extra: 1 } },
    ])
      expect(claimOf(memo as Record<string, unknown> | undefined)).toEqual({});
  });
});
