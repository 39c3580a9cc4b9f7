/**
 * What leaves the worker node, all of it through the chain (tunnel -> KIT -> target): verifyOutbound proves the
 * collector and then the profile's further checks (an HTTP GET through the Frontier squid), and cvmfs reaches its
 * proxy from inside the chain with the CVMFS_HTTP_PROXY the profile gives it. KIT lets CONNECT reach the pool's
 * ports only, as the real one does.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { drainSignal, statusQuery } from '../../src/workflows/messages';
import { localSiteWith, SITES_DIR } from '../../sandbox/sites';
import { ENDPOINTS, kitProxyLog, SITE_PATHS } from '../../sandbox/local-site';
import { teardownOrder, type StepName } from '../../src/workflows/steps';
import { splitSteps, stepsOf, useDevServer, waitForPhase } from '../support/workflow-harness';
import { EMPTY, footprint } from '../../sandbox/site-state';

const { withWorker, start } = useDevServer();

const squidLog = () => readFileSync(SITE_PATHS.squidLog, 'utf8');
const KIT = ENDPOINTS.kit.host;
const SQUID = `${ENDPOINTS.squid.host}:${ENDPOINTS.squid.port}`;

describe('outbound through the chain', () => {
  it('proves the Frontier squid after the collector, and cvmfs reaches its proxy through KIT', async () => {
    const id = `wf-out-${Date.now()}`;
    const before = squidLog().length;
    await withWorker(SITES_DIR, async (w) => {
      const handle = await start(w, id);
      const status = await waitForPhase(handle, 'monitoring');
      const verify = status.steps.find((s) => s.step === 'verifyOutbound');
      expect(verify?.detail).toMatch(/^reached 127\.0\.0\.4:9618: .*OK; frontier: HTTP\/1\.1 200 OK$/);
      // Both arrived at the squid from KIT's address: through the chain, not around it.
      const seen = squidLog().slice(before);
      expect(seen).toMatch(
        new RegExp(
          `${KIT.replaceAll('.', '\\.')} TCP_MISS/200 \\d+ GET http://cmsfrontier\\.cern\\.ch:8000/FrontierProd/`,
        ),
      );
      for (const repo of ['cms.cern.ch', 'oasis.opensciencegrid.org']) {
        const asked = seen.split('\n').filter((l) => l.includes(`/cvmfs/${repo}/.cvmfspublished`));
        expect(asked.length).toBeGreaterThan(0);
        for (const line of asked) expect(line).toContain(` ${KIT} TCP_MISS/200 `);
      }
      expect(readFileSync(`${SITE_PATHS.cvmfsexecDir}/dist/etc/cvmfs/default.local`, 'utf8')).toContain(
        `CVMFS_HTTP_PROXY='http://${SQUID}'`,
      );
      await handle.signal(drainSignal);
      expect((await handle.result()).endReason).toBe('drained');
    });
    expect(await footprint(id)).toEqual(EMPTY);
  });

  it('names the Frontier check, its target and the hop when KIT refuses that port', async () => {
    const id = `wf-out-refused-${Date.now()}`;
    const kitBefore = kitProxyLog().length;
    // Something listens there, so only KIT's refusal can fail the check.
    let reached = 0;
    const listener = createServer((s) => (reached++, s.destroy()));
    await new Promise<void>((r) => listener.listen(3129, ENDPOINTS.squid.host, r));
    try {
      await withWorker(
        localSiteWith((p) => (p.outboundChecks[0].port = 3129)),
        async (w) => {
          const handle = await start(w, id);
          const err = await handle.result().catch((e: unknown) => e);
          expect(err).toBeInstanceOf(WorkflowFailedError);
          const failure = (err as WorkflowFailedError).cause as ApplicationFailure;
          expect(failure.message).toContain(
            'outbound check frontier: no outbound connection to GET ' +
              'http://cmsfrontier.cern.ch:8000/FrontierProd/Frontier via 127.0.0.4:3129: the ' +
              'target 127.0.0.4:3129',
          );
          // The mounts, the container and the credential may have run beside the check: each undone, in reverse.
          const steps = stepsOf(await handle.query(statusQuery));
          expect(steps).toContain('verifyOutbound:failed');
          const { setup, teardown } = splitSteps(steps);
          expect(setup.filter((s) => !s.endsWith(':ok'))).toEqual(['verifyOutbound:failed']);
          expect(teardown).toEqual(
            teardownOrder(setup.map((s) => s.split(':')[0]) as StepName[]).map((n) => `${n}:ok`),
          );
          expect(teardown.slice(-2)).toEqual(['closeTunnel:ok', 'cleanupGlidein:ok']);
        },
      );
    } finally {
      await new Promise((r) => listener.close(r));
    }
    // KIT was asked and refused it (its ConnectPort list): nothing reached the listener.
    expect(kitProxyLog().slice(kitBefore)).toContain(`CONNECT ${ENDPOINTS.squid.host}:3129`);
    expect(reached).toBe(0);
    expect(await footprint(id)).toEqual(EMPTY);
  });

  it('fails the mount, naming cvmfs.httpProxy, when cvmfs cannot reach its proxy through the chain', async () => {
    const id = `wf-out-cvmfs-${Date.now()}`;
    await withWorker(
      localSiteWith((p) => (p.cvmfs.httpProxy = `http://${ENDPOINTS.squid.host}:3129`)),
      async (w) => {
        const err = await (await start(w, id)).result().catch((e: unknown) => e);
        const failure = (err as WorkflowFailedError).cause as ApplicationFailure;
        expect(failure.type).toBe('CvmfsMountFailed');
        expect(failure.message).toContain(`proxy http://${ENDPOINTS.squid.host}:3129: no connection`);
        expect(failure.message).toContain('16 - file catalog failure');
      },
    );
    expect(await footprint(id)).toEqual(EMPTY);
  });
});
