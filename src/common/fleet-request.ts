/**
 * The GlideinFleet input and what one run carries into the next: small, secret-free, validated in the workflow
 * like every other input (a carried state only in a run continued from this same workflow).
 */
import { z } from 'zod';
import { glideinLifetime, siteName } from './validation';

/** Fleet names become glidein ids `glidein-<fleet>-<slot>` (at most 63 characters). */
export const fleetName = z
  .string()
  .regex(
    /^(?=.{1,40}$)[a-z0-9]+(?:-[a-z0-9]+)*$/,
    'expected 1-40 lowercase letters, digits and single inner hyphens (not at either end)',
  );

/** How many glideins a fleet may be asked to keep: its request's `count`, and its `setCount` update's. */
export const fleetCount = z
  .number()
  .int('expected a whole number')
  .min(0, 'expected at least 0')
  .max(10_000, 'expected at most 10000');

export const fleetRequestSchema = z.strictObject({
  /** A profile name known to the worker: sites/<site>.yaml; its `fleet:` section sets the limits. */
  site: siteName,
  /** How many glideins to keep running (clamped to the profile's fleet.maxGlideins). */
  count: fleetCount,
  /** Names the fleet's glideins (`glidein-<fleet>-<slot>`) and its GlideinFleet search attribute; default: site. */
  fleet: fleetName.optional(),
  /** Each glidein's lifetime; default: the profile's glidein.lifetime. */
  lifetime: glideinLifetime().optional(),
  /** The Temporal Schedule that runs this fleet: pausing it pauses starts, deleting it ends the fleet run. */
  scheduleId: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/, 'expected a schedule id of letters, digits and ._-')
    .optional(),
});

export type FleetRequest = z.output<typeof fleetRequestSchema>;

/** The workflow id of a fleet's slot: also the glidein id on the site (a safe name, kept as it is). */
export function slotId(fleet: string, slot: number): string {
  return `glidein-${fleet}-${slot}`;
}

/**
 * The fleet and slot whose workflow id this is, if it is one a fleet could use (`glidein-<fleet>-<slot>`, any fleet
 * name, any number): such an id is the fleet's, and a LaunchGlidein started by hand under it would hold its slot.
 */
export function fleetSlotOf(workflowId: string): { fleet: string; slot: number } | undefined {
  const m = /^glidein-(.+)-([0-9]+)$/.exec(workflowId);
  return m && fleetName.safeParse(m[1]).success ? { fleet: m[1], slot: Number(m[2]) } : undefined;
}

/** What a fleet may do at its site, from the profile's `fleet:` section (durations in ms). */
export interface FleetLimits {
  /** Most glideins running or starting at once: the site's share. */
  maxGlideins: number;
  /** Most glideins in setup at once. */
  maxStarting: number;
  /** Starts in any rolling minute. */
  startsPerMinute: number;
  /** This many failed starts within failureWindowMs stop the fleet starting. */
  maxFailedStarts: number;
  failureWindowMs: number;
  /** Once stopped: one probe start this long after the last failure, doubled after each failed probe. */
  probeAfterMs: number;
  maxProbeDelayMs: number;
  /**
   * A running glidein without a job this long is idle: a lower demand drains it (never a busy one). Absent in
   * plans made before it existed: any glidein without a job counts as idle.
   */
  idleTimeMs?: number;
  /**
   * Most glideins on the site at once, draining ones included: they still hold a node's SOCKS port (and a Slurm
   * job) until their teardown ends. On a fixed node it is the ports there; where Slurm hands each its own node,
   * twice the share, so that replacements need not wait for a slow drain.
   */
  maxLive: number;
}

const epochMs = z.number().int().min(0).max(8.64e15);
const slotKey = z.string().regex(/^[1-9][0-9]{0,4}$/);
const runId = z
  .string()
  .max(100)
  .regex(/^[A-Za-z0-9-]*$/);
const reason = z.string().max(2_000);

/** FleetMemory (fleet-rules.ts), bounded so that no carried state can grow a run without limit. */
export const fleetMemorySchema = z.strictObject({
  starts: z.array(epochMs).max(10_000),
  failures: z.array(z.strictObject({ at: epochMs, slot: z.number().int().min(1).max(99_999), reason })).max(10_000),
  slots: z.record(
    slotKey,
    z.strictObject({
      runId: runId.optional(),
      registered: z.boolean(),
      counted: z.boolean().optional(),
      drainRequested: z.boolean().optional(),
    }),
  ),
  backoff: z
    .strictObject({
      why: reason,
      since: epochMs,
      probeAt: epochMs,
      delayMs: z.number().int().min(0).max(8.64e15),
      probeSlot: z.number().int().min(1).max(99_999).optional(),
    })
    .optional(),
});

/** A fleet's phase, as its status and its GlideinPhase search attribute say it. */
export const FLEET_PHASES = [
  'planning',
  'filling',
  'steady',
  'backing-off',
  'paused',
  'draining',
  'done',
  'failed',
] as const;

const number = z.number().int().min(0).max(1_000_000);

/** What the last round saw, so that a continued run reports it until its own first round. */
export const fleetSeenSchema = z.strictObject({
  status: z.strictObject({
    desired: number,
    demand: number.optional(),
    target: number,
    running: number,
    starting: number,
    draining: number,
    failedInWindow: number,
    held: reason.optional(),
    backoff: z.strictObject({ why: reason, probeAt: z.string().max(40) }).optional(),
  }),
  slots: z
    .array(
      z.strictObject({
        slot: z.number().int().min(1).max(99_999),
        id: z.string().max(100),
        state: z.enum(['free', 'starting', 'running', 'draining', 'closed']),
        runId: runId.optional(),
        busy: z.boolean().optional(),
      }),
    )
    .max(100_000),
  phase: z.enum(FLEET_PHASES),
  lastRoundAt: z.string().max(40).optional(),
});

export const fleetCarriedSchema = z.strictObject({
  /** The workflow that carried it: a run accepts only its own. */
  workflowId: z.string().max(1_000),
  desired: z.number().int().min(0).max(10_000),
  paused: z.boolean(),
  drainAll: z.boolean(),
  memory: fleetMemorySchema,
  /** The demand probe's last number. */
  demand: number.optional(),
  seen: fleetSeenSchema.optional(),
});

export type FleetCarried = z.output<typeof fleetCarriedSchema>;

/** A slot as observed: the LaunchGlidein running under its id (`<fleet>-<slot>`), if any. */
export type SlotObservation =
  | { slot: number; state: 'free' }
  | {
      slot: number;
      /** starting: planning, setup (queued in Slurm included), registering; running: monitoring. */
      state: 'starting' | 'running' | 'draining';
      runId: string;
      startedAt: number;
      /** A running glidein's startd is claimed (running a job), when the observation knows. */
      busy?: boolean;
      /** Epoch ms since which a running glidein has had no job (its last claim, or its registration), when known. */
      idleSinceMs?: number;
    }
  | {
      slot: number;
      state: 'closed';
      runId: string;
      closedAt: number;
      /** completed (drained, stopped, lifetime, exited by itself) or failed/terminated/timed out/cancelled. */
      outcome: 'completed' | 'failed';
      reason?: string;
    };
