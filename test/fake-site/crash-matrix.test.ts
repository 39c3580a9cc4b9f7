/**
 * Crash matrix on the fake site: the worker dies right after a step completed, at every boundary of setup and of
 * teardown, on a plain site and on a JSC-shaped one (a Slurm holder job and a pool credential: every kind of held
 * resource). Its in-flight activities never report anything; a new worker with no memory of it (new activities, new
 * caches, the same site) takes the lifecycle over. At every point the site holds at most one of each resource, after
 * recovery exactly one, and after a drain nothing.
 *
 * The decisions are the workflow's and the activities' (what a retry finds on the site), so the fake site proves them
 * for every boundary in seconds; the real sites keep the cases only a real process shows (a SIGKILLed worker whose ssh
 * was half up, a mount under way, registration polling: test/programs/worker-sigkill.test.ts, and one per kind of site
 * in the box: test/box/jsc-box.test.ts).
 */
import '../support/fake-site-runtime';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities, type GlideinActivities } from '../../src/activities';
import { SshPool } from '../../src/remote/ssh';
import { SiteRegistry } from '../../src/site/load';
import { LaunchGlidein } from '../../src/workflows';
import { drainSignal, statusQuery } from '../../src/workflows/messages';
import { setupOrder, teardownOrder } from '../../src/workflows/steps';
import {
  EMPTY_FOOTPRINT,
  FAKE_SITE_DIR,
  fakeProfile,
  fakeSiteFor,
  fakeSitesDir,
  fakeSlurmProfile,
  writeFakeProfile,
  type FakeSite,
  type Footprint,
} from '../../sandbox/fake-site';
import { createTestEnv, workflowBundle } from '../../sandbox/temporal';
import { mintIdToken } from '../../sandbox/pool-token';
import { waitFor, waitForPhase } from '../support/workflow-harness';
import { glideinIdFor, SHARED_SERVER_ENV } from '../support/fake-site-harness';

const WORK_DIR = `${FAKE_SITE_DIR}/site/work`;

let env: TestWorkflowEnvironment;
let bundle: Awaited<ReturnType<typeof workflowBundle>>;
const sitesDir = fakeSitesDir();

beforeAll(async () => {
  const shared = process.env[SHARED_SERVER_ENV];
  env = shared ? await TestWorkflowEnvironment.createFromExistingServer({ address: shared }) : await createTestEnv();
  bundle = await workflowBundle();
}, 120_000);
afterAll(async () => {
  await env?.teardown();
}, 60_000);

/** A plain site (the worker node reached directly), or a JSC-shaped one: Slurm and a pool credential. */
function profileOf(kind: 'plain' | 'jsc', name: string): Record<string, any> {
  if (kind === 'plain') return fakeProfile(name);
  const p = fakeSlurmProfile(name);
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'glidein-fast-token-')), 'pool.idtoken');
  writeFileSync(file, `${mintIdToken(randomBytes(32), { exp: Math.floor(Date.now() / 1000) + 86_400 })}\n`, {
    mode: 0o600,
  });
  p.credentials = { idToken: file };
  return p;
}

/**
 * A worker process's life, in this process: its own activities (its own ssh pool, profile cache and lookups) on the
 * shared fake site. `crashAfter(step)` makes it die as that step's activity has returned: every activity it starts
 * from then on hangs until the worker is gone, and reports nothing but the worker's own shutdown.
 */
class WorkerLife {
  private readonly ssh = new SshPool();
  private readonly worker: Promise<Worker>;
  private readonly running: Promise<void>;
  private dead = false;
  private crashStep?: string;
  /** Set once the step it was to die after has returned. */
  crashed = false;

  constructor(site: FakeSite, taskQueue: string) {
    const activities = createActivities({
      sites: new SiteRegistry(sitesDir),
      ssh: this.ssh,
      executorsFor: (profile) => site.executorsFor(profile),
      pollMs: 100,
    });
    const guarded = Object.fromEntries(
      Object.entries(activities).map(([name, run]) => [
        name,
        async (...args: unknown[]) => {
          if (this.crashed) return this.hang();
          const result = await (run as (...a: unknown[]) => Promise<unknown>)(...args);
          if (name === this.crashStep) this.crashed = true;
          return result;
        },
      ]),
    ) as unknown as GlideinActivities;
    this.worker = Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: guarded,
    });
    this.running = this.worker.then((w) => w.run());
  }

  crashAfter(step: string): void {
    this.crashStep = step;
  }

  /** Never completes on its own: the worker's shutdown cancels it. */
  private hang(): Promise<never> {
    const signal = Context.current().cancellationSignal;
    return new Promise((_, reject) =>
      signal.addEventListener('abort', () => reject(new CancelledFailure('the worker died'))),
    );
  }

  async die(): Promise<void> {
    if (this.dead) return;
    this.dead = true;
    (await this.worker).shutdown();
    await this.running.catch(() => undefined);
    this.ssh.close();
  }
}

