/** Site profiles for tests: the shipped local profile, or a copy with some fields changed to inject a fault. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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
