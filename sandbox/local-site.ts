/**
 * The local test site: JSC's chain built on this machine's loopback from real parts (OpenSSH sshd as the
 * login and worker nodes, tinyproxy as the KIT proxy, proxychains4, FUSE mounts by bindfs) and stand-ins
 * for what cannot exist here (cvmfsexec, apptainer, HTCondor; see sandbox/standins/). The layout and the
 * addresses are those of sites/local.yaml. See docs/TEST-SITE.md.
 *
 * Everything runs as root except what runs on the site as user `glidein`, as it would at JSC.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { commandLine } from '../src/remote/quote';
import { ensureOperatorToken } from './pool-token';

export const SITE_DIR = '/tmp/glidein-local-site';
export const SITE_USER = 'glidein';
export const STANDINS_DIR = path.resolve(__dirname, 'standins');
export const PROXYCHAINS_LIBRARY = '/usr/lib/x86_64-linux-gnu/libproxychains.so.4';

export type SiteNode = 'login' | 'worker';
export type SiteService = SiteNode | 'kit' | 'collector' | 'squid';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export const ENDPOINTS: Readonly<Record<SiteService, Endpoint>> = {
  login: { host: '127.0.0.1', port: 2201 },
  worker: { host: '127.0.0.2', port: 2202 },
  kit: { host: '127.0.0.3', port: 80 },
  collector: { host: '127.0.0.4', port: 9618 },
  // The Frontier squid (and the cvmfs stratum-1 behind it), on the pool's host: reached only through KIT.
  squid: { host: '127.0.0.4', port: 3128 },
};

const site = path.join(SITE_DIR, 'site');
const cvmfsexec = path.join(site, 'cvmfsexec');

/** Every path of the site. Those under `site/` are the site's filesystem, as seen on the nodes. */
export const SITE_PATHS = {
  dir: SITE_DIR,
  operatorDir: path.join(SITE_DIR, 'operator'),
  operatorKey: path.join(SITE_DIR, 'operator', 'id_ed25519'),
  operatorKnownHosts: path.join(SITE_DIR, 'operator', 'known_hosts'),
  siteRoot: site,
  home: path.join(site, 'home'),
  siteKey: path.join(site, 'home', '.ssh', 'id_ed25519'),
  siteKnownHosts: path.join(site, 'home', '.ssh', 'known_hosts'),
  cvmfsexecDir: cvmfsexec,
  mountrepo: path.join(cvmfsexec, 'mountrepo'),
  umountrepo: path.join(cvmfsexec, 'umountrepo'),
  cvmfsDist: path.join(cvmfsexec, 'dist', 'cvmfs'),
  cvmfsStore: path.join(cvmfsexec, 'store'),
  apptainer: path.join(site, 'bin', 'apptainer'),
  image: path.join(site, 'images', 'cms-el9.sif'),
  workDir: path.join(site, 'work'),
  loginDir: path.join(SITE_DIR, 'login'),
  workerDir: path.join(SITE_DIR, 'worker'),
  kitDir: path.join(SITE_DIR, 'kit'),
  kitLog: path.join(SITE_DIR, 'kit', 'tinyproxy.log'),
  poolDir: path.join(SITE_DIR, 'pool'),
  poolKeysDir: path.join(SITE_DIR, 'pool', 'signing-keys'),
  operatorToken: path.join(SITE_DIR, 'operator', 'pool.idtoken'),
  collectorLog: path.join(SITE_DIR, 'pool', 'collector.log'),
  squidLog: path.join(SITE_DIR, 'pool', 'squid-access.log'),
  /** condor_status inside the store, runnable on this machine without a mount. */
  condorStatus: path.join(cvmfsexec, 'store', 'cms.cern.ch', 'glidein', 'bin', 'condor_status'),
} as const;

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface SiteProcess {
  pid: number;
  ppid: number;
  uid: number;
  /** One-letter state from /proc/<pid>/stat (R, S, Z, ...). */
  state: string;
  argv: string[];
  /** argv joined by spaces, for matching. */
  cmdline: string;
}

export interface SiteMount {
  source: string;
  target: string;
  fstype: string;
  options: string;
}

export type ClassAd = Record<string, unknown>;

