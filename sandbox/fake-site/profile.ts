/**
 * Site profiles for the fake site: sites/local.yaml with its paths moved to a tree that exists only in the fake
 * (/srv/fake-site, never the local test site's /tmp/glidein-local-site) and every duration as short as the schema
 * allows, written to a temporary SITES_DIR; and the fake site that matches a profile.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parse, stringify } from 'yaml';
import { parseSiteProfile } from '../../src/site/load';
import { FakeSite } from './site';

const ROOT = path.resolve(__dirname, '..', '..');
const LOCAL_SITE_DIR = '/tmp/glidein-local-site';
/** The fake site's tree: names only, nothing is created on disk. */
export const FAKE_SITE_DIR = '/srv/fake-site';

/** The profile every fake-site test starts from, as plain data to change. */
export function fakeProfile(name = 'fake'): Record<string, any> {
  const text = readFileSync(path.join(ROOT, 'sites', 'local.yaml'), 'utf8').replaceAll(LOCAL_SITE_DIR, FAKE_SITE_DIR);
  const profile = parse(text);
  profile.name = name;
  profile.description = 'The in-memory fake site (sandbox/fake-site)';
  profile.glidein.lifetime = '10m';
  profile.glidein.registrationTimeout = '5s';
  profile.glidein.drainGrace = '2s';
  profile.glidein.stopGrace = '1s';
  profile.monitor = { interval: '1s', reportEvery: '2s', historyEvents: 5000 };
  // The fake site has no pool to admit a glidein: its collector takes any ad (credentials are the real sites').
  delete profile.credentials;
  // Nor a Frontier squid or a stratum-1 behind its chain: its outbound check is the collector's, its mounts local.
  delete profile.outboundChecks;
  delete profile.cvmfs.httpProxy;
  return profile;
}

/** A Slurm site: the holder job hands out the worker node. */
export function fakeSlurmProfile(name = 'fake-slurm'): Record<string, any> {
  const profile = fakeProfile(name);
  profile.workerNode = { via: 'slurm', partition: 'batch', timeLimit: '1h', queueTimeout: '20s' };
  return profile;
}

/**
 * A temporary SITES_DIR holding the given profiles, each validated by the worker's own loader (a test never runs
 * against a profile the worker would refuse). The loader does not look for the key files a profile names.
 */
export function fakeSitesDir(...profiles: Array<Record<string, any>>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'glidein-fake-sites-'));
  for (const profile of profiles) writeFakeProfile(dir, profile);
  return dir;
}

/** Writes `<name>.yaml` into a sites directory, validated by the worker's own loader first. */
export function writeFakeProfile(dir: string, profile: Record<string, any>): void {
  const text = stringify(profile);
  parseSiteProfile(text, `${profile.name}.yaml`);
  writeFileSync(path.join(dir, `${profile.name}.yaml`), text);
}

/** The fake site a profile describes: its image, library, cvmfsexec and repositories exist; the chain leads out. */
export function fakeSiteFor(raw: Record<string, any>): FakeSite {
  const profile = parseSiteProfile(stringify(raw), `${raw.name}.yaml`);
  const library = '/usr/lib/x86_64-linux-gnu/libproxychains.so.4';
  const collector = `${profile.collector.host}:${profile.collector.port}`;
  const check = profile.outboundCheck ? [`${profile.outboundCheck.host}:${profile.outboundCheck.port}`] : [];
  const fakeImage = `${FAKE_SITE_DIR}/site/images/cms-el9.sif`;
  return new FakeSite({
    kit: '127.0.0.3:80',
    dns: { 'kit-proxy.example.org': '127.0.0.3' },
    collector,
    reachable: [collector, ...check],
    workerFiles: [
      fakeImage,
      library,
      '/usr/lib/x86_64-linux-gnu/libc.so.6',
      `${profile.cvmfs.cvmfsexecDir}/mountrepo`,
      `${profile.cvmfs.cvmfsexecDir}/umountrepo`,
    ],
    workerDirs: [`${profile.cvmfs.cvmfsexecDir}/dist/cvmfs`, profile.workDir],
    proxychainsLibraries: [library],
    repositories: {
      'cms.cern.ch': ['glidein/sbin/condor_master', 'glidein/bin/condor_status'],
      'oasis.opensciencegrid.org': [],
    },
  });
}
