/**
 * Tunnel shape `forward`: `ssh -N -D 127.0.0.1:<port>` started on the worker node towards the login node (the
 * seed's way; needs a key stored on the site).
 */
import type { SiteProfile } from '../profile';
import { portRange } from '../profile';
import { inspect } from '../scripts/processes';
import { checked, localHop, sshOptions, tunnelPermanent, type Forward, type TunnelShape } from './tunnel-shape';

export function forward(profile: SiteProfile, t: Forward): TunnelShape {
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
