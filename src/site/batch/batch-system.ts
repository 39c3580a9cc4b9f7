/**
 * What a batch system is to the lifecycle (one kind per file beside this one; see index.ts for how one is chosen).
 */
import type { Executor } from '../../remote/executor';
import type { PermanentCause } from '../failure-rules';

/** A holder job found in the queue. */
export interface BatchJob {
  jobId: string;
  state: string;
  node: string;
  timeLeftMs?: number;
}

/** Runs argv on `exec` and answers its stdout, or throws a message naming `what` and what the command printed. */
export type CheckRun = (exec: Executor, argv: string[], what: string) => Promise<string>;

export interface BatchSystem {
  /** The batch system's name, for messages ("Slurm job 123"). */
  readonly name: string;
  /** The names of its submit, queue and cancel commands, for messages. */
  readonly commands: { readonly submit: string; readonly queue: string; readonly cancel: string };
  /** The holder job's walltime and how long it may queue, for the plan. */
  readonly limits: { timeLimitMs: number; queueTimeoutMs: number };
  /** The holder job's output files in the glidein's directory, as a shell pattern (for messages). */
  readonly outputFiles: string;
  /** The holder job's batch script, given to the submit command on stdin. */
  readonly holderScript: string;
  /**
   * The submit command for the glidein's holder job. Its walltime is `walltimeMs` (what the glidein's lifetime
   * needs) within the profile's limit, or that limit: the job, and all it holds, ends by the batch system's clock
   * even if no worker is left.
   */
  submitArgv(glideinId: string, walltimeMs?: number): string[];
  queueArgv(glideinId: string): string[];
  parseQueue(stdout: string): BatchJob[];
  /** Still holding (or about to hold) a node: waiting, running, suspended, requeued. */
  isActive(job: BatchJob): boolean;
  /** Running on its node: the node is handed out. */
  isRunning(job: BatchJob): boolean;
  /** Holding its node now (running, or suspended on it). */
  isHolding(job: BatchJob): boolean;
  /** Leaving the queue by itself: cancelling it again does nothing. */
  isEnding(job: BatchJob): boolean;
  cancelArgv(jobIds: string[]): string[];
  /** Every job of this user in one look (the monitors' shared view of the queue), with its name. */
  queueAllArgv(): string[];
  /** The answer to queueAllArgv, by job name. */
  parseQueueAll(stdout: string): Map<string, BatchJob[]>;
  /**
   * Commands on the node of job `jobId`, each entering the job from the login node; a command that leaves
   * processes behind (RunOptions.persists) is handed to the job's supervisor (the holder script). Answers as if it
   * ran on the node, and fails as AllocationEnded once the job is gone.
   */
  stepExecutor(login: Executor, jobId: string, node: string): Executor;
  /** Whether `id` has the shape of this batch system's job ids. */
  isJobId(id: string): boolean;
  /** `glidein site check`: the profile's partition (queue) is there and up; what was found, or throws. */
  checkPartition(login: Executor, run: CheckRun): Promise<string>;
  /** Whether what the submit command printed says retrying cannot help. */
  readonly permanentCause: PermanentCause;
}
