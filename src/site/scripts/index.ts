/**
 * The fixed shell programs the worker runs on a site, each beside its argv builder and the parser of its answer.
 * Run as `sh -c <script> sh <args…>` (TCP_PROBE, HTTP_PROBE: `bash -c`): the scripts are constants, every value reaches
 * them as a positional argument, quoted by commandLine(). This is how a step does "look, then act" in one round trip
 * without ever building a shell string from input.
 */
import { LIST_LEASES, MOUNT_LEASE, MOUNT_RELEASE } from './leases';
import { HTTP_PROBE, SET_CONFIG_LINE, TCP_PROBE, WRITE_FILE, WRITE_WITH_SECRET } from './files';
import { IN_JOB, SUPERVISOR_SCRIPT } from '../batch/slurm-supervisor';
import { CLAIM_GLIDEIN, RETIRE_GLIDEIN } from './ownership';
import { INSPECT_PROCESSES, SIGNAL_RECORDED, SPAWN_DETACHED } from './processes';
import { PORT_LEASE, PORT_RELEASE } from './ports';
import { CONNECT_PROBE, READ_LOG } from './read-only-probes';

export * from './files';
export * from '../batch/slurm-supervisor';
export * from './leases';
export * from './ownership';
export * from './ports';
export * from './prelude';
export * from './processes';
export * from './read-only-probes';

/** Every site script by name (the syntax test runs `sh -n` over each; a fake site can recognise them). */
export const SITE_SCRIPTS = {
  SPAWN_DETACHED,
  INSPECT_PROCESSES,
  SIGNAL_RECORDED,
  WRITE_FILE,
  WRITE_WITH_SECRET,
  SET_CONFIG_LINE,
  TCP_PROBE,
  HTTP_PROBE,
  MOUNT_LEASE,
  MOUNT_RELEASE,
  LIST_LEASES,
  CLAIM_GLIDEIN,
  RETIRE_GLIDEIN,
  PORT_LEASE,
  PORT_RELEASE,
  SUPERVISOR_SCRIPT,
  IN_JOB,
  CONNECT_PROBE,
  READ_LOG,
} as const satisfies Readonly<Record<string, string>>;

/** Scripts that use bash features on purpose (run with `bash -c`). */
export const BASH_SCRIPTS: ReadonlySet<string> = new Set(['TCP_PROBE', 'HTTP_PROBE', 'CONNECT_PROBE']);
