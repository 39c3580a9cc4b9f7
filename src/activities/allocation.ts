/**
 * The worker node, the JSC way: a Slurm holder job submitted from the login node, found again by its name (the
 * glidein id) so that a retried allocation never submits a second job, waited for until RUNNING, and released.
 * Its time left bounds the glidein's lifetime. The batch system's commands, answers and failure rules are its
 * adapter's (src/site/batch/).
 */
import type { Allocation, GlideinRef, UndoOutcome } from '../common/types';
import { hostname } from '../common/validation';
import { lastLines, runChecked, type Executor, type RunOptions } from '../remote/executor';
import type { BatchJob, BatchSystem } from '../site/adapters';
import type { ActivityDeps } from './deps';
import { asStep } from './to-failure';

import { heartbeat, sleep } from './kit';
import { siteAccess, type SiteAccess } from './site-access';
import { FailureType, PermanentFault } from '../common/failure-types';

/** The walltime a workflow asks for, checked like any input: whole milliseconds, a minute to 30 days. */
function walltime(ms: number | undefined): number | undefined {
  if (ms === undefined) return undefined;
  if (!Number.isInteger(ms) || ms < 60_000 || ms > 30 * 86_400_000)
    throw new PermanentFault(
      `allocateNode: walltimeMs must be whole milliseconds from 60000 to 30 days, not ${String(ms).slice(0, 40)}`,
      FailureType.InvalidRequest,
    );
  return ms;
}

function batchOf(access: SiteAccess): BatchSystem {
  const batch = access.adapters.batch;
  if (!batch) throw new Error(`site ${access.profile.name} is not a Slurm site (workerNode.via is not "slurm")`);
  return batch;
}

/** This glidein's jobs in the queue, COMPLETING ones included. */
async function findJobs(batch: BatchSystem, login: Executor, glideinId: string, opts: RunOptions) {
  const result = await runChecked(login, batch.commands.queue, batch.queueArgv(glideinId), opts);
  return batch.parseQueue(result.stdout);
}

export function createAllocationActivities(deps: ActivityDeps) {
  const pollMs = Math.max(deps.pollMs ?? 500, 250);
  return {
    /**
     * `walltimeMs`: what the glidein's lifetime needs of the job (absent in runs recorded before it: the profile's).
     */
    async allocateNode(ref: GlideinRef, queueTimeoutMs: number, walltimeMs?: number): Promise<Allocation> {
      return asStep('allocateNode', async () => {
        const access = await siteAccess(deps, { site: ref.site, glideinId: ref.glideinId }, 'claim');
        const { login, paths } = access;
        const batch = batchOf(access);
        const { submit } = batch.commands;
        const holding = async (): Promise<BatchJob[]> =>
          (await findJobs(batch, login, ref.glideinId, access.opts())).filter((job) => batch.isActive(job));
        let jobs = await holding();
        const reused = jobs.length > 0;
        if (!reused) {
          await runChecked(login, 'creating the work directory', ['mkdir', '-p', paths.dir], access.opts());
          const result = await login.run(
            batch.submitArgv(ref.glideinId, walltime(walltimeMs)),
            access.opts({ stdin: batch.holderScript }),
          );
          if (result.code !== 0) {
            const why = lastLines(result.stderr, 3);
            const permanent = batch.permanentCause(why);
            if (permanent) {
              throw new PermanentFault(
                `workerNode: ${submit} refused the holder job on ${login.target}: ${why}`,
                permanent.type,
              );
            }
            throw new Error(`${submit} on ${login.target} failed: ${why}`);
          }
          jobs = await holding();
        }
        const started = Date.now();
        for (;;) {
          const job = jobs[0];
          if (!job)
            throw new Error(
              `the holder job ${ref.glideinId} is no longer in the queue on ${login.target} (cancelled or ` +
                `failed; see ${paths.dir}/${batch.outputFiles})`,
            );
          if (batch.isRunning(job) && job.node) {
            if (!hostname.safeParse(job.node).success)
              throw new PermanentFault(
                `${batch.commands.queue} named the node ${JSON.stringify(job.node)}, which is not a host name`,
                FailureType.AllocationRefused,
              );
            return { jobId: job.jobId, node: job.node, timeLeftMs: job.timeLeftMs, reused };
          }
          if (Date.now() - started > queueTimeoutMs) {
            await login.run(batch.cancelArgv([job.jobId]), access.opts());
            throw new PermanentFault(
              `the holder job ${job.jobId} waited in state ${job.state} longer than workerNode.queueTimeout; cancelled`,
              FailureType.QueueTimeout,
            );
          }
          heartbeat({ jobId: job.jobId, state: job.state });
          await sleep(pollMs);
          jobs = await holding();
        }
      });
    },

    async releaseNode(ref: GlideinRef): Promise<UndoOutcome> {
      return asStep('releaseNode', async () => {
        const access = await siteAccess(deps, { site: ref.site, glideinId: ref.glideinId });
        const { login } = access;
        const batch = batchOf(access);
        const { cancel } = batch.commands;
        const jobs = await findJobs(batch, login, ref.glideinId, access.opts());
        if (jobs.length === 0) return { detail: 'no job held' };
        const ids = jobs.filter((j) => !batch.isEnding(j)).map((j) => j.jobId);
        if (ids.length > 0) await runChecked(login, cancel, batch.cancelArgv(ids), access.opts());
        for (let i = 0; i < 120; i++) {
          if ((await findJobs(batch, login, ref.glideinId, access.opts())).length === 0)
            return { detail: ids.length ? `cancelled job ${ids.join(', ')}` : 'the job had ended' };
          heartbeat({ cancelling: ids });
          await sleep(pollMs);
        }
        throw new Error(
          `job ${jobs.map((j) => j.jobId).join(', ')} of ${ref.glideinId} is still in the queue after ${cancel}`,
        );
      });
    },
  };
}
