/**
 * The site scripts the fake recognises, by identity with the constants the activities send: the one file of the
 * fake that knows where they live (when they move, only these imports change).
 */
import { HOLDER_SCRIPT } from '../../src/site/adapters/node-access';
import {
  CLAIM_GLIDEIN,
  RETIRE_GLIDEIN,
  PORT_LEASE,
  PORT_RELEASE,
  INSPECT_PROCESSES,
  LIST_LEASES,
  MOUNT_LEASE,
  MOUNT_RELEASE,
  SIGNAL_RECORDED,
  SPAWN_DETACHED,
  TCP_PROBE,
  WRITE_FILE,
} from '../../src/site/scripts';

/** Scripts run as `sh -c <script> sh <args…>`. */
export const SH_SCRIPTS = {
  SPAWN_DETACHED,
  INSPECT_PROCESSES,
  SIGNAL_RECORDED,
  WRITE_FILE,
  MOUNT_LEASE,
  MOUNT_RELEASE,
  LIST_LEASES,
  CLAIM_GLIDEIN,
  RETIRE_GLIDEIN,
  PORT_LEASE,
  PORT_RELEASE,
} as const;

export type ShScript = keyof typeof SH_SCRIPTS;

const byText = new Map<string, ShScript>(Object.entries(SH_SCRIPTS).map(([name, text]) => [text, name as ShScript]));

/** Which constant script this is, or undefined for any other text (the fake then refuses the command). */
export function shScriptNamed(text: string): ShScript | undefined {
  return byText.get(text);
}

/** Run as `bash -c <TCP_PROBE> probe <host> <port>`, under proxychains or in a container. */
export { TCP_PROBE };
/** The holder job sbatch reads on stdin. */
export { HOLDER_SCRIPT };
