/**
 * Allow-list patterns for every value that can reach a command on the site, and error formatting that names
 * the field. Pure (zod only), so workflows use it too.
 */
import { z } from 'zod';
import { isDuration, parseDuration } from './duration';

/** A DNS name or an IPv4 address; never starts with '-', so it can't be read as an option. */
export const hostname = z
  .string()
  .max(253)
  .regex(
    /^(?:(?:\d{1,3}\.){3}\d{1,3}|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)$/,
    'expected a hostname or IPv4 address (letters, digits, dots and inner hyphens)',
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

export const siteName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a site name of lowercase letters, digits and hyphens');

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
