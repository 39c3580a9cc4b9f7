/**
 * JSC in a box: the chain of sites/jsc-box.yaml with JSC's firewall enforced by network namespaces and the
 * worker node handed out by a real Slurm. Each "machine" is a network namespace on a bridge `glbr0`
 * (10.77.0.0/24; the host, where the Temporal worker runs, is 10.77.0.1):
 *
 *   gl-login  10.77.0.2   login node jwlogin: OpenSSH sshd :22, slurmctld, munged
 *   gl-worker 10.77.0.10  worker node jwc01: slurmd, OpenSSH sshd :22
 *   gl-kit    10.77.0.3   the KIT reverse proxy: tinyproxy :80
 *   gl-pool   10.77.0.4   the CMS Global Pool collector (stand-in) :9618, updates only from 10.77.0.3, and a
 *                         Frontier squid (stand-in, the cvmfs stratum-1 behind it too) :3128
 *
 * An nft output fence in gl-worker lets it open TCP only to the login node; the one in gl-login lets it open
 * TCP to the worker node and elsewhere only to ports 80 and 443. The host's ruleset is not touched.
 *
 * Every node is held by an "anchor" process (`glidein-jsc-box node <hostname>`) that owns the node's mount and
 * UTS namespaces: its /etc/hosts is /etc/netns/<ns>/hosts bind-mounted (as `ip netns exec` does) and its
 * hostname is the node's name, so `srun hostname` prints jwc01. Daemons and commands enter a node with
 * `nsenter -t <anchor> -n -m -u`, so they share one view of the node (a FUSE mount made in an ssh session is
 * visible to a Slurm step). `ip netns exec` is not used to start daemons: it remounts /sys without the
 * cgroup hierarchy, and slurmd then refuses to start ("No filesystem mounted on /sys/fs/cgroup").
 *
 * Users, keys, stand-ins, process and lease helpers come from the loopback site (sandbox/local-site.ts);
 * user `glidein` and its home are shared with it. See docs/TEST-SITE.md, section "JSC in a box".
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  acquireSiteLease,
  buildSiteTree,
  forgetLeases,
  allProcesses,
  alive,
  collectorAds,
  ensureUser,
  hostKeyEntry,
  keygen,
  killAndWait,
  launchDetached,
  lookupUser,
  mkdir,
  portAccepts,
  readText,
  proxyAccount,
  releaseSiteLease,
  runCommand,
  SITE_PATHS,
  SITE_USER,
  sshdConfigText,
  tinyproxyConfigText,
  poolStandin,
  sleep,
  unescapeMount,
  unmount,
  waitFor,
  writeFile,
  type ClassAd,
  type CommandResult,
  type Endpoint,
  type RunOptions,
  type SiteMount,
  type SiteProcess,
  type UserEntry,
} from './local-site';
import { commandLine } from '../src/remote/quote';

export const BOX_DIR = '/tmp/glidein-jsc-box';
export const BOX_USER = SITE_USER;
export const BOX_BRIDGE = 'glbr0';
export const BOX_SUBNET = '10.77.0.0/24';
/** The operator's machine (where the Temporal worker runs) on the bridge. */
export const OPERATOR_ADDRESS = '10.77.0.1';
/** The Slurm name of the one worker node, as squeue prints it and as the operator's known_hosts names it. */
export const WORKER_NODE_NAME = 'jwc01';
export const LOGIN_NODE_NAME = 'jwlogin';
export const SLURM_PARTITION = 'batch';

export type BoxNode = 'login' | 'worker' | 'kit' | 'pool';
export type BoxNamespace = 'gl-login' | 'gl-worker' | 'gl-kit' | 'gl-pool';

export interface BoxNodeSpec {
  readonly namespace: BoxNamespace;
  readonly hostname: string;
  readonly address: string;
  /** The host side of the node's veth pair (its end in the namespace is eth0). */
  readonly veth: string;
  readonly standsFor: string;
}

export const BOX_NODES: Readonly<Record<BoxNode, BoxNodeSpec>> = {
  login: {
    namespace: 'gl-login',
    hostname: LOGIN_NODE_NAME,
    address: '10.77.0.2',
    veth: 'glv-login',
    standsFor: 'JSC login node',
  },
  worker: {
    namespace: 'gl-worker',
    hostname: WORKER_NODE_NAME,
    address: '10.77.0.10',
    veth: 'glv-worker',
    standsFor: 'JSC worker node',
  },
  kit: {
    namespace: 'gl-kit',
    hostname: 'kitproxy',
    address: '10.77.0.3',
    veth: 'glv-kit',
    standsFor: 'KIT reverse proxy',
  },
  pool: {
    namespace: 'gl-pool',
    hostname: 'cmspool',
    address: '10.77.0.4',
    veth: 'glv-pool',
    standsFor: 'CMS Global Pool collector',
  },
};
const NODE_LIST = Object.keys(BOX_NODES) as BoxNode[];
export const BOX_NAMESPACES: readonly BoxNamespace[] = NODE_LIST.map((n) => BOX_NODES[n].namespace);

export type BoxEndpointName = 'login' | 'worker' | 'kit' | 'collector' | 'squid' | 'slurmctld' | 'slurmd';

export const BOX_ENDPOINTS: Readonly<Record<BoxEndpointName, Endpoint>> = {
  login: { host: BOX_NODES.login.address, port: 22 },
  worker: { host: BOX_NODES.worker.address, port: 22 },
  kit: { host: BOX_NODES.kit.address, port: 80 },
  collector: { host: BOX_NODES.pool.address, port: 9618 },
  // The Frontier squid (and the cvmfs stratum-1 behind it), beside the collector: reached only through KIT.
  squid: { host: BOX_NODES.pool.address, port: 3128 },
  slurmctld: { host: BOX_NODES.login.address, port: 6817 },
  slurmd: { host: BOX_NODES.worker.address, port: 6818 },
};

const site = path.join(BOX_DIR, 'site');
const cvmfsexec = path.join(site, 'cvmfsexec');
const slurmDir = path.join(BOX_DIR, 'slurm');
const mungeDir = path.join(BOX_DIR, 'munge');

