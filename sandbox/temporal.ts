/** A real Temporal dev server (the official CLI, built offline by scripts/ensure-temporal) and a worker on it. */
import { readFile } from 'node:fs/promises';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  DefaultLogger,
  Runtime,
  Worker,
  bundleWorkflowCode,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { Client } from '@temporalio/client';
import { createActivities, type GlideinActivities } from '../src/activities';
import { SshPool } from '../src/remote/ssh';
import { SiteRegistry } from '../src/site/load';
import { GlideinFleet, GlideinId, GlideinPhase, GlideinSite } from '../src/workflows/messages';

import { temporalCli } from './temporal-cli';
import { clusterState, createNamespace, temporalBackend } from './cluster';

export { ROOT, temporalCli } from './temporal-cli';

let namespaces = 0;

/**
 * A Temporal for one test file: a dev server of its own (the default), or, with TEMPORAL_BACKEND=cluster, a namespace
 * of its own on the run's two-node PostgreSQL cluster (sandbox/cluster.ts), reached through node 2's frontend; worker
 * processes connect to node 1's (workerAddress), so every file's work crosses both nodes.
 */
export async function createTestEnv(): Promise<TestWorkflowEnvironment> {
  if (temporalBackend() === 'cluster') {
    const cluster = clusterState();
    const namespace = `t${process.pid}-${++namespaces}-${Date.now().toString(36)}`;
    await createNamespace(namespace);
    return TestWorkflowEnvironment.createFromExistingServer({ address: cluster.frontends[1], namespace });
  }
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalCli() },
      searchAttributes: [GlideinSite, GlideinId, GlideinPhase, GlideinFleet],
    },
  });
}

/** Where a worker process of `env` connects: node 1 of the cluster, else the environment's own server. */
export function workerAddress(env: Pick<TestWorkflowEnvironment, 'address'>): string {
  if (temporalBackend() !== 'cluster') return env.address;
  const { frontends } = clusterState();
  return frontends.includes(env.address) ? frontends[0] : env.address;
}

/**
 * Names a bundle built once for a whole jest run (test/support/fast-global-setup.ts), as JSON; else each file builds
 * its own.
 */
export const PREBUILT_BUNDLE_ENV = 'GLIDEIN_WORKFLOW_BUNDLE';

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** The workflow bundle, built once per test file (or read from the run's prebuilt one). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  const prebuilt = process.env[PREBUILT_BUNDLE_ENV];
  bundle ??= prebuilt
    ? readFile(prebuilt, 'utf8').then((text) => JSON.parse(text) as WorkflowBundleWithSourceMap)
    : bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: quietLogger });
  return bundle;
}

const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

export interface TestWorker {
  worker: Worker;
  ssh: SshPool;
  taskQueue: string;
}

export interface TestWorkerOptions {
  /** Another namespace than the environment's default one. */
  namespace?: string;
  /** Wraps the real activities (a test acts at a precise moment of one of them). */
  wrap?: (activities: GlideinActivities) => GlideinActivities;
}

export async function createTestWorker(
  env: TestWorkflowEnvironment,
  sitesDir: string,
  taskQueue: string,
  options: TestWorkerOptions = {},
): Promise<TestWorker> {
  const ssh = new SshPool();
  const namespace = options.namespace ?? env.namespace ?? 'default';
  const temporal = new Client({ connection: env.nativeConnection, namespace });
  const activities = createActivities({ sites: new SiteRegistry(sitesDir), ssh, temporal });
  const worker = await Worker.create({
    connection: env.nativeConnection,
    namespace,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: options.wrap ? options.wrap(activities) : activities,
  });
  return { worker, ssh, taskQueue };
}

// Keep test output to errors; the worker logs every state change at INFO.
try {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
} catch {
  // already installed in this process
}
