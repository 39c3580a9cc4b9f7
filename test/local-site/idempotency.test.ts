/**
 * The lifecycle activities are idempotent, proven on the local test site: each acquiring activity run twice
 * holds exactly one of its resource (one tunnel process, one mount per repository, one container instance,
 * one glidein, one collector ad), each releasing activity run twice gives it back once and then reports that
 * there is nothing to do, and the site holds nothing of the glidein afterwards. The release steps never touch
 * what is not the glidein's: a reused tunnel pid, a repository that was mounted before the glidein.
 *
 * The real activities run in MockActivityEnvironment with every site command over SSH (the worker node
 * through the login node). Another test run may use the same site at the same time, so this file keeps to
 * its own SOCKS port (1190), glidein ids (act-*) and cvmfsexec directory (its own dist/cvmfs, the site's
 * store): the mounts of other runs and these never meet.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../src/activities';
import { instanceName } from '../../src/common/naming';
import type { GlideinRef } from '../../src/common/types';
import { leaseRoot } from '../../src/site/adapters';
import { MOUNT_LEASE } from '../../src/site/scripts';
import { SshPool } from '../../src/remote/ssh';
import { SiteRegistry } from '../../src/site/load';
import { localSiteWith } from '../../sandbox/sites';
import {
  collectorAds,
  ENDPOINTS,
  kitProxyLog,
  localSite,
  SITE_PATHS,
  siteMounts,
  siteProcesses,
  waitFor,
  type SiteProcess,
} from '../../sandbox/local-site';

const SOCKS_PORT = 1190;
const site = localSite();
/** A cvmfsexec of this file's own: the site's mountrepo and umountrepo, serving the site's store. */
const CVMFSEXEC = path.join(SITE_PATHS.workDir, `act-cvmfsexec-${process.pid}`);
const DIST = path.join(CVMFSEXEC, 'dist', 'cvmfs');
const REPOS = ['cms.cern.ch', 'oasis.opensciencegrid.org'];

