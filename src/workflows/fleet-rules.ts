/**
 * What a fleet does next, as a pure function of what it knows: its slots as last observed, its own record of
 * starts and failed starts, the limits, the desired count and the demand. GlideinFleet only observes the site's
 * glideins and acts on the answer, so every rule has a unit test without a server (test/unit/fleet-rules.test.ts).
 *
 * The rules answer what the anchors' users complained about:
 * - capacity is what is registered or starting, never a draining glidein (nor a ghost: LaunchGlidein ends one);
 *   yet a draining one still holds its port and node, so all that lives stays within maxLive;
 * - a failing start backs off, then probes once at a time, with a growing delay: never a restart loop;
 * - lowering the count drains (the glidein finishes its jobs within its drain grace), queued and newest first;
 * - nothing is ever removed as stale: a glidein waiting in the Slurm queue is LaunchGlidein's to time out, after
 *   the profile's queueTimeout;
 * - a lower demand drains only glideins still starting or without a job for the profile's idle time.
 */
import type { FleetLimits, SlotObservation } from '../common/fleet-request';

export type { FleetLimits, SlotObservation };

/** What the fleet remembers between rounds, carried across continue-as-new. */
export interface FleetMemory {
  /** Epoch ms of the starts made in the last minute. */
  starts: number[];
  /** Failed starts in the window: a run that closed as failed before the fleet saw it registered. */
  failures: Array<{ at: number; slot: number; reason: string }>;
  /** Per slot, the run the fleet last started or saw there, and whether it has been seen registered. */
  slots: Record<string, { runId?: string; registered: boolean; counted?: boolean; drainRequested?: boolean }>;
  /** Stopped starting after too many failures; probing one start at a time. */
  backoff?: { why: string; since: number; probeAt: number; delayMs: number; probeSlot?: number };
}

export interface FleetInputs {
  now: number;
  /** The count the operator asked for. */
  desired: number;
  /** How many glideins the pool wants here, from the demand probe; undefined: no probe, desired counts. */
  demand?: number;
  /** No new starts (schedule paused, fleet paused, draining the whole site); running glideins are left alone. */
  startsPaused?: boolean;
  /** Drain every glidein of the fleet. */
  drainAll?: boolean;
  limits: FleetLimits;
  slots: SlotObservation[];
  memory: FleetMemory;
}

export interface FleetStatus {
  desired: number;
  demand?: number;
  target: number;
  running: number;
  starting: number;
  draining: number;
  failedInWindow: number;
  /** Why the fleet is not starting what it lacks, if it is not. */
  held?: string;
  backoff?: { why: string; probeAt: string };
}

export interface FleetDecision {
  /** Slots to start a LaunchGlidein in, lowest first. */
  start: number[];
  /** Slots whose glidein is to be drained. */
  drain: number[];
  memory: FleetMemory;
  status: FleetStatus;
}

export function emptyMemory(): FleetMemory {
  return { starts: [], failures: [], slots: {} };
}

const MINUTE = 60_000;