/** Every path of the box. Those under `site/` are the site's filesystem as sites/jsc-box.yaml names it. */
export const BOX_PATHS = {
  dir: BOX_DIR,
  operatorDir: path.join(BOX_DIR, 'operator'),
  operatorKey: path.join(BOX_DIR, 'operator', 'id_ed25519'),
  operatorKnownHosts: path.join(BOX_DIR, 'operator', 'known_hosts'),
  siteRoot: site,
  /** The site key's directory; user glidein's HOME stays the loopback site's (SITE_PATHS.home). */
  siteHome: path.join(site, 'home'),
  siteKey: path.join(site, 'home', '.ssh', 'id_ed25519'),
  siteKnownHosts: path.join(site, 'home', '.ssh', 'known_hosts'),
  cvmfsexecDir: cvmfsexec,
  mountrepo: path.join(cvmfsexec, 'mountrepo'),
  umountrepo: path.join(cvmfsexec, 'umountrepo'),
  cvmfsDist: path.join(cvmfsexec, 'dist', 'cvmfs'),
  cvmfsStore: path.join(cvmfsexec, 'store'),
  condorStatus: path.join(cvmfsexec, 'store', 'cms.cern.ch', 'glidein', 'bin', 'condor_status'),
  apptainer: path.join(site, 'bin', 'apptainer'),
  image: path.join(site, 'images', 'cms-el9.sif'),
  workDir: path.join(site, 'work'),
  loginDir: path.join(BOX_DIR, 'login'),
  workerDir: path.join(BOX_DIR, 'worker'),
  kitDir: path.join(BOX_DIR, 'kit'),
  kitLog: path.join(BOX_DIR, 'kit', 'tinyproxy.log'),
  poolDir: path.join(BOX_DIR, 'pool'),
  poolKeysDir: path.join(BOX_DIR, 'pool', 'signing-keys'),
  operatorToken: path.join(BOX_DIR, 'operator', 'pool.idtoken'),
  collectorLog: path.join(BOX_DIR, 'pool', 'collector.log'),
  /** Present while the box is strict (setStrict): `up` keeps it strict. */
  strictMarker: path.join(BOX_DIR, 'strict'),
  squidLog: path.join(BOX_DIR, 'pool', 'squid-access.log'),
  nodesDir: path.join(BOX_DIR, 'nodes'),
  slurmDir,
  slurmConf: path.join(slurmDir, 'slurm.conf'),
  /** TaskEpilog and Epilog: a step's or a job's processes end with it (see STEP_END_SCRIPT). */
  slurmEnds: path.join(slurmDir, 'ends-with-step.sh'),
  slurmState: path.join(slurmDir, 'state'),
  slurmSpool: path.join(slurmDir, 'spool'),
  slurmctldLog: path.join(slurmDir, 'slurmctld.log'),
  slurmdLog: path.join(slurmDir, 'slurmd.log'),
  mungeDir,
  mungeKey: path.join(mungeDir, 'munge.key'),
  mungeSocketDir: path.join(mungeDir, 'run'),
  mungeSocket: path.join(mungeDir, 'run', 'munge.socket'),
  mungeLog: path.join(mungeDir, 'munged.log'),
  leases: path.join(BOX_DIR, 'leases'),
  lock: path.join(BOX_DIR, 'lock'),
} as const;

/** The environment every Slurm command of the box needs (the login and worker sshd set it for ssh sessions). */
export const SLURM_ENV: Readonly<Record<string, string>> = { SLURM_CONF: BOX_PATHS.slurmConf };

// ---------------------------------------------------------------------------------------------------
// Commands on the host

/** Runs argv on the host; throws with its stderr when it fails. */
async function run(argv: readonly string[], what: string, opts: RunOptions = {}): Promise<string> {
  const r = await runCommand(argv, opts);
  if (r.code !== 0)
    throw new Error(
      `${what}: \`${commandLine(argv)}\` exited with ${r.code ?? r.signal}: ${r.stderr.trim() || r.stdout.trim()}`,
    );
  return r.stdout;
}

async function succeeds(argv: readonly string[]): Promise<boolean> {
  return (await runCommand(argv, { timeoutMs: 10_000 })).code === 0;
}

// ---------------------------------------------------------------------------------------------------
// Namespaces and processes

/** The inode of a named network namespace (what /proc/<pid>/ns/net names), or undefined. */
function namespaceInode(ns: BoxNamespace): number | undefined {
  try {
    return fs.statSync(`/run/netns/${ns}`).ino;
  } catch {
    return undefined;
  }
}

function processNamespace(pid: number, kind: 'net' | 'mnt'): number | undefined {
  try {
    const m = /\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/ns/${kind}`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Live processes in the box's network namespaces, each with the node it runs on. */
function nodeProcesses(): Array<SiteProcess & { node: BoxNode }> {
  const inodes = new Map<number, BoxNode>();
  for (const node of NODE_LIST) {
    const ino = namespaceInode(BOX_NODES[node].namespace);
    if (ino !== undefined) inodes.set(ino, node);
  }
  if (inodes.size === 0) return [];
  const out: Array<SiteProcess & { node: BoxNode }> = [];
  for (const p of allProcesses()) {
    if (p.state === 'Z') continue;
    const node = inodes.get(processNamespace(p.pid, 'net') ?? -1);
    if (node) out.push({ ...p, node });
  }
  return out;
}

export type BoxProcess = SiteProcess & { node: BoxNode };

/**
 * The box's working processes: everything user glidein runs on its nodes (sessions, jobs, tunnels, mounts,
 * instances, glideins), Slurm's step daemons (slurmstepd) and the root half of glidein's ssh sessions.
 */
export function boxProcesses(): BoxProcess[] {
  const user = lookupUser(BOX_USER);
  return nodeProcesses().filter(
    (p) =>
      (user !== undefined && p.uid === user.uid) ||
      p.cmdline.startsWith('slurmstepd') ||
      p.cmdline.startsWith(`sshd: ${BOX_USER}`),
  );
}

/** Every process of the box: its daemons, their node anchors and boxProcesses(). */
export function allBoxProcesses(): BoxProcess[] {
  return nodeProcesses();
}

const ANCHOR_PREFIX = 'glidein-jsc-box node';

function anchorPid(node: BoxNode): number | undefined {
  const name = `${ANCHOR_PREFIX} ${BOX_NODES[node].hostname}`;
  return nodeProcesses().find((p) => p.node === node && p.argv[0] === name)?.pid;
}

/** argv that runs `argv` on a node (its network, mount and UTS namespaces). */
function onNodeArgv(node: BoxNode, argv: readonly string[]): string[] {
  const anchor = anchorPid(node);
  if (anchor === undefined) return ['ip', 'netns', 'exec', BOX_NODES[node].namespace, ...argv];
  return ['nsenter', '-t', String(anchor), '-n', '-m', '-u', '--', ...argv];
}

function nodeOf(ns: BoxNamespace): BoxNode {
  const node = NODE_LIST.find((n) => BOX_NODES[n].namespace === ns);
  if (!node) throw new Error(`${String(ns)} is not a namespace of the box (${BOX_NAMESPACES.join(', ')})`);
  return node;
}

/**
 * Runs argv inside a namespace of the box (as root, on that node: its network, /etc/hosts and hostname), with
 * SLURM_CONF set. Never rejects for a non-zero exit.
 */
export function inNamespace(ns: BoxNamespace, argv: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  return runCommand(onNodeArgv(nodeOf(ns), argv), { ...opts, env: { ...(opts.env ?? process.env), ...SLURM_ENV } });
}

// ---------------------------------------------------------------------------------------------------
// Inspection

export interface BoxMount extends SiteMount {
  /** Whose mount table holds it: the host's or a node's (mounts made on a node stay in its namespace). */
  where: 'host' | BoxNode;
}

function parseMounts(text: string): SiteMount[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [source, target, fstype, options] = line.split(' ');
      return { source: unescapeMount(source), target: unescapeMount(target), fstype, options };
    });
}

/** Mounts under the box dir, on the host and in every node's mount namespace. */
export function boxMounts(): BoxMount[] {
  const out: BoxMount[] = [];
  const under = (m: SiteMount) => m.target.startsWith(BOX_DIR + '/');
  const seen = new Set<number>([processNamespace(process.pid, 'mnt') ?? -1]);
  for (const m of parseMounts(readText('/proc/self/mounts')).filter(under)) out.push({ ...m, where: 'host' });
  for (const p of nodeProcesses()) {
    const mnt = processNamespace(p.pid, 'mnt');
    if (mnt === undefined || seen.has(mnt)) continue;
    seen.add(mnt);
    for (const m of parseMounts(readText(`/proc/${p.pid}/mounts`)).filter(under)) {
      if (!out.some((o) => o.where === p.node && o.target === m.target)) out.push({ ...m, where: p.node });
    }
  }
  return out;
}

/** Ads in the box's collector matching a ClassAd constraint, by a direct query from the host. */
export function boxCollectorAds(constraint = 'true', timeoutMs = 5000): Promise<ClassAd[]> {
  return collectorAds(constraint, timeoutMs, BOX_ENDPOINTS.collector);
}

/** The KIT proxy's log: `CONNECT host:port` for every connection through KIT. */
export function kitLog(): string {
  return readText(BOX_PATHS.kitLog);
}

export function collectorLog(): string {
  return readText(BOX_PATHS.collectorLog);
}

export function sshdLog(node: 'login' | 'worker'): string {
  return readText(path.join(node === 'login' ? BOX_PATHS.loginDir : BOX_PATHS.workerDir, 'sshd.log'));
}

export interface SlurmJobInfo {
  id: string;
  user: string;
  state: string;
  /** The node list (empty while pending). */
  nodes: string;
  /** squeue's %L: [D-]HH:MM:SS, MM:SS, UNLIMITED, NOT_SET or INVALID. */
  timeLeft: string;
  partition: string;
  account: string;
  /** squeue's %r: None, Priority, Resources, ... */
  reason: string;
  name: string;
}

/** Every job in the queue (all users), from squeue on the login node. */
export async function slurmJobs(): Promise<SlurmJobInfo[]> {
  const r = await inNamespace(
    BOX_NODES.login.namespace,
    ['squeue', '--all', '--noheader', '--format=%i|%u|%T|%N|%L|%P|%a|%r|%j'],
    { timeoutMs: 15_000 },
  );
  if (r.code !== 0) throw new Error(`squeue on the login node failed: ${r.stderr.trim()}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const f = line.split('|');
      const [id, user, state, nodes, timeLeft, partition, account, reason] = f;
      return { id, user, state, nodes, timeLeft, partition, account, reason, name: f.slice(8).join('|') };
    });
}

