/**
 * The glidein: the profile's start command inside the container instance, pre-loaded with proxychains and
 * configured for a node that can only connect outwards. Recorded in glidein.pid; stopped gracefully
 * (SIGTERM: HTCondor's graceful shutdown), then SIGQUIT (fast shutdown), then SIGKILL.
 */
import { parseDuration } from '../common/duration';
import type { GlideinRef, ProcessRef, ShutdownMode, UndoOutcome } from '../common/types';
import { runChecked } from '../remote/executor';
import type { SiteProfile } from '../site/profile';
import { containerRuntime } from './container';
import type { ActivityDeps } from './deps';
import { PermanentFault, asStep } from './failures';
import { inspect, signalAndWait, spawnDetached, tailFile } from './processes';
import { preloadEnv } from './proxychains';
import { heartbeat } from './kit';
import { siteAccess, type GlideinPaths, type SiteAccess } from './site-access';
import { permanentCause } from './classify';

/** When the glidein stops taking jobs and when it must be gone, in epoch seconds. */
export interface Retirement {
  retireAt: number;
  dieAt: number;
}

/**
 * HTCondor configuration for an outbound-only node, as _CONDOR_ variables, plus our identifying attributes.
 * With a retirement the glidein also retires and ends by itself, like a GlideinWMS pilot, even if nothing
 * orchestrates it any more: no new jobs after GLIDEIN_ToRetire, every daemon down after GLIDEIN_ToDie.
 */
export function condorConfig(
  profile: SiteProfile,
  glideinId: string,
  paths: GlideinPaths,
  retirement?: Retirement,
): Record<string, string> {
  const lifetime: Record<string, string> = retirement
    ? {
        GLIDEIN_ToRetire: String(retirement.retireAt),
        GLIDEIN_ToDie: String(retirement.dieAt),
        START: '($(START:True)) && (time() < GLIDEIN_ToRetire)',
        DAEMON_SHUTDOWN: 'time() > GLIDEIN_ToDie',
      }
    : {};
  return {
    COLLECTOR_HOST: `${profile.collector.host}:${profile.collector.port}`,
    // The collector brokers connections to us (CCB): nothing can connect into a JSC worker node.
    CCB_ADDRESS: '$(COLLECTOR_HOST)',
    // Updates over TCP, and no UDP socket: proxychains carries TCP only.
    UPDATE_COLLECTOR_WITH_TCP: 'True',
    WANT_UDP_COMMAND_SOCKET: 'False',
    LOCAL_DIR: paths.condorLocal,
    GLIDEIN_NAME: glideinId,
    GlideinLaunchId: `"${glideinId}"`,
    GlideinSite: `"${profile.name}"`,
    STARTD_ATTRS: `$(STARTD_ATTRS) GlideinLaunchId GlideinSite${retirement ? ' GLIDEIN_ToRetire GLIDEIN_ToDie' : ''}`,
    ...lifetime,
    ...profile.glidein.config,
  };
}

export function glideinEnv(
  profile: SiteProfile,
  glideinId: string,
  paths: GlideinPaths,
  retirement?: Retirement,
): Record<string, string> {
  const prefix = containerRuntime(profile).envPrefix;
  const env: Record<string, string> = preloadEnv(profile, paths.proxychainsConf, true);
  for (const [knob, value] of Object.entries(condorConfig(profile, glideinId, paths, retirement)))
    env[`${prefix}_CONDOR_${knob}`] = value;
  return env;
}

export function glideinArgv(profile: SiteProfile, instance: string): string[] {
  return [containerRuntime(profile).executable, 'exec', `instance://${instance}`, ...profile.glidein.startCommand];
}

export async function glideinState(access: SiteAccess) {
  const snap = await inspect(access.node, [access.paths.glideinPid], access.opts());
  return snap.processes.get(access.paths.glideinPid)!;
}

/** How long a started glidein must stay up, watched on the site in the spawn's round trip, to count as started. */
export const GLIDEIN_SETTLE_MS = 300;
/** The longest a stop waits on the site in one round trip (heartbeats go on meanwhile; see site-access). */
const STOP_WAIT_SLICE_MS = 10_000;

export function createGlideinActivities(deps: ActivityDeps) {
  return {
    async startGlidein(ref: GlideinRef, retirement?: Retirement): Promise<{ process: ProcessRef; reused: boolean }> {
      return asStep('startGlidein', async () => {
        const access = await siteAccess(deps, ref, 'claim');
        const { profile, node, paths } = access;
        const state = await glideinState(access);
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
          glideinArgv(profile, access.instance),
          { log: paths.glideinLog, pidFile: paths.glideinPid, settleMs: GLIDEIN_SETTLE_MS },
          access.opts({ env: glideinEnv(profile, ref.glideinId, paths, retirement) }),
        );
        if (!('started' in spawned)) {
          const log = await tailFile(node, paths.glideinLog, 8, access.opts());
          const permanent = permanentCause('glideinStart', log);
          if (permanent) {
            throw new PermanentFault(
              `glidein.startCommand ${profile.glidein.startCommand[0]} cannot be run in ${access.instance} on ${node.target}: ${log.split('\n').pop()}`,
              permanent.type,
            );
          }
          throw new Error(
            `the glidein (${profile.glidein.startCommand.join(' ')}) exited right after starting in ${access.instance} on ${node.target}: ${log || 'no output'}`,
          );
        }
        return { process: spawned.started, reused: false };
      });
    },

    /** Each signal and the wait after it on the site, one round trip per signal (and per further 10 s of waiting). */
    async stopGlidein(ref: GlideinRef, mode: ShutdownMode): Promise<UndoOutcome> {
      return asStep('stopGlidein', async () => {
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
      });
    },
  };
}
