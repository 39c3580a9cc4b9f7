/**
 * Tunnel shape `relay`: an authenticated SOCKS5 relay (src/site/scripts/relay.ts) started on the login node,
 * listening on its cluster address; no key on the site, no sshd on the worker node. The port listens on the login
 * node.
 */
import { portRange, type SiteProfile } from '../profile';
import { inspect } from '../scripts/processes';
import { RELAY_PY, RELAY_READY, relayArgv } from '../scripts/relay';
import { EMPTY, isTunnelProcess, tunnelPermanent, type Relay, type TunnelShape } from './tunnel-shape';

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

export /** The relay on the login node; the KIT proxy is the one next hop it connects to. */
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
