/**
 * Node access `workerNode.via: slurm`, `access: ssh`: the node of a batch system's holder job, reached by ssh
 * through the login node (Slurm's pam_slurm_adopt puts us in the job).
 */
import type { BatchSystem } from '../batch';
import type { SiteProfile } from '../profile';
import { loginTarget, NoNodeYet, type NodeAccess } from './node-access';

export function batchNodeBySsh(
  profile: SiteProfile,
  batch: BatchSystem,
  wn: { port: number; user?: string },
): NodeAccess {
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
    allocation: batch,
    async check({ login }, run) {
      return `${await batch.checkPartition(login, run)}, node reached by ssh once allocated`;
    },
  };
}
