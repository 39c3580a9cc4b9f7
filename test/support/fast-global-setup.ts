/**
 * Jest globalSetup of `npm run test:fast`: one dev server and one workflow bundle for the whole run, shared by every
 * test file (each would otherwise start its own server and bundle the workflows again). Nothing here touches a
 * test site.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createTestEnv, PREBUILT_BUNDLE_ENV, workflowBundle } from '../../sandbox/temporal';
import { SHARED_SERVER_ENV } from './fake-site-harness';

export default async function globalSetup(): Promise<void> {
  const [env, bundle] = await Promise.all([createTestEnv(), workflowBundle()]);
  const dir = mkdtempSync(path.join(tmpdir(), 'glidein-fast-'));
  const file = path.join(dir, 'workflow-bundle.json');
  writeFileSync(file, JSON.stringify(bundle));
  process.env[PREBUILT_BUNDLE_ENV] = file;
  process.env[SHARED_SERVER_ENV] = env.address;
  Object.assign(globalThis, { fastTestEnv: env, fastTestDir: dir });
}