/** sinfo's state of the worker node (idle, allocated, mixed, down*, drained, ...), or undefined. */
export async function workerNodeState(): Promise<string | undefined> {
  const r = await inNamespace(
    BOX_NODES.login.namespace,
    ['sinfo', '--noheader', '--Node', `--nodes=${WORKER_NODE_NAME}`, '--format=%T'],
    { timeoutMs: 10_000 },
  );
  return r.code === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : undefined;
}

// ---------------------------------------------------------------------------------------------------
// Services

export type BoxService =
  'munge' | 'slurmctld' | 'login-sshd' | 'slurmd' | 'worker-sshd' | 'kit' | 'collector' | 'squid';

interface ServiceSpec {
  readonly node: BoxNode;
  /** A path only this service's processes have in their command line. */
  readonly signature: string;
  readonly endpoint?: Endpoint;
  readonly logFile: string;
  /** A daemon that forks into the background itself; otherwise the box detaches it. */
  readonly daemonizes: boolean;
  readonly argv: readonly string[];
  ready(): Promise<boolean>;
}

function sshdService(node: 'login' | 'worker'): ServiceSpec {
  const dir = node === 'login' ? BOX_PATHS.loginDir : BOX_PATHS.workerDir;
  const config = path.join(dir, 'sshd_config');
  const endpoint = BOX_ENDPOINTS[node];
  return {
    node,
    signature: config,
    endpoint,
    logFile: path.join(dir, 'sshd.log'),
    daemonizes: true,
    argv: ['/usr/sbin/sshd', '-f', config, '-E', path.join(dir, 'sshd.log')],
    ready: () => portAccepts(endpoint, 300),
  };
}

const SERVICES: Readonly<Record<BoxService, ServiceSpec>> = {
  munge: {
    node: 'login',
    signature: BOX_PATHS.mungeKey,
    logFile: BOX_PATHS.mungeLog,
    daemonizes: true,
    argv: [
      'munged',
      '--key-file',
      BOX_PATHS.mungeKey,
      '--socket',
      BOX_PATHS.mungeSocket,
      '--pid-file',
      path.join(mungeDir, 'munged.pid'),
      '--log-file',
      BOX_PATHS.mungeLog,
      '--seed-file',
      path.join(mungeDir, 'munged.seed'),
    ],
    ready: () => Promise.resolve(fs.existsSync(BOX_PATHS.mungeSocket)),
  },
  slurmctld: {
    node: 'login',
    signature: BOX_PATHS.slurmConf,
    endpoint: BOX_ENDPOINTS.slurmctld,
    logFile: BOX_PATHS.slurmctldLog,
    daemonizes: true,
    argv: ['slurmctld', '-i', '-f', BOX_PATHS.slurmConf],
    ready: () => portAccepts(BOX_ENDPOINTS.slurmctld, 300),
  },
  'login-sshd': sshdService('login'),
  slurmd: {
    node: 'worker',
    signature: BOX_PATHS.slurmConf,
    endpoint: BOX_ENDPOINTS.slurmd,
    logFile: BOX_PATHS.slurmdLog,
    daemonizes: true,
    argv: ['slurmd', '-N', WORKER_NODE_NAME, '-f', BOX_PATHS.slurmConf],
    ready: () => portAccepts(BOX_ENDPOINTS.slurmd, 300),
  },
  'worker-sshd': sshdService('worker'),
  kit: {
    node: 'kit',
    signature: path.join(BOX_PATHS.kitDir, 'tinyproxy.conf'),
    endpoint: BOX_ENDPOINTS.kit,
    logFile: path.join(BOX_PATHS.kitDir, 'tinyproxy.out'),
    daemonizes: false,
    argv: ['tinyproxy', '-d', '-c', path.join(BOX_PATHS.kitDir, 'tinyproxy.conf')],
    ready: () => portAccepts(BOX_ENDPOINTS.kit, 300),
  },
  collector: boxPoolService(BOX_ENDPOINTS.collector, 'collector', [
    'condor/collector.py',
    // Only connections that come out of the KIT proxy may register, as at the CMS Global Pool.
    '--allow-update-from',
    BOX_NODES.kit.address,
    // And only with an IDTOKEN of this pool.
    '--token-keys',
    BOX_PATHS.poolKeysDir,
    '--log',
    BOX_PATHS.collectorLog,
  ]),
  squid: boxPoolService(BOX_ENDPOINTS.squid, 'squid', [
    'squid/squid.py',
    '--store',
    BOX_PATHS.cvmfsStore,
    '--log',
    BOX_PATHS.squidLog,
  ]),
};
const SERVICE_LIST = Object.keys(SERVICES) as BoxService[];