export interface ServiceStatus {
  service: SiteService;
  endpoint: Endpoint;
  pids: number[];
  accepting: boolean;
}

/** A handle on the site: its paths, endpoints and ways to run commands on its nodes as the operator. */
export interface LocalSite {
  readonly dir: string;
  readonly user: string;
  readonly paths: typeof SITE_PATHS;
  readonly endpoints: Readonly<Record<SiteService, Endpoint>>;
  /** argv of a local OpenSSH client running `remote` on a node as glidein with the operator's key. */
  sshArgv(node: SiteNode, remote: readonly string[]): string[];
  /** Runs `remote` (an argv, quoted here) on a node over ssh as glidein. */
  ssh(node: SiteNode, remote: readonly string[], opts?: RunOptions): Promise<CommandResult>;
}

// ---------------------------------------------------------------------------------------------------
// Commands

/** The remote command line of an ssh command: the project's one quoting helper. */
export function remoteCommand(argv: readonly string[]): string {
  return commandLine(argv);
}

/** Runs argv locally (no shell), collecting its output; never rejects for a non-zero exit. */
export function runCommand(argv: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A command that exits without reading its input must not crash the caller with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

export function runSync(argv: readonly string[], what: string): string {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  if (r.error) throw new Error(`${what}: cannot run ${argv[0]}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${what}: \`${remoteCommand(argv)}\` exited with ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` until it returns a value other than undefined/false, or throws naming `what`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 15_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function portAccepts(ep: Endpoint, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: ep.host, port: ep.port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

// ---------------------------------------------------------------------------------------------------
// Inspection

export interface UserEntry {
  uid: number;
  gid: number;
  home: string;
}

export function lookupUser(name: string): UserEntry | undefined {
  for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 7) return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
  }
  return undefined;
}

function siteUser(): UserEntry {
  const user = lookupUser(SITE_USER);
  if (!user)
    throw new Error(`user ${SITE_USER} does not exist: build the site first (npx ts-node sandbox/cli.ts local up)`);
  return user;
}

export function readProcess(pid: number): SiteProcess | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (argv.length > 0 && argv[argv.length - 1] === '') argv.pop();
    const afterComm = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
    return { pid, ppid: Number(afterComm[1]), uid, state: afterComm[0], argv, cmdline: argv.join(' ') };
  } catch {
    return undefined;
  }
}

export function allProcesses(): SiteProcess[] {
  const out: SiteProcess[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const p = readProcess(Number(entry));
    if (p) out.push(p);
  }
  return out;
}

export function alive(pid: number): boolean {
  const p = readProcess(pid);
  return p !== undefined && p.state !== 'Z';
}

/** The live processes of user glidein (tunnels, mounts, instances, glideins, ssh sessions), from /proc. */
export function siteProcesses(): SiteProcess[] {
  const user = lookupUser(SITE_USER);
  if (!user) return [];
  return allProcesses().filter((p) => p.uid === user.uid && p.state !== 'Z');
}

/** /proc/mounts fields escape space, tab, newline and backslash as octal. */
export function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mounts whose target is under the site dir, from /proc/mounts. */
export function siteMounts(): SiteMount[] {
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [source, target, fstype, options] = line.split(' ');
      return { source: unescapeMount(source), target: unescapeMount(target), fstype, options };
    })
    .filter((m) => m.target.startsWith(SITE_DIR + '/'));
}

/** Ads in the collector matching a ClassAd constraint (default: all), by a direct TCP query. */
export function collectorAds(
  constraint = 'true',
  timeoutMs = 5000,
  ep: Endpoint = ENDPOINTS.collector,
): Promise<ClassAd[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: ep.host, port: ep.port });
    let data = '';
    socket.setEncoding('utf8');
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new Error(`collector ${ep.host}:${ep.port} did not answer in ${timeoutMs} ms`)),
    );
    socket.once('connect', () => socket.write(JSON.stringify({ command: 'QUERY_STARTD_ADS', constraint }) + '\n'));
    socket.on('data', (d: string) => (data += d));
    socket.once('error', (err) => reject(new Error(`collector ${ep.host}:${ep.port}: ${err.message}`)));
    socket.once('close', () => {
      try {
        const reply = JSON.parse(data) as { ok: boolean; ads?: ClassAd[]; error?: string };
        if (!reply.ok) reject(new Error(`collector refused the query: ${reply.error ?? 'no reason given'}`));
        else resolve(reply.ads ?? []);
      } catch {
        reject(new Error(`collector ${ep.host}:${ep.port} sent no valid reply`));
      }
    });
  });
}

