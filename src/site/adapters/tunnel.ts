/**
 * The shape of the SOCKS tunnel (`tunnel.mode`), the only place that tells the three apart:
 *  - forward: `ssh -N -D 127.0.0.1:<port>` started on the worker node towards the login node (the seed's way;
 *    needs a key stored on the site);
 *  - reverse: `ssh -N -R 127.0.0.1:<port>` started on the login node into the worker node, authenticated by our
 *    key agent forwarded on that one channel (no key on the site; needs an sshd on the worker node). The port
 *    appears on the worker node;
 *  - relay: an authenticated SOCKS5 relay (src/site/scripts/relay.ts) started on the login node, listening on its
 *    cluster address; no key on the site, no sshd on the worker node. The port listens on the login node.
 * The tunnel's process is recorded in tunnel.pid on the host it runs on.
 */
import { parseDuration } from '../../common/duration';
import { FailureType, PermanentFault } from '../../common/failure-types';
import type { ProcessRef } from '../../common/types';
import type { Executor, RunOptions } from '../../remote/executor';
import { firstPermanent, type PermanentCause, type PermanentRule } from '../failure-rules';
import type { GlideinPaths } from '../paths';
import { portRange, type SiteProfile } from '../profile';
import { inspect, type ProcessState, type SiteSnapshot } from '../scripts/processes';
import { RELAY_MARKER, RELAY_PY, RELAY_READY, relayArgv } from '../scripts/relay';
import type { NodeAccess, SiteExecutors } from '../node-access';

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

const tunnelPermanent: PermanentCause = (output, attempt) => firstPermanent(TUNNEL_SSH_PERMANENT, output, attempt);

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

const EMPTY: SiteSnapshot = { processes: new Map(), listening: new Set() };

/** The worker node's SOCKS port, for proxychains there. */
function localHop(port: number) {
  return { line: `socks5 127.0.0.1 ${port}` };
}

