/** The in-process key agent that the reverse tunnel's ssh authenticates with, checked by OpenSSH's own tools. */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { KeyAgent } from '../../src/remote/key-agent';

const run = promisify(execFile);

describe('KeyAgent', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'agent-'));
  const keyFile = path.join(dir, 'id_ed25519');
  const socket = path.join(dir, 'agent.sock');
  let server: net.Server;

  beforeAll(async () => {
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'agent-test', '-f', keyFile]);
    const agent = new KeyAgent(readFileSync(keyFile));
    agent.arm(); // as a channel forwarding it does while it is open
    // A client that hangs up first makes the server's socket fail with EPIPE/ECONNRESET: that is the client's
    // choice, not a failure of the agent, so the server socket's errors end only that socket.
    server = net.createServer((sock) => {
      sock.on('error', () => sock.destroy());
      agent.getStream((_err, stream) => sock.pipe(stream!).pipe(sock));
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('lists its one key to ssh-add, with the fingerprint ssh-keygen computes', async () => {
    const listed = await run('ssh-add', ['-l'], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
    const expected = await run('ssh-keygen', ['-lf', `${keyFile}.pub`]);
    expect(listed.stdout.split(' ')[1]).toBe(expected.stdout.split(' ')[1]);
  });

  it('answers an extension message (session-bind) with a failure and keeps the framing for what follows', async () => {
    const frame = (type: number, body = Buffer.alloc(0)) => {
      const b = Buffer.alloc(5);
      b.writeUInt32BE(body.length + 1);
      b[4] = type;
      return Buffer.concat([b, body]);
    };
    const sock = net.connect(socket);
    const replies: Buffer[] = [];
    let buffered = Buffer.alloc(0);
    sock.on('data', (d) => {
      buffered = Buffer.concat([buffered, d]);
      while (buffered.length >= 4 && buffered.length >= 4 + buffered.readUInt32BE(0)) {
        replies.push(buffered.subarray(4, 4 + buffered.readUInt32BE(0)));
        buffered = buffered.subarray(4 + buffered.readUInt32BE(0));
      }
    });
    const extension = Buffer.concat([
      Buffer.from([0, 0, 0, 24]),
      Buffer.from('session-bind@openssh.com'),
      Buffer.alloc(40, 7),
    ]);
    sock.on('error', () => undefined);
    sock.write(Buffer.concat([frame(27, extension), frame(11)]));
    // Both replies, however long a loaded machine takes to deliver them (a fixed 300 ms once saw none in CI).
    for (let waited = 0; replies.length < 2 && waited < 15_000; waited += 20)
      await new Promise((r) => setTimeout(r, 20));
    sock.end();
    expect(replies.map((r) => r[0])).toEqual([5, 12]);
    expect(replies[1].readUInt32BE(1)).toBe(1); // one key
  });

  it('answers nothing while no channel forwards it, and ends its streams when the last one closes', () => {
    const agent = new KeyAgent(readFileSync(keyFile));
    expect(agent.answer(11, Buffer.alloc(0))[0]).toBe(5);
    let refused: Error | undefined;
    agent.getStream((err) => (refused = err));
    expect(refused?.message).toBe('no channel forwards the agent now');
    const disarm = agent.arm();
    expect(agent.answer(11, Buffer.alloc(0))[0]).toBe(12);
    let stream: import('node:stream').Duplex | undefined;
    agent.getStream((_err, s) => (stream = s));
    disarm();
    disarm(); // twice is once
    expect(stream?.destroyed).toBe(true);
    expect(agent.answer(11, Buffer.alloc(0))[0]).toBe(5);
  });

  it('refuses to sign for a key it does not hold, and refuses a file that is not a key', () => {
    const agent = new KeyAgent(readFileSync(keyFile));
    agent.arm();
    const other = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' });
    const request = Buffer.concat([
      Buffer.from([0, 0, 0, other.length]),
      other,
      Buffer.from([0, 0, 0, 1, 65, 0, 0, 0, 0]),
    ]);
    expect(agent.answer(13, request)[0]).toBe(5);
    writeFileSync(path.join(dir, 'junk'), 'not a key');
    expect(() => new KeyAgent(readFileSync(path.join(dir, 'junk')))).toThrow('not a usable private key');
  });
});
