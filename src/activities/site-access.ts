/**
 * Resolves a GlideinRef into the site profile, the executors for the login and worker node, and the paths of
 * the glidein's state on the site (<workDir>/<glideinId>/). Every step starts here.
 */
import { Context } from '@temporalio/activity';
import { instanceName } from '../common/naming';
import { hostname } from '../common/validation';
import { PermanentFault } from './failures';
import type { GlideinRef } from '../common/types';
import type { Executor, RunOptions } from '../remote/executor';
import type { SshTarget } from '../remote/ssh';
import type { SiteProfile } from '../site/profile';
import type { ActivityDeps, SiteExecutors } from './deps';

export interface GlideinPaths {
  dir: string;
  tunnelPid: string;
  tunnelLog: string;
  proxychainsConf: string;
  glideinPid: string;
  glideinLog: string;
  condorLocal: string;
}

export interface SiteAccess extends SiteExecutors {
  ref: GlideinRef;
  profile: SiteProfile;
  paths: GlideinPaths;
  instance: string;
  /** Options for every command of this activity: cancellation from the activity, a timeout. */
  opts(extra?: RunOptions): RunOptions;
}

export function pathsFor(profile: SiteProfile, glideinId: string): GlideinPaths {
  const dir = `${profile.workDir}/${glideinId}`;
  return {
    dir,
    tunnelPid: `${dir}/tunnel.pid`,
    tunnelLog: `${dir}/tunnel.log`,
    proxychainsConf: `${dir}/proxychains.conf`,
    glideinPid: `${dir}/glidein.pid`,
    glideinLog: `${dir}/glidein.log`,
    condorLocal: `${dir}/condor`,
  };
}


export function sshExecutors(deps: ActivityDeps, profile: SiteProfile, node?: string): SiteExecutors {
  const loginTarget: SshTarget = {
    host: profile.login.host,
    port: profile.login.port,
    user: profile.login.user,
    identityFile: profile.login.identityFile,
    knownHostsFile: profile.login.knownHostsFile,
  };
  const login = deps.ssh.executor(loginTarget);
  const wn = profile.workerNode;
  switch (wn.via) {
    case 'login':
      return { login, node: login };
    case 'jump':
      return { login, node: deps.ssh.executor({ ...loginTarget, host: wn.host, port: wn.port, user: wn.user ?? profile.login.user, jump: loginTarget }) };
    case 'slurm':
      return { login, node: node ? deps.ssh.executor({ ...loginTarget, host: node, port: wn.port, user: wn.user ?? profile.login.user, jump: loginTarget }) : new NoNodeYet() };
  }
}

/** Stands for the worker node before Slurm has handed one out: any command is a bug in the lifecycle. */
class NoNodeYet implements Executor {
  readonly target = 'the worker node (not allocated yet)';
  run(argv: readonly string[]): Promise<never> {
    return Promise.reject(new PermanentFault(`${argv[0]}: no worker node is allocated for this glidein yet`, 'NoNodeAllocated'));
  }
}

export async function siteAccess(deps: ActivityDeps, ref: GlideinRef): Promise<SiteAccess> {
  const profile = await deps.sites.get(ref.site);
  if (ref.node !== undefined && !hostname.safeParse(ref.node).success) throw new PermanentFault(`node: ${JSON.stringify(ref.node)} is not a host name`, 'InvalidRequest');
  const executors = deps.executorsFor ? deps.executorsFor(profile) : sshExecutors(deps, profile, ref.node);
  const signal = activitySignal();
  const login = new Heartbeating(executors.login);
  return {
    login,
    node: executors.node === executors.login ? login : new Heartbeating(executors.node),
    ref,
    profile,
    paths: pathsFor(profile, ref.glideinId),
    instance: instanceName(ref.glideinId),
    opts: (extra = {}) => ({ timeoutMs: 60_000, signal, ...extra }),
  };
}

const HEARTBEAT_WHILE_RUNNING_MS = 5_000;
const lastDetails = new WeakMap<object, unknown>();

/**
 * Heartbeats (with the activity's latest details) while a site command runs, so that a slow command (an image
 * pulled by `instance start`, a repository's first mount) never looks like a lost worker, and the heartbeat
 * timeouts can stay short enough for a crashed worker's activity to be retried soon.
 */
class Heartbeating implements Executor {
  readonly target: string;
  constructor(private readonly inner: Executor) {
    this.target = inner.target;
  }
  async run(argv: readonly string[], options?: RunOptions) {
    const context = activityContext();
    const timer = context ? setInterval(() => context.heartbeat(lastDetails.get(context)), HEARTBEAT_WHILE_RUNNING_MS) : undefined;
    try {
      return await this.inner.run(argv, options);
    } finally {
      if (timer) clearInterval(timer);
    }
  }
}

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

function activitySignal(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined; // called outside an activity (unit tests)
  }
}

export function heartbeat(details?: unknown): void {
  const context = activityContext();
  if (!context) return; // outside an activity
  lastDetails.set(context, details);
  context.heartbeat(details);
}
