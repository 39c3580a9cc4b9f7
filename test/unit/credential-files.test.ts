/**
 * The pool credential as the worker reads it (src/activities/credential-files.ts) and as the collector stand-in
 * checks it: an IDTOKEN's and an X.509 proxy's expiry read from the files, refusals that name the field, the file
 * and the expiry (never the content), and the stand-in collector admitting only a token signed with the pool key.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkLifetime, idTokenExpiry, readCredentials, x509Expiry } from '../../src/activities/credential-files';
import { redact } from '../../src/common/redact';
import type { SiteProfile } from '../../src/site/profile';
import { ensureSigningKey, mintIdToken } from '../../sandbox/pool-token';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cred-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const profileWith = (credentials: SiteProfile['credentials']) => ({ credentials }) as unknown as SiteProfile;
const HOUR = 3_600_000;

describe('reading the pool credential', () => {
  it("reads an IDTOKEN's exp, and one without exp as not expiring", () => {
    const key = Buffer.alloc(32, 1);
    const exp = Math.floor(Date.now() / 1000) + 3600;
    expect(idTokenExpiry(mintIdToken(key, { exp }))).toBe(exp * 1000);
    expect(idTokenExpiry(`${mintIdToken(key)}\n`)).toBeUndefined();
    expect(() => idTokenExpiry('not a token')).toThrow('is not an IDTOKEN (a JWT)');
    expect(() => idTokenExpiry('a.b.c')).toThrow('is not an IDTOKEN (its payload is not JSON)');
    const badExp = `e30.${Buffer.from('{"exp":"soon"}').toString('base64url')}.sig`;
    expect(() => idTokenExpiry(badExp)).toThrow('its exp is not a number');
  });

  it("reads an X.509 proxy's expiry as the earliest notAfter in the file", () => {
    const key = path.join(dir, 'key.pem');
    const cert = (days: number) =>
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-subj', '/CN=cmsgli'].concat([
          '-days',
          String(days),
        ]),
        { stdio: ['ignore', 'pipe', 'ignore'] },
      ).toString();
    const long = cert(30);
    const short = cert(2);
    const expiry = x509Expiry(`${long}${fs.readFileSync(key, 'utf8')}${short}`);
    expect(Math.abs(expiry - (Date.now() + 2 * 24 * HOUR))).toBeLessThan(10 * 60_000);
    expect(() => x509Expiry('-----BEGIN RSA PRIVATE KEY-----\nxx\n')).toThrow('no certificate in it');
    expect(() => x509Expiry('-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----')).toThrow(
      'does not parse',
    );
  });

  it('names the field and the file of one that cannot be read or is not a credential, never its content', async () => {
    const missing = path.join(dir, 'none');
    await expect(readCredentials(profileWith({ idToken: missing }))).rejects.toMatchObject({
      message: `credentials.idToken file ${missing} cannot be read on the worker's machine (ENOENT)`,
      type: 'CredentialUnusable',
    });
    const garbage = path.join(dir, 'garbage');
    fs.writeFileSync(garbage, 'SECRET-LOOKING-GARBAGE');
    const err = await readCredentials(profileWith({ x509Proxy: garbage })).catch((e: Error) => e);
    expect(err).toMatchObject({ type: 'CredentialUnusable' });
    expect((err as Error).message).toBe(
      `credentials.x509Proxy file ${garbage} is not an X.509 proxy (no certificate in it)`,
    );
    expect((err as Error).message).not.toContain('SECRET');
    // What the operator must read survives the redaction every failure message goes through.
    expect(redact((err as Error).message)).toBe((err as Error).message);
    expect(await readCredentials(profileWith(undefined))).toEqual([]);
  });

  it('refuses one that expires before the glidein ends, naming the file and both times', () => {
    const file = '/home/op/pool.idtoken';
    const soon = Date.now() + HOUR;
    const files = [{ kind: 'idToken' as const, file, content: 'x', expiresAtMs: soon }];
    expect(() => checkLifetime(files, soon + 1)).toThrow(
      `credentials.idToken file ${file} expires at ${new Date(soon).toISOString()}, before the glidein's ` +
        `end at ${new Date(soon + 1).toISOString()}`,
    );
    expect(() => checkLifetime([{ ...files[0], expiresAtMs: Date.now() - 1000 }], soon)).toThrow(
      'so the pool would refuse the glidein',
    );
    expect(() => checkLifetime(files, soon - 1)).not.toThrow();
    expect(() => checkLifetime([{ ...files[0], expiresAtMs: undefined }], soon * 2)).not.toThrow();
  });
});

describe('the collector stand-in with --token-keys', () => {
  let collector: ChildProcess;
  let port: number;
  let key: Buffer;

  beforeEach(async () => {
    const keys = path.join(dir, 'keys');
    key = ensureSigningKey(keys);
    port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const script = path.join(__dirname, '../../sandbox/standins/condor/collector.py');
    collector = spawn(
      script,
      ['--listen', `127.0.0.1:${port}`, '--allow-update-from', '127.0.0.1', '--token-keys', keys],
      {
        stdio: 'ignore',
      },
    );
    for (let i = 0; i < 100; i++) {
      const up = await new Promise<boolean>((resolve) =>
        net
          .connect(port, '127.0.0.1')
          .on('connect', function (this: net.Socket) {
            this.destroy();
            resolve(true);
          })
          .on('error', () => resolve(false)),
      );
      if (up) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the collector stand-in did not start');
  });
  afterEach(() => {
    collector.kill();
  });

  const ask = (request: object) =>
    new Promise<{ ok: boolean; error?: string }>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.end(`${JSON.stringify(request)}\n`));
      // The reply is the whole stream: one JSON line, then the stand-in closes.
      let data = '';
      s.setEncoding('utf8');
      s.setTimeout(15_000, () => s.destroy(new Error('the collector stand-in did not answer within 15 s')));
      s.on('data', (d: string) => (data += d))
        .on('end', () => {
          try {
            resolve(JSON.parse(data));
          } catch {
            reject(new Error(`the collector stand-in's reply is not one JSON line: ${JSON.stringify(data)}`));
          }
        })
        .on('error', reject);
    });
  const update = (idtoken?: string) =>
    ask({ command: 'UPDATE_STARTD_AD', ad: { Name: 'slot1@g@node' }, ...(idtoken ? { idtoken } : {}) });
  const now = () => Math.floor(Date.now() / 1000);

  it('admits an ad only with a valid token signed by the pool key', async () => {
    expect(await update(mintIdToken(key, { exp: now() + 600 }))).toEqual({ ok: true });
    expect((await update()).error).toMatch(/PERMISSION DENIED .* no IDTOKEN presented/);
    expect((await update(mintIdToken(key, { exp: now() - 1 }))).error).toMatch(/the IDTOKEN expired at/);
    expect((await update(mintIdToken(Buffer.alloc(32, 7), { exp: now() + 600 }))).error).toMatch(
      /signature does not verify with key POOL/,
    );
    expect((await update(mintIdToken(key, { exp: now() + 600, kid: 'OTHER' }))).error).toMatch(
      /signing key OTHER is not known/,
    );
    expect((await ask({ command: 'INVALIDATE_STARTD_ADS', name: 'slot1@g@node' })).ok).toBe(false);
    const query = (await ask({ command: 'QUERY_STARTD_ADS' })) as { ok: boolean; ads?: unknown[] };
    expect(query.ads).toHaveLength(1); // queries need no token
  });
});
