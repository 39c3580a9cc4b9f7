import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse, stringify } from 'yaml';
import { glideinIdFor, parseGlideinRequest } from '../../src/common/request';
import { parseDuration } from '../../src/common/duration';
import { parseSiteProfile, SiteRegistry } from '../../src/site/load';
import { fleetName, fleetRequestSchema, fleetSlotOf } from '../../src/common/fleet-request';
import { hostname, siteName } from '../../src/common/validation';

const sitesDir = path.join(__dirname, '..', '..', 'sites');
const localYaml = readFileSync(path.join(sitesDir, 'local.yaml'), 'utf8');

function withChange(mutate: (profile: Record<string, any>) => void): string {
  const profile = parse(localYaml);
  mutate(profile);
  return stringify(profile);
}

describe('site profiles', () => {
  it('accepts the shipped profiles', async () => {
    const sites = new SiteRegistry(sitesDir);
    await expect(sites.get('local')).resolves.toMatchObject({ name: 'local', tunnel: { socksPort: 1080 } });
    await expect(sites.get('jsc-example')).resolves.toMatchObject({ name: 'jsc-example', login: { port: 22 } });
  });

  it.each([
    [
      'a hostname that is an ssh option',
      (p: any) => (p.login.host = '-oProxyCommand=touch /tmp/pwned'),
      'login.host: expected a hostname',
    ],
    ['a port out of range', (p: any) => (p.tunnel.socksPort = 70000), 'tunnel.socksPort: expected a port 1-65535'],
    ['a port of the wrong type', (p: any) => (p.kitProxy.port = '80'), 'kitProxy.port:'],
    [
      'a SOCKS port range backwards',
      (p: any) => {
        delete p.tunnel.socksPort;
        p.tunnel.socksPorts = '1090-1080';
      },
      'tunnel.socksPorts: expected first-last',
    ],
    [
      'both a SOCKS port and a range',
      (p: any) => (p.tunnel.socksPorts = '1080-1089'),
      'tunnel.socksPort: expected either socksPort or socksPorts',
    ],
    [
      'more glideins on a fixed node than SOCKS ports',
      (p: any) => (p.fleet = { maxGlideins: 3 }),
      'fleet.maxGlideins: expected at most as many glideins as SOCKS ports',
    ],
    ['a fleet knob that is not one', (p: any) => (p.fleet = { restartLoop: true }), 'fleet: Unrecognized key'],
    [
      'a relative key path',
      (p: any) => (p.login.identityFile = 'keys/id'),
      'login.identityFile: expected an absolute path',
    ],
    ['path traversal', (p: any) => (p.workDir = '/tmp/../etc'), 'workDir: expected a path without ".." segments'],
    [
      'shell metacharacters in a path',
      (p: any) => (p.container.image = '/tmp/x;rm -rf ~'),
      'container.image: expected an absolute path',
    ],
    [
      'a bad repository name',
      (p: any) => (p.cvmfs.repositories = ['cms.cern.ch', '../etc']),
      'cvmfs.repositories[1]: expected a CernVM-FS repository name',
    ],
    [
      'no repositories',
      (p: any) => (p.cvmfs.repositories = []),
      'cvmfs.repositories: expected at least one repository',
    ],
    [
      'a control character in the start command',
      (p: any) => (p.glidein.startCommand = ['/bin/x\n/bin/evil']),
      'glidein.startCommand[0]: expected printable characters',
    ],
    ['a bad duration', (p: any) => (p.glidein.lifetime = '2 hours'), 'glidein.lifetime: expected a duration'],
    ['an unknown field', (p: any) => (p.tunnel.sockPort = 1), 'tunnel: Unrecognized key'],
    ['an HTCondor knob with a space', (p: any) => (p.glidein.config = { 'A B': '1' }), 'glidein.config'],
    [
      'a bind of the work directory into the container',
      (p: any) => (p.container.binds = ['/data:/data', `${p.workDir}:/w`]),
      'container.binds[1]: expected no bind of the work directory',
    ],
    [
      'a bind of a directory above the work directory',
      (p: any) => (p.container.binds = [`${path.dirname(p.workDir)}/`]),
      'container.binds[0]: expected no bind of the work directory',
    ],
    [
      "a bind of one glidein's directory",
      (p: any) => (p.container.binds = [`${p.workDir}/glidein-a/config:/etc/x:ro`]),
      'container.binds[0]: expected no bind of the work directory',
    ],
    ['a bind of /', (p: any) => (p.container.binds = ['/:/host']), 'container.binds[0]: expected no bind'],
  ])('refuses %s, naming the field', (_what, mutate, message) => {
    expect(() => parseSiteProfile(withChange(mutate), 'test.yaml')).toThrow(message);
  });

  it('accepts a bind beside the work directory that only shares a prefix with it', () => {
    const profile = parseSiteProfile(
      withChange((p) => (p.container.binds = [`${p.workDir}-data:/data`, '/p/scratch/cms:/scratch'])),
      'test.yaml',
    );
    expect(profile.container.binds).toHaveLength(2);
  });

  it('names the file and says what is wrong with YAML syntax', () => {
    expect(() => parseSiteProfile('name: [unclosed', 'sites/broken.yaml')).toThrow(
      /sites\/broken\.yaml: not valid YAML/,
    );
  });

  it('refuses a site name that could leave the sites directory', async () => {
    await expect(new SiteRegistry(sitesDir).get('../etc/passwd')).rejects.toThrow('site: expected a site name');
    await expect(new SiteRegistry(sitesDir).get('nosuchsite')).rejects.toThrow('site: no profile named "nosuchsite"');
  });

  it("names the profiles it has for an unknown site, and none of the worker's paths", async () => {
    const err: Error = await new SiteRegistry(sitesDir).get('nosuchsite').catch((e) => e);
    expect(err.message).toContain('"local"');
    expect(err.message).toContain('"jsc-example"');
    expect(err.message).not.toContain(sitesDir);
    expect(err.message).not.toContain('/');
  });

  it('refuses a sites directory that is missing or empty at start-up, naming SITES_DIR', async () => {
    await expect(new SiteRegistry('/nonexistent/sites').check()).rejects.toThrow(
      /^SITES_DIR: the sites directory \/nonexistent\/sites cannot be read \(ENOENT\)/,
    );
    await expect(new SiteRegistry(path.join(__dirname, '..', 'support', 'corpus')).check()).rejects.toThrow(
      'holds no <site>.yaml profile',
    );
    await expect(new SiteRegistry(sitesDir).check()).resolves.toEqual(expect.arrayContaining(['local', 'jsc-example']));
  });
});

