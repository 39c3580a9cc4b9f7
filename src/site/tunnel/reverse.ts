/**
 * Tunnel shape `reverse`: `ssh -N -R 127.0.0.1:<port>` started on the login node into the worker node,
 * authenticated by our key agent forwarded on that one channel (no key on the site; needs an sshd on the worker
 * node). The port appears on the worker node.
 */
import { FailureType, PermanentFault } from '../../common/failure-types';
import type { NodeAccess } from '../node-access';
import { portRange, type SiteProfile } from '../profile';
import { inspect } from '../scripts/processes';
import {
  checked,
  localHop,
  REMOTE_FORWARD_READY,
  sshOptions,
  tunnelPermanent,
  type Reverse,
  type TunnelShape,
} from './tunnel-shape';

export function reverse(profile: SiteProfile, t: Reverse, nodeAccess: NodeAccess): TunnelShape {
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
