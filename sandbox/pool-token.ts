/**
 * The test pools' IDTOKENs, as HTCondor's IDTOKENS are made: a JWT signed with HS256 under a pool signing key
 * (a file named by its key id, POOL by default). The collector stand-in (`--token-keys <dir>`) verifies them and
 * refuses updates without one; the sites mint the operator's token on the worker's machine, where the profiles'
 * `credentials.idToken` names it. HTCondor derives its HMAC key from the key file; here the file's bytes are
 * the key.
 */
import { createHmac, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface TokenClaims {
  /** Seconds since the epoch; absent: a token that does not expire. */
  exp?: number;
  sub?: string;
  kid?: string;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/** The key `kid` of a pool's signing keys directory, made (32 random bytes, mode 600) if it is not there. */
export function ensureSigningKey(keysDir: string, kid = 'POOL'): Buffer {
  fs.mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  const file = path.join(keysDir, kid);
  if (!fs.existsSync(file)) fs.writeFileSync(file, randomBytes(32), { mode: 0o600, flag: 'wx' });
  return fs.readFileSync(file);
}

/** An IDTOKEN signed with `key`. */
export function mintIdToken(key: Buffer, claims: TokenClaims = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: claims.kid ?? 'POOL' }));
  const payload = b64url(
    JSON.stringify({
      sub: claims.sub ?? 'cmsgli1@jsc',
      iss: 'cms-global-pool.test',
      iat: now,
      ...(claims.exp !== undefined ? { exp: claims.exp } : {}),
      scope: 'condor:/ADVERTISE_STARTD condor:/ADVERTISE_MASTER condor:/READ',
    }),
  );
  const signature = b64url(createHmac('sha256', key).update(`${header}.${payload}`).digest());
  return `${header}.${payload}.${signature}`;
}

/** How long the operator's token minted with each site is valid. */
export const OPERATOR_TOKEN_DAYS = 30;

/** Writes the operator's token (mode 600) unless one valid for at least a day more is there. */
export function ensureOperatorToken(keysDir: string, tokenFile: string): void {
  try {
    const payload = JSON.parse(Buffer.from(fs.readFileSync(tokenFile, 'utf8').split('.')[1], 'base64url').toString());
    if (typeof payload.exp === 'number' && payload.exp * 1000 > Date.now() + 86_400_000) return;
  } catch {
    // none yet, or not a token: mint one
  }
  const key = ensureSigningKey(keysDir);
  const exp = Math.floor(Date.now() / 1000) + OPERATOR_TOKEN_DAYS * 86_400;
  const tmp = `${tokenFile}.tmp`;
  fs.writeFileSync(tmp, `${mintIdToken(key, { exp })}\n`, { mode: 0o600 });
  fs.renameSync(tmp, tokenFile);
}
