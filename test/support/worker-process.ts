/** The worker as operators run it: `src/worker.ts` in a process of its own, against a test dev server. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { ChildOutput } from './child-output';
import { findSecretsInHistories } from './secrets';
import { ROOT, workerAddress } from '../../sandbox/temporal';

export interface WorkerProcess {
  child: ChildProcess;
  /** Everything it printed so far, in whole lines (a JSON log line is never seen half: ./child-output.ts). */
  log(): string;
  /** SIGINT for a graceful stop, SIGKILL for a crash; resolves when it has exited and its last output is in log(). */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function startWorkerProcess(
  env: Pick<TestWorkflowEnvironment, 'address'> & { namespace?: string },
  taskQueue: string,
  extraEnv: Record<string, string> = {},
): WorkerProcess {
  const child = spawn(process.execPath, [require.resolve('ts-node/dist/bin'), path.join(ROOT, 'src', 'worker.ts')], {
    cwd: ROOT,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: workerAddress(env),
      TEMPORAL_NAMESPACE: env.namespace ?? 'default',
      TASK_QUEUE: taskQueue,
      LOG_LEVEL: 'warn',
      TS_NODE_TRANSPILE_ONLY: 'true',
      // No metrics port unless a test asks for one (METRICS_ADDRESS): test workers would contend for the default.
      METRICS_ADDRESS: 'off',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = new ChildOutput(child);
  return {
    child,
    log: () => output.toString(),
    async stop(signal = 'SIGINT') {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill(signal);
        await exited;
      }
      // 'exit' can come before the last of its output has been read.
      await output.ended(10_000);
    },
  };
}

/** Keys are referenced, never carried: no history on this server may hold key material of the test sites. */
export async function expectNoSecretsInHistories(env: TestWorkflowEnvironment): Promise<void> {
  const { scanned, leaks } = await findSecretsInHistories(env.client);
  expect(scanned).toBeGreaterThan(0);
  expect(leaks).toEqual([]);
}
