/**
 * The plan bench/manual-lifecycle.sh runs: every remote command line of a lifecycle, built by the project's
 * own builders (the site adapters, src/site/adapters.ts, and the site scripts, src/site/scripts/) and quoted by its
 * one quoting helper (commandLine), as bash variables. So the script issues exactly what the activities issue; only the
 * orchestration differs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { instanceName } from '../src/common/naming';
import { commandLine, quoteArg } from '../src/remote/quote';
import { adaptersFor, GLIDEIN_SETTLE_MS } from '../src/site/adapters';
import { pathsFor } from '../src/site/paths';
import type { SiteProfile } from '../src/site/profile';
import { inspectArgv, signalArgv, spawnArgv, writeFileArgv } from '../src/site/scripts';

export interface ManualPlan {
  /** The bash file to pass to manual-lifecycle.sh. */
  file: string;
  /** Remote commands of a lifecycle without retries or extra polls, for reference. */
  commands: number;
}

/** Writes `<dir>/<glideinId>.plan.sh` (and the proxychains.conf it uploads) for a jump-host, forward-tunnel profile. */
export function writeManualPlan(
  profile: SiteProfile,
  glideinId: string,
  controlSocket: string,
  dir: string,
): ManualPlan {
  if (profile.workerNode.via !== 'jump' || profile.tunnel.mode !== 'forward')
    throw new Error('the manual lifecycle is written for workerNode.via jump and a forward tunnel');
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(profile.kitProxy.host))
    throw new Error('kitProxy.host must be an IPv4 address here (the activities would resolve it on the login node)');
  const paths = pathsFor(profile, glideinId);
  const instance = instanceName(glideinId);
  const { chain, condor, container, cvmfs, tunnel, instanceStartArgv } = adaptersFor(profile);
  const collector = profile.collector;
  const check = profile.outboundCheck ?? collector;
  const login = profile.login;
  const wn = profile.workerNode;
  const opts = [
    '-F',
    '/dev/null',
    '-i',
    login.identityFile,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${login.knownHostsFile}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
  ];
  const proxy = ['ssh', ...opts, '-W', '%h:%p', '-p', String(login.port), `${login.user}@${login.host}`].join(' ');
  const confFile = path.join(dir, `${glideinId}.proxychains.conf`);
  fs.writeFileSync(
    confFile,
    chain.render(profile.kitProxy.host, glideinId, `socks5 127.0.0.1 ${profile.tunnel.socksPort}`),
  );
  const repos = profile.cvmfs.repositories;
  // The pool credentials, written from the worker's files into the glidein's directory on stdin (stageCredential).
  const creds = (['idToken', 'x509Proxy'] as const).flatMap((kind) => {
    const file = profile.credentials?.[kind];
    if (file === undefined) return [];
    const [dir, target] = kind === 'idToken' ? [paths.tokensDir, paths.idToken] : [paths.configDir, paths.x509Proxy];
    return [{ file, write: commandLine(writeFileArgv(dir, target)), target }];
  });

  const vars: Array<[string, string | string[]]> = [
    ['CONTROL', controlSocket],
    ['SSH_MASTER', [...opts, '-o', `ProxyCommand=${proxy}`]],
    ['NODE_DEST', ['-p', String(wn.port), `${wn.user ?? login.user}@${wn.host}`]],
    ['SOCKS_PORT_HEX', profile.tunnel.socksPort.toString(16).toUpperCase().padStart(4, '0')],
    ['TUNNEL_PID', paths.tunnelPid],
    ['GLIDEIN_PID', paths.glideinPid],
    ['INSTANCE', instance],
    ['CONF_FILE', confFile],
    ['REPOS', repos],
    // openTunnel
    ['C_INSPECT_TUNNEL', commandLine(inspectArgv([paths.tunnelPid]))],
    ['C_MKDIR', commandLine(['mkdir', '-p', paths.dir, paths.configDir, paths.condorLocal, paths.scratchDir])],
    [
      'C_SPAWN_TUNNEL',
      commandLine(
        spawnArgv(tunnel.argv(tunnel.ports.first, undefined, paths), {
          log: paths.tunnelLog,
          pidFile: paths.tunnelPid,
          awaitListen: { port: tunnel.ports.first, seconds: 20 },
        }),
      ),
    ],
    // verifyOutbound, preloadProxychains
    ['C_WRITE_CONF', commandLine(writeFileArgv(paths.configDir, paths.proxychainsConf))],
    ['C_PROBE_OUTBOUND', commandLine(chain.probeArgv(paths.proxychainsConf, check.host, check.port))],
    // the profile's further checks (an HTTP GET through a Frontier squid, or a TCP connection)
    [
      'C_PROBE_MORE',
      (profile.outboundChecks ?? []).map((c) =>
        commandLine(
          c.http
            ? chain.httpProbeArgv(paths.proxychainsConf, c.host, c.port, c.http)
            : chain.probeArgv(paths.proxychainsConf, c.host, c.port),
        ),
      ),
    ],
    [
      'C_PROBE_PRELOAD',
      commandLine(
        chain.preloadProbeArgv(instance, collector.host, collector.port),
        chain.preloadEnv(paths.proxychainsConf, false),
      ),
    ],
    // mountCvmfs, unmountCvmfs
    [
      'C_CVMFS_PROXY',
      profile.cvmfs.httpProxy !== undefined ? commandLine(cvmfs.proxyConfigArgv(profile.cvmfs.httpProxy)) : 'true',
    ],
    [
      'C_MOUNT_LEASE',
      repos.map((r) =>
        commandLine(
          cvmfs.mountArgv(r, glideinId),
          profile.cvmfs.httpProxy !== undefined ? chain.chainedEnv(paths.proxychainsConf) : undefined,
        ),
      ),
    ],
    ['C_LIST_LEASES', commandLine(cvmfs.heldArgv(glideinId))],
    ['C_MOUNT_RELEASE', repos.map((r) => commandLine(cvmfs.releaseArgv(r, glideinId)))],
    // startContainer, stopContainer
    ['C_INSTANCE_LIST', commandLine(container.listArgv(instance))],
    ['C_INSTANCE_START', commandLine(instanceStartArgv(instance, paths))],
    ['C_INSTANCE_STOP', commandLine(container.stopArgv(instance))],
    // stageCredential, removeCredential
    ['CRED_FILES', creds.map((c) => c.file)],
    ['C_WRITE_CRED', creds.map((c) => c.write)],
    ['C_REMOVE_CRED', commandLine(['rm', '-f', '--', ...creds.map((c) => c.target)])],
    // startGlidein, confirmRegistration, stopGlidein
    ['C_INSPECT_GLIDEIN', commandLine(inspectArgv([paths.glideinPid]))],
    ['C_MKDIR_CONDOR', commandLine(['mkdir', '-p', paths.condorLocal])],
    [
      'C_SPAWN_GLIDEIN',
      commandLine(
        spawnArgv(condor.startArgv(instance), {
          log: paths.glideinLog,
          pidFile: paths.glideinPid,
          settleMs: GLIDEIN_SETTLE_MS,
        }),
        condor.startEnv(glideinId, paths),
      ),
    ],
    ['C_CONDOR_STATUS', commandLine(condor.statusArgv(instance, glideinId), condor.statusEnv(paths.proxychainsConf))],
    ['C_STOP_GLIDEIN_TERM', commandLine(signalArgv('TERM', paths.glideinPid, 10_000))],
    // closeTunnel
    // closeTunnel: TERM, then the end waited for on the site (as the activity does)
    ['C_SIGNAL_TUNNEL_TERM', commandLine(signalArgv('TERM', paths.tunnelPid, 10_000))],
  ];
  const text = [
    `# Plan for bench/manual-lifecycle.sh: glidein ${glideinId} at site ${profile.name} (written by ` +
      `bench/manual-plan.ts).`,
    ...vars.map(([name, v]) =>
      Array.isArray(v) ? `${name}=(${v.map(quoteArg).join(' ')})` : `${name}=${quoteArg(v)}`,
    ),
    '',
  ].join('\n');
  const file = path.join(dir, `${glideinId}.plan.sh`);
  fs.writeFileSync(file, text);
  // openTunnel 4 (+polls), verifyOutbound 2, mountCvmfs 1 per repo, startContainer 3, preload 2, startGlidein 3,
  // confirmRegistration 1 (+2 per extra poll), stopGlidein 1, stopContainer 2, unmountCvmfs 1 + 1 per repo,
  // closeTunnel 3 (+polls); with credentials, stageCredential 1 per file and removeCredential 1; 1 per further
  // outbound check; with cvmfs.httpProxy, 1 to set it.
  const credCommands = creds.length > 0 ? creds.length + 1 : 0;
  const more = (profile.outboundChecks?.length ?? 0) + (profile.cvmfs.httpProxy !== undefined ? 1 : 0);
  return {
    file,
    commands: 4 + 2 + repos.length + 3 + 2 + 3 + 1 + 1 + 2 + 1 + repos.length + 3 + credCommands + more,
  };
}
