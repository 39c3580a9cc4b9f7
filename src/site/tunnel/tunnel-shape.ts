/**
 * What a tunnel shape is to the lifecycle (`tunnel.mode`; one kind per file beside this one, index.ts picks one per
 * profile), and what the kinds share: the one liveness rule, the ssh options, and the tunnel's failure rules.
 */
import { parseDuration } from '../../common/duration';
import { FailureType } from '../../common/failure-types';
import type { ProcessRef } from '../../common/types';
import type { Executor, RunOptions } from '../../remote/executor';
import { firstPermanent, type PermanentCause, type PermanentRule } from '../failure-rules';
import type { GlideinPaths } from '../paths';
import type { SiteExecutors } from '../node-access';
import type { SiteProfile } from '../profile';
import type { ProcessState, SiteSnapshot } from '../scripts/processes';
import { RELAY_MARKER } from '../scripts/relay';

/** Printed by `ssh -v` once a remote forward is in place. */
export const REMOTE_FORWARD_READY = 'remote forward success';

export interface TunnelCheck {
  /** The process tunnel.pid names runs, with its recorded start time, and is an ssh with a dynamic forward. */
  alive: boolean;
  /** The SOCKS port listens (on the worker node; for a relay, on the login node). */
  listening: boolean;
  process?: ProcessRef;
  /** The worker node's processes asked for alongside (`alsoOnNode`) and its listening ports. */
  node: SiteSnapshot;
}

export interface TunnelShape {
  /** The SOCKS ports a glidein may lease on its worker node (one: first = last). */
  readonly ports: { first: number; last: number };
  /**
   * The tunnel's command line for SOCKS port `port`, run detached on `host()`; `node`: an allocated worker node;
   * `end`: epoch seconds by which the tunnel ends by itself (the relay; see relayEnd), none: until it is closed.
   */
  argv(port: number, node: string | undefined, paths: GlideinPaths, end?: number): string[];
  /** The host the tunnel's process runs on (and keeps its pid file and log on). */
  host(executors: SiteExecutors): Executor;
  /** Files the tunnel's command needs on `host()`, written before each start (a program, not data). */
  files?(paths: GlideinPaths): Array<{ path: string; content: string }>;
  /** The host the SOCKS port listens on, where its port is leased. */
  portHost(executors: SiteExecutors): Executor;
  /**
   * proxychains' first hop: the ProxyList line, and where a secret it holds comes from (a file on the site that
   * is read into the configuration there, so that the secret never leaves the site).
   */
  firstHop(port: number, paths: GlideinPaths): { line: string; secretFile?: string };
  /** The first hop in an operator's words. */
  describe(port: number): string;
  /** The login node keeps part of the glidein's directory (the tunnel's pid file and log). */
  readonly directoryOnLogin: boolean;
  /** The sshd the tunnel's ssh connects to: where starts are gated (tunnel.startsInFlight). */
  server(node?: string): string;
  /** The spawn's channel forwards our key agent, and stays open until the log shows `ready`. */
  readonly forwardAgent: boolean;
  readonly ready?: { marker: string; seconds: number };
  /** For messages: "<host> to <login>", "<login> into <node>". */
  route(executors: SiteExecutors): string;
  /**
   * The tunnel's liveness and whether its port listens, and the worker node's pid files `alsoOnNode` in the same
   * look: one round trip when the ssh runs on the worker node, one more to the login node when it runs there.
   */
  check(
    executors: SiteExecutors,
    paths: GlideinPaths,
    port: number,
    opts: RunOptions,
    alsoOnNode?: string[],
  ): Promise<TunnelCheck>;
  /** Whether the tunnel's log, as it failed to start, says retrying cannot help. */
  readonly permanentCause: PermanentCause;
}

/** What the tunnel's own `ssh` on the site says when retrying cannot help (a relay's log is read the same way). */
export const TUNNEL_SSH_PERMANENT: readonly PermanentRule[] = [
  {
    pattern: /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No .* host key is known/i,
    type: FailureType.TunnelHostKeyRejected,
    fix: 'add the verified host key to tunnel.knownHostsFile on the site',
  },
  {
    pattern: /Permission denied|Too many authentication failures/i,
    type: FailureType.TunnelAuthRejected,
    fix:
      "check the key (tunnel.identityFile, or the worker's login key for a reverse tunnel) and its " +
      'authorized_keys entry',
  },
  {
    // Something bound the port between our look and the spawn: a squatter, never to be taken for the tunnel.
    pattern: /Address already in use|cannot listen to port|Could not request local forwarding/i,
    type: FailureType.TunnelPortInUse,
    fix:
      'another process on that node listens on the leased SOCKS port; free it, or leave it out of ' +
      'tunnel.socksPorts',
  },
  {
    pattern: /Could not resolve hostname/i,
    type: FailureType.TunnelHostUnknown,
    fix: "check the tunnel's host name",
  },
];

export const tunnelPermanent: PermanentCause = (output, attempt) =>
  firstPermanent(TUNNEL_SSH_PERMANENT, output, attempt);

/**
 * The one rule for "this glidein's tunnel is alive": the process its pid file names runs with the recorded
 * start time and is an ssh with a dynamic forward, or our relay. Opening, monitoring and closing all decide by it.
 */
export function isTunnelProcess(proc: ProcessState | undefined): proc is ProcessState & { recorded: ProcessRef } {
  const cmdline = proc?.cmdline ?? '';
  return (
    !!proc?.alive && !!proc.recorded && (/^\S*ssh\s.*-[DR]/.test(cmdline) || cmdline.split(' ').includes(RELAY_MARKER))
  );
}

export const EMPTY: SiteSnapshot = { processes: new Map(), listening: new Set() };

/** The worker node's SOCKS port, for proxychains there. */
export function localHop(port: number) {
  return { line: `socks5 127.0.0.1 ${port}` };
}

export function sshOptions(tunnel: Forward | Reverse): string[] {
  return [
    '-o',
    'BatchMode=yes',
    '-o',
    'ExitOnForwardFailure=yes',
    '-o',
    `ServerAliveInterval=${Math.max(1, Math.round(parseDuration(tunnel.serverAliveInterval) / 1000))}`,
    '-o',
    'ServerAliveCountMax=3',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${tunnel.knownHostsFile}`,
  ];
}

export function checked(proc: ProcessState | undefined, node: SiteSnapshot, socksPort: number): TunnelCheck {
  const alive = isTunnelProcess(proc);
  return { alive, listening: node.listening.has(socksPort), process: alive ? proc?.recorded : undefined, node };
}

export type Forward = Extract<SiteProfile['tunnel'], { mode: 'forward' }>;
export type Reverse = Extract<SiteProfile['tunnel'], { mode: 'reverse' }>;
export type Relay = Extract<SiteProfile['tunnel'], { mode: 'relay' }>;
