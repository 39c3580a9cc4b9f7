/**
 * The worker as operators run it (src/worker.ts in its own process) serves Prometheus metrics on METRICS_ADDRESS
 * and logs JSON lines: one LaunchGlidein on the local test site to registration, a tunnel killed and repaired, a
 * launch on a site with no profile failing, then a drain. /metrics has the Temporal runtime's own metrics and every
 * glidein_ metric with its site, step, phase or host labels; the phase counters move with the drain; every line the
 * worker printed is JSON, and every activity's line names its workflow, site and glidein.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { METRIC } from '../../src/common/metric-names';
import { drainSignal, statusQuery } from '../../src/workflows/messages';
import { localSiteWith } from '../../sandbox/sites';
import { createTestEnv } from '../../sandbox/temporal';
import { EMPTY, footprint } from '../../sandbox/site-state';
import { setupOrder, teardownOrder } from '../../src/workflows/steps';
import { expectNoSecretsInHistories, startWorkerProcess, type WorkerProcess } from '../support/worker-process';
import { freePort } from '../support/ports';

const TASK_QUEUE = `e2e-metrics-${process.pid}`;

let env: TestWorkflowEnvironment;
let worker: WorkerProcess;
let metricsUrl: string;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format, samples only. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) throw new Error(`not a sample: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

async function scrape(): Promise<Sample[]> {
  const response = await fetch(metricsUrl);
  expect(response.status).toBe(200);
  return parse(await response.text());
}

/** The sum of a metric's samples whose labels include `labels`. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe().catch(() => undefined);
    if (got) return got;
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${timeoutMs} ms; worker log:\n${worker.log().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  env = await createTestEnv();
  const address = `127.0.0.1:${await freePort()}`;
  metricsUrl = `http://${address}/metrics`;
  // Monitor every second, so that a killed tunnel is noticed at once.
  const sites = localSiteWith((p) => (p.monitor.interval = '1s'));
  worker = startWorkerProcess(env, TASK_QUEUE, { METRICS_ADDRESS: address, SITES_DIR: sites, LOG_LEVEL: 'debug' });
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  if (env) await expectNoSecretsInHistories(env);
  await env?.teardown();
});

describe('the worker serves metrics and logs JSON', () => {
  it('temporal_ and glidein_ metrics during a launch, a tunnel repair, a failed launch and a drain', async () => {
    const id = `e2e-metrics-${Date.now()}`;
    const handle = await env.client.workflow.start('LaunchGlidein', {
      taskQueue: TASK_QUEUE,
      workflowId: id,
      args: [{ site: 'local' }],
    });
    const status = () => handle.query(statusQuery);
    await until('registration', async () => (await status()).phase === 'monitoring');

    // Kill the tunnel: the monitor finds it down and the workflow reopens it (a tunnel repair).
    const [tunnel] = (await footprint(id)).tunnels;
    process.kill(tunnel, 'SIGKILL');
    await until(
      'the tunnel repaired',
      async () => (await status()).steps.filter((s) => s.step === 'openTunnel' && s.status === 'ok').length === 2,
    );

    // A site without a profile: planLaunch fails for good (InvalidSiteProfile).
    const failing = await env.client.workflow.start('LaunchGlidein', {
      taskQueue: TASK_QUEUE,
      workflowId: `${id}-nosite`,
      args: [{ site: 'nosuchsite' }],
    });
    await expect(failing.result()).rejects.toThrow();

    const site = { site: 'local' };
    // A site no worker has a profile for is never a label value: whoever may start a workflow chooses its site, and
    // must not be able to add series. Before planLaunch has found the profile, a glidein counts as `unknown` too.
    const unknown = { site: 'unknown' };
    // Workflow metrics reach the exporter when their activation completes: wait for the last of them.
    const registered = await until('the glidein metrics', async () => {
      const s = await scrape();
      return value(s, `${METRIC.tunnelRepairs}`, { ...site, status: 'ok' }) === 1 &&
        value(s, METRIC.stepFailures, unknown) === 1
        ? s
        : undefined;
    });

    // The Temporal runtime's own.
    for (const name of ['temporal_workflow_task_execution_latency_count', 'temporal_activity_execution_latency_count'])
      expect(value(registered, name, { task_queue: TASK_QUEUE })).toBeGreaterThan(0);
    expect(value(registered, 'temporal_worker_task_slots_available')).toBeGreaterThan(0);

    // Glideins by phase: entered and left; entered - left is where the glidein is now.
    const inPhase = (s: Sample[], phase: string) =>
      value(s, METRIC.phaseEntered, { ...site, phase }) - value(s, METRIC.phaseLeft, { ...site, phase });
    for (const phase of ['setup', 'registering', 'monitoring'])
      expect(value(registered, METRIC.phaseEntered, { ...site, phase, workflowType: 'LaunchGlidein' })).toBe(1);
    // Both glideins entered planning before a worker knew their site, and left it under the label they entered with.
    expect(
      value(registered, METRIC.phaseEntered, { ...unknown, phase: 'planning', workflowType: 'LaunchGlidein' }),
    ).toBe(2);
    expect(value(registered, METRIC.phaseLeft, { ...unknown, phase: 'planning' })).toBe(2);
    expect(value(registered, METRIC.phaseEntered, { ...site, phase: 'planning' })).toBe(0);
    expect(inPhase(registered, 'monitoring')).toBe(1);
    expect(inPhase(registered, 'setup') + inPhase(registered, 'registering')).toBe(0);
    expect(registered.filter((s) => s.labels.site === 'nosuchsite')).toEqual([]);

    // Each setup step's duration, by site, step and status; the repair's openTunnel is the second.
    const SETUP = setupOrder({ slurm: false, credentials: true });
    expect(SETUP).toEqual(expect.arrayContaining(['openTunnel', 'mountCvmfs', 'confirmRegistration']));
    for (const step of SETUP)
      expect(value(registered, `${METRIC.stepDuration}_count`, { ...site, step, status: 'ok' })).toBe(
        step === 'openTunnel' ? 2 : 1,
      );
    expect(
      value(registered, `${METRIC.stepDuration}_bucket`, { ...site, step: 'confirmRegistration', le: '+Inf' }),
    ).toBe(1);
    expect(value(registered, `${METRIC.registrationLatency}_count`, site)).toBe(1);
    expect(value(registered, `${METRIC.registrationLatency}_sum`, site)).toBeGreaterThan(0);
    expect(value(registered, METRIC.tunnelRepairs, { ...site, status: 'ok' })).toBe(1);

    // Failures by type: the step after its retries, and the activity attempt.
    expect(value(registered, METRIC.stepFailures, { ...unknown, step: 'planLaunch', type: 'InvalidSiteProfile' })).toBe(
      1,
    );
    expect(
      value(registered, METRIC.activityFailures, {
        ...unknown,
        activityType: 'planLaunch',
        type: 'InvalidSiteProfile',
      }),
    ).toBe(1);

    // SSH: one connection to the login node (and one jumped through it to the worker node); nothing dropped.
    expect(value(registered, METRIC.sshConnectionsOpened, { target: '127.0.0.1:2201' })).toBe(1);
    expect(value(registered, METRIC.sshConnectionsOpened)).toBe(2);
    expect(value(registered, METRIC.sshReconnects)).toBe(0);

    // Drain: the glidein leaves monitoring, goes through teardown, and is done.
    await handle.signal(drainSignal);
    expect((await handle.result()).endReason).toBe('drained');
    const drained = await until('the drain in the metrics', async () => {
      const s = await scrape();
      return value(s, METRIC.phaseEntered, { ...site, phase: 'done' }) === 1 ? s : undefined;
    });
    expect(inPhase(drained, 'monitoring')).toBe(0);
    expect(value(drained, METRIC.phaseLeft, { ...site, phase: 'monitoring' })).toBe(1);
    expect(inPhase(drained, 'teardown')).toBe(0);
    expect(value(drained, METRIC.phaseEntered, { ...site, phase: 'teardown' })).toBe(1);
    const TEARDOWN = teardownOrder(SETUP);
    expect(TEARDOWN).toEqual(expect.arrayContaining(['stopGlidein', 'closeTunnel', 'cleanupGlidein']));
    for (const step of TEARDOWN)
      expect(value(drained, `${METRIC.stepDuration}_count`, { ...site, step, status: 'ok' })).toBe(1);
    expect(await footprint(id)).toEqual(EMPTY);

    // Logs: JSON lines (stdout is no terminal), each activity's naming its workflow, site and glidein.
    const lines = worker
      .log()
      .split('\n')
      .filter((l) => l.trim());
    const parsed = lines.map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON line: ${l}`);
      }
    });
    const activityLines = parsed.filter((l) => l.workflowId === id && typeof l.activityType === 'string');
    expect(activityLines.map((l) => l.activityType)).toEqual(expect.arrayContaining(['openTunnel', 'stopGlidein']));
    const ended = activityLines.filter((l) => l.msg === 'Activity completed');
    expect(ended.length).toBeGreaterThan(SETUP.length);
    for (const l of ended) expect(l).toMatchObject({ site: 'local', glideinId: id });
    expect(parsed.some((l) => l.workflowId === `${id}-nosite` && l.site === 'nosuchsite')).toBe(true);
    expect(worker.log()).not.toMatch(/PRIVATE KEY-----\n[A-Za-z0-9+/]/);
  });
});
