/**
 * A production-shaped Temporal for the suites (TEMPORAL_BACKEND=cluster): PostgreSQL 15 on a private port and
 * socket, the schema set up by Temporal's schema tool with scripts/compose/setup-postgres.sh (the steps
 * docker-compose.yml runs), and two Temporal server processes (v1.29.1, every service in each) sharing that database,
 * each with its own service and membership ports, both configured by deploy/temporal/cluster.yaml. Namespaces and
 * search attributes are made as an operator makes them: scripts/compose/setup-temporal.sh with the `temporal` CLI.
 *
 * Its state lives in CLUSTER_DIR; any process can act on a running cluster (kill a node, restart PostgreSQL) through
 * it. Jest's globalSetup starts one per run; `npm run cluster -- up|down|status` from the command line.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../src/common/search-attributes';
import { alive, portAccepts, runCommand, runSync, sleep, waitFor } from './local-site';
import { ROOT, temporalCli } from './temporal-cli';

export const CLUSTER_DIR = process.env.GLIDEIN_CLUSTER_DIR ?? '/tmp/glidein-temporal-cluster';
const PG_BIN = '/usr/lib/postgresql/15/bin';
const PG_USER = 'postgres';
const DB_USER = 'temporal';
const HOST = '127.0.0.1';
/** Fixed, below the kernel's ephemeral range, so no test's freePort() can take one while a node is down. */
const PG_PORT = 17299;
const NODE_BASE = [17300, 17400] as const;
export type NodeIndex = 0 | 1;
export const NODES: readonly NodeIndex[] = [0, 1];

/** The frontend addresses of the two nodes, node 1 first. */
export const FRONTENDS = NODES.map((n) => `${HOST}:${NODE_BASE[n] + 33}`);

export const clusterPaths = {
  pgData: path.join(CLUSTER_DIR, 'postgres'),
  pgLog: path.join(CLUSTER_DIR, 'postgres.log'),
  state: path.join(CLUSTER_DIR, 'state.json'),
  nodeLog: (n: NodeIndex) => path.join(CLUSTER_DIR, `node${n + 1}.log`),
  nodePid: (n: NodeIndex) => path.join(CLUSTER_DIR, `node${n + 1}.pid`),
};

/** The server, its schema tool and schema (scripts/ensure-temporal-server builds them once into ~/.cache). */
export function serverTools(): { server: string; sql: string; schema: string } {
  const dir =
    process.env.TEMPORAL_SERVER_DIR ??
    runSync([path.join(ROOT, 'scripts', 'ensure-temporal-server')], 'the Temporal server build').trim();
  process.env.TEMPORAL_SERVER_DIR = dir;
  return {
    server: path.join(dir, 'server'),
    sql: path.join(dir, 'sql'),
    schema: path.join(dir, 'schema', 'postgresql', 'v12'),
  };
}

/** Which Temporal the site-backed suites run on: the dev server (default) or this cluster. */
export function temporalBackend(): 'dev' | 'cluster' {
  const value = process.env.TEMPORAL_BACKEND ?? 'dev';
  if (value !== 'dev' && value !== 'cluster') throw new Error(`TEMPORAL_BACKEND=${value}: expected dev or cluster`);
  return value;
}

export interface ClusterState {
  frontends: string[];
  postgres: string;
  startedAt: string;
}

/** The running cluster, or an error saying how to get one. */
export function clusterState(): ClusterState {
  if (!fs.existsSync(clusterPaths.state))
    throw new Error(
      `no Temporal cluster in ${CLUSTER_DIR}: jest's globalSetup starts one, or \`npm run cluster -- up\``,
    );
  return JSON.parse(fs.readFileSync(clusterPaths.state, 'utf8')) as ClusterState;
}

// ---------------------------------------------------------------------------------------------------
// PostgreSQL

function asPostgres(argv: readonly string[], what: string): string {
  return runSync(['runuser', '-u', PG_USER, '--', ...argv], what);
}

