/**
 * An in-memory site: the login node and the worker node, their files, processes and listening ports, cvmfs mounts
 * and leases, container instances, the collector's ads and the Slurm queue, all held as data. It stands behind the
 * Executor seam (`executorsFor`, the ActivityDeps hook), so the activities run unchanged against it: it interprets
 * the exact argv they send and answers in the real tools' formats. Faults and delays are injected as data.
 *
 * An argv it does not know is a bug in the activity or in the fake, never a silent success: it is recorded in
 * `unknown` and fails the activity at once, non-retryably (type FakeSiteUnknownCommand).
 */
import { ApplicationFailure } from '@temporalio/common';
import type { SiteExecutors } from '../../src/activities/deps';
import { ExecutorError, type CommandResult, type Executor, type RunOptions } from '../../src/remote/executor';
import { CONTAINED } from '../../src/site/container';
import type { SiteProfile } from '../../src/site/profile';
import { HOLDER_SCRIPT, shScriptNamed, TCP_PROBE } from './scripts';

export type HostName = 'login' | 'worker';

/** A fault that fires `times` times (for ever when undefined), then the site behaves again. */
export interface Countdown {
  times?: number;
}

export interface FakeFaults {
  /** The tunnel's ssh fails at once and prints this (e.g. `Permission denied (publickey).`). */
  tunnelSsh?: Countdown & { output: string };
  /** Every tunnel started from now on dies this long after it starts. */
  tunnelDiesAfterMs?: number;
  /** The KIT proxy accepts no connection. */
  kitDown?: boolean;
  /** The collector accepts no connection. */
  collectorDown?: boolean;
  /** mountrepo of this repository fails, printing `output`. */
  mountFails?: Countdown & { repo: string; output: string };
  /** umountrepo fails, printing `output` (the lease is kept). */
  umountFails?: Countdown & { output: string };
  /** `instance start` fails, printing `output`. */
  instanceStartFails?: Countdown & { output: string };
  /** The glidein starts but never sends its ad. */
  glideinNeverRegisters?: boolean;
  /** The glidein's ad appears this long after it starts. */
  registrationDelayMs?: number;
  /** The glidein ignores SIGTERM (a graceful shutdown that never ends); SIGQUIT still stops it. */
  glideinIgnoresTerm?: boolean;
  /** sbatch refuses the holder job, printing this. */
  sbatchRefuses?: string;
  /** squeue calls the job stays PENDING before it runs (default 1). */
  pendingPolls?: number;
  /** Commands the host's sshd refuses (as an unknown key would be): a permanent transport failure. */
  refuse?: Array<Countdown & { host?: HostName; match: (argv: readonly string[]) => boolean }>;
  /** Commands that take this long (aborted by the activity's cancellation, or its timeout). */
  delays?: Array<{ host?: HostName; match: (argv: readonly string[]) => boolean; ms: number }>;
}

export interface FakeSiteConfig {
  /** The KIT proxy, as numeric host:port. */
  kit: string;
  /** Host names the login node resolves (getent ahostsv4). */
  dns?: Record<string, string>;
  /** Where the KIT proxy lets connections through: the collector and any outbound check, host:port. */
  reachable: string[];
  /** The collector's host:port (condor_status -pool). */
  collector: string;
  /** Files present on the worker node (the image, the proxychains library, …). */
  workerFiles: string[];
  /** Directories present on the worker node (cvmfsexec's mount root, …). */
  workerDirs: string[];
  /** Libraries that are proxychains (a pre-load of any other file routes nothing). */
  proxychainsLibraries: string[];
  /** Repositories mountrepo can mount, with the files each holds (relative to /cvmfs/<repo>/). */
  repositories: Record<string, string[]>;
}

export interface FakeProcess {
  pid: number;
  startTime: string;
  host: HostName;
  argv: string[];
  kind: 'tunnel' | 'glidein' | 'instance';
  alive: boolean;
  /** Epoch ms at which it dies by itself. */
  endsAt?: number;
  socksPort?: number;
  glideinId?: string;
  instance?: string;
  log?: string;
}

export interface FakeInstance {
  name: string;
  pid: number;
  image: string;
  /** Bind destination -> source. */
  binds: Map<string, string>;
}

export interface FakeAd {
  GlideinLaunchId: string;
  Name: string;
  State: string;
  Activity: string;
  GlideinSite: string;
  visibleFrom: number;
}

export interface FakeJob {
  jobId: string;
  name: string;
  state: 'PENDING' | 'RUNNING' | 'COMPLETING';
  node: string;
  timeLimitMs: number;
  startedAt?: number;
  pendingPolls: number;
}

interface Lease {
  holders: Set<string>;
  ours: boolean;
}

class FakeHost {
  readonly files = new Map<string, string>();
  readonly dirs = new Set<string>(['/']);
  /** sshd's own port: a listener that is nobody's tunnel. */
  readonly listening = new Set<number>([22]);
  readonly mounts = new Set<string>();
  readonly leases = new Map<string, Lease>();
  /** SOCKS port leases: port → glidein id. */
  readonly ports = new Map<number, string>();
  readonly instances = new Map<string, FakeInstance>();
  constructor(
    readonly name: HostName,
    readonly nodeName: string,
  ) {}

  mkdirp(path: string): void {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) this.dirs.add(`/${parts.slice(0, i).join('/')}`);
  }

  exists(path: string): boolean {
    return this.files.has(path) || this.dirs.has(path);
  }

  append(path: string, text: string): void {
    this.files.set(path, (this.files.get(path) ?? '') + text);
  }

  /** `mv src dest` of a directory and everything in it. */
  move(src: string, dest: string): void {
    const rename = (p: string) => (p === src ? dest : p.startsWith(`${src}/`) ? dest + p.slice(src.length) : p);
    for (const d of [...this.dirs]) {
      if (rename(d) === d) continue;
      this.dirs.delete(d);
      this.dirs.add(rename(d));
    }
    for (const [f, content] of [...this.files]) {
      if (rename(f) === f) continue;
      this.files.delete(f);
      this.files.set(rename(f), content);
    }
  }
}

export interface SiteCommand {
  host: HostName;
  argv: string[];
  /** The constant script's name, or the tool. */
  what: string;
}

/** What a glidein left on the site: all empty after a clean teardown. */
export interface Footprint {
  processes: string[];
  instances: string[];
  mounts: string[];
  leases: string[];
  jobs: string[];
  /** Glidein work directories still in place (not moved to .done). */
  workDirs: string[];
}

export const EMPTY_FOOTPRINT: Footprint = {
  processes: [],
  instances: [],
  mounts: [],
  leases: [],
  jobs: [],
  workDirs: [],
};

let sites = 0;

