/**
 * The glidein: the profile's start command inside the container instance, pre-loaded with proxychains and
 * configured for a node that can only connect outwards. Recorded in glidein.pid; stopped gracefully
 * (SIGTERM: HTCondor's graceful shutdown), then SIGQUIT (fast shutdown), then SIGKILL.
 */
import { PermanentFault } from '../common/failure-types';
import { parseDuration } from '../common/duration';
import type { GlideinRef, ProcessRef, ShutdownMode, UndoOutcome } from '../common/types';
import { runChecked } from '../remote/executor';
import { GLIDEIN_SETTLE_MS, type Retirement } from '../site/adapters';
import { inspect, signalAndWait, spawnDetached, tailFile } from '../site/scripts/processes';
import type { ActivityDeps } from './deps';
import { asStep } from './to-failure';
import { heartbeat } from './kit';
import { siteAccess, unlessAllocationEnded } from './site-access';

/** The longest a stop waits on the site in one round trip (heartbeats go on meanwhile; see site-access). */
const STOP_WAIT_SLICE_MS = 10_000;

export function createGlideinActivities(deps: ActivityDeps) {
  return {
    async startGlidein(ref: GlideinRef, retirement?: Retirement): Promise<{ process: ProcessRef; reused: boolean }> {
      return asStep('startGlidein', async () => {
        const access = await siteAccess(deps, ref, 'claim');
        const { profile, node, paths } = access;
        const state = (await inspect(node, [paths.glideinPid], access.opts())).processes.get(paths.glideinPid)!;
        if (state.alive) return { process: state.recorded!, reused: true };
        await runChecked(
          node,
          'creating the HTCondor local directory',
          ['mkdir', '-p', paths.condorLocal],
          access.opts(),
        );
        // A glidein that cannot start (missing binary, bad config) dies at once: the spawn watches it for a moment.
        const spawned = await spawnDetached(
          node,
          access.adapters.condor.startArgv(access.instance),
          { log: paths.glideinLog, pidFile: paths.glideinPid, settleMs: GLIDEIN_SETTLE_MS },
          access.opts({ env: access.adapters.condor.startEnv(ref.glideinId, paths, retirement), persists: true }),
        );
        if (!('started' in spawned)) {
          const log = await tailFile(node, paths.glideinLog, 8, access.opts());
          const permanent = access.adapters.condor.permanentCause(log);
          if (permanent) {
            throw new PermanentFault(
              `glidein.startCommand ${profile.glidein.startCommand[0]} cannot be run in ${access.instance} ` +
                `on ${node.target}: ${log.split('\n').pop()}`,
              permanent.type,
            );
          }
          throw new Error(
            `the glidein (${profile.glidein.startCommand.join(' ')}) exited right after starting in ` +
              `${access.instance} on ${node.target}: ${log || 'no output'}`,
          );
        }
        return { process: spawned.started, reused: false };
      });
    },

    /** Each signal and the wait after it on the site, one round trip per signal (and per further 10 s of waiting). */
    async stopGlidein(ref: GlideinRef, mode: ShutdownMode): Promise<UndoOutcome> {
      return asStep('stopGlidein', () =>
        unlessAllocationEnded(async () => {
          const access = await siteAccess(deps, ref);
          const { node, paths, profile } = access;
          const graceMs = parseDuration(mode === 'drain' ? profile.glidein.drainGrace : profile.glidein.stopGrace);
          const steps: Array<['TERM' | 'QUIT' | 'KILL', number, string]> = [
            ['TERM', graceMs, 'graceful shutdown'],
            ['QUIT', 10_000, 'fast shutdown'],
            ['KILL', 5_000, 'killed'],
          ];
          let pid: number | undefined;
          for (const [signal, waitMs, how] of steps) {
            const until = Date.now() + waitMs;
            let send: typeof signal | undefined = signal;
            for (;;) {
              const outcome = await signalAndWait(
                node,
                send,
                paths.glideinPid,
                Math.min(STOP_WAIT_SLICE_MS, until - Date.now()),
                access.opts(),
              );
              send = undefined;
              if (outcome.state === 'ended' || outcome.state === 'running') pid = outcome.pid;
              if (outcome.state !== 'running')
                return pid === undefined
                  ? { detail: 'no glidein running' }
                  : { detail: `glidein pid ${pid} ended (${how}, SIG${signal})` };
              heartbeat({ stopping: pid, signal });
              if (Date.now() >= until) break;
            }
          }
          throw new Error(`glidein pid ${pid} on ${node.target} survived SIGKILL`);
        }),
      );
    },
  };
}