describe('LaunchGlidein input', () => {
  it('accepts the small request operators write', () => {
    expect(parseGlideinRequest({ site: 'local', lifetime: '2h' })).toEqual({ site: 'local', lifetime: '2h' });
  });

  it.each([
    [{}, 'site: Invalid input'],
    [{ site: 'Local Site' }, 'site: expected a site name'],
    [{ site: 'local', lifetime: 'forever' }, 'lifetime: expected a duration'],
    [{ site: 'local', lifetime: '1s' }, 'lifetime: expected at least 10000 ms'],
    [
      { site: 'local', privateKey: '-----BEGIN OPENSSH PRIVATE KEY-----' },
      '(top level): Unrecognized key: "privateKey"',
    ],
    [{ site: 7 }, 'site: Invalid input: expected string'],
  ])('refuses %j with an error naming the field', (input, message) => {
    expect(() => parseGlideinRequest(input)).toThrow(message);
  });

  it('derives a safe, distinct glidein id from any workflow id', () => {
    expect(glideinIdFor('glidein-local-1')).toBe('glidein-local-1');
    const a = glideinIdFor('Glidein Local/1');
    const b = glideinIdFor('glidein local/1');
    expect(a).toMatch(/^[a-z0-9][a-z0-9-]{0,62}$/);
    expect(a).not.toBe(b);
    expect(glideinIdFor('$(rm -rf /)')).toMatch(/^[a-z0-9][a-z0-9-]{0,62}$/);
  });

  it('parses durations', () => {
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(() => parseDuration('1.5h')).toThrow('not a duration');
  });
});

describe('names that reach the site', () => {
  it.each([
    'jwlogin05.fz-juelich.de',
    'jwlogin05',
    'localhost',
    '127.0.0.4',
    '10.0.0.255',
    '255.255.255.255',
    'node-1.a1',
  ])('hostname accepts %s', (host) => expect(hostname.safeParse(host).success).toBe(true));

  it.each([
    ['999.999.999.999', 'octets above 255'],
    ['256.1.1.1', 'an octet above 255'],
    ['10.0.0.01', 'a leading zero: octal to inet_aton'],
    ['10.1', "inet_aton's short form"],
    ['2130706433', 'a bare number: an address to inet_aton'],
    ['0x7f000001', 'a hex address'],
    ['host.0x7f', 'a hex last label'],
    ['-oProxyCommand=x', 'an ssh option'],
    ['a-.example.org', 'a label ending in a hyphen'],
    ['a..b', 'an empty label'],
  ])('hostname refuses %s (%s)', (host) => {
    const parsed = hostname.safeParse(host);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0].message).toMatch(/^expected a hostname/);
  });

  it.each(['jsc', 'jsc-juwels', 'a1-b2-c3', 'x'.repeat(40)])('fleetName accepts %s', (name) =>
    expect(fleetName.safeParse(name).success).toBe(true),
  );

  it.each(['jsc-', '-jsc', 'a--b', 'JSC', 'x'.repeat(41), ''])('fleetName refuses %j', (name) =>
    expect(fleetName.safeParse(name).success).toBe(false),
  );

  it('refuses a fleet request whose fleet name ends in a hyphen, naming the field', () => {
    const parsed = fleetRequestSchema.safeParse({ site: 'jsc', count: 1, fleet: 'jsc-' });
    expect(parsed.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'fleet: expected 1-40 lowercase letters, digits and single inner hyphens (not at either end)',
    ]);
  });

  it.each(['local', 'jsc-box-strict', 'a'.repeat(63)])('siteName accepts %s', (name) =>
    expect(siteName.safeParse(name).success).toBe(true),
  );

  it.each(['local-', '-local', 'a'.repeat(64), 'Local'])('siteName refuses %j', (name) =>
    expect(siteName.safeParse(name).success).toBe(false),
  );

  it("names a fleet's slot ids, and only those", () => {
    expect(fleetSlotOf('glidein-jsc-3')).toEqual({ fleet: 'jsc', slot: 3 });
    expect(fleetSlotOf('glidein-jsc-juwels-12')).toEqual({ fleet: 'jsc-juwels', slot: 12 });
    for (const id of ['glidein-jsc', 'glidein-jsc-3a', 'glidein--3', 'fleet-jsc-3', 'glidein-JSC-3', 'glidein-jsc--3'])
      expect(fleetSlotOf(id)).toBeUndefined();
  });
});
