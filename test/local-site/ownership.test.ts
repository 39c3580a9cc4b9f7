/**
 * A glidein's directory on the site belongs to one workflow. Two workflow ids never derive one glidein id (the
 * `COLLIDE` pair did: `COLLIDE` → `collide-93fb137d`, the literal id of a second workflow), and where two
 * workflows still meet on one directory — the same workflow id in two namespaces (or two Temporal clusters)
 * pointed at one site account — the second is refused with GlideinIdConflict before it touches anything, and
 * the first goes on unharmed.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { Client, WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { CLAIM_FILE } from '../../src/site/scripts';
import { FailureType } from '../../src/common/failure-types';
import { glideinIdFor, legacyGlideinIdFor } from '../../src/common/request';
import { LaunchGlidein } from '../../src/workflows';
import { drainSignal, statusQuery } from '../../src/workflows/messages';
import { SITES_DIR } from '../../sandbox/sites';
import { temporalCli } from '../../sandbox/temporal';
import { SITE_PATHS } from '../../sandbox/local-site';
import { useDevServer, waitForPhase } from '../support/workflow-harness';
import { EMPTY, footprint } from '../../sandbox/site-state';

const { withWorker, start, env } = useDevServer();
const run = promisify(execFile);

describe('who owns a glidein on the site', () => {
  it('the COLLIDE pair derives two glidein ids; the second workflow takes nothing of the first', async () => {
    // The pair that shared one glidein before: the legacy derivation maps both to collide-93fb137d.
    expect(legacyGlideinIdFor('COLLIDE')).toBe('collide-93fb137d');
    expect(legacyGlideinIdFor('collide-93fb137d')).toBe('collide-93fb137d');
    const first = glideinIdFor('COLLIDE');
    const second = glideinIdFor('collide-93fb137d');
    expect(first).not.toBe(second);

    await withWorker(SITES_DIR, async (w) => {
      const a = await start(w, 'COLLIDE');
      await waitForPhase(a, 'monitoring');
      const before = await footprint(first);
      expect([before.tunnels.length, before.glideins.length, before.instances.length, before.ads.length]).toEqual([
        1, 1, 1, 1,
      ]);
      const claim = JSON.parse(readFileSync(`${SITE_PATHS.workDir}/${first}/${CLAIM_FILE}`, 'utf8'));
      expect(claim).toEqual({ namespace: env().namespace ?? 'default', workflowId: 'COLLIDE' });

      // The second one runs as its own glidein (here it finds the profile's one SOCKS port taken, and says so).
      const b = await start(w, 'collide-93fb137d');
      const err = await b.result().catch((e) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect((err.cause as ApplicationFailure).type).toBe(FailureType.TunnelPortInUse);
      expect((await b.query(statusQuery)).glideinId).toBe(second);

      // The first is untouched: the same processes, still monitoring.
      expect(await footprint(first)).toEqual(before);
      expect((await a.query(statusQuery)).phase).toBe('monitoring');
      await a.signal(drainSignal);
      expect((await a.result()).endReason).toBe('drained');
    });
    expect(await footprint(first)).toEqual(EMPTY);
    expect(await footprint(second)).toEqual(EMPTY);
  });

  it('one workflow id in two namespaces on a site: the second is a GlideinIdConflict, the first unharmed', async () => {
    const cli = (...args: string[]) => run(temporalCli(), [...args, '--address', env().address], { timeout: 60_000 });
    await cli('operator', 'namespace', 'create', '--namespace', 'other', '--retention', '24h').catch((e) => {
      if (!/already/i.test(`${e.stderr}`)) throw e;
    });
    for (const name of ['GlideinSite', 'GlideinId', 'GlideinPhase']) {
      await cli(
        'operator',
        'search-attribute',
        'create',
        '--namespace',
        'other',
        '--name',
        name,
        '--type',
        'Keyword',
      ).catch((e) => {
        if (!/already/i.test(`${e.stderr}`)) throw e;
      });
    }
    const id = `ns-twin-${Date.now()}`;
    await withWorker(SITES_DIR, async (w) => {
      const first = await start(w, id);
      await waitForPhase(first, 'monitoring');
      const before = await footprint(id);
      const client = new Client({ connection: env().client.connection, namespace: 'other' });
      const err = await withWorker(
        SITES_DIR,
        async (w2) => {
          const twin = await client.workflow.start(LaunchGlidein, {
            taskQueue: w2.taskQueue,
            workflowId: id,
            args: [{ site: 'local', lifetime: '10m' }],
          });
          const e = await twin.result().catch((x) => x);
          const status = await twin.query(statusQuery);
          // Refused at its first step on the site, and nothing released: none of it was its own.
          // (the credential, beside the tunnel, is refused at the same check)
          expect(status.steps.map((s) => `${s.step}:${s.status}`)).toEqual([
            'planLaunch:ok',
            'openTunnel:failed',
            'stageCredential:failed',
          ]);
          expect(status.held).toEqual([]);
          expect((await twin.describe()).memo?.teardown).toEqual(['skipped: the glidein belongs to another workflow']);
          return e;
        },
        undefined,
        { namespace: 'other' },
      );
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect((err.cause as ApplicationFailure).type).toBe(FailureType.GlideinIdConflict);
      expect((err.cause as ApplicationFailure).message).toMatch(/claimed by another workflow/);

      expect(await footprint(id)).toEqual(before);
      expect((await first.query(statusQuery)).phase).toBe('monitoring');
      await first.signal(drainSignal);
      expect((await first.result()).endReason).toBe('drained');
    });
    expect(await footprint(id)).toEqual(EMPTY);
  });
});
