/**
 * The container the glidein runs in: an apptainer (or singularity) instance with /cvmfs bind-mounted from
 * cvmfsexec's mount point, the proxychains library and the glidein's work directory.
 */
import type { GlideinRef, UndoOutcome } from '../common/types';
import { lastLines, runChecked, type Executor, type RunOptions } from '../remote/executor';
import type { SiteProfile } from '../site/profile';
import type { ActivityDeps } from './deps';
import { PermanentFault, asStep } from './failures';
import { siteAccess } from './site-access';
import { permanentCause } from './classify';

export interface ContainerRuntime {
  executable: string;
  /** Variables with this prefix in exec's environment are set inside the container, prefix removed. */
  envPrefix: string;
}

export function containerRuntime(profile: SiteProfile): ContainerRuntime {
  const { runtime, executable } = profile.container;
  return {
    executable: executable ?? runtime,
    envPrefix: runtime === 'apptainer' ? 'APPTAINERENV_' : 'SINGULARITYENV_',
  };
}

export function cvmfsMountRoot(profile: SiteProfile): string {
  return `${profile.cvmfs.cvmfsexecDir}/dist/cvmfs`;
}

export function instanceStartArgv(profile: SiteProfile, instance: string, workDir: string): string[] {
  const binds = [
    `${cvmfsMountRoot(profile)}:/cvmfs`,
    `${profile.proxychains.library}:${profile.proxychains.library}:ro`,
    `${workDir}:${workDir}`,
    ...profile.container.binds,
  ];
  return [
    containerRuntime(profile).executable,
    'instance',
    'start',
    ...binds.flatMap((b) => ['--bind', b]),
    profile.container.image,
    instance,
  ];
}

interface InstanceListing {
  instances?: Array<{ instance: string; pid: number; img: string }>;
}

/** The running instance of that name, from `instance list --json`. */
export async function findInstance(exec: Executor, profile: SiteProfile, instance: string, opts: RunOptions) {
  const result = await runChecked(
    exec,
    'listing container instances',
    [containerRuntime(profile).executable, 'instance', 'list', '--json', instance],
    opts,
  );
  let listing: InstanceListing;
  try {
    listing = JSON.parse(result.stdout || '{}') as InstanceListing;
  } catch {
    throw new Error(`instance list --json printed something that is not JSON: ${result.stdout.slice(0, 200)}`);
  }
  return listing.instances?.find((i) => i.instance === instance);
}

export function createContainerActivities(deps: ActivityDeps) {
  return {
    async startContainer(ref: GlideinRef): Promise<{ instance: string; pid: number; reused: boolean }> {
      return asStep('startContainer', async () => {
        const access = await siteAccess(deps, ref, 'claim');
        const { profile, node, instance } = access;
        const running = await findInstance(node, profile, instance, access.opts());
        if (running) return { instance, pid: running.pid, reused: true };
        const result = await node.run(
          instanceStartArgv(profile, instance, access.paths.dir),
          access.opts({ timeoutMs: 120_000 }),
        );
        if (result.code !== 0) {
          const why = lastLines(result.stderr || result.stdout, 3);
          const permanent = permanentCause('instanceStart', why);
          if (permanent) {
            throw new PermanentFault(
              `container.image ${profile.container.image} could not start as ${instance} on ${node.target}: ${why}`,
              permanent.type,
            );
          }
          throw new Error(
            `${containerRuntime(profile).executable} instance start ${instance} (image ${profile.container.image}) failed on ${node.target}: ${why}`,
          );
        }
        const started = await findInstance(node, profile, instance, access.opts());
        if (!started) throw new Error(`instance ${instance} reported started but is not listed on ${node.target}`);
        return { instance, pid: started.pid, reused: false };
      });
    },

    async stopContainer(ref: GlideinRef): Promise<UndoOutcome> {
      return asStep('stopContainer', async () => {
        const access = await siteAccess(deps, ref);
        const { profile, node, instance } = access;
        const running = await findInstance(node, profile, instance, access.opts());
        if (!running) return { detail: `no instance ${instance} running` };
        const result = await node.run(
          [containerRuntime(profile).executable, 'instance', 'stop', instance],
          access.opts({ timeoutMs: 60_000 }),
        );
        if (result.code !== 0 && (await findInstance(node, profile, instance, access.opts()))) {
          throw new Error(`instance stop ${instance} failed on ${node.target}: ${lastLines(result.stderr, 3)}`);
        }
        return { detail: `stopped instance ${instance} (pid ${running.pid})` };
      });
    },
  };
}
