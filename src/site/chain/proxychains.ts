/**
 * The proxy chain every glidein connection takes: SOCKS tunnel to the login node, then KIT's HTTP CONNECT proxy,
 * then the target. Renders proxychains.conf, pre-loads the library into processes started in the container, and
 * reads proxychains' own chain report to say which hop failed.
 */
import { isIP } from 'node:net';
import type { SiteProfile } from '../profile';
import { httpProbeArgv, tcpProbeArgv } from '../scripts/files';
import type { ContainerRuntime } from '../container';

export type Hop = 'tunnel' | 'kit' | 'target';

export interface ChainReport {
  ok: boolean;
  /** The first hop that failed, when proxychains got that far. */
  failedHop?: Hop;
  line?: string;
}

export interface ProxyChain {
  /** proxychains.conf for this glidein, with the KIT proxy by numeric IPv4 address, after the tunnel's hop. */
  render(kitAddress: string, glideinId: string, firstHop: string): string;
  /** The environment that pre-loads proxychains into a process started in the container. */
  preloadEnv(confFile: string, quiet: boolean): Record<string, string>;
  /** A TCP connection to host:port through the chain, from the worker node (proxychains4 -f …). */
  probeArgv(confFile: string, host: string, port: number): string[];
  /** An HTTP GET of `url` sent to host:port (a proxy such as a Frontier squid) through the chain, from the node. */
  httpProbeArgv(confFile: string, host: string, port: number, url: string): string[];
  /**
   * The environment (RunOptions.env) under which a command on the worker node, outside any container, and its
   * children take the chain: the library pre-loaded, quiet, so the command's own output is what comes back.
   */
  chainedEnv(confFile: string): Record<string, string>;
  /** The same, inside the container instance, routed only by the pre-loaded library (with preloadEnv). */
  preloadProbeArgv(instance: string, host: string, port: number): string[];
  /** The hop a report names, in an operator's words. */
  hopName(hop: Hop | undefined, target: string, socksPort?: number): string;
}

export function renderProxychainsConf(
  profile: SiteProfile,
  kitAddress: string,
  glideinId: string,
  firstHop = `socks5 127.0.0.1 ${profile.tunnel.socksPort}`,
): string {
  if (isIP(kitAddress) !== 4)
    throw new Error(`proxychains needs a numeric IPv4 address for the KIT proxy, got ${kitAddress}`);
  return [
    `# proxychains-ng configuration for glidein ${glideinId} at site ${profile.name}, written by jsc-glidein.`,
    '# Chain: worker node -> SOCKS tunnel (or relay) to the login node -> KIT HTTP CONNECT proxy -> target.',
    'strict_chain',
    'proxy_dns',
    'remote_dns_subnet 224',
    'tcp_read_time_out 15000',
    'tcp_connect_time_out 8000',
    ...profile.proxychains.localnet.map((net) => `localnet ${net}`),
    '',
    '[ProxyList]',
    firstHop,
    `http ${kitAddress} ${profile.kitProxy.port}`,
    '',
  ].join('\n');
}

/**
 * proxychains-ng reports each connection as one line, e.g.
 *   [proxychains] Strict chain  ...  127.0.0.1:1080  ...  10.0.0.3:80  ...  10.0.0.4:9618  ...  OK
 *   [proxychains] Strict chain  ...  127.0.0.1:1080  ...  10.0.0.3:80 <--socket error or timeout!
 * The hop that failed is the last address printed before the error marker.
 */
export function parseChainReport(output: string): ChainReport {
  const line = output
    .split('\n')
    .filter((l) => /\[proxychains\].*chain/i.test(l))
    .pop();
  if (!line) return { ok: false };
  if (/\bOK\s*$/.test(line)) return { ok: true, line: line.trim() };
  const hops = line
    .split(/\s+\.\.\.\s+|\s+<--/)
    .slice(1)
    .filter((p) => /^\S+:\d+$/.test(p.trim()));
  const failedHop: Hop = (['tunnel', 'kit', 'target'] as const)[Math.min(Math.max(hops.length - 1, 0), 2)];
  return { ok: false, failedHop, line: line.trim() };
}

/** `describeTunnel`: the first hop in an operator's words (the tunnel shape's describe). */
export function proxyChainFor(
  profile: SiteProfile,
  container: ContainerRuntime,
  describeTunnel: (port: number) => string,
): ProxyChain {
  const { proxychains } = profile;
  /** What pre-loads the chain into a process, on the node or (through the runtime's env) in the container. */
  const preload = (confFile: string, quiet: boolean): Record<string, string> => ({
    LD_PRELOAD: proxychains.library,
    PROXYCHAINS_CONF_FILE: confFile,
    ...(quiet ? { PROXYCHAINS_QUIET_MODE: '1' } : {}),
  });
  return {
    render: (kitAddress, glideinId, firstHop) => renderProxychainsConf(profile, kitAddress, glideinId, firstHop),
    preloadEnv: (confFile, quiet) => container.env(preload(confFile, quiet)),
    chainedEnv: (confFile) => preload(confFile, true),
    probeArgv: (confFile, host, port) => [proxychains.executable, '-f', confFile, ...tcpProbeArgv(host, port)],
    httpProbeArgv: (confFile, host, port, url) => [
      proxychains.executable,
      '-f',
      confFile,
      ...httpProbeArgv(host, port, url),
    ],
    preloadProbeArgv: (instance, host, port) => container.execArgv(instance, tcpProbeArgv(host, port)),
    hopName(hop, target, socksPort = profile.tunnel.socksPort) {
      switch (hop) {
        case 'tunnel':
          return describeTunnel(socksPort);
        case 'kit':
          return `the KIT proxy ${profile.kitProxy.host}:${profile.kitProxy.port} (reached through the login node)`;
        case 'target':
          return `the target ${target} (the KIT proxy could not connect to it)`;
        default:
          return 'the chain (proxychains printed no chain report)';
      }
    },
  };
}
