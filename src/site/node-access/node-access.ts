/**
 * What node access is to the lifecycle (one kind per file beside this one; index.ts picks one per profile).
 */
import { FailureType, PermanentFault } from '../../common/failure-types';
import type { Executor } from '../../remote/executor';
import type { SshPool, SshTarget } from '../../remote/ssh';
import type { BatchSystem, CheckRun } from '../batch';
import type { SiteProfile } from '../profile';

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

/** What a batch system's allocation handed out: the node, and the job that holds it. */
export interface Allocated {
  node?: string;
  jobId?: string;
}

export interface NodeAccess {
  /** The login node's executor and the worker node's (where a batch system hands it out, the node of `allocated`). */
  executors(ssh: SshPool, allocated?: Allocated): SiteExecutors;
  /** The worker node's sshd as the login node reaches it; undefined when there is none (yet) to reach, or none. */
  nodeAddress(node?: string): NodeAddress | undefined;
  /** The login node keeps part of the glidein's directory (a batch job's output). */
  readonly directoryOnLogin: boolean;
  /** The batch system that hands out the worker node, where one does: the node exists only once it allocates it. */
  readonly allocation?: BatchSystem;
  /** `glidein site check`: the way to the worker node works, as far as it can be tried yet (what was found). */
  check(executors: SiteExecutors, run: CheckRun): Promise<string>;
}

/** Stands for the worker node before the batch system has handed one out: any command is a bug in the lifecycle. */
export class NoNodeYet implements Executor {
  readonly target = 'the worker node (not allocated yet)';
  run(argv: readonly string[]): Promise<never> {
    return Promise.reject(
      new PermanentFault(`${argv[0]}: no worker node is allocated for this glidein yet`, FailureType.NoNodeAllocated),
    );
  }
}

/** The profile's login node, as ssh reaches it. */
export function loginTarget(profile: SiteProfile): SshTarget {
  const { login } = profile;
  return {
    host: login.host,
    port: login.port,
    user: login.user,
    identityFile: login.identityFile,
    knownHostsFile: login.knownHostsFile,
  };
}
