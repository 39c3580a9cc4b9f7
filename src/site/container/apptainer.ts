/**
 * Container runtime kind `apptainer` (and `singularity`): the same CLI under two names, told apart
 * here only: the executable, the prefix that carries a variable into the container, and the instance commands.
 *
 * The instance is contained, because the pool's jobs run in it as the pilot's own uid (no nested containers at
 * JSC): `--contain` (no host /tmp, /var/tmp, $HOME or working directory; a minimal /dev), `--no-home` (no home at
 * all, so no ~/.ssh), `--pid` (its own /proc: a job cannot reach the host's file system through
 * /proc/<pid>/root of a process of the same uid outside it), `--ipc`, and `--workdir` for /tmp on disk (without it
 * /tmp is a small in-memory session directory). Every exec runs with `--cleanenv`: the host's environment (the
 * supervisor's, the ssh session's) stays outside, and only what the runtime's prefix carries goes in.
 */
import { FailureType } from '../../common/failure-types';
import { firstPermanent, type PermanentRule } from '../failure-rules';
import type { SiteProfile } from '../profile';
import type { ContainerRuntime, InstanceInfo } from './container-runtime';

/** What `instance start` says when retrying cannot help. */
export const INSTANCE_START_PERMANENT: readonly PermanentRule[] = [
  {
    pattern: /could not open image|no such file|mount source .* doesn't exist/i,
    type: FailureType.ContainerStartFailed,
    fix: 'check container.image and container.binds',
  },
];

/**
 * Where apptainer and singularity keep an instance's logs:
 * ~/.{apptainer,singularity}/instances/logs/<host>/<user>/<name>.err
 */
const INSTANCE_LOG = /^\/[A-Za-z0-9._@+/-]*\/\.(?:apptainer|singularity)\/instances\/logs\/[A-Za-z0-9._@+/-]+\.err$/;

const ENV_PREFIX: Record<SiteProfile['container']['runtime'], string> = {
  apptainer: 'APPTAINERENV_',
  singularity: 'SINGULARITYENV_',
};

/** The same flags in apptainer and singularity (see the top of this file for why each). */
export const CONTAINED = ['--contain', '--no-home', '--pid', '--ipc', '--cleanenv'] as const;

/** apptainer, or singularity (the same CLI under its older name). */
export function apptainerFor(profile: SiteProfile): ContainerRuntime {
  const { runtime, image } = profile.container;
  const executable = profile.container.executable ?? runtime;
  const envPrefix = ENV_PREFIX[runtime];
  return {
    executable,
    envPrefix,
    env: (inside) => Object.fromEntries(Object.entries(inside).map(([k, v]) => [`${envPrefix}${k}`, v])),
    startArgv: (instance, binds, workdir) => [
      executable,
      'instance',
      'start',
      ...CONTAINED,
      '--workdir',
      workdir,
      ...binds.flatMap((b) => ['--bind', b]),
      image,
      instance,
    ],
    listArgv: (instance) => [executable, 'instance', 'list', '--json', instance],
    parseList(stdout, instance) {
      let listing: { instances?: InstanceInfo[] };
      try {
        listing = JSON.parse(stdout || '{}') as { instances?: InstanceInfo[] };
      } catch {
        throw new Error(`instance list --json printed something that is not JSON: ${stdout.slice(0, 200)}`);
      }
      return listing.instances?.find((i) => i.instance === instance);
    },
    stopArgv: (instance) => [executable, 'instance', 'stop', instance],
    execArgv: (instance, argv) => [executable, 'exec', '--cleanenv', `instance://${instance}`, ...argv],
    isInstanceLog: (path) => INSTANCE_LOG.test(path) && !path.split('/').includes('..'),
    permanentCause: (output, attempt) => firstPermanent(INSTANCE_START_PERMANENT, output, attempt),
  };
}
