/** What the local test site holds for one glidein: the facts workflow tests assert on. */
import { instanceName } from '../../src/common/naming';
import { collectorAds, SITE_PATHS, siteMounts, siteProcesses } from '../site/local-site';

export interface GlideinFootprint {
  tunnels: number[];
  glideins: number[];
  instances: number[];
  mounts: string[];
  ads: string[];
}

export async function footprint(glideinId: string): Promise<GlideinFootprint> {
  const procs = siteProcesses();
  const ads = await collectorAds(`GlideinLaunchId == "${glideinId}"`);
  return {
    // The profile's SOCKS port; other tests of the site use other ports.
    tunnels: procs.filter((p) => p.argv[0] === 'ssh' && p.cmdline.includes(' -D 127.0.0.1:1080 ')).map((p) => p.pid),
    glideins: procs.filter((p) => p.cmdline.includes('condor_master')).map((p) => p.pid),
    instances: procs.filter((p) => p.cmdline.includes(`[${instanceName(glideinId)}]`)).map((p) => p.pid),
    mounts: siteMounts()
      .map((m) => m.target)
      .filter((t) => t.startsWith(`${SITE_PATHS.cvmfsDist}/`)),
    ads: ads.map((ad) => String(ad.Name)),
  };
}

export const EMPTY: GlideinFootprint = { tunnels: [], glideins: [], instances: [], mounts: [], ads: [] };
