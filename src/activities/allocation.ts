/**
 * The worker node, the JSC way: a Slurm holder job submitted from the login node (`sbatch --parsable`), found
 * again by its name (the glidein id) so that a retried allocation never submits a second job, waited for until
 * RUNNING (`squeue`), and released with `scancel`. Its time left bounds the glidein's lifetime.
 */
import type { Allocation, GlideinRef, UndoOutcome } from '../common/types';
import { parseDuration } from '../common/duration';
import { hostname } from '../common/validation';
import { lastLines, runChecked, type Executor, type RunOptions } from '../remote/executor';
import type { SiteProfile } from '../site/profile';
import type { ActivityDeps } from './deps';
import { PermanentFault, asStep } from './failures';

import { heartbeat, sleep } from './kit';
import { pathsFor, siteAccess } from './site-access';
import { FailureType } from '../common/failure-types';
import { permanentCause } from './classify';

/** The holder job does nothing but hold the node; the glidein's processes join it over ssh. */
export const HOLDER_SCRIPT =
  '#!/bin/sh\n# jsc-glidein holder job: keeps the node allocated for the glidein.\nexec sleep infinity\n';

const ACTIVE = new Set([
  'PENDING',
  'CONFIGURING',
  'RUNNING',
  'RESIZING',
  'SUSPENDED',
  'REQUEUED',
  'REQUEUE_HOLD',
  'REQUEUE_FED',
]);

export function slurmTime(ms: number): string {
  const total = Math.max(60, Math.floor(ms / 1000));
  const days = Math.floor(total / 86_400);
  const pad = (n: number) => String(n).padStart(2, '0');
  const hms = `${pad(Math.floor((total % 86_400) / 3600))}:${pad(Math.floor((total % 3600) / 60))}:${pad(total % 60)}`;
  return days > 0 ? `${days}-${hms}` : hms;
}

/** squeue's %L: [D-]HH:MM:SS, MM:SS, or UNLIMITED / NOT_SET / INVALID. */
export function parseSlurmTime(text: string): number | undefined {
  const m = /^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$/.exec(text.trim());
  if (!m) return undefined;
  const [, d = '0', h = '0', min, s] = m;
  return (((Number(d) * 24 + Number(h)) * 60 + Number(min)) * 60 + Number(s)) * 1000;
}

export function sbatchArgv(profile: SiteProfile, glideinId: string): string[] {
  const wn = profile.workerNode;
  if (wn.via !== 'slurm') throw new Error('not a Slurm site');
  const dir = pathsFor(profile, glideinId).dir;
  return [
    'sbatch',
    '--parsable',
    `--job-name=${glideinId}`,
    `--partition=${wn.partition}`,
    ...(wn.account ? [`--account=${wn.account}`] : []),
    ...(wn.qos ? [`--qos=${wn.qos}`] : []),
    ...(wn.reservation ? [`--reservation=${wn.reservation}`] : []),
    `--time=${slurmTime(parseDuration(wn.timeLimit))}`,
    '--nodes=1',
    '--ntasks=1',
    `--chdir=${dir}`,
    `--output=${dir}/slurm-%j.out`,
  ];
}

export interface SlurmJob {
  jobId: string;
  state: string;
  node: string;
  timeLeftMs?: number;
}

/** `squeue --me --name=<glidein id> -h -o '%i|%T|%N|%L'`: this glidein's jobs in the queue, COMPLETING ones included. */
export async function findJobs(login: Executor, glideinId: string, opts: RunOptions): Promise<SlurmJob[]> {
  const result = await runChecked(
    login,
    'squeue',
    ['squeue', '--me', '--noheader', `--name=${glideinId}`, '--format=%i|%T|%N|%L'],
    opts,
  );
  return result.stdout
    .split('\n')
    .map((l) => l.trim().split('|'))
    .filter((f) => f.length === 4 && /^\d+$/.test(f[0]))
    .map(([jobId, state, node, left]) => ({ jobId, state, node, timeLeftMs: parseSlurmTime(left) }));
}

export function createAllocationActivities(deps: ActivityDeps) {
  const pollMs = Math.max(deps.pollMs ?? 500, 250);
  return {
    async allocateNode(ref: GlideinRef, queueTimeoutMs: number): Promise<Allocation> {
      return asStep('allocateNode', async () => {
        const access = await siteAccess(deps, { site: ref.site, glideinId: ref.glideinId }, 'claim');
        const { login, profile, paths } = access;
        const holding = async () =>
          (await findJobs(login, ref.glideinId, access.opts())).filter((j) => ACTIVE.has(j.state));
        let jobs = await holding();
        const reused = jobs.length > 0;
        if (!reused) {
          await runChecked(login, 'creating the work directory', ['mkdir', '-p', paths.dir], access.opts());
          const result = await login.run(sbatchArgv(profile, ref.glideinId), access.opts({ stdin: HOLDER_SCRIPT }));
          if (result.code !== 0) {
            const why = lastLines(result.stderr, 3);
            const permanent = permanentCause('sbatch', why);
            if (permanent) {
              throw new PermanentFault(
                `workerNode: sbatch refused the holder job on ${login.target}: ${why}`,
                permanent.type,
              );
            }
            throw new Error(`sbatch on ${login.target} failed: ${why}`);
          }
          jobs = await holding();
        }
        const started = Date.now();
        for (;;) {
          const job = jobs[0];
          if (!job)
            throw new Error(
              `the holder job ${ref.glideinId} is no longer in the queue on ${login.target} (cancelled or failed; see ${paths.dir}/slurm-*.out)`,
            );
          if (job.state === 'RUNNING' && job.node) {
            if (!hostname.safeParse(job.node).success)
              throw new PermanentFault(
                `squeue named the node ${JSON.stringify(job.node)}, which is not a host name`,
                FailureType.AllocationRefused,
              );
            return { jobId: job.jobId, node: job.node, timeLeftMs: job.timeLeftMs, reused };
          }
          if (Date.now() - started > queueTimeoutMs) {
            await login.run(['scancel', job.jobId], access.opts());
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
        const jobs = await findJobs(login, ref.glideinId, access.opts());
        if (jobs.length === 0) return { detail: 'no job held' };
        const ids = jobs.filter((j) => j.state !== 'COMPLETING').map((j) => j.jobId);
        if (ids.length > 0) await runChecked(login, 'scancel', ['scancel', ...ids], access.opts());
        for (let i = 0; i < 120; i++) {
          if ((await findJobs(login, ref.glideinId, access.opts())).length === 0)
            return { detail: ids.length ? `cancelled job ${ids.join(', ')}` : 'the job had ended' };
          heartbeat({ cancelling: ids });
          await sleep(pollMs);
        }
        throw new Error(
          `job ${jobs.map((j) => j.jobId).join(', ')} of ${ref.glideinId} is still in the queue after scancel`,
        );
      });
    },
  };
}
