/** What the local test site holds for one glidein: the facts workflow tests assert on. */
import { instanceName } from '../../src/common/naming';
import { existsSync, readFileSync } from 'node:fs';
import { collectorAds, SITE_PATHS, siteMounts, siteProcesses } from '../../sandbox/local-site';

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
