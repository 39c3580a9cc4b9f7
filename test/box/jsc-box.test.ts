/**
 * JSC in a box, operated like JSC: the worker runs as its own process, and only the `temporal` CLI drives it.
 * Firewalls are enforced by namespaces (the worker node reaches only the login node; the login node only ports
 * 80/443), the worker node comes from a real Slurm holder job, and the glidein must register through
 * tunnel → KIT → collector. Checked on the box after every step; nothing may be left behind.
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parse, stringify } from 'yaml';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { LaunchGlidein } from '../../src/workflows';
import { statusQuery, stopSignal } from '../../src/workflows/messages';
import { expectNoSecretsInHistories, startWorkerProcess, type WorkerProcess } from '../support/worker-process';
import { BOX_TEARDOWN, boxHarness, endWhatIsLeft, footprint, NOTHING, run } from './box-harness';
import { createTestEnv, ROOT } from '../../sandbox/temporal';
import {
  boxCollectorAds,
  boxMounts,
  boxProcesses,
  BOX_NODES,
  BOX_PATHS,
  inNamespace,
  joinJscBox,
  kitLog,
  leaveJscBox,
  setKitProxy,
  setStrict,
  bannedSources,
  slurmJobs,
  sshdLog,
} from '../../sandbox/jsc-box';

const TASK_QUEUE = `box-${process.pid}`;

let env: TestWorkflowEnvironment;
let worker: WorkerProcess;
let sites: string;

/** The box's profile, and the same box with the tunnel that needs no key on the site. */
function sitesDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'box-sites-'));
  copyFileSync(path.join(ROOT, 'sites', 'jsc-box.yaml'), path.join(dir, 'jsc-box.yaml'));
  const reverse = parse(readFileSync(path.join(ROOT, 'sites', 'jsc-box.yaml'), 'utf8'));
  reverse.name = 'jsc-box-reverse';
  reverse.tunnel = { mode: 'reverse', socksPort: 1080, knownHostsFile: BOX_PATHS.siteKnownHosts };
  writeFileSync(path.join(dir, 'jsc-box-reverse.yaml'), stringify(reverse));
  const short = parse(readFileSync(path.join(ROOT, 'sites', 'jsc-box.yaml'), 'utf8'));
  short.name = 'jsc-box-short';
  short.workerNode.timeLimit = '5m';
  writeFileSync(path.join(dir, 'jsc-box-short.yaml'), stringify(short));
  // A fleet's glideins share the node: each holder job asks for a share of it, each tunnel leases its own port.
  const fleet = parse(readFileSync(path.join(ROOT, 'sites', 'jsc-box.yaml'), 'utf8'));
  fleet.name = 'jsc-box-fleet';
  fleet.workerNode = { ...fleet.workerNode, memory: '256M', cpusPerTask: 1 };
  delete fleet.tunnel.socksPort;
  fleet.tunnel.socksPorts = '1090-1099';
  fleet.fleet = { ...fleet.fleet, maxGlideins: 3, maxStarting: 3, startsPerMinute: 30, reconcileEvery: '2s' };
  writeFileSync(path.join(dir, 'jsc-box-fleet.yaml'), stringify(fleet));
  // JSC as psslurm has it: the node only by `srun --overlap` steps, the tunnel a relay on the login node.
  const steps = parse(readFileSync(path.join(ROOT, 'sites', 'jsc-box.yaml'), 'utf8'));
  steps.name = 'jsc-box-steps';
  steps.workerNode = { ...steps.workerNode, access: 'srun' };
  delete steps.workerNode.port;
  steps.tunnel = { mode: 'relay', socksPorts: '1100-1109', listenAddress: BOX_NODES.login.address };
  writeFileSync(path.join(dir, 'jsc-box-steps.yaml'), stringify(steps));
  return dir;
}

const { temporal, startLaunch, status, until, closed, drainAndCheck } = boxHarness(() => ({
  env,
  worker,
  taskQueue: TASK_QUEUE,
}));

