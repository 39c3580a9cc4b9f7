/**
 * The plan bench/manual-lifecycle.sh runs: every remote command line of a lifecycle, built by the project's
 * own builders (src/activities/*.ts) and quoted by its one quoting helper (commandLine), as bash variables.
 * So the script issues exactly what the activities issue; only the orchestration differs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { instanceName } from '../src/common/naming';
import { containerRuntime, cvmfsMountRoot, instanceStartArgv } from '../src/activities/container';
import { leaseRoot } from '../src/activities/cvmfs';
import { GLIDEIN_SETTLE_MS, glideinArgv, glideinEnv } from '../src/activities/glidein';
import { preloadEnv, renderProxychainsConf } from '../src/activities/proxychains';
import { condorStatusArgv } from '../src/activities/registration';
import { pathsFor } from '../src/activities/site-access';
import { tunnelArgv } from '../src/activities/tunnel';
import { commandLine, quoteArg } from '../src/remote/quote';
import {
  INSPECT_PROCESSES,
  LIST_LEASES,
  MOUNT_LEASE,
  MOUNT_RELEASE,
  SIGNAL_RECORDED,
  SPAWN_DETACHED,
  TCP_PROBE,
  WRITE_FILE,
} from '../src/remote/scripts';
import type { SiteProfile } from '../src/site/profile';

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
  const runtime = containerRuntime(profile);
  const sh = (script: string, ...args: string[]) => commandLine(['sh', '-c', script, 'sh', ...args]);
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
  fs.writeFileSync(confFile, renderProxychainsConf(profile, profile.kitProxy.host, glideinId));
  const root = cvmfsMountRoot(profile);
  const repos = profile.cvmfs.repositories;

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
    ['C_INSPECT_TUNNEL', sh(INSPECT_PROCESSES, paths.tunnelPid)],
    ['C_MKDIR', commandLine(['mkdir', '-p', paths.dir])],
    ['C_SPAWN_TUNNEL', sh(SPAWN_DETACHED, paths.tunnelLog, paths.tunnelPid, '', '0', '0', ...tunnelArgv(profile))],
    // verifyOutbound, preloadProxychains
    ['C_WRITE_CONF', sh(WRITE_FILE, paths.dir, paths.proxychainsConf)],
    [
      'C_PROBE_OUTBOUND',
      commandLine([
        profile.proxychains.executable,
        '-f',
        paths.proxychainsConf,
        'bash',
        '-c',
        TCP_PROBE,
        'probe',
        check.host,
        String(check.port),
      ]),
    ],
    [
      'C_PROBE_PRELOAD',
      commandLine(
        [
          runtime.executable,
          'exec',
          `instance://${instance}`,
          'bash',
          '-c',
          TCP_PROBE,
          'probe',
          collector.host,
          String(collector.port),
        ],
        preloadEnv(profile, paths.proxychainsConf, false),
      ),
    ],
    // mountCvmfs, unmountCvmfs
    [
      'C_MOUNT_LEASE',
      repos.map((r) =>
        sh(MOUNT_LEASE, leaseRoot(profile), r, glideinId, `${profile.cvmfs.cvmfsexecDir}/mountrepo`, `${root}/${r}`),
      ),
    ],
    ['C_LIST_LEASES', sh(LIST_LEASES, leaseRoot(profile), glideinId)],
    [
      'C_MOUNT_RELEASE',
      repos.map((r) =>
        sh(MOUNT_RELEASE, leaseRoot(profile), r, glideinId, `${profile.cvmfs.cvmfsexecDir}/umountrepo`, `${root}/${r}`),
      ),
    ],
    // startContainer, stopContainer
    ['C_INSTANCE_LIST', commandLine([runtime.executable, 'instance', 'list', '--json', instance])],
    ['C_INSTANCE_START', commandLine(instanceStartArgv(profile, instance, paths.dir))],
    ['C_INSTANCE_STOP', commandLine([runtime.executable, 'instance', 'stop', instance])],
    // startGlidein, confirmRegistration, stopGlidein
    ['C_INSPECT_GLIDEIN', sh(INSPECT_PROCESSES, paths.glideinPid)],
    ['C_MKDIR_CONDOR', commandLine(['mkdir', '-p', paths.condorLocal])],
    [
      'C_SPAWN_GLIDEIN',
      commandLine(
        [
          'sh',
          '-c',
          SPAWN_DETACHED,
          'sh',
          paths.glideinLog,
          paths.glideinPid,
          '',
          '0',
          String(GLIDEIN_SETTLE_MS / 100),
          ...glideinArgv(profile, instance),
        ],
        glideinEnv(profile, glideinId, paths),
      ),
    ],
    [
      'C_CONDOR_STATUS',
      commandLine(condorStatusArgv(profile, instance, glideinId), preloadEnv(profile, paths.proxychainsConf, true)),
    ],
    ['C_STOP_GLIDEIN_TERM', sh(SIGNAL_RECORDED, 'TERM', paths.glideinPid, '100')],
    // closeTunnel
    ['C_SIGNAL_TUNNEL_TERM', sh(SIGNAL_RECORDED, 'TERM', paths.tunnelPid)],
  ];
  const text = [
    `# Plan for bench/manual-lifecycle.sh: glidein ${glideinId} at site ${profile.name} (written by bench/manual-plan.ts).`,
    ...vars.map(([name, v]) =>
      Array.isArray(v) ? `${name}=(${v.map(quoteArg).join(' ')})` : `${name}=${quoteArg(v)}`,
    ),
    '',
  ].join('\n');
  const file = path.join(dir, `${glideinId}.plan.sh`);
  fs.writeFileSync(file, text);
  // openTunnel 4 (+polls), verifyOutbound 2, mountCvmfs 1 per repo, startContainer 3, preload 2, startGlidein 3,
  // confirmRegistration 1 (+2 per extra poll), stopGlidein 1, stopContainer 2, unmountCvmfs 1 + 1 per repo, closeTunnel 3 (+polls).
  return { file, commands: 4 + 2 + repos.length + 3 + 2 + 3 + 1 + 1 + 2 + 1 + repos.length + 3 };
}
