/**
 * A start rate per sshd: many glideins opening their tunnels at once must not trip the login node's
 * MaxStartups (sshd drops unauthenticated connections beyond it; JSC-like sites also block hosts that keep
 * trying). The login node gets a second sshd for this file, as strict as a site may be: `MaxStartups 2:100:2`,
 * at most two connections in the handshake, every further one dropped. Eight glideins open their forward
 * tunnels into it at once, on the real worker node, through the real activity.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { parse, stringify } from 'yaml';
import { createActivities } from '../../src/activities';
import type { GlideinRef, TunnelInfo } from '../../src/common/types';
import { SshPool } from '../../src/remote/ssh';
import { SiteRegistry } from '../../src/site/load';
import { SITES_DIR } from '../../sandbox/sites';
import { hostKeyEntry, portAccepts, SITE_PATHS, siteProcesses, waitFor } from '../../sandbox/local-site';

const STRICT = { host: '127.0.0.1', port: 2211 };
const dir = fs.mkdtempSync(path.join(SITE_PATHS.workDir, `starts-${process.pid}-`));
const sshdLog = path.join(dir, 'sshd.log');
const sshdPid = path.join(dir, 'sshd.pid');
const knownHosts = path.join(dir, 'known_hosts');
const sitesDir = path.join(dir, 'sites');
const GLIDEINS = 8;
const ssh = new SshPool();

/** One profile per glidein (each its own SOCKS port), tunnels into the strict sshd, at most `inFlight` starting. */
function profiles(tag: string, firstPort: number, inFlight: number): string[] {
  const base = parse(fs.readFileSync(path.join(SITES_DIR, 'local.yaml'), 'utf8'));
  return Array.from({ length: GLIDEINS }, (_, i) => {
    const name = `starts-${tag}-${i}`;
    const p = structuredClone(base);
    p.name = name;
    p.tunnel = {
      ...p.tunnel,
      socksPort: firstPort + i,
      loginPort: STRICT.port,
      knownHostsFile: knownHosts,
      startsInFlight: inFlight,
    };
    fs.writeFileSync(path.join(sitesDir, `${name}.yaml`), stringify(p));
    return name;
  });
}

async function openAll(names: string[]): Promise<{ refs: GlideinRef[]; results: PromiseSettledResult<TunnelInfo>[] }> {
  const activities = createActivities({ sites: new SiteRegistry(sitesDir), ssh, pollMs: 50 });
  const refs = names.map((site) => ({ site, glideinId: `${site}-${Date.now()}` }));
  const results = await Promise.allSettled(
    refs.map((ref) => new MockActivityEnvironment().run(activities.openTunnel, ref) as Promise<TunnelInfo>),
  );
  return { refs, results };
}

async function closeAll(refs: GlideinRef[]): Promise<void> {
  const activities = createActivities({ sites: new SiteRegistry(sitesDir), ssh, pollMs: 50 });
  await Promise.all(
    refs.map((ref) => new MockActivityEnvironment().run(activities.closeTunnel, ref).catch(() => undefined)),
  );
}

const drops = () =>
  fs.existsSync(sshdLog) ? (fs.readFileSync(sshdLog, 'utf8').match(/drop connection #\d+/g)?.length ?? 0) : 0;

beforeAll(async () => {
  fs.chmodSync(dir, 0o755);
  fs.mkdirSync(sitesDir);
  // The site account's known_hosts, plus the strict sshd (same host key as the login node's).
  const pub = fs.readFileSync(path.join(SITE_PATHS.loginDir, 'host_ed25519.pub'), 'utf8');
  fs.writeFileSync(knownHosts, `${fs.readFileSync(SITE_PATHS.siteKnownHosts, 'utf8')}${hostKeyEntry(STRICT, pub)}\n`, {
    mode: 0o644,
  });
  const started = spawnSync('/usr/sbin/sshd', [
    '-f',
    path.join(SITE_PATHS.loginDir, 'sshd_config'),
    '-o',
    `Port=${STRICT.port}`,
    '-o',
    `PidFile=${sshdPid}`,
    '-o',
    'MaxStartups=2:100:2',
    '-E',
    sshdLog,
  ]);
  expect(started.status).toBe(0);
  await waitFor('the strict sshd', () => portAccepts(STRICT));
});

afterAll(async () => {
  ssh.close();
  const pid = Number(fs.readFileSync(sshdPid, 'utf8'));
  if (pid > 0) process.kill(pid, 'SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('eight tunnels opened at once, two starting at a time: all come up first time, sshd drops nothing', async () => {
  const { refs, results } = await openAll(profiles('gated', 1300, 2));
  try {
    expect(results.map((r) => (r.status === 'fulfilled' ? 'up' : String(r.reason)))).toEqual(
      Array(GLIDEINS).fill('up'),
    );
    expect(results.map((r) => (r as PromiseFulfilledResult<TunnelInfo>).value.reused)).toEqual(
      Array(GLIDEINS).fill(false),
    );
    expect(drops()).toBe(0);
    // Eight tunnel processes on the worker node, each its own port, into the strict sshd.
    const tunnels = siteProcesses().filter((p) => p.argv[0] === 'ssh' && p.cmdline.includes(`-p ${STRICT.port} `));
    expect(tunnels.map((p) => p.cmdline.match(/-D 127\.0\.0\.1:(\d+)/)?.[1]).sort()).toEqual(
      Array.from({ length: GLIDEINS }, (_, i) => String(1300 + i)),
    );
  } finally {
    await closeAll(refs);
  }
}, 120_000);

test('the same without the gate (eight starting at once) is what it prevents: sshd drops connections', async () => {
  const before = drops();
  const { refs, results } = await openAll(profiles('open', 1320, GLIDEINS));
  try {
    // Dropped tunnel connections fail their first attempt (Temporal would retry them); the log says why.
    expect(drops() - before).toBeGreaterThan(0);
    expect(results.filter((r) => r.status === 'rejected').length).toBeGreaterThan(0);
  } finally {
    await closeAll(refs);
  }
}, 120_000);
