/**
 * Re-records the committed workflow histories from real runs on a dev server and the local test site:
 *   happy-drain.json         launch, registration, drain, teardown
 *   failure-compensation.json  mountCvmfs fails on a repository that does not exist; tunnel and mounts undone
 *   cancellation.json        cancelled while monitoring; teardown; closed as cancelled
 *   slurm-drain.json         JSC in a box: Slurm holder job, registration through the fences, drain, release
 * Run after an intended workflow change: `npm run record-histories`. Needs root (the local site).
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { WorkflowHandle } from '@temporalio/client';
import { LaunchGlidein } from '../src/workflows';
import { drainSignal, statusQuery } from '../src/workflows/messages';
import { joinJscBox, leaveJscBox } from '../sandbox/jsc-box';
import { joinLocalSite, leaveLocalSite } from '../sandbox/local-site';
import { createTestEnv, createTestWorker } from '../sandbox/temporal';
import { localSiteWith, SITES_DIR } from '../sandbox/sites';

const OUT = path.join(__dirname, '..', 'test', 'histories');

async function untilMonitoring(handle: WorkflowHandle): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await handle.query(statusQuery)).phase === 'monitoring') return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the glidein never reached monitoring');
}

async function main(): Promise<void> {
  await joinLocalSite();
  const env = await createTestEnv();
  try {
    const record = async (
      name: string,
      sitesDir: string,
      drive: (h: WorkflowHandle<typeof LaunchGlidein>) => Promise<void>,
      site = 'local',
    ) => {
      const w = await createTestWorker(env, sitesDir, `record-${name}`);
      try {
        await w.worker.runUntil(async () => {
          const handle = await env.client.workflow.start(LaunchGlidein, {
            taskQueue: w.taskQueue,
            workflowId: `history-${name}`,
            args: [{ site, lifetime: '10m' }],
          });
          await drive(handle);
          await handle.result().catch(() => undefined);
          writeFileSync(path.join(OUT, `${name}.json`), historyToJSON(await handle.fetchHistory()) + '\n');
          console.log(`recorded ${name}.json`);
        });
      } finally {
        w.ssh.close();
      }
    };
    await record('happy-drain', SITES_DIR, async (h) => {
      await untilMonitoring(h);
      await h.signal(drainSignal);
    });
    await record(
      'failure-compensation',
      localSiteWith((p) => p.cvmfs.repositories.push('nosuch.example.org')),
      async () => undefined,
    );
    await record('cancellation', SITES_DIR, async (h) => {
      await untilMonitoring(h);
      await h.cancel();
    });
    await joinJscBox();
    try {
      await record(
        'slurm-drain',
        SITES_DIR,
        async (h) => {
          await untilMonitoring(h);
          await h.signal(drainSignal);
        },
        'jsc-box',
      );
    } finally {
      await leaveJscBox();
    }
  } finally {
    await env.teardown();
    await leaveLocalSite();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
