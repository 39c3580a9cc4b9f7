/**
 * The shape of the SOCKS tunnel (`tunnel.mode`), one kind per file:
 *  - forward: `ssh -N -D 127.0.0.1:<port>` started on the worker node towards the login node (the seed's way;
 *    needs a key stored on the site);
 *  - reverse: `ssh -N -R 127.0.0.1:<port>` started on the login node into the worker node, authenticated by our
 *    key agent forwarded on that one channel (no key on the site; needs an sshd on the worker node). The port
 *    appears on the worker node;
 *  - relay: an authenticated SOCKS5 relay (src/site/scripts/relay.ts) started on the login node, listening on its
 *    cluster address; no key on the site, no sshd on the worker node. The port listens on the login node.
 * The tunnel's process is recorded in tunnel.pid on the host it runs on.
 */
import type { NodeAccess } from '../node-access';
import type { SiteProfile } from '../profile';
import { forward } from './forward';
import { relay } from './relay';
import { reverse } from './reverse';
import type { TunnelShape } from './tunnel-shape';

export function tunnelFor(profile: SiteProfile, nodeAccess: NodeAccess): TunnelShape {
  const t = profile.tunnel;
  switch (t.mode) {
    case 'forward':
      return forward(profile, t);
    case 'reverse':
      return reverse(profile, t, nodeAccess);
    case 'relay':
      return relay(profile, t);
  }
}

export type { TunnelCheck, TunnelShape } from './tunnel-shape';
export { isTunnelProcess, REMOTE_FORWARD_READY, TUNNEL_SSH_PERMANENT } from './tunnel-shape';
export { RELAY_AFTER_DIE_S, RELAY_MIN_LIFE_S, relayEnd, SECRET_PLACEHOLDER } from './relay';
