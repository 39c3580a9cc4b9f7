/**
 * SOCKS port leases run for real with the local executor in a temporary directory (no root, no sshd): each glidein
 * gets its own port of the range, finds it again, never takes one another glidein leases or something listens on,
 * and gives it back; concurrent leases never share a port.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalExecutor } from '../../src/remote/local';
import { parsePortLease, parsePortRelease, portLeaseArgv, portReleaseArgv } from '../../src/site/scripts';

const local = new LocalExecutor();
const opts = { timeoutMs: 30_000 };
let root: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'port-leases-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

async function lease(glideinId: string, first: number, last: number) {
  const r = await local.run(portLeaseArgv({ root, glideinId, first, last }), opts);
  expect(r.code).toBe(0);
  return parsePortLease(r.stdout);
}
async function release(glideinId: string) {
  const r = await local.run(portReleaseArgv(root, glideinId), opts);
  expect(r.code).toBe(0);
  return parsePortRelease(r.stdout);
}

/** A free port block on this machine: `n` ports from a random base nothing listens on. */
async function freeBlock(n: number): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    const free = await Promise.all(Array.from({ length: n }, (_, i) => canListen(base + i)));
    if (free.every(Boolean)) return base;
  }
}
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

it('leases the lowest free port, finds it again, and gives it back', async () => {
  const base = await freeBlock(3);
  expect(await lease('g1', base, base + 2)).toEqual({ state: 'leased', port: base });
  expect(await lease('g2', base, base + 2)).toEqual({ state: 'leased', port: base + 1 });
  // A retry, a tunnel reopened, a new worker: the same port.
  expect(await lease('g1', base, base + 2)).toEqual({ state: 'found', port: base });
  expect(await release('g1')).toEqual({ state: 'released', port: base });
  expect(await release('g1')).toEqual({ state: 'not-held' });
  expect(await lease('g3', base, base + 2)).toEqual({ state: 'leased', port: base });
  // The lease names its glidein, per node.
  expect(fs.readFileSync(path.join(root, os.hostname(), String(base)), 'utf8').trim()).toBe('g3');
});

it('never leases a port something else listens on, and says when the range is exhausted', async () => {
  const base = await freeBlock(2);
  const squatter = net.createServer();
  await new Promise<void>((r) => squatter.listen(base, '127.0.0.1', () => r()));
  try {
    expect(await lease('g1', base, base + 1)).toEqual({ state: 'leased', port: base + 1 });
    expect(await lease('g2', base, base + 1)).toEqual({ state: 'exhausted' });
    // The operator learns who holds the range: the glideins' leases, and the squatter's uid.
    const r = await local.run(portLeaseArgv({ root, glideinId: 'g2', first: base, last: base + 1 }), opts);
    expect(r.stderr).toContain(`uid ${process.getuid?.()} listens on 1 of them`);
    expect(r.stderr).toContain('1 leased by glideins on this node');
  } finally {
    squatter.close();
  }
});

it('gives concurrent glideins different ports', async () => {
  const base = await freeBlock(10);
  const leases = await Promise.all(Array.from({ length: 10 }, (_, i) => lease(`g${i}`, base, base + 9)));
  const ports = leases.map((l) => (l.state === 'exhausted' ? 0 : l.port));
  expect(new Set(ports).size).toBe(10);
  expect(Math.min(...ports)).toBe(base);
});

it('refuses answers it does not know', () => {
  expect(() => parsePortLease('leased')).toThrow('the port lease answered');
  expect(() => parsePortLease('found 99999999')).toThrow();
  expect(() => parsePortRelease('released 80 extra')).toThrow('the port release answered');
});