/** `exec --cleanenv instance://<name> <command…>` (the arguments after `exec`), or undefined for any other shape. */
function execInInstance(args: readonly string[]): { name: string; command: string[] } | undefined {
  if (args[0] !== '--cleanenv' || !args[1]?.startsWith('instance://')) return undefined;
  return { name: args[1].slice('instance://'.length), command: args.slice(2) };
}

export class FakeSite {
  readonly faults: FakeFaults = {};
  readonly commands: SiteCommand[] = [];
  /** Every argv the fake did not understand: a test asserts this stays empty. */
  readonly unknown: string[] = [];
  readonly processes = new Map<number, FakeProcess>();
  readonly ads = new Map<string, FakeAd>();
  readonly jobs = new Map<string, FakeJob>();
  readonly hosts: Record<HostName, FakeHost> = {
    login: new FakeHost('login', 'login01'),
    worker: new FakeHost('worker', 'wn01'),
  };
  private nextPid = 4000;
  private nextJob = 730_001;
  private clockTicks = 100_000;
  private readonly serial = ++sites;
  /** The host the profile's worker node is (the login node itself for workerNode.via "login"). */
  private nodeHost: HostName = 'worker';

  constructor(readonly config: FakeSiteConfig) {
    const worker = this.hosts.worker;
    for (const d of config.workerDirs) worker.mkdirp(d);
    for (const f of config.workerFiles) {
      worker.mkdirp(dirname(f));
      worker.files.set(f, '');
    }
  }

  /** The ActivityDeps hook: the same two executors for every profile of this site. */
  readonly executorsFor = (profile: SiteProfile): SiteExecutors => {
    this.nodeHost = profile.workerNode.via === 'login' ? 'login' : 'worker';
    const login = new FakeExecutor(this, 'login', `glidein@login01.fake-${this.serial}`);
    return {
      login,
      node: this.nodeHost === 'login' ? login : new FakeExecutor(this, 'worker', `glidein@wn01.fake-${this.serial}`),
    };
  };

  // ---- what tests do to the site while a glidein runs ----

  /** The glidein process of this id, if it runs. */
  glidein(glideinId: string): FakeProcess | undefined {
    return this.alive().find((p) => p.kind === 'glidein' && p.glideinId === glideinId);
  }

  tunnels(): FakeProcess[] {
    return this.alive().filter((p) => p.kind === 'tunnel');
  }

  /**
   * `scancel` from outside (an operator, or the batch system at the time limit): the job leaves the queue. As in
   * JSC in a box, the processes the glidein started on the node stay until its teardown ends them.
   */
  cancelJobOf(glideinId: string): void {
    const jobs = [...this.jobs.values()].filter((j) => j.name === glideinId);
    if (jobs.length === 0) throw new Error(`fake site: no job named ${glideinId}`);
    for (const job of jobs) job.state = 'COMPLETING';
  }

  /** A schedd claims the glidein's startd (it runs a job: Claimed/Busy), or releases it (Unclaimed/Idle). */
  claimGlidein(glideinId: string, claimed = true): void {
    const ad = this.ads.get(glideinId);
    if (!ad) throw new Error(`fake site: no ad for ${glideinId}`);
    ad.State = claimed ? 'Claimed' : 'Unclaimed';
    ad.Activity = claimed ? 'Busy' : 'Idle';
  }

  /** Ends the glidein by itself: a graceful exit (its ad goes), or a kill (its ad stays: a ghost). */
  exitGlidein(glideinId: string, how: 'graceful' | 'killed' = 'graceful'): void {
    const proc = this.glidein(glideinId);
    if (!proc) throw new Error(`fake site: no glidein ${glideinId} runs`);
    this.end(proc, how);
  }

  /** Appends `text` to a running glidein's own log, as the glidein would print it. */
  logFromGlidein(glideinId: string, text: string): void {
    const proc = this.glidein(glideinId);
    if (!proc?.log) throw new Error(`fake site: no glidein ${glideinId} runs`);
    this.hosts[proc.host].append(proc.log, text);
  }

  killTunnels(): void {
    for (const t of this.tunnels()) this.end(t, 'killed');
  }

  /** The collector forgets the glidein's ad (while the glidein runs on). */
  dropAd(glideinId: string): void {
    this.ads.delete(glideinId);
  }

  /** The visible ads' names. */
  adNames(): string[] {
    return [...this.ads.values()].filter((a) => a.visibleFrom <= Date.now()).map((a) => a.Name);
  }

  /** Writes a claim for another workflow, as if it had started first. */
  seedClaim(dir: string, claim: { namespace: string; workflowId: string }): void {
    for (const host of Object.values(this.hosts)) {
      host.mkdirp(dir);
      host.files.set(`${dir}/.claim`, `${JSON.stringify(claim)}\n`);
    }
  }

  /** Everything that would be left on the site; EMPTY_FOOTPRINT after a clean teardown. */
  footprint(workDir: string): Footprint {
    this.reap();
    const leases: string[] = [];
    const all = Object.values(this.hosts);
    for (const host of all)
      for (const [key, lease] of host.leases)
        for (const holder of lease.holders) leases.push(`${host.nodeName}:${key}:${holder}`);
    for (const host of all)
      for (const [port, holder] of host.ports) leases.push(`${host.nodeName}:port ${port}:${holder}`);
    return {
      processes: this.alive()
        .filter((p) => p.kind !== 'instance')
        .map((p) => `${p.host}:${p.pid} ${p.argv.join(' ')}`),
      instances: all.flatMap((h) => [...h.instances.keys()]),
      mounts: all.flatMap((h) => [...h.mounts]),
      leases,
      jobs: [...this.jobs.values()].map((j) => `${j.jobId} ${j.name} ${j.state}`),
      workDirs: all.flatMap((h) =>
        [...h.dirs].filter((d) => dirname(d) === workDir && !basename(d).startsWith('.')).map((d) => `${h.name}:${d}`),
      ),
    };
  }

  /** The number of commands run so far (on either host). */
  get commandCount(): number {
    return this.commands.length;
  }

  // ---- the executors' entry ----

  async run(hostName: HostName, argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    if (options.signal?.aborted) throw new ExecutorError(`${argv[0]} aborted before it started`, 'aborted');
    const host = this.hosts[hostName];
    this.commands.push({ host: hostName, argv: [...argv], what: describe(argv) });
    this.reap();
    for (const refusal of this.faults.refuse ?? []) {
      if ((refusal.host ?? hostName) === hostName && refusal.match(argv) && take(refusal))
        throw new ExecutorError(
          `${host.nodeName}: the site refused the key (Permission denied (publickey))`,
          'auth',
          true,
        );
    }
    for (const delay of this.faults.delays ?? [])
      if ((delay.host ?? hostName) === hostName && delay.match(argv)) await pause(delay.ms, argv, options);
    const result = await this.dispatch(host, argv, options);
    this.reap();
    return result;
  }

