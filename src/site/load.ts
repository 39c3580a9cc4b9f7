/** Loads and validates site profiles (sites/<name>.yaml) in the worker. */
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { parse } from 'yaml';
import { formatIssues, siteName } from '../common/validation';
import { siteProfileSchema, type SiteProfile } from './profile';

export class SiteProfileError extends Error {
  override name = 'SiteProfileError';
}

export function parseSiteProfile(text: string, source: string): SiteProfile {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new SiteProfileError(`site profile ${source}: not valid YAML: ${(err as Error).message}`);
  }
  const result = siteProfileSchema.safeParse(raw);
  if (!result.success) {
    throw new SiteProfileError(`site profile ${source} is invalid:\n${formatIssues(result.error)}`);
  }
  return result.data;
}

/** Site profiles by name from one directory, read once and cached. */
export class SiteRegistry {
  private readonly cache = new Map<string, Promise<SiteProfile>>();

  constructor(private readonly dir: string) {}

  get(name: string): Promise<SiteProfile> {
    const checked = siteName.safeParse(name);
    if (!checked.success) return Promise.reject(new SiteProfileError(`site: ${checked.error.issues[0].message}, got ${JSON.stringify(name)}`));
    let profile = this.cache.get(name);
    if (!profile) {
      profile = this.load(name);
      this.cache.set(name, profile);
      profile.catch(() => this.cache.delete(name));
    }
    return profile;
  }

  private async load(name: string): Promise<SiteProfile> {
    const file = path.join(this.dir, `${name}.yaml`);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      throw new SiteProfileError(`site: no profile named "${name}" (looked for ${file})`);
    }
    const profile = parseSiteProfile(text, file);
    if (profile.name !== name) throw new SiteProfileError(`site profile ${file}: name: expected "${name}" (the file's name), got "${profile.name}"`);
    return profile;
  }
}
