/**
 * A fault at each setup step on the fake site: teardown undoes exactly what ran (what came before, and what ran
 * beside it), in reverse, and the run
 * fails with the step's failure type; a permanent fault is not retried, a transient one is, and then succeeds.
 * And the Slurm way to a node: the holder job, and sbatch refusing it.
 */
import '../support/fake-site-runtime';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { EMPTY_FOOTPRINT, FAKE_SITE_DIR, fakeProfile, fakeSlurmProfile, type FakeSite } from '../../sandbox/fake-site';
import { drainSignal, statusQuery, stopSignal } from '../../src/workflows/messages';
import { setupGraph, teardownOrder, type StepName } from '../../src/workflows/steps';
import {
  FAKE_SETUP as SETUP,
  FAKE_TEARDOWN as TEARDOWN,
  splitSteps,
  stepsOf,
  waitForPhase,
} from '../support/workflow-harness';
import { glideinIdFor, useFakeSiteServer } from '../support/fake-site-harness';

const { withFakeSite } = useFakeSiteServer();
const WORK_DIR = `${FAKE_SITE_DIR}/site/work`;
const UNDO_TUNNEL = ['closeTunnel:ok', 'cleanupGlidein:ok'];
const UNDO_MOUNT = ['unmountCvmfs:ok', ...UNDO_TUNNEL];
const UNDO_CONTAINER = ['stopContainer:ok', ...UNDO_MOUNT];

interface Fault {
  step: string;
  /** The fault, as a profile change (a misconfigured site) or a fault of the fake site. */
  profile?: (p: Record<string, any>) => void;
  site?: (s: FakeSite) => void;
  reason: string;
  undone: string[];
}

const FAULTS: Fault[] = [
  {
    step: 'openTunnel',
    site: (s) => (s.faults.tunnelSsh = { output: 'glidein@127.0.0.1: Permission denied (publickey).' }),
    reason: 'TunnelAuthRejected',
    undone: UNDO_TUNNEL,
  },
  {
    step: 'verifyOutbound',
    site: (s) => (s.faults.kitDown = true),
    reason: 'the KIT proxy 127.0.0.3:80',
    undone: UNDO_TUNNEL,
  },
  {
    step: 'mountCvmfs',
    profile: (p) => p.cvmfs.repositories.push('nosuch.example.org'),
    reason: 'CvmfsMountFailed',
    undone: UNDO_MOUNT,
  },
  {
    step: 'startContainer',
    profile: (p) => (p.container.image = `${FAKE_SITE_DIR}/site/images/missing.sif`),
    reason: 'ContainerStartFailed',
    undone: UNDO_CONTAINER,
  },
  {
    step: 'preloadProxychains',
    profile: (p) => (p.proxychains.library = '/usr/lib/x86_64-linux-gnu/libc.so.6'),
    reason: 'PreloadFailed',
    undone: UNDO_CONTAINER,
  },
  {
    step: 'startGlidein',
    profile: (p) => (p.glidein.startCommand = ['/cvmfs/cms.cern.ch/glidein/sbin/no_such_master', '-f']),
    reason: 'GlideinStartFailed',
    undone: TEARDOWN,
  },
  {
    step: 'confirmRegistration',
    profile: (p) => (p.glidein.registrationTimeout = '1s'),
    site: (s) => (s.faults.glideinNeverRegisters = true),
    reason: 'RegistrationTimeout',
    undone: TEARDOWN,
  },
];

describe('a fault at each setup step', () => {
  it.each(FAULTS.map((f) => [f.step, f] as const))(
    'when %s fails, undoes the earlier steps in reverse and fails with the reason',
    async (step, fault) => {
      const id = glideinIdFor(step.toLowerCase());
      const profile = fakeProfile();
      fault.profile?.(profile);
      await withFakeSite(profile, async ({ site, start }) => {
        fault.site?.(site);
        const handle = await start(id);
        const err = await handle.result().catch((e) => e);
        expect(err).toBeInstanceOf(WorkflowFailedError);
        const failure = err.cause as ApplicationFailure;
        expect(`${failure.type} ${failure.message}`).toContain(fault.reason);
        const status = await handle.query(statusQuery);
        const steps = stepsOf(status);
        expect(steps).toContain(`${step}:failed`);
        const { setup, teardown } = splitSteps(steps);
        // Nothing that needs the failed step started; steps beside it (the mounts beside the tunnel) may have run.
        const ran = setup.map((s) => s.split(':')[0]);
        for (const { name, needs } of setupGraph({ slurm: false }))
          if (needs.includes(step as never)) expect(ran).not.toContain(name);
        expect(fault.undone.every((u) => teardown.includes(u))).toBe(true);
        // Teardown undid exactly what the steps that ran took, in reverse.
        expect(teardown).toEqual(teardownOrder(ran as StepName[]).map((n) => `${n}:ok`));
        expect(status.held).toEqual([]);
        expect(status.phase).toBe('failed');
        expect((await handle.describe()).memo?.stillHeld).toBe('nothing');
        expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
      });
    },
  );
});