export function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** tinyproxy's log: a `CONNECT host:port` request line for every connection that went through KIT. */
export function kitProxyLog(): string {
  return readText(SITE_PATHS.kitLog);
}

/** The collector's log: accepted updates, refusals (with the peer address), invalidations, queries. */
export function collectorLog(): string {
  return readText(SITE_PATHS.collectorLog);
}

export function sshdLog(node: SiteNode): string {
  return readText(path.join(SITE_DIR, node, 'sshd.log'));
}

// ---------------------------------------------------------------------------------------------------
// Services

interface ServiceSpec {
  readonly endpoint: Endpoint;
  /** A path that only this service's own processes have in their command line. */
  readonly signature: string;
  readonly logFile: string;
  launch(): void;
}

function sshdSpec(node: SiteNode): ServiceSpec {
  const dir = path.join(SITE_DIR, node);
  const config = path.join(dir, 'sshd_config');
  const logFile = path.join(dir, 'sshd.log');
  return {
    endpoint: ENDPOINTS[node],
    signature: config,
    logFile,
    // Without -D sshd daemonizes once it listens; -E sends its log (and config errors) to the file.
    launch: () => runSync(['/usr/sbin/sshd', '-f', config, '-E', logFile], `starting the ${node} node's sshd`),
  };
}

/**
 * A Python stand-in of the pool's side (the collector, the squid) as both test sites run it:
 * `python3 <standins>/<script> --listen <endpoint> <args…> --pid-file <dir>/<name>.pid`, its output in
 * `<dir>/<name>.out`; the pid file's path is the signature its processes are known by.
 */
export function poolStandin(
  endpoint: Endpoint,
  name: string,
  dir: string,
  [script, ...args]: string[],
): { signature: string; logFile: string; argv: string[] } {
  const signature = path.join(dir, `${name}.pid`);
  return {
    signature,
    logFile: path.join(dir, `${name}.out`),
    argv: [
      '/usr/bin/python3',
      path.join(STANDINS_DIR, script),
      '--listen',
      `${endpoint.host}:${endpoint.port}`,
      ...args,
      '--pid-file',
      signature,
    ],
  };
}

function poolServiceSpec(endpoint: Endpoint, name: string, dir: string, script: string[]): ServiceSpec {
  const { signature, logFile, argv } = poolStandin(endpoint, name, dir, script);
  return { endpoint, signature, logFile, launch: () => launchDetached(argv, logFile) };
}

export function launchDetached(argv: readonly string[], outFile: string): void {
  const out = fs.openSync(outFile, 'a');
  try {
    const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', out, out] });
    child.on('error', () => undefined);
    child.unref();
  } finally {
    fs.closeSync(out);
  }
}

const SERVICES: Readonly<Record<SiteService, ServiceSpec>> = {
  login: sshdSpec('login'),
  worker: sshdSpec('worker'),
  kit: {
    endpoint: ENDPOINTS.kit,
    signature: path.join(SITE_PATHS.kitDir, 'tinyproxy.conf'),
    logFile: path.join(SITE_PATHS.kitDir, 'tinyproxy.out'),
    launch: () =>
      launchDetached(
        ['tinyproxy', '-d', '-c', path.join(SITE_PATHS.kitDir, 'tinyproxy.conf')],
        path.join(SITE_PATHS.kitDir, 'tinyproxy.out'),
      ),
  },
  collector: poolServiceSpec(ENDPOINTS.collector, 'collector', SITE_PATHS.poolDir, [
    'condor/collector.py',
    // Only connections that came out of the KIT proxy (tinyproxy's Bind address) may register.
    '--allow-update-from',
    ENDPOINTS.kit.host,
    // And only with an IDTOKEN of this pool.
    '--token-keys',
    SITE_PATHS.poolKeysDir,
    '--log',
    SITE_PATHS.collectorLog,
  ]),
  squid: poolServiceSpec(ENDPOINTS.squid, 'squid', SITE_PATHS.poolDir, [
    'squid/squid.py',
    '--store',
    SITE_PATHS.cvmfsStore,
    '--log',
    SITE_PATHS.squidLog,
  ]),
};

