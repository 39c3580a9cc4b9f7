/**
 * The lint rules that keep workflow code inside Temporal's sandbox: from activities, the remote layer, the worker
 * and the SDK's Node-side packages it may import types only; Node built-ins and I/O libraries not at all.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../..');

const REFUSED = [
  "import { createActivities } from '../activities';",
  "import { createActivities } from '../activities/index';",
  "import { createTunnelActivities } from '../activities/tunnel';",
  "import { SshConnection } from '../remote/ssh';",
  "import { loadSiteProfile } from '../site/load';",
  "import { Context } from '@temporalio/activity';",
  "import { Worker } from '@temporalio/worker';",
  "import { Client } from '@temporalio/client';",
  "import { TestWorkflowEnvironment } from '@temporalio/testing';",
  "import { Runtime } from '@temporalio/worker/lib/runtime';",
  "import { readFileSync } from 'node:fs';",
  "import { readFileSync } from 'fs';",
  "import { Client } from 'ssh2';",
  "import pino from 'pino';",
  "import { SITE_PATHS } from '../../sandbox/local-site';",
  "import { footprint } from '../../sandbox/site-state';",
];
const ALLOWED = [
  "import type { GlideinActivities } from '../activities';",
  "import type { SiteProfile } from '../site/profile';",
  "import type { Context } from '@temporalio/activity';",
  "import type { WorkflowClient } from '@temporalio/client';",
  "import { proxyActivities } from '@temporalio/workflow';",
  "import { ApplicationFailure } from '@temporalio/common';",
  "import { redact } from '../common/redact';",
];

/**
 * The project's own ESLint, in a child process (ESLint loads its flat config with a dynamic import, which jest's
 * module system does not run), linting each line as if it were src/workflows/probe.ts.
 */
const LINT =
  `
const { ESLint } = require('eslint');
(async () => {
  const eslint = new ESLint({ cwd: process.argv[1] });
  const out = {};
  for (const line of JSON.parse(process.argv[2])) {
    const [result] = await eslint.lintText(line + '\\nexport {};\\n', { filePath: process.argv[1] + ` +
  `'/src/workflows/probe.ts' });
    out[line] = result.messages.filter((m) => /no-restricted-imports/.test(m.ruleId || '') || ` +
  `m.fatal).map((m) => m.message);
  }
  process.stdout.write(JSON.stringify(out));
})().catch((err) => { console.error(err); process.exit(1); });
`;
let found: Record<string, string[]>;

beforeAll(() => {
  found = JSON.parse(
    execFileSync(process.execPath, ['-e', LINT, root, JSON.stringify([...REFUSED, ...ALLOWED])], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    }),
  );
}, 90_000);

async function restrictions(code: string): Promise<string[]> {
  return found[code];
}

describe('workflow code imports', () => {
  it.each(REFUSED)('refuses the value import %s', async (line) => {
    expect(await restrictions(line)).not.toEqual([]);
  });

  it.each(ALLOWED)('allows %s', async (line) => {
    expect(await restrictions(line)).toEqual([]);
  });
});
