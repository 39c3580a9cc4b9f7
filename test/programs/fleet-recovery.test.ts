/**
 * A fleet through the failures of its own machinery: two worker processes on one task queue share a growing
 * fleet; one is SIGKILLed and the Temporal server (a dev server on a database file) is SIGKILLed and started
 * again with the same file. With TEMPORAL_BACKEND=cluster the server is the run's two-node cluster on PostgreSQL
 * (sandbox/cluster.ts), and the node the workers talk to (node 1) is the one SIGKILLed and started again; this test's
 * client talks to node 2. After recovery the site holds exactly the desired glideins (one tunnel, one port
 * lease and one glidein per slot, never a second), and draining the fleet leaves nothing behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../../src/common/search-attributes';
import { slotId } from '../../src/common/fleet-request';
import { drainAllSignal, fleetStatusQuery, type FleetView } from '../../src/workflows/fleet-messages';
import { temporalCli } from '../../sandbox/temporal';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process';
import { EMPTY, fleetPortLeases, fleetTunnels, footprint, localFleetSite } from '../../sandbox/site-state';
import { freePort } from '../support/ports';
import { clusterState, createNamespace, startNode, stopNode, temporalBackend } from '../../sandbox/cluster';

const TASK_QUEUE = `fleet-crash-${process.pid}`;
const SITES = localFleetSite();

/** The Temporal this test kills and starts again. */
interface Engine {
  /** Where this test's client connects (worker processes: workerAddress of it). */
  readonly address: string;
  readonly namespace?: string;
  start(): Promise<void>;
  kill(): Promise<void>;
  remove(): Promise<void>;
}

/** Node 1 of the run's cluster, in a namespace of this test's own. */
class ClusterNode implements Engine {
  private constructor(
    readonly address: string,
    readonly namespace: string,
  ) {}

  static async create(): Promise<ClusterNode> {
    const namespace = `fleet-crash-${process.pid}`;
    await createNamespace(namespace);
    return new ClusterNode(clusterState().frontends[1], namespace);
  }

  start(): Promise<void> {
    return startNode(0);
  }

  kill(): Promise<void> {
    return stopNode(0, 'SIGKILL');
  }

  async remove(): Promise<void> {
    await startNode(0);
  }
}

/** `temporal server start-dev` on a database file: killed, it loses nothing; started again, it goes on. */
class DevServer implements Engine {
  private child?: ChildProcess;
  private constructor(
    readonly dbFile: string,
    readonly port: number,
    private readonly otherPorts: number[],
  ) {}

  static async create(): Promise<DevServer> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fleet-crash-server-'));
    return new DevServer(path.join(dir, 'temporal.db'), await freePort(), [await freePort(), await freePort()]);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const [httpPort, metricsPort] = this.otherPorts;
    this.child = spawn(
      temporalCli(),
      [
        'server',
        'start-dev',
        '--headless',
        '--ip',
        '127.0.0.1',
        '--port',
        String(this.port),
        '--http-port',
        String(httpPort),
        '--metrics-port',
        String(metricsPort),
        '--db-filename',
        this.dbFile,
        '--log-level',
        'error',
        ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    this.child.stderr?.on('data', (d) => (stderr += d));
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const connection = await Connection.connect({ address: this.address, connectTimeout: 2_000 });
        try {
          await connection.workflowService.getSystemInfo({});
          return;
        } finally {
          await connection.close();
        }
      } catch (err) {
        if (this.child.exitCode !== null) throw new Error(`the dev server exited: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`the dev server did not answer: ${String(err)}\n${stderr}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** SIGKILL, as a crashed host would: no chance to flush or say goodbye. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }

  async remove(): Promise<void> {
    await this.kill('SIGTERM');
    rmSync(path.dirname(this.dbFile), { recursive: true, force: true });
  }
}

let server: Engine;
let connection: Connection | undefined;
let client: Client;
const workers: WorkerProcess[] = [];

const startWorker = (): WorkerProcess => {
  const w = startWorkerProcess(server, TASK_QUEUE, { LOG_LEVEL: 'error', SITES_DIR: SITES });
  workers.push(w);
  return w;
};

async function connect(): Promise<void> {
  await connection?.close().catch(() => undefined);
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection, namespace: server.namespace ?? 'default' });
}

