/**
 * How commands reach the worker node (`workerNode.via`): on the login node itself, through the login node as a
 * jump host, or by ssh into a node a Slurm holder job hands out. The only place that tells the three apart: the
 * executors, the worker node's address as the login node sees it, whether the login node keeps part of a glidein's
 * directory, and, for Slurm, the batch system's commands and what their output means.
 */
import { parseDuration } from '../../common/duration';
import { FailureType } from '../../common/failure-types';
import { PermanentFault } from '../../common/permanent-fault';
import type { CommandResult, Executor, RunOptions } from '../../remote/executor';
import { withEnv } from '../../remote/quote';
import type { SshPool, SshTarget } from '../../remote/ssh';
import { pathsFor, REMOVE_CREDENTIALS_ON_END } from '../paths';
import type { SiteProfile } from '../profile';
import { inJobArgv, SUPERVISOR_SCRIPT } from '../scripts/job-supervisor';

/** The login node and the worker node, as executors (the same one where commands run on the login node). */
export interface SiteExecutors {
  login: Executor;
  node: Executor;
}

/** The worker node's sshd, as the login node reaches it (a reverse tunnel starts into it). */
export interface NodeAddress {
  host: string;
  port: number;
  user: string;
}

/** What a Slurm allocation handed out: the node, and the job that holds it. */
export interface Allocated {
  node?: string;
  jobId?: string;
}

export interface NodeAccess {
  /** The login node's executor and the worker node's (on a Slurm site, the allocated node of `allocated`). */
  executors(ssh: SshPool, allocated?: Allocated): SiteExecutors;
  /** The worker node's sshd as the login node reaches it; undefined when there is none (yet) to reach, or none. */
  nodeAddress(node?: string): NodeAddress | undefined;
  /** The login node keeps part of the glidein's directory (a batch job's output). */
  readonly directoryOnLogin: boolean;
  /** The allocation that hands out the worker node, where there is one. */
  readonly allocation?: SlurmAllocation;
}

/** Stands for the worker node before Slurm has handed one out: any command is a bug in the lifecycle. */
export class NoNodeYet implements Executor {
  readonly target = 'the worker node (not allocated yet)';
  run(argv: readonly string[]): Promise<never> {
    return Promise.reject(
      new PermanentFault(`${argv[0]}: no worker node is allocated for this glidein yet`, FailureType.NoNodeAllocated),
    );
  }
}

function loginTarget(profile: SiteProfile): SshTarget {
  const { login } = profile;
  return {
    host: login.host,
    port: login.port,
    user: login.user,
    identityFile: login.identityFile,
    knownHostsFile: login.knownHostsFile,
  };
}

/** Commands run on the login node itself. */
function onLogin(profile: SiteProfile): NodeAccess {
  return {
    executors(ssh) {
      const login = ssh.executor(loginTarget(profile));
      return { login, node: login };
    },
    nodeAddress: () => undefined,
    directoryOnLogin: false,
  };
}

type Jump = Extract<SiteProfile['workerNode'], { via: 'jump' }>;

/** One fixed worker node, reached by ssh through the login node. */
function throughJumpHost(profile: SiteProfile, wn: Jump): NodeAccess {
  const address = { host: wn.host, port: wn.port, user: wn.user ?? profile.login.user };
  return {
    executors(ssh) {
      const jump = loginTarget(profile);
      return { login: ssh.executor(jump), node: ssh.executor({ ...jump, ...address, jump }) };
    },
    nodeAddress: () => address,
    directoryOnLogin: false,
  };
}

type Slurm = Extract<SiteProfile['workerNode'], { via: 'slurm' }>;

/** The node of a Slurm holder job, reached by ssh through the login node (pam_slurm_adopt puts us in the job). */
function slurmBySsh(profile: SiteProfile, wn: Slurm): NodeAccess {
  const address = (node: string) => ({ host: node, port: wn.port, user: wn.user ?? profile.login.user });
  return {
    executors(ssh, allocated) {
      const jump = loginTarget(profile);
      const node = allocated?.node;
      return {
        login: ssh.executor(jump),
        node: node ? ssh.executor({ ...jump, ...address(node), jump }) : new NoNodeYet(),
      };
    },
    nodeAddress: (node) => (node ? address(node) : undefined),
    // The job's output (slurm-<id>.out) and the directory sbatch runs in are on the login node's file system.
    directoryOnLogin: true,
    allocation: slurmAllocation(profile, wn, HOLDER_SCRIPT),
  };
}

/**
 * The node of a Slurm holder job, reached as `srun --jobid=<job> --overlap` steps from the login node (JSC's
 * psslurm runs no slurmd, so ssh into a job's node is very likely refused). The holder job's batch script is the
 * supervisor that runs what must outlive a step (src/site/scripts/job-supervisor.ts). No sshd on the node is used.
 */
