/**
 * Resolves a GlideinRef into the site profile, the executors for the login and worker node, and the paths of
 * the glidein's state on the site (<workDir>/<glideinId>/). Every step starts here.
 */
import { cancellationSignal, heartbeatWhile, log } from './kit';
import { FailureType, PermanentFault } from '../common/failure-types';
import { instanceName } from '../common/naming';
import { glideinId, hostname, siteName } from '../common/validation';
import { ensureOwnership } from './ownership';
import type { GlideinRef, UndoOutcome } from '../common/types';
import type { Executor, RunOptions } from '../remote/executor';
import { slurmJobId } from '../common/carried-state';
import {
  adaptersFor,
  NoNodeYet,
  type Allocated,
  type QueryContext,
  type SiteAdapters,
  type SiteExecutors,
} from '../site/adapters';
import { pathsFor, type GlideinPaths } from '../site/paths';
import type { SiteProfile } from '../site/profile';
import type { ActivityDeps } from './deps';

export { pathsFor, type GlideinPaths };

export interface SiteAccess extends SiteExecutors {
  ref: GlideinRef;
  profile: SiteProfile;
  /** The profile's choices: node access, tunnel shape, container runtime, cvmfs, chain, HTCondor. */
  adapters: SiteAdapters;
  /** False before Slurm has handed out a worker node: `node` then refuses every command. */
  nodeAllocated: boolean;
  paths: GlideinPaths;
  instance: string;
  /** This glidein's SOCKS port: the one its tunnel leased (ref.socksPort), or the profile's only one. */
  socksPort: number;
  /** Options for every command of this activity: cancellation from the activity, a timeout. */
  opts(extra?: RunOptions): RunOptions;
}

/** The login node's and the worker node's executors over the worker's SSH pool, as the profile reaches them. */
export function sshExecutors(deps: ActivityDeps, profile: SiteProfile, allocated?: Allocated): SiteExecutors {
  return adaptersFor(profile).nodeAccess.executors(deps.ssh, allocated);
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
  if (ref.jobId !== undefined && !slurmJobId.safeParse(ref.jobId).success)
    throw bad('jobId', 'a Slurm job id', ref.jobId);
  const profile = await deps.sites.get(ref.site);
  const adapters = adaptersFor(profile);
  const { first, last } = adapters.tunnel.ports;
  if (
    ref.socksPort !== undefined &&
    !(Number.isInteger(ref.socksPort) && ref.socksPort >= first && ref.socksPort <= last)
  )
    throw bad('socksPort', `a port of tunnel.socksPorts ${first}-${last}`, ref.socksPort);
  const executors = deps.executorsFor
    ? deps.executorsFor(profile)
    : adapters.nodeAccess.executors(deps.ssh, { node: ref.node, jobId: ref.jobId });
  const signal = cancellationSignal();
  const login = new Heartbeating(executors.login, ref);
  const access: SiteAccess = {
    login,
    node: executors.node === executors.login ? login : new Heartbeating(executors.node, ref),
    ref,
    profile,
    adapters,
    nodeAllocated: !(executors.node instanceof NoNodeYet),
    paths: pathsFor(profile, ref.glideinId),
    instance: instanceName(ref.glideinId),
    socksPort: ref.socksPort ?? first,
    opts: (extra = {}) => ({ timeoutMs: 60_000, signal, ...extra }),
  };
  await Promise.all(
    directoryHosts(access).map(async (host) => {
      try {
        await ensureOwnership(host, access.paths.dir, ownership, access.opts());
      } catch (err) {
        // Releasing after the job has ended (srun access): the node is out of reach, the login node still ours.
        if (!(ownership === 'verify' && host === access.node && isAllocationEnded(err))) throw err;
        access.nodeAllocated = false;
      }
    }),
  );
  return access;
}

/** The Slurm job holding the node has ended (a step into it was refused). */
export function isAllocationEnded(err: unknown): err is PermanentFault {
  return err instanceof PermanentFault && err.type === FailureType.AllocationEnded;
}

/**
 * A release on the worker node (stopping the glidein, the instance, the tunnel there): when the Slurm job that
 * held the node has ended (srun access: its steps cannot start any more), what ran in the job ended with it, so
 * there is nothing left to release there. Any other failure is the release's own.
 */
export async function unlessAllocationEnded(body: () => Promise<UndoOutcome>): Promise<UndoOutcome> {
  try {
    return await body();
  } catch (err) {
    if (!isAllocationEnded(err)) throw err;
    return { detail: `${err.message}; what ran in it ended with it` };
  }
}

/** Where this glidein's registration queries run: in its instance on the worker node, through its chain. */
export function queryContext(access: SiteAccess): QueryContext {
  return { node: access.node, instance: access.instance, confFile: access.paths.proxychainsConf, opts: access.opts() };
}

/** The hosts that keep part of a glidein's directory (see SiteAdapters.directoryHosts). */
export function directoryHosts(access: SiteAccess): Executor[] {
  return access.adapters.directoryHosts(access, access.nodeAllocated);
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
    private readonly inner: Executor,
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
