/**
 * The batch system that hands out the worker node, where one does (`workerNode.via: slurm`): a holder job
 * submitted from the login node, found again by its name (the glidein id) so that a retried allocation never
 * submits a second job, and cancelled. Each kind is one file of this folder, and owns its commands and what their
 * output means, its job states, how a command enters a job's node, its job-id shape and node-name variable, its
 * part of `glidein site check`, and which of its refusals retrying cannot help. Node access (../node-access/) uses
 * it to reach the node; the allocation and monitor activities ask it about the queue.
 */
import type { SiteProfile } from '../profile';
import type { BatchSystem } from './batch-system';
import { slurmFor, SLURM_NODE_NAME } from './slurm';

/** The batch system of a profile, where its worker node is handed out by one. */
export function batchFor(profile: SiteProfile): BatchSystem | undefined {
  const wn = profile.workerNode;
  switch (wn.via) {
    case 'login':
    case 'jump':
      return undefined;
    case 'slurm':
      return slurmFor(profile, wn);
  }
}

/**
 * The environment variables in which a batch system names the node a command runs on in one of its jobs (as its
 * queue names it), for the scripts that key per-node state by it (../scripts/leases.ts): every kind's.
 */
export const NODE_NAME_VARIABLES: readonly string[] = [SLURM_NODE_NAME];

export type { BatchJob, BatchSystem, CheckRun } from './batch-system';
export {
  HOLDER_SCRIPT,
  parseSlurmTime,
  parseSqueue,
  parseSqueueAll,
  SBATCH_PERMANENT,
  SlurmStepExecutor,
  slurmTime,
  srunArgv,
} from './slurm';
