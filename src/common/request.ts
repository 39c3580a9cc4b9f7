/**
 * The LaunchGlidein input: small and secret-free. Validated inside the workflow (zod is deterministic).
 */
import { z } from 'zod';
import { sha256Hex } from './sha256';
import { formatIssues, glideinLifetime, siteName } from './validation';

export const glideinRequestSchema = z.strictObject({
  /** A profile name known to the worker: sites/<site>.yaml. */
  site: siteName,
  /** How long the glidein may run before it is drained; defaults to the profile's glidein.lifetime. */
  lifetime: glideinLifetime().optional(),
});

export type GlideinRequest = z.output<typeof glideinRequestSchema>;

export class InvalidRequestError extends Error {
  override name = 'InvalidRequestError';
}

export function parseGlideinRequest(input: unknown): GlideinRequest {
  const result = glideinRequestSchema.safeParse(input);
  if (!result.success) throw new InvalidRequestError(`LaunchGlidein input is invalid:\n${formatIssues(result.error)}`);
  return result.data;
}

/**
 * The glidein id names the work directory, the container instance, the Slurm job and the GlideinLaunchId
 * attribute. A workflow id that is already a safe name without "--" is used as it is; any other becomes
 * `<safe form>--<64 bits of its SHA-256>`. Safe names never contain "--", derived ones always do, so no two
 * workflow ids share a glidein id (and the site's ownership claim refuses the one in a billion that could).
 */
export function glideinIdFor(workflowId: string): string {
  if (/^[a-z0-9][a-z0-9-]{0,62}$/.test(workflowId) && !workflowId.includes('--')) return workflowId;
  const base =
    workflowId
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 45)
      .replace(/-+$/, '') || 'glidein';
  return `${base}--${sha256Hex(workflowId).slice(0, 16)}`;
}

/**
 * The derivation before the "owned-lifecycle" patch: a safe workflow id as it is, anything else with a 32-bit FNV-1a
 * hash. Kept for histories and carried states recorded with it; it let `COLLIDE` and `collide-93fb137d` share one id.
 */
export function legacyGlideinIdFor(workflowId: string): string {
  if (/^[a-z0-9][a-z0-9-]{0,62}$/.test(workflowId)) return workflowId;
  const base =
    workflowId
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 48) || 'glidein';
  return `${base}-${fnv1a(workflowId)}`;
}

function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}
