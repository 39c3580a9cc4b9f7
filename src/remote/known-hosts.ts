/**
 * OpenSSH known_hosts lookup: plain and hashed (|1|salt|hash) host entries, [host]:port for other ports,
 * @revoked markers. Host keys are only ever read from here; nothing is accepted on first sight.
 */
import { createHash, createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ExecutorError } from './executor';

export interface KnownKey {
  type: string;
  blob: Buffer;
}

export interface KnownHostKeys {
  keys: KnownKey[];
  revoked: KnownKey[];
}

/** The name a host has in known_hosts: `host` for port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function matchesPattern(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|');
    if (!salt || !hash) return false;
    const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return digest === hash;
  }
  if (!/[*?]/.test(pattern)) return pattern === name;
  // Wildcards as OpenSSH allows them (jwc*.juwels for a cluster's nodes that share a host key).
  const regex = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return regex.test(name);
}

export function findHostKeys(text: string, host: string, port: number): KnownHostKeys {
  const name = knownHostsName(host, port);
  const result: KnownHostKeys = { keys: [], revoked: [] };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: string | undefined;
    if (fields[0].startsWith('@')) marker = fields.shift();
    if (marker === '@cert-authority' || fields.length < 3) continue;
    const [patterns, type, base64] = fields;
    const names = patterns.split(',');
    if (names.some((p) => p.startsWith('!') && matchesPattern(p.slice(1), name))) continue;
    if (!names.some((p) => matchesPattern(p, name))) continue;
    const key = { type, blob: Buffer.from(base64, 'base64') };
    (marker === '@revoked' ? result.revoked : result.keys).push(key);
  }
  return result;
}

/**
 * The keys known_hosts holds for a host. A file that cannot be read is a permanent host-key fault: without it
 * no key can be verified, and retrying only opens connections that would be refused.
 */
export async function readHostKeys(file: string, host: string, port: number): Promise<KnownHostKeys> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ExecutorError(
      `known_hosts file ${file} cannot be read (${unreadable(err)}): refusing to connect to ` +
        `${knownHostsName(host, port)}. ` +
        `Make it a file readable by the worker's user that holds the host's verified key.`,
      'host-key',
      true,
    );
  }
  return findHostKeys(text, host, port);
}

/** Why a file cannot be read, for a message: "it does not exist", "permission denied", or the errno code. */
export function unreadable(err: unknown): string {
  const { code, message } = err as NodeJS.ErrnoException;
  if (code === 'ENOENT') return 'it does not exist';
  if (code === 'EISDIR') return 'it is a directory';
  if (code === 'EACCES') return 'permission denied';
  return code ?? message;
}

/** SHA256:… as `ssh-keygen -lf` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH public key blob. */
export function blobType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** Host key algorithms that can present the known key types (an RSA key signs with rsa-sha2-*). */
export function hostKeyAlgorithms(keys: KnownKey[]): string[] {
  const algorithms = new Set<string>();
  for (const { type } of keys) {
    if (type === 'ssh-rsa') ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'].forEach((a) => algorithms.add(a));
    else algorithms.add(type);
  }
  return [...algorithms];
}

/**
 * A host's keys from known_hosts as ssh2's host verifier, for one connect attempt; it remembers what the host
 * offered, so that a mismatch can say which key came.
 */
export class HostKeyCheck {
  private offered?: Buffer;

  private constructor(
    private readonly file: string,
    private readonly known: KnownHostKeys,
    /** The host's name in known_hosts. */
    readonly name: string,
  ) {}

  /** The check for `host`; a host the file does not list is refused at once, as a permanent fault. */
  static async load(file: string, host: string, port: number): Promise<HostKeyCheck> {
    const known = await readHostKeys(file, host, port);
    const name = knownHostsName(host, port);
    if (known.keys.length === 0) {
      throw new ExecutorError(
        `host key of ${name} is not in ${file}: refusing to connect. Get the key's fingerprint from the site's ` +
          `documentation or administrators and add the verified key to that file (ssh-keyscan -p ${port} ` +
          `${host} shows what the host offers).`,
        'host-key',
        true,
      );
    }
    return new HostKeyCheck(file, known, name);
  }

  /** Only these algorithms are negotiated, so that the host presents a key the file can vouch for. */
  get algorithms(): string[] {
    return hostKeyAlgorithms(this.known.keys);
  }

  /** ssh2's hostVerifier: a listed key that is not revoked. */
  readonly verify = (key: Buffer): boolean => {
    this.offered = key;
    return !this.known.revoked.some((k) => k.blob.equals(key)) && this.known.keys.some((k) => k.blob.equals(key));
  };

  /** The permanent fault for a host whose key failed `verify`. */
  mismatch(): ExecutorError {
    const { offered, name, file } = this;
    const what = offered ? `${blobType(offered)} ${fingerprint(offered)}` : 'an unverifiable key';
    const knownTypes = this.known.keys.map((k) => k.type);
    return new ExecutorError(
      `host key of ${name} does not match ${file} (the host offered ${what}; the file has ${knownTypes.join(', ')}). ` +
        `The key changed or someone is in the middle: confirm the new fingerprint with the site before ` +
        `replacing the entry (ssh-keygen -R '${name}' -f ${file}).`,
      'host-key',
      true,
    );
  }
}
