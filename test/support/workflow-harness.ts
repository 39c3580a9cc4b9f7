/** Shared by the workflow suites: a dev server per file, a worker per test, and waiting on the status query. */
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle, WorkflowStartOptions } from '@temporalio/client';
import { LaunchGlidein } from '../../src/workflows';
import { statusQuery, type GlideinStatus } from '../../src/workflows/messages';
import { setupOrder, TEARDOWN_STEP_NAMES, teardownOrder } from '../../src/workflows/steps';
import { findSecretsInHistories } from './secrets';
import { createTestEnv, createTestWorker, type TestWorker, type TestWorkerOptions } from '../../sandbox/temporal';

export interface Harness {
  env(): TestWorkflowEnvironment;
  /** Runs `body` with a worker for `sitesDir` on `taskQueue` (default: a fresh one). */
  withWorker<T>(
    sitesDir: string,
    body: (w: TestWorker) => Promise<T>,
    taskQueue?: string,
    options?: TestWorkerOptions,
  ): Promise<T>;
  start(
    w: TestWorker,
    id: string,
    input?: Record<string, unknown>,
    /** More start options, e.g. launchStartOptions(…)'s summary and details. */
    options?: Pick<WorkflowStartOptions, 'staticSummary' | 'staticDetails'>,
  ): Promise<WorkflowHandle<typeof LaunchGlidein>>;
}

/** Call at the top of a test file: starts a dev server before the file's tests and stops it after. */
export function useDevServer(): Harness {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await createTestEnv();
  }, 120_000);
  afterAll(async () => {
    // Keys are referenced, never carried: no history of this file's workflows may hold key material.
    if (env) {
      const { scanned, leaks } = await findSecretsInHistories(env.client);
      expect(scanned).toBeGreaterThan(0);
      expect(leaks).toEqual([]);
    }
    await env?.teardown();
  }, 60_000);
  return {
    env: () => env,
    async withWorker(sitesDir, body, taskQueue = `test-${randomUUID()}`, options = {}) {
      const w = await createTestWorker(env, sitesDir, taskQueue, options);
      try {
        return await w.worker.runUntil(body(w));
      } finally {
        w.ssh.close();
      }
    },
    start(w, id, input = { site: 'local', lifetime: '10m' }, options = {}) {
      return env.client.workflow.start(LaunchGlidein, {
        ...options,
        taskQueue: w.taskQueue,
        workflowId: id,
        args: [input as never],
      });
    },
  };
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function waitForPhase(
  handle: WorkflowHandle,
  phase: GlideinStatus['phase'],
  timeoutMs = 60_000,
): Promise<GlideinStatus> {
  let last: GlideinStatus | undefined;
  try {
    return await waitFor(
      `phase ${phase}`,
      async () => {
        last = await handle.query(statusQuery);
        return last.phase === phase && last;
      },
      timeoutMs,
    );
  } catch (err) {
    // Say where it stood: the phase and the steps so far.
    throw new Error(
      `${(err as Error).message}; ${handle.workflowId} is in ${last?.phase}: ` +
        `${last?.steps.map((s) => `${s.step}:${s.status}${s.error ? ` (${s.error})` : ''}`).join(', ')}`,
    );
  }
}

export const stepsOf = (status: { steps: GlideinStatus['steps'] }) => status.steps.map((s) => `${s.step}:${s.status}`);
/** A closed run's `step:status` list cut where teardown begins (its first teardown step). */
export function splitSteps(steps: string[]): { setup: string[]; teardown: string[] } {
  const at = steps.findIndex((s) => (TEARDOWN_STEP_NAMES as readonly string[]).includes(s.split(':')[0]));
  return at < 0 ? { setup: steps, teardown: [] } : { setup: steps.slice(0, at), teardown: steps.slice(at) };
}
/** Setup on the loopback site (no Slurm): every step the catalogue runs there, each succeeding. */
export const SETUP = setupOrder({ slurm: false, credentials: true }).map((step) => `${step}:ok`);
/** Teardown after that setup: the inverses in reverse, with the work directory moved aside before the node would be. */
export const TEARDOWN = teardownOrder(setupOrder({ slurm: false, credentials: true })).map((step) => `${step}:ok`);
/** The same on the fake site (test/fake-site), whose profile has no pool credentials: no credential step. */
export const FAKE_SETUP = setupOrder({ slurm: false }).map((step) => `${step}:ok`);
export const FAKE_TEARDOWN = teardownOrder(setupOrder({ slurm: false })).map((step) => `${step}:ok`);
