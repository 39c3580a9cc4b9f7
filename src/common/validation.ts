/**
 * Allow-list patterns for every value that can reach a command on the site, and error formatting that names
 * the field. Pure (zod only), so workflows use it too.
 */
import { z } from 'zod';
import { isDuration, parseDuration } from './duration';

/** One octet of a dotted-quad IPv4 address: 0-255, no leading zero (inet_aton would read 010 as octal). */
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
/**
 * A DNS name's last label is never all digits nor 0x-hex: the resolver would take `999.999.999.999`, `10.1` or
 * `0x7f000001` for an IPv4 address (inet_aton's forms), not a name.
 */
const LAST_LABEL = `(?![0-9]+$)(?!0[xX][0-9A-Fa-f]*$)${LABEL}`;

/** A DNS name or a dotted-quad IPv4 address; never starts with '-', so it can't be read as an option. */
export const hostname = z
  .string()
  .max(253)
  .regex(
    new RegExp(`^(?:(?:${OCTET}\\.){3}${OCTET}|(?:${LABEL}\\.)*${LAST_LABEL})$`),
    'expected a hostname (letters, digits, dots and inner hyphens, not ending in a number) or an IPv4 ' +
      'address (0-255 four times)',
  );

export const port = z
  .number()
  .int('expected a whole number')
  .min(1, 'expected a port 1-65535')
  .max(65535, 'expected a port 1-65535');

/** A POSIX account name as useradd accepts it. */
export const username = z
  .string()
  .regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'expected a user name (lowercase letters, digits, _ and -, not starting with -)');

/** An absolute path of plain characters: no '..' segment, no whitespace, quotes or shell metacharacters. */
export const absolutePath = z
  .string()
  .max(1024)
  .regex(/^\/[A-Za-z0-9._+@%=:,/-]*$/, 'expected an absolute path of letters, digits and ._+@%=:,/- only')
  .refine((p) => !p.split('/').includes('..'), 'expected a path without ".." segments');

/** A CernVM-FS repository name, e.g. cms.cern.ch. */
export const repositoryName = z
  .string()
  .max(253)
  .regex(/^[a-z0-9][a-z0-9-]*(?:\.[a-z0-9][a-z0-9-]*)+$/, 'expected a CernVM-FS repository name such as cms.cern.ch');

/** Glidein ids name directories, container instances and HTCondor attributes on the site. */
export const glideinId = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9-]{0,62}$/,
    'expected 1-63 lowercase letters, digits and hyphens, starting with a letter or digit',
  );

/** Site names become file names, search attribute values, metric labels and (as a fleet's default) fleet names. */
export const siteName = z
  .string()
  .regex(
    /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/,
    'expected a site name of 1-63 lowercase letters, digits and inner hyphens',
  );

export const duration = (opts: { min?: number; max?: number } = {}) =>
  z
    .string()
    .refine(isDuration, 'expected a duration such as "30s", "5m", "2h" or "1h30m"')
    .refine(
      (d) => !isDuration(d) || opts.min === undefined || parseDuration(d) >= opts.min,
      `expected at least ${opts.min} ms`,
    )
    .refine(
      (d) => !isDuration(d) || opts.max === undefined || parseDuration(d) <= opts.max,
      `expected at most ${opts.max} ms`,
    );

/**
 * How long a glidein may live before it drains: the one bound that the workflow's input, a fleet's request and the
 * `glidein` command all check (so the command refuses what the workflow would).
 */
export const LIFETIME_BOUNDS = { min: 10_000, max: 30 * 86_400_000 } as const;
export const glideinLifetime = () => duration(LIFETIME_BOUNDS);

/** A command-line word from configuration: printable, no control characters. Quoted before use. */
export const argWord = z
  .string()
  .max(4096)
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'expected printable characters only (no control characters)');

/** One field error per line: `tunnel.socksPort: expected a port 1-65535`. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length
        ? issue.path
            .map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))
            .join('.')
            .replace(/\.\[/g, '[')
        : '(top level)';
      return `${where}: ${issue.message}`;
    })
    .join('\n');
}
