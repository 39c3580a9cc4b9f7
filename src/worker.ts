/**
 * The worker: runs LaunchGlidein and its activities, reaching sites over SSH from this machine.
 *   TEMPORAL_ADDRESS   (default localhost:7233)   TEMPORAL_NAMESPACE (default "default")
 *   TASK_QUEUE         (default "glideins")        SITES_DIR          (default ./sites)
 */
import * as path from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from './activities';
import { installRuntimeLogger, logger } from './logger';
import { SshPool } from './remote/ssh';
import { SiteRegistry } from './site/load';

export const DEFAULT_TASK_QUEUE = 'glideins';

export interface WorkerConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  sitesDir: string;
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  return {
    address: env.TEMPORAL_ADDRESS ?? 'localhost:7233',
    namespace: env.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue: env.TASK_QUEUE ?? DEFAULT_TASK_QUEUE,
    sitesDir: path.resolve(env.SITES_DIR ?? path.join(__dirname, '..', 'sites')),
  };
}

export function workflowSource(): { workflowsPath: string } {
  return { workflowsPath: require.resolve('./workflows') };
}

export async function createWorker(config: WorkerConfig, connection: NativeConnection, ssh: SshPool): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: config.namespace,
    taskQueue: config.taskQueue,
    ...workflowSource(),
    activities: createActivities({ sites: new SiteRegistry(config.sitesDir), ssh }),
  });
}

async function main(): Promise<void> {
  installRuntimeLogger();
  const config = configFromEnv();
  const ssh = new SshPool({ log: (event, fields) => logger.info(fields, event) });
  const connection = await NativeConnection.connect({ address: config.address });
  try {
    const worker = await createWorker(config, connection, ssh);
    logger.info({ ...config }, 'worker started');
    await worker.run();
  } finally {
    ssh.close();
    await connection.close();
  }
}

if (require.main === module) {
  main().catch((err) => {
    logger.error({ err }, 'worker failed');
    process.exit(1);
  });
}
