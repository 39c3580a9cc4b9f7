/**
 * The proxy chain every glidein connection takes: SOCKS tunnel to the login node, then KIT's HTTP CONNECT
 * proxy, then the target. Renders proxychains.conf, reads proxychains' own chain report to say which hop
 * failed, and proves the LD_PRELOAD inside the container routes a connection.
 */
import { isIP } from 'node:net';
import type { GlideinRef } from '../common/types';
import { runChecked, type Executor, type RunOptions } from '../remote/executor';
import { TCP_PROBE, WRITE_FILE } from '../remote/scripts';
import type { SiteProfile } from '../site/profile';
import { containerRuntime } from './container';
import type { ActivityDeps } from './deps';
import { PermanentFault, asStep } from './failures';
import { siteAccess, type SiteAccess } from './site-access';
import { FailureType } from '../common/failure-types';

export function renderProxychainsConf(profile: SiteProfile, kitAddress: string, glideinId: string): string {
  if (isIP(kitAddress) !== 4)
    throw new Error(`proxychains needs a numeric IPv4 address for the KIT proxy, got ${kitAddress}`);
  return [
    `# proxychains-ng configuration for glidein ${glideinId} at site ${profile.name}, written by jsc-glidein.`,
    '# Chain: worker node -> SOCKS tunnel to the login node -> KIT HTTP CONNECT proxy -> target.',
    'strict_chain',
    'proxy_dns',
    'remote_dns_subnet 224',
    'tcp_read_time_out 15000',
    'tcp_connect_time_out 8000',
    ...profile.proxychains.localnet.map((net) => `localnet ${net}`),
    '',
    '[ProxyList]',
    `socks5 127.0.0.1 ${profile.tunnel.socksPort}`,
    `http ${kitAddress} ${profile.kitProxy.port}`,
    '',
  ].join('\n');
}

export type Hop = 'tunnel' | 'kit' | 'target';

export interface ChainReport {
  ok: boolean;
  /** The first hop that failed, when proxychains got that far. */
  failedHop?: Hop;
  line?: string;
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

/** Resolves the KIT proxy's IPv4 address on the login node, where the chain leaves the site. */
export async function resolveKitAddress(access: SiteAccess): Promise<string> {
  const { host } = access.profile.kitProxy;
  if (isIP(host) === 4) return host;
  const result = await access.login.run(['getent', 'ahostsv4', host], access.opts({ timeoutMs: 15_000 }));
  const address = result.stdout.split(/\s+/)[0];
  if (result.code !== 0 || isIP(address) !== 4) {
    throw new Error(
      `kitProxy.host ${host} does not resolve to an IPv4 address on the login node ${access.login.target}`,
    );
  }
  return address;
}

export async function writeProxychainsConf(access: SiteAccess): Promise<string> {
  const kit = await resolveKitAddress(access);
  const conf = renderProxychainsConf(access.profile, kit, access.ref.glideinId);
  await runChecked(
    access.node,
    'writing proxychains.conf',
    ['sh', '-c', WRITE_FILE, 'sh', access.paths.dir, access.paths.proxychainsConf],
    access.opts({ stdin: conf }),
  );
  return kit;
}

/** The environment that pre-loads proxychains into a process started in the container. */
export function preloadEnv(profile: SiteProfile, confFile: string, quiet: boolean): Record<string, string> {
  const prefix = containerRuntime(profile).envPrefix;
  return {
    [`${prefix}LD_PRELOAD`]: profile.proxychains.library,
    [`${prefix}PROXYCHAINS_CONF_FILE`]: confFile,
    ...(quiet ? { [`${prefix}PROXYCHAINS_QUIET_MODE`]: '1' } : {}),
  };
}

function hopName(hop: Hop | undefined, profile: SiteProfile, target: string): string {
  switch (hop) {
    case 'tunnel':
      return `the SOCKS tunnel to the login node (127.0.0.1:${profile.tunnel.socksPort} on the worker node)`;
    case 'kit':
      return `the KIT proxy ${profile.kitProxy.host}:${profile.kitProxy.port} (reached through the login node)`;
    case 'target':
      return `the target ${target} (the KIT proxy could not connect to it)`;
    default:
      return 'the chain (proxychains printed no chain report)';
  }
}

export async function probeChain(
  exec: Executor,
  argv: string[],
  env: Record<string, string> | undefined,
  opts: RunOptions,
): Promise<ChainReport & { output: string }> {
  const result = await exec.run(argv, { ...opts, env });
  const output = `${result.stderr}\n${result.stdout}`;
  const report = parseChainReport(output);
  return { ...report, ok: report.ok && result.code === 0, output };
}

export function createProxychainsActivities(deps: ActivityDeps) {
  return {
    /** A TCP connection through tunnel -> KIT -> collector (or outboundCheck) from the worker node. */
    async verifyOutbound(ref: GlideinRef): Promise<{ chain: string; target: string }> {
      return asStep('verifyOutbound', async () => {
        const access = await siteAccess(deps, ref, 'claim');
        const { profile } = access;
        await writeProxychainsConf(access);
        const check = profile.outboundCheck ?? profile.collector;
        const target = `${check.host}:${check.port}`;
        const argv = [
          profile.proxychains.executable,
          '-f',
          access.paths.proxychainsConf,
          'bash',
          '-c',
          TCP_PROBE,
          'probe',
          check.host,
          String(check.port),
        ];
        const report = await probeChain(access.node, argv, undefined, access.opts({ timeoutMs: 30_000 }));
        if (!report.ok) {
          throw new Error(
            `no outbound connection to ${target}: ${hopName(report.failedHop, profile, target)} failed${report.line ? ` (${report.line})` : ''}`,
          );
        }
        return { chain: report.line ?? 'OK', target };
      });
    },

    /** Proves that LD_PRELOAD of proxychains inside the container routes a connection through the chain. */
    async preloadProxychains(ref: GlideinRef): Promise<{ chain: string }> {
      return asStep('preloadProxychains', async () => {
        const access = await siteAccess(deps, ref, 'claim');
        const { profile } = access;
        await writeProxychainsConf(access);
        const target = `${profile.collector.host}:${profile.collector.port}`;
        const runtime = containerRuntime(profile);
        const argv = [
          runtime.executable,
          'exec',
          `instance://${access.instance}`,
          'bash',
          '-c',
          TCP_PROBE,
          'probe',
          profile.collector.host,
          String(profile.collector.port),
        ];
        const report = await probeChain(
          access.node,
          argv,
          preloadEnv(profile, access.paths.proxychainsConf, false),
          access.opts({ timeoutMs: 30_000 }),
        );
        if (!report.line) {
          throw new PermanentFault(
            `the proxychains library ${profile.proxychains.library} was not pre-loaded in container ${access.instance}: the probe's connection bypassed the chain (output: ${report.output.trim().slice(0, 300) || 'none'})`,
            FailureType.PreloadFailed,
          );
        }
        if (!report.ok)
          throw new Error(
            `the pre-loaded chain did not reach ${target}: ${hopName(report.failedHop, profile, target)} failed (${report.line})`,
          );
        return { chain: report.line };
      });
    },
  };
}