function servicePids(service: SiteService): number[] {
  const signature = SERVICES[service].signature;
  return allProcesses()
    .filter((p) => p.state !== 'Z' && p.argv.some((a) => a.includes(signature)))
    .map((p) => p.pid);
}

export async function killAndWait(pids: readonly number[], graceMs: number): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && pids.some(alive)) await sleep(50);
  for (const pid of pids.filter(alive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const hardDeadline = Date.now() + 2000;
  while (Date.now() < hardDeadline && pids.some(alive)) await sleep(20);
}

export async function serviceStatus(service: SiteService): Promise<ServiceStatus> {
  const endpoint = ENDPOINTS[service];
  return { service, endpoint, pids: servicePids(service), accepting: await portAccepts(endpoint) };
}

/** Starts one service (to undo stopService); reuses it when it already runs and accepts connections. */
export async function startService(service: SiteService): Promise<void> {
  requireRoot();
  const spec = SERVICES[service];
  const pids = servicePids(service);
  if (pids.length > 0 && (await portAccepts(spec.endpoint))) return;
  if (pids.length > 0) await killAndWait(pids, 2000);
  if (await portAccepts(spec.endpoint)) {
    throw new Error(
      `cannot start ${service}: ${spec.endpoint.host}:${spec.endpoint.port} is taken by a process that is ` +
        `not this site's; find it with \`ss -ltnp\``,
    );
  }
  try {
    spec.launch();
  } catch (err) {
    // Another test run may have started it at the same moment; that is as good.
    if (!(await portAccepts(spec.endpoint)) || servicePids(service).length === 0) throw err;
  }
  try {
    await waitFor(
      `${service} to accept connections on ${spec.endpoint.host}:${spec.endpoint.port}`,
      () => portAccepts(spec.endpoint, 200),
      10_000,
      50,
    );
  } catch (err) {
    const tail = readText(spec.logFile).split('\n').slice(-10).join('\n');
    throw new Error(`${(err as Error).message}; last lines of ${spec.logFile}:\n${tail}`);
  }
}

/** Stops one service (fault injection: the KIT proxy or the collector going away). */
export async function stopService(service: SiteService): Promise<void> {
  requireRoot();
  await killAndWait(servicePids(service), 5000);
}

// ---------------------------------------------------------------------------------------------------
// Building the site

function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() === 0) return;
  throw new Error(
    'The local test site needs root: it creates user glidein, starts sshd on 127.0.0.1:2201 and 127.0.0.2:2202 and ' +
      'tinyproxy on 127.0.0.3:80. Run it as root, e.g. `npx ts-node sandbox/cli.ts local up` or `npx ' +
      'jest test/local-site/site-itself.test.ts`.',
  );
}

export function ensureUser(): UserEntry {
  const existing = lookupUser(SITE_USER);
  if (!existing) {
    runSync(['useradd', '-M', '-d', SITE_PATHS.home, '-s', '/bin/bash', SITE_USER], 'creating user glidein');
  } else if (existing.home !== SITE_PATHS.home) {
    runSync(['usermod', '-d', SITE_PATHS.home, SITE_USER], 'setting the home of user glidein');
  }
  // useradd leaves the account locked; with UsePAM no, sshd refuses a locked account even for keys.
  runSync(['usermod', '-p', '*', SITE_USER], 'unlocking user glidein');
  return siteUser();
}

export function mkdir(dir: string, mode: number, owner?: UserEntry): void {
  fs.mkdirSync(dir, { recursive: true, mode });
  fs.chmodSync(dir, mode);
  if (owner) fs.chownSync(dir, owner.uid, owner.gid);
}

/** Writes a file atomically (so a running reader never sees half of it). */
export function writeFile(file: string, content: string | Buffer, mode: number, owner?: UserEntry): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, content, { mode });
  fs.chmodSync(tmp, mode);
  if (owner) fs.chownSync(tmp, owner.uid, owner.gid);
  fs.renameSync(tmp, file);
}

