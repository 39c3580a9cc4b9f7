/**
 * The LaunchGlidein input: small and secret-free. Validated inside the workflow (zod is deterministic).
 */
import { z } from 'zod';
import { duration, formatIssues, siteName } from './validation';

export const glideinRequestSchema = z.strictObject({
  /** A profile name known to the worker: sites/<site>.yaml. */
  site: siteName,
  /** How long the glidein may run before it is drained; defaults to the profile's glidein.lifetime. */
  lifetime: duration({ min: 10_000, max: 30 * 86_400_000 }).optional(),
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
 * The glidein id names the work directory, the container instance and the GlideinLaunchId attribute. It is the
 * workflow id when that is already a safe name (ids are unique among running workflows), else a safe form of it
 * with a hash, so two workflow ids never share one.
 */
export function glideinIdFor(workflowId: string): string {
  if (/^[a-z0-9][a-z0-9-]{0,62}$/.test(workflowId)) return workflowId;
  const base = workflowId.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 48) || 'glidein';
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
