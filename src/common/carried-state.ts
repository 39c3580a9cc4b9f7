/**
 * What LaunchGlidein carries into its next run by continue-as-new, validated on the way in like any other
 * input: a carried state names site paths, a Slurm job, a node, processes to signal and mounts to release, so
 * a forged or corrupted one must never reach an activity. Pure (zod and the step catalogue): it runs in the workflow
 * sandbox.
 */
import { z } from 'zod';
import { glideinId, hostname, port, repositoryName, absolutePath, siteName } from './validation';
import { STEP_NAMES } from './step-names';
import { CARRIED_TEXT } from './carried-text';

const ms = (max: number) =>
  z
    .number()
    .int('expected whole milliseconds')
    .min(0, 'expected a non-negative number')
    .max(max, `expected at most ${max}`);
const DAY = 86_400_000;
const text = (max: number) => z.string().max(max, `expected at most ${max} characters`);
const isoTime = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z$/, 'expected an ISO 8601 UTC time');

export const MAX_TUNNEL_REPAIRS = 5;
/** Setup, at most MAX_TUNNEL_REPAIRS reopened tunnels, teardown: a carried step list is never longer. */
export const MAX_CARRIED_STEPS = 64;

export const slurmJobId = z.string().regex(/^\d{1,12}(?:_\d{1,9})?$/, 'expected a Slurm job id such as 123456');

const credentialKind = z.enum(['idToken', 'x509Proxy']);

/** The part of a profile the workflow needs to plan a lifecycle (site/plan.ts makes it); recorded in history. */
export const launchPlanSchema = z.strictObject({
  site: siteName,
  glideinId,
  lifetimeMs: ms(30 * DAY).min(10_000, 'expected at least 10000'),
  registrationTimeoutMs: ms(7 * DAY),
  monitorIntervalMs: ms(3_600_000).min(1_000, 'expected at least 1000'),
  /** Absent in plans recorded before monitor.reportEvery existed (they used 10 minutes). */
  monitorRoundMs: ms(DAY).min(1_000, 'expected at least 1000').optional(),
  drainGraceMs: ms(7 * DAY),
  stopGraceMs: ms(DAY),
  repositories: z.array(repositoryName).min(1).max(64),
  workDir: absolutePath,
  collector: z.string().regex(/^[A-Za-z0-9.-]{1,253}:\d{1,5}$/, 'expected host:port'),
  /** Present when a Slurm job must be allocated first. */
  slurm: z.strictObject({ timeLimitMs: ms(30 * DAY), queueTimeoutMs: ms(30 * DAY) }).optional(),
  /** The pool credentials the glidein is given (their kinds; the files stay on the worker); absent: none. */
  credentials: z.array(credentialKind).max(2).optional(),
  /** Continue-as-new after this many events in a run (monitor.historyEvents); absent in older plans: 5,000. */
  historyEvents: z.number().int().min(50, 'expected at least 50').max(50_000, 'expected at most 50000').optional(),
});

/** Every kind of resource a lifecycle can hold on the site: the one list (the step catalogue acquires each, once). */
export const heldResourceSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('allocation'), jobName: glideinId, jobId: slurmJobId.optional() }),
  z.strictObject({ kind: z.literal('tunnel'), socksPort: z.union([z.literal(0), port]) }),
  z.strictObject({ kind: z.literal('cvmfs'), repositories: z.array(repositoryName).max(64) }),
  z.strictObject({
    kind: z.literal('container'),
    instance: z.string().regex(/^glidein-[a-z0-9][a-z0-9-]{0,70}$/, 'expected glidein-<id>'),
  }),
  z.strictObject({ kind: z.literal('glidein') }),
  z.strictObject({ kind: z.literal('credential') }),
]);

/** The kinds heldResourceSchema admits; a status holds each at most once, so never more than these. */
export const HELD_KINDS = heldResourceSchema.options.map((o) => o.shape.kind.value);

const stepOutcomeSchema = z.strictObject({
  // The step catalogue names every step a status can hold.
  step: z.enum(STEP_NAMES),
  status: z.enum(['running', 'ok', 'failed']),
  startedAt: isoTime,
  durationMs: ms(365 * DAY).optional(),
  detail: text(CARRIED_TEXT.detail).optional(),
  error: text(CARRIED_TEXT.error).optional(),
});

const lastCheckSchema = z.strictObject({
  at: isoTime,
  tunnel: z.boolean(),
  glidein: z.boolean(),
  registered: z.boolean(),
  claimed: z.boolean().optional(),
  detail: text(CARRIED_TEXT.detail).optional(),
});

export const claimSchema = z.strictObject({ claimed: z.boolean(), idleSince: isoTime.optional() });

export const carriedStatusSchema = z.strictObject({
  site: siteName,
  glideinId,
  // Only monitoring continues-as-new.
  phase: z.literal('monitoring'),
  steps: z.array(stepOutcomeSchema).max(MAX_CARRIED_STEPS),
  held: z
    .array(heldResourceSchema)
    .max(HELD_KINDS.length)
    .refine(
      (held) => new Set(held.map((h) => h.kind)).size === held.length,
      'expected each kind of resource at most once',
    ),
  registration: z
    .strictObject({
      name: text(CARRIED_TEXT.registrationName),
      state: text(CARRIED_TEXT.registrationField),
      activity: text(CARRIED_TEXT.registrationField),
    })
    .optional(),
  allocation: z.strictObject({ jobId: slurmJobId, node: hostname }).optional(),
  lastCheck: lastCheckSchema.optional(),
  claim: claimSchema.optional(),
  deadline: z.number().int().min(0).max(8.64e15).optional(),
  shutdown: z.enum(['drain', 'stop']).optional(),
  ghost: text(CARRIED_TEXT.ghost).optional(),
  endReason: text(CARRIED_TEXT.endReason).optional(),
});

export const resumeStateSchema = z.strictObject({
  /** The workflow that wrote it; absent in states carried before "strict-resume". */
  workflowId: z.string().min(1).max(1_000).optional(),
  plan: launchPlanSchema,
  status: carriedStatusSchema,
  tunnelRepairs: z
    .number()
    .int()
    .min(0)
    .max(MAX_TUNNEL_REPAIRS + 1),
});
