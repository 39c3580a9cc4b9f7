/** What the local test site holds for one glidein: the facts workflow tests assert on. */
import { instanceName } from '../src/common/naming';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { collectorAds, SITE_PATHS, siteMounts, siteProcesses } from './local-site';
import { localSiteWith } from './sites';

export interface GlideinFootprint {
  tunnels: number[];
  glideins: number[];
  instances: number[];
  mounts: string[];
  ads: string[];
  /** The glidein's work directory is still in <workDir> (a clean teardown moves it to <workDir>/.done/). */
  workDir: boolean;
}

/** Where the glidein's profile puts its tunnel and mounts: the shipped profile's, unless a benchmark gives its own. */
export interface FootprintWhere {
  socksPort?: number;
  /** The mount root of the profile's cvmfsexec (`<cvmfsexecDir>/dist/cvmfs`). */
  cvmfsDist?: string;
}

export async function footprint(glideinId: string, where: FootprintWhere = {}): Promise<GlideinFootprint> {
  const { socksPort = 1080, cvmfsDist = SITE_PATHS.cvmfsDist } = where;
  const tunnelRe = new RegExp(` -[DR] 127\\.0\\.0\\.1:${socksPort} `);
  const procs = siteProcesses();
  const ads = await collectorAds(`GlideinLaunchId == "${glideinId}"`);
  return {
    // The profile's SOCKS port; other tests of the site use other ports.
    tunnels: procs.filter((p) => p.argv[0] === 'ssh' && tunnelRe.test(p.cmdline)).map((p) => p.pid),
    // This glidein's condor_master, known by the name its configuration gives it (other tests run other glideins).
    glideins: procs
      .filter(
        (p) => p.cmdline.includes('condor_master') && environ(p.pid).includes(`_CONDOR_GLIDEIN_NAME=${glideinId}`),
      )
      .map((p) => p.pid),
    instances: procs.filter((p) => p.cmdline.includes(`[${instanceName(glideinId)}]`)).map((p) => p.pid),
    mounts: siteMounts()
      .map((m) => m.target)
      .filter((t) => t.startsWith(`${cvmfsDist}/`)),
    ads: ads.map((ad) => String(ad.Name)),
    workDir: existsSync(`${SITE_PATHS.workDir}/${glideinId}`),
  };
}

export const EMPTY: GlideinFootprint = {
  tunnels: [],
  glideins: [],
  instances: [],
  mounts: [],
  ads: [],
  workDir: false,
};

function environ(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** Never two of anything for one glidein (at any moment of a crash or an outage). */
export function expectAtMostOne(f: GlideinFootprint): void {
  expect(f.tunnels.length).toBeLessThanOrEqual(1);
  expect(f.glideins.length).toBeLessThanOrEqual(1);
  expect(f.instances.length).toBeLessThanOrEqual(1);
  expect(new Set(f.mounts).size).toBe(f.mounts.length);
  expect(f.ads.length).toBeLessThanOrEqual(1);
}

/** The SOCKS ports of the local fleet profile (localFleetSite). */
const FLEET_PORTS = /^128\d$/;

/** The local site with a fleet of up to 3, quick to reconcile, and ten SOCKS ports to lease (1280-1289). */
export function localFleetSite(): string {
  return localSiteWith((p) => {
    p.fleet = {
      maxGlideins: 3,
      maxStarting: 3,
      startsPerMinute: 30,
      maxFailedStarts: 3,
      failureWindow: '10m',
      probeAfter: '5s',
      maxProbeDelay: '20s',
      reconcileEvery: '1s',
    };
    delete p.tunnel.socksPort;
    p.tunnel.socksPorts = '1280-1289';
  });
}

/** SOCKS tunnels on the fleet profile's ports. */
export function fleetTunnels(): number[] {
  return siteProcesses()
    .map((p) => / -[DR] 127\.0\.0\.1:(\d+) /.exec(p.cmdline)?.[1])
    .filter((p): p is string => !!p && FLEET_PORTS.test(p))
    .map(Number);
}

/** Port leases on the fleet profile's ports, on the (one) worker node. */
export function fleetPortLeases(): string[] {
  const dir = path.join(SITE_PATHS.workDir, '.ports', os.hostname());
  return existsSync(dir) ? readdirSync(dir).filter((f) => FLEET_PORTS.test(f)) : [];
}
