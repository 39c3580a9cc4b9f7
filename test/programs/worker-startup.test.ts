/** The worker refuses to poll a namespace that lacks LaunchGlidein's search attributes, and says what to run. */
import { execFile } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { ROOT, temporalCli } from '../../sandbox/temporal';

const run = promisify(execFile);

describe('worker start-up', () => {
  let bare: TestWorkflowEnvironment;
  beforeAll(async () => {
    bare = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: temporalCli() } },
    });
  }, 120_000);
  afterAll(async () => {
    await bare?.teardown();
  });

  const worker = (extra: Record<string, string> = {}) =>
    run(process.execPath, [require.resolve('ts-node/dist/bin'), path.join(ROOT, 'src', 'worker.ts')], {
      cwd: ROOT,
      timeout: 60_000,
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: bare.address,
        TASK_QUEUE: 'startup',
        LOG_LEVEL: 'fatal',
        TS_NODE_TRANSPILE_ONLY: 'true',
        METRICS_ADDRESS: 'off',
        ...extra,
      },
    });

  it('refuses a namespace without the search attributes, printing the commands that create them', async () => {
    const err = await worker().then(
      () => undefined,
      (e) => e,
    );
    expect(err?.code).toBe(1);
    expect(err.stderr).toContain('lacks the search attribute(s) GlideinSite, GlideinId, GlideinPhase');
    expect(err.stderr).toContain(
      'temporal operator search-attribute create --namespace default --name GlideinPhase --type Keyword',
    );
  });

  it('creates them when told to, and then runs', async () => {
    const started = worker({ CREATE_SEARCH_ATTRIBUTES: 'true' });
    const attributes = async () =>
      (await bare.connection.operatorService.listSearchAttributes({ namespace: 'default' })).customAttributes ?? {};
    for (let i = 0; i < 100 && !('GlideinPhase' in (await attributes())); i++)
      await new Promise((r) => setTimeout(r, 300));
    expect(Object.keys(await attributes())).toEqual(
      expect.arrayContaining(['GlideinSite', 'GlideinId', 'GlideinPhase']),
    );
    started.child.kill('SIGINT');
    await started.catch(() => undefined);
  });

  it('stops at start-up when its metrics port is taken, naming METRICS_ADDRESS and how to turn it off', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const address = `127.0.0.1:${(taken.address() as net.AddressInfo).port}`;
      const err = await worker({ METRICS_ADDRESS: address, CREATE_SEARCH_ATTRIBUTES: 'true' }).then(
        () => undefined,
        (e) => e,
      );
      expect(err?.code).toBe(1);
      expect(err.stderr).toContain(`cannot serve metrics on METRICS_ADDRESS=${address}`);
      expect(err.stderr).toContain('METRICS_ADDRESS=off');
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