  private async dispatch(host: FakeHost, argv: readonly string[], options: RunOptions): Promise<CommandResult> {
    const [tool, ...args] = argv;
    if (tool === 'sh' && args[0] === '-c' && args[2] === 'sh') {
      const script = shScriptNamed(args[1]);
      const params = args.slice(3);
      switch (script) {
        case 'SPAWN_DETACHED':
          return this.spawn(host, params, options);
        case 'INSPECT_PROCESSES':
          return this.inspect(host, params);
        case 'SIGNAL_RECORDED':
          return this.signalRecorded(host, params, argv);
        case 'WRITE_FILE':
          return this.writeFile(host, params, options, argv);
        case 'MOUNT_LEASE':
          return this.mountLease(host, params, argv);
        case 'MOUNT_RELEASE':
          return this.mountRelease(host, params, argv);
        case 'LIST_LEASES':
          return this.listLeases(host, params, argv);
        case 'CLAIM_GLIDEIN':
          return this.claim(host, params, argv);
        case 'RETIRE_GLIDEIN':
          return this.retire(host, params, argv);
        case 'PORT_LEASE':
          return this.portLease(host, params, argv);
        case 'PORT_RELEASE':
          return this.portRelease(host, params, argv);
        case undefined:
          return this.refuse(host, argv, 'a shell script that is none of the site scripts');
      }
    }
    switch (basename(tool)) {
      case 'mkdir': {
        // `mkdir -p <dir>…`, or `mkdir -p -m 0700 -- <dir>…` (directories only the site user may enter).
        const dirs = args[1] === '-m' ? (args[2] === '0700' && args[3] === '--' ? args.slice(4) : []) : args.slice(1);
        if (args[0] !== '-p' || dirs.length === 0 || !dirs.every(isAbsolute)) break;
        for (const dir of dirs) host.mkdirp(dir);
        return ok('');
      }
      case 'tail':
        return this.tail(host, args, argv);
      case 'rm':
        // removeCredential: `rm -f -- <files>` (absolute paths only; -f: a missing file is no error).
        if (args[0] !== '-f' || args[1] !== '--' || args.length < 3 || !args.slice(2).every(isAbsolute)) break;
        for (const file of args.slice(2)) host.files.delete(file);
        return ok('');
      case 'cat': {
        // A fleet's demand probe as a test writes it: `cat <file>` on the login node.
        if (args.length !== 1 || !isAbsolute(args[0])) break;
        const text = host.files.get(args[0]);
        if (text === undefined)
          return { code: 1, signal: null, stdout: '', stderr: `cat: ${args[0]}: No such file or directory\n` };
        return ok(text);
      }
      case 'getent':
        return this.getent(args, argv, host);
      case 'proxychains4':
        return this.proxychains(host, args, argv);
      case 'apptainer':
      case 'singularity':
        return this.container(host, tool, args, options, argv);
      case 'sbatch':
        return this.sbatch(host, args, options, argv);
      case 'squeue':
        return this.squeue(host, args, argv);
      case 'scancel':
        return this.scancel(host, args, argv);
    }
    return this.refuse(host, argv);
  }

  /** A loud failure: the fake does not know this command, so no test may pass by it. */
  private refuse(host: FakeHost, argv: readonly string[], why = 'an unknown command'): never {
    const message = `fake site: ${why} on the ${host.name} node: ${JSON.stringify(argv).slice(0, 2000)}`;
    this.unknown.push(message);
    throw ApplicationFailure.nonRetryable(message, 'FakeSiteUnknownCommand');
  }

  // ---- processes ----

  private alive(): FakeProcess[] {
    this.reap();
    return [...this.processes.values()].filter((p) => p.alive);
  }

  private reap(): void {
    const now = Date.now();
    for (const p of this.processes.values())
      if (p.alive && p.endsAt !== undefined && p.endsAt <= now) this.end(p, 'died');
  }

  private newProcess(host: HostName, argv: string[], kind: FakeProcess['kind']): FakeProcess {
    const proc: FakeProcess = {
      pid: this.nextPid++,
      startTime: String((this.clockTicks += 37)),
      host,
      argv,
      kind,
      alive: true,
    };
    this.processes.set(proc.pid, proc);
    return proc;
  }

  private end(proc: FakeProcess, how: 'graceful' | 'killed' | 'died'): void {
    if (!proc.alive) return;
    proc.alive = false;
    const host = this.hosts[proc.host];
    if (proc.kind === 'tunnel' && proc.socksPort !== undefined) {
      const node = this.hosts[this.nodeHost];
      const other = [...this.processes.values()].some(
        (p) => p.alive && p.kind === 'tunnel' && p.socksPort === proc.socksPort,
      );
      if (!other) node.listening.delete(proc.socksPort);
      if (proc.log) host.append(proc.log, how === 'died' ? 'Connection to login01 closed by remote host.\n' : '');
    }
    if (proc.kind === 'glidein' && proc.glideinId) {
      // A graceful shutdown invalidates the ad; a killed glidein's ad stays until it expires (a ghost).
      if (how === 'graceful') this.ads.delete(proc.glideinId);
      if (proc.log)
        host.append(proc.log, `condor_master (pid ${proc.pid}) ${how === 'graceful' ? 'exiting' : 'gone'}\n`);
    }
  }

  /** SPAWN_DETACHED: log pidfile marker wait settle port argv… */
  private spawn(host: FakeHost, params: string[], options: RunOptions): CommandResult {
    const [log, pidFile, marker, wait, settle, port, ...command] = params;
    if (
      command.length === 0 ||
      !isAbsolute(log) ||
      !isAbsolute(pidFile) ||
      !/^\d+$/.test(wait) ||
      !/^\d+$/.test(settle) ||
      !/^(\d{1,5})?$/.test(port) ||
      (marker !== '' && port !== '')
    )
      return this.refuse(host, params, 'a spawn with malformed arguments');
    if (!host.dirs.has(dirname(log)) || !host.dirs.has(dirname(pidFile))) {
      // The redirection fails, the child never records itself: the script gives up on it.
      return ok(`exited ${this.nextPid++}\n`);
    }
    if (marker) host.files.set(log, '');
    host.files.delete(pidFile);
    const proc = this.startProcess(host, command, log, options);
    host.files.set(pidFile, `${proc.pid} ${proc.startTime}\n`);
    if (port) {
      if (!proc.alive) return ok(`exited ${proc.pid}\n`);
      if (host.listening.has(Number(port))) return ok(`started ${proc.pid} ${proc.startTime}\n`);
      return ok(`waiting ${proc.pid} ${proc.startTime}\n`);
    }
    if (!marker) {
      if (Number(settle) > 0 && !proc.alive) return ok(`exited ${proc.pid}\n`);
      return ok(`started ${proc.pid} ${proc.startTime}\n`);
    }
    if ((host.files.get(log) ?? '').includes(marker)) return ok(`started ${proc.pid} ${proc.startTime}\n`);
    if (!proc.alive) return ok(`exited ${proc.pid}\n`);
    return ok(`waiting ${proc.pid} ${proc.startTime}\n`);
  }

