/**
 * The points where sites differ, each one small adapter picked once per profile (after COBalD/TARDIS's site
 * adapters), each point a folder of src/site/ with one file per kind and an index.ts that picks the kind: how
 * commands reach the worker node (node-access/), the batch system that hands it out (batch/), the tunnel's shape
 * (tunnel/), the container runtime (container/), how /cvmfs appears (cvmfs/), the proxy chain (chain/) and
 * HTCondor (condor/). The activities talk to these and never branch on the profile's choices themselves.
 */
import type { Executor } from '../remote/executor';
import type { GlideinPaths } from './paths';
import type { SiteProfile } from './profile';
import { condorFor, GLIDEIN_START_PERMANENT, type Condor } from './condor';
import { containerFor, INSTANCE_START_PERMANENT, type ContainerRuntime } from './container';
import { cvmfsFor, MOUNTREPO_PERMANENT, type CvmfsProvider } from './cvmfs';
import { SBATCH_PERMANENT, type BatchSystem } from './batch';
import { firstPermanent, type PermanentRule } from './failure-rules';
import { nodeAccessFor, type NodeAccess, type SiteExecutors } from './node-access';
import { proxyChainFor, type ProxyChain } from './chain';
import { tunnelFor, TUNNEL_SSH_PERMANENT, type TunnelShape } from './tunnel';

export interface SiteAdapters {
  nodeAccess: NodeAccess;
  /** The batch system that hands out the worker node, where one does (the node access's). */
  batch?: BatchSystem;
  tunnel: TunnelShape;
  container: ContainerRuntime;
  cvmfs: CvmfsProvider;
  chain: ProxyChain;
  condor: Condor;
  /**
   * `instance start` for the glidein's container, contained, with only what its daemons need bound: /cvmfs, the
   * proxychains library, the glidein's config/ (read-only) and condor/ (read-write), and the profile's own binds.
   */
  instanceStartArgv(instance: string, paths: GlideinPaths): string[];
  /**
   * The hosts that keep part of a glidein's directory: the worker node once there is one, and the login node
   * where the tunnel's ssh or the node's allocation keeps files there.
   */
  directoryHosts(executors: SiteExecutors, nodeAllocated: boolean): Executor[];
}

/** A value made on first use, then kept. */
function once<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => (made ??= { value: make() }).value;
}

/**
 * The adapters a profile chooses. Cheap (no I/O, nothing held) and each made on first use, so built for each
 * activity from the profile as it is then, rather than cached beside a profile object a test may have changed.
 */
export function adaptersFor(profile: SiteProfile): SiteAdapters {
  const nodeAccess = once(() => nodeAccessFor(profile));
  const tunnel = once(() => tunnelFor(profile, nodeAccess()));
  const container = once(() => containerFor(profile));
  const cvmfs = once(() => cvmfsFor(profile));
  const chain = once(() => proxyChainFor(profile, container(), (port) => tunnel().describe(port)));
  const condor = once(() => condorFor(profile, container(), chain()));
  return {
    get nodeAccess() {
      return nodeAccess();
    },
    get batch() {
      return nodeAccess().allocation;
    },
    get tunnel() {
      return tunnel();
    },
    get container() {
      return container();
    },
    get cvmfs() {
      return cvmfs();
    },
    get chain() {
      return chain();
    },
    get condor() {
      return condor();
    },
    instanceStartArgv(instance, paths) {
      const library = profile.proxychains.library;
      return container().startArgv(
        instance,
        [
          cvmfs().containerBind,
          `${library}:${library}:ro`,
          `${paths.configDir}:${paths.configDir}:ro`,
          `${paths.condorLocal}:${paths.condorLocal}:rw`,
          ...profile.container.binds,
        ],
        paths.scratchDir,
      );
    },
    directoryHosts({ login, node }, nodeAllocated) {
      const hosts: Executor[] = nodeAllocated ? [node] : [];
      if (login !== node && (tunnel().directoryOnLogin || nodeAccess().directoryOnLogin)) hosts.push(login);
      return hosts;
    },
  };
}

/**
 * Every site tool's failure rules, by tool, each list kept by the adapter of the tool it reads (the activities ask
 * that adapter): one view of them all, for the tests and the docs.
 */
export const PERMANENT_OUTPUT = {
  /** `sbatch` refusing the holder job (../batch/slurm.ts). */
  sbatch: SBATCH_PERMANENT,
  /** `mountrepo` of cvmfsexec (./cvmfs.ts). */
  mountrepo: MOUNTREPO_PERMANENT,
  /** `apptainer|singularity instance start` (./container.ts). */
  instanceStart: INSTANCE_START_PERMANENT,
  /** The glidein's start command inside the instance (./condor.ts). */
  glideinStart: GLIDEIN_START_PERMANENT,
  /** The tunnel's own `ssh` on the site (./tunnel.ts). */
  tunnelSsh: TUNNEL_SSH_PERMANENT,
} as const satisfies Record<string, readonly PermanentRule[]>;

export type ToolName = keyof typeof PERMANENT_OUTPUT;

/**
 * The rule `output` of `tool` matches, if it says the failure is permanent at this attempt of the step (1 is the
 * first); undefined: retry. The same answer as the tool's adapter's `permanentCause`.
 */
export function permanentCause(tool: ToolName, output: string, attempt = 1): PermanentRule | undefined {
  return firstPermanent(PERMANENT_OUTPUT[tool], output, attempt);
}

export type { PermanentCause, PermanentRule } from './failure-rules';
export type { Condor, QueryContext, RegistrationCheck, Retirement } from './condor';
export { GLIDEIN_SETTLE_MS, condorConfig, parseAutoformat, parseLaunchedAds } from './condor';
export type { ContainerRuntime, InstanceInfo } from './container';
export type { CvmfsProvider } from './cvmfs';
export { cvmfsMountRoot, leaseRoot } from './cvmfs';
export type { BatchJob, BatchSystem } from './batch';
export { parseSlurmTime, parseSqueue, parseSqueueAll, SlurmStepExecutor, slurmTime, srunArgv } from './batch';
export type { Allocated, NodeAccess, NodeAddress, SiteExecutors } from './node-access';
export { NoNodeYet } from './node-access';
export type { ChainReport, Hop, ProxyChain } from './chain';
export { parseChainReport, renderProxychainsConf } from './chain';
export type { TunnelCheck, TunnelShape } from './tunnel';
export { isTunnelProcess, relayEnd } from './tunnel';