/** What the box holds for a fleet's glideins (ids `glidein-<fleet>-<slot>`), and every lease on the site. */
async function fleetFootprint(fleet: string) {
  const prefix = `glidein-${fleet}-`;
  const procs = boxProcesses();
  const site = path.dirname(BOX_PATHS.workDir);
  const leases = await run('find', [site, '(', '-path', '*/.ports/*', '-o', '-path', '*/.leases/*', ')', '-type', 'f']);
  return {
    jobs: (await slurmJobs())
      .filter((j) => j.name.startsWith(prefix))
      .map((j) => ({ id: j.id, name: j.name, state: j.state, node: j.nodes })),
    tunnelPorts: procs
      .filter((p) => p.argv[0] === 'ssh' && / -D 127\.0\.0\.1:109\d /.test(p.cmdline))
      .map((p) => / -D 127\.0\.0\.1:(109\d) /.exec(p.cmdline)![1])
      .sort(),
    glideins: procs.filter((p) => p.cmdline.includes('condor_master')).length,
    mounts: boxMounts().filter((m) => m.target.includes('/dist/cvmfs/')).length,
    ads: (await boxCollectorAds())
      .filter((ad) => String(ad.GlideinLaunchId ?? '').startsWith(prefix))
      .map((ad) => String(ad.UpdatesPeerAddress ?? '')),
    adsOf: (await boxCollectorAds())
      .map((ad) => String(ad.GlideinLaunchId ?? ''))
      .filter((id) => id.startsWith(prefix)),
    // Port and mount leases held by this fleet's glideins (a lease file holds its glidein's id).
    leases: leases.stdout
      .split('\n')
      .filter((file) => file.trim() !== '' && readFileSync(file, 'utf8').includes(prefix)),
  };
}

// A failed test's glideins would hold the one worker node for every test after it: end what it left.
afterEach(async () => {
  const left = await endWhatIsLeft(env);
  if (left.length > 0) console.warn(`ended what the test left running: ${left.join(', ')}`);
}, 300_000);

beforeAll(async () => {
  await joinJscBox();
  await setStrict(false); // these suites ssh into the worker node (jsc-box-strict.test.ts is the strict box)
  env = await createTestEnv();
  sites = sitesDir();
  worker = startWorkerProcess(env, TASK_QUEUE, { SITES_DIR: sites });
}, 180_000);

afterAll(async () => {
  await worker?.stop();
  if (env) await expectNoSecretsInHistories(env);
  await env?.teardown();
  await leaveJscBox();
}, 60_000);

/** The setup steps after the allocation, where the crash and cancel matrices stop a lifecycle on the strict box. */
const REAL_CRASH_BOUNDARIES = ['openTunnel', 'startGlidein'];

/** Whether the activity of `step` has completed in the workflow's history. */
async function completed(id: string, step: string): Promise<boolean> {
  const events = (await env.client.workflow.getHandle(id).fetchHistory()).events ?? [];
  const scheduled = events
    .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === step)
    .map((e) => String(e.eventId));
  return events.some((e) => scheduled.includes(String(e.activityTaskCompletedEventAttributes?.scheduledEventId)));
}

/** The worker process killed (SIGKILL) right after `boundary`; a new one must go on with one of everything. */
async function crashAfter(site: string, boundary: string): Promise<void> {
  const id = `box-crash-${site === 'jsc-box' ? 'f' : 's'}-${boundary.toLowerCase()}-${Date.now()}`;
  const handle = await env.client.workflow.start('LaunchGlidein', {
    taskQueue: TASK_QUEUE,
    workflowId: id,
    args: [{ site }],
  });
  await until(`${boundary} to complete`, () => completed(id, boundary));
  await worker.stop('SIGKILL');
  expect((await footprint(id)).jobs).toEqual(['RUNNING@jwc01']);

  worker = startWorkerProcess(env, TASK_QUEUE, { SITES_DIR: sites });
  await until('monitoring after the restart', async () => (await status(id))?.phase === 'monitoring');
  const held = await footprint(id);
  expect([
    held.jobs,
    site === 'jsc-box' ? held.tunnels : held.relays,
    held.glideins,
    held.instances,
    held.mounts,
  ]).toEqual([
    ['RUNNING@jwc01'],
    [site === 'jsc-box' ? 'worker' : 'login'],
    ['worker'],
    ['worker'],
    ['worker', 'worker'],
  ]);
  expect(held.ads).toHaveLength(1);
  await handle.signal('drain');
  expect(JSON.stringify(await handle.result())).toContain('drained');
  expect(await footprint(id)).toEqual(NOTHING);
}

