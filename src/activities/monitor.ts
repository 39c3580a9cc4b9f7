/**
 * Watches a running glidein for one round: every interval, one round trip for the tunnel's and the glidein's
 * processes and the SOCKS port, and its registration looked up in one condor_status per collector shared by
 * every glidein this worker monitors (see registrationCheck). Returns at the end of the round, at the deadline,
 * or on the first fault, and leaves the decision to the workflow.
 */
import type { GlideinRef, MonitorReport, Registration } from '../common/types';
import type { ActivityDeps } from './deps';
import { asStep } from './to-failure';
import type { BatchJob, BatchSystem, RegistrationCheck } from '../site/adapters';
import { runChecked } from '../remote/executor';
import { tailFile } from '../site/scripts/processes';
import { SharedLookup } from './shared-lookup';
import { heartbeat, heartbeatWhile, log, sleep } from './kit';
import { renewIfChanged } from './credential-files';
import { isAllocationEnded, queryContext, siteAccess, type SiteAccess } from './site-access';

export interface MonitorRound {
  /** Epoch ms: the glidein's lifetime ends here. */
  deadline: number;
  /** Epoch ms: report back to the workflow by then at the latest. */
  roundEnd: number;
  intervalMs: number;
}

/** Consecutive checks without registration before it counts as a fault. */
const ALLOWED_MISSES = 3;

/** A shared answer is reused for at most half an interval, and never for more than this. */
const SHARED_MAX_AGE_MS = 30_000;

/**
 * This glidein's registration, from the shared condor_status (every glidein we launched that reports to this
 * collector, whatever its site: one query per collector and freshness window, run in the container of the
 * glidein whose check needed it). A glidein is
 * never counted missing on another's word: when the shared query fails (that glidein's tunnel may be down) or
 * does not list this glidein (its answer may predate the registration), the glidein asks for itself.
 */
export async function registrationCheck(
  lookup: SharedLookup<Map<string, Registration>>,
  access: SiteAccess,
  intervalMs: number,
  progress: () => unknown,
): Promise<RegistrationCheck> {
  const { profile, ref } = access;
  const { condor } = access.adapters;
  const query = queryContext(access);
  const signal = query.opts.signal;
  const key = `${profile.collector.host}:${profile.collector.port}`;
  // Waiting on a query another activity runs: heartbeat meanwhile (its executor heartbeats for that one only).
  try {
    const { value } = await heartbeatWhile(
      1_000,
      () => lookup.get(key, Math.min(intervalMs / 2, SHARED_MAX_AGE_MS), () => condor.queryCollector(query), signal),
      progress,
    );
    const mine = value.get(ref.glideinId);
    if (mine) return { registered: mine };
  } catch (err) {
    if (signal?.aborted) throw err;
  }
  return condor.queryRegistration(query, ref.glideinId);
}

export type AllocationLook = { holding: true; detail?: string } | { holding: false; detail: string };

/**
 * Whether this glidein's holder job still holds its node, from one `squeue --me` of every job of the account,
 * shared by every glidein this worker monitors through the same login node (one command per freshness window,
 * however many glideins). A job a shared answer does not show holding is asked for by name before it counts as
 * ended (that answer may predate it); a queue that cannot be read ends nothing: the glidein is not ended on a
 * Slurm controller's hiccup.
 */