  private startProcess(host: FakeHost, command: string[], log: string, options: RunOptions): FakeProcess {
    const tool = basename(command[0]);
    if (tool === 'ssh' && (command.includes('-D') || command.includes('-R')))
      return this.startTunnel(host, command, log, options);
    if ((tool === 'apptainer' || tool === 'singularity') && command[1] === 'exec')
      return this.startGlidein(host, tool, command, log, options);
    return this.refuse(host, command, 'a spawn of an unknown command');
  }

  private startTunnel(host: FakeHost, command: string[], log: string, options: RunOptions): FakeProcess {
    const reverse = command.includes('-R');
    const forward = command[command.indexOf(reverse ? '-R' : '-D') + 1] ?? '';
    const port = /^127\.0\.0\.1:(\d+)$/.exec(forward);
    const target = command.at(-1) ?? '';
    if (!port || command.at(-2) !== '--' || !command.includes('BatchMode=yes'))
      return this.refuse(host, command, 'a tunnel ssh without "-D|-R 127.0.0.1:<port> … -- <host>" and BatchMode');
    if (reverse ? host.name !== 'login' : host.name !== this.nodeHost)
      return this.refuse(host, command, `a ${reverse ? 'reverse' : 'forward'} tunnel started on the wrong host`);
    const proc = this.newProcess(host.name, command, 'tunnel');
    proc.log = log;
    const node = this.hosts[this.nodeHost];
    const socksPort = Number(port[1]);
    const fail = (output: string) => {
      host.append(log, `${output}\n`);
      proc.alive = false;
      return proc;
    };
    if (this.faults.tunnelSsh && take(this.faults.tunnelSsh)) return fail(this.faults.tunnelSsh.output);
    if (reverse && !options.forwardAgent) return fail(`glidein@${target}: Permission denied (publickey).`);
    if (node.listening.has(socksPort))
      return fail(
        `bind [127.0.0.1]:${socksPort}: Address already in use\nchannel_setup_fwd_listener_tcpip: cannot ` +
          `listen to port: ${socksPort}\nCould not request local forwarding.`,
      );
    proc.socksPort = socksPort;
    node.listening.add(socksPort);
    if (this.faults.tunnelDiesAfterMs !== undefined) proc.endsAt = Date.now() + this.faults.tunnelDiesAfterMs;
    if (reverse)
      host.append(
        log,
        `debug1: Authenticating to ${target}:22 as 'glidein'\ndebug1: Authentication succeeded ` +
          `(publickey).\ndebug1: remote forward success for: listen 127.0.0.1:${socksPort}, connect (null):0\n`,
      );
    return proc;
  }