function slurmBySteps(profile: SiteProfile, wn: Slurm): NodeAccess {
  return {
    executors(ssh, allocated) {
      const login = ssh.executor(loginTarget(profile));
      const { node, jobId } = allocated ?? {};
      return { login, node: node && jobId ? new SlurmStepExecutor(login, jobId, node) : new NoNodeYet() };
    },
    nodeAddress: () => undefined,
    directoryOnLogin: true,
    allocation: slurmAllocation(profile, wn, SUPERVISOR_SCRIPT),
  };
}

/** `srun` failed to start a step because the job is gone (cancelled, timed out, node failed). */
const JOB_GONE = new RegExp(
  [
    'Invalid job id specified',
    'job \\d+ has expired',
    'already completing or completed',
    'Job has already finished',
    'job .* (?:has )?(?:completed|been cancelled)',
  ].join('|'),
  'i',
);
/** What srun itself adds to a task's stderr when the task exits non-zero or by a signal. */
const SRUN_TASK_REPORT = /^srun: error: \S+: tasks? [\d,-]+: .*$/;

/**
 * Commands on the node of one Slurm job, each a step started from the login node; a command that leaves processes
 * behind (RunOptions.persists) goes through the step to the job's supervisor. Answers as if it ran on the node.
 */
export class SlurmStepExecutor implements Executor {
  readonly target: string;
  constructor(
    private readonly login: Executor,
    private readonly jobId: string,
    private readonly node: string,
  ) {
    this.target = `${node} (Slurm job ${jobId}, srun from ${login.target})`;
  }

  async run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    const { env, persists, ...rest } = options;
    const command = withEnv(argv, env);
    const step = persists ? inJobArgv(command, options.stdin !== undefined) : command;
    const result = await this.login.run(srunArgv(this.jobId, this.node, step), rest);
    if (result.code !== 0 && JOB_GONE.test(result.stderr) && /^srun: error:/m.test(result.stderr))
      throw new PermanentFault(
        `${argv[0]}: the Slurm job ${this.jobId} holding ${this.node} has ended (${lastSrunError(result.stderr)})`,
        FailureType.AllocationEnded,
      );
    const stderr = result.stderr
      .split('\n')
      .filter((line) => !SRUN_TASK_REPORT.test(line))
      .join('\n');
    return { ...result, stderr };
  }
}

/** A step of job `jobId` on `node`, sharing the job's resources with its batch step (--overlap). */
export function srunArgv(jobId: string, node: string, argv: readonly string[]): string[] {
  return [
    'srun',
    `--jobid=${jobId}`,
    '--overlap',
    '--nodes=1',
    '--ntasks=1',
    `--nodelist=${node}`,
    '--quiet',
    '--',
    ...argv,
  ];
}

function lastSrunError(stderr: string): string {
  return (
    stderr
      .split('\n')
      .filter((l) => l.startsWith('srun: error:'))
      .pop()
      ?.replace(/^srun: error:\s*/, '') ?? ''
  );
}

export function nodeAccessFor(profile: SiteProfile): NodeAccess {
  const wn = profile.workerNode;
  switch (wn.via) {
    case 'login':
      return onLogin(profile);
    case 'jump':
      return throughJumpHost(profile, wn);
    case 'slurm':
      return wn.access === 'srun' ? slurmBySteps(profile, wn) : slurmBySsh(profile, wn);
  }
}

// --- Slurm -------------------------------------------------------------------------------------------------

/** A holder job found in the queue (`squeue --format=%i|%T|%N|%L`). */
export interface SlurmJob {
  jobId: string;
  state: string;
  node: string;
  timeLeftMs?: number;
}

/**
 * The holder job: submitted from the login node (`sbatch --parsable`, the script on stdin), found again by its
 * name (the glidein id) so that a retried allocation never submits a second job, and released with `scancel`.
 */
export interface SlurmAllocation {
  /** The holder job's walltime and how long it may queue, for the plan. */
  readonly limits: { timeLimitMs: number; queueTimeoutMs: number };
  readonly holderScript: string;
  /**
   * sbatch for the glidein's holder job. Its walltime is `walltimeMs` (what the glidein's lifetime needs) within the
   * profile's `timeLimit`, or that limit: the job, and all it holds, ends by Slurm's clock even if no worker is left.
   */
  submitArgv(glideinId: string, walltimeMs?: number): string[];
  queueArgv(glideinId: string): string[];
  parseQueue(stdout: string): SlurmJob[];
  /** Still holding (or about to hold) a node: waiting, running, suspended, requeued. */
  isActive(job: SlurmJob): boolean;
  cancelArgv(jobIds: string[]): string[];
  /** Every job of this user in one look (the monitors' shared view of the queue), with its name. */
  queueAllArgv(): string[];
  /** The answer to queueAllArgv, by job name. */
  parseQueueAll(stdout: string): Map<string, SlurmJob[]>;
}

