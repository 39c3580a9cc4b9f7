/**
 * The SOCKS tunnel that carries the glidein's connections out of the worker node, in the shape the profile
 * chooses (src/site/tunnel/: forward from the worker node, or reverse from the login node). Either way
 * the process is recorded as "pid starttime" in tunnel.pid, reused while it lives and the port listens on the
 * worker node, and closing signals exactly that process.
 */
import type { GlideinRef, TunnelInfo, UndoOutcome } from '../common/types';
import { lastLines, runChecked } from '../remote/executor';
import { Semaphore } from '../remote/semaphore';
import { isTunnelProcess, relayEnd } from '../site/adapters';
import {
  inspect,
  signalAndWait,
  signalRecorded,
  spawnDetached,
  spawnedProcess,
  tailFile,
} from '../site/scripts/processes';
import { writeFileArgv } from '../site/scripts/files';
import { parsePortLease, parsePortRelease, portLeaseArgv, portReleaseArgv } from '../site/scripts/ports';
import type { ActivityDeps } from './deps';
import { asStep } from './to-failure';
import { heartbeat, heartbeatWhile, sleep } from './kit';
import { siteAccess, unlessAllocationEnded, type SiteAccess } from './site-access';
import { FailureType, PermanentFault } from '../common/failure-types';

/** The tunnel's liveness and whether its SOCKS port listens on the worker node. */
function tunnelState(access: SiteAccess, port: number) {
  return access.adapters.tunnel.check(access, access.paths, port, access.opts());
}

/** Where a site's SOCKS port leases live: in its work directory, per node. */
const portLeaseRoot = (access: SiteAccess) => `${access.profile.workDir}/.ports`;

/**
 * This glidein's SOCKS port. With one port in the profile it is that one; with a range, the port it leases on its
 * worker node, found again by a retry or a reopening.
 */
async function leasePort(access: SiteAccess): Promise<number> {
  const { first, last } = access.adapters.tunnel.ports;
  if (first === last) return first;
  const host = access.adapters.tunnel.portHost(access);
  const result = await runChecked(
    host,
    'leasing a SOCKS port',
    portLeaseArgv({ root: portLeaseRoot(access), glideinId: access.ref.glideinId, first, last }),
    access.opts(),
  );
  const lease = parsePortLease(result.stdout);
  if (lease.state === 'exhausted')
    // Retried: ports come free as other glideins on the node end.
    throw new Error(
      `every port of tunnel.socksPorts ${first}-${last} on ${host.target} is leased by another glidein or in use (${
        lastLines(result.stderr, 6).replace(/\n/g, '; ') || 'no detail'
      })`,
    );
  return lease.port;
}

/** What openTunnel knows of its glidein's life; absent in histories from before it: the tunnel runs until closed. */
export interface TunnelLifetime {
  /** The glidein's die time, epoch seconds (startGlidein's `dieAt`): the relay ends by itself soon after (relayEnd). */
  dieAt?: number;
}

/** The latest die time taken (the year 2242): a larger one is a caller's error, not a lifetime. */
const MAX_DIE_AT = 2 ** 33;

function dieAtOf(lifetime: TunnelLifetime | undefined): number | undefined {
  const dieAt: unknown = lifetime?.dieAt;
  if (dieAt === undefined) return undefined;
  if (typeof dieAt !== 'number' || !Number.isSafeInteger(dieAt) || dieAt <= 0 || dieAt > MAX_DIE_AT)
    throw new PermanentFault(
      `dieAt: ${JSON.stringify(dieAt)} is not a time in epoch seconds (a whole number from 1 to ${MAX_DIE_AT})`,
      FailureType.InvalidRequest,
    );
  return dieAt;
}

