/** Loads and validates site profiles (sites/<name>.yaml) in the worker. */
import { readdir, readFile } from 'node:fs/promises';
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
  private readonly loaded = new Set<string>();

  constructor(private readonly dir: string) {}

  /** A profile by this name has been loaded and is valid: a site this worker knows (so a bounded metric label). */
  knows(name: string): boolean {
    return this.loaded.has(name);
  }

  get(name: string): Promise<SiteProfile> {
    const checked = siteName.safeParse(name);
    if (!checked.success)
      return Promise.reject(
        new SiteProfileError(`site: ${checked.error.issues[0].message}, got ${JSON.stringify(name)}`),
      );
    let profile = this.cache.get(name);
    if (!profile) {
      profile = this.load(name);
      this.cache.set(name, profile);
      profile.then(
        () => this.loaded.add(name),
        () => this.cache.delete(name),
      );
    }
    return profile;
  }

  /**
   * The names of the profiles this registry can load; refuses a directory that cannot be read, so that a worker
   * started with a wrong SITES_DIR says so at once instead of failing every launch.
   */
  async check(): Promise<string[]> {
    let names: string[];
    try {
      names = await this.names();
    } catch (err) {
      throw new SiteProfileError(
        `SITES_DIR: the sites directory ${this.dir} cannot be read ` +
          `(${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      );
    }
    if (names.length === 0)
      throw new SiteProfileError(`SITES_DIR: the sites directory ${this.dir} holds no <site>.yaml profile`);
    return names;
  }

  private async names(): Promise<string[]> {
    return (await readdir(this.dir))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.slice(0, -'.yaml'.length))
      .filter((n) => siteName.safeParse(n).success)
      .sort();
  }

  private async load(name: string): Promise<SiteProfile> {
    const file = path.join(this.dir, `${name}.yaml`);
    // Messages name the profile, not the worker's paths: they reach workflow histories and whoever reads them.
    const shown = `${name}.yaml`;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      const known = await this.names().catch(() => []);
      throw new SiteProfileError(
        `site: no profile named "${name}" on this worker (it has ` +
          `${known.length ? known.map((n) => `"${n}"`).join(', ') : 'none'})`,
      );
    }
    const profile = parseSiteProfile(text, shown);
    if (profile.name !== name)
      throw new SiteProfileError(
        `site profile ${shown}: name: expected "${name}" (the file's name), got "${profile.name}"`,
      );
    return profile;
  }
}
