/**
 * Resolves a GlideinRef into the site profile, the executors for the login and worker node, and the paths of
 * the glidein's state on the site (<workDir>/<glideinId>/). Every step starts here.
 */
import { Context } from '@temporalio/activity';
import { instanceName } from '../common/naming';
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
  cvmfsIntent: string;
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
    cvmfsIntent: `${dir}/cvmfs.repos`,
    glideinPid: `${dir}/glidein.pid`,
    glideinLog: `${dir}/glidein.log`,
    condorLocal: `${dir}/condor`,
  };
}


export function sshExecutors(deps: ActivityDeps, profile: SiteProfile): SiteExecutors {
  const loginTarget: SshTarget = {
    host: profile.login.host,
    port: profile.login.port,
    user: profile.login.user,
    identityFile: profile.login.identityFile,
    knownHostsFile: profile.login.knownHostsFile,
  };
  const login = deps.ssh.executor(loginTarget);
  const node: Executor =
    profile.workerNode.via === 'login'
      ? login
      : deps.ssh.executor({ ...loginTarget, host: profile.workerNode.host, port: profile.workerNode.port, user: profile.workerNode.user ?? profile.login.user, jump: loginTarget });
  return { login, node };
}

export async function siteAccess(deps: ActivityDeps, ref: GlideinRef): Promise<SiteAccess> {
  const profile = await deps.sites.get(ref.site);
  const executors = deps.executorsFor ? deps.executorsFor(profile) : sshExecutors(deps, profile);
  const signal = activitySignal();
  return {
    ...executors,
    ref,
    profile,
    paths: pathsFor(profile, ref.glideinId),
    instance: instanceName(ref.glideinId),
    opts: (extra = {}) => ({ timeoutMs: 60_000, signal, ...extra }),
  };
}

function activitySignal(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined; // called outside an activity (unit tests)
  }
}

export function heartbeat(details?: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // outside an activity
  }
}
