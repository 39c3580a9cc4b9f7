/** Node access `workerNode.via: jump`: one fixed worker node, reached by ssh through the login node. */
import type { SiteProfile } from '../profile';
import { loginTarget, type NodeAccess } from './node-access';

type Jump = Extract<SiteProfile['workerNode'], { via: 'jump' }>;

export function throughJumpHost(profile: SiteProfile, wn: Jump): NodeAccess {
  const address = { host: wn.host, port: wn.port, user: wn.user ?? profile.login.user };
  return {
    executors(ssh) {
      const jump = loginTarget(profile);
      return { login: ssh.executor(jump), node: ssh.executor({ ...jump, ...address, jump }) };
    },
    nodeAddress: () => address,
    directoryOnLogin: false,
    async check({ node }, run) {
      await run(node, ['true'], 'a command on the worker node');
      return `ssh ${node.target}`;
    },
  };
}
