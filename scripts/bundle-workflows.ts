/** Builds the workflow bundle the production worker loads (lib/workflow-bundle.js): `npm run build`. */
import { writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows') });
  const out = path.join(__dirname, '..', 'lib', 'workflow-bundle.js');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, code);
  console.log(`wrote ${out} (${Math.round(code.length / 1024)} KiB)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
