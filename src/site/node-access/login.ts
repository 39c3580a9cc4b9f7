/** Node access `workerNode.via: login`: commands run on the login node itself. */
import type { SiteProfile } from '../profile';
import { loginTarget, type NodeAccess } from './node-access';

export function onLogin(profile: SiteProfile): NodeAccess {
  return {
    executors(ssh) {
      const login = ssh.executor(loginTarget(profile));
      return { login, node: login };
    },
    nodeAddress: () => undefined,
    directoryOnLogin: false,
    check: () => Promise.resolve('the glidein runs on the login node itself'),
  };
}