/** `temporal workflow cancel` right after `boundary` (or once monitoring): everything released, closed as cancelled. */
async function cancelAfter(site: string, boundary: string): Promise<void> {
  const id = `box-cancel-${site === 'jsc-box' ? 'f' : 's'}-${boundary.toLowerCase()}-${Date.now()}`;
  await startLaunch(id, JSON.stringify({ site }));
  if (boundary === 'monitoring') await until('monitoring', async () => (await status(id))?.phase === 'monitoring');
  else await until(`${boundary} to complete`, () => completed(id, boundary));
  await temporal('workflow', 'cancel', '--workflow-id', id);
  await closed(id, 'WORKFLOW_EXECUTION_STATUS_CANCELED');
  expect(await footprint(id)).toEqual(NOTHING);
}

/**
 * Cases that run on the strict box too, as jsc-box-steps (srun steps, the relay): JSC as it publishes itself, no
 * sshd on the worker node, from= keys, the login node's ban. They are registered in the strict block at the end.
 */
const strictCases: Array<[string, () => Promise<void>, number | undefined]> = [];
function onBoth(name: string, fn: (site: string) => Promise<void>, timeout?: number): void {
  it(name.replace('%s', 'jsc-box'), () => fn('jsc-box'), timeout);
  strictCases.push([name.replace('%s', 'jsc-box-steps'), () => fn('jsc-box-steps'), timeout]);
}
function onStrict(name: string, fn: () => Promise<void>, timeout?: number): void {
  strictCases.push([name, fn, timeout]);
}

