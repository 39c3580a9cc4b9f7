/**
 * Slurm, the batch system of JSC's sites: the holder job submitted with `sbatch --parsable` (the holder script on
 * stdin), found with `squeue --me --name=<glidein id>`, released with `scancel`; commands enter its node as
 * `srun --jobid=<job> --overlap` steps (JSC's psslurm runs no slurmd, so ssh into a job's node is very likely
 * refused); its job ids, SLURMD_NODENAME, `sinfo` for the site check, and what sbatch says when retrying cannot help.
 */
import { slurmJobId } from '../../common/carried-state';
import { parseDuration } from '../../common/duration';
import { FailureType, PermanentFault } from '../../common/failure-types';
import type { CommandResult, Executor, RunOptions } from '../../remote/executor';
import { withEnv } from '../../remote/quote';
import { firstPermanent, type PermanentRule } from '../failure-rules';
import { pathsFor, REMOVE_CREDENTIALS_ON_END } from '../paths';
import type { SiteProfile } from '../profile';
import type { BatchJob, BatchSystem } from './batch-system';
import { inJobArgv, SUPERVISOR_SCRIPT } from './slurm-supervisor';

type Slurm = Extract<SiteProfile['workerNode'], { via: 'slurm' }>;

/** The variable in which Slurm names the node a command of a job runs on (as squeue names it). */
export const SLURM_NODE_NAME = 'SLURMD_NODENAME';

/** What `sbatch` says when retrying cannot help: it refuses the holder job. */
export const SBATCH_PERMANENT: readonly PermanentRule[] = [
  {
    pattern: /invalid (partition|account|qos)|not available|Requested time limit is invalid|access denied/i,
    type: FailureType.AllocationRefused,
    fix: 'check workerNode.partition, account, qos and timeLimit against what the site grants',
  },
];

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

/** A holder job found in the queue (`squeue --format=%i|%T|%N|%L`). */
export type SlurmJob = BatchJob;

/** The holder job with ssh access does nothing but hold the node; the glidein's processes join it over ssh. */
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

/** Job states in which a holder job holds its node now. */
const HOLDING = new Set(['RUNNING', 'SUSPENDED', 'RESIZING']);

/**
 * Slurm as a profile's `workerNode` describes it. With srun access the holder job's batch script is the supervisor
 * that runs what must outlive a step (./slurm-supervisor.ts); with ssh access it only holds the node.
 */
export function slurmFor(profile: SiteProfile, wn: Slurm): BatchSystem {
  return {
    name: 'Slurm',
    commands: { submit: 'sbatch', queue: 'squeue', cancel: 'scancel' },
    outputFiles: 'slurm-*.out',
    limits: { timeLimitMs: parseDuration(wn.timeLimit), queueTimeoutMs: parseDuration(wn.queueTimeout) },
    holderScript: wn.access === 'srun' ? SUPERVISOR_SCRIPT : HOLDER_SCRIPT,
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
    isRunning: (job) => job.state === 'RUNNING',
    isHolding: (job) => HOLDING.has(job.state),
    isEnding: (job) => job.state === 'COMPLETING',
    cancelArgv: (jobIds) => ['scancel', ...jobIds],
    queueAllArgv: () => ['squeue', '--me', '--noheader', '--format=%i|%T|%N|%L|%j'],
    parseQueueAll: parseSqueueAll,
    stepExecutor: (login, jobId, node) => new SlurmStepExecutor(login, jobId, node),
    // The pattern lives on the ground floor: a carried state and a GlideinRef are checked against it in the workflow.
    isJobId: (id) => slurmJobId.safeParse(id).success,
    async checkPartition(login, run) {
      const out = await run(
        login,
        ['sinfo', '--noheader', '--partition', wn.partition, '--format', '%a %D'],
        `sinfo for partition ${wn.partition}`,
      );
      const line = out.trim().split('\n')[0] ?? '';
      if (!line) throw new Error(`Slurm knows no partition ${wn.partition} (sinfo printed nothing)`);
      if (!line.startsWith('up')) throw new Error(`partition ${wn.partition} is ${line.split(' ')[0]}`);
      return `Slurm partition ${wn.partition} is up (${line.split(' ')[1] ?? '?'} nodes)`;
    },
    permanentCause: (output, attempt) => firstPermanent(SBATCH_PERMANENT, output, attempt),
  };
}
