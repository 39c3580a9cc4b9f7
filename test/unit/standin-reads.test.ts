/**
 * The site's stand-ins read a message to its end, however many TCP segments it comes in: the collector a request to
 * its newline, squid a request to the blank line after its headers, condor_status and condor_master a reply to its
 * newline (condor_master names a reply cut short). Each piece here is its own segment (no Nagle, a pause between).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const STANDINS = path.join(__dirname, '../../sandbox/standins');
const pause = () => new Promise((r) => setTimeout(r, 100));
const children: ChildProcess[] = [];
let dir: string;

beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'standin-reads-'))));
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes `pieces` one segment at a time; resolves with all the server sent until it closed (15 s at most). */
async function askInPieces(port: number, pieces: string[]): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true);
  s.setEncoding('latin1');
  let data = '';
  const answered = new Promise<string>((resolve, reject) => {
    s.setTimeout(15_000, () => s.destroy(new Error(`no answer within 15 s after ${JSON.stringify(data)}`)));
    s.on('data', (d: string) => (data += d))
      .on('end', () => resolve(data))
      .on('error', reject);
  });
  await new Promise((r) => s.once('connect', r));
  for (const piece of pieces) {
    s.write(piece);
    await pause();
  }
  return answered;
}

/** Starts a stand-in server on a free port; resolves once it accepts connections. */
async function startServer(script: string, args: (port: number) => string[]): Promise<number> {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const child = spawn(script, args(port), { stdio: 'ignore' });
  children.push(child);
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
    if (up) return port;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${path.basename(script)} did not start`);
}

/** A server that reads a request line, then answers `pieces` one segment at a time and closes. */
async function answerInPieces(pieces: string[]): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    let request = '';
    s.on('error', () => undefined).on('data', async (d) => {
      request += d;
      if (!request.endsWith('\n')) return;
      for (const piece of pieces) {
        s.write(piece);
        await pause();
      }
      s.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** `text` cut at the given offsets. */
const cut = (text: string, ...at: number[]) => [0, ...at].map((from, i) => text.slice(from, [...at, undefined][i]));

it('the collector reads a request to its newline', async () => {
  const port = await startServer(path.join(STANDINS, 'condor/collector.py'), (p) => [
    '--listen',
    `127.0.0.1:${p}`,
    '--allow-update-from',
    '127.0.0.1',
  ]);
  const update = `${JSON.stringify({ command: 'UPDATE_STARTD_AD', ad: { Name: 'slot1@g@node' } })}\n`;
  expect(JSON.parse(await askInPieces(port, cut(update, 3, 30)))).toEqual({ ok: true });
  const query = `${JSON.stringify({ command: 'QUERY_STARTD_ADS', constraint: 'true' })}\n`;
  const reply = JSON.parse(await askInPieces(port, cut(query, 10)));
  expect(reply.ads.map((ad: { Name: string }) => ad.Name)).toEqual(['slot1@g@node']);
});

it('squid reads a request to the blank line after its headers, as bash writes it under load', async () => {
  fs.mkdirSync(path.join(dir, 'store', 'cms.cern.ch'), { recursive: true });
  const port = await startServer(path.join(STANDINS, 'squid/squid.py'), (p) => [
    '--listen',
    `127.0.0.1:${p}`,
    '--store',
    path.join(dir, 'store'),
  ]);
  const answer = await askInPieces(port, [
    'GET http://cvmfs-stratum-one.cern.ch:8000/cvmfs/cms.cern.ch/.cvmfspublished',
    ' HTTP/1.1\r\n',
    'Host: cvmfs-stratum-one.cern.ch:8000\r',
    '\n',
    '\r\n',
  ]);
  expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nC0{40}\nNcms\.cern\.ch\n/);
});

it("condor_status reads the collector's reply to its newline", async () => {
  const reply = `${JSON.stringify({ ok: true, ads: [{ Name: 'slot1@g@node', State: 'Unclaimed' }] })}\n`;
  const collector = await answerInPieces(cut(reply, 5, 20));
  try {
    const { stdout } = await run(
      path.join(STANDINS, 'condor/condor_status'),
      ['-pool', `127.0.0.1:${collector.port}`, '-af', 'Name', 'State'],
      { timeout: 60_000 },
    );
    expect(stdout).toBe('slot1@g@node Unclaimed\n');
  } finally {
    await collector.close();
  }
});

it("condor_master reads the collector's reply to its newline, and names one cut short", async () => {
  // Its Master.send(), loaded from the script (it has no .py suffix) and called with a reply in pieces.
  const SEND = `
import importlib.machinery, importlib.util, json, sys
loader = importlib.machinery.SourceFileLoader("condor_master", sys.argv[1])
spec = importlib.util.spec_from_loader("condor_master", loader)
m = importlib.util.module_from_spec(spec)
loader.exec_module(m)
try:
    reply = m.Master({"COLLECTOR_HOST": "127.0.0.1:" + sys.argv[2]}).send({"command": "X"})
    print(json.dumps(reply, separators=(",", ":")))
except RuntimeError as e:
    print("error: %s" % e)
`;
  const reply = `${JSON.stringify({ ok: true, note: 'x'.repeat(3000) })}\n`;
  for (const [pieces, said] of [
    [cut(reply, 7, 2000), reply],
    [[reply.slice(0, 50)], 'error: connection closed by collector after 50 bytes of its reply\n'],
  ] as const) {
    const collector = await answerInPieces([...pieces]);
    try {
      const { stdout } = await run(
        'python3',
        ['-B', '-c', SEND, path.join(STANDINS, 'condor/condor_master'), String(collector.port)],
        { timeout: 60_000 },
      );
      expect(stdout).toBe(said);
    } finally {
      await collector.close();
    }
  }
});
