/** Jest globalTeardown of `npm run test:fast`: stops the shared dev server and removes the prebuilt bundle. */
import { rmSync } from 'node:fs';
import type { TestWorkflowEnvironment } from '@temporalio/testing';

export default async function globalTeardown(): Promise<void> {
  const { fastTestEnv, fastTestDir } = globalThis as { fastTestEnv?: TestWorkflowEnvironment; fastTestDir?: string };
  await fastTestEnv?.teardown();
  if (fastTestDir) rmSync(fastTestDir, { recursive: true, force: true });
}
