/**
 * The worker: runs LaunchGlidein and GlideinFleet and their activities, reaching sites over SSH from this machine.
 *   The Temporal server as every Temporal tool finds it (./temporal-connection.ts): TEMPORAL_ADDRESS (default
 *   localhost:7233), TEMPORAL_NAMESPACE (default "default"), TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE and
 *   the `temporal` CLI's TOML file (TEMPORAL_CONFIG_FILE).
 *   TASK_QUEUE         (default "glideins")        SITES_DIR          (default ./sites)
 *   MAX_CONCURRENT_ACTIVITIES (default 1200)       WORKFLOW_CACHE_SIZE (default 100)
 *   METRICS_ADDRESS    (default 127.0.0.1:9464)    Prometheus metrics at /metrics (temporal_*, glidein_*); `off`: none
 *   LOG_LEVEL          (default info)              LOG_FORMAT (json | pretty; default pretty on a terminal, else json)
 * A taken metrics port stops the worker at start-up, saying so (METRICS_ADDRESS=off runs it without metrics).
 * Sized for a fleet: every glidein being monitored holds one activity slot for its whole monitor round (the
 * SDK's default of 100 slots would leave the 101st glidein unwatched), while its workflow sits idle between
 * reports and need not stay cached (an evicted one replays its ~100 events on its next task).
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from './activities';
import { redact } from './common/redact';
import { activityLogContext, installRuntime, logger } from './logger';
import { activityFailureMetrics, metricsAddressFromEnv, prometheusExporter, sshMetrics } from './metrics';
import { SshPool } from './remote/ssh';
import { SiteRegistry } from './site/load';
import { connectClient, temporalTarget, type TemporalTarget } from './temporal-connection';
import { ConnectionWatch, systemInfoProbe } from './connection-watch';
import { SEARCH_ATTRIBUTES } from './workflows/messages';

export const DEFAULT_TASK_QUEUE = 'glideins';

export interface WorkerConfig {
  address: string;
  namespace: string;
  /** How to connect (TLS, API key): never logged; `secured` says which are in use. */
  temporal: TemporalTarget;
  taskQueue: string;
  sitesDir: string;
  /** Activities run at once: one per monitored glidein, plus the setups and teardowns under way. */
  maxConcurrentActivities: number;
  /** Workflows kept in memory between their tasks. */
  workflowCacheSize: number;
  /** Where the Prometheus endpoint listens (ip:port); undefined: no metrics. */
  metricsAddress?: string;
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[1-9][0-9]{0,6}$/.test(raw))
    throw new Error(`${name}: expected a positive whole number, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const temporal = temporalTarget(env);
  return {
    address: temporal.address,
    namespace: temporal.namespace,
    temporal,
    taskQueue: env.TASK_QUEUE ?? DEFAULT_TASK_QUEUE,
    sitesDir: path.resolve(env.SITES_DIR ?? path.join(__dirname, '..', 'sites')),
    maxConcurrentActivities: positiveInt(env, 'MAX_CONCURRENT_ACTIVITIES', 1200),
    workflowCacheSize: positiveInt(env, 'WORKFLOW_CACHE_SIZE', 100),
    metricsAddress: metricsAddressFromEnv(env),
  };
}

/** The configuration as it may be logged: the connection's secrets named, never shown. */
export function describeConfig(config: WorkerConfig) {
  const { temporal, ...rest } = config;
  return { ...rest, tls: temporal.secured.tls, apiKey: temporal.secured.apiKey };
}

/** The worker options that size it for a fleet (see the top of this file). */
export function fleetOptions(config: WorkerConfig) {
  return {
    maxConcurrentActivityTaskExecutions: config.maxConcurrentActivities,
    maxCachedWorkflows: config.workflowCacheSize,
  };
}

/** The prebuilt bundle (`npm run build` writes lib/workflow-bundle.js) when there is one, else the sources. */
export function workflowSource(): { workflowBundle: { codePath: string } } | { workflowsPath: string } {
  const bundle = process.env.WORKFLOW_BUNDLE ?? path.join(__dirname, 'workflow-bundle.js');
  if (existsSync(bundle)) return { workflowBundle: { codePath: bundle } };
  return { workflowsPath: require.resolve('./workflows') };
}

export async function createWorker(config: WorkerConfig, connection: NativeConnection, ssh: SshPool): Promise<Worker> {
  const sites = new SiteRegistry(config.sitesDir);
  const known = await sites.check();
  logger.info({ sitesDir: config.sitesDir, sites: known }, 'site profiles found');
  return Worker.create({
    connection,
    namespace: config.namespace,
    taskQueue: config.taskQueue,
    ...workflowSource(),
    ...fleetOptions(config),
    // Every activity's log lines name its site and glidein; its failed attempts are counted by type (and by site, for
    // a site with a profile here).
    interceptors: { activity: [activityLogContext, activityFailureMetrics((site) => sites.knows(site))] },
    // GlideinFleet observes its glideins through the worker's own connection.
    activities: createActivities({ sites, ssh, temporal: new Client({ connection, namespace: config.namespace }) }),
  });
}

/**
 * LaunchGlidein upserts GlideinSite, GlideinId and GlideinPhase; on a namespace without them every workflow task
 * would fail. Check before polling, and say what to run (or create them when CREATE_SEARCH_ATTRIBUTES=true).
 */
export async function ensureSearchAttributes(
  config: WorkerConfig,
  create = process.env.CREATE_SEARCH_ATTRIBUTES === 'true',
): Promise<void> {
  const connection = await connectClient(config.temporal);
  try {
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: config.namespace });
    const missing = Object.keys(SEARCH_ATTRIBUTES).filter((name) => !(name in (customAttributes ?? {})));
    if (missing.length === 0) return;
    if (create) {
      await connection.operatorService.addSearchAttributes({
        namespace: config.namespace,
        searchAttributes: Object.fromEntries(
          missing.map((name) => [name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
        ),
      });
      logger.info({ created: missing, namespace: config.namespace }, 'created search attributes');
      return;
    }
    throw new Error(
      `namespace "${config.namespace}" lacks the search attribute(s) ${missing.join(', ')} that ` +
        `LaunchGlidein sets. Create them once:\n` +
        missing
          .map(
            (name) =>
              `  temporal operator search-attribute create --namespace ${config.namespace} --name ` +
              `${name} --type Keyword`,
          )
          .join('\n') +
        '\n(or start the worker with CREATE_SEARCH_ATTRIBUTES=true)',
    );
  } finally {
    await connection.close();
  }
}

/** The runtime (Runtime.install, once per process): logs through the one logger, metrics on config.metricsAddress. */
export function installWorkerRuntime(config: WorkerConfig): void {
  const { metricsAddress } = config;
  try {
    installRuntime(metricsAddress ? { metrics: prometheusExporter(metricsAddress) } : {});
  } catch (err) {
    if (!metricsAddress) throw err;
    throw new Error(
      `cannot serve metrics on METRICS_ADDRESS=${metricsAddress}: ` +
        `${err instanceof Error ? err.message : String(err)} ` +
        '(choose another ip:port, or METRICS_ADDRESS=off to run without metrics)',
    );
  }
  if (metricsAddress) logger.info({ metrics: `http://${metricsAddress}/metrics` }, 'serving metrics');
}

export async function runWorker(): Promise<void> {
  const config = configFromEnv();
  installWorkerRuntime(config);
  await ensureSearchAttributes(config);
  const ssh = new SshPool({ log: (event, fields) => logger.info(fields, event), events: sshMetrics() });
  const connection = await NativeConnection.connect(config.temporal.connection);
  // Says in the log when the server is lost and when it answers again (the SDK reconnects by itself).
  const watch = new ConnectionWatch(systemInfoProbe(connection), logger, { address: config.temporal.address });
  try {
    const worker = await createWorker(config, connection, ssh);
    logger.info({ ...describeConfig(config) }, 'worker started');
    watch.start();
    await worker.run();
  } finally {
    watch.stop();
    ssh.close();
    await connection.close();
  }
}

if (require.main === module) {
  runWorker().catch((err) => {
    logger.error({ err }, 'worker failed');
    console.error(redact(`worker failed: ${err instanceof Error ? err.message : String(err)}`));
    process.exit(1);
  });
}