function sshOptions(tunnel: Forward | Reverse): string[] {
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

function checked(proc: ProcessState | undefined, node: SiteSnapshot, socksPort: number): TunnelCheck {
  const alive = isTunnelProcess(proc);
  return { alive, listening: node.listening.has(socksPort), process: alive ? proc?.recorded : undefined, node };
}

type Forward = Extract<SiteProfile['tunnel'], { mode: 'forward' }>;
type Reverse = Extract<SiteProfile['tunnel'], { mode: 'reverse' }>;
type Relay = Extract<SiteProfile['tunnel'], { mode: 'relay' }>;

function forward(profile: SiteProfile, t: Forward): TunnelShape {
  return {
    permanentCause: tunnelPermanent,
    ports: portRange(t),
    argv: (port) => [
      'ssh',
      '-F',
      '/dev/null',
      '-N',
      '-D',
      `127.0.0.1:${port}`,
      ...sshOptions(t),
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
    ],
    host: (ex) => ex.node,
    portHost: (ex) => ex.node,
    firstHop: localHop,
    describe: (port) => `the SOCKS tunnel to the login node (127.0.0.1:${port} on the worker node)`,
    directoryOnLogin: false,
    server: () => `${t.loginHost}:${t.loginPort}`,
    forwardAgent: false,
    route: (ex) => `${ex.node.target} to ${t.loginHost}`,
    async check(ex, paths, port, opts, alsoOnNode = []) {
      const node = await inspect(ex.node, [paths.tunnelPid, ...alsoOnNode], opts);
      return checked(node.processes.get(paths.tunnelPid), node, port);
    },
  };
}

function reverse(profile: SiteProfile, t: Reverse, nodeAccess: NodeAccess): TunnelShape {
  const target = (node: string | undefined) => {
    const address = nodeAccess.nodeAddress(node);
    if (!address)
      throw new PermanentFault(
        'a reverse tunnel needs a worker node to start into (workerNode.via "jump", or an allocated Slurm node)',
        FailureType.NoNodeAllocated,
      );
    return address;
  };
  return {
    permanentCause: tunnelPermanent,
    ports: portRange(t),
    argv(port, node) {
      const to = target(node);
      return [
        'ssh',
        '-F',
        '/dev/null',
        '-N',
        '-v',
        '-R',
        `127.0.0.1:${port}`,
        ...sshOptions(t),
        '-o',
        'ForwardAgent=no',
        // Only the forwarded agent: never a key file that happens to lie in the site account's ~/.ssh.
        '-o',
        'IdentityFile=none',
        '-p',
        String(to.port),
        '-l',
        to.user,
        '--',
        to.host,
      ];
    },
    host: (ex) => ex.login,
    portHost: (ex) => ex.node,
    firstHop: localHop,
    describe: (port) => `the SOCKS tunnel to the login node (127.0.0.1:${port} on the worker node)`,
    directoryOnLogin: true,
    server(node) {
      const to = target(node);
      return `${to.host}:${to.port}`;
    },
    // The tunnel authenticates with the agent of the spawning channel: keep it open until the forward is up.
    forwardAgent: true,
    ready: { marker: REMOTE_FORWARD_READY, seconds: 20 },
    route: (ex) => `${ex.login.target} into ${ex.node.target}`,
    async check(ex, paths, port, opts, alsoOnNode = []) {
      const node = await inspect(ex.node, alsoOnNode, opts);
      const login = await inspect(ex.login, [paths.tunnelPid], opts);
      return checked(login.processes.get(paths.tunnelPid), node, port);
    },
  };
}

/** The relay on the login node; the KIT proxy is the one next hop it connects to. */
function relay(profile: SiteProfile, t: Relay): TunnelShape {
  const at = (port: number) => `${t.listenAddress}:${port}`;
  return {
    permanentCause: tunnelPermanent,
    ports: portRange(t),
    // The program as a file: in argv (python3 -c) its lines would be the process's cmdline, which every
    // inspection of the site reads line by line.
    files: (paths) => [{ path: paths.relayProgram, content: RELAY_PY }],
    argv: (port, _node, paths, end) => [
      t.python,
      paths.relayProgram,
      ...relayArgv({
        listenHost: t.listenAddress,
        port,
        secretFile: paths.relaySecret,
        allow: [`${profile.kitProxy.host}:${profile.kitProxy.port}`],
        dieAt: end,
      }).slice(3),
    ],
    host: (ex) => ex.login,
    portHost: (ex) => ex.login,
    firstHop: (port, paths) => ({
      line: `socks5 ${t.listenAddress} ${port} glidein ${SECRET_PLACEHOLDER}`,
      secretFile: paths.relaySecret,
    }),
    describe: (port) => `the SOCKS relay on the login node (${at(port)})`,
    directoryOnLogin: true,
    server: () => t.listenAddress,
    forwardAgent: false,
    ready: { marker: RELAY_READY, seconds: 20 },
    route: (ex) => `${ex.login.target} (relay on ${t.listenAddress})`,
    async check(ex, paths, port, opts, alsoOnNode = []) {
      const login = await inspect(ex.login, [paths.tunnelPid], opts);
      const node = alsoOnNode.length > 0 ? await inspect(ex.node, alsoOnNode, opts) : EMPTY;
      const proc = login.processes.get(paths.tunnelPid);
      const alive = isTunnelProcess(proc);
      return { alive, listening: login.listening.has(port), process: alive ? proc?.recorded : undefined, node };
    },
  };
}

/** How long the relay outlives its glidein's die time: the daemons' last words on their way down still pass. */
export const RELAY_AFTER_DIE_S = 60;
/** The least a relay is started for: setup already under way past the glidein's die time still finishes. */
export const RELAY_MIN_LIFE_S = 600;

/**
 * When a tunnel started now ends by itself (epoch seconds), for a glidein that dies at `dieAt` (epoch seconds,
 * startGlidein's): a minute after, and never sooner than ten minutes from now, so that a workflow still setting
 * up past its glidein's die time (a long queue wait) ends by its deadline as before instead of losing its chain.
 */
export function relayEnd(dieAt: number, nowMs: number): number {
  return Math.max(dieAt + RELAY_AFTER_DIE_S, Math.ceil(nowMs / 1000) + RELAY_MIN_LIFE_S);
}

/** Stands for the relay's secret in a rendered proxychains.conf until the site fills it in (WRITE_WITH_SECRET). */
export const SECRET_PLACEHOLDER = '@SECRET@';

export function tunnelFor(profile: SiteProfile, nodeAccess: NodeAccess): TunnelShape {
  const t = profile.tunnel;
  switch (t.mode) {
    case 'forward':
      return forward(profile, t);
    case 'reverse':
      return reverse(profile, t, nodeAccess);
    case 'relay':
      return relay(profile, t);
  }
}