export function installStandin(from: string, to: string, mode = 0o755): void {
  writeFile(to, fs.readFileSync(path.join(STANDINS_DIR, from)), mode);
}

export function keygen(file: string, comment: string, owner?: UserEntry): string {
  if (!fs.existsSync(file) || !fs.existsSync(`${file}.pub`)) {
    fs.rmSync(file, { force: true });
    fs.rmSync(`${file}.pub`, { force: true });
    runSync(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], `generating ${file}`);
  }
  if (owner) {
    fs.chownSync(file, owner.uid, owner.gid);
    fs.chownSync(`${file}.pub`, owner.uid, owner.gid);
  }
  fs.chmodSync(file, 0o600);
  return fs.readFileSync(`${file}.pub`, 'utf8').trim();
}

/** `ssh-ed25519 AAAA...` without the comment, for known_hosts. */
export function hostKeyEntry(ep: Endpoint, pub: string): string {
  const [type, blob] = pub.split(/\s+/);
  const host = ep.port === 22 ? ep.host : `[${ep.host}]:${ep.port}`;
  return `${host} ${type} ${blob}`;
}

function sshdConfig(node: SiteNode): string {
  return sshdConfigText({
    title: `${node} node of the local test site (written by sandbox/local-site.ts)`,
    endpoint: ENDPOINTS[node],
    dir: path.join(SITE_DIR, node),
    user: SITE_USER,
  });
}

/** A node's sshd_config in a test site: keys only, forwarding and agent forwarding allowed, verbose log. */
export function sshdConfigText(o: {
  title: string;
  endpoint: Endpoint;
  dir: string;
  user: string;
  extra?: string[];
}): string {
  return [
    `# ${o.title}`,
    `Port ${o.endpoint.port}`,
    `ListenAddress ${o.endpoint.host}`,
    `HostKey ${path.join(o.dir, 'host_ed25519')}`,
    `PidFile ${path.join(o.dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${path.join(o.dir, 'authorized_keys')}/%u`,
    `AllowUsers ${o.user}`,
    'PermitRootLogin no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'UsePAM no',
    'AllowTcpForwarding yes',
    'AllowAgentForwarding yes',
    'X11Forwarding no',
    'PrintMotd no',
    // Keys and homes live under /tmp, which StrictModes would reject.
    'StrictModes no',
    'LogLevel VERBOSE',
    ...(o.extra ?? []),
    'Subsystem sftp /usr/lib/openssh/sftp-server',
    '',
  ].join('\n');
}

function tinyproxyConfig(user: string, group: string): string {
  return tinyproxyConfigText({
    title: 'The KIT reverse proxy of the local test site: an HTTP CONNECT proxy (written by sandbox/local-site.ts)',
    user,
    group,
    kit: ENDPOINTS.kit,
    allow: '127.0.0.0/8',
    connectPorts: [ENDPOINTS.collector.port, ENDPOINTS.squid.port],
    dir: SITE_PATHS.kitDir,
    log: SITE_PATHS.kitLog,
  });
}

/** tinyproxy as KIT's reverse proxy: CONNECT for `allow`, every connection logged. */
export function tinyproxyConfigText(o: {
  title: string;
  user: string;
  group: string;
  kit: Endpoint;
  allow: string;
  /** The only ports CONNECT may reach, as KIT opens its proxy to the pool's ports only. */
  connectPorts: number[];
  dir: string;
  log: string;
}): string {
  return [
    `# ${o.title}`,
    `User ${o.user}`,
    `Group ${o.group}`,
    `Port ${o.kit.port}`,
    `Listen ${o.kit.host}`,
    // Outgoing connections leave from this address: the collector accepts updates only from it.
    `Bind ${o.kit.host}`,
    'Timeout 600',
    'MaxClients 100',
    `Allow ${o.allow}`,
    ...o.connectPorts.map((p) => `ConnectPort ${p}`),
    'DisableViaHeader Yes',
    'LogLevel Connect',
    `LogFile "${o.log}"`,
    `PidFile "${path.join(o.dir, 'tinyproxy.pid')}"`,
    '',
  ].join('\n');
}

