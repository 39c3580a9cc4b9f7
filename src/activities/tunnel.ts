/**
 * The SOCKS tunnel from the worker node to the login node: `ssh -N -D 127.0.0.1:<port>` started on the worker
 * node, recorded as "pid starttime" in tunnel.pid. Reused while that process lives and listens; closing
 * signals exactly that process.
 */
import { parseDuration } from '../common/duration';
import type { GlideinRef, ProcessRef, TunnelInfo, UndoOutcome } from '../common/types';
import { runChecked } from '../remote/executor';
import type { SiteProfile } from '../site/profile';
import type { ActivityDeps } from './deps';
import { PermanentFault, asStep } from './failures';
import { inspect, signalRecorded, sleep, spawnDetached, tailFile } from './processes';
import { heartbeat, siteAccess, type SiteAccess } from './site-access';

export function tunnelArgv(profile: SiteProfile): string[] {
  const t = profile.tunnel;
  return [
    'ssh',
    '-F', '/dev/null',
    '-N',
    '-D', `127.0.0.1:${t.socksPort}`,
    '-o', 'ExitOnForwardFailure=yes',
    '-o', 'BatchMode=yes',
    '-o', `ServerAliveInterval=${Math.max(1, Math.round(parseDuration(t.serverAliveInterval) / 1000))}`,
    '-o', 'ServerAliveCountMax=3',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${t.knownHostsFile}`,
    '-o', 'IdentitiesOnly=yes',
    '-i', t.identityFile,
    '-p', String(t.loginPort),
    '-l', profile.login.user,
    '--',
    t.loginHost,
  ];
}

export interface TunnelState {
  alive: boolean;
  listening: boolean;
  process?: ProcessRef;
}

export async function tunnelState(access: SiteAccess): Promise<TunnelState> {
  const snap = await inspect(access.node, [access.paths.tunnelPid], access.opts());
  const proc = snap.processes.get(access.paths.tunnelPid);
  const ours = !!proc?.alive && /\bssh\b.*-D/.test(proc.cmdline ?? '');
  return { alive: ours, listening: snap.listening.has(access.profile.tunnel.socksPort), process: ours ? proc?.recorded : undefined };
}

const PERMANENT_SSH_ERRORS: Array<[RegExp, string, string]> = [
  [/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No .* host key is known/i, 'TunnelHostKeyRejected', 'add the login node\'s verified host key to tunnel.knownHostsFile on the site'],
  [/Permission denied|Too many authentication failures/i, 'TunnelAuthRejected', 'check tunnel.identityFile on the site and its authorized_keys entry on the login node'],
  [/Could not resolve hostname/i, 'TunnelHostUnknown', 'check tunnel.loginHost'],
];

export function createTunnelActivities(deps: ActivityDeps) {
  const pollMs = deps.pollMs ?? 200;
  return {
    async openTunnel(ref: GlideinRef): Promise<TunnelInfo> {
      return asStep('openTunnel', async () => {
        const access = await siteAccess(deps, ref);
        const { profile, node, paths } = access;
        const port = profile.tunnel.socksPort;
        const state = await tunnelState(access);
        if (state.alive && state.listening) {
          return { socksPort: port, process: state.process!, reused: true };
        }
        if (state.alive) await signalRecorded(node, 'TERM', paths.tunnelPid, access.opts()); // alive but not forwarding: replace it
        else if (state.listening) {
          throw new PermanentFault(`tunnel.socksPort ${port} on the worker node ${node.target} is taken by a process that is not this glidein's tunnel`, 'TunnelPortInUse');
        }
        await runChecked(node, 'creating the work directory', ['mkdir', '-p', paths.dir], access.opts());
        const spawned = await spawnDetached(node, tunnelArgv(profile), { log: paths.tunnelLog, pidFile: paths.tunnelPid }, access.opts());
        const deadline = Date.now() + 30_000;
        for (;;) {
          const now = await tunnelState(access);
          if (now.alive && now.listening && 'started' in spawned) return { socksPort: port, process: spawned.started, reused: false };
          if (!now.alive || Date.now() > deadline) {
            await signalRecorded(node, 'TERM', paths.tunnelPid, access.opts());
            const log = await tailFile(node, paths.tunnelLog, 5, access.opts());
            for (const [pattern, type, fix] of PERMANENT_SSH_ERRORS) {
              if (pattern.test(log)) throw new PermanentFault(`the tunnel ssh from ${node.target} to ${profile.tunnel.loginHost}:${profile.tunnel.loginPort} failed: ${log.split('\n').pop()}; ${fix}`, type);
            }
            throw new Error(`the tunnel ssh to ${profile.tunnel.loginHost}:${profile.tunnel.loginPort} ${now.alive ? 'did not listen on' : 'exited before listening on'} 127.0.0.1:${port}: ${log || 'no output'}`);
          }
          heartbeat({ waitingFor: 'tunnel' });
          await sleep(pollMs, access.opts().signal);
        }
      });
    },

    async closeTunnel(ref: GlideinRef): Promise<UndoOutcome> {
      return asStep('closeTunnel', async () => {
        const access = await siteAccess(deps, ref);
        const state = await tunnelState(access);
        if (!state.alive) return { detail: 'no tunnel running' };
        await signalRecorded(access.node, 'TERM', access.paths.tunnelPid, access.opts());
        for (let i = 0; i < 50; i++) {
          if (!(await tunnelState(access)).alive) return { detail: `closed tunnel pid ${state.process?.pid}` };
          await sleep(pollMs, access.opts().signal);
        }
        await signalRecorded(access.node, 'KILL', access.paths.tunnelPid, access.opts());
        return { detail: `killed tunnel pid ${state.process?.pid}` };
      });
    },
  };
}