function initPostgres(): void {
  fs.mkdirSync(clusterPaths.pgData, { recursive: true, mode: 0o700 });
  const pg = spawnSync('id', ['-u', PG_USER], { encoding: 'utf8' });
  if (pg.status !== 0) throw new Error(`no user ${PG_USER}: install postgresql-15 (scripts/bootstrap does)`);
  runSync(['chown', `${PG_USER}:${PG_USER}`, clusterPaths.pgData], 'chown the PostgreSQL directory');
  asPostgres(
    [`${PG_BIN}/initdb`, '-D', clusterPaths.pgData, '-U', DB_USER, '--auth=trust', '-E', 'UTF8', '--no-instructions'],
    'initdb',
  );
  // Its own port and socket directory, loopback only: nothing else on the machine is disturbed.
  fs.appendFileSync(
    path.join(clusterPaths.pgData, 'postgresql.conf'),
    [
      `port = ${PG_PORT}`,
      `listen_addresses = '${HOST}'`,
      `unix_socket_directories = '${clusterPaths.pgData}'`,
      'max_connections = 200',
      '',
    ].join('\n'),
  );
}

export function startPostgres(): void {
  if (!fs.existsSync(path.join(clusterPaths.pgData, 'PG_VERSION'))) initPostgres();
  fs.writeFileSync(clusterPaths.pgLog, '', { flag: 'a' });
  runSync(['chown', PG_USER, clusterPaths.pgLog], 'chown the PostgreSQL log');
  asPostgres([`${PG_BIN}/pg_ctl`, '-D', clusterPaths.pgData, '-l', clusterPaths.pgLog, '-w', 'start'], 'pg_ctl start');
}

export function stopPostgres(mode: 'fast' | 'immediate' = 'fast'): void {
  if (!fs.existsSync(path.join(clusterPaths.pgData, 'postmaster.pid'))) return;
  asPostgres([`${PG_BIN}/pg_ctl`, '-D', clusterPaths.pgData, '-m', mode, '-w', 'stop'], 'pg_ctl stop');
}

export function postgresRunning(): boolean {
  const r = spawnSync('runuser', ['-u', PG_USER, '--', `${PG_BIN}/pg_ctl`, '-D', clusterPaths.pgData, 'status']);
  return r.status === 0;
}

async function setupSchema(): Promise<void> {
  const tools = serverTools();
  const r = await runCommand(['sh', path.join(ROOT, 'scripts', 'compose', 'setup-postgres.sh')], {
    timeoutMs: 120_000,
    env: {
      ...process.env,
      POSTGRES_SEEDS: HOST,
      DB_PORT: String(PG_PORT),
      POSTGRES_USER: DB_USER,
      SQL_PASSWORD: DB_USER,
      SQL_TOOL: tools.sql,
      SCHEMA_DIR: tools.schema,
    },
  });
  if (r.code !== 0) throw new Error(`setting up the schema failed (${r.code}): ${r.stderr.slice(-2000)}`);
}

// ---------------------------------------------------------------------------------------------------
// Server nodes

/** The environment deploy/temporal/cluster.yaml renders node n from. */
export function nodeEnv(n: NodeIndex): Record<string, string> {
  const base = NODE_BASE[n];
  return {
    POSTGRES_SEEDS: HOST,
    DB_PORT: String(PG_PORT),
    POSTGRES_USER: DB_USER,
    POSTGRES_PWD: DB_USER,
    BIND_ON_IP: HOST,
    TEMPORAL_CLUSTER_ADDRESS: FRONTENDS[0],
    FRONTEND_GRPC_PORT: String(base + 33),
    FRONTEND_HTTP_PORT: String(base + 43),
    HISTORY_GRPC_PORT: String(base + 34),
    MATCHING_GRPC_PORT: String(base + 35),
    WORKER_GRPC_PORT: String(base + 39),
    FRONTEND_MEMBERSHIP_PORT: String(base + 3),
    HISTORY_MEMBERSHIP_PORT: String(base + 4),
    MATCHING_MEMBERSHIP_PORT: String(base + 5),
    WORKER_MEMBERSHIP_PORT: String(base + 9),
    PROMETHEUS_ENDPOINT: `${HOST}:${base + 90}`,
    DYNAMIC_CONFIG_FILE_PATH: path.join(ROOT, 'deploy', 'dynamicconfig', 'production.yaml'),
    LOG_LEVEL: process.env.TEMPORAL_SERVER_LOG_LEVEL ?? 'warn',
  };
}

