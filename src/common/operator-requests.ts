/** What the operator's tools ask of the worker and get back (`glidein site check`, `glidein logs`): secret-free. */
import { z } from 'zod';
import { formatIssues, glideinId, siteName } from './validation';

export const SITE_HOPS = ['profile', 'credentials', 'login', 'nodeAccess', 'tunnel', 'kitProxy', 'collector'] as const;
export type SiteHop = (typeof SITE_HOPS)[number];

export interface HopResult {
  hop: SiteHop;
  status: 'ok' | 'failed' | 'not checked';
  detail: string;
  ms: number;
}

export interface SiteCheck {
  site: string;
  ok: boolean;
  /** The first hop that failed: where to look. */
  failedHop?: SiteHop;
  hops: HopResult[];
}

export const LOG_KINDS = ['glidein', 'tunnel', 'container'] as const;
export type LogKind = (typeof LOG_KINDS)[number];

export const readLogRequestSchema = z.strictObject({
  site: siteName,
  glideinId,
  which: z.enum(LOG_KINDS),
  // No node, job or path: the worker finds them on the site (the glidein's claim, its Slurm job), never from a caller.
  /** Byte offset to read from (a follower passes the size it last saw). */
  offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  maxBytes: z
    .number()
    .int()
    .min(1)
    .max(1024 * 1024)
    .default(64 * 1024),
  /** Read the last maxBytes instead of from offset (a first look at a long log). */
  tail: z.boolean().default(false),
});
export type ReadLogRequest = z.input<typeof readLogRequestSchema>;

export interface LogChunk {
  which: LogKind;
  /** Where the log was read, and on which host; absent when the glidein has no such log (yet, or any more). */
  path?: string;
  host: string;
  /** The file's size when read. */
  size: number;
  /** Where the text starts in the file: the start of a line (only whole lines are shown, redacted as such). */
  offset: number;
  /**
   * Where the text ends in the file: the offset to follow from (a line still being written is shown once it ends).
   * Absent from workers before it; the size then.
   */
  end?: number;
  text: string;
}

export function parseReadLogRequest(input: unknown): z.output<typeof readLogRequestSchema> {
  const parsed = readLogRequestSchema.safeParse(input);
  if (!parsed.success) throw new Error(`ReadGlideinLog input is invalid:\n${formatIssues(parsed.error)}`);
  return parsed.data;
}

export function parseSiteName(input: unknown): string {
  const parsed = siteName.safeParse(input);
  if (!parsed.success)
    throw new Error(`site: ${JSON.stringify(input)} is not a site profile name (${parsed.error.issues[0]?.message})`);
  return parsed.data;
}
