/**
 * An SSH agent inside the worker process that holds one key. Forwarded on a single exec channel, it lets a
 * command on the login node (the reverse tunnel's ssh) authenticate with our key while the key itself never
 * leaves this machine: the login node can ask for signatures only while that channel is open (arm()).
 *
 * The forwarded channel speaks the agent protocol (draft-miller-ssh-agent) served here directly: only
 * REQUEST_IDENTITIES and SIGN_REQUEST are answered, everything else gets SSH_AGENT_FAILURE. (ssh2's own
 * AgentProtocol loses the framing after an extension message such as OpenSSH's session-bind@openssh.com, which
 * every OpenSSH >= 8.9 client sends first, and then refuses the identities request.)
 */
import { Duplex } from 'node:stream';
import { BaseAgent, utils, type ParsedKey } from 'ssh2';

type SignCallback = (err?: Error, signature?: Buffer) => void;

const REQUEST_IDENTITIES = 11;
const IDENTITIES_ANSWER = 12;
const SIGN_REQUEST = 13;
const SIGN_RESPONSE = 14;
const FAILURE = 5;
const RSA_SHA2_256 = 2;
const RSA_SHA2_512 = 4;

/** The agent of each SSH connection (ssh-connect.ts), for the channels that forward it (ssh-channel.ts). */
export const agentOf = new WeakMap<object, KeyAgent>();

export class KeyAgent extends BaseAgent<ParsedKey> {
  private readonly key: ParsedKey;
  /** Channels that asked for the agent and are still open: it answers only while there is one. */
  private armed = 0;
  /** Agent streams opened while armed: ended when the last such channel closes. */
  private readonly streams = new Set<Duplex>();

  constructor(privateKey: Buffer) {
    super();
    const parsed = utils.parseKey(privateKey);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || key instanceof Error)
      throw new Error(`the identity file is not a usable private key${key instanceof Error ? `: ${key.message}` : ''}`);
    this.key = key;
  }

  getIdentities(cb: (err: Error | undefined, keys?: ParsedKey[]) => void): void {
    cb(undefined, [this.key]);
  }

  sign(pubKey: ParsedKey, data: Buffer, options: { hash?: string } | SignCallback, cb?: SignCallback): void {
    const callback = (typeof options === 'function' ? options : cb)!;
    const hash = typeof options === 'object' ? options.hash : undefined;
    if (!pubKey.getPublicSSH().equals(this.key.getPublicSSH()))
      return callback(new Error('the agent holds no such key'));
    const signature = this.key.sign(data, hash);
    if (signature instanceof Error) callback(signature);
    else callback(undefined, signature);
  }

  /**
   * The agent answers from now until the returned function is called: the life of the one channel that asked for it.
   * ssh2 accepts agent channels for the rest of the connection once one channel asked, and sshd keeps the agent
   * socket for as long as the connection lives, open to every later session (a detached tunnel's included). So the
   * gate is here: no channel forwarding it, no agent; and its closing ends every agent stream it let in.
   */
  arm(): () => void {
    this.armed++;
    let disarmed = false;
    return () => {
      if (disarmed) return;
      disarmed = true;
      if (--this.armed > 0) return;
      for (const stream of this.streams) stream.destroy();
      this.streams.clear();
    };
  }

  override getStream(cb: (err: Error | undefined, stream?: Duplex) => void): void {
    if (this.armed === 0) return cb(new Error('no channel forwards the agent now'));
    const stream = new AgentServerStream((type, body) => this.answer(type, body));
    this.streams.add(stream);
    stream.once('close', () => this.streams.delete(stream));
    cb(undefined, stream);
  }

  /** One request in, one reply out (both without the length prefix). */
  answer(type: number, body: Buffer): Buffer {
    if (this.armed === 0) return Buffer.from([FAILURE]);
    if (type === REQUEST_IDENTITIES) {
      return Buffer.concat([
        Buffer.from([IDENTITIES_ANSWER]),
        u32(1),
        sshString(this.key.getPublicSSH()),
        sshString(Buffer.from(this.key.comment || 'jsc-glidein')),
      ]);
    }
    if (type === SIGN_REQUEST) {
      const reader = new Reader(body);
      const blob = reader.string();
      const data = reader.string();
      const flags = reader.u32();
      if (!blob || !data || flags === undefined || !blob.equals(this.key.getPublicSSH())) return Buffer.from([FAILURE]);
      let algorithm: string = this.key.type;
      let hash: string | undefined;
      if (this.key.type === 'ssh-rsa' && flags & RSA_SHA2_512) [algorithm, hash] = ['rsa-sha2-512', 'sha512'];
      else if (this.key.type === 'ssh-rsa' && flags & RSA_SHA2_256) [algorithm, hash] = ['rsa-sha2-256', 'sha256'];
      const raw = this.key.sign(data, hash);
      if (raw instanceof Error) return Buffer.from([FAILURE]);
      return Buffer.concat([
        Buffer.from([SIGN_RESPONSE]),
        sshString(Buffer.concat([sshString(Buffer.from(algorithm)), sshString(raw)])),
      ]);
    }
    return Buffer.from([FAILURE]);
  }
}

/** Frames the agent protocol (uint32 length, then the message) and answers each message in order. */
class AgentServerStream extends Duplex {
  private pending = Buffer.alloc(0);

  constructor(private readonly handle: (type: number, body: Buffer) => Buffer) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error) => void): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 4) {
      const length = this.pending.readUInt32BE(0);
      if (length < 1 || length > 256 * 1024) return done(new Error('malformed agent request'));
      if (this.pending.length < 4 + length) break;
      const message = this.pending.subarray(4, 4 + length);
      this.pending = this.pending.subarray(4 + length);
      const reply = this.handle(message[0], message.subarray(1));
      this.push(Buffer.concat([u32(reply.length), reply]));
    }
    done();
  }

  override _read(): void {}

  override _final(done: () => void): void {
    this.push(null);
    done();
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function sshString(b: Buffer): Buffer {
  return Buffer.concat([u32(b.length), b]);
}

class Reader {
  private offset = 0;
  constructor(private readonly buf: Buffer) {}
  u32(): number | undefined {
    if (this.offset + 4 > this.buf.length) return undefined;
    const n = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return n;
  }
  string(): Buffer | undefined {
    const n = this.u32();
    if (n === undefined || this.offset + n > this.buf.length) return undefined;
    const s = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return s;
  }
}