export function createTunnelActivities(deps: ActivityDeps) {
  const pollMs = deps.pollMs ?? 200;
  /** Tunnel starts in flight per sshd, in this worker process (tunnel.startsInFlight). */
  const starting = new Map<string, Semaphore>();
  async function startSlot(access: SiteAccess): Promise<() => void> {
    const server = access.adapters.tunnel.server(access.ref.node);
    const limit = access.profile.tunnel.startsInFlight;
    let gate = starting.get(server);
    if (!gate || gate.limit !== limit) {
      gate = new Semaphore(limit);
      starting.set(server, gate);
    }
    return heartbeatWhile(
      1_000,
      () => gate.acquire(access.opts().signal),
      () => ({ waitingFor: `a tunnel start slot for ${server}` }),
    );
  }
  return {
    async openTunnel(ref: GlideinRef, lifetime?: TunnelLifetime): Promise<TunnelInfo> {
      return asStep('openTunnel', async () => {
        if (lifetime !== undefined && (typeof lifetime !== 'object' || lifetime === null || Array.isArray(lifetime)))
          throw new PermanentFault(
            `the tunnel's lifetime: ${JSON.stringify(lifetime)} is not an object such as {"dieAt": 1767225600}`,
            FailureType.InvalidRequest,
          );
        const dieAt = dieAtOf(lifetime);
        const access = await siteAccess(deps, ref, 'claim');
        const { paths } = access;
        const tunnel = access.adapters.tunnel;
        const host = tunnel.host(access);
        const port = await leasePort(access);
        // The start slot first: the look at the port must be the last before the spawn, not one taken before a
        // wait in the queue (a process that binds the port meanwhile would otherwise be taken for the tunnel).
        const release = await startSlot(access);
        try {
          const state = await tunnelState(access, port);
          if (state.alive && state.listening) return { socksPort: port, process: state.process!, reused: true };
          if (state.alive)
            await signalRecorded(host, 'TERM', paths.tunnelPid, access.opts()); // alive but not forwarding: replace it
          else if (state.listening) {
            throw new PermanentFault(
              `SOCKS port ${port} on ${tunnel.portHost(access).target} is taken by a process that is not ` +
                `this glidein's tunnel`,
              FailureType.TunnelPortInUse,
            );
          }
          await runChecked(host, 'creating the work directory', ['mkdir', '-p', paths.dir], access.opts());
          for (const file of tunnel.files?.(paths) ?? [])
            await runChecked(
              host,
              `writing ${file.path}`,
              writeFileArgv(paths.dir, file.path),
              access.opts({ stdin: file.content }),
            );
          const spawned = await spawnDetached(
            host,
            tunnel.argv(port, ref.node, paths, dieAt === undefined ? undefined : relayEnd(dieAt, Date.now())),
            {
              log: paths.tunnelLog,
              pidFile: paths.tunnelPid,
              // A shape without a ready marker (forward) listens where it is spawned: the spawn waits for the port
              // on the site, so a tunnel that starts is one round trip, not a poll over ssh.
              ...(tunnel.ready ? { awaitLog: tunnel.ready } : { awaitListen: { port, seconds: 20 } }),
            },
            access.opts({ forwardAgent: tunnel.forwardAgent, persists: true }),
          );
          // `started`: it lives and its port listens (its marker says so, or the site saw the port).
          if ('started' in spawned) return { socksPort: port, process: spawned.started, reused: false };
          // `waiting`: the marker did not show in time but the process lives; the port decides, as for any tunnel.
          const child = spawnedProcess(spawned);
          const deadline = Date.now() + 30_000;
          for (;;) {
            const now = await tunnelState(access, port);
            if (now.alive && now.listening && child)
              return { socksPort: port, process: now.process ?? child, reused: false };
            if (!now.alive || Date.now() > deadline) {
              await signalRecorded(host, 'TERM', paths.tunnelPid, access.opts());
              const log = (await tailFile(host, paths.tunnelLog, 40, access.opts()))
                .split('\n')
                .filter((l) => !l.startsWith('debug'))
                .slice(-5)
                .join('\n');
              const from = tunnel.route(access);
              const permanent = tunnel.permanentCause(log);
              if (permanent) {
                throw new PermanentFault(
                  `the tunnel ssh from ${from} failed: ${log.split('\n').pop()}; ${permanent.fix}`,
                  permanent.type,
                );
              }
              throw new Error(
                `the tunnel from ${from} ${now.alive ? 'did not listen as' : 'exited before listening as'} ` +
                  `${tunnel.describe(port)}: ${log || 'no output'}`,
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
      return asStep('closeTunnel', () =>
        unlessAllocationEnded(async () => {
          const access = await siteAccess(deps, ref);
          const closed = await closeProcess(access);
          const { first, last } = access.adapters.tunnel.ports;
          if (first === last) return { detail: closed };
          // The port goes back once nothing of ours listens on it.
          const released = parsePortRelease(
            (
              await runChecked(
                access.adapters.tunnel.portHost(access),
                'releasing the SOCKS port',
                portReleaseArgv(portLeaseRoot(access), ref.glideinId),
                access.opts(),
              )
            ).stdout,
          );
          return { detail: released.state === 'released' ? `${closed}; port ${released.port} released` : closed };
        }),
      );
    },
  };

  async function closeProcess(access: SiteAccess): Promise<string> {
    const host = access.adapters.tunnel.host(access);
    const alive = async () =>
      (await inspect(host, [access.paths.tunnelPid], access.opts())).processes.get(access.paths.tunnelPid);
    const first = await alive();
    if (!isTunnelProcess(first)) return 'no tunnel running';
    const pid = first.recorded?.pid;
    // Signalled and waited for on the site, in one command (no poll over ssh); killed if it outlives the wait.
    const outcome = await signalAndWait(host, 'TERM', access.paths.tunnelPid, 10_000, access.opts());
    if (outcome.state !== 'running') return `closed tunnel pid ${pid}`;
    await signalRecorded(host, 'KILL', access.paths.tunnelPid, access.opts());
    return `killed tunnel pid ${pid}`;
  }
}
