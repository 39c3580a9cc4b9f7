/**
 * A tunnel on a shared node, where a co-tenant may bind the SOCKS port first: a spawn waiting for its port counts it
 * ready only when its own process listens there (checked on the site through /proc), a tunnel ssh that could not bind
 * is a TunnelPortInUse with the fix, and a profile that would put an unauthenticated SOCKS port on the login node
 * itself is refused.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { permanentCause } from '../../src/site/adapters';
import { LocalExecutor } from '../../src/remote/local';
import { parseSiteProfile } from '../../src/site/load';
import { spawnDetached, spawnedProcess } from '../../src/site/scripts';
import { freePort } from '../support/ports';
import { parse, stringify } from 'yaml';

const local = new LocalExecutor();
const opts = { timeoutMs: 30_000 };
let dir: string;
const pids: number[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'squatter-'));
});
afterEach(() => {
  for (const pid of pids.splice(0))
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone already
    }
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('a spawn waiting for its port', () => {
  it("does not take a squatter's listener for its own process", async () => {
    const port = await freePort();
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
    try {
      // Lives, but never listens: the port is the squatter's.
      const result = await spawnDetached(
        local,
        ['sleep', '300'],
        { log: path.join(dir, 't.log'), pidFile: path.join(dir, 't.pid'), awaitListen: { port, seconds: 1 } },
        opts,
      );
      const child = spawnedProcess(result);
      if (child) pids.push(child.pid);
      expect(result).toEqual({ stillWaiting: expect.objectContaining({ pid: expect.any(Number) }) });
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  it('is ready once its own process listens', async () => {
    const port = await freePort();
    const result = await spawnDetached(
      local,
      [
        'python3',
        '-c',
        'import socket,sys,time\ns=socket.socket()\n' +
          's.bind(("127.0.0.1",int(sys.argv[1])))\ns.listen()\ntime.sleep(300)',
        String(port),
      ],
      { log: path.join(dir, 'o.log'), pidFile: path.join(dir, 'o.pid'), awaitListen: { port, seconds: 10 } },
      opts,
    );
    const child = spawnedProcess(result);
    if (child) pids.push(child.pid);
    expect(result).toEqual({ started: expect.objectContaining({ pid: expect.any(Number) }) });
  });

  it("classifies a tunnel ssh that could not bind its port (a squatter's) as TunnelPortInUse, with the fix", () => {
    // What OpenSSH's ssh -D with ExitOnForwardFailure prints when the port is taken.
    const log = [
      'bind [127.0.0.1]:1080: Address already in use',
      'channel_setup_fwd_listener_tcpip: cannot listen to port: 1080',
      'Could not request local forwarding.',
    ].join('\n');
    const rule = permanentCause('tunnelSsh', log);
    expect(rule?.type).toBe('TunnelPortInUse');
    expect(rule?.fix).toMatch(/listens on the leased SOCKS port/);
  });
});

describe('the site profile', () => {
  const local = () => parse(fs.readFileSync(path.join(__dirname, '..', '..', 'sites', 'local.yaml'), 'utf8'));
  it('refuses a forward tunnel on the login node itself, naming tunnel.mode and what to use instead', () => {
    const p = local();
    p.workerNode = { via: 'login' };
    expect(p.tunnel.mode).toBe('forward');
    expect(() => parseSiteProfile(stringify(p), 'local.yaml')).toThrow(
      /tunnel\.mode[\s\S]*open to every user[\s\S]*relay/,
    );
  });
});