/** A stand-in of the pool's side in the pool's namespace (sandbox/local-site.ts runs the same ones). */
function boxPoolService(endpoint: Endpoint, name: string, script: string[]): ServiceSpec {
  return {
    node: 'pool',
    ...poolStandin(endpoint, name, BOX_PATHS.poolDir, script),
    endpoint,
    daemonizes: false,
    ready: () => portAccepts(endpoint, 300),
  };
}

function servicePids(service: BoxService): number[] {
  const spec = SERVICES[service];
  return nodeProcesses()
    .filter(
      (p) =>
        p.node === spec.node &&
        p.argv.some((a) => a.includes(spec.signature)) &&
        (service !== 'slurmctld' || p.argv[0].endsWith('slurmctld')) &&
        (service !== 'slurmd' || p.argv[0].endsWith('slurmd')),
    )
    .map((p) => p.pid);
}

/** Starts one service on its node unless it runs and is ready. Returns true when it had to start it. */
async function startService(service: BoxService): Promise<boolean> {
  const spec = SERVICES[service];
  const pids = servicePids(service);
  if (pids.length > 0 && (await spec.ready())) return false;
  if (pids.length > 0) await killAndWait(pids, 3000);
  if (service === 'munge') fs.rmSync(BOX_PATHS.mungeSocket, { force: true });
  const argv = onNodeArgv(spec.node, spec.argv);
  if (spec.daemonizes) {
    await run(argv, `starting ${service} on ${BOX_NODES[spec.node].namespace}`, {
      env: { ...process.env, ...SLURM_ENV },
      timeoutMs: 20_000,
    });
  } else {
    launchDetached(argv, spec.logFile);
  }
  try {
    await waitFor(`${service} on ${BOX_NODES[spec.node].namespace} to be ready`, () => spec.ready(), 15_000, 25);
  } catch (err) {
    const tail = readText(spec.logFile).split('\n').slice(-10).join('\n');
    throw new Error(`${(err as Error).message}; last lines of ${spec.logFile}:\n${tail}`);
  }
  return true;
}

export interface BoxServiceStatus {
  service: BoxService;
  node: BoxNode;
  endpoint?: Endpoint;
  pids: number[];
  ready: boolean;
}

export async function serviceStatus(service: BoxService): Promise<BoxServiceStatus> {
  const spec = SERVICES[service];
  const pids = servicePids(service);
  return { service, node: spec.node, endpoint: spec.endpoint, pids, ready: pids.length > 0 && (await spec.ready()) };
}

/** Stops a service (SIGTERM, then SIGKILL after 5 s) and starts it again: a daemon restart as a site does one. */
export async function restartService(service: BoxService): Promise<void> {
  requireRoot();
  await killAndWait(servicePids(service), 5000);
  await startService(service);
}

/** Removes (false) or restores (true) the KIT hop: stops or starts the KIT proxy. */
export async function setKitProxy(up: boolean): Promise<void> {
  requireRoot();
  if (up) await startService('kit');
  else await killAndWait(servicePids('kit'), 5000);
}

// ---------------------------------------------------------------------------------------------------
// Strict: JSC as it publishes itself

/**
 * JSC's firewall "automatically disables the originating system" after "too many accesses within a short amount
 * of time". JSC publishes no numbers; these are the box's: more than `connections` new SSH connections from one
 * source within a minute (a token bucket of that size, refilled at that rate per minute) bans the source for
 * `banSeconds`, every packet of it dropped at the login node's outside interface.
 */
export const BAN = { connections: 10, banSeconds: 300 } as const;

