/**
 * JSC in a box, strict: JSC as it publishes itself. The worker node has no sshd at all (psslurm: the node only by
 * `srun --jobid --overlap`), the login node's keys carry `from=` (the operator's only from the operator's machine),
 * no key is stored on the site (the relay tunnel), and the login node's firewall bans a source that opens more than
 * BAN.connections SSH connections in a minute, for minutes. The profile is sites/jsc-box-strict.yaml. The box is
 * made strict for this file and lenient again after it (the other box suites need the worker node's sshd).
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { LaunchGlidein } from '../../src/workflows';
import { stopSignal } from '../../src/workflows/messages';
import { fleetStatusQuery } from '../../src/workflows/fleet-messages';
import { drainFleetSchedule, upsertFleetSchedule } from '../../src/fleet-schedule';
import { expectNoSecretsInHistories, startWorkerProcess, type WorkerProcess } from '../support/worker-process';
import { createTestEnv } from '../../sandbox/temporal';
import { sitesDirWithVariant } from '../../sandbox/sites';
import { HELD_ORDER } from '../../src/workflows/steps';
import {
  BAN,
  bannedSources,
  boxCollectorAds,
  boxProcesses,
  BOX_ENDPOINTS,
  BOX_NODES,
  BOX_PATHS,
  clearBans,
  inNamespace,
  joinJscBox,
  leaveJscBox,
  OPERATOR_ADDRESS,
  restartService,
  setStrict,
  slurmJobs,
  sshdLog,
  type JscBox,
} from '../../sandbox/jsc-box';
import { boxHarness, endWhatIsLeft, footprint, NOTHING } from './box-harness';

const TASK_QUEUE = `box-strict-${process.pid}`;
const SITE = 'jsc-box-strict';
/** The strict box with the history cap at its minimum: every monitor round continues-as-new. */
const CAPPED = 'jsc-box-strict-capped';
const SITES_DIR = sitesDirWithVariant(SITE, CAPPED, (p) => {
  p.monitor = { interval: '2s', reportEvery: '2s', historyEvents: 50 };
});

let env: TestWorkflowEnvironment;
let worker: WorkerProcess;
let box: JscBox;
const { startLaunch, status, until, drainAndCheck, temporal } = boxHarness(() => ({
  env,
  worker,
  taskQueue: TASK_QUEUE,
}));

/** New SSH connections the login node accepted from the operator's machine since `from` (an offset in its log). */
const operatorLogins = (from: number) =>
  sshdLog('login')
    .slice(from)
    .split('\n')
    .filter((l) => l.includes(`Accepted publickey for glidein from ${OPERATOR_ADDRESS} `)).length;

/** `n` TCP connections to the login node's sshd from a namespace, one after the other; how many got through. */
const CONNECT_MANY = [
  'import socket, sys',
  'host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])',
  'ok = 0',
  'for i in range(n):',
  '    try:',
  '        socket.create_connection((host, port), 2).close()',
  '        ok += 1',
  '    except OSError:',
  '        pass',
  'print(ok)',
].join('\n');

// A failed test's glideins would hold the one worker node for every test after it: end what it left.
afterEach(async () => {
  const left = await endWhatIsLeft(env);
  if (left.length > 0) console.warn(`ended what the test left running: ${left.join(', ')}`);
}, 300_000);

beforeAll(async () => {
  box = await joinJscBox();
  await setStrict(true);
  env = await createTestEnv();
  worker = startWorkerProcess(env, TASK_QUEUE, { SITES_DIR });
}, 180_000);

afterAll(async () => {
  await worker?.stop();
  if (env) await expectNoSecretsInHistories(env);
  await env?.teardown();
  await setStrict(false);
  await leaveJscBox();
}, 120_000);

