/**
 * The names of a lifecycle's steps, by stage, in catalogue order: what a status, a carried state and a metric label
 * may name. The ground floor holds the names; the step catalogue (src/workflows/steps.ts) declares each step's
 * activity, options and inverse, and is checked against this list when it loads (and in test/unit/steps.test.ts):
 * a step added there and not here, or the other way round, fails at once.
 */
const PLAN = ['planLaunch'] as const;
const SETUP = [
  'allocateNode',
  'openTunnel',
  'verifyOutbound',
  'mountCvmfs',
  'startContainer',
  'preloadProxychains',
  'stageCredential',
  'startGlidein',
  'confirmRegistration',
] as const;
const MONITOR = ['monitor'] as const;
/** In catalogue order; the teardown's own order derives from what each step gives back (steps.ts). */
const TEARDOWN = [
  'stopGlidein',
  'removeCredential',
  'stopContainer',
  'unmountCvmfs',
  'closeTunnel',
  'cleanupGlidein',
  'releaseNode',
] as const;

/** Every step name, in lifecycle order. */
export const STEP_NAMES = [...PLAN, ...SETUP, ...MONITOR, ...TEARDOWN] as const;

export type SetupStepName = (typeof SETUP)[number];
export type TeardownStepName = (typeof TEARDOWN)[number];
export type StepName = (typeof STEP_NAMES)[number];
export type Stage = 'plan' | 'setup' | 'monitor' | 'teardown';

/** Each step's stage, by name. */
export const STAGE_OF: Readonly<Record<StepName, Stage>> = Object.fromEntries([
  ...PLAN.map((n) => [n, 'plan']),
  ...SETUP.map((n) => [n, 'setup']),
  ...MONITOR.map((n) => [n, 'monitor']),
  ...TEARDOWN.map((n) => [n, 'teardown']),
]) as Record<StepName, Stage>;
