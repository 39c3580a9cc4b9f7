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
import { inspect, signalRecorded, sleep, spawnDetached, tailFile } from './processes';
import { preloadEnv } from './proxychains';
import { heartbeat, siteAccess, type GlideinPaths, type SiteAccess } from './site-access';

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
export function condorConfig(profile: SiteProfile, glideinId: string, paths: GlideinPaths, retirement?: Retirement): Record<string, string> {
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

export function glideinEnv(profile: SiteProfile, glideinId: string, paths: GlideinPaths, retirement?: Retirement): Record<string, string> {
  const prefix = containerRuntime(profile).envPrefix;
  const env: Record<string, string> = preloadEnv(profile, paths.proxychainsConf, true);
  for (const [knob, value] of Object.entries(condorConfig(profile, glideinId, paths, retirement))) env[`${prefix}_CONDOR_${knob}`] = value;
  return env;
}

export function glideinArgv(profile: SiteProfile, instance: string): string[] {
  return [containerRuntime(profile).executable, 'exec', `instance://${instance}`, ...profile.glidein.startCommand];
}

export async function glideinState(access: SiteAccess) {
  const snap = await inspect(access.node, [access.paths.glideinPid], access.opts());
  return snap.processes.get(access.paths.glideinPid)!;
}

export function createGlideinActivities(deps: ActivityDeps) {
  const pollMs = deps.pollMs ?? 200;
  return {
    async startGlidein(ref: GlideinRef, retirement?: Retirement): Promise<{ process: ProcessRef; reused: boolean }> {
      return asStep('startGlidein', async () => {
        const access = await siteAccess(deps, ref);
        const { profile, node, paths } = access;
        const state = await glideinState(access);
        if (state.alive) return { process: state.recorded!, reused: true };
        await runChecked(node, 'creating the HTCondor local directory', ['mkdir', '-p', paths.condorLocal], access.opts());
        const spawned = await spawnDetached(
          node,
          glideinArgv(profile, access.instance),
          { log: paths.glideinLog, pidFile: paths.glideinPid },
          access.opts({ env: glideinEnv(profile, ref.glideinId, paths, retirement) }),
        );
        // A glidein that cannot start (missing binary, bad config) dies at once: say so now, with its log.
        await sleep(Math.max(pollMs, 500), access.opts().signal);
        const now = await glideinState(access);
        if (!('started' in spawned) || !now.alive) {
          const log = await tailFile(node, paths.glideinLog, 8, access.opts());
          if (/executable file not found|no such file or directory|not found in \$PATH/i.test(log)) {
            throw new PermanentFault(`glidein.startCommand ${profile.glidein.startCommand[0]} cannot be run in ${access.instance} on ${node.target}: ${log.split('\n').pop()}`, 'GlideinStartFailed');
          }
          throw new Error(`the glidein (${profile.glidein.startCommand.join(' ')}) exited right after starting in ${access.instance} on ${node.target}: ${log || 'no output'}`);
        }
        return { process: spawned.started, reused: false };
      });
    },

    async stopGlidein(ref: GlideinRef, mode: ShutdownMode): Promise<UndoOutcome> {
      return asStep('stopGlidein', async () => {
        const access = await siteAccess(deps, ref);
        const { node, paths, profile } = access;
        const graceMs = parseDuration(mode === 'drain' ? profile.glidein.drainGrace : profile.glidein.stopGrace);
        const first = await glideinState(access);
        if (!first.alive) return { detail: 'no glidein running' };
        const pid = first.recorded!.pid;
        const steps: Array<['TERM' | 'QUIT' | 'KILL', number, string]> = [
          ['TERM', graceMs, 'graceful shutdown'],
          ['QUIT', 10_000, 'fast shutdown'],
          ['KILL', 5_000, 'killed'],
        ];
        for (const [signal, waitMs, how] of steps) {
          await signalRecorded(node, signal, paths.glideinPid, access.opts());
          const until = Date.now() + waitMs;
          while (Date.now() < until) {
            if (!(await glideinState(access)).alive) return { detail: `glidein pid ${pid} ended (${how}, SIG${signal})` };
            heartbeat({ stopping: pid, signal });
            await sleep(pollMs, access.opts().signal);
          }
        }
        throw new Error(`glidein pid ${pid} on ${node.target} survived SIGKILL`);
      });
    },
  };
}
