/**
 * The pool's credential for a glidein: an HTCondor IDTOKEN and/or an X.509 proxy, read from the worker's machine
 * (the profile's `credentials`), checked against the glidein's end, and written into the glidein's directory on
 * the site (mode 600) through stdin of the one SSH connection: never an argv, a heartbeat, a log, an error or a
 * result. Shared by the staging step and the monitor, which renews the site's copy when the worker's changes.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { FailureType, PermanentFault } from '../common/failure-types';
import { runChecked } from '../remote/executor';
import { writeFileArgv } from '../site/scripts/files';
import type { CredentialKind } from '../site/plan';
import type { SiteAccess } from './site-access';

export interface CredentialFile {
  kind: CredentialKind;
  /** Where it is on the worker's machine (for messages). */
  file: string;
  content: string;
  /** When it stops being accepted; undefined: it carries no expiry. */
  expiresAtMs?: number;
}

/** What was staged, for the status and the history: kinds, files and expiries, never content. */
export interface StagedCredential {
  kind: CredentialKind;
  file: string;
  expiresAt?: string;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** An IDTOKEN's expiry: a JWT whose payload's `exp` is in seconds (none: it does not expire). */
export function idTokenExpiry(text: string): number | undefined {
  const parts = text.trim().split('.');
  if (parts.length !== 3 || !parts.every((p) => BASE64URL.test(p))) throw new Error('is not an IDTOKEN (a JWT)');
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    throw new Error('is not an IDTOKEN (its payload is not JSON)');
  }
  const exp = (payload as { exp?: unknown } | null)?.exp;
  if (exp === undefined) return undefined;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw new Error('is not an IDTOKEN (its exp is not a number)');
  return exp * 1000;
}

/** An X.509 proxy's expiry: the earliest notAfter of the certificates in the file (the proxy and its chain). */
export function x509Expiry(text: string): number {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error('is not an X.509 proxy (no certificate in it)');
  let earliest = Infinity;
  for (const block of blocks) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch {
      throw new Error('is not an X.509 proxy (a certificate in it does not parse)');
    }
    earliest = Math.min(earliest, Date.parse(cert.validTo));
  }
  return earliest;
}

/** The profile's credential files as they are now on the worker's machine; unreadable or malformed is permanent. */
export async function readCredentials(profile: SiteAccess['profile']): Promise<CredentialFile[]> {
  const wanted = profile.credentials;
  if (!wanted) return [];
  const out: CredentialFile[] = [];
  for (const kind of ['idToken', 'x509Proxy'] as const) {
    const file = wanted[kind];
    if (file === undefined) continue;
    let content: string;
    try {
      content = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new PermanentFault(
        `credentials.${kind} file ${file} cannot be read on the worker's machine (${code})`,
        FailureType.CredentialUnusable,
      );
    }
    try {
      const expiresAtMs = kind === 'idToken' ? idTokenExpiry(content) : x509Expiry(content);
      out.push({ kind, file, content, expiresAtMs });
    } catch (err) {
      throw new PermanentFault(
        `credentials.${kind} file ${file} ${(err as Error).message}`,
        FailureType.CredentialUnusable,
      );
    }
  }
  return out;
}

/** Refuses a credential that is no longer accepted at `untilMs` (the glidein's end), naming the file and expiry. */
export function checkLifetime(files: CredentialFile[], untilMs: number): void {
  for (const f of files) {
    if (f.expiresAtMs === undefined || f.expiresAtMs > untilMs) continue;
    const when = new Date(f.expiresAtMs).toISOString();
    const already = f.expiresAtMs <= Date.now();
    throw new PermanentFault(
      `credentials.${f.kind} file ${f.file} ${already ? 'expired' : 'expires'} at ${when}, ` +
        (already
          ? 'so the pool would refuse the glidein'
          : `before the glidein's end at ${new Date(untilMs).toISOString()}`) +
        ': ' +
        'renew it (or launch with a shorter lifetime)',
      FailureType.CredentialExpired,
    );
  }
}

/** Where each kind lives in the glidein's directory, and the directory it is written into. */
function siteFile(access: SiteAccess, kind: CredentialKind): { dir: string; path: string } {
  const { paths } = access;
  return kind === 'idToken'
    ? { dir: paths.tokensDir, path: paths.idToken }
    : { dir: paths.configDir, path: paths.x509Proxy };
}

/** Writes the credentials into the glidein's directory on the worker node: mode 600, content on stdin only. */
export async function writeCredentials(access: SiteAccess, files: CredentialFile[]): Promise<void> {
  for (const f of files) {
    const { dir, path } = siteFile(access, f.kind);
    await runChecked(
      access.node,
      `staging credentials.${f.kind}`,
      writeFileArgv(dir, path),
      access.opts({ stdin: f.content }),
    );
  }
}

/** The site paths of the credentials, for removal (with where an earlier worker put them: none may stay behind). */
export function credentialPaths(access: SiteAccess): string[] {
  return [access.paths.idToken, access.paths.x509Proxy, ...access.paths.legacyCredentials];
}

/** Identifies a set of credential files without holding them (what the site was last given). */
export function digestOf(files: CredentialFile[]): string {
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${f.kind}\0${f.content}\0`);
  return hash.digest('hex');
}

export function describeStaged(files: CredentialFile[]): StagedCredential[] {
  return files.map((f) => ({
    kind: f.kind,
    file: f.file,
    ...(f.expiresAtMs !== undefined ? { expiresAt: new Date(f.expiresAtMs).toISOString() } : {}),
  }));
}

/**
 * What this worker process last gave each glidein's site copy (by glidein id). After a restart it is empty, so a
 * monitor writes the worker's files once more: one write, and the site holds the newest.
 */
const staged = new Map<string, string>();
const MAX_REMEMBERED = 20_000;

export function rememberStaged(glideinId: string, digest: string): void {
  if (staged.size >= MAX_REMEMBERED) staged.clear();
  staged.set(glideinId, digest);
}

export function forgetStaged(glideinId: string): void {
  staged.delete(glideinId);
}

/**
 * Renewal while monitoring: when the worker's credential files differ from what the site was last given and are
 * still good, write them to the site. Returns what happened, for the heartbeat and the log (never content):
 * `undefined` when nothing changed or the profile has no credentials.
 */
export async function renewIfChanged(access: SiteAccess): Promise<string | undefined> {
  if (!access.profile.credentials) return undefined;
  const files = await readCredentials(access.profile);
  const digest = digestOf(files);
  if (staged.get(access.ref.glideinId) === digest) return undefined;
  const expired = files.find((f) => f.expiresAtMs !== undefined && f.expiresAtMs <= Date.now());
  if (expired) {
    return (
      `credentials.${expired.kind} file ${expired.file} on the worker's machine expired at ` +
      `${new Date(expired.expiresAtMs!).toISOString()}: not renewed on the site`
    );
  }
  await writeCredentials(access, files);
  rememberStaged(access.ref.glideinId, digest);
  return `renewed ${files.map((f) => `credentials.${f.kind}`).join(', ')} on the site`;
}
