/**
 * LaunchGlidein on a real Temporal dev server against the local test site: every site command goes over SSH
 * (the worker node through the login node as a jump host). Faults are injected by changing one field of the
 * site profile, so the real command fails the way it would on a misconfigured site.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure, defaultPayloadConverter } from '@temporalio/common';
import { launchStartOptions } from '../../src/workflows/launch-options';
import { temporalCli } from '../../sandbox/temporal';
import { drainSignal, statusQuery, stopSignal } from '../../src/workflows/messages';
import { localSiteWith, SITES_DIR } from '../../sandbox/sites';
import { setupGraph, teardownOrder, type StepName } from '../../src/workflows/steps';
import { SETUP, splitSteps, stepsOf, TEARDOWN, useDevServer, waitForPhase } from '../support/workflow-harness';
import { EMPTY, footprint } from '../../sandbox/site-state';
import { existsSync } from 'node:fs';
import { sshdLog } from '../../sandbox/local-site';

const { withWorker, start, env } = useDevServer();

/** The summary of each activity scheduled so far, in order, as the Web UI shows it beside the event. */
async function activitySummaries(handle: WorkflowHandle): Promise<Array<[string, string | undefined]>> {
  const { events } = await handle.fetchHistory();
  return (events ?? [])
    .filter((e) => e.activityTaskScheduledEventAttributes)
    .map((e) => [
      e.activityTaskScheduledEventAttributes!.activityType!.name!,
      e.userMetadata?.summary ? defaultPayloadConverter.fromPayload<string>(e.userMetadata.summary) : undefined,
    ]);
}

