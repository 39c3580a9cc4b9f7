/**
 * The container runtime (`container.runtime`): apptainer or singularity, the same CLI under two names, told apart
 * here only: the executable, the prefix that carries a variable into the container, and the instance commands.
 */
import type { SiteProfile } from '../profile';

/** A running instance, from `instance list --json`. */
export interface InstanceInfo {
  instance: string;
  pid: number;
  img: string;
  /** Where the instance's output and errors are logged (apptainer's --json lists them; singularity's may not). */
  logOutPath?: string;
  logErrPath?: string;
}

export interface ContainerRuntime {
  readonly executable: string;
  /** Variables with this prefix in exec's environment are set inside the container, prefix removed. */
  readonly envPrefix: string;
  /** The environment that sets these variables inside the container. */
  env(inside: Record<string, string>): Record<string, string>;
  /** Start the glidein's instance with these binds (`src[:dst[:ro|rw]]`). */
  startArgv(instance: string, binds: readonly string[]): string[];
  listArgv(instance: string): string[];
  /** The running instance of that name in `instance list --json`'s answer; throws on an answer that is not JSON. */
  parseList(stdout: string, instance: string): InstanceInfo | undefined;
  stopArgv(instance: string): string[];
  /** Run argv in the instance. */
  execArgv(instance: string, argv: readonly string[]): string[];
}

const ENV_PREFIX: Record<SiteProfile['container']['runtime'], string> = {
  apptainer: 'APPTAINERENV_',
  singularity: 'SINGULARITYENV_',
};

export function containerFor(profile: SiteProfile): ContainerRuntime {
  const { runtime, image } = profile.container;
  const executable = profile.container.executable ?? runtime;
  const envPrefix = ENV_PREFIX[runtime];
  return {
    executable,
    envPrefix,
    env: (inside) => Object.fromEntries(Object.entries(inside).map(([k, v]) => [`${envPrefix}${k}`, v])),
    startArgv: (instance, binds) => [
      executable,
      'instance',
      'start',
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
    execArgv: (instance, argv) => [executable, 'exec', `instance://${instance}`, ...argv],
  };
}
