/**
 * The container the glidein runs in: a contained instance of the profile's runtime (src/site/container/)
 * with /cvmfs, the proxychains library and the parts of the glidein's directory its daemons need bound, and
 * nothing else of the glidein's directory (src/site/paths.ts).
 */
import { PermanentFault } from '../common/failure-types';
import type { GlideinRef, UndoOutcome } from '../common/types';
import { lastLines, runChecked, type Executor, type RunOptions } from '../remote/executor';
import type { ContainerRuntime } from '../site/adapters';
import type { ActivityDeps } from './deps';
import { asStep } from './to-failure';
import { siteAccess, unlessAllocationEnded } from './site-access';

/** The running instance of that name, from `instance list --json`. */
async function findInstance(exec: Executor, runtime: ContainerRuntime, instance: string, opts: RunOptions) {
  const result = await runChecked(exec, 'listing container instances', runtime.listArgv(instance), opts);
  return runtime.parseList(result.stdout, instance);
}

export function createContainerActivities(deps: ActivityDeps) {
  return {
    async startContainer(ref: GlideinRef): Promise<{ instance: string; pid: number; reused: boolean }> {
      return asStep('startContainer', async () => {
        const access = await siteAccess(deps, ref, 'claim');
        const { profile, node, instance, adapters } = access;
        const runtime = adapters.container;
        const running = await findInstance(node, runtime, instance, access.opts());
        if (running) return { instance, pid: running.pid, reused: true };
        // A bind's source must exist when the instance starts; only the glidein's uid may enter them.
        const { configDir, condorLocal, scratchDir } = access.paths;
        await runChecked(
          node,
          'creating the directories the container binds',
          ['mkdir', '-p', '-m', '0700', '--', configDir, condorLocal, scratchDir],
          access.opts(),
        );
        const result = await node.run(
          adapters.instanceStartArgv(instance, access.paths),
          // The instance's processes live as long as the glidein: on a Slurm-steps site, in the holder job.
          access.opts({ timeoutMs: 120_000, persists: true }),
        );
        if (result.code !== 0) {
          const why = lastLines(result.stderr || result.stdout, 3);
          const permanent = runtime.permanentCause(why);
          if (permanent) {
            throw new PermanentFault(
              `container.image ${profile.container.image} could not start as ${instance} on ${node.target}: ${why}`,
              permanent.type,
            );
          }
          throw new Error(
            `${runtime.executable} instance start ${instance} (image ${profile.container.image}) failed on ` +
              `${node.target}: ${why}`,
          );
        }
        const started = await findInstance(node, runtime, instance, access.opts());
        if (!started) throw new Error(`instance ${instance} reported started but is not listed on ${node.target}`);
        return { instance, pid: started.pid, reused: false };
      });
    },

    async stopContainer(ref: GlideinRef): Promise<UndoOutcome> {
      return asStep('stopContainer', async () => {
        const access = await siteAccess(deps, ref);
        const { node, instance } = access;
        const runtime = access.adapters.container;
        return unlessAllocationEnded(async () => {
          const running = await findInstance(node, runtime, instance, access.opts());
          if (!running) return { detail: `no instance ${instance} running` };
          const result = await node.run(runtime.stopArgv(instance), access.opts({ timeoutMs: 60_000 }));
          if (result.code !== 0 && (await findInstance(node, runtime, instance, access.opts()))) {
            throw new Error(`instance stop ${instance} failed on ${node.target}: ${lastLines(result.stderr, 3)}`);
          }
          return { detail: `stopped instance ${instance} (pid ${running.pid})` };
        });
      });
    },
  };
}