export function decideFleet(input: FleetInputs): FleetDecision {
  const { now, limits } = input;
  const memory = cloneMemory(input.memory);
  memory.starts = memory.starts.filter((t) => t > now - MINUTE);
  memory.failures = memory.failures.filter((f) => f.at > now - limits.failureWindowMs);

  // Learn from what was observed: registrations, and runs that failed before they registered.
  for (const s of input.slots) {
    const known = memory.slots[s.slot];
    if (s.state === 'free') continue;
    if (s.state === 'closed') {
      if (!known || known.runId !== s.runId || known.counted) continue;
      known.counted = true;
      if (s.outcome === 'failed' && !known.registered) {
        memory.failures.push({ at: s.closedAt, slot: s.slot, reason: s.reason ?? 'failed before it registered' });
        if (memory.backoff?.probeSlot === s.slot) {
          const delayMs = Math.min(memory.backoff.delayMs * 2, limits.maxProbeDelayMs);
          memory.backoff = { ...memory.backoff, probeSlot: undefined, delayMs, probeAt: now + delayMs };
        }
      } else if (memory.backoff?.probeSlot === s.slot) {
        // The probe ended without failing (drained, stopped): probe again when due.
        memory.backoff = { ...memory.backoff, probeSlot: undefined };
      }
      continue;
    }
    const entry = known && known.runId === s.runId ? known : { runId: s.runId, registered: false };
    if (s.state === 'running') entry.registered = true;
    memory.slots[s.slot] = entry;
    if (s.state === 'running' && memory.backoff?.probeSlot === s.slot) {
      // The probe registered: whatever failed before works again.
      memory.backoff = undefined;
      memory.failures = [];
    }
  }
  if (!memory.backoff && memory.failures.length >= limits.maxFailedStarts) {
    const last = memory.failures[memory.failures.length - 1];
    memory.backoff = {
      why:
        `${memory.failures.length} failed starts within ${Math.round(limits.failureWindowMs / 1000)} s; ` +
        `last: ${last.reason}`,
      since: now,
      delayMs: limits.probeAfterMs,
      probeAt: now + limits.probeAfterMs,
    };
  }

  const live = input.slots.filter(
    (s): s is Extract<SlotObservation, { state: 'starting' | 'running' | 'draining' }> =>
      s.state === 'starting' || s.state === 'running' || s.state === 'draining',
  );
  const starting = live.filter((s) => s.state === 'starting' && !memory.slots[s.slot]?.drainRequested);
  const running = live.filter((s) => s.state === 'running' && !memory.slots[s.slot]?.drainRequested);
  const draining = live.length - starting.length - running.length;
  const capacity = starting.length + running.length;

  const desired = Math.max(0, Math.min(input.desired, limits.maxGlideins));
  const idleFor = (s: { idleSinceMs?: number; startedAt: number }) => now - (s.idleSinceMs ?? s.startedAt);
  const target = input.drainAll ? 0 : Math.min(desired, input.demand ?? Infinity);

  // Surplus: over the operator's count, any glidein drains (queued and newest first, busy ones last); over the
  // demand only, glideins still starting, and running ones without a job for the profile's idle time.
  const drain: number[] = [];
  const byPreference = [...starting, ...running].sort(
    (a, b) =>
      Number(a.state === 'running') - Number(b.state === 'running') ||
      Number(a.busy === true) - Number(b.busy === true) ||
      b.startedAt - a.startedAt ||
      b.slot - a.slot,
  );
  const overDesired = Math.max(0, capacity - (input.drainAll ? 0 : desired));
  drain.push(...byPreference.slice(0, overDesired).map((s) => s.slot));
  const overDemand = Math.max(0, capacity - overDesired - target);
  drain.push(
    ...byPreference
      .slice(overDesired)
      .filter((s) => s.state === 'starting' || (s.busy !== true && idleFor(s) >= (limits.idleTimeMs ?? 0)))
      .slice(0, overDemand)
      .map((s) => s.slot),
  );
  for (const slot of drain) {
    const known = memory.slots[slot];
    memory.slots[slot] = known ? { ...known, drainRequested: true } : { registered: false, drainRequested: true };
  }

  // Starts: what the target lacks, within the limits.
  const lacking = Math.max(0, target - capacity);
  let held: string | undefined;
  let allowed = lacking;
  const limit = (n: number, why: string) => {
    if (n < allowed) {
      allowed = Math.max(0, n);
      held = why;
    }
  };
  if (lacking > 0) {
    if (input.startsPaused) limit(0, 'starts are paused');
    limit(limits.maxStarting - starting.length, `${starting.length} starting (limits.maxStarting)`);
    limit(
      limits.maxLive - live.length,
      `${live.length} glideins on the site, draining ones included (limits.maxLive: their ports and nodes)`,
    );
    limit(limits.startsPerMinute - memory.starts.length, `${memory.starts.length} starts in the last minute`);
    if (memory.backoff) {
      if (memory.backoff.probeSlot !== undefined) limit(0, `backing off, probe in slot ${memory.backoff.probeSlot}`);
      else if (now < memory.backoff.probeAt) limit(0, `backing off: ${memory.backoff.why}`);
      else limit(1, `backing off, probing: ${memory.backoff.why}`);
    }
  }
  const occupied = new Set(live.map((s) => s.slot));
  const start: number[] = [];
  for (let slot = 1; start.length < allowed; slot++) if (!occupied.has(slot)) start.push(slot);
  for (const slot of start) {
    memory.starts.push(now);
    memory.slots[slot] = { registered: false };
  }
  if (memory.backoff && start.length === 1) memory.backoff.probeSlot = start[0];

  return {
    start,
    drain,
    memory,
    status: {
      desired: input.desired,
      demand: input.demand,
      target,
      running: running.length,
      starting: starting.length,
      draining: draining + drain.length,
      failedInWindow: memory.failures.length,
      held,
      backoff: memory.backoff
        ? { why: memory.backoff.why, probeAt: new Date(memory.backoff.probeAt).toISOString() }
        : undefined,
    },
  };
}

/**
 * Records the run a start made (or found already running under the slot's id: it is that slot's glidein, never a
 * second one), so that its end is told from an older run's.
 */
export function noteStarted(memory: FleetMemory, slot: number, runId: string): void {
  const known = memory.slots[slot];
  if (known?.runId === runId) return;
  memory.slots[slot] = { runId, registered: false };
}

function cloneMemory(m: FleetMemory): FleetMemory {
  return {
    starts: [...m.starts],
    failures: m.failures.map((f) => ({ ...f })),
    slots: Object.fromEntries(Object.entries(m.slots).map(([k, v]) => [k, { ...v }])),
    backoff: m.backoff ? { ...m.backoff } : undefined,
  };
}