/** The holder job does nothing but hold the node; the glidein's processes join it over ssh. */
export const HOLDER_SCRIPT = `#!/bin/sh
# jsc-glidein holder job: keeps the node allocated for the glidein; as Slurm ends it, the pool credential goes too.
${REMOVE_CREDENTIALS_ON_END}
sleep infinity &
wait
`;

const ACTIVE = new Set([
  'PENDING',
  'CONFIGURING',
  'RUNNING',
  'RESIZING',
  'SUSPENDED',
  'REQUEUED',
  'REQUEUE_HOLD',
  'REQUEUE_FED',
]);

/** sbatch's --time: [D-]HH:MM:SS, at least a minute. */
export function slurmTime(ms: number): string {
  const total = Math.max(60, Math.floor(ms / 1000));
  const days = Math.floor(total / 86_400);
  const pad = (n: number) => String(n).padStart(2, '0');
  const hms = `${pad(Math.floor((total % 86_400) / 3600))}:${pad(Math.floor((total % 3600) / 60))}:${pad(total % 60)}`;
  return days > 0 ? `${days}-${hms}` : hms;
}

/** squeue's %L: [D-]HH:MM:SS, MM:SS, or UNLIMITED / NOT_SET / INVALID. */
export function parseSlurmTime(text: string): number | undefined {
  const m = /^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$/.exec(text.trim());
  if (!m) return undefined;
  const [, d = '0', h = '0', min, s] = m;
  return (((Number(d) * 24 + Number(h)) * 60 + Number(min)) * 60 + Number(s)) * 1000;
}

/** `squeue --me --name=<glidein id> --noheader --format=%i|%T|%N|%L`: one job a line, COMPLETING ones included. */
export function parseSqueue(stdout: string): SlurmJob[] {
  return stdout
    .split('\n')
    .map((l) => l.trim().split('|'))
    .filter((f) => f.length === 4 && /^\d+$/.test(f[0]))
    .map(([jobId, state, node, left]) => ({ jobId, state, node, timeLeftMs: parseSlurmTime(left) }));
}

/**
 * `squeue --me --noheader --format=%i|%T|%N|%L|%j`: every job, by name. The name comes last and may hold `|`
 * (other jobs of the account are not ours to name).
 */
export function parseSqueueAll(stdout: string): Map<string, SlurmJob[]> {
  const byName = new Map<string, SlurmJob[]>();
  for (const line of stdout.split('\n')) {
    const fields = line.trim().split('|');
    if (fields.length < 5 || !/^\d+$/.test(fields[0])) continue;
    const [jobId, state, node, left, ...name] = fields;
    const key = name.join('|');
    const job = { jobId, state, node, timeLeftMs: parseSlurmTime(left) };
    byName.set(key, [...(byName.get(key) ?? []), job]);
  }
  return byName;
}

function slurmAllocation(profile: SiteProfile, wn: Slurm, holderScript: string): SlurmAllocation {
  return {
    limits: { timeLimitMs: parseDuration(wn.timeLimit), queueTimeoutMs: parseDuration(wn.queueTimeout) },
    holderScript,
    submitArgv(glideinId, walltimeMs) {
      const dir = pathsFor(profile, glideinId).dir;
      const limitMs = parseDuration(wn.timeLimit);
      return [
        'sbatch',
        '--parsable',
        `--job-name=${glideinId}`,
        `--partition=${wn.partition}`,
        ...(wn.account ? [`--account=${wn.account}`] : []),
        ...(wn.qos ? [`--qos=${wn.qos}`] : []),
        ...(wn.reservation ? [`--reservation=${wn.reservation}`] : []),
        `--time=${slurmTime(walltimeMs === undefined ? limitMs : Math.min(limitMs, walltimeMs))}`,
        '--nodes=1',
        '--ntasks=1',
        ...(wn.cpusPerTask ? [`--cpus-per-task=${wn.cpusPerTask}`] : []),
        ...(wn.memory ? [`--mem=${wn.memory}`] : []),
        `--chdir=${dir}`,
        `--output=${dir}/slurm-%j.out`,
      ];
    },
    queueArgv: (glideinId) => ['squeue', '--me', '--noheader', `--name=${glideinId}`, '--format=%i|%T|%N|%L'],
    parseQueue: parseSqueue,
    isActive: (job) => ACTIVE.has(job.state),
    cancelArgv: (jobIds) => ['scancel', ...jobIds],
    queueAllArgv: () => ['squeue', '--me', '--noheader', '--format=%i|%T|%N|%L|%j'],
    parseQueueAll: parseSqueueAll,
  };
}