/** proxychains4 configuration for the chain worker -> SOCKS tunnel on the worker -> KIT proxy -> target. */
export function proxychainsConfig(socksPort: number, kit: Endpoint = ENDPOINTS.kit): string {
  return [
    'strict_chain',
    'quiet_mode',
    'proxy_dns',
    'tcp_read_time_out 15000',
    'tcp_connect_time_out 8000',
    '[ProxyList]',
    `socks5 127.0.0.1 ${socksPort}`,
    `http ${kit.host} ${kit.port}`,
    '',
  ].join('\n');
}

/** Where a test site keeps what the glideins use: the same tree in both sites, under different roots. */
export interface SiteTree {
  root: string;
  operatorDir: string;
  siteRoot: string;
  home: string;
  siteKey: string;
  cvmfsexecDir: string;
  cvmfsDist: string;
  cvmfsStore: string;
  apptainer: string;
  image: string;
  workDir: string;
  mountrepo: string;
  umountrepo: string;
  condorStatus: string;
  /** The nodes' sshd directories (host key, pid file, authorized_keys/). */
  nodeDirs: string[];
  /** The pool's IDTOKEN signing keys (the collector's `--token-keys`) and the operator's token, minted with them. */
  poolKeysDir: string;
  operatorToken: string;
}

/**
 * Builds a site's tree: the site account's home, key directory, work directory and mount leases; cvmfsexec,
 * apptainer, the image and the HTCondor stand-ins in a fake /cvmfs store; the nodes' sshd directories. `label`
 * names the site in the repositories' READMEs.
 */
/**
 * With every process and mount of the site gone, so are the glideins that held leases: the cvmfs mount leases and
 * the SOCKS port leases are forgotten (a lease outliving its glidein would keep its port or mount from every later
 * one: a run killed half-way left ten port leases on the box once, and the next fleet found its range exhausted).
 */
export function forgetLeases(P: { cvmfsexecDir: string; workDir: string }): void {
  for (const root of [path.join(P.cvmfsexecDir, '.leases'), path.join(P.workDir, '.ports')])
    for (const node of fs.existsSync(root) ? fs.readdirSync(root) : [])
      fs.rmSync(path.join(root, node), { recursive: true, force: true });
}

export function buildSiteTree(P: SiteTree, user: UserEntry, label: string): void {
  mkdir(P.root, 0o755);
  mkdir(P.operatorDir, 0o700);
  ensureOperatorToken(P.poolKeysDir, P.operatorToken);
  mkdir(P.siteRoot, 0o755);
  mkdir(P.home, 0o755, user);
  mkdir(path.dirname(P.siteKey), 0o700, user);
  mkdir(P.cvmfsexecDir, 0o755);
  mkdir(path.dirname(P.cvmfsDist), 0o755, user);
  mkdir(P.cvmfsDist, 0o755, user);
  // The glideins' mount leases (src/remote/scripts.ts MOUNT_LEASE): the site account writes them.
  mkdir(path.join(P.cvmfsexecDir, '.leases'), 0o755, user);
  mkdir(path.join(P.cvmfsStore, 'cms.cern.ch', 'glidein', 'sbin'), 0o755);
  mkdir(path.join(P.cvmfsStore, 'cms.cern.ch', 'glidein', 'bin'), 0o755);
  mkdir(path.join(P.cvmfsStore, 'oasis.opensciencegrid.org', 'mis'), 0o755);
  mkdir(path.dirname(P.apptainer), 0o755);
  mkdir(path.dirname(P.image), 0o755);
  // As JSC's project directories are: group-shared and setgid (2770), so what the glidein makes there is checked and
  // made private by the site scripts themselves (umask 077, safe_path), never by the directory's mode.
  mkdir(P.workDir, 0o2770, user);
  fs.chmodSync(P.workDir, 0o2770); // after the chown, which may clear the setgid bit
  for (const dir of P.nodeDirs) {
    mkdir(dir, 0o755);
    mkdir(path.join(dir, 'authorized_keys'), 0o755);
  }

  installStandin('cvmfsexec/mountrepo', P.mountrepo);
  installStandin('cvmfsexec/umountrepo', P.umountrepo);
  installStandin('apptainer', P.apptainer);
  installStandin('cms-el9.sif', P.image, 0o644);
  installStandin('condor/condor_master', path.join(P.cvmfsStore, 'cms.cern.ch', 'glidein', 'sbin', 'condor_master'));
  installStandin('condor/condor_status', P.condorStatus);
  writeFile(
    path.join(P.cvmfsStore, 'cms.cern.ch', 'README'),
    `cms.cern.ch in ${label}: the glidein stand-ins are under glidein/.\n`,
    0o644,
  );
  writeFile(
    path.join(P.cvmfsStore, 'oasis.opensciencegrid.org', 'mis', 'README'),
    `oasis.opensciencegrid.org in ${label}.\n`,
    0o644,
  );
}

