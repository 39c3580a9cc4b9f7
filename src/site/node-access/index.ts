/**
 * How commands reach the worker node (`workerNode.via`), one kind per file: on the login node itself (login.ts),
 * through the login node as a jump host (jump.ts), or on the node a batch system's holder job hands out, by ssh
 * (batch-ssh.ts) or by steps in the job (batch-steps.ts). The batch system itself is ../batch/'s.
 */
import { batchFor } from '../batch';
import type { SiteProfile } from '../profile';
import { batchNodeBySsh } from './batch-ssh';
import { batchNodeBySteps } from './batch-steps';
import { throughJumpHost } from './jump';
import { onLogin } from './login';
import type { NodeAccess } from './node-access';

export function nodeAccessFor(profile: SiteProfile): NodeAccess {
  const wn = profile.workerNode;
  switch (wn.via) {
    case 'login':
      return onLogin(profile);
    case 'jump':
      return throughJumpHost(profile, wn);
    case 'slurm': {
      const batch = batchFor(profile)!;
      return wn.access === 'srun' ? batchNodeBySteps(profile, batch) : batchNodeBySsh(profile, batch, wn);
    }
  }
}

export type { Allocated, NodeAccess, NodeAddress, SiteExecutors } from './node-access';
export { loginTarget, NoNodeYet } from './node-access';
