/**
 * Workflow tests without root: a real Temporal dev server, and one worker per test file whose activities (the
 * production ones, from createActivities) run against in-memory fake sites through ActivityDeps.executorsFor.
 * Each test gets its own fake site under its own site name, so tests never see each other's state.
 */
import './fake-site-runtime';
import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities, type ActivityDeps, type GlideinActivities } from '../../src/activities';
import type { GlideinRef } from '../../src/common/types';
import { SshPool } from '../../src/remote/ssh';
import { SiteRegistry } from '../../src/site/load';
import type { SiteProfile } from '../../src/site/profile';
import { LaunchGlidein } from '../../src/workflows';
import { fakeSiteFor, fakeSitesDir, writeFakeProfile, type FakeSite } from '../../sandbox/fake-site';
import { createTestEnv, workflowBundle } from '../../sandbox/temporal';

export type Handle = WorkflowHandle<typeof LaunchGlidein>;

export interface FakeRun {
  site: FakeSite;
  /** The site's name in this test (its profile's name). */
  name: string;
  /** The worker's task queue (a GlideinFleet started on it starts its glideins there too). */
  taskQueue: string;
  start(id: string, input?: Record<string, unknown>): Promise<Handle>;
}

type Wrap = (activities: GlideinActivities) => GlideinActivities;

export interface FakeHarness {
  env(): TestWorkflowEnvironment;
  /**
   * Runs `body` with a fake site built from `profile` (renamed for this test); then checks that the fake
   * understood every command it was sent. `wrap` replaces this site's activities (to act at a precise moment).
   */
  withFakeSite<T>(profile: Record<string, any>, body: (run: FakeRun) => Promise<T>, wrap?: Wrap): Promise<T>;
}

/** The address of a dev server shared by every file of the run (test/support/fast-global-setup.ts), if there is one. */
export const SHARED_SERVER_ENV = 'GLIDEIN_FAST_TEMPORAL';

/**
 * Call at the top of a test file: a dev server (the run's shared one, or its own) and a worker for the file's tests.
 */
export function useFakeSiteServer(): FakeHarness {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  const sitesDir = fakeSitesDir();
  const sites = new Map<string, FakeSite>();
  const wraps = new Map<string, Wrap>();
  const taskQueue = `fast-${randomUUID()}`;
  const ssh = new SshPool();
  const deps: ActivityDeps = {
    sites: new SiteRegistry(sitesDir),
    ssh,
    executorsFor: (profile: SiteProfile) => {
      const site = sites.get(profile.name);
      if (!site) throw new Error(`no fake site named ${profile.name} in this test`);
      return site.executorsFor(profile);
    },
    pollMs: 100,
  };
  const activities = createActivities(deps);
  // Every activity takes the glidein's ref first: the site it names picks the test's wrap, if any.
  const routed = Object.fromEntries(
    Object.keys(activities).map((name) => [
      name,
      (ref: GlideinRef, ...rest: unknown[]) => {
        const wrap = wraps.get(ref?.site);
        const chosen = (wrap ? wrap(activities) : activities) as unknown as Record<
          string,
          (...a: unknown[]) => unknown
        >;
        return chosen[name](ref, ...rest);
      },
    ]),
  ) as unknown as GlideinActivities;

  beforeAll(async () => {
    const shared = process.env[SHARED_SERVER_ENV];
    env = shared ? await TestWorkflowEnvironment.createFromExistingServer({ address: shared }) : await createTestEnv();
    // GlideinFleet observes its glideins through the worker's Temporal client.
    deps.temporal = env.client;
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: await workflowBundle(),
      activities: routed,
    });
    running = worker.run();
  }, 120_000);
  afterAll(async () => {
    worker?.shutdown();
    await running?.catch(() => undefined);
    ssh.close();
    await env?.teardown();
  }, 60_000);

  let serial = 0;
  return {
    env: () => env,
    async withFakeSite(raw, body, wrap) {
      const name = `fake-${++serial}`;
      const profile = { ...raw, name };
      writeFakeProfile(sitesDir, profile);
      const site = fakeSiteFor(profile);
      sites.set(name, site);
      if (wrap) wraps.set(name, wrap);
      const start: FakeRun['start'] = (id, input = { site: name, lifetime: '10m' }) =>
        env.client.workflow.start(LaunchGlidein, { taskQueue, workflowId: id, args: [input as never] });
      try {
        return await body({ site, name, taskQueue, start });
      } finally {
        expect(site.unknown).toEqual([]);
      }
    },
  };
}

let ids = 0;
/** A workflow id (and so glidein id) unique in this run. */
export function glideinIdFor(what: string): string {
  return `fast-${what}-${Date.now().toString(36)}-${++ids}`;
}