describe('JSC in a box, strict', () => {
  it('no worker sshd; a key admitted only from where it is registered; a source opening too many banned', async () => {
    // Nothing listens on the worker node's port 22 (the login node may reach the node; it finds no sshd).
    const probe = await inNamespace(BOX_NODES.login.namespace, [
      'python3',
      '-c',
      'import socket,sys\ntry:\n socket.create_connection((sys.argv[1], 22), 3)\nexcept OSError as e:\n print(e.errno)',
      BOX_NODES.worker.address,
    ]);
    expect(probe.stdout.trim()).toBe('111'); // ECONNREFUSED
    // from=: the operator's key works from the operator's machine, and not from elsewhere (KIT's address).
    expect(await box.ssh('login', ['true'])).toMatchObject({ code: 0 });
    const elsewhere = await inNamespace(BOX_NODES.kit.namespace, box.sshArgv('login', ['true']));
    expect(elsewhere.code).toBe(255);
    expect(elsewhere.stderr).toMatch(/Permission denied/);

    // The fence is real: a machine that opens more than BAN.connections connections in a minute is banned, and
    // then cannot even connect; the operator's machine is not affected.
    const pool = BOX_NODES.pool.namespace;
    try {
      const burst = await inNamespace(
        pool,
        ['python3', '-c', CONNECT_MANY, BOX_ENDPOINTS.login.host, '22', String(BAN.connections + 2)],
        { timeoutMs: 60_000 },
      );
      expect(Number(burst.stdout.trim())).toBe(BAN.connections);
      expect(await bannedSources()).toEqual([BOX_NODES.pool.address]);
      const after = await inNamespace(pool, ['python3', '-c', CONNECT_MANY, BOX_ENDPOINTS.login.host, '22', '1'], {
        timeoutMs: 30_000,
      });
      expect(after.stdout.trim()).toBe('0');
      expect(await box.ssh('login', ['true'])).toMatchObject({ code: 0 });
    } finally {
      await clearBans();
    }
  });

  it('Slurm steps and relay: registered, glidein in the job, drained to nothing; one connection, no ban', async () => {
    const id = `strict-${Date.now()}`;
    const logFrom = sshdLog('login').length;
    await startLaunch(id, JSON.stringify({ site: SITE }));
    const monitoring = await until('registration', async () => {
      const s = await status(id);
      return s?.phase === 'monitoring' && s;
    });
    expect(monitoring.steps.map((s) => s.step)).toContain('stageCredential');
    const held = await footprint(id);
    expect(held.jobs).toEqual(['RUNNING@jwc01']);
    expect(held.relays).toEqual(['login']);
    expect(held.tunnels).toEqual([]);
    expect(held.glideins).toEqual(['worker']);
    expect(held.mounts).toEqual(['worker', 'worker']);
    expect(held.ads).toEqual([BOX_NODES.kit.address]);

    await drainAndCheck(id);
    expect(await footprint(id)).toEqual(NOTHING);
    expect(await bannedSources()).toEqual([]);
    expect(operatorLogins(logFrom)).toBeLessThanOrEqual(1);
  });

  it('a glidein holding every kind of resource continues-as-new several times; stop releases everything', async () => {
    const id = `strict-can-${Date.now()}`;
    const runs = new Set<string>();
    await startLaunch(id, JSON.stringify({ site: CAPPED }));
    const monitoring = await until(
      'three runs, monitoring',
      async () => {
        const d = JSON.parse(await temporal('workflow', 'describe', '--workflow-id', id, '--output', 'json'));
        runs.add(d.workflowExecutionInfo.execution.runId);
        expect(d.workflowExecutionInfo.status).toBe('WORKFLOW_EXECUTION_STATUS_RUNNING');
        const s = await status(id);
        return runs.size >= 3 && s?.phase === 'monitoring' && s;
      },
      180_000,
    );
    expect(monitoring.held.map((h) => h.kind)).toEqual(HELD_ORDER);
    expect(HELD_ORDER).toHaveLength(6);
    const held = await footprint(id);
    expect(held.jobs).toEqual(['RUNNING@jwc01']);
    expect(held.relays).toEqual(['login']);
    expect(held.glideins).toEqual(['worker']);

    await temporal('workflow', 'signal', '--workflow-id', id, '--name', 'stop');
    const result = JSON.parse(await temporal('workflow', 'result', '--workflow-id', id, '--output', 'json'));
    expect(JSON.stringify(result)).toContain('stopped');
    expect(await footprint(id)).toEqual(NOTHING);
  });

  it('a fleet from a Schedule fills four shares of a node, drains the whole site: one connection, no ban', async () => {
    const fleet = `strictfleet${Date.now() % 1_000_000}`;
    const scheduleId = `fleet-${fleet}`;
    const logFrom = sshdLog('login').length;
    await upsertFleetSchedule(env.client, {
      scheduleId,
      taskQueue: TASK_QUEUE,
      every: '1m',
      request: { site: SITE, count: 4, fleet },
    });
    const schedule = env.client.schedule.getHandle(scheduleId);
    try {
      const fleetId = await until('the schedule to start the fleet', async () => {
        return (await schedule.describe()).info.runningActions[0]?.workflow.workflowId;
      });
      await until(
        'four glideins running',
        async () => (await env.client.workflow.getHandle(fleetId).query(fleetStatusQuery)).running >= 4,
        300_000,
      );
      const prefix = `glidein-${fleet}-`;
      const relays = boxProcesses().filter((p) => p.argv.includes('jsc-glidein-relay') && p.cmdline.includes(prefix));
      expect(relays.map((p) => p.node)).toEqual(['login', 'login', 'login', 'login']);
      expect(
        (await boxCollectorAds()).filter((ad) => String(ad.GlideinLaunchId ?? '').startsWith(prefix)),
      ).toHaveLength(4);

      for (const id of await drainFleetSchedule(env.client, scheduleId))
        expect((await env.client.workflow.getHandle(id).result()).endReason).toBeDefined();
      expect((await slurmJobs()).filter((j) => j.name.startsWith(prefix))).toEqual([]);
      expect(boxProcesses().filter((p) => p.cmdline.includes(prefix))).toEqual([]);
    } finally {
      await schedule.delete().catch(() => undefined);
    }
    expect(await bannedSources()).toEqual([]);
    expect(operatorLogins(logFrom)).toBeLessThanOrEqual(1);
  }, 600_000);

  it(`SSH discipline: 50 launches, a login sshd restart and a worker restart never trip the ban`, async () => {
    const prefix = `strict-many-${Date.now()}`;
    const ids = Array.from({ length: 50 }, (_, i) => `${prefix}-${i}`);
    const logFrom = sshdLog('login').length;
    for (const id of ids)
      await env.client.workflow.start(LaunchGlidein, {
        taskQueue: TASK_QUEUE,
        workflowId: id,
        args: [{ site: SITE, lifetime: '30m' } as never],
      });
    // The node takes four holder jobs; the others wait in the queue, as at JSC.
    const monitoringNow = async () =>
      (await Promise.all(ids.map(async (id) => ((await status(id))?.phase === 'monitoring' ? id : undefined)))).filter(
        (id): id is string => id !== undefined,
      );
    const running = await until(
      'four glideins registered',
      async () => {
        const now = await monitoringNow();
        return now.length >= 4 && now;
      },
      300_000,
    );
    expect(
      (await slurmJobs()).filter((j) => j.name.startsWith(prefix) && j.state === 'PENDING').length,
    ).toBeGreaterThan(0);

    // The login node's sshd restarts, and every session goes with it (the worker's connection too).
    await restartService('login-sshd');
    for (const p of boxProcesses().filter((q) => q.node === 'login' && q.cmdline.startsWith('sshd: glidein')))
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // ended by itself
      }
    // The worker crashes and a new one takes over every lifecycle.
    await worker.stop('SIGKILL');
    worker = startWorkerProcess(env, TASK_QUEUE, { SITES_DIR });
    const restartedAt = Date.now();
    // Each running glidein's monitor round (its heartbeat lost with the old worker) is retried on the new one,
    // which reports a check made after the restart: registered, the same glidein.
    await until(
      'the running glideins to be checked again by the new worker',
      async () => {
        const checked = await Promise.all(
          running.map(async (id) => {
            const last = (await status(id))?.lastCheck;
            return last !== undefined && Date.parse(last.at) > restartedAt && last.registered;
          }),
        );
        return checked.every(Boolean);
      },
      240_000,
    );
    expect(await bannedSources()).toEqual([]);
    // One connection for the first worker, one reconnect after the restart, one for the new worker.
    expect(operatorLogins(logFrom)).toBeLessThanOrEqual(4);

    await Promise.all(ids.map((id) => env.client.workflow.getHandle(id).signal(stopSignal)));
    await Promise.all(
      ids.map((id) =>
        env.client.workflow
          .getHandle(id)
          .result()
          .catch(() => undefined),
      ),
    );
    expect((await slurmJobs()).filter((j) => j.name.startsWith(prefix))).toEqual([]);
    expect(boxProcesses().filter((p) => p.argv.includes('jsc-glidein-relay') && p.cmdline.includes(prefix))).toEqual(
      [],
    );
    expect(boxProcesses().filter((p) => p.cmdline.includes('condor_master'))).toEqual([]);
    expect(await bannedSources()).toEqual([]);
    expect(operatorLogins(logFrom)).toBeLessThanOrEqual(4);
    expect(BOX_PATHS.workDir).toBeTruthy();
  }, 900_000);
});
