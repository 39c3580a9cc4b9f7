/**
 * The proxy chain every glidein connection takes (src/site/chain/): writes proxychains.conf,
 * proves a connection through tunnel -> KIT -> target from the worker node, and proves that the LD_PRELOAD inside
 * the container routes one too.
 */
import { isIP } from 'node:net';
import type { GlideinRef } from '../common/types';
import { runChecked, type Executor, type RunOptions } from '../remote/executor';
import { parseChainReport, type ChainReport } from '../site/adapters';
import { SECRET_PLACEHOLDER } from '../site/tunnel';
import { parseHttpStatus, writeFileArgv, writeWithSecretArgv } from '../site/scripts/files';
import type { ActivityDeps } from './deps';
import { asStep } from './to-failure';
import { siteAccess, type SiteAccess } from './site-access';
import { FailureType, PermanentFault } from '../common/failure-types';

/** Resolves the KIT proxy's IPv4 address on the login node, where the chain leaves the site. */
async function resolveKitAddress(access: SiteAccess): Promise<string> {
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

async function writeProxychainsConf(access: SiteAccess): Promise<string> {
  const kit = await resolveKitAddress(access);
  const { paths } = access;
  const hop = access.adapters.tunnel.firstHop(access.socksPort, paths);
  const conf = access.adapters.chain.render(kit, access.ref.glideinId, hop.line);
  await runChecked(
    access.node,
    'writing proxychains.conf',
    hop.secretFile
      ? writeWithSecretArgv(paths.configDir, paths.proxychainsConf, hop.secretFile, SECRET_PLACEHOLDER)
      : writeFileArgv(paths.configDir, paths.proxychainsConf),
    access.opts({ stdin: conf }),
  );
  return kit;
}

async function probeChain(
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

type OutboundCheck = NonNullable<SiteAccess['profile']['outboundChecks']>[number];

/**
 * One check through the chain: what proxychains reported (and the HTTP status line), or an error naming it
 * (`named`: one of the profile's outboundChecks, named in the error; the collector's check is not).
 */
async function runOutboundCheck(access: SiteAccess, check: OutboundCheck, named: boolean): Promise<string> {
  const { chain } = access.adapters;
  const conf = access.paths.proxychainsConf;
  const target = `${check.host}:${check.port}`;
  const what = check.http ? `GET ${check.http} via ${target}` : target;
  const argv = check.http
    ? chain.httpProbeArgv(conf, check.host, check.port, check.http)
    : chain.probeArgv(conf, check.host, check.port);
  const report = await probeChain(access.node, argv, undefined, access.opts({ timeoutMs: 30_000 }));
  const label = named ? `outbound check ${check.name}: ` : '';
  if (!report.ok) {
    throw new Error(
      `${label}no outbound connection to ${what}: ` +
        `${chain.hopName(report.failedHop, target, access.socksPort)} ` +
        `failed${report.line ? ` (${report.line})` : ''}`,
    );
  }
  if (!check.http) return report.line ?? 'OK';
  const status = parseHttpStatus(report.output);
  if (!status || status.code >= 400) {
    throw new Error(
      `${label}${what} reached ${target} through the chain, but it answered ` +
        `${status ? `"${status.line}"` : 'nothing an HTTP server would'}`,
    );
  }
  return status.line;
}

export function createProxychainsActivities(deps: ActivityDeps) {
  return {
    /**
     * Through tunnel -> KIT -> target from the worker node: a TCP connection to the collector (or outboundCheck),
     * then each of the profile's outboundChecks (TCP, or an HTTP GET through a proxy such as a Frontier squid).
     * The first that fails names itself, its target and the hop that failed.
     */
    async verifyOutbound(ref: GlideinRef): Promise<{ chain: string; target: string; checked?: string[] }> {
      return asStep('verifyOutbound', async () => {
        const access = await siteAccess(deps, ref, 'claim');
        const { profile } = access;
        const first = profile.outboundCheck ?? profile.collector;
        await writeProxychainsConf(access);
        const chain = await runOutboundCheck(access, { name: 'collector', ...first }, false);
        const checked: string[] = [];
        for (const check of profile.outboundChecks ?? [])
          checked.push(`${check.name}: ${await runOutboundCheck(access, check, true)}`);
        return { chain, target: `${first.host}:${first.port}`, ...(checked.length > 0 ? { checked } : {}) };
      });
    },

    /** Proves that LD_PRELOAD of proxychains inside the container routes a connection through the chain. */
    async preloadProxychains(ref: GlideinRef): Promise<{ chain: string }> {
      return asStep('preloadProxychains', async () => {
        const access = await siteAccess(deps, ref, 'claim');
        const { profile } = access;
        const { chain } = access.adapters;
        await writeProxychainsConf(access);
        const target = `${profile.collector.host}:${profile.collector.port}`;
        const report = await probeChain(
          access.node,
          chain.preloadProbeArgv(access.instance, profile.collector.host, profile.collector.port),
          chain.preloadEnv(access.paths.proxychainsConf, false),
          access.opts({ timeoutMs: 30_000 }),
        );
        if (!report.line) {
          throw new PermanentFault(
            `the proxychains library ${profile.proxychains.library} was not pre-loaded in container ` +
              `${access.instance}: the probe's connection bypassed the chain (output: ` +
              `${report.output.trim().slice(0, 300) || 'none'})`,
            FailureType.PreloadFailed,
          );
        }
        if (!report.ok)
          throw new Error(
            `the pre-loaded chain did not reach ${target}: ` +
              `${chain.hopName(report.failedHop, target, access.socksPort)} failed (${report.line})`,
          );
        return { chain: report.line };
      });
    },
  };
}