describe('LaunchGlidein', () => {
  it('reaches registration through the chain, holds one of everything, and drains back to nothing', async () => {
    const id = `wf-happy-${Date.now()}`;
    const request = { site: 'local', lifetime: '10m' };
    await withWorker(SITES_DIR, async (w) => {
      const handle = await start(w, id, request, launchStartOptions(request, { requestedBy: 'the happy-path test' }));
      const monitoring = await waitForPhase(handle, 'monitoring');
      expect(stepsOf(monitoring)).toEqual(SETUP);
      expect(monitoring.registration).toMatchObject({ state: 'Unclaimed', activity: 'Idle' });
      expect(monitoring.held.map((h) => h.kind)).toEqual(['tunnel', 'cvmfs', 'container', 'credential', 'glidein']);

      // How it reads in the Web UI while it monitors: its summary and details, its current details, its memo.
      const described = await handle.describe();
      expect(await described.staticSummary()).toBe('Glidein at local for 10m');
      const staticDetails = await described.staticDetails();
      expect(staticDetails).toContain('**Site:** `local`');
      expect(staticDetails).toContain('**Lifetime:** `10m`, then drained');
      expect(staticDetails).toContain('**Requested by:** the happy-path test');
      expect(staticDetails).toMatch(/openTunnel → verifyOutbound → .* → confirmRegistration/);
      const port = monitoring.held.find((h) => h.kind === 'tunnel')!;
      const socksPort = port.kind === 'tunnel' ? port.socksPort : 0;
      const { currentDetails } = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
      expect(currentDetails).toContain('**Phase:** monitoring');
      expect(currentDetails).toContain(`**Registration:** ${monitoring.registration!.name} (Unclaimed/Idle)`);
      expect(currentDetails).toContain(`**Holds:** tunnel :${socksPort}, CVMFS `);
      expect(currentDetails).toContain(`**Deadline:** ${new Date(monitoring.deadline!).toISOString()}`);
      expect(described.memo).toMatchObject({
        phase: 'monitoring',
        held: 'tunnel, cvmfs, container, credential, glidein',
        site: 'local',
        glideinId: id,
        registration: monitoring.registration!.name,
      });
      // Each activity names what its step touched; the tunnel's port once it is leased.
      // planLaunch is a local activity (no task of its own); the setup steps run side by side where they can.
      const summaries = await activitySummaries(handle);
      const setupActivities = SETUP.map((s) => s.replace(/:ok$/, '')).filter((t) => t !== 'planLaunch');
      const types = summaries.map(([type]) => type);
      expect(types.slice(0, setupActivities.length).sort()).toEqual([...setupActivities].sort());
      expect(types[setupActivities.length]).toBe('monitorGlidein');
      for (const [type, summary] of summaries) expect(summary).toMatch(new RegExp(`^${type} local \\S`));
      expect(Object.fromEntries(summaries)).toMatchObject({
        openTunnel: 'openTunnel local login→worker:<leased port>',
        confirmRegistration: expect.stringContaining(`${id} in collector `),
        monitorGlidein: expect.stringContaining(`tunnel:${socksPort}`),
      });
      // And as an operator reads it: `temporal workflow describe -o json`.
      const { stdout } = await promisify(execFile)(temporalCli(), [
        ...['workflow', 'describe', '--address', env().address, '--namespace', env().namespace ?? 'default'],
        ...['-w', id, '-o', 'json'],
      ]);
      expect(JSON.stringify(JSON.parse(stdout))).toContain('Glidein at local for 10m');

      const held = await footprint(id);
      expect(held.tunnels).toHaveLength(1);
      expect(held.glideins).toHaveLength(1);
      expect(held.instances).toHaveLength(1);
      expect(held.mounts.filter((m) => m.includes('/dist/cvmfs/'))).toHaveLength(2);
      expect(held.ads).toEqual([expect.stringContaining(id)]);

      await handle.signal(drainSignal);
      const result = await handle.result();
      expect(result.endReason).toBe('drained');
      expect(stepsOf(result).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
      expect(result.steps.find((s) => s.step === 'stopGlidein')?.detail).toMatch(/graceful shutdown, SIGTERM/);
    });
    expect(await footprint(id)).toEqual(EMPTY);
  });

  it('is idempotent: a second launch of one glidein id after a stop reuses nothing stale, leaves nothing', async () => {
    const id = `wf-again-${Date.now()}`;
    await withWorker(SITES_DIR, async (w) => {
      for (let round = 0; round < 2; round++) {
        const handle = await start(w, id);
        await waitForPhase(handle, 'monitoring');
        expect((await footprint(id)).glideins).toHaveLength(1);
        await handle.signal(stopSignal);
        expect((await handle.result()).endReason).toBe('stopped');
      }
    });
    expect(await footprint(id)).toEqual(EMPTY);
  });

  it('tears everything down in reverse order when cancelled, and closes as cancelled', async () => {
    const id = `wf-cancel-${Date.now()}`;
    await withWorker(SITES_DIR, async (w) => {
      const handle = await start(w, id);
      await waitForPhase(handle, 'monitoring');
      await handle.cancel();
      const err = await handle.result().catch((e) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(err.cause).toBeInstanceOf(CancelledFailure);
      const status = await handle.query(statusQuery);
      expect(status.endReason).toBe('cancelled');
      expect(stepsOf(status).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
      expect(status.held).toEqual([]);
    });
    expect(await footprint(id)).toEqual(EMPTY);
  });

  it('refuses bad input before any command runs on the site, naming the field', async () => {
    const id = `wf-bad-${Date.now()}`;
    await withWorker(SITES_DIR, async (w) => {
      const handle = await start(w, id, { site: 'local', lifetime: '$(reboot)' });
      const err = await handle.result().catch((e) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(err.cause).toBeInstanceOf(ApplicationFailure);
      expect(err.cause.type).toBe('InvalidRequest');
      expect(err.cause.message).toContain('lifetime: expected a duration');
      const history = await handle.fetchHistory();
      expect(history.events?.some((e) => e.activityTaskScheduledEventAttributes)).toBe(false);
    });
  });

  it.each([
    ['login.host', (p: any) => (p.login.host = '-oProxyCommand=touch /tmp/pwned'), 'login.host: expected a hostname'],
    [
      'workDir',
      (p: any) => (p.workDir = '/tmp/glidein-local-site/site/work/../../../etc'),
      'workDir: expected a path without ".." segments',
    ],
    [
      'cvmfs.repositories',
      (p: any) => (p.cvmfs.repositories = ['cms.cern.ch; reboot']),
      'cvmfs.repositories[0]: expected a CernVM-FS repository name',
    ],
  ])(
    'refuses a site profile with a hostile %s before any connection to the site, naming the field',
    async (_field, change, message) => {
      const id = `wf-hostile-${Date.now()}`;
      const loginLog = sshdLog('login').length;
      await withWorker(localSiteWith(change), async (w) => {
        const err = await (await start(w, id)).result().catch((e) => e);
        expect(err).toBeInstanceOf(WorkflowFailedError);
        expect(err.cause.type).toBe('InvalidSiteProfile');
        expect(err.cause.message).toContain(message);
        const status = await (await env().client.workflow.getHandle(id)).query(statusQuery);
        expect(stepsOf(status)).toEqual(['planLaunch:failed']);
      });
      expect(sshdLog('login').slice(loginLog)).not.toMatch(/Connection from/);
      expect(existsSync('/tmp/pwned')).toBe(false);
    },
  );

  // Each case breaks one step for real; teardown must undo exactly what ran, in reverse.
  const FAULTS: Array<[string, (p: any) => void, string, string[]]> = [
    // A known_hosts on the site without the login node's key: the tunnel's ssh must refuse, never accept it.
    [
      'openTunnel',
      (p) => (p.tunnel.knownHostsFile = '/dev/null'),
      'TunnelHostKeyRejected',
      ['closeTunnel:ok', 'cleanupGlidein:ok'],
    ],
    [
      'verifyOutbound',
      (p) => (p.kitProxy.port = 81),
      'the KIT proxy 127.0.0.3:81',
      ['closeTunnel:ok', 'cleanupGlidein:ok'],
    ],
    [
      'mountCvmfs',
      (p) => p.cvmfs.repositories.push('nosuch.example.org'),
      'nosuch.example.org',
      ['unmountCvmfs:ok', 'closeTunnel:ok', 'cleanupGlidein:ok'],
    ],
    [
      'startContainer',
      (p) => (p.container.image = '/tmp/glidein-local-site/site/images/missing.sif'),
      'missing.sif',
      ['stopContainer:ok', 'unmountCvmfs:ok', 'closeTunnel:ok', 'cleanupGlidein:ok'],
    ],
    [
      'preloadProxychains',
      (p) => (p.proxychains.library = '/usr/lib/x86_64-linux-gnu/libc.so.6'),
      'was not pre-loaded',
      ['stopContainer:ok', 'unmountCvmfs:ok', 'closeTunnel:ok', 'cleanupGlidein:ok'],
    ],
    [
      'startGlidein',
      (p) => (p.glidein.startCommand = ['/cvmfs/cms.cern.ch/glidein/sbin/no_such_master', '-f']),
      'no_such_master',
      TEARDOWN,
    ],
    [
      'confirmRegistration',
      (p) => ((p.glidein.config.UPDATE_COLLECTOR_WITH_TCP = 'False'), (p.glidein.registrationTimeout = '6s')),
      'RegistrationTimeout',
      TEARDOWN,
    ],
  ];

  it.each(FAULTS)(
    'when %s fails, undoes the earlier steps in reverse and fails with the reason',
    async (failing, change, reason, undone) => {
      const id = `wf-fail-${failing.toLowerCase()}-${Date.now()}`;
      await withWorker(localSiteWith(change), async (w) => {
        const handle = await start(w, id);
        const err = await handle.result().catch((e) => e);
        expect(err).toBeInstanceOf(WorkflowFailedError);
        const failure = err.cause as ApplicationFailure;
        expect(`${failure.type} ${failure.message}`).toContain(reason);
        const status = await handle.query(statusQuery);
        const steps = stepsOf(status);
        expect(steps).toContain(`${failing}:failed`);
        // Steps beside the failing one (the credential, the mounts beside the chain check) may have run too:
        // teardown undid exactly what ran, in reverse, and nothing that needs the failing step started.
        const { setup, teardown } = splitSteps(steps);
        const ran = setup.map((s) => s.split(':')[0]);
        for (const { name, needs } of setupGraph({ slurm: false, credentials: true }))
          if (needs.includes(failing as never)) expect(ran).not.toContain(name);
        expect(undone.every((u) => teardown.includes(u))).toBe(true);
        expect(teardown).toEqual(teardownOrder(ran as StepName[]).map((n) => `${n}:ok`));
        expect(status.held).toEqual([]);
        expect(status.phase).toBe('failed');
      });
      expect(await footprint(id)).toEqual(EMPTY);
    },
  );
});
