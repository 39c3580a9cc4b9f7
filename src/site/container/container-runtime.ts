/**
 * What a container runtime is to the lifecycle (`container.runtime`; one kind per file beside this one, index.ts
 * picks one per profile): the glidein's instance started, listed, stopped and exec'd into, contained.
 */
import type { PermanentCause } from '../failure-rules';

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
  /** Start the glidein's instance, contained, with only these binds (`src[:dst[:ro|rw]]`); `workdir` holds its /tmp. */
  startArgv(instance: string, binds: readonly string[], workdir: string): string[];
  listArgv(instance: string): string[];
  /** The running instance of that name in `instance list --json`'s answer; throws on an answer that is not JSON. */
  parseList(stdout: string, instance: string): InstanceInfo | undefined;
  stopArgv(instance: string): string[];
  /** Run argv in the instance, with a clean environment (only the variables `env` sets reach it). */
  execArgv(instance: string, argv: readonly string[]): string[];
  /**
   * Whether a log path `instance list` named (read back from the site, so not trusted) is an instance log of the
   * runtime's own log directory, and nothing else.
   */
  isInstanceLog(path: string): boolean;
  /** Whether what a failed `instance start` printed says retrying cannot help. */
  readonly permanentCause: PermanentCause;
}
