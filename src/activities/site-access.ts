/**
 * Resolves a GlideinRef into the site profile, the executors for the login and worker node, and the paths of
 * the glidein's state on the site (<workDir>/<glideinId>/). Every step starts here.
 */
import { cancellationSignal, heartbeatWhile, log } from './kit';
import { FailureType } from '../common/failure-types';
import { instanceName } from '../common/naming';
import { glideinId, hostname, siteName } from '../common/validation';
import { PermanentFault } from './failures';
import { ensureOwnership } from './ownership';
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
      return {
        login,
        node: deps.ssh.executor({
          ...loginTarget,
          host: wn.host,
          port: wn.port,
          user: wn.user ?? profile.login.user,
          jump: loginTarget,
        }),
      };
    case 'slurm':
      return {
        login,
        node: node
          ? deps.ssh.executor({
              ...loginTarget,
              host: node,
              port: wn.port,
              user: wn.user ?? profile.login.user,
              jump: loginTarget,
            })
          : new NoNodeYet(),
      };
  }
}

/** Stands for the worker node before Slurm has handed one out: any command is a bug in the lifecycle. */
class NoNodeYet implements Executor {
  readonly target = 'the worker node (not allocated yet)';
  run(argv: readonly string[]): Promise<never> {
    return Promise.reject(
      new PermanentFault(`${argv[0]}: no worker node is allocated for this glidein yet`, FailureType.NoNodeAllocated),
    );
  }
}

/**
 * Every activity starts here. The ref is checked again (the workflow validated it; an activity trusts no
 * caller), then the glidein's directory is claimed for this workflow (`claim`: steps that acquire) or its claim
 * checked (`verify`: monitoring and the inverses) on each host that keeps part of it, before any other command.
 */
export async function siteAccess(
  deps: ActivityDeps,
  ref: GlideinRef,
  ownership: 'claim' | 'verify' = 'verify',
): Promise<SiteAccess> {
  const bad = (field: string, what: string, value: unknown) =>
    new PermanentFault(`${field}: ${JSON.stringify(value)} is not ${what}`, FailureType.InvalidRequest);
  if (!siteName.safeParse(ref?.site).success) throw bad('site', 'a site name', ref?.site);
  if (!glideinId.safeParse(ref.glideinId).success) throw bad('glideinId', 'a glidein id', ref.glideinId);
  if (ref.node !== undefined && !hostname.safeParse(ref.node).success) throw bad('node', 'a host name', ref.node);
  const profile = await deps.sites.get(ref.site);
  const executors = deps.executorsFor ? deps.executorsFor(profile) : sshExecutors(deps, profile, ref.node);
  const signal = cancellationSignal();
  const login = new Heartbeating(executors.login, ref);
  const access: SiteAccess = {
    login,
    node: executors.node === executors.login ? login : new Heartbeating(executors.node, ref),
    ref,
    profile,
    paths: pathsFor(profile, ref.glideinId),
    instance: instanceName(ref.glideinId),
    opts: (extra = {}) => ({ timeoutMs: 60_000, signal, ...extra }),
  };
  await Promise.all(
    directoryHosts(access).map((host) => ensureOwnership(host, access.paths.dir, ownership, access.opts())),
  );
  return access;
}

/** The hosts that keep part of a glidein's directory: the worker node, and the login node where it runs the tunnel or Slurm. */
export function directoryHosts(access: SiteAccess): Executor[] {
  const hosts: Executor[] = [];
  if (
    !(access.node instanceof Heartbeating && access.node.inner instanceof NoNodeYet) &&
    !(access.node instanceof NoNodeYet)
  )
    hosts.push(access.node);
  const { profile } = access;
  if (access.login !== access.node && (profile.tunnel.mode === 'reverse' || profile.workerNode.via === 'slurm'))
    hosts.push(access.login);
  return hosts;
}

const HEARTBEAT_WHILE_RUNNING_MS = 5_000;
/**
 * Heartbeats (with the activity's latest details) while a site command runs, so that a slow command (an image
 * pulled by `instance start`, a repository's first mount) never looks like a lost worker, and the heartbeat
 * timeouts can stay short enough for a crashed worker's activity to be retried soon.
 */
class Heartbeating implements Executor {
  readonly target: string;
  constructor(
    readonly inner: Executor,
    private readonly ref: GlideinRef,
  ) {
    this.target = inner.target;
  }
  async run(argv: readonly string[], options?: RunOptions) {
    const started = Date.now();
    // Every site command's outcome goes to the worker's log (debug; transport failures as warnings), with the
    // glidein and site beside the workflow and activity ids the SDK's activity logger adds. Never its output.
    const fields = { site: this.ref.site, glideinId: this.ref.glideinId, host: this.target, command: argv[0] };
    try {
      const result = await heartbeatWhile(HEARTBEAT_WHILE_RUNNING_MS, () => this.inner.run(argv, options));
      log.debug('site command', { ...fields, code: result.code, ms: Date.now() - started });
      return result;
    } catch (err) {
      log.warn('site command failed', {
        ...fields,
        ms: Date.now() - started,
        error: err instanceof Error ? err.message : String(err),
      });
      throw err;
    }
  }
}
