/**
 * Node access `workerNode.via: slurm`, `access: srun`: the node of a batch system's holder job, reached by steps
 * started in the job from the login node (Slurm: `srun --jobid=<job> --overlap`; JSC's psslurm runs no slurmd, so
 * ssh into a job's node is very likely refused). The holder job's batch script is the supervisor that runs what
 * must outlive a step (src/site/batch/slurm-supervisor.ts). No sshd on the node is used.
 */
import type { BatchSystem } from '../batch';
import type { SiteProfile } from '../profile';
import { loginTarget, NoNodeYet, type NodeAccess } from './node-access';

export function batchNodeBySteps(profile: SiteProfile, batch: BatchSystem): NodeAccess {
  return {
    executors(ssh, allocated) {
      const login = ssh.executor(loginTarget(profile));
      const { node, jobId } = allocated ?? {};
      return { login, node: node && jobId ? batch.stepExecutor(login, jobId, node) : new NoNodeYet() };
    },
    nodeAddress: () => undefined,
    directoryOnLogin: true,
    allocation: batch,
    async check({ login }, run) {
      return `${await batch.checkPartition(login, run)}, node reached by srun once allocated`;
    },
  };
}
