/**
 * Watches a running glidein for one round: every interval, one round trip for the tunnel's and the glidein's
 * processes and the SOCKS port, one condor_status for the registration. Returns at the end of the round, at the
 * deadline, or on the first fault, and leaves the decision to the workflow.
 */
import type { GlideinRef, MonitorReport } from '../common/types';
import type { ActivityDeps } from './deps';
import { asStep } from './failures';
import { inspect, sleep, tailFile } from './processes';
import { queryRegistration } from './registration';
import { heartbeat, siteAccess } from './site-access';

export interface MonitorRound {
  /** Epoch ms: the glidein's lifetime ends here. */
  deadline: number;
  /** Epoch ms: report back to the workflow by then at the latest. */
  roundEnd: number;
  intervalMs: number;
  /** Consecutive checks without registration before it counts as a fault. */
  missedRegistrations?: number;
}

export function createMonitorActivities(deps: ActivityDeps) {
  return {
    async monitorGlidein(ref: GlideinRef, round: MonitorRound): Promise<MonitorReport> {
      return asStep('monitor', async () => {
        const access = await siteAccess(deps, ref);
        const { paths, profile } = access;
        const signal = access.opts().signal;
        const allowedMisses = round.missedRegistrations ?? 3;
        let misses = 0;
        let checks = 0;
        let last: MonitorReport['last'];
        for (;;) {
          // One round trip to the worker node; a reverse tunnel's ssh lives on the login node: one more there.
          const reverse = profile.tunnel.mode === 'reverse';
          const snap = await inspect(access.node, reverse ? [paths.glideinPid] : [paths.tunnelPid, paths.glideinPid], access.opts());
          const tunnelProc = reverse ? (await inspect(access.login, [paths.tunnelPid], access.opts())).processes.get(paths.tunnelPid) : snap.processes.get(paths.tunnelPid);
          const tunnel = !!tunnelProc?.alive && snap.listening.has(profile.tunnel.socksPort);
          const glidein = !!snap.processes.get(paths.glideinPid)?.alive;
          let registered = false;
          if (!glidein) {
            const log = await tailFile(access.node, paths.glideinLog, 5, access.opts());
            // A pilot killed without a chance to invalidate its ad stays listed until the ad expires: a ghost,
            // reported as such and never counted as alive.
            const ghost = tunnel ? (await queryRegistration(access)).registered : undefined;
            const detail = ghost
              ? `the glidein process ended but the collector still lists it as ${ghost.name} (a ghost until its ad expires): ${log || 'no output'}`
              : `the glidein process ended: ${log || 'no output'}`;
            return { end: 'glidein-exited', checks: checks + 1, last: { at: new Date().toISOString(), tunnel, glidein, registered: false, detail }, detail, ghost: ghost?.name };
          }
          if (!tunnel) {
            return { end: 'tunnel-down', checks: checks + 1, last: { at: new Date().toISOString(), tunnel, glidein, registered }, detail: `the SOCKS tunnel on port ${profile.tunnel.socksPort} is down` };
          }
          const check = await queryRegistration(access);
          registered = !!check.registered;
          const detail = check.registered ? `${check.registered.name} ${check.registered.state}/${check.registered.activity}` : check.error ?? 'not in the collector';
          misses = registered ? 0 : misses + 1;
          checks++;
          last = { at: new Date().toISOString(), tunnel, glidein, registered, detail };
          heartbeat({ checks, last });
          if (misses >= allowedMisses) return { end: 'unregistered', checks, last, detail: `not in the collector for ${misses} checks: ${detail}` };
          const now = Date.now();
          if (now >= round.deadline) return { end: 'deadline', checks, last };
          if (now >= round.roundEnd) return { end: 'round-complete', checks, last };
          // Sleep in short slices with heartbeats, so a cancellation (drain, stop) reaches us quickly.
          const until = Math.min(now + round.intervalMs, round.deadline, round.roundEnd);
          while (Date.now() < until) {
            await sleep(Math.min(1_000, until - Date.now()), signal);
            heartbeat({ checks, last });
          }
        }
      });
    },
  };
}