/** At most one of each resource (a crash never leaves a second tunnel, mount, instance, glidein or job). */
function expectAtMostOne(held: Footprint, id: string): void {
  const processes = (kind: string) => held.processes.filter((p) => p.includes(kind)).length;
  expect(held.instances.length).toBeLessThanOrEqual(1);
  expect(held.jobs.length).toBeLessThanOrEqual(1);
  expect(held.workDirs.filter((d) => d.endsWith(`/${id}`)).length).toBeLessThanOrEqual(2);
  expect(processes('ssh')).toBeLessThanOrEqual(1);
  expect(processes('condor_master')).toBeLessThanOrEqual(1);
  expect(new Set(held.mounts).size).toBe(held.mounts.length);
}

const SETUP_BOUNDARIES = setupOrder({ slurm: true, credentials: true }).filter((n) => n !== 'planLaunch');
const TEARDOWN_BOUNDARIES = teardownOrder(setupOrder({ slurm: true, credentials: true })).filter(
  (n) => n !== 'releaseNode',
);

describe('crash matrix on the fake site: the worker dies right after a step, a new one finishes the lifecycle', () => {
  const cases = (['plain', 'jsc'] as const).flatMap((kind) =>
    SETUP_BOUNDARIES.filter((b) => kind === 'jsc' || (b !== 'allocateNode' && b !== 'stageCredential')).map(
      (b) => [kind, b] as const,
    ),
  );

  it.each(cases)(
    '%s site, right after %s: one of everything after recovery, nothing after the drain',
    async (kind, boundary) => {
      const name = `crash-${kind}-${randomUUID().slice(0, 8)}`;
      const profile = profileOf(kind, name);
      writeFakeProfile(sitesDir, profile);
      const site = fakeSiteFor(profile);
      const taskQueue = `crash-${randomUUID()}`;
      const id = glideinIdFor(`crash-${boundary.toLowerCase()}`);

      const first = new WorkerLife(site, taskQueue);
      first.crashAfter(boundary);
      const handle = await env.client.workflow.start(LaunchGlidein, {
        taskQueue,
        workflowId: id,
        args: [{ site: name, lifetime: '10m' }],
      });
      await waitFor(`${boundary} to return`, async () => first.crashed);
      await first.die();
      expectAtMostOne(site.footprint(WORK_DIR), id);

      const second = new WorkerLife(site, taskQueue);
      try {
        const monitoring = await waitForPhase(handle, 'monitoring');
        expect(monitoring.steps.filter((s) => s.status === 'failed')).toEqual([]);
        const held = site.footprint(WORK_DIR);
        expectAtMostOne(held, id);
        expect(held.instances).toEqual([`glidein-${id}`]);
        expect(held.mounts).toHaveLength(2);
        expect(site.tunnels()).toHaveLength(1);
        expect(site.glidein(id)).toBeDefined();
        expect(held.jobs).toHaveLength(kind === 'jsc' ? 1 : 0);
        expect(site.adNames()).toEqual([expect.stringContaining(id)]);
        await handle.signal(drainSignal);
        expect((await handle.result()).endReason).toBe('drained');
        expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
        expect(site.unknown).toEqual([]);
      } finally {
        await second.die();
      }
    },
  );

  it.each(TEARDOWN_BOUNDARIES.map((b) => [b] as const))(
    'JSC-shaped site, in the drain right after %s: a new worker finishes the teardown, nothing is left',
    async (boundary) => {
      const name = `crash-td-${randomUUID().slice(0, 8)}`;
      const profile = profileOf('jsc', name);
      writeFakeProfile(sitesDir, profile);
      const site = fakeSiteFor(profile);
      const taskQueue = `crash-${randomUUID()}`;
      const id = glideinIdFor(`crash-td-${boundary.toLowerCase()}`);

      const first = new WorkerLife(site, taskQueue);
      const handle = await env.client.workflow.start(LaunchGlidein, {
        taskQueue,
        workflowId: id,
        args: [{ site: name, lifetime: '10m' }],
      });
      await waitForPhase(handle, 'monitoring');
      first.crashAfter(boundary);
      await handle.signal(drainSignal);
      await waitFor(`${boundary} to return`, async () => first.crashed);
      await first.die();
      expectAtMostOne(site.footprint(WORK_DIR), id);

      const second = new WorkerLife(site, taskQueue);
      try {
        expect((await handle.result()).endReason).toBe('drained');
        expect((await handle.query(statusQuery)).held).toEqual([]);
        expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
        expect(site.unknown).toEqual([]);
      } finally {
        await second.die();
      }
    },
  );
});
