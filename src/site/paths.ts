/** Where a glidein's state lives on the site: one directory, `<workDir>/<glideinId>/`, that any worker can find. */
import type { SiteProfile } from './profile';

export interface GlideinPaths {
  dir: string;
  tunnelPid: string;
  tunnelLog: string;
  /** The relay tunnel's password (mode 600), made by the relay on the login node, read on the worker node. */
  relaySecret: string;
  /** The relay's program (relay.py), written beside it before each start. */
  relayProgram: string;
  proxychainsConf: string;
  glideinPid: string;
  glideinLog: string;
  condorLocal: string;
  /** The glidein's IDTOKENS directory (SEC_TOKEN_DIRECTORY) and the token in it. */
  tokensDir: string;
  idToken: string;
  /** The X.509 proxy (X509_USER_PROXY). */
  x509Proxy: string;
}

export function pathsFor(profile: SiteProfile, glideinId: string): GlideinPaths {
  const dir = `${profile.workDir}/${glideinId}`;
  return {
    dir,
    tunnelPid: `${dir}/tunnel.pid`,
    tunnelLog: `${dir}/tunnel.log`,
    relaySecret: `${dir}/relay.secret`,
    relayProgram: `${dir}/relay.py`,
    proxychainsConf: `${dir}/proxychains.conf`,
    glideinPid: `${dir}/glidein.pid`,
    glideinLog: `${dir}/glidein.log`,
    condorLocal: `${dir}/condor`,
    tokensDir: `${dir}/tokens.d`,
    idToken: `${dir}/tokens.d/pool.idtoken`,
    x509Proxy: `${dir}/x509up`,
  };
}