async function until<T>(what: string, probe: () => Promise<T | false | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}; worker logs:\n${workers
          .map((w) => w.log().slice(-2000))
          .join('\n---\n')}`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}

const view = (h: WorkflowHandle): Promise<FleetView> => h.query(fleetStatusQuery);

beforeAll(async () => {
  if (temporalBackend() === 'cluster') server = await ClusterNode.create();
  else {
    server = await DevServer.create();
    await server.start();
  }
  await connect();
}, 120_000);

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop('SIGINT')));
  await connection?.close().catch(() => undefined);
  await server?.remove();
}, 60_000);

describe('GlideinFleet through a worker crash and a server restart', () => {
  it('two workers share a growing fleet; one killed, the server restarted: exactly the desired glideins', async () => {
    const fleet = `rc${Date.now() % 1_000_000}`;
    const slots = [1, 2, 3, 4, 5, 6].map((slot) => slotId(fleet, slot));
    const doomed = startWorker();
    startWorker();
    let handle: WorkflowHandle = await client.workflow.start('GlideinFleet', {
      taskQueue: TASK_QUEUE,
      workflowId: `fleet-${fleet}`,
      args: [{ site: 'local', count: 3, fleet }],
    });
    // Mid-growth: the first glideins are starting (or one is up), not all.
    await until(
      'the fleet growing',
      async () => (await view(handle)).starting + (await view(handle)).running > 0,
      60_000,
    );

    await doomed.stop('SIGKILL');
    await server.kill();
    // The site keeps whatever was started; nothing on it may be started twice while Temporal is away.
    await new Promise((r) => setTimeout(r, 3_000));
    await server.start();
    await connect();
    startWorker();
    handle = client.workflow.getHandle(`fleet-${fleet}`);

    const full = await until(
      'three running after the recovery',
      async () => {
        const v = await view(handle);
        return v.running === 3 && v.starting === 0 && v;
      },
      300_000,
    );
    const glideins = await Promise.all(slots.map(async (id) => (await footprint(id)).glideins.length));
    expect(glideins.reduce((a, b) => a + b, 0)).toBe(3);
    expect(Math.max(...glideins)).toBe(1);
    expect(fleetTunnels()).toHaveLength(3);
    expect(new Set(fleetTunnels()).size).toBe(3);
    expect(fleetPortLeases().sort()).toEqual(fleetTunnels().map(String).sort());
    // One LaunchGlidein running per counted slot, and no slot with two.
    let running = 0;
    for await (const _ of client.workflow.list({
      query: `WorkflowType = 'LaunchGlidein' AND GlideinFleet = '${fleet}' AND ExecutionStatus = 'Running'`,
    }))
      running++;
    expect(running).toBe(3);
    // And none started twice: every LaunchGlidein of the fleet, whatever its state, is one of those three.
    let all = 0;
    for await (const _ of client.workflow.list({
      query: `WorkflowType = 'LaunchGlidein' AND GlideinFleet = '${fleet}'`,
    }))
      all++;
    expect(all).toBe(3);
    expect(full.slots.filter((s) => s.state === 'running')).toHaveLength(3);

    await handle.signal(drainAllSignal);
    expect(
      await until('the fleet drained', async () => (await handle.result()) as { endReason: string }, 180_000),
    ).toMatchObject({
      endReason: 'drained',
    });
    for (const id of slots) expect(await footprint(id)).toEqual(EMPTY);
    expect(fleetTunnels()).toEqual([]);
    expect(fleetPortLeases()).toEqual([]);
  }, 600_000);
});