const sitesDir = localSiteWith((p) => {
  p.tunnel.socksPort = SOCKS_PORT;
  p.cvmfs.cvmfsexecDir = CVMFSEXEC;
  // Several tests here mount without a tunnel of their own: this cvmfsexec reaches the site's squid directly
  // (the local site has no fences), by a default.local written once below, not through a glidein's chain.
  delete p.cvmfs.httpProxy;
});
const ssh = new SshPool();
const activities = createActivities({ sites: new SiteRegistry(sitesDir), ssh, pollMs: 100 });
const env = new MockActivityEnvironment();
const run = <A extends any[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => env.run(fn, ...args);

const refFor = (name: string): GlideinRef => ({ site: 'local', glideinId: `act-${name}-${Date.now()}` });
const glideinDir = (ref: GlideinRef) => path.join(SITE_PATHS.workDir, ref.glideinId);

beforeAll(async () => {
  const r = await site.ssh('worker', [
    'sh',
    '-c',
    'mkdir -p "$1/dist/cvmfs" "$1/dist/etc/cvmfs" && cp "$2" "$3" "$1/" && ln -s "$4" "$1/store" && printf ' +
      '"%s\\n" "$5" > "$1/dist/etc/cvmfs/default.local"',
    'sh',
    CVMFSEXEC,
    SITE_PATHS.mountrepo,
    SITE_PATHS.umountrepo,
    SITE_PATHS.cvmfsStore,
    `CVMFS_HTTP_PROXY='http://${ENDPOINTS.squid.host}:${ENDPOINTS.squid.port}'`,
  ]);
  expect(r).toMatchObject({ code: 0 });
});

afterAll(async () => {
  ssh.close();
  for (const m of ourMounts().sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  fs.rmSync(CVMFSEXEC, { recursive: true, force: true });
  fs.rmSync(sitesDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------
// What the site holds

function environ(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** Processes of user glidein that are this glidein's: its id in their command line or environment. */
function glideinProcesses(ref: GlideinRef): SiteProcess[] {
  return siteProcesses().filter(
    (p) => p.cmdline.includes(ref.glideinId) || environ(p.pid).some((v) => v.includes(ref.glideinId)),
  );
}

/** `ssh -D 127.0.0.1:1190` processes: this file's tunnels. */
function tunnelPids(): number[] {
  return siteProcesses()
    .filter((p) => p.argv[0] === 'ssh' && p.cmdline.includes(` -D 127.0.0.1:${SOCKS_PORT} `))
    .map((p) => p.pid);
}

function instancePids(ref: GlideinRef): number[] {
  return siteProcesses()
    .filter((p) => p.cmdline.startsWith(`Apptainer instance: glidein [${instanceName(ref.glideinId)}]`))
    .map((p) => p.pid);
}

/** condor_master processes started for this glidein (HTCondor's GLIDEIN_NAME is the glidein id). */
function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[1]);
}

function masterPids(ref: GlideinRef): number[] {
  return siteProcesses()
    .filter(
      (p) => p.cmdline.includes('condor_master') && environ(p.pid).includes(`_CONDOR_GLIDEIN_NAME=${ref.glideinId}`),
    )
    .map((p) => p.pid);
}

function listening(port: number): boolean {
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .some((f) => f.length > 3 && f[3] === '0A' && parseInt(f[1].split(':')[1], 16) === port);
}

/** Mount targets under this file's dist/cvmfs. */
function ourMounts(): string[] {
  return siteMounts()
    .map((m) => m.target)
    .filter((t) => t.startsWith(`${DIST}/`));
}

/** The repositories a glidein holds a lease on, from the lease files on the (loopback) worker node. */
async function leases(ref: GlideinRef): Promise<string[]> {
  const dir = path.join(CVMFSEXEC, '.leases', os.hostname());
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((repo) => fs.existsSync(path.join(dir, repo, ref.glideinId)))
    .sort();
}

/** Start time of a process, field 22 of /proc/<pid>/stat. */
function startTime(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/s.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Best effort: the inverse activities, then force whatever is left, and the glidein's directory. */
async function cleanUp(ref: GlideinRef): Promise<void> {
  for (const step of [
    () => run(activities.stopGlidein, ref, 'stop'),
    () => run(activities.stopContainer, ref),
    () => run(activities.unmountCvmfs, ref),
    () => run(activities.closeTunnel, ref),
  ]) {
    await step().catch(() => undefined);
  }
  for (const pid of [...glideinProcesses(ref).map((p) => p.pid), ...tunnelPids()]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  fs.rmSync(glideinDir(ref), { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------------

describe('every step twice', () => {
  const ref = refFor('idem');
  afterAll(() => cleanUp(ref));

  test('acquiring twice holds one of each; releasing twice gives each back once; nothing is left', async () => {
    const kitLogStart = kitProxyLog().length;

    // The tunnel: one `ssh -D 127.0.0.1:1190` on the worker node, listening.
    const tunnel = await run(activities.openTunnel, ref);
    const tunnelAgain = await run(activities.openTunnel, ref);
    expect(tunnel).toMatchObject({ socksPort: SOCKS_PORT, reused: false });
    expect(tunnelAgain).toEqual({ ...tunnel, reused: true });
    expect(tunnelPids()).toEqual([tunnel.process.pid]);
    expect(startTime(tunnel.process.pid)).toBe(tunnel.process.startTime);
    expect(listening(SOCKS_PORT)).toBe(true);

    const outbound = await run(activities.verifyOutbound, ref);
    expect(outbound).toMatchObject({
      target: '127.0.0.4:9618',
      chain: expect.stringMatching(/127\.0\.0\.1:1190.*127\.0\.0\.3:80.*127\.0\.0\.4:9618.*OK/),
    });
    expect(kitProxyLog().slice(kitLogStart)).toMatch(/CONNECT 127\.0\.0\.4:9618/);

    // /cvmfs: each repository mounted once, under this file's dist/cvmfs.
    const mounts = await run(activities.mountCvmfs, ref);
    const mountsAgain = await run(activities.mountCvmfs, ref);
    expect(mounts).toEqual({ mounted: REPOS, alreadyMounted: [], shared: [] });
    expect(mountsAgain).toEqual({ mounted: REPOS, alreadyMounted: [], shared: [] }); // ours from the first run
    expect(ourMounts().sort()).toEqual(REPOS.map((r) => `${DIST}/${r}`).sort());
    // The mounts are FUSE mounts of user glidein (no allow_other): look inside as glidein.
    expect(await site.ssh('worker', ['test', '-x', `${DIST}/cms.cern.ch/glidein/sbin/condor_master`])).toMatchObject({
      code: 0,
    });

    // The container: one instance.
    const container = await run(activities.startContainer, ref);
    const containerAgain = await run(activities.startContainer, ref);
    expect(container).toMatchObject({ instance: instanceName(ref.glideinId), reused: false });
    expect(containerAgain).toEqual({ ...container, reused: true });
    expect(instancePids(ref)).toEqual([container.pid]);

    const preload = await run(activities.preloadProxychains, ref);
    expect(preload.chain).toMatch(/127\.0\.0\.1:1190.*127\.0\.0\.4:9618.*OK/);

    // The pool credential: written twice, the same one file (mode 600).
    const until = Date.now() + 3_600_000;
    const staged = await run(activities.stageCredential, ref, until);
    expect(await run(activities.stageCredential, ref, until)).toEqual(staged);
    const token = path.join(glideinDir(ref), 'config', 'tokens.d', 'pool.idtoken');
    expect(fs.statSync(token).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.dirname(token))).toEqual(['pool.idtoken']);

    // The glidein: one condor_master, in the instance.
    const glidein = await run(activities.startGlidein, ref);
    const glideinAgain = await run(activities.startGlidein, ref);
    expect(glidein.reused).toBe(false);
    expect(glideinAgain).toEqual({ process: glidein.process, reused: true });
    // The recorded pid is the exec's (apptainer's runtime parent, outside the instance's PID namespace): the one
    // condor_master is its child.
    expect(masterPids(ref).map(parentOf)).toEqual([glidein.process.pid]);
    expect(environ(glidein.process.pid)).toContain(
      `_APPTAINER_STANDIN_INSTANCE=${instanceName(ref.glideinId)}:${container.pid}`,
    );

    // Registered once, through the chain.
    const registration = await run(activities.confirmRegistration, ref, 30_000);
    expect(registration).toMatchObject({
      name: expect.stringContaining(ref.glideinId),
      state: 'Unclaimed',
      activity: 'Idle',
    });
    const ads = await collectorAds(`GlideinLaunchId == "${ref.glideinId}"`);
    expect(ads.map((ad) => ad.Name)).toEqual([registration.name]);
    expect(ads[0]).toMatchObject({ GlideinSite: 'local' });

    // Every release twice: the second finds nothing to do.
    expect(await run(activities.stopGlidein, ref, 'stop')).toEqual({
      detail: `glidein pid ${glidein.process.pid} ended (graceful shutdown, SIGTERM)`,
    });
    expect(await run(activities.stopGlidein, ref, 'stop')).toEqual({ detail: 'no glidein running' });
    expect(masterPids(ref)).toEqual([]);
    expect(await collectorAds(`GlideinLaunchId == "${ref.glideinId}"`)).toEqual([]);

    for (let i = 0; i < 2; i++) await run(activities.removeCredential, ref);
    expect(fs.existsSync(token)).toBe(false);

    expect(await run(activities.stopContainer, ref)).toEqual({
      detail: `stopped instance ${instanceName(ref.glideinId)} (pid ${container.pid})`,
    });
    expect(await run(activities.stopContainer, ref)).toEqual({
      detail: `no instance ${instanceName(ref.glideinId)} running`,
    });
    expect(instancePids(ref)).toEqual([]);

    expect(await run(activities.unmountCvmfs, ref)).toEqual({ detail: `unmounted ${[...REPOS].reverse().join(', ')}` });
    expect(await run(activities.unmountCvmfs, ref)).toEqual({ detail: 'nothing of ours mounted' });
    expect(ourMounts()).toEqual([]);

    expect(await run(activities.closeTunnel, ref)).toEqual({ detail: `closed tunnel pid ${tunnel.process.pid}` });
    expect(await run(activities.closeTunnel, ref)).toEqual({ detail: 'no tunnel running' });

    // Nothing of the glidein is left on the site.
    expect(tunnelPids()).toEqual([]);
    expect(listening(SOCKS_PORT)).toBe(false);
    expect(glideinProcesses(ref)).toEqual([]);
    expect(ourMounts()).toEqual([]);
    expect(await collectorAds(`GlideinLaunchId == "${ref.glideinId}"`)).toEqual([]);
    const instances = await site.ssh('worker', [
      SITE_PATHS.apptainer,
      'instance',
      'list',
      '--json',
      instanceName(ref.glideinId),
    ]);
    expect(JSON.parse(instances.stdout)).toEqual({ instances: [] });
  });
});

describe('releasing leaves alone what is not the glidein', () => {
  test('closeTunnel signals neither a process that reuses the recorded pid nor a live non-tunnel process', async () => {
    const ref = refFor('reuse');
    let sleeper: number | undefined;
    try {
      const tag = `${600 + Math.random()}`.slice(0, 10);
      const started = await site.ssh('worker', [
        'sh',
        '-c',
        'mkdir -p "$1" && { sleep "$2" </dev/null >/dev/null 2>&1 & echo $!; }',
        'sh',
        glideinDir(ref),
        tag,
      ]);
      expect(started).toMatchObject({ code: 0 });
      sleeper = Number(started.stdout.trim());
      await waitFor(
        'the sleep to run',
        () => alive(sleeper!) && siteProcesses().some((p) => p.pid === sleeper && p.argv.includes(tag)),
        5_000,
        20,
      );
      const pidFile = path.join(glideinDir(ref), 'tunnel.pid');
      const actual = startTime(sleeper);

      // The recorded tunnel died and its pid went to an unrelated process: the start time differs.
      fs.writeFileSync(pidFile, `${sleeper} ${Number(actual) - 1}\n`);
      expect(await run(activities.closeTunnel, ref)).toEqual({ detail: 'no tunnel running' });
      expect(alive(sleeper)).toBe(true);

      // Even a recorded pid and start time that match are not signalled unless the process is an `ssh -D`.
      fs.writeFileSync(pidFile, `${sleeper} ${actual}\n`);
      expect(await run(activities.closeTunnel, ref)).toEqual({ detail: 'no tunnel running' });
      await new Promise((r) => setTimeout(r, 300));
      expect(alive(sleeper)).toBe(true);
      expect(siteProcesses().find((p) => p.pid === sleeper)?.argv).toEqual(['sleep', tag]);
    } finally {
      if (sleeper && alive(sleeper)) process.kill(sleeper, 'SIGKILL');
      await cleanUp(ref);
    }
    expect(alive(sleeper!)).toBe(false);
  });

  test('a repository mounted before the glidein is reported as such and stays mounted after unmountCvmfs', async () => {
    const ref = refFor('premount');
    const oasis = `${DIST}/oasis.opensciencegrid.org`;
    const cms = `${DIST}/cms.cern.ch`;
    try {
      expect(await site.ssh('worker', [path.join(CVMFSEXEC, 'mountrepo'), 'oasis.opensciencegrid.org'])).toMatchObject({
        code: 0,
      });
      expect(ourMounts()).toEqual([oasis]);

      expect(await run(activities.mountCvmfs, ref)).toEqual({
        mounted: ['cms.cern.ch'],
        alreadyMounted: ['oasis.opensciencegrid.org'],
        shared: [],
      });
      expect(await run(activities.mountCvmfs, ref)).toEqual({
        mounted: ['cms.cern.ch'],
        alreadyMounted: ['oasis.opensciencegrid.org'],
        shared: [],
      });
      expect(ourMounts().sort()).toEqual([cms, oasis]);
      // a lease on each, but only cms is ours to unmount
      expect(await leases(ref)).toEqual(['cms.cern.ch', 'oasis.opensciencegrid.org']);

      expect(await run(activities.unmountCvmfs, ref)).toEqual({ detail: 'unmounted cms.cern.ch' });
      expect(await run(activities.unmountCvmfs, ref)).toEqual({ detail: 'nothing of ours mounted' });
      expect(ourMounts()).toEqual([oasis]);
      expect(await site.ssh('worker', ['ls', oasis])).toMatchObject({ code: 0, stdout: 'mis\n' });
    } finally {
      await cleanUp(ref);
      await site.ssh('worker', [path.join(CVMFSEXEC, 'umountrepo'), 'oasis.opensciencegrid.org']);
    }
    expect(ourMounts()).toEqual([]);
  });
});

describe('glideins sharing one node share its cvmfs mounts', () => {
  test('two glideins mount at once: each repository once, left by the first, unmounted by the last', async () => {
    const a = refFor('share-a');
    const b = refFor('share-b');
    try {
      const [ra, rb] = await Promise.all([run(activities.mountCvmfs, a), run(activities.mountCvmfs, b)]);
      // No race: neither saw "already mounted" or "mountpoint is not empty"; one mounted, the other joined.
      expect(ra.mounted).toEqual(REPOS);
      expect(rb.mounted).toEqual(REPOS);
      expect([...ra.shared!, ...rb.shared!].sort()).toEqual([...REPOS].sort());
      expect(ourMounts().sort()).toEqual(REPOS.map((r) => `${DIST}/${r}`).sort());
      expect(await leases(a)).toEqual([...REPOS].sort());
      expect(await leases(b)).toEqual([...REPOS].sort());

      const first = await run(activities.unmountCvmfs, a);
      expect(first.detail).toBe(
        `left for others: ${[...REPOS]
          .reverse()
          .map((r) => `${r} (1 other glidein)`)
          .join(', ')}`,
      );
      expect(ourMounts().sort()).toEqual(REPOS.map((r) => `${DIST}/${r}`).sort());
      expect(await site.ssh('worker', ['ls', `${DIST}/cms.cern.ch`])).toMatchObject({ code: 0 }); // still usable by b
      expect(await leases(a)).toEqual([]);

      expect(await run(activities.unmountCvmfs, b)).toEqual({ detail: `unmounted ${[...REPOS].reverse().join(', ')}` });
      expect(ourMounts()).toEqual([]);
      expect(await leases(b)).toEqual([]);
    } finally {
      await cleanUp(a);
      await cleanUp(b);
    }
  });

  test('a retry while its crashed attempt is still in mountrepo waits for it and mounts nothing twice', async () => {
    const ref = refFor('midmount');
    const slow = path.join(CVMFSEXEC, 'slow-mountrepo');
    // The crashed attempt: the same script the activity runs, with a mountrepo that takes 2 s (a cold cvmfs cache).
    fs.writeFileSync(slow, `#!/bin/sh\nsleep 2\nexec "${CVMFSEXEC}/mountrepo" "$@"\n`, { mode: 0o755 });
    try {
      const root = leaseRoot({ cvmfs: { cvmfsexecDir: CVMFSEXEC } } as any);
      const crashed = site.ssh('worker', [
        'sh',
        '-c',
        MOUNT_LEASE,
        'sh',
        root,
        'cms.cern.ch',
        ref.glideinId,
        slow,
        `${DIST}/cms.cern.ch`,
      ]);
      await waitFor('the first attempt to hold the lease', async () => (await leases(ref)).includes('cms.cern.ch'));
      const retried = await run(activities.mountCvmfs, ref);
      expect(await crashed).toMatchObject({ code: 0, stdout: 'mounted\n' });
      expect(retried).toEqual({ mounted: REPOS, alreadyMounted: [], shared: [] });
      expect(ourMounts().sort()).toEqual(REPOS.map((r) => `${DIST}/${r}`).sort());
      expect(await run(activities.unmountCvmfs, ref)).toEqual({
        detail: `unmounted ${[...REPOS].reverse().join(', ')}`,
      });
      expect(ourMounts()).toEqual([]);
    } finally {
      fs.rmSync(slow, { force: true });
      await cleanUp(ref);
    }
  });
});
