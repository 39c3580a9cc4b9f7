/**
 * The SOCKS tunnel that carries the glidein's connections out of the worker node, in one of two shapes:
 *  - forward: `ssh -N -D 127.0.0.1:<port>` started on the worker node towards the login node (the seed's way;
 *    needs a key stored on the site);
 *  - reverse: `ssh -N -R 127.0.0.1:<port>` started on the login node into the worker node, authenticated by our
 *    key agent forwarded on that one channel (no key on the site). The port appears on the worker node.
 * Either way the process is recorded as "pid starttime" in tunnel.pid, reused while it lives and the port
 * listens on the worker node, and closing signals exactly that process.
 */
import { parseDuration } from '../common/duration';
import type { GlideinRef, ProcessRef, TunnelInfo, UndoOutcome } from '../common/types';
import { runChecked, type Executor } from '../remote/executor';
import { Semaphore } from '../remote/semaphore';
import type { SiteProfile } from '../site/profile';
import type { ActivityDeps } from './deps';
import { PermanentFault, asStep } from './failures';
import { inspect, isTunnelProcess, signalRecorded, spawnDetached, spawnedProcess, tailFile } from './processes';
import { heartbeat, heartbeatWhile, sleep } from './kit';
import { siteAccess, type SiteAccess } from './site-access';
import { FailureType } from '../common/failure-types';
import { permanentCause } from './classify';

/** Printed by `ssh -v` once a remote forward is in place. */
const REMOTE_FORWARD_READY = 'remote forward success';