function buildLayout(user: UserEntry): void {
  const P = SITE_PATHS;
  buildSiteTree({ ...P, root: SITE_DIR, nodeDirs: [P.loginDir, P.workerDir] }, user, 'the local test site');
  mkdir(P.kitDir, 0o755);
  mkdir(P.poolDir, 0o755);
}

function writeKeysAndConfigs(user: UserEntry, proxyUser: UserEntry & { name: string; group: string }): void {
  const P = SITE_PATHS;
  const operatorPub = keygen(P.operatorKey, 'operator@local-test-site');
  const sitePub = keygen(P.siteKey, 'glidein@local-test-site', user);
  const hostPubs = {
    login: keygen(path.join(P.loginDir, 'host_ed25519'), 'login-node'),
    worker: keygen(path.join(P.workerDir, 'host_ed25519'), 'worker-node'),
  };
  writeFile(
    P.operatorKnownHosts,
    `${hostKeyEntry(ENDPOINTS.login, hostPubs.login)}\n${hostKeyEntry(ENDPOINTS.worker, hostPubs.worker)}\n`,
    0o644,
  );
  // The site's own known_hosts: the login node (for the forward tunnel from the worker node) and the worker node
  // (for the reverse tunnel from the login node), as a site-wide ssh_known_hosts would have them.
  writeFile(
    P.siteKnownHosts,
    `${hostKeyEntry(ENDPOINTS.login, hostPubs.login)}\n${hostKeyEntry(ENDPOINTS.worker, hostPubs.worker)}\n`,
    0o644,
    user,
  );
  for (const node of ['login', 'worker'] as const) {
    writeFile(path.join(SITE_DIR, node, 'authorized_keys', SITE_USER), `${operatorPub}\n${sitePub}\n`, 0o644);
    writeFile(path.join(SITE_DIR, node, 'sshd_config'), sshdConfig(node), 0o644);
  }
  writeFile(path.join(P.kitDir, 'tinyproxy.conf'), tinyproxyConfig(proxyUser.name, proxyUser.group), 0o644);
  // tinyproxy drops to its user before it writes the log and the pid file.
  for (const file of [P.kitLog, path.join(P.kitDir, 'tinyproxy.pid')]) {
    if (!fs.existsSync(file)) fs.writeFileSync(file, '');
    fs.chownSync(file, proxyUser.uid, proxyUser.gid);
  }
}

export function proxyAccount(): UserEntry & { name: string; group: string } {
  const tinyproxy = lookupUser('tinyproxy');
  if (tinyproxy) return { ...tinyproxy, name: 'tinyproxy', group: 'tinyproxy' };
  return { ...(lookupUser('nobody') ?? { uid: 65534, gid: 65534, home: '/' }), name: 'nobody', group: 'nogroup' };
}

/** The handle on the site; it starts nothing (for test files, whose site globalSetup started). */
export function localSite(): LocalSite {
  const sshArgv = (node: SiteNode, remote: readonly string[]): string[] => {
    const ep = ENDPOINTS[node];
    return [
      'ssh',
      '-F',
      '/dev/null',
      '-i',
      SITE_PATHS.operatorKey,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      `UserKnownHostsFile=${SITE_PATHS.operatorKnownHosts}`,
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'ConnectTimeout=5',
      '-p',
      String(ep.port),
      `${SITE_USER}@${ep.host}`,
      remoteCommand(remote),
    ];
  };
  return {
    dir: SITE_DIR,
    user: SITE_USER,
    paths: SITE_PATHS,
    endpoints: ENDPOINTS,
    sshArgv,
    ssh: (node, remote, opts) => runCommand(sshArgv(node, remote), opts),
  };
}

