/**
 * Re-records the committed workflow histories from real runs on a dev server and the local test site:
 *   happy-drain.json         launch, registration, drain, teardown
 *   failure-compensation.json  mountCvmfs fails on a repository that does not exist; tunnel and mounts undone
 *   cancellation.json        cancelled while monitoring; teardown; closed as cancelled
 *   slurm-drain.json         JSC in a box: Slurm holder job, registration through the fences, drain, release
 *   fleet-drain.json         GlideinFleet of one: starts its glidein, keeps it, count 0 drains it, drain-all ends it
 *   idle-claim.json          a monitor round reports the glidein registered and idle: its claim goes to the memo; drain
 *   slurm-scancel.json       JSC in a box: the holder job scancelled from outside; the allocation ended, teardown
 *   parallel-drain.json      as happy-drain, recorded since steps run side by side (patch 'concurrent-steps') and
 *                            planning is a local activity (patch 'local-plan')
 *   parallel-mount-fault.json  as failure-compensation, since those patches: the tunnel's steps beside the
 *                              failing mount
 * Re-record a history only for a change that is meant to break it (the runs it stands for are gone); a history
 * recorded before a patch is what proves the patch keeps old runs replaying.
 * Run after an intended workflow change: `npm run record-histories` (all), or name the ones to re-record:
 * `npm run record-histories -- fleet-drain`. Needs root (the local site).
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { WorkflowHandle } from '@temporalio/client';
import { GlideinFleet, LaunchGlidein } from '../src/workflows';
import { drainAllSignal, fleetStatusQuery, setCountUpdate } from '../src/workflows/fleet-messages';
import { drainSignal, statusQuery } from '../src/workflows/messages';
import { BOX_NODES, inNamespace, joinJscBox, leaveJscBox } from '../sandbox/jsc-box';
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

const only = process.argv.slice(2);
const wanted = (name: string) => only.length === 0 || only.includes(name);

async function until<T>(what: string, probe: () => Promise<T | undefined | false>): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const v = await probe();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
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
      if (!wanted(name)) return;
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
    // Since the 'concurrent-steps' and 'local-plan' patches: steps side by side, planning a local activity.
    await record('parallel-drain', SITES_DIR, async (h) => {
      await untilMonitoring(h);
      await h.signal(drainSignal);
    });
    await record(
      'parallel-mount-fault',
      localSiteWith((p) => p.cvmfs.repositories.push('nosuch.example.org')),
      async () => undefined,
    );
    await record(
      'idle-claim',
      localSiteWith((p) => {
        p.monitor = { ...p.monitor, interval: '1s', reportEvery: '2s' };
      }),
      async (h) => {
        await untilMonitoring(h);
        await until('the claim in the memo', async () => (await h.describe()).memo?.claim);
        await h.signal(drainSignal);
      },
    );
    await record('cancellation', SITES_DIR, async (h) => {
      await untilMonitoring(h);
      await h.cancel();
    });
    if (wanted('fleet-drain')) {
      const sites = localSiteWith((p) => {
        p.fleet = { ...p.fleet, maxGlideins: 1, maxStarting: 1, reconcileEvery: '1s' };
      });
      const w = await createTestWorker(env, sites, 'record-fleet-drain');
      try {
        await w.worker.runUntil(async () => {
          const handle = await env.client.workflow.start(GlideinFleet, {
            taskQueue: w.taskQueue,
            workflowId: 'history-fleet-drain',
            args: [{ site: 'local', count: 1, fleet: 'history', lifetime: '10m' }],
          });
          await until('a running glidein', async () => (await handle.query(fleetStatusQuery)).running === 1);
          await handle.executeUpdate(setCountUpdate, { args: [0] });
          await until('drained', async () => {
            const v = await handle.query(fleetStatusQuery);
            return v.running + v.starting + v.draining === 0;
          });
          await handle.signal(drainAllSignal);
          await handle.result();
          writeFileSync(path.join(OUT, 'fleet-drain.json'), historyToJSON(await handle.fetchHistory()) + '\n');
          console.log('recorded fleet-drain.json');
        });
      } finally {
        w.ssh.close();
      }
    }
    if (!wanted('slurm-drain') && !wanted('slurm-scancel')) return;
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
      await record(
        'slurm-scancel',
        SITES_DIR,
        async (h) => {
          await untilMonitoring(h);
          const { allocation } = await h.query(statusQuery);
          const cancelled = await inNamespace(BOX_NODES.login.namespace, ['scancel', allocation!.jobId]);
          if (cancelled.code !== 0) throw new Error(`scancel failed: ${cancelled.stderr}`);
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
