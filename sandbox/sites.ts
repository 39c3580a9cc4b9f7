/** Site profiles for tests: the shipped local profile, or a copy with some fields changed to inject a fault. */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parse, stringify } from 'yaml';
import { ROOT } from './temporal';

export const SITES_DIR = path.join(ROOT, 'sites');

/** A sites directory holding `local.yaml` with `change` applied. */
export function localSiteWith(change: (profile: Record<string, any>) => void): string {
  const profile = parse(readFileSync(path.join(SITES_DIR, 'local.yaml'), 'utf8'));
  change(profile);
  const dir = mkdtempSync(path.join(tmpdir(), 'glidein-sites-'));
  writeFileSync(path.join(dir, 'local.yaml'), stringify(profile));
  return dir;
}

/**
 * A sites directory holding every shipped profile, and beside them `name`: a copy of profile `from` renamed, with
 * `change` applied (the shipped ones stay as they are for the other tests of a worker that reads this directory).
 */
export function sitesDirWithVariant(
  from: string,
  name: string,
  change: (profile: Record<string, any>) => void,
): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'glidein-sites-'));
  for (const file of readdirSync(SITES_DIR).filter((f) => f.endsWith('.yaml')))
    writeFileSync(path.join(dir, file), readFileSync(path.join(SITES_DIR, file)));
  const profile = parse(readFileSync(path.join(SITES_DIR, `${from}.yaml`), 'utf8'));
  profile.name = name;
  change(profile);
  writeFileSync(path.join(dir, `${name}.yaml`), stringify(profile));
  return dir;
}