describe('retries', () => {
  const starts = (site: FakeSite) =>
    site.commands.filter((c) => c.argv.includes('instance') && c.argv.includes('start')).length;

  it('does not retry a permanent fault (an image that is not there): one instance start, then teardown', async () => {
    const id = glideinIdFor('permanent');
    const profile = fakeProfile();
    profile.container.image = `${FAKE_SITE_DIR}/site/images/missing.sif`;
    await withFakeSite(profile, async ({ site, start }) => {
      const err = await (await start(id)).result().catch((e) => e);
      expect(err.cause.type).toBe('ContainerStartFailed');
      expect(err.cause.message).toContain('missing.sif');
      expect(starts(site)).toBe(1);
    });
  });

  it('retries a transient fault (an instance start that timed out) and goes on once it succeeds', async () => {
    const id = glideinIdFor('transient');
    await withFakeSite(fakeProfile(), async ({ site, start }) => {
      site.faults.instanceStartFails = {
        times: 1,
        output: 'container creation failed: timed out waiting for the instance',
      };
      const handle = await start(id);
      const monitoring = await waitForPhase(handle, 'monitoring');
      expect(stepsOf(monitoring)).toEqual(SETUP);
      expect(starts(site)).toBe(2);
      await handle.signal(stopSignal);
      expect((await handle.result()).endReason).toBe('stopped');
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });

  it('retries a tunnel whose ssh could not connect once', async () => {
    const id = glideinIdFor('tunnel-retry');
    await withFakeSite(fakeProfile(), async ({ site, start }) => {
      site.faults.tunnelSsh = { times: 1, output: 'ssh: connect to host 127.0.0.1 port 2201: Connection refused' };
      const handle = await start(id);
      await waitForPhase(handle, 'monitoring');
      expect(site.commands.filter((c) => c.what === 'SPAWN_DETACHED' && c.argv.includes('ssh'))).toHaveLength(2);
      await handle.signal(stopSignal);
      await handle.result();
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });
});

describe('a Slurm site', () => {
  it('holds a node with a holder job, runs the glidein on it, and releases the job last', async () => {
    const id = glideinIdFor('slurm');
    await withFakeSite(fakeSlurmProfile(), async ({ site, start }) => {
      const handle = await start(id);
      const monitoring = await waitForPhase(handle, 'monitoring');
      expect(stepsOf(monitoring)).toEqual(['planLaunch:ok', 'allocateNode:ok', ...SETUP.slice(1)]);
      expect(monitoring.allocation).toEqual({ jobId: expect.stringMatching(/^\d+$/), node: 'wn01' });
      expect(site.footprint(WORK_DIR).jobs).toEqual([`${monitoring.allocation!.jobId} ${id} RUNNING`]);
      await handle.signal(drainSignal);
      const result = await handle.result();
      expect(stepsOf(result).slice(-TEARDOWN.length - 1)).toEqual([...TEARDOWN, 'releaseNode:ok']);
      expect(result.steps.at(-1)?.detail).toBe(`cancelled job ${monitoring.allocation!.jobId}`);
      // The claim and the work directory were on both nodes; both moved aside.
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });

  it('ends when its job is cancelled from outside, and tears down what it left on the node', async () => {
    const id = glideinIdFor('scancel');
    await withFakeSite(fakeSlurmProfile(), async ({ site, start }) => {
      const handle = await start(id);
      const monitoring = await waitForPhase(handle, 'monitoring');
      site.cancelJobOf(id);
      const result = await handle.result();
      expect(result.endReason).toMatch(/^the allocation ended: its holder job left the queue/);
      expect(stepsOf(result).slice(-TEARDOWN.length - 1)).toEqual([...TEARDOWN, 'releaseNode:ok']);
      expect(result.steps.at(-1)?.detail).toBe('no job held');
      expect(monitoring.allocation?.node).toBe('wn01');
      expect(site.adNames()).toEqual([]);
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });

  it('fails with AllocationRefused when sbatch refuses the holder job, and cleans up', async () => {
    const id = glideinIdFor('sbatch');
    await withFakeSite(fakeSlurmProfile(), async ({ site, start }) => {
      site.faults.sbatchRefuses = 'Batch job submission failed: Invalid partition name specified';
      const handle = await start(id);
      const err = await handle.result().catch((e) => e);
      expect(err.cause.type).toBe('AllocationRefused');
      const status = await handle.query(statusQuery);
      expect(stepsOf(status)).toEqual(['planLaunch:ok', 'allocateNode:failed', 'cleanupGlidein:ok', 'releaseNode:ok']);
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });
});
