/** The host-key verifier an SSH connect attempt uses: only a listed, unrevoked key passes, and a refusal says why. */
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ExecutorError } from '../../src/remote/executor';
import { HostKeyCheck, fingerprint } from '../../src/remote/known-hosts';

/** A fresh ed25519 public key as an SSH wire blob (string "ssh-ed25519", string key). */
function ed25519Blob(): Buffer {
  const der = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' });
  const raw = der.subarray(der.length - 32);
  const field = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return Buffer.concat([field(Buffer.from('ssh-ed25519')), field(raw)]);
}

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'host-key-check-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const listed = ed25519Blob();
const revoked = ed25519Blob();
const stranger = ed25519Blob();
const file = path.join(scratch, 'known_hosts');
fs.writeFileSync(
  file,
  [
    `[login.example]:2201 ssh-ed25519 ${listed.toString('base64')}`,
    `[login.example]:2201 ssh-ed25519 ${revoked.toString('base64')}`,
    `@revoked [login.example]:2201 ssh-ed25519 ${revoked.toString('base64')}`,
  ].join('\n'),
);

describe('HostKeyCheck', () => {
  it('accepts the listed key only, never a revoked one, and negotiates only the listed key types', async () => {
    const check = await HostKeyCheck.load(file, 'login.example', 2201);
    expect(check.name).toBe('[login.example]:2201');
    expect(check.algorithms).toEqual(['ssh-ed25519']);
    expect(check.verify(listed)).toBe(true);
    expect(check.verify(revoked)).toBe(false);
    expect(check.verify(stranger)).toBe(false);
  });

  it('names the key the host offered and how to fix the entry when it does not match', async () => {
    const check = await HostKeyCheck.load(file, 'login.example', 2201);
    check.verify(stranger);
    const err = check.mismatch();
    expect(err).toBeInstanceOf(ExecutorError);
    expect(err).toMatchObject({ kind: 'host-key', permanent: true });
    expect(err.message).toBe(
      `host key of [login.example]:2201 does not match ${file} (the host offered ssh-ed25519 ` +
        `${fingerprint(stranger)}; ` +
        `the file has ssh-ed25519, ssh-ed25519). The key changed or someone is in the middle: confirm the new ` +
        `fingerprint with the site before replacing the entry (ssh-keygen -R '[login.example]:2201' -f ${file}).`,
    );
  });

  it('refuses a host the file does not list, permanently, before any connection', async () => {
    const err = await HostKeyCheck.load(file, 'login.example', 22).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ExecutorError);
    expect(err).toMatchObject({ kind: 'host-key', permanent: true });
    expect((err as Error).message).toMatch(/^host key of login\.example is not in .*: refusing to connect\./);
    expect((err as Error).message).toContain('ssh-keyscan -p 22 login.example');
  });
});