describe('LaunchGlidein in JSC in a box, driven by the temporal CLI', () => {
  it.each([
    ['jsc-box', 'forward tunnel from the worker node'],
    ['jsc-box-reverse', 'reverse tunnel from the login node, no key on the site'],
  ])('%s (%s): Slurm job, chain through KIT, registration; drain leaves the box as it was', async (site) => {
    const id = `box-${site.replace('jsc-box', 'f').replace('f-reverse', 'r')}-${Date.now()}`;
    const kitBefore = kitLog().length;
    await startLaunch(id, JSON.stringify({ site }));
    const monitoring = await until('registration', async () => {
      const s = await status(id);
      return s?.phase === 'monitoring' && s;
    });
    expect(monitoring.steps.map((s) => s.step).slice(0, 3)).toEqual(['planLaunch', 'allocateNode', 'openTunnel']);
    expect(monitoring.allocation?.node).toBe('jwc01');

    const held = await footprint(id);
    expect(held.jobs).toEqual(['RUNNING@jwc01']);
    expect(held.tunnels).toEqual([site === 'jsc-box' ? 'worker' : 'login']);
    expect(held.glideins).toEqual(['worker']);
    expect(held.instances).toEqual(['worker']);
    expect(held.mounts).toEqual(['worker', 'worker']);
    // Registered, and the update reached the collector from KIT's address: through the chain, not around it.
    expect(held.ads).toEqual(['10.77.0.3']);
    expect(kitLog().slice(kitBefore)).toMatch(/CONNECT 10\.77\.0\.4:9618/);

    await drainAndCheck(id);
    const history = JSON.parse(await temporal('workflow', 'show', '--workflow-id', id, '--output', 'json'));
    const activities = history.events
      .filter((e: any) => e.activityTaskScheduledEventAttributes)
      .map((e: any) => e.activityTaskScheduledEventAttributes.activityType.name);
    // planLaunch is a local activity (a marker, no task): the node is the first activity scheduled.
    expect(activities[0]).toBe('allocateNode');
    expect(activities.at(-1)).toBe('releaseNode');
    expect(activities.at(-2)).toBe('cleanupGlidein');
    expect(await footprint(id)).toEqual(NOTHING);
  });

  onStrict(
    'jsc-box-steps (Slurm steps, relay on the login node): no ssh into the node, no key on the site; ' +
      'registered; the glidein lives in the job; drain leaves nothing',
    async () => {
      const id = `box-s-${Date.now()}`;
      const workerSshd = sshdLog('worker').length;
      const kitBefore = kitLog().length;
      const squidBefore = readFileSync(BOX_PATHS.squidLog, 'utf8').length;
      await startLaunch(id, JSON.stringify({ site: 'jsc-box-steps' }));
      const monitoring = await until('registration', async () => {
        const s = await status(id);
        return s?.phase === 'monitoring' && s;
      });
      const jobId = monitoring.allocation!.jobId;
      const held = await footprint(id);
      expect(held.jobs).toEqual(['RUNNING@jwc01']);
      expect(held.glideins).toEqual(['worker']);
      expect(held.instances).toEqual(['worker']);
      expect(held.mounts).toEqual(['worker', 'worker']);
      expect(held.ads).toEqual(['10.77.0.3']);
      expect(kitLog().slice(kitBefore)).toMatch(/CONNECT 10\.77\.0\.4:9618/);
      // The Frontier check and cvmfs (asking its proxy for each repository) went out the same way: from KIT.
      const squid = readFileSync(BOX_PATHS.squidLog, 'utf8').slice(squidBefore);
      expect(squid).toMatch(/ 10\.77\.0\.3 TCP_MISS\/200 \d+ GET http:\/\/cmsfrontier\.cern\.ch:8000\/FrontierProd\//);
      expect(squid).toMatch(/ 10\.77\.0\.3 TCP_MISS\/200 \d+ GET \S+\/cvmfs\/cms\.cern\.ch\/\.cvmfspublished/);
      expect(monitoring.steps.find((s) => s.step === 'verifyOutbound')?.detail).toMatch(/frontier: HTTP\/1\.1 200 OK$/);
      // The tunnel is the relay, on the login node, on a leased port of the range; no ssh tunnel anywhere.
      const relays = boxProcesses().filter((p) => p.argv.includes('jsc-glidein-relay'));
      const portOf = (argv: string[]) => argv[argv.indexOf('jsc-glidein-relay') + 2];
      expect(relays.map((p) => [p.node, portOf(p.argv)])).toEqual([['login', expect.stringMatching(/^110\d$/)]]);
      expect(held.tunnels).toEqual([]);
      // What must outlive a step runs in the job: the glidein's master carries the job's id, and no step's.
      // (Its runtime parent's environment: in the container the master runs with a clean one.)
      const master = boxProcesses().find((p) => p.cmdline.includes('condor_master'))!;
      const stat = readFileSync(`/proc/${master.pid}/stat`, 'utf8');
      const parent = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[1];
      const environ = readFileSync(`/proc/${parent}/environ`, 'utf8').split('\0');
      expect(environ).toContain(`SLURM_JOB_ID=${jobId}`);
      expect(environ.some((e) => e.startsWith('SLURM_STEP_ID='))).toBe(false);
      // The secret stays on the site, readable by the user alone; proxychains.conf holds it filled in.
      const glideinDir = (await run('find', [BOX_PATHS.workDir, '-maxdepth', '1', '-name', `*${id}*`])).stdout.trim();
      expect(glideinDir).not.toBe('');
      for (const file of ['relay.secret', 'config/proxychains.conf'])
        expect((await run('stat', ['-c', '%a', path.join(glideinDir, file)])).stdout.trim()).toBe('600');
      const secret = readFileSync(path.join(glideinDir, 'relay.secret'), 'utf8').trim();
      expect(readFileSync(path.join(glideinDir, 'config', 'proxychains.conf'), 'utf8')).toContain(`glidein ${secret}`);
      expect(worker.log()).not.toContain(secret);
      // Nothing reached the worker node's sshd.
      expect(sshdLog('worker').slice(workerSshd)).not.toMatch(/Accepted/);

      await drainAndCheck(id);
      expect(await footprint(id)).toEqual(NOTHING);
      expect(boxProcesses().filter((p) => p.argv.includes('jsc-glidein-relay'))).toEqual([]);
      expect(sshdLog('worker').slice(workerSshd)).not.toMatch(/Accepted/);
    },
  );

  onBoth(
    '%s: the worker process killed right after allocateNode: a new worker finds the same Slurm job, never ' +
      'submits a second',
    (site) => crashAfter(site, 'allocateNode'),
  );
  // Every boundary is proved on the fake site (test/fake-site/crash-matrix.test.ts, the JSC-shaped cases); here the two
  // that hold a real process across the crash: the relay on the login node, and the glidein in its container.
  for (const boundary of REAL_CRASH_BOUNDARIES)
    onStrict(
      `jsc-box-steps: the worker process killed right after ${boundary}: a new worker goes on with one of ` +
        `everything and drains to nothing`,
      () => crashAfter('jsc-box-steps', boundary),
    );

  it('the same through the TypeScript client: start, status query, stop signal, result', async () => {
    const id = `box-client-${Date.now()}`;
    const handle = await env.client.workflow.start(LaunchGlidein, {
      taskQueue: TASK_QUEUE,
      workflowId: id,
      args: [{ site: 'jsc-box', lifetime: '1h' }],
    });
    const monitoring = await until('monitoring', async () => {
      const s = await handle.query(statusQuery);
      return s.phase === 'monitoring' && s;
    });
    expect(monitoring.registration?.name).toBe(`slot1@${id}@jwc01`);
    expect((await footprint(id)).jobs).toEqual(['RUNNING@jwc01']);
    await handle.signal(stopSignal);
    const result = await handle.result();
    expect(result.endReason).toBe('stopped');
    expect(result.steps.find((s) => s.step === 'stopGlidein')?.detail).toMatch(/SIGTERM/);
    expect(await footprint(id)).toEqual(NOTHING);
  });

  it('drains before the Slurm walltime ends: the deadline is the time left minus drainGrace and a minute', async () => {
    const id = `box-walltime-${Date.now()}`;
    const started = Date.now();
    const handle = await env.client.workflow.start(LaunchGlidein, {
      taskQueue: TASK_QUEUE,
      workflowId: id,
      args: [{ site: 'jsc-box-short', lifetime: '1h' }],
    });
    const monitoring = await until('monitoring', async () => {
      const s = await handle.query(statusQuery);
      return s.phase === 'monitoring' && s;
    });
    expect((await slurmJobs()).find((j) => j.name === id)?.timeLeft).toMatch(/^[45]:\d\d$/);
    // 5 min walltime - 20 s drainGrace - 60 s margin, not the 1 h lifetime.
    expect(monitoring.deadline! - started).toBeGreaterThan(200_000);
    expect(monitoring.deadline! - started).toBeLessThan(225_000);
    await handle.signal(stopSignal);
    await handle.result();
    expect(await footprint(id)).toEqual(NOTHING);
  });

  onBoth('%s: cancel releases everything, the Slurm job last, and the workflow closes as cancelled', (site) =>
    cancelAfter(site, 'monitoring'),
  );
  // Cancellation at every boundary is proved on the fake site (test/fake-site/cancel-matrix.test.ts); here the first
  // and the one that holds everything but the registration.
  for (const boundary of ['allocateNode', 'startGlidein'])
    onStrict(`jsc-box-steps: cancelled right after ${boundary}: releases what it took and closes as cancelled`, () =>
      cancelAfter('jsc-box-steps', boundary),
    );

  onStrict(
    'jsc-box-steps: the job cancelled from outside ends the glidein as allocation-ended; its processes and ' +
      'mounts ended with the job, teardown releases the relay and the leases; nothing left',
    async () => {
      const id = `box-scancel-s-${Date.now()}`;
      await startLaunch(id, JSON.stringify({ site: 'jsc-box-steps' }));
      const monitoring = await until('monitoring', async () => {
        const s = await status(id);
        return s?.phase === 'monitoring' && s;
      });
      const cancelled = await inNamespace(BOX_NODES.login.namespace, ['scancel', monitoring.allocation!.jobId], {
        timeoutMs: 15_000,
      });
      expect(cancelled.code).toBe(0);
      const result = await temporal('workflow', 'result', '--workflow-id', id, '--output', 'json').catch(
        async (err: Error) => {
          throw new Error(`${err.message}\nsteps: ${JSON.stringify((await status(id))?.steps, null, 1)}`);
        },
      );
      expect(result).toContain('the allocation ended');
      const steps = (await status(id))!.steps;
      expect(steps.slice(-BOX_TEARDOWN.length).map((s) => `${s.step}:${s.status}`)).toEqual(BOX_TEARDOWN);
      expect(steps.find((s) => s.step === 'stopGlidein')?.detail).toMatch(/has ended .*ended with it/);
      expect(steps.find((s) => s.step === 'unmountCvmfs')?.detail).toMatch(/its mounts ended with it; leases: /);
      expect(await footprint(id)).toEqual(NOTHING);
      const leases = await run('find', [path.dirname(BOX_PATHS.workDir), '-path', '*/.leases/*', '-name', `*${id}*`]);
      expect(leases.stdout.trim()).toBe('');
    },
  );

  onBoth('%s: without the KIT hop, verify-outbound fails naming the KIT proxy, and nothing is left', async (site) => {
    const id = `box-nokit-${site === 'jsc-box' ? 'f' : 's'}-${Date.now()}`;
    await setKitProxy(false);
    try {
      await startLaunch(id, JSON.stringify({ site }));
      const d = await closed(id, 'WORKFLOW_EXECUTION_STATUS_FAILED');
      expect(d).toBeTruthy();
      const s = (await status(id))!;
      const verify = s.steps.find((x) => x.step === 'verifyOutbound');
      expect(verify?.status).toBe('failed');
      expect(verify?.error).toContain('the KIT proxy 10.77.0.3:80');
      expect(s.steps.slice(-3).map((x) => `${x.step}:${x.status}`)).toEqual([
        'closeTunnel:ok',
        'cleanupGlidein:ok',
        'releaseNode:ok',
      ]);
    } finally {
      await setKitProxy(true);
    }
    expect(await footprint(id)).toEqual(NOTHING);
  });
});

describe('GlideinFleet in JSC in a box', () => {
  it('from `temporal schedule create`: 3 share a Slurm node, one scancelled replaced, pause, drain-all', async () => {
    const fleet = `boxfleet${Date.now() % 1_000_000}`;
    const scheduleId = `fleet-${fleet}`;
    type View = { running: number; starting: number; phase: string; slots: Array<{ id: string; runId?: string }> };
    // As the README shows an operator.
    await temporal(
      'schedule',
      'create',
      '--schedule-id',
      scheduleId,
      '--interval',
      '1m',
      '--overlap-policy',
      'Skip',
      '--workflow-id',
      scheduleId,
      '--type',
      'GlideinFleet',
      '--task-queue',
      TASK_QUEUE,
      '--input',
      JSON.stringify({ site: 'jsc-box-fleet', count: 3, fleet, scheduleId }),
    );
    await temporal('schedule', 'trigger', '--schedule-id', scheduleId, '--overlap-policy', 'Skip');
    const fleetId = await until('the schedule to start the fleet', async () => {
      const described = JSON.parse(
        await temporal('schedule', 'describe', '--schedule-id', scheduleId, '--output', 'json'),
      );
      const running = described.info?.runningWorkflows ?? [];
      return running[0]?.workflowId as string | undefined;
    });
    const full = await until(
      'three glideins registered',
      async () => {
        const v = await status<View>(fleetId);
        return v?.running === 3 && v;
      },
      240_000,
    );
    const held = await fleetFootprint(fleet);
    expect(held.jobs.map((j) => `${j.state}@${j.node}`)).toEqual(['RUNNING@jwc01', 'RUNNING@jwc01', 'RUNNING@jwc01']);
    expect(held.tunnelPorts).toHaveLength(3);
    expect(new Set(held.tunnelPorts).size).toBe(3);
    expect(held.glideins).toBe(3);
    expect(held.ads).toEqual(['10.77.0.3', '10.77.0.3', '10.77.0.3']);

    // An operator (or the batch system) ends one job from outside the project.
    const victim = held.jobs[0];
    const before = full.slots.find((s) => s.id === victim.name)!.runId;
    const cancelled = await inNamespace(BOX_NODES.login.namespace, ['scancel', victim.id], { timeoutMs: 15_000 });
    expect(cancelled.code).toBe(0);
    const result = JSON.parse(
      await temporal('workflow', 'result', '--workflow-id', victim.name, '--run-id', before!, '--output', 'json'),
    );
    // Seen gone, or still COMPLETING: the holder job takes two seconds to remove the pool credential as it ends.
    expect(JSON.stringify(result)).toMatch(/the allocation ended: its holder job (left the queue|\d+ is COMPLETING)/);
    // The fleet replaces it: a new run (in that slot or another), a new job, three registered again.
    const first = new Set(full.slots.map((slot) => slot.runId));
    let seen: View | undefined;
    await until(
      'a replacement and three running again',
      async () => {
        seen = await status<View>(fleetId);
        const fresh = seen?.slots.filter((slot) => slot.runId && !first.has(slot.runId));
        return seen?.running === 3 && fresh?.length === 1 && seen;
      },
      240_000,
    ).catch((err) => {
      throw new Error(`${err.message}\nfleet status: ${JSON.stringify(seen)}`);
    });
    // The victim's job may still be COMPLETING for a while (its holder removes the credential as it ends).
    const again = await until('the victim out of the queue', async () => {
      const f = await fleetFootprint(fleet);
      return !f.jobs.some((j) => j.id === victim.id) && f;
    });
    expect(again.jobs).toHaveLength(3);
    // Three registered besides the victim: its daemons invalidate their ad as the job ends, unless the end outran
    // them, and then its ad stays until it expires (a ghost, which nothing counts as capacity).
    const others = again.adsOf.filter((ad) => ad !== victim.name);
    expect([again.glideins, again.tunnelPorts.length, others.length]).toEqual([3, 3, 3]);

    // Drain the whole site: pause the schedule (no new fleet run), then drain every glidein.
    await temporal('schedule', 'toggle', '--schedule-id', scheduleId, '--pause', '--reason', 'site maintenance');
    await temporal('workflow', 'signal', '--workflow-id', fleetId, '--name', 'drain-all');
    const end = JSON.parse(await temporal('workflow', 'result', '--workflow-id', fleetId, '--output', 'json'));
    expect(JSON.stringify(end)).toContain('drained');
    await temporal('schedule', 'delete', '--schedule-id', scheduleId);
    await until('the box empty of the fleet', async () => {
      const f = await fleetFootprint(fleet);
      const live = f.adsOf.filter((ad) => ad !== victim.name);
      return f.jobs.length + f.glideins + f.tunnelPorts.length + f.mounts + live.length === 0 && f;
    });
    const { ads: _ads, adsOf, ...left } = await fleetFootprint(fleet);
    expect(left).toEqual({ jobs: [], tunnelPorts: [], glideins: 0, mounts: 0, leases: [] });
    // At most the victim's ghost, until it expires.
    expect(adsOf.filter((ad) => ad !== victim.name)).toEqual([]);
  }, 600_000);
});

describe('LaunchGlidein in JSC in a box, strict: no sshd on the worker node, from= keys, a firewall that bans', () => {
  beforeAll(() => setStrict(true), 60_000);
  afterAll(async () => {
    // Nothing here opened connections enough to be banned.
    expect(await bannedSources()).toEqual([]);
    await setStrict(false);
  }, 60_000);
  for (const [name, fn, timeout] of strictCases) it(name, fn, timeout);
});