function common(profile: SiteProfile): string[] {
  const t = profile.tunnel;
  return [
    '-o',
    'BatchMode=yes',
    '-o',
    'ExitOnForwardFailure=yes',
    '-o',
    `ServerAliveInterval=${Math.max(1, Math.round(parseDuration(t.serverAliveInterval) / 1000))}`,
    '-o',
    'ServerAliveCountMax=3',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${t.knownHostsFile}`,
  ];
}

/** The worker node's address and ssh port, as the login node reaches it. */
export function workerNodeAddress(profile: SiteProfile, node: string | undefined): { host: string; port: number } {
  const wn = profile.workerNode;
  if (wn.via === 'jump') return { host: wn.host, port: wn.port };
  if (wn.via === 'slurm' && node) return { host: node, port: wn.port };
  throw new PermanentFault(
    'a reverse tunnel needs a worker node to start into (workerNode.via "jump", or an allocated Slurm node)',
    FailureType.NoNodeAllocated,
  );
}

export function tunnelArgv(profile: SiteProfile, node?: string): string[] {
  const t = profile.tunnel;
  if (t.mode === 'forward') {
    return [
      'ssh',
      '-F',
      '/dev/null',
      '-N',
      '-D',
      `127.0.0.1:${t.socksPort}`,
      ...common(profile),
      '-o',
      'IdentitiesOnly=yes',
      '-i',
      t.identityFile,
      '-p',
      String(t.loginPort),
      '-l',
      profile.login.user,
      '--',
      t.loginHost,
    ];
  }
  const target = workerNodeAddress(profile, node);
  const wn = profile.workerNode;
  return [
    'ssh',
    '-F',
    '/dev/null',
    '-N',
    '-v',
    '-R',
    `127.0.0.1:${t.socksPort}`,
    ...common(profile),
    '-o',
    'ForwardAgent=no',
    // Only the forwarded agent: never a key file that happens to lie in the site account's ~/.ssh.
    '-o',
    'IdentityFile=none',
    '-p',
    String(target.port),
    '-l',
    (wn.via !== 'login' ? wn.user : undefined) ?? profile.login.user,
    '--',
    target.host,
  ];
}

/** Where the tunnel's ssh runs: the worker node (forward) or the login node (reverse). */
function tunnelHost(access: SiteAccess): Executor {
  return access.profile.tunnel.mode === 'forward' ? access.node : access.login;
}

export interface TunnelState {
  alive: boolean;
  listening: boolean;
  process?: ProcessRef;
}

export async function tunnelState(access: SiteAccess): Promise<TunnelState> {
  const host = tunnelHost(access);
  const snap = await inspect(host, [access.paths.tunnelPid], access.opts());
  const proc = snap.processes.get(access.paths.tunnelPid);
  const ours = isTunnelProcess(proc);
  const ports = host === access.node ? snap.listening : (await inspect(access.node, [], access.opts())).listening;
  return {
    alive: ours,
    listening: ports.has(access.profile.tunnel.socksPort),
    process: ours ? proc?.recorded : undefined,
  };
}

/** The sshd a tunnel's ssh connects to: the login node (forward) or the worker node (reverse). */
function tunnelServer(profile: SiteProfile, node: string | undefined): string {
  if (profile.tunnel.mode === 'forward') return `${profile.tunnel.loginHost}:${profile.tunnel.loginPort}`;
  const target = workerNodeAddress(profile, node);
  return `${target.host}:${target.port}`;
}

export function createTunnelActivities(deps: ActivityDeps) {
  const pollMs = deps.pollMs ?? 200;
  /** Tunnel starts in flight per sshd, in this worker process (tunnel.startsInFlight). */
  const starting = new Map<string, Semaphore>();
  async function startSlot(profile: SiteProfile, node: string | undefined, signal?: AbortSignal): Promise<() => void> {
    const server = tunnelServer(profile, node);
    let gate = starting.get(server);
    if (!gate || gate.limit !== profile.tunnel.startsInFlight) {
      gate = new Semaphore(profile.tunnel.startsInFlight);
      starting.set(server, gate);
    }
    return heartbeatWhile(
      1_000,
      () => gate.acquire(signal),
      () => ({ waitingFor: `a tunnel start slot for ${server}` }),
    );
  }
  return {
    async openTunnel(ref: GlideinRef): Promise<TunnelInfo> {
      return asStep('openTunnel', async () => {
        const access = await siteAccess(deps, ref, 'claim');
        const { profile, paths } = access;
        const host = tunnelHost(access);
        const port = profile.tunnel.socksPort;
        const reverse = profile.tunnel.mode === 'reverse';
        const state = await tunnelState(access);
        if (state.alive && state.listening) return { socksPort: port, process: state.process!, reused: true };
        if (state.alive)
          await signalRecorded(host, 'TERM', paths.tunnelPid, access.opts()); // alive but not forwarding: replace it
        else if (state.listening) {
          throw new PermanentFault(
            `tunnel.socksPort ${port} on the worker node ${access.node.target} is taken by a process that is not this glidein's tunnel`,
            FailureType.TunnelPortInUse,
          );
        }
        await runChecked(host, 'creating the work directory', ['mkdir', '-p', paths.dir], access.opts());
        const release = await startSlot(profile, ref.node, access.opts().signal);
        try {
          const spawned = await spawnDetached(
            host,
            tunnelArgv(profile, ref.node),
            // A reverse tunnel authenticates with the agent of this very channel: keep it open until the forward is up.
            {
              log: paths.tunnelLog,
              pidFile: paths.tunnelPid,
              ...(reverse ? { awaitLog: { marker: REMOTE_FORWARD_READY, seconds: 20 } } : {}),
            },
            access.opts({ forwardAgent: reverse }),
          );
          // `waiting`: the marker did not show in time but the process lives; the port decides, as for any tunnel.
          const child = spawnedProcess(spawned);
          const deadline = Date.now() + 30_000;
          for (;;) {
            const now = await tunnelState(access);
            if (now.alive && now.listening && child)
              return { socksPort: port, process: now.process ?? child, reused: false };
            if (!now.alive || Date.now() > deadline) {
              await signalRecorded(host, 'TERM', paths.tunnelPid, access.opts());
              const log = (await tailFile(host, paths.tunnelLog, 40, access.opts()))
                .split('\n')
                .filter((l) => !l.startsWith('debug'))
                .slice(-5)
                .join('\n');
              const from = reverse
                ? `${access.login.target} into ${access.node.target}`
                : `${host.target} to ${tunnelArgv(profile).at(-1)}`;
              const permanent = permanentCause('tunnelSsh', log);
              if (permanent) {
                throw new PermanentFault(
                  `the tunnel ssh from ${from} failed: ${log.split('\n').pop()}; ${permanent.fix}`,
                  permanent.type,
                );
              }
              throw new Error(
                `the tunnel ssh from ${from} ${now.alive ? 'did not listen on' : 'exited before listening on'} 127.0.0.1:${port} of the worker node: ${log || 'no output'}`,
              );
            }
            heartbeat({ waitingFor: 'tunnel' });
            await sleep(pollMs);
          }
        } finally {
          release();
        }
      });
    },

    async closeTunnel(ref: GlideinRef): Promise<UndoOutcome> {
      return asStep('closeTunnel', async () => {
        const access = await siteAccess(deps, ref);
        const host = tunnelHost(access);
        const alive = async () =>
          (await inspect(host, [access.paths.tunnelPid], access.opts())).processes.get(access.paths.tunnelPid);
        const first = await alive();
        if (!isTunnelProcess(first)) return { detail: 'no tunnel running' };
        const pid = first.recorded?.pid;
        await signalRecorded(host, 'TERM', access.paths.tunnelPid, access.opts());
        for (let i = 0; i < 50; i++) {
          if (!(await alive())?.alive) return { detail: `closed tunnel pid ${pid}` };
          await sleep(pollMs);
        }
        await signalRecorded(host, 'KILL', access.paths.tunnelPid, access.opts());
        return { detail: `killed tunnel pid ${pid}` };
      });
    },
  };
}