/**
 * Builds the site and starts its daemons: the login and worker nodes' sshd, the KIT proxy, the collector.
 * Idempotent: keys are kept, live daemons reused. Resolves when every port accepts connections.
 */
export async function startLocalSite(): Promise<LocalSite> {
  requireRoot();
  const user = ensureUser();
  mkdir('/run/sshd', 0o755);
  // bindfs runs as glidein (like cvmfs2 under cvmfsexec) and needs to open /dev/fuse.
  if (fs.existsSync('/dev/fuse')) fs.chmodSync('/dev/fuse', 0o666);
  buildLayout(user);
  writeKeysAndConfigs(user, proxyAccount());
  await Promise.all((Object.keys(SERVICES) as SiteService[]).map((s) => startService(s)));
  return localSite();
}

/** Unmounts one mount: fusermount -u, else a lazy umount (a FUSE mount whose daemon was killed). */
export function unmount(target: string): void {
  const r = spawnSync('fusermount', ['-u', target], { encoding: 'utf8' });
  if (r.status === 0) return;
  spawnSync('umount', ['-l', target], { encoding: 'utf8' });
}

/**
 * Leaves nothing running: every process of user glidein (tunnels, mounts, instances, glideins, sessions),
 * the FUSE mounts under the site dir, both sshds, the KIT proxy and the collector. Keeps the directory.
 */
export async function stopLocalSite(): Promise<void> {
  requireRoot();
  await killAndWait(
    siteProcesses().map((p) => p.pid),
    3000,
  );
  for (const m of siteMounts().sort((a, b) => b.target.length - a.target.length)) unmount(m.target);
  forgetLeases(SITE_PATHS);
  // The root half of the site's ssh sessions ("sshd: glidein [priv]") ends with its user half; make sure.
  const sessions = allProcesses().filter((p) => p.state !== 'Z' && p.cmdline.startsWith(`sshd: ${SITE_USER}`));
  await killAndWait(
    sessions.map((p) => p.pid),
    2000,
  );
  await Promise.all((Object.keys(SERVICES) as SiteService[]).map((s) => killAndWait(servicePids(s), 5000)));
  const left = siteProcesses();
  if (left.length > 0) {
    await killAndWait(
      left.map((p) => p.pid),
      1000,
    );
  }
}

export interface SiteStatus {
  services: ServiceStatus[];
  mounts: SiteMount[];
  processes: SiteProcess[];
}

export async function siteStatus(): Promise<SiteStatus> {
  const services = await Promise.all((Object.keys(SERVICES) as SiteService[]).map((s) => serviceStatus(s)));
  return { services, mounts: siteMounts(), processes: siteProcesses() };
}

// ---------------------------------------------------------------------------------------------------
// Sharing the site between concurrent test runs (each jest run's globalSetup takes a lease)

const LEASE_DIR = path.join(SITE_DIR, 'leases');

/** Records that this process uses the site; stopLocalSite is for the last user to call. */
export function acquireSiteLease(pid = process.pid, leaseDir = LEASE_DIR): void {
  mkdir(leaseDir, 0o755);
  fs.writeFileSync(path.join(leaseDir, String(pid)), `${new Date().toISOString()}\n`);
}

/** Drops this process's lease; returns the pids of other live processes that still hold one. */
export function releaseSiteLease(pid = process.pid, leaseDir = LEASE_DIR): number[] {
  fs.rmSync(path.join(leaseDir, String(pid)), { force: true });
  let holders: number[] = [];
  try {
    holders = fs
      .readdirSync(leaseDir)
      .filter((f) => /^\d+$/.test(f))
      .map(Number);
  } catch {
    return [];
  }
  const live = holders.filter(alive);
  for (const dead of holders.filter((p) => !live.includes(p)))
    fs.rmSync(path.join(leaseDir, String(dead)), { force: true });
  return live;
}

/** Starts the site (or joins it when it runs) and holds a lease on it for this process. */
export async function joinLocalSite(): Promise<LocalSite> {
  const site = await startLocalSite();
  acquireSiteLease();
  return site;
}

/** Drops this process's lease; the last process out stops the site. Returns the pids still using it. */
export async function leaveLocalSite(): Promise<number[]> {
  const others = releaseSiteLease();
  if (others.length === 0) await stopLocalSite();
  return others;
}
