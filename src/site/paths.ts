/**
 * Where a glidein's state lives on the site: one directory, `<workDir>/<glideinId>/`, that any worker can find.
 *
 * Its container sees only two parts of it (src/site/adapters.ts): `config/`, read-only (what the glidein's
 * daemons read: proxychains.conf and the pool credential), and `condor/`, read-write (HTCondor's LOCAL_DIR, where
 * jobs run), plus `scratch/` as the container's /tmp. Everything else — the claim, pid files, logs, the relay's
 * secret and program — only the lifecycle reads, outside the container, so a job cannot reach it.
 */
import type { SiteProfile } from './profile';

export interface GlideinPaths {
  dir: string;
  tunnelPid: string;
  tunnelLog: string;
  /** The relay tunnel's password (mode 600), made by the relay on the login node, read on the worker node. */
  relaySecret: string;
  /** The relay's program (relay.py), written beside it before each start. */
  relayProgram: string;
  /**
   * What the glidein's daemons read in the container, bound there read-only (a directory: files in it are renewed by
   * rename).
   */
  configDir: string;
  proxychainsConf: string;
  glideinPid: string;
  glideinLog: string;
  /** HTCondor's LOCAL_DIR (logs, spool, execute): bound read-write, the one place a job can write. */
  condorLocal: string;
  /** The container's working directory (`--workdir`): its /tmp and /var/tmp, on disk rather than in memory. */
  scratchDir: string;
  /** The glidein's IDTOKENS directory (SEC_TOKEN_DIRECTORY) and the token in it. */
  tokensDir: string;
  idToken: string;
  /** The X.509 proxy (X509_USER_PROXY). */
  x509Proxy: string;
  /** Where workers before the split of config/ staged the credentials: removed at teardown too. */
  legacyCredentials: string[];
}

export function pathsFor(profile: SiteProfile, glideinId: string): GlideinPaths {
  const dir = `${profile.workDir}/${glideinId}`;
  const configDir = `${dir}/config`;
  return {
    dir,
    tunnelPid: `${dir}/tunnel.pid`,
    tunnelLog: `${dir}/tunnel.log`,
    relaySecret: `${dir}/relay.secret`,
    relayProgram: `${dir}/relay.py`,
    configDir,
    proxychainsConf: `${configDir}/proxychains.conf`,
    glideinPid: `${dir}/glidein.pid`,
    glideinLog: `${dir}/glidein.log`,
    condorLocal: `${dir}/condor`,
    scratchDir: `${dir}/scratch`,
    tokensDir: `${configDir}/tokens.d`,
    idToken: `${configDir}/tokens.d/pool.idtoken`,
    x509Proxy: `${configDir}/x509up`,
    legacyCredentials: [`${dir}/tokens.d/pool.idtoken`, `${dir}/x509up`],
  };
}

/**
 * The pool credential's files relative to the glidein's directory (where its holder job runs: sbatch --chdir), today's
 * and the legacy places: what the holder job removes as Slurm ends it, so that a credential never outlives its
 * glidein's allocation, whether or not a worker was left to tear down.
 */
export const CREDENTIAL_FILES_IN_DIR: readonly string[] = (() => {
  const paths = pathsFor({ workDir: '/' } as SiteProfile, 'g');
  return [paths.idToken, paths.x509Proxy, ...paths.legacyCredentials].map((p) => p.slice('//g/'.length));
})();

/** The glidein's pid file relative to its directory, where the holder job runs. */
const GLIDEIN_PID_IN_DIR = pathsFor({ workDir: '/' } as SiteProfile, 'g').glideinPid.slice('//g/'.length);

/**
 * What a holder job's batch script runs as Slurm ends it (constant words, no input): the credential files go from a
 * child that outlives the script's SIGTERM, once the glidein (its pid file's process) has ended or 4 s have passed,
 * then half a second more: the daemons, signalled with the job, sign their last messages to the pool (invalidating
 * their ads) first, yet nothing waits on them for long. The script itself ends at once (the job's end is not delayed,
 * nor what Slurm does at it); Slurm's SIGKILL comes after KillWait (30 s by default).
 */
export const REMOVE_CREDENTIALS =
  `(trap "" TERM INT HUP; i=0; while [ $i -lt 20 ] && read -r p _ 2>/dev/null < ${GLIDEIN_PID_IN_DIR} && ` +
  `kill -0 "$p" 2>/dev/null; do sleep 0.2; i=$((i + 1)); done; sleep 0.5; ` +
  `rm -f -- ${CREDENTIAL_FILES_IN_DIR.join(' ')}) &`;

export const REMOVE_CREDENTIALS_ON_END = `trap '${REMOVE_CREDENTIALS} exit 0' TERM INT HUP`;