export async function allocationCheck(
  lookup: SharedLookup<Map<string, BatchJob[]>>,
  access: SiteAccess,
  batch: BatchSystem,
  intervalMs: number,
  progress: () => unknown,
): Promise<AllocationLook> {
  const { login, ref } = access;
  const opts = access.opts();
  const { queue } = batch.commands;
  const holds = (jobs: BatchJob[] | undefined) =>
    jobs?.find((j) => batch.isHolding(j) && (!ref.node || j.node === ref.node));
  try {
    const { value } = await heartbeatWhile(
      1_000,
      () =>
        lookup.get(
          login.target,
          Math.min(intervalMs / 2, SHARED_MAX_AGE_MS),
          async () => batch.parseQueueAll((await runChecked(login, queue, batch.queueAllArgv(), opts)).stdout),
          opts.signal,
        ),
      progress,
    );
    if (holds(value.get(ref.glideinId))) return { holding: true };
  } catch (err) {
    if (opts.signal?.aborted) throw err;
  }
  let jobs: BatchJob[];
  try {
    jobs = batch.parseQueue((await runChecked(login, queue, batch.queueArgv(ref.glideinId), opts)).stdout);
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    return {
      holding: true,
      detail: `the queue could not be read: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
  if (holds(jobs)) return { holding: true };
  const job = jobs[0];
  return {
    holding: false,
    detail: job
      ? `its holder job ${job.jobId} is ${job.state}${job.node && job.node !== ref.node ? ` on ${job.node}` : ''}, ` +
        `no longer holding ${ref.node ?? 'its node'}`
      : `its holder job left the queue (cancelled, or at its time limit)`,
  };
}

/**
 * The pool credential renewed on the site when the worker's copy changed. A credential that cannot be read or
 * written now is logged and tried again at the next check: a renewal never ends a running glidein (the pool
 * does, if its credential lapses: it stops being registered).
 */
async function renewCredentials(access: SiteAccess): Promise<void> {
  const fields = { site: access.ref.site, glideinId: access.ref.glideinId };
  try {
    const renewal = await renewIfChanged(access);
    if (renewal) log.info('pool credential', { ...fields, renewal });
  } catch (err) {
    if (isAllocationEnded(err)) throw err;
    log.warn('pool credential not renewed', { ...fields, error: err instanceof Error ? err.message : String(err) });
  }
}

export function createMonitorActivities(deps: ActivityDeps) {
  // One per worker process (createActivities is called once): shared by every glidein monitored here.
  const siteAds = new SharedLookup<Map<string, Registration>>();
  const queues = new SharedLookup<Map<string, BatchJob[]>>();
  return {
    async monitorGlidein(ref: GlideinRef, round: MonitorRound): Promise<MonitorReport> {
      return asStep('monitor', async () => {
        const access = await siteAccess(deps, ref);
        const { paths } = access;
        let misses = 0;
        let checks = 0;
        let last: MonitorReport['last'];
        let lastClaimedAt: string | undefined;
        const claims = () => (lastClaimedAt ? { lastClaimedAt } : {});
        const batch = access.adapters.batch;
        const allocationEnded = (detail: string): MonitorReport => ({
          end: 'allocation-ended',
          checks: checks + 1,
          last: { at: new Date().toISOString(), tunnel: false, glidein: false, registered: false, detail },
          detail,
        });
        try {
          return await watch();
        } catch (err) {
          // srun access: a step into the job was refused because the job has ended, before the queue said so.
          if (!isAllocationEnded(err)) throw err;
          return allocationEnded(`the allocation ended: ${err.message}`);
        }

        async function watch(): Promise<MonitorReport> {
          for (;;) {
            // The node first: when its job has ended, nothing on it is ours any more (and at JSC, nothing is left).
            if (batch) {
              const allocation = await allocationCheck(queues, access, batch, round.intervalMs, () => ({
                checks,
                last,
              }));
              if (!allocation.holding) return allocationEnded(`the allocation ended: ${allocation.detail}`);
            }
            // The glidein's process in the same look as the tunnel's (one round trip, or two for a reverse tunnel).
            const look = await access.adapters.tunnel.check(access, paths, access.socksPort, access.opts(), [
              paths.glideinPid,
            ]);
            const tunnel = look.alive && look.listening;
            const glidein = !!look.node.processes.get(paths.glideinPid)?.alive;
            let registered = false;
            if (!glidein) {
              const log = await tailFile(access.node, paths.glideinLog, 5, access.opts());
              // A pilot killed without a chance to invalidate its ad stays listed until the ad expires: a ghost,
              // reported as such and never counted as alive.
              const ghost = tunnel
                ? (await access.adapters.condor.queryRegistration(queryContext(access), ref.glideinId)).registered
                : undefined;
              const detail = ghost
                ? `the glidein process ended but the collector still lists it as ${ghost.name} (a ghost until ` +
                  `its ad expires): ${log || 'no output'}`
                : `the glidein process ended: ${log || 'no output'}`;
              return {
                end: 'glidein-exited',
                checks: checks + 1,
                last: { at: new Date().toISOString(), tunnel, glidein, registered: false, detail },
                detail,
                ghost: ghost?.name,
              };
            }
            if (!tunnel) {
              return {
                end: 'tunnel-down',
                checks: checks + 1,
                last: { at: new Date().toISOString(), tunnel, glidein, registered },
                detail: `the SOCKS tunnel on port ${access.socksPort} is down`,
              };
            }
            await renewCredentials(access);
            const check = await registrationCheck(siteAds, access, round.intervalMs, () => ({ checks, last }));
            registered = !!check.registered;
            const detail = check.registered
              ? `${check.registered.name} ${check.registered.state}/${check.registered.activity}`
              : (check.error ?? 'not in the collector');
            misses = registered ? 0 : misses + 1;
            checks++;
            const claimed = check.registered?.state === 'Claimed';
            last = { at: new Date().toISOString(), tunnel, glidein, registered, claimed, detail };
            if (claimed) lastClaimedAt = last.at;
            heartbeat({ checks, last });
            if (misses >= ALLOWED_MISSES)
              return {
                end: 'unregistered',
                checks,
                last,
                detail: `not in the collector for ${misses} checks: ${detail}`,
                ...claims(),
              };
            const now = Date.now();
            if (now >= round.deadline) return { end: 'deadline', checks, last, ...claims() };
            if (now >= round.roundEnd) return { end: 'round-complete', checks, last, ...claims() };
            // Sleep in short slices with heartbeats, so a cancellation (drain, stop) reaches us quickly.
            const until = Math.min(now + round.intervalMs, round.deadline, round.roundEnd);
            while (Date.now() < until) {
              await sleep(Math.min(1_000, until - Date.now()));
              heartbeat({ checks, last });
            }
          }
        }
      });
    },
  };
}