/** The server's argv for the cluster configuration (docker-compose.yml runs the same in its image). */
export function serverArgv(server: string): string[] {
  return [
    server,
    '--root',
    '/',
    '--config',
    path.join(ROOT, 'deploy', 'temporal'),
    '--env',
    'cluster',
    '--allow-no-auth',
    'start',
  ];
}

function nodePid(n: NodeIndex): number | undefined {
  try {
    const pid = Number(fs.readFileSync(clusterPaths.nodePid(n), 'utf8'));
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function nodeRunning(n: NodeIndex): boolean {
  return nodePid(n) !== undefined;
}

/** Starts node n (detached: it outlives the process that started it, as a service would) and waits until it serves. */
export async function startNode(n: NodeIndex): Promise<void> {
  if (nodeRunning(n)) return;
  const { server } = serverTools();
  const out = fs.openSync(clusterPaths.nodeLog(n), 'a');
  try {
    const argv = serverArgv(server);
    const child = spawn(argv[0], argv.slice(1), {
      detached: true,
      stdio: ['ignore', out, out],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...nodeEnv(n) },
    });
    child.on('error', () => undefined);
    if (child.pid === undefined) throw new Error(`cannot start Temporal node ${n + 1}`);
    fs.writeFileSync(clusterPaths.nodePid(n), String(child.pid));
    child.unref();
  } finally {
    fs.closeSync(out);
  }
  await waitServing(n);
}

/** Until node n's frontend says SERVING (its services joined the ring and own their shards). */
export async function waitServing(n: NodeIndex, timeoutMs = 90_000): Promise<void> {
  await waitFor(
    `Temporal node ${n + 1} at ${FRONTENDS[n]} to serve (log: ${clusterPaths.nodeLog(n)})`,
    async () => {
      if (!nodeRunning(n)) throw new Error(`Temporal node ${n + 1} exited: ${tail(clusterPaths.nodeLog(n))}`);
      return serving(FRONTENDS[n]);
    },
    timeoutMs,
    250,
  );
}

async function serving(address: string): Promise<boolean> {
  const [host, port] = address.split(':');
  if (!(await portAccepts({ host, port: Number(port) }, 500))) return false;
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address, connectTimeout: 2_000 });
    const r = await connection.withDeadline(Date.now() + 2_000, () =>
      connection!.healthService.check({ service: 'temporal.api.workflowservice.v1.WorkflowService' }),
    );
    return r.status === 1; // SERVING
  } catch {
    return false;
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

/** Sends `signal` to node n and waits until it is gone: SIGKILL is a crashed host, SIGTERM a graceful stop. */
export async function stopNode(n: NodeIndex, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<void> {
  const pid = nodePid(n);
  if (pid === undefined) return;
  process.kill(pid, signal);
  try {
    await waitFor(`Temporal node ${n + 1} (pid ${pid}) to exit`, () => !alive(pid), timeoutMs, 50);
  } catch {
    process.kill(pid, 'SIGKILL');
    await waitFor(`Temporal node ${n + 1} (pid ${pid}) to exit after SIGKILL`, () => !alive(pid), 10_000, 50);
  }
  fs.rmSync(clusterPaths.nodePid(n), { force: true });
}

function tail(file: string, bytes = 2000): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.slice(-bytes);
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------------------------------
// Namespaces

/**
 * Creates `namespace` with the search attributes LaunchGlidein and GlideinFleet set, the way docker-compose.yml's
 * temporal-setup job does (scripts/compose/setup-temporal.sh, the `temporal` CLI), then waits until both nodes'
 * frontends accept queries on them.
 */
export async function createNamespace(namespace: string, retention = '1d'): Promise<void> {
  const cli = temporalCli();
  const r = await runCommand(['sh', path.join(ROOT, 'scripts', 'compose', 'setup-temporal.sh')], {
    timeoutMs: 120_000,
    env: {
      ...process.env,
      PATH: `${path.dirname(cli)}:${process.env.PATH ?? ''}`,
      TEMPORAL_ADDRESS: FRONTENDS[0],
      NAMESPACE: namespace,
      NAMESPACE_RETENTION: retention,
      SEARCH_ATTRIBUTES: Object.keys(SEARCH_ATTRIBUTES).join(' '),
    },
  });
  if (r.code !== 0) throw new Error(`creating namespace ${namespace} failed (${r.code}): ${r.stderr}${r.stdout}`);
  const query = Object.keys(SEARCH_ATTRIBUTES)
    .map((name) => `${name} = "probe"`)
    .join(' AND ');
  for (const address of FRONTENDS) {
    const connection = await Connection.connect({ address });
    try {
      await waitFor(
        `namespace ${namespace} and its search attributes on ${address}`,
        () =>
          connection.workflowService.listWorkflowExecutions({ namespace, query, pageSize: 1 }).then(
            () => true,
            () => false,
          ),
        30_000,
        250,
      );
    } finally {
      await connection.close();
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The whole cluster

/** Starts a fresh cluster (anything left in CLUSTER_DIR from an earlier run is stopped and removed first). */
export async function startCluster(): Promise<ClusterState> {
  serverTools();
  await stopCluster();
  fs.rmSync(CLUSTER_DIR, { recursive: true, force: true });
  fs.mkdirSync(CLUSTER_DIR, { recursive: true, mode: 0o755 });
  startPostgres();
  await setupSchema();
  // Node 1 first: it writes the cluster's metadata; node 2 then joins the ring it finds in the database.
  await startNode(0);
  await startNode(1);
  await createNamespace('default');
  const state: ClusterState = {
    frontends: FRONTENDS,
    postgres: `${HOST}:${PG_PORT}`,
    startedAt: new Date().toISOString(),
  };
  fs.writeFileSync(clusterPaths.state, JSON.stringify(state, null, 2));
  return state;
}

/** Stops both nodes and PostgreSQL (the directory stays, for its logs). */
export async function stopCluster(): Promise<void> {
  healCuts();
  fs.rmSync(clusterPaths.state, { force: true });
  for (const n of NODES) await stopNode(n);
  if (fs.existsSync(clusterPaths.pgData)) stopPostgres();
}

export interface ClusterStatus {
  nodes: { node: number; frontend: string; pid?: number; serving: boolean }[];
  postgres: boolean;
}

export async function clusterStatus(): Promise<ClusterStatus> {
  const nodes = [];
  for (const n of NODES)
    nodes.push({ node: n + 1, frontend: FRONTENDS[n], pid: nodePid(n), serving: await serving(FRONTENDS[n]) });
  return { nodes, postgres: fs.existsSync(clusterPaths.pgData) && postgresRunning() };
}

/** PostgreSQL stopped for `downMs`, then started again: both nodes lose their database meanwhile. */
export async function restartPostgres(downMs: number): Promise<void> {
  stopPostgres('fast');
  await sleep(downMs);
  startPostgres();
}

// ---------------------------------------------------------------------------------------------------
// Network cuts

const CUT_TABLE = 'glidein_cluster_cut';

/**
 * Cuts node n's frontend off the network: every packet to or from its gRPC port is dropped (an nft table of its own;
 * no reset, so clients see silence, as behind a dead link). Whoever talks to that frontend — the suites' worker
 * processes talk to node 1's — is cut off the cluster; the nodes still reach each other and the database.
 */
export function cutFrontend(n: NodeIndex): void {
  const port = String(NODE_BASE[n] + 33);
  healCuts();
  runSync(['nft', 'add', 'table', 'inet', CUT_TABLE], 'nft add table');
  runSync(
    ['nft', 'add', 'chain', 'inet', CUT_TABLE, 'output', '{ type filter hook output priority 0 ; policy accept ; }'],
    'nft add chain',
  );
  for (const dir of ['dport', 'sport'])
    runSync(['nft', 'add', 'rule', 'inet', CUT_TABLE, 'output', 'tcp', dir, port, 'drop'], 'nft add rule');
}

/** Removes every cut (idempotent). */
export function healCuts(): void {
  spawnSync('nft', ['delete', 'table', 'inet', CUT_TABLE], { stdio: 'ignore' });
}