  private startGlidein(host: FakeHost, tool: string, argv: string[], log: string, options: RunOptions): FakeProcess {
    const exec = execInInstance(argv.slice(2));
    if (!exec) return this.refuse(host, argv, 'a spawn of `exec` without --cleanenv into instance://<name>');
    const { name } = exec;
    const prefix = tool === 'apptainer' ? 'APPTAINERENV_' : 'SINGULARITYENV_';
    const glideinId = options.env?.[`${prefix}_CONDOR_GLIDEIN_NAME`];
    if (!glideinId) return this.refuse(host, argv, `a glidein started without ${prefix}_CONDOR_GLIDEIN_NAME`);
    const proc = this.newProcess(host.name, argv, 'glidein');
    proc.log = log;
    const instance = host.instances.get(name);
    if (!instance) {
      host.append(log, `FATAL:   no instance found with name ${name}\n`);
      proc.alive = false;
      return proc;
    }
    if (!this.existsIn(host, instance, exec.command[0])) {
      host.append(log, `FATAL:   stat ${exec.command[0]}: no such file or directory\n`);
      proc.alive = false;
      return proc;
    }
    // What the daemons read must be bound into the contained instance, or the glidein could not see it.
    const unbound = ['LOCAL_DIR', 'SEC_TOKEN_DIRECTORY', 'X509_USER_PROXY']
      .map((knob) => options.env?.[`${prefix}_CONDOR_${knob}`])
      .filter((p): p is string => p !== undefined && !this.boundIn(instance, p));
    if (unbound.length > 0)
      return this.refuse(
        host,
        argv,
        `a glidein configured with paths its container does not bind (${unbound.join(', ')})`,
      );
    proc.glideinId = glideinId;
    proc.instance = name;
    host.append(log, `condor_master (pid ${proc.pid}) started for ${glideinId}\n`);
    if (!this.faults.glideinNeverRegisters) {
      const collector = options.env?.[`${prefix}_CONDOR_COLLECTOR_HOST`];
      if (collector !== this.config.collector)
        return this.refuse(host, argv, `a glidein configured for collector ${collector}`);
      this.ads.set(glideinId, {
        GlideinLaunchId: glideinId,
        // As the local site's stand-in names it: slot1@<GLIDEIN_NAME>@<host>.
        Name: `slot1@${glideinId}@${host.nodeName}`,
        State: 'Unclaimed',
        Activity: 'Idle',
        GlideinSite: (options.env?.[`${prefix}_CONDOR_GlideinSite`] ?? '').replace(/"/g, ''),
        visibleFrom: Date.now() + (this.faults.registrationDelayMs ?? 0),
      });
    }
    return proc;
  }

  /** INSPECT_PROCESSES pidfile…: `proc <f> <pid> <start> <actual> <cmdline>` lines, then `listen <hex port>`. */
  private inspect(host: FakeHost, pidFiles: string[]): CommandResult {
    const lines: string[] = [];
    for (const f of pidFiles) {
      const [pid, start] = (host.files.get(f) ?? '').split(/\s+/);
      if (!pid || !/^\d+$/.test(pid)) {
        lines.push(`proc ${f} - - - -`);
        continue;
      }
      const proc = this.processes.get(Number(pid));
      if (!proc || proc.host !== host.name || !proc.alive) {
        lines.push(`proc ${f} ${pid} ${start} - -`);
        continue;
      }
      // /proc/<pid>/cmdline with its NULs as spaces: a trailing space.
      lines.push(`proc ${f} ${pid} ${start} ${proc.startTime} ${proc.argv.join(' ')} `);
    }
    for (const port of host.listening) lines.push(`listen ${port.toString(16).toUpperCase().padStart(4, '0')}`);
    return ok(`${lines.join('\n')}\n`);
  }

  private recorded(host: FakeHost, pidFile: string): { pid: string; proc?: FakeProcess } | undefined {
    const [pid, start] = (host.files.get(pidFile) ?? '').split(/\s+/);
    if (!pid || !/^\d+$/.test(pid)) return undefined;
    const proc = this.processes.get(Number(pid));
    const running = proc && proc.host === host.name && proc.alive && proc.startTime === start;
    return { pid, proc: running ? proc : undefined };
  }

  /** SIGNAL_RECORDED sig pidfile [wait]. */
  private async signalRecorded(host: FakeHost, params: string[], argv: readonly string[]): Promise<CommandResult> {
    const [sig, pidFile, wait] = params;
    if (params.length < 2 || params.length > 3 || !['', 'TERM', 'QUIT', 'KILL'].includes(sig))
      return this.refuse(host, argv, 'a signal script with malformed arguments');
    if (wait !== undefined && !/^\d+$/.test(wait)) return this.refuse(host, argv, 'a signal wait that is not tenths');
    const found = this.recorded(host, pidFile);
    if (!found) return ok('no-pidfile\n');
    const proc = found.proc;
    if (!proc) return ok('gone\n');
    if (sig) this.signal(proc, sig as 'TERM' | 'QUIT' | 'KILL');
    if (wait === undefined) return ok(`signalled ${proc.pid}\n`);
    if (proc.alive && Number(wait) > 0) {
      // The script waits on the site; so does the fake (a glidein that ignores SIGTERM takes the whole wait).
      await new Promise((r) => setTimeout(r, Number(wait) * 100));
      this.reap();
    }
    return ok(`${proc.alive ? 'running' : 'ended'} ${proc.pid}\n`);
  }

  private signal(proc: FakeProcess, sig: 'TERM' | 'QUIT' | 'KILL'): void {
    if (proc.kind === 'glidein' && sig === 'TERM' && this.faults.glideinIgnoresTerm) return;
    this.end(proc, sig === 'KILL' ? 'killed' : 'graceful');
  }

  /** WRITE_FILE dir file, content on stdin. */
  private writeFile(host: FakeHost, params: string[], options: RunOptions, argv: readonly string[]): CommandResult {
    const [dir, file] = params;
    if (params.length !== 2 || !isAbsolute(dir) || dirname(file) !== dir)
      return this.refuse(host, argv, 'a file write with malformed arguments');
    host.mkdirp(dir);
    host.files.set(file, options.stdin ?? '');
    return ok('');
  }

  /** MOUNT_LEASE root repo id mountrepo target. */
  private mountLease(host: FakeHost, params: string[], argv: readonly string[]): CommandResult {
    const [root, repo, id, mountrepo, target] = params;
    if (params.length !== 5 || basename(mountrepo) !== 'mountrepo' || basename(target) !== repo)
      return this.refuse(host, argv, 'a mount lease with malformed arguments');
    const key = `${root}/${repo}`;
    const lease = host.leases.get(key) ?? { holders: new Set<string>(), ours: false };
    host.leases.set(key, lease);
    lease.holders.add(id);
    if (host.mounts.has(target)) return ok(lease.ours ? `shared ${lease.holders.size}\n` : 'external\n');
    lease.ours = true;
    const fault = this.faults.mountFails;
    const refused =
      fault && fault.repo === repo && take(fault)
        ? fault.output
        : this.config.repositories[repo] === undefined
          ? `Failed to initialize root file catalog (16 - file catalog failure)\nmountrepo: failed to mount ${repo}`
          : undefined;
    if (refused !== undefined) {
      lease.holders.delete(id);
      lease.ours = false;
      return { code: 1, signal: null, stdout: '', stderr: `${refused}\n` };
    }
    host.mounts.add(target);
    return ok('mounted\n');
  }

  /** MOUNT_RELEASE root repo id umountrepo target. */
  private mountRelease(host: FakeHost, params: string[], argv: readonly string[]): CommandResult {
    const [root, repo, id, umountrepo, target] = params;
    if (params.length !== 5 || basename(umountrepo) !== 'umountrepo' || basename(target) !== repo)
      return this.refuse(host, argv, 'a mount release with malformed arguments');
    const lease = host.leases.get(`${root}/${repo}`);
    if (!lease?.holders.has(id)) return ok('not-held\n');
    lease.holders.delete(id);
    if (lease.holders.size > 0) return ok(`still-used ${lease.holders.size}\n`);
    if (lease.ours && host.mounts.has(target)) {
      if (this.faults.umountFails && take(this.faults.umountFails)) {
        lease.holders.add(id);
        return { code: 1, signal: null, stdout: '', stderr: `${this.faults.umountFails.output}\n` };
      }
      host.mounts.delete(target);
      lease.ours = false;
      host.leases.delete(`${root}/${repo}`);
      return ok('unmounted\n');
    }
    lease.ours = false;
    host.leases.delete(`${root}/${repo}`);
    return ok('not-mounted\n');
  }

  /** PORT_LEASE root id first last: this glidein's port again, or the lowest that is neither leased nor listening. */
  private portLease(host: FakeHost, params: string[], argv: readonly string[]): CommandResult {
    const [, id, first, last] = params;
    if (params.length !== 4 || !/^\d+$/.test(first) || !/^\d+$/.test(last))
      return this.refuse(host, argv, 'a port lease with malformed arguments');
    for (const [port, holder] of host.ports) if (holder === id) return ok(`found ${port}\n`);
    for (let port = Number(first); port <= Number(last); port++) {
      if (host.ports.has(port) || host.listening.has(port)) continue;
      host.ports.set(port, id);
      return ok(`leased ${port}\n`);
    }
    return ok('exhausted\n');
  }

  /** PORT_RELEASE root id. */
  private portRelease(host: FakeHost, params: string[], argv: readonly string[]): CommandResult {
    const [, id] = params;
    if (params.length !== 2) return this.refuse(host, argv, 'a port release with malformed arguments');
    for (const [port, holder] of host.ports)
      if (holder === id) {
        host.ports.delete(port);
        return ok(`released ${port}\n`);
      }
    return ok('not-held\n');
  }

  /** LIST_LEASES root id: the repositories, in the glob's (alphabetical) order. */
  private listLeases(host: FakeHost, params: string[], argv: readonly string[]): CommandResult {
    const [root, id] = params;
    if (params.length !== 2) return this.refuse(host, argv, 'a lease listing with malformed arguments');
    const repos = [...host.leases]
      .filter(([key, lease]) => dirname(key) === root && lease.holders.has(id))
      .map(([key]) => basename(key))
      .sort();
    return ok(repos.map((r) => `${r}\n`).join(''));
  }

  /** CLAIM_GLIDEIN dir claim claim|verify. */
  private claim(host: FakeHost, params: string[], argv: readonly string[]): CommandResult {
    const [dir, claim, mode] = params;
    if (params.length !== 3 || !isAbsolute(dir) || !['claim', 'verify'].includes(mode) || claim.includes('\n'))
      return this.refuse(host, argv, 'a claim with malformed arguments');
    const file = `${dir}/.claim`;
    if (!host.files.has(file)) {
      if (!host.dirs.has(dir)) {
        if (mode !== 'claim') return ok('absent\n');
        host.mkdirp(dir);
      }
      host.files.set(file, `${claim}\n`);
    }
    const found = (host.files.get(file) ?? '').replace(/\n+$/, '');
    return ok(found === claim ? 'ours\n' : `theirs ${found}\n`);
  }

  /** RETIRE_GLIDEIN dir claim done keepMinutes. */
  private retire(host: FakeHost, params: string[], argv: readonly string[]): CommandResult {
    const [dir, claim, done, keep] = params;
    if (params.length !== 4 || !isAbsolute(dir) || !isAbsolute(done) || !/^\d+$/.test(keep))
      return this.refuse(host, argv, 'a retirement with malformed arguments');
    if (!host.dirs.has(dir)) return ok('absent\n');
    const found = host.files.get(`${dir}/.claim`)?.replace(/\n+$/, '');
    if (found && found !== claim) return ok('theirs\n');
    host.mkdirp(done);
    const dest = `${done}/${basename(dir)}.${Math.floor(Date.now() / 1000)}`;
    host.move(dir, dest);
    return ok(`moved ${dest}\n`);
  }

  private tail(host: FakeHost, args: string[], argv: readonly string[]): CommandResult {
    const [flag, n, file] = args;
    if (args.length !== 3 || flag !== '-n' || !/^\d+$/.test(n) || !isAbsolute(file))
      return this.refuse(host, argv, 'a tail with malformed arguments');
    const text = host.files.get(file);
    if (text === undefined)
      return {
        code: 1,
        signal: null,
        stdout: '',
        stderr: `tail: cannot open '${file}' for reading: No such file or directory\n`,
      };
    const lines = text.replace(/\n$/, '').split('\n');
    return ok(text ? `${lines.slice(-Number(n)).join('\n')}\n` : '');
  }

  private getent(args: string[], argv: readonly string[], host: FakeHost): CommandResult {
    if (args.length !== 2 || args[0] !== 'ahostsv4') return this.refuse(host, argv);
    const address = this.config.dns?.[args[1]];
    if (!address) return { code: 2, signal: null, stdout: '', stderr: '' };
    return ok(`${address}      STREAM ${args[1]}\n${address}      DGRAM  \n${address}      RAW    \n`);
  }

  // ---- the chain: SOCKS tunnel -> KIT proxy -> target ----

  /** proxychains-ng's own report of one connection through the chain in `conf`, as it prints it. */
  private chain(host: FakeHost, conf: string | undefined, target: string): { ok: boolean; report: string[] } {
    if (conf === undefined) return { ok: false, report: [] };
    const list = conf.split('\n').slice(conf.split('\n').indexOf('[ProxyList]') + 1);
    const proxies = list.map((l) => l.trim().split(/\s+/)).filter((w) => w.length === 3);
    const hops: Array<{ at: string; up: boolean }> = [];
    for (const [type, address, port] of proxies) {
      const at = `${address}:${port}`;
      if (type === 'socks5') {
        const up =
          address === '127.0.0.1' &&
          host.listening.has(Number(port)) &&
          this.alive().some((p) => p.kind === 'tunnel' && p.socksPort === Number(port));
        hops.push({ at, up });
      } else if (type === 'http') hops.push({ at, up: at === this.config.kit && !this.faults.kitDown });
      else hops.push({ at, up: false });
    }
    const reachable =
      this.config.reachable.includes(target) && !(target === this.config.collector && this.faults.collectorDown);
    let line = '[proxychains] Strict chain';
    for (const hop of hops) {
      line += `  ...  ${hop.at}`;
      if (!hop.up) return { ok: false, report: [`${line} <--socket error or timeout!`] };
    }
    line += `  ...  ${target}`;
    if (!reachable) return { ok: false, report: [`${line} <--denied`] };
    return { ok: true, report: [`${line}  ...  OK`] };
  }

  private probeResult(chain: { ok: boolean; report: string[] }, target: string, preamble: string[]): CommandResult {
    const [h, p] = splitHostPort(target);
    const stderr = [...preamble, ...chain.report].map((l) => `${l}\n`).join('');
    if (chain.ok) return { code: 0, signal: null, stdout: '', stderr };
    return {
      code: 1,
      signal: null,
      stdout: '',
      stderr: `${stderr}probe: connect: Connection refused\nprobe: line 1: /dev/tcp/${h}/${p}: Connection refused\n`,
    };
  }

  /** proxychains4 -f <conf> bash -c TCP_PROBE probe <host> <port>. */
  private proxychains(host: FakeHost, args: string[], argv: readonly string[]): CommandResult {
    const [flag, confFile, bash, c, script, name, targetHost, targetPort] = args;
    if (args.length !== 8 || flag !== '-f' || bash !== 'bash' || c !== '-c' || script !== TCP_PROBE || name !== 'probe')
      return this.refuse(host, argv, 'a proxychains command other than the TCP probe');
    const conf = host.files.get(confFile);
    if (conf === undefined)
      return { code: 1, signal: null, stdout: '', stderr: `couldnt locate proxychains config file ${confFile}\n` };
    const target = `${targetHost}:${targetPort}`;
    return this.probeResult(this.chain(host, conf, target), target, [
      `[proxychains] config file found: ${confFile}`,
      '[proxychains] preloading /usr/lib/x86_64-linux-gnu/libproxychains.so.4',
      '[proxychains] DLL init: proxychains-ng 4.16',
    ]);
  }

  // ---- the container runtime ----

  private listing(host: FakeHost, name: string): string {
    const found = [...host.instances.values()].filter((i) => i.name === name);
    const entries = found.map(
      (i) =>
        `\t\t{\n\t\t\t"instance": "${i.name}",\n\t\t\t"pid": ${i.pid},\n\t\t\t"img": ` +
        `"${i.image}",\n\t\t\t"ip": "",\n\t\t\t"logErrPath": ` +
        `"/home/glidein/.apptainer/instances/logs/${host.nodeName}/glidein/${i.name}.err",\n\t\t\t"logOutPath": ` +
        `"/home/glidein/.apptainer/instances/logs/${host.nodeName}/glidein/${i.name}.out"\n\t\t}`,
    );
    return `{\n\t"instances": [${entries.length ? `\n${entries.join(',\n')}\n\t` : ''}]\n}\n`;
  }

  private async container(
    host: FakeHost,
    tool: string,
    args: string[],
    options: RunOptions,
    argv: readonly string[],
  ): Promise<CommandResult> {
    const fatal = (message: string): CommandResult => ({
      code: 255,
      signal: null,
      stdout: '',
      stderr: `FATAL:   ${message}\n`,
    });
    if (args[0] === 'instance' && args[1] === 'list' && args[2] === '--json' && args.length === 4)
      return ok(this.listing(host, args[3]));
    if (args[0] === 'instance' && args[1] === 'start') {
      const rest = args.slice(2);
      // The instance must be contained (the pool's jobs run in it as the pilot's uid): these flags, in this order.
      if (CONTAINED.some((flag, i) => rest[i] !== flag) || rest[CONTAINED.length] !== '--workdir')
        return this.refuse(host, argv, `an instance start without ${CONTAINED.join(' ')} --workdir <dir>`);
      const workdir = rest[CONTAINED.length + 1] ?? '';
      rest.splice(0, CONTAINED.length + 2);
      const binds = new Map<string, string>();
      while (rest[0] === '--bind') {
        const [src, dst = src] = (rest[1] ?? '').split(':');
        binds.set(dst, src);
        rest.splice(0, 2);
      }
      const [image, name] = rest;
      if (rest.length !== 2 || !isAbsolute(image) || !isAbsolute(workdir))
        return this.refuse(host, argv, 'an instance start with malformed arguments');
      if (this.faults.instanceStartFails && take(this.faults.instanceStartFails))
        return fatal(this.faults.instanceStartFails.output);
      if (host.instances.has(name)) return fatal(`instance ${name} already exists`);
      if (!host.files.has(image))
        return fatal(
          `could not open image ${image}: failed to retrieve path for ${image}: lstat ${image}: no such ` +
            `file or directory`,
        );
      for (const src of [...binds.values(), workdir])
        if (!host.exists(src)) return fatal(`container creation failed: mount source ${src} doesn't exist`);
      const proc = this.newProcess(host.name, [`Apptainer instance: glidein [${name}]`], 'instance');
      host.instances.set(name, { name, pid: proc.pid, image, binds });
      return { code: 0, signal: null, stdout: '', stderr: 'INFO:    instance started successfully\n' };
    }
    if (args[0] === 'instance' && args[1] === 'stop' && args.length === 3) {
      const instance = host.instances.get(args[2]);
      if (!instance) return fatal(`no instance found with name ${args[2]}`);
      // Stopping an instance sends SIGTERM to everything in it.
      for (const p of this.alive()) if (p.instance === instance.name) this.end(p, 'graceful');
      const own = this.processes.get(instance.pid);
      if (own) this.end(own, 'graceful');
      host.instances.delete(instance.name);
      return {
        code: 0,
        signal: null,
        stdout: '',
        stderr: `INFO:    Stopping ${instance.name} instance of ${instance.image} (PID=${instance.pid})\n`,
      };
    }
    const exec = args[0] === 'exec' ? execInInstance(args.slice(1)) : undefined;
    if (args[0] === 'exec' && !exec)
      return this.refuse(host, argv, 'an exec without --cleanenv into instance://<name>');
    if (exec) {
      const instance = host.instances.get(exec.name);
      if (!instance) return fatal(`no instance found with name ${exec.name}`);
      const { command } = exec;
      const prefix = basename(tool) === 'apptainer' ? 'APPTAINERENV_' : 'SINGULARITYENV_';
      const preload = this.preloaded(host, instance, options.env ?? {}, prefix);
      if (
        command[0] === 'bash' &&
        command[1] === '-c' &&
        command[2] === TCP_PROBE &&
        command[3] === 'probe' &&
        command.length === 6
      ) {
        const target = `${command[4]}:${command[5]}`;
        if (!preload) return this.probeResult({ ok: false, report: [] }, target, []);
        const quiet = options.env?.[`${prefix}PROXYCHAINS_QUIET_MODE`] === '1';
        const chain = this.chain(host, preload.conf, target);
        return this.probeResult(
          quiet ? { ...chain, report: [] } : chain,
          target,
          quiet ? [] : ['[proxychains] DLL init: proxychains-ng 4.16'],
        );
      }
      if (basename(command[0] ?? '') === 'condor_status')
        return this.condorStatus(host, instance, command, preload, argv);
    }
    return this.refuse(host, argv, `a ${basename(tool)} command the fake does not know`);
  }

  /** The proxychains configuration a process in the instance runs with, if the pre-load takes. */
  private preloaded(host: FakeHost, instance: FakeInstance, env: Record<string, string>, prefix: string) {
    const library = env[`${prefix}LD_PRELOAD`];
    const confFile = env[`${prefix}PROXYCHAINS_CONF_FILE`];
    if (!library || !this.config.proxychainsLibraries.includes(library) || !host.files.has(library)) return undefined;
    if (instance.binds.get(library) !== library) return undefined;
    const conf = confFile && this.boundIn(instance, confFile) ? host.files.get(confFile) : undefined;
    return conf === undefined ? undefined : { conf };
  }

  /** Whether a path is under one of the instance's binds (to the same path: the only kind the lifecycle makes). */
  private boundIn(instance: FakeInstance, path: string): boolean {
    return [...instance.binds].some(([dst, src]) => dst === src && (path === dst || path.startsWith(`${dst}/`)));
  }

  /** Whether a path exists inside an instance: /cvmfs through its bind to the mount root, others as bound. */
  private existsIn(host: FakeHost, instance: FakeInstance, path: string | undefined): boolean {
    if (!path) return false;
    const cvmfs = instance.binds.get('/cvmfs');
    if (path.startsWith('/cvmfs/') && cvmfs) {
      const [repo, ...rest] = path.slice('/cvmfs/'.length).split('/');
      return host.mounts.has(`${cvmfs}/${repo}`) && (this.config.repositories[repo] ?? []).includes(rest.join('/'));
    }
    return [...instance.binds.keys()].some((dst) => path === dst || path.startsWith(`${dst}/`)) && host.exists(path);
  }

  /** condor_status -pool <collector> -constraint <c> -af <attributes…>, through the pre-loaded chain. */
  private condorStatus(
    host: FakeHost,
    instance: FakeInstance,
    command: string[],
    preload: { conf: string } | undefined,
    argv: readonly string[],
  ): CommandResult {
    const [, pool, poolValue, constraintFlag, constraint, af, ...attributes] = command;
    if (pool !== '-pool' || constraintFlag !== '-constraint' || af !== '-af' || attributes.length === 0)
      return this.refuse(host, argv, 'a condor_status with malformed arguments');
    if (!this.existsIn(host, instance, command[0]))
      return {
        code: 255,
        signal: null,
        stdout: '',
        stderr: `FATAL:   stat ${command[0]}: no such file or directory\n`,
      };
    const byId = /^GlideinLaunchId == "([a-z0-9-]+)"$/.exec(constraint);
    if (!byId && constraint !== 'GlideinLaunchId =!= undefined')
      return this.refuse(host, argv, `a condor_status constraint the fake does not know (${constraint})`);
    const reached = preload && poolValue === this.config.collector && this.chain(host, preload.conf, poolValue).ok;
    if (!reached)
      return {
        code: 1,
        signal: null,
        stdout: '',
        stderr:
          `Error: communication error\nCEDAR:6001:Failed to connect to <${poolValue}>\nError: Couldn't ` +
          `contact the condor_collector on ${poolValue}.\n`,
      };
    const now = Date.now();
    const ads = [...this.ads.values()].filter((a) => a.visibleFrom <= now && (!byId || a.GlideinLaunchId === byId[1]));
    const value = (ad: FakeAd, attr: string) => String((ad as unknown as Record<string, unknown>)[attr] ?? 'undefined');
    return ok(ads.map((ad) => `${attributes.map((a) => value(ad, a)).join(' ')}\n`).join(''));
  }

  // ---- Slurm ----

  private sbatch(host: FakeHost, args: string[], options: RunOptions, argv: readonly string[]): CommandResult {
    const opts = new Map(args.map((a) => [a.split('=')[0], a.includes('=') ? a.slice(a.indexOf('=') + 1) : '']));
    const name = opts.get('--job-name');
    const time = opts.get('--time');
    const chdir = opts.get('--chdir');
    if (
      host.name !== 'login' ||
      !opts.has('--parsable') ||
      !name ||
      !time ||
      !chdir ||
      !opts.get('--partition') ||
      options.stdin !== HOLDER_SCRIPT
    )
      return this.refuse(
        host,
        argv,
        'an sbatch without --parsable, a name, a partition, a time, a directory and the holder script',
      );
    if (this.faults.sbatchRefuses)
      return { code: 1, signal: null, stdout: '', stderr: `sbatch: error: ${this.faults.sbatchRefuses}\n` };
    if (!host.dirs.has(chdir))
      return {
        code: 1,
        signal: null,
        stdout: '',
        stderr: `sbatch: error: chdir to ${chdir} failed: No such file or directory\n`,
      };
    const limit = /^(?:(\d+)-)?(\d+):(\d+):(\d+)$/.exec(time);
    if (!limit) return this.refuse(host, argv, `an sbatch --time the fake cannot read (${time})`);
    const [, d = '0', h, m, s] = limit;
    const jobId = String(this.nextJob++);
    this.jobs.set(jobId, {
      jobId,
      name,
      state: 'PENDING',
      node: '',
      timeLimitMs: (((Number(d) * 24 + Number(h)) * 60 + Number(m)) * 60 + Number(s)) * 1000,
      pendingPolls: this.faults.pendingPolls ?? 1,
    });
    return ok(`${jobId}\n`);
  }

  private squeue(host: FakeHost, args: string[], argv: readonly string[]): CommandResult {
    // By name (`--name=<id> --format=%i|%T|%N|%L`), or every job with its name (`--format=%i|%T|%N|%L|%j`).
    const name = /^--name=(.+)$/.exec(args[2] ?? '')?.[1];
    const byName = args.length === 4 && !!name && args[3] === '--format=%i|%T|%N|%L';
    const all = args.length === 3 && args[2] === '--format=%i|%T|%N|%L|%j';
    if (host.name !== 'login' || args[0] !== '--me' || args[1] !== '--noheader' || !(byName || all))
      return this.refuse(host, argv, 'a squeue the fake does not know');
    const lines: string[] = [];
    for (const job of [...this.jobs.values()].filter((j) => all || j.name === name)) {
      if (job.state === 'PENDING' && job.pendingPolls-- <= 0) {
        job.state = 'RUNNING';
        job.node = this.hosts.worker.nodeName;
        job.startedAt = Date.now();
      }
      const left = job.timeLimitMs - (job.startedAt ? Date.now() - job.startedAt : 0);
      lines.push(`${job.jobId}|${job.state}|${job.node}|${slurmLeft(left)}${all ? `|${job.name}` : ''}`);
      // A cancelled job is listed COMPLETING once, then leaves the queue.
      if (job.state === 'COMPLETING') this.jobs.delete(job.jobId);
    }
    return ok(lines.map((l) => `${l}\n`).join(''));
  }

  private scancel(host: FakeHost, ids: string[], argv: readonly string[]): CommandResult {
    if (host.name !== 'login' || ids.length === 0 || !ids.every((i) => /^\d+$/.test(i)))
      return this.refuse(host, argv, 'a scancel the fake does not know');
    const errors: string[] = [];
    for (const id of ids) {
      const job = this.jobs.get(id);
      if (!job) errors.push(`scancel: error: Kill job error on job id ${id}: Invalid job id specified`);
      else job.state = 'COMPLETING';
    }
    return { code: errors.length ? 1 : 0, signal: null, stdout: '', stderr: errors.map((e) => `${e}\n`).join('') };
  }
}

export class FakeExecutor implements Executor {
  constructor(
    private readonly site: FakeSite,
    readonly host: HostName,
    readonly target: string,
  ) {}
  run(argv: readonly string[], options?: RunOptions): Promise<CommandResult> {
    return this.site.run(this.host, argv, options);
  }
}

function ok(stdout: string): CommandResult {
  return { code: 0, signal: null, stdout, stderr: '' };
}

function take(fault: Countdown): boolean {
  if (fault.times === undefined) return true;
  if (fault.times <= 0) return false;
  fault.times--;
  return true;
}

function describe(argv: readonly string[]): string {
  if (argv[0] === 'sh' && argv[1] === '-c') return shScriptNamed(argv[2]) ?? 'sh -c ?';
  return basename(argv[0]) + (argv[1] && !argv[1].startsWith('-') ? ` ${argv[1]}` : '');
}

function pause(ms: number, argv: readonly string[], options: RunOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const limit = options.timeoutMs !== undefined && options.timeoutMs < ms;
    const timer = setTimeout(
      () =>
        limit ? reject(new ExecutorError(`${argv[0]} timed out after ${options.timeoutMs} ms`, 'timeout')) : resolve(),
      limit ? options.timeoutMs : ms,
    );
    options.signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(new ExecutorError(`${argv[0]} aborted`, 'aborted'));
      },
      { once: true },
    );
  });
}

/** squeue's %L: D-HH:MM:SS, H:MM:SS or MM:SS. */
function slurmLeft(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(total / 86_400);
  const h = Math.floor((total % 86_400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (d > 0) return `${d}-${pad(h)}:${pad(m)}:${pad(s)}`;
  if (h > 0) return `${h}:${pad(m)}:${pad(s)}`;
  return `${pad(m)}:${pad(s)}`;
}

function splitHostPort(target: string): [string, string] {
  const at = target.lastIndexOf(':');
  return [target.slice(0, at), target.slice(at + 1)];
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function dirname(path: string): string {
  const at = path.lastIndexOf('/');
  return at <= 0 ? '/' : path.slice(0, at);
}

function isAbsolute(path: string | undefined): path is string {
  return !!path && path.startsWith('/') && !path.split('/').includes('..');
}
