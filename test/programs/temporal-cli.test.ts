/**
 * The operator's way: the worker runs as its own process (src/worker.ts) and the lifecycle is driven only
 * with the official `temporal` CLI (start, query status, signal drain, cancel, result, show). The site is
 * checked after each step.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { GlideinStatus } from '../../src/workflows/messages';
import { expectNoSecretsInHistories, startWorkerProcess, type WorkerProcess } from '../support/worker-process';
import { createTestEnv, temporalCli } from '../../sandbox/temporal';
import { SITE_PATHS } from '../../sandbox/local-site';
import { EMPTY, footprint } from '../../sandbox/site-state';
import { TEARDOWN } from '../support/workflow-harness';

const run = promisify(execFile);
const TASK_QUEUE = `e2e-${process.pid}`;

let env: TestWorkflowEnvironment;
let worker: WorkerProcess;

async function temporal(...args: string[]): Promise<string> {
  const { stdout } = await run(
    temporalCli(),
    [...args, '--address', env.address, '--namespace', env.namespace ?? 'default'],
    {
      timeout: 60_000,
    },
  );
  return stdout;
}

async function status(workflowId: string): Promise<GlideinStatus> {
  const out = await temporal('workflow', 'query', '--workflow-id', workflowId, '--type', 'status', '--output', 'json');
  const parsed = JSON.parse(out);
  return (parsed.queryResult ?? parsed)[0] as GlideinStatus;
}

async function untilPhase(
  workflowId: string,
  phase: GlideinStatus['phase'],
  timeoutMs = 90_000,
): Promise<GlideinStatus> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const s = await status(workflowId).catch(() => undefined);
    if (s?.phase === phase) return s;
    if (Date.now() > until)
      throw new Error(
        `${workflowId} not in ${phase} after ${timeoutMs} ms (now ${s?.phase}); ` +
          `worker log:\n${worker.log().slice(-3000)}`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  env = await createTestEnv();
  worker = startWorkerProcess(env, TASK_QUEUE);
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  if (env) await expectNoSecretsInHistories(env);
  await env?.teardown();
});

describe('operating LaunchGlidein with the temporal CLI', () => {
  it('start reaches registration, query shows it, drain tears everything down', async () => {
    const id = `e2e-drain-${Date.now()}`;
    await temporal(
      'workflow',
      'start',
      '--type',
      'LaunchGlidein',
      '--task-queue',
      TASK_QUEUE,
      '--workflow-id',
      id,
      '--input',
      '{"site":"local"}',
    );
    const monitoring = await untilPhase(id, 'monitoring');
    expect(monitoring.registration?.name).toContain(id);
    const held = await footprint(id);
    expect([held.tunnels.length, held.glideins.length, held.instances.length, held.ads.length]).toEqual([1, 1, 1, 1]);

    await temporal('workflow', 'signal', '--workflow-id', id, '--name', 'drain');
    const result = JSON.parse(await temporal('workflow', 'result', '--workflow-id', id, '--output', 'json'));
    expect(JSON.stringify(result)).toContain('drained');
    expect(await footprint(id)).toEqual(EMPTY);
    // After teardown the query says so: nothing held, phase done. The payload holds an empty list (the SDK's
    // client reads []); the temporal CLI (v1.5.1) prints any empty list in a query result as null.
    const after = await status(id);
    expect(after.phase).toBe('done');
    expect(after.held ?? []).toEqual([]);
    expect((await env.client.workflow.getHandle(id).query<GlideinStatus>('status')).held).toEqual([]);

    const history = JSON.parse(await temporal('workflow', 'show', '--workflow-id', id, '--output', 'json'));
    const scheduled = history.events
      .filter((e: any) => e.activityTaskScheduledEventAttributes)
      .map((e: any) => e.activityTaskScheduledEventAttributes.activityType.name);
    // Teardown: the glidein first, the work directory last; what nothing else uses side by side in between.
    const teardown = scheduled.slice(-TEARDOWN.length);
    expect([...teardown].sort()).toEqual(TEARDOWN.map((t) => t.split(':')[0]).sort());
    expect([teardown[0], teardown.at(-1)]).toEqual(['stopGlidein', 'cleanupGlidein']);
    expect(teardown.indexOf('stopContainer')).toBeLessThan(teardown.indexOf('unmountCvmfs'));

    // Keys are referenced by path, never carried: no line of either private key is in the history.
    const text = JSON.stringify(history);
    for (const keyFile of [SITE_PATHS.operatorKey, SITE_PATHS.siteKey]) {
      const body = readFileSync(keyFile, 'utf8')
        .split('\n')
        .filter((l) => l && !l.startsWith('-----'));
      expect(body.length).toBeGreaterThan(0);
      for (const line of body) expect(text).not.toContain(line);
    }
    expect(text).not.toMatch(/PRIVATE KEY/);
  });

  it('cancel tears everything down and the workflow closes as cancelled', async () => {
    const id = `e2e-cancel-${Date.now()}`;
    await temporal(
      'workflow',
      'start',
      '--type',
      'LaunchGlidein',
      '--task-queue',
      TASK_QUEUE,
      '--workflow-id',
      id,
      '--input',
      '{"site":"local","lifetime":"1h"}',
    );
    await untilPhase(id, 'monitoring');
    const describe = async () =>
      JSON.parse(await temporal('workflow', 'describe', '--workflow-id', id, '--output', 'json'));
    // The memo is there while it runs, not only once it has closed: the Web UI shows phase and what is held.
    const memo = (await describe()).workflowExecutionInfo.memo?.fields ?? {};
    // The CLI prints a JSON payload as its value; a payload it cannot read as JSON stays { metadata, data }.
    const decoded = Object.fromEntries(
      Object.entries(memo).map(([k, v]: [string, any]) => [
        k,
        typeof v?.data === 'string' ? JSON.parse(Buffer.from(v.data, 'base64').toString('utf8')) : v,
      ]),
    );
    expect(decoded).toMatchObject({ phase: 'monitoring', held: 'tunnel, cvmfs, container, credential, glidein' });
    await temporal('workflow', 'cancel', '--workflow-id', id);
    const until = Date.now() + 60_000;
    let d = await describe();
    while (d.workflowExecutionInfo.status !== 'WORKFLOW_EXECUTION_STATUS_CANCELED' && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 500));
      d = await describe();
    }
    expect(d.workflowExecutionInfo.status).toBe('WORKFLOW_EXECUTION_STATUS_CANCELED');
    expect(await footprint(id)).toEqual(EMPTY);
  });

  it('refuses bad input with an error naming the field, without touching the site', async () => {
    const id = `e2e-bad-${Date.now()}`;
    await temporal(
      'workflow',
      'start',
      '--type',
      'LaunchGlidein',
      '--task-queue',
      TASK_QUEUE,
      '--workflow-id',
      id,
      '--input',
      '{"site":"local; rm -rf /"}',
    );
    const err = await temporal('workflow', 'result', '--workflow-id', id).then(
      () => '',
      (e) => `${e.stdout}${e.stderr}`,
    );
    expect(err).toContain('site: expected a site name');
    expect(await footprint(id)).toEqual(EMPTY);
  });
});