/** The ban, as nft rules in the login node's namespace (input hook, its outside interface eth0). */
export function banRules(): string {
  return [
    'table inet jscban {',
    '  set banned { type ipv4_addr; flags timeout; }',
    '  set ssh_new { type ipv4_addr; flags dynamic,timeout; timeout 60s; }',
    '  chain input {',
    '    type filter hook input priority filter - 1; policy accept;',
    '    iifname "eth0" ip saddr @banned counter drop',
    `    iifname "eth0" tcp dport 22 ct state new update @ssh_new { ip saddr limit rate over ` +
      `${BAN.connections}/minute burst ${BAN.connections} packets } add @banned { ip saddr timeout ` +
      `${BAN.banSeconds}s } counter drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * A node's authorized_keys for the site user. Strict, as JSC registers keys: each with the `from=` list of the
 * hosts it may come from — the operator's key from the operator's machine only, the tunnel key (forward mode's
 * key on the site; unused by the relay) from the worker node only.
 */
function authorizedKeys(node: 'login' | 'worker', strict: boolean): string {
  const P = BOX_PATHS;
  const operatorPub = fs.readFileSync(`${P.operatorKey}.pub`, 'utf8').trim();
  const sitePub = fs.readFileSync(`${P.siteKey}.pub`, 'utf8').trim();
  if (!strict || node === 'worker') return `${operatorPub}\n${sitePub}\n`;
  return `from="${OPERATOR_ADDRESS}" ${operatorPub}\nfrom="${BOX_NODES.worker.address}" ${sitePub}\n`;
}

export function isStrict(): boolean {
  return fs.existsSync(BOX_PATHS.strictMarker);
}

async function applyBanRules(strict: boolean): Promise<void> {
  const ns = BOX_NODES.login.namespace;
  // Declared first so that deleting it never fails; then defined again, or not.
  const script = `table inet jscban {}\ndelete table inet jscban\n${strict ? banRules() : ''}`;
  await run(['nsenter', `--net=/run/netns/${ns}`, 'nft', '-f', '-'], `setting the ban in ${ns}`, { input: script });
}

/**
 * Makes the box strict (or lenient again) while it runs: no sshd on the worker node at all, `from=` on every key
 * of the login node, and the login node banning a source that opens too many SSH connections (BAN). Persists:
 * `up` keeps the box as it was left.
 */
export async function setStrict(strict: boolean): Promise<void> {
  requireRoot();
  if (strict) writeFile(BOX_PATHS.strictMarker, 'JSC in a box is strict (sandbox/jsc-box.ts setStrict)\n', 0o644);
  else fs.rmSync(BOX_PATHS.strictMarker, { force: true });
  writeFile(path.join(BOX_PATHS.loginDir, 'authorized_keys', BOX_USER), authorizedKeys('login', strict), 0o644);
  // A box that is down becomes strict (or not) when it comes up.
  if (!(await existingNamespaces()).includes(BOX_NODES.login.namespace)) return;
  await applyBanRules(strict);
  if (strict) await killAndWait(servicePids('worker-sshd'), 5000);
  else await startService('worker-sshd');
}

/** The sources the login node bans now. */
export async function bannedSources(): Promise<string[]> {
  const r = await inNamespace(BOX_NODES.login.namespace, ['nft', '-j', 'list', 'set', 'inet', 'jscban', 'banned']);
  if (r.code !== 0) return [];
  const doc = JSON.parse(r.stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> };
  const elems = doc.nftables.find((x) => x.set)?.set?.elem ?? [];
  return elems.map((e) =>
    typeof e === 'string' ? e : String((e as { elem?: { val?: unknown } }).elem?.val ?? JSON.stringify(e)),
  );
}

/** Lifts every ban (and forgets the connection counts). */
export async function clearBans(): Promise<void> {
  for (const set of ['banned', 'ssh_new'])
    await inNamespace(BOX_NODES.login.namespace, ['nft', 'flush', 'set', 'inet', 'jscban', set]);
}

// ---------------------------------------------------------------------------------------------------
// Building the box

function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() === 0) return;
  throw new Error(
    'JSC in a box needs root: it creates network namespaces (gl-login, gl-worker, gl-kit, gl-pool), a bridge and nft ' +
      'fences, and runs sshd, Slurm and munge. Run it as root (`npx ts-node sandbox/cli.ts jsc-box up`), or use the ' +
      'loopback site sites/local.yaml instead (sandbox/local-site.ts, no namespaces).',
  );
}

function notPermitted(what: string, detail: string): Error {
  return new Error(
    `JSC in a box cannot ${what} here (${detail.trim()}): it needs network namespaces (CAP_SYS_ADMIN and ` +
      `CAP_NET_ADMIN, ` +
      'e.g. not in an unprivileged container). Use the loopback site sites/local.yaml instead ' +
      '(sandbox/local-site.ts, no namespaces).',
  );
}

function sshdConfig(node: 'login' | 'worker'): string {
  return sshdConfigText({
    title: `${node} node (${BOX_NODES[node].hostname}) of JSC in a box (written by sandbox/jsc-box.ts)`,
    endpoint: BOX_ENDPOINTS[node],
    dir: node === 'login' ? BOX_PATHS.loginDir : BOX_PATHS.workerDir,
    user: BOX_USER,
    // Slurm's configuration is not in /etc/slurm: every session gets SLURM_CONF, as a login shell would at JSC.
    extra: [`SetEnv SLURM_CONF=${BOX_PATHS.slurmConf}`],
  });
}

/**
 * Run as TaskEpilog (as the job's user, at the end of each task of a step: SLURM_STEP_ID set) and as Epilog (as
 * root, at the end of the job): end every process whose environment carries this job's id (and, for a step, this
 * step's id), and every descendant of those, SIGTERM and after 5 s SIGKILL, as cgroup-based tracking would. A process
 * that cleared its environment and left the tree (setsid and a double fork) escapes: the box only approximates JSC
 * here. The batch step's own end is left to the Epilog.
 */
const STEP_END_SCRIPT =
  `#!/bin/sh
job=\${SLURM_JOB_ID:-}; step=\${SLURM_STEP_ID:-\${SLURM_STEPID:-}}
[ -n "$job" ] || exit 0
case $step in
  '') ;;
  *[!0-9]*|??????????) exit 0;;
esac
files=$(grep -lzx "SLURM_JOB_ID=$job" /proc/[0-9]*/environ 2>/dev/null)
[ -n "$step" ] && [ -n "$files" ] && files=$(grep -lzxE "SLURM_STEP_?ID=$step" $files 2>/dev/null)
pids=
for f in $files; do
  pid=\${f#/proc/}; pid=\${pid%/environ}
  [ "$pid" = $$ ] || pids="$pids $pid"
done
[ -n "$pids" ] || exit 0
# And their descendants, whatever their environment (a container's exec --cleanenv): a cgroup holds those too.
tree=$(ps -e -o pid= -o ppid=)
while :; do
  more=$(printf '%s\\n' "$tree" | awk -v set=" $pids " 'index(set, " " $2 " ") && !index(set, " " $1 " ") ` +
  `{ printf " %s", $1 }')
  [ -n "$more" ] || break
  pids="$pids$more"
done
# As Slurm ends a step: SIGTERM (a FUSE daemon then unmounts), SIGKILL what is left after a grace (KillWait).
kill -TERM $pids 2>/dev/null
i=0
while [ $i -lt 50 ]; do
  alive=; for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ -n "$alive" ] || exit 0
  sleep 0.1; i=$((i + 1))
done
kill -KILL $pids 2>/dev/null
exit 0
`;

function slurmConfig(): string {
  const P = BOX_PATHS;
  const login = BOX_NODES.login;
  const worker = BOX_NODES.worker;
  return [
    '# Slurm of JSC in a box (written by sandbox/jsc-box.ts): one controller on the login node, one worker node.',
    'ClusterName=jscbox',
    `SlurmctldHost=${login.hostname}(${login.address})`,
    'AuthType=auth/munge',
    `AuthInfo=socket=${P.mungeSocket}`,
    'CredType=cred/munge',
    'SlurmUser=root',
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    // proctrack/cgroup (or psslurm) ends every process of a step with the step and of a job with the job, however
    // it daemonized; linuxproc cannot follow a setsid. These two kill by the job and step ids in the environment.
    `TaskEpilog=${P.slurmEnds}`,
    `Epilog=${P.slurmEnds}`,
    'JobAcctGatherType=jobacct_gather/none',
    'AccountingStorageType=accounting_storage/none',
    'JobCompType=jobcomp/none',
    'SelectType=select/cons_tres',
    'MpiDefault=none',
    'ReturnToService=2',
    // A node that misses its first registration is pinged again after SlurmdTimeout/3 (default 300 s / 3).
    'SlurmdTimeout=30',
    'SlurmctldTimeout=30',
    `SlurmdSpoolDir=${P.slurmSpool}`,
    `StateSaveLocation=${P.slurmState}`,
    `SlurmctldLogFile=${P.slurmctldLog}`,
    `SlurmdLogFile=${P.slurmdLog}`,
    `SlurmctldPidFile=${path.join(P.slurmDir, 'slurmctld.pid')}`,
    `SlurmdPidFile=${path.join(P.slurmDir, 'slurmd.pid')}`,
    // Four CPUs whatever the machine has (config_overrides): enough for a fleet's holder jobs to share the node.
    'SlurmdParameters=config_overrides',
    `NodeName=${worker.hostname} NodeAddr=${worker.address} CPUs=4 RealMemory=2000`,
    `PartitionName=${SLURM_PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP`,
    '',
  ].join('\n');
}

function tinyproxyConfig(user: string, group: string): string {
  return tinyproxyConfigText({
    title: 'The KIT reverse proxy of JSC in a box: an HTTP CONNECT proxy (written by sandbox/jsc-box.ts)',
    user,
    group,
    kit: BOX_ENDPOINTS.kit,
    allow: BOX_SUBNET,
    connectPorts: [BOX_ENDPOINTS.collector.port, BOX_ENDPOINTS.squid.port],
    dir: BOX_PATHS.kitDir,
    log: BOX_PATHS.kitLog,
  });
}

function hostsFile(node: BoxNode): string {
  const n = BOX_NODES;
  return [
    `# /etc/hosts of ${n[node].hostname} in JSC in a box (bind-mounted by the node's anchor and by \`ip netns exec\`)`,
    `127.0.0.1 localhost ${n[node].hostname}`,
    '::1 localhost ip6-localhost ip6-loopback',
    `${OPERATOR_ADDRESS} operator`,
    `${n.login.address} ${n.login.hostname}`,
    `${n.worker.address} ${n.worker.hostname}`,
    `${n.kit.address} ${n.kit.hostname}`,
    `${n.pool.address} ${n.pool.hostname}`,
    '',
  ].join('\n');
}

/** The output fence of a node (nft, inside its namespace), or undefined for an unfenced node. */
export function fenceRules(node: BoxNode): string | undefined {
  const allow: Partial<Record<BoxNode, string[]>> = {
    // A worker node reaches only the login node: ssh, slurmctld, srun's ports.
    worker: [`ip daddr ${BOX_NODES.login.address} meta l4proto tcp accept`],
    // A login node reaches the worker nodes (slurmd, srun, ssh) and outside only the web ports.
    login: [`ip daddr ${BOX_NODES.worker.address} meta l4proto tcp accept`, 'tcp dport { 80, 443 } accept'],
  };
  const rules = allow[node];
  if (!rules) return undefined;
  return [
    'table inet jscbox {',
    '  chain output {',
    '    type filter hook output priority filter; policy drop;',
    '    oif "lo" accept',
    '    ct state established,related accept',
    ...rules.map((r) => `    ${r}`),
    '    counter reject with icmpx type admin-prohibited',
    '  }',
    '}',
    '',
  ].join('\n');
}

function buildLayout(user: UserEntry): void {
  const P = BOX_PATHS;
  buildSiteTree({ ...P, root: BOX_DIR, home: P.siteHome, nodeDirs: [P.loginDir, P.workerDir] }, user, 'JSC in a box');
  for (const dir of [P.kitDir, P.poolDir, P.nodesDir, P.slurmDir, P.slurmState, P.slurmSpool]) mkdir(dir, 0o755);
  // munged insists on a world-executable socket directory and a private key.
  mkdir(P.mungeDir, 0o755);
  mkdir(P.mungeSocketDir, 0o755);
  // glidein's HOME is the loopback site's; it must exist for ssh sessions and for sbatch's default output.
  if (!fs.existsSync(SITE_PATHS.home)) mkdir(SITE_PATHS.home, 0o755, user);
}

async function writeKeysAndConfigs(user: UserEntry): Promise<void> {
  const P = BOX_PATHS;
  // The public keys are read back by authorizedKeys().
  keygen(P.operatorKey, 'operator@jsc-box');
  keygen(P.siteKey, 'glidein@jsc-box', user);
  const loginPub = keygen(path.join(P.loginDir, 'host_ed25519'), 'jwlogin');
  const workerPub = keygen(path.join(P.workerDir, 'host_ed25519'), 'jwc01');
  const login = BOX_ENDPOINTS.login;
  const worker = BOX_ENDPOINTS.worker;
  // The operator verifies the worker node by the name it jumps to (squeue's node name).
  writeFile(
    P.operatorKnownHosts,
    `${hostKeyEntry(login, loginPub)}\n${hostKeyEntry({ host: WORKER_NODE_NAME, port: 22 }, workerPub)}\n`,
    0o644,
  );
  // On the site: the login node (forward tunnel from the worker node), and the worker node by name and address
  // (a reverse tunnel from the login node), as a site-wide ssh_known_hosts would have them.
  writeFile(
    P.siteKnownHosts,
    [
      hostKeyEntry(login, loginPub),
      hostKeyEntry({ host: WORKER_NODE_NAME, port: 22 }, workerPub),
      hostKeyEntry(worker, workerPub),
      '',
    ].join('\n'),
    0o644,
    user,
  );
  for (const node of ['login', 'worker'] as const) {
    const dir = node === 'login' ? P.loginDir : P.workerDir;
    writeFile(path.join(dir, 'authorized_keys', BOX_USER), authorizedKeys(node, isStrict()), 0o644);
    writeFile(path.join(dir, 'sshd_config'), sshdConfig(node), 0o644);
  }
  writeFile(P.slurmConf, slurmConfig(), 0o644);
  writeFile(P.slurmEnds, STEP_END_SCRIPT, 0o755);
  if (!fs.existsSync(P.mungeKey))
    await run(['mungekey', '--create', `--keyfile=${P.mungeKey}`], 'creating the munge key');
  fs.chmodSync(P.mungeKey, 0o600);

  const proxyUser = proxyAccount();
  writeFile(path.join(P.kitDir, 'tinyproxy.conf'), tinyproxyConfig(proxyUser.name, proxyUser.group), 0o644);
  // tinyproxy drops to its user before it opens the log and the pid file.
  for (const file of [P.kitLog, path.join(P.kitDir, 'tinyproxy.pid')]) {
    if (!fs.existsSync(file)) fs.writeFileSync(file, '');
    fs.chownSync(file, proxyUser.uid, proxyUser.gid);
  }
  for (const node of NODE_LIST) {
    mkdir(`/etc/netns/${BOX_NODES[node].namespace}`, 0o755);
    writeFile(`/etc/netns/${BOX_NODES[node].namespace}/hosts`, hostsFile(node), 0o644);
  }
}

async function existingNamespaces(): Promise<string[]> {
  const out = await run(['ip', 'netns', 'list'], 'listing network namespaces');
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n) => n !== undefined && n !== '');
}

async function linkExists(name: string): Promise<boolean> {
  return succeeds(['ip', 'link', 'show', 'dev', name]);
}

async function buildNetwork(): Promise<void> {
  const have = await existingNamespaces();
  for (const node of NODE_LIST) {
    const ns = BOX_NODES[node].namespace;
    if (have.includes(ns)) continue;
    const r = await runCommand(['ip', 'netns', 'add', ns]);
    if (r.code !== 0) throw notPermitted(`create the network namespace ${ns}`, `\`ip netns add ${ns}\`: ${r.stderr}`);
  }
  if (!(await linkExists(BOX_BRIDGE))) {
    const r = await runCommand(['ip', 'link', 'add', BOX_BRIDGE, 'type', 'bridge']);
    if (r.code !== 0) throw notPermitted(`create the bridge ${BOX_BRIDGE}`, r.stderr);
  }
  await run(['ip', 'addr', 'replace', `${OPERATOR_ADDRESS}/24`, 'dev', BOX_BRIDGE], 'addressing the bridge');
  await run(['ip', 'link', 'set', BOX_BRIDGE, 'up'], 'bringing the bridge up');
  for (const node of NODE_LIST) {
    const { namespace: ns, veth, address } = BOX_NODES[node];
    if (!(await linkExists(veth))) {
      await run(
        ['ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns],
        `creating the veth pair of ${ns}`,
      );
    }
    await run(['ip', 'link', 'set', veth, 'master', BOX_BRIDGE, 'up'], `attaching ${veth} to ${BOX_BRIDGE}`);
    await run(['ip', '-n', ns, 'addr', 'replace', `${address}/24`, 'dev', 'eth0'], `addressing ${ns}`);
    await run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'], `bringing up eth0 in ${ns}`);
    await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'], `bringing up lo in ${ns}`);
    const rules = fenceRules(node);
    if (rules) {
      // Declare, delete and redefine in one transaction: idempotent, and never a moment without a fence.
      const script = `table inet jscbox {}\ndelete table inet jscbox\n${rules}`;
      await run(['nsenter', `--net=/run/netns/${ns}`, 'nft', '-f', '-'], `fencing ${ns}`, { input: script });
    }
  }
}

/** Starts the process that holds a node's mount and UTS namespaces (its /etc/hosts and hostname). */
async function startAnchor(node: BoxNode): Promise<void> {
  if (anchorPid(node) !== undefined) return;
  const { namespace: ns, hostname } = BOX_NODES[node];
  launchDetached(
    [
      'unshare',
      '--mount',
      '--uts',
      '--propagation',
      'slave',
      '--',
      'nsenter',
      `--net=/run/netns/${ns}`,
      '--',
      '/bin/bash',
      '-c',
      'mount --bind "$1" /etc/hosts && hostname "$2" && exec -a "$3" sleep infinity',
      'anchor',
      `/etc/netns/${ns}/hosts`,
      hostname,
      `${ANCHOR_PREFIX} ${hostname}`,
    ],
    path.join(BOX_PATHS.nodesDir, `${node}.out`),
  );
  await waitFor(`the anchor of ${ns}`, () => anchorPid(node) !== undefined, 10_000, 20);
}

/** Waits until Slurm has the worker node idle (resuming it if it came back down or drained). */
async function waitForWorkerNode(): Promise<void> {
  let resumed = false;
  await waitFor(
    `${WORKER_NODE_NAME} to be idle in sinfo (see ${BOX_PATHS.slurmctldLog} and ${BOX_PATHS.slurmdLog})`,
    async () => {
      const state = await workerNodeState();
      if (state === undefined) return false;
      if (/^(idle|mixed|allocated|completing)$/.test(state)) return true;
      if (!resumed && /down|drain|fail/.test(state) && !state.endsWith('*')) {
        await inNamespace(BOX_NODES.login.namespace, [
          'scontrol',
          'update',
          `nodename=${WORKER_NODE_NAME}`,
          'state=resume',
        ]);
        resumed = true;
      }
      return false;
    },
    30_000,
    50,
  );
}

/** A job from nothing to done: proves munge, the controller, the node and srun's connections back. */
async function selfTestJob(): Promise<void> {
  const r = await inNamespace(
    BOX_NODES.login.namespace,
    [
      'srun',
      `--partition=${SLURM_PARTITION}`,
      '--job-name=jsc-box-selftest',
      '--time=1',
      '--nodes=1',
      '--ntasks=1',
      'hostname',
    ],
    { timeoutMs: 60_000 },
  );
  if (r.code !== 0 || r.stdout.trim() !== WORKER_NODE_NAME) {
    throw new Error(
      `the box's self-test job failed (exit ${r.code ?? r.signal}): ${r.stderr.trim() || r.stdout.trim()}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// Serializing start and stop between processes

async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdir(BOX_DIR, 0o755);
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      fs.writeFileSync(BOX_PATHS.lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(readText(BOX_PATHS.lock).trim());
      if (!Number.isInteger(holder) || holder <= 0 || !alive(holder)) {
        fs.rmSync(BOX_PATHS.lock, { force: true });
        continue;
      }
      if (holder === process.pid) throw new Error('JSC in a box: start/stop re-entered in one process');
      if (Date.now() > deadline) throw new Error(`JSC in a box is locked by process ${holder} (${BOX_PATHS.lock})`);
      await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(BOX_PATHS.lock, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// The box

/** A handle on the box: its paths, endpoints, and ssh as the operator to the login node or the worker node. */
export interface JscBox {
  readonly dir: string;
  readonly user: string;
  readonly paths: typeof BOX_PATHS;
  readonly endpoints: typeof BOX_ENDPOINTS;
  readonly nodes: typeof BOX_NODES;
  /** argv of an OpenSSH client that runs `remote` as glidein on the login node, or on jwc01 through it. */
  sshArgv(node: 'login' | 'worker', remote: readonly string[]): string[];
  ssh(node: 'login' | 'worker', remote: readonly string[], opts?: RunOptions): Promise<CommandResult>;
}

function operatorSshOptions(): string[] {
  return [
    '-F',
    '/dev/null',
    '-i',
    BOX_PATHS.operatorKey,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${BOX_PATHS.operatorKnownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=5',
  ];
}

export function jscBox(): JscBox {
  const login = `${BOX_USER}@${BOX_ENDPOINTS.login.host}`;
  const sshArgv = (node: 'login' | 'worker', remote: readonly string[]): string[] => {
    if (node === 'login')
      return ['ssh', ...operatorSshOptions(), '-p', String(BOX_ENDPOINTS.login.port), login, commandLine(remote)];
    // The worker node by its Slurm name, through the login node (which resolves jwc01) as a jump host.
    const jump = ['ssh', ...operatorSshOptions(), '-W', '%h:%p', '-p', String(BOX_ENDPOINTS.login.port), login].join(
      ' ',
    );
    return [
      'ssh',
      ...operatorSshOptions(),
      '-o',
      `ProxyCommand=${jump}`,
      '-p',
      '22',
      `${BOX_USER}@${WORKER_NODE_NAME}`,
      commandLine(remote),
    ];
  };
  return {
    dir: BOX_DIR,
    user: BOX_USER,
    paths: BOX_PATHS,
    endpoints: BOX_ENDPOINTS,
    nodes: BOX_NODES,
    sshArgv,
    ssh: (node, remote, opts) => runCommand(sshArgv(node, remote), opts),
  };
}

/**
 * Builds the box and starts everything: namespaces, bridge, fences, node anchors, munged, slurmctld, slurmd,
 * both sshds, the KIT proxy and the collector. Idempotent (keys kept, live daemons reused). Resolves when the
 * worker node is idle in Slurm and, when Slurm was (re)started, a first job has run on it.
 */
export async function startJscBox(): Promise<JscBox> {
  requireRoot();
  return withLock(async () => {
    const user = ensureUser();
    mkdir('/run/sshd', 0o755);
    if (fs.existsSync('/dev/fuse')) fs.chmodSync('/dev/fuse', 0o666);
    buildLayout(user);
    await writeKeysAndConfigs(user);
    await buildNetwork();
    const strict = isStrict();
    await applyBanRules(strict);
    for (const node of NODE_LIST) await startAnchor(node);
    // Slurm in order: munged, then slurmctld listening, then slurmd (whose first registration then succeeds).
    // Strict: the worker node has no sshd.
    const others = Promise.all(
      (['login-sshd', 'worker-sshd', 'kit', 'collector', 'squid'] as const)
        .filter((s) => !(strict && s === 'worker-sshd'))
        .map((s) => startService(s)),
    );
    let slurmStarted = await startService('munge');
    slurmStarted = (await startService('slurmctld')) || slurmStarted;
    // A box started afresh (its Slurm state is wiped at stop) runs no glidein yet: leases a run killed before its
    // stop left behind are stale.
    if (slurmStarted) forgetLeases(BOX_PATHS);
    slurmStarted = (await startService('slurmd')) || slurmStarted;
    await others;
    await waitForWorkerNode();
    if (slurmStarted) await selfTestJob();
    return jscBox();
  });
}

/**
 * Leaves nothing: every process on the box's nodes (daemons, anchors, glidein's sessions, jobs, tunnels,
 * mounts), the namespaces with their veths and fences, the bridge, /etc/netns/gl-*, Slurm's state. Keeps
 * the directory (keys, logs).
 */
export async function stopJscBox(): Promise<void> {
  requireRoot();
  await withLock(async () => {
    // Never this process or its ancestors (a shell whose command line names the box dir).
    const parents = new Map(allProcesses().map((p) => [p.pid, p.ppid]));
    const self = new Set<number>();
    for (
      let pid: number | undefined = process.pid;
      pid !== undefined && pid > 1 && !self.has(pid);
      pid = parents.get(pid)
    )
      self.add(pid);
    const hostNet = processNamespace(process.pid, 'net');
    const user = lookupUser(BOX_USER);
    const victims = () =>
      allProcesses()
        .filter((p) => p.state !== 'Z' && !self.has(p.pid))
        .filter((p) => {
          if (p.cmdline.includes(BOX_DIR + '/')) return true;
          // glidein's processes left in a namespace that is not the host's (the loopback site runs none).
          return user !== undefined && p.uid === user.uid && processNamespace(p.pid, 'net') !== hostNet;
        })
        .map((p) => p.pid);
    // Jobs and sessions first (so slurmd does not see its steps vanish), then the daemons and the anchors.
    await killAndWait(
      boxProcesses().map((p) => p.pid),
      3000,
    );
    await killAndWait([...new Set([...nodeProcesses().map((p) => p.pid), ...victims()])], 5000);
    const left = [...new Set([...nodeProcesses().map((p) => p.pid), ...victims()])];
    if (left.length > 0) await killAndWait(left, 2000);
    for (const m of boxMounts()
      .filter((x) => x.where === 'host')
      .sort((a, b) => b.target.length - a.target.length))
      unmount(m.target);
    forgetLeases(BOX_PATHS);
    for (const node of NODE_LIST) {
      if (await linkExists(BOX_NODES[node].veth)) await runCommand(['ip', 'link', 'del', BOX_NODES[node].veth]);
    }
    const have = await existingNamespaces();
    for (const ns of BOX_NAMESPACES) if (have.includes(ns)) await run(['ip', 'netns', 'del', ns], `deleting ${ns}`);
    if (await linkExists(BOX_BRIDGE)) await run(['ip', 'link', 'del', BOX_BRIDGE], `deleting ${BOX_BRIDGE}`);
    for (const ns of BOX_NAMESPACES) fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    try {
      fs.rmdirSync('/etc/netns');
    } catch {
      // not empty (someone else's namespaces) or absent
    }
    // A fresh Slurm next time: no jobs or node states restored from this run.
    fs.rmSync(BOX_PATHS.slurmState, { recursive: true, force: true });
    fs.rmSync(BOX_PATHS.slurmSpool, { recursive: true, force: true });
    fs.rmSync(BOX_PATHS.mungeSocketDir, { recursive: true, force: true });
  });
}

export interface BoxStatus {
  /** strict (setStrict): no worker sshd, from= keys, the login node bans; and who is banned now. */
  strict: boolean;
  banned: string[];
  namespaces: BoxNamespace[];
  bridge: boolean;
  services: BoxServiceStatus[];
  workerNode?: string;
  jobs: SlurmJobInfo[];
  processes: BoxProcess[];
  mounts: BoxMount[];
}

export async function boxStatus(): Promise<BoxStatus> {
  const have = await existingNamespaces();
  const namespaces = BOX_NAMESPACES.filter((ns) => have.includes(ns));
  const services = await Promise.all(SERVICE_LIST.map((s) => serviceStatus(s)));
  const slurmUp = services.find((s) => s.service === 'slurmctld')?.ready === true;
  return {
    strict: isStrict(),
    banned: namespaces.includes(BOX_NODES.login.namespace) ? await bannedSources() : [],
    namespaces,
    bridge: await linkExists(BOX_BRIDGE),
    services,
    workerNode: slurmUp ? await workerNodeState() : undefined,
    jobs: slurmUp ? await slurmJobs() : [],
    processes: boxProcesses(),
    mounts: boxMounts(),
  };
}

// ---------------------------------------------------------------------------------------------------
// Sharing the box between concurrent test runs

/** Other live processes that hold a lease on the box (whose leaveJscBox would keep it running). */
export function boxLeaseHolders(): number[] {
  let holders: number[] = [];
  try {
    holders = fs
      .readdirSync(BOX_PATHS.leases)
      .filter((f) => /^\d+$/.test(f))
      .map(Number);
  } catch {
    return [];
  }
  return holders.filter((pid) => pid !== process.pid && alive(pid));
}

/** Starts the box (or joins it when it runs) and holds a lease on it for this process. */
export async function joinJscBox(): Promise<JscBox> {
  const box = await startJscBox();
  acquireSiteLease(process.pid, BOX_PATHS.leases);
  return box;
}

/** Drops this process's lease; the last process out stops the box. Returns the pids still using it. */
export async function leaveJscBox(): Promise<number[]> {
  const others = releaseSiteLease(process.pid, BOX_PATHS.leases);
  if (others.length === 0) await stopJscBox();
  return others;
}
