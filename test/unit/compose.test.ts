/**
 * docker-compose.yml's structure, read as compose reads it (YAML merge keys resolved), without a Docker engine:
 * the services of both profiles, volumes declared and used, ports published on 127.0.0.1 only, the worker's
 * environment only names the worker reads, one Temporal server version, operator files mounted read-only, and the
 * deploy/ example consistent with the mounts.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { SEARCH_ATTRIBUTES } from '../../src/common/search-attributes';
import { parseSiteProfile } from '../../src/site/load';
import { envNamesRead, execForm, readDockerfile, REPO } from '../helpers/deployment';
import { nodeEnv, serverArgv } from '../../sandbox/cluster';

/** The server version the team tests (scripts/ensure-temporal's CLI v1.5.1 runs server 1.29.1). */
const SERVER_VERSION = '1.29.1';

type Mount = string | { type?: string; source?: string; target?: string; read_only?: boolean };
interface Service {
  image?: string;
  build?: unknown;
  profiles?: string[];
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, string> | string[];
  ports?: (string | { host_ip?: string; published?: string | number; target?: number })[];
  volumes?: Mount[];
  depends_on?: string[] | Record<string, { condition?: string; required?: boolean }>;
  user?: string;
  networks?: string[] | Record<string, unknown>;
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, { internal?: boolean } | null>;
}

const compose = parse(readFileSync(path.join(REPO, 'docker-compose.yml'), 'utf8'), { merge: true }) as Compose;
const services = compose.services;

function env(service: Service): Record<string, string> {
  const e = service.environment ?? {};
  if (Array.isArray(e)) return Object.fromEntries(e.map((kv) => [kv.split('=')[0], kv.split('=').slice(1).join('=')]));
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, String(v)]));
}

/** `${NAME:-default}` as compose resolves it when NAME is unset. */
function withDefaults(value: string): string {
  return value.replace(/\$\{[A-Z_][A-Z0-9_]*(?::?-([^}]*))?\}/g, (_, fallback: string | undefined) => fallback ?? '');
}

function mounts(service: Service): { type: string; source: string; target: string; readOnly: boolean }[] {
  return (service.volumes ?? []).map((m) => {
    if (typeof m === 'string') {
      const [source, target, mode] = m.split(':');
      const type = source.startsWith('.') || source.startsWith('/') ? 'bind' : 'volume';
      return { type, source, target, readOnly: (mode ?? '').split(',').includes('ro') };
    }
    return { type: m.type ?? 'volume', source: m.source ?? '', target: m.target ?? '', readOnly: m.read_only === true };
  });
}

function dependsOn(service: Service): string[] {
  const d = service.depends_on ?? [];
  return Array.isArray(d) ? d : Object.keys(d);
}

function imageTag(image: string): { repo: string; tag: string } {
  const at = image.lastIndexOf(':');
  return { repo: image.slice(0, at), tag: image.slice(at + 1) };
}

const PROFILES = { postgres: 'postgres', dev: 'dev' } as const;
const inProfile = (profile: string) => Object.keys(services).filter((n) => services[n].profiles?.includes(profile));

describe('docker-compose.yml', () => {
  it('has the deployable server (postgres profile) and the dev server (dev profile), each with the worker', () => {
    expect(inProfile(PROFILES.postgres).sort()).toEqual(
      ['postgresql', 'temporal-schema', 'temporal', 'temporal-2', 'temporal-setup', 'temporal-ui', 'worker'].sort(),
    );
    expect(inProfile(PROFILES.dev).sort()).toEqual(['temporal-dev', 'worker-dev']);
    // Every service is in exactly one profile: `--profile dev` never starts PostgreSQL, nor the other way round.
    for (const [name, service] of Object.entries(services)) expect([name, service.profiles?.length]).toEqual([name, 1]);
    // And each depends only on services of its own profile (compose refuses a dependency its profile disables).
    for (const [name, service] of Object.entries(services))
      for (const dep of dependsOn(service))
        expect([name, dep, services[dep]?.profiles]).toEqual([name, dep, service.profiles]);
  });

  it('runs Temporal the way its own compose examples do: PostgreSQL with a volume, a schema job, then the server', () => {
    const pg = services.postgresql;
    expect(pg.image).toBe('postgres:16');
    expect(mounts(pg)).toContainEqual(expect.objectContaining({ type: 'volume', target: '/var/lib/postgresql/data' }));
    expect(pg.ports).toBeUndefined(); // nobody outside the compose network reaches the database
    expect(services['temporal-schema'].depends_on).toEqual({ postgresql: { condition: 'service_healthy' } });
    expect(services['temporal-schema'].command).toEqual(['/scripts/setup-postgres.sh']);
    expect(services.temporal.depends_on).toEqual({
      'temporal-schema': { condition: 'service_completed_successfully' },
    });
    expect(env(services.temporal)).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'postgresql' });
    expect(services['temporal-setup'].depends_on).toEqual({ temporal: { condition: 'service_healthy' } });
    expect(services.worker.depends_on).toEqual({
      'temporal-setup': { condition: 'service_completed_successfully' },
    });
    for (const script of ['setup-postgres.sh', 'setup-temporal.sh'])
      expect(existsSync(path.join(REPO, 'scripts', 'compose', script))).toBe(true);
  });

  it('creates exactly the search attributes the workflows set, as Keyword, in both variants', () => {
    const names = Object.keys(SEARCH_ATTRIBUTES);
    expect(Object.values(SEARCH_ATTRIBUTES).every((t) => t === 'Keyword')).toBe(true);
    expect(env(services['temporal-setup']).SEARCH_ATTRIBUTES.split(/\s+/).sort()).toEqual([...names].sort());
    expect(readFileSync(path.join(REPO, 'scripts', 'compose', 'setup-temporal.sh'), 'utf8')).toContain(
      'search-attribute create --namespace "$NAMESPACE" --name "$name" --type Keyword',
    );
    const devCommand = services['temporal-dev'].command as string[];
    expect(devCommand.slice(0, 2)).toEqual(['server', 'start-dev']);
    expect(devCommand.filter((a) => a.startsWith('--search-attribute=')).sort()).toEqual(
      names.map((n) => `--search-attribute=${n}=Keyword`).sort(),
    );
  });

  it('keeps the dev server database in a named volume (--db-filename inside it)', () => {
    const dev = services['temporal-dev'];
    const dbFile = (dev.command as string[]).find((a) => a.startsWith('--db-filename='))!.split('=')[1];
    const volume = mounts(dev).find((m) => m.type === 'volume' && dbFile.startsWith(`${m.target}/`));
    expect(volume).toBeDefined();
    expect(Object.keys(compose.volumes ?? {})).toContain(volume!.source);
  });

  it('declares every named volume it uses, and uses every one it declares', () => {
    const used = new Set(
      Object.values(services).flatMap((s) =>
        mounts(s)
          .filter((m) => m.type === 'volume')
          .map((m) => m.source),
      ),
    );
    expect([...used].sort()).toEqual(Object.keys(compose.volumes ?? {}).sort());
  });

  it('publishes every port on 127.0.0.1 only, and no two services of one profile on the same host port', () => {
    const published: string[] = [];
    for (const [name, service] of Object.entries(services)) {
      for (const port of service.ports ?? []) {
        const [hostIp, hostPort] = typeof port === 'string' ? port.split(':') : [port.host_ip, String(port.published)];
        expect([name, hostIp]).toEqual([name, '127.0.0.1']);
        published.push(`${service.profiles![0]}:${hostPort}`);
      }
    }
    expect(new Set(published).size).toBe(published.length);
    expect(published).toEqual(
      expect.arrayContaining(['postgres:7233', 'postgres:8080', 'postgres:9464', 'dev:7233', 'dev:8233', 'dev:9464']),
    );
  });

  it("gives the worker only environment variables the worker's code reads", () => {
    const { names, files } = envNamesRead();
    expect(files).toContain('src/worker.ts');
    // The scan finds what configFromEnv and its helpers read.
    for (const known of ['TEMPORAL_ADDRESS', 'TASK_QUEUE', 'SITES_DIR', 'MAX_CONCURRENT_ACTIVITIES', 'LOG_LEVEL'])
      expect(names).toContain(known);
    for (const name of ['worker', 'worker-dev']) {
      const unknown = Object.keys(env(services[name])).filter((k) => !names.has(k));
      expect([name, unknown]).toEqual([name, []]);
    }
  });

  it('configures the worker consistently: the server, the sites mount, metrics inside the container', () => {
    for (const name of ['worker', 'worker-dev']) {
      const e = env(services[name]);
      expect(e.TEMPORAL_ADDRESS).toBe('temporal:7233');
      expect(e.METRICS_ADDRESS).toBe('0.0.0.0:9464');
      expect(withDefaults(e.MAX_CONCURRENT_ACTIVITIES)).toMatch(/^[1-9][0-9]*$/);
      expect(withDefaults(e.WORKFLOW_CACHE_SIZE)).toMatch(/^[1-9][0-9]*$/);
      expect(mounts(services[name]).map((m) => m.target)).toContain(e.SITES_DIR);
      expect(services[name].build).toBe('.');
    }
    // The dev server answers as `temporal` on the compose network, so the worker's address is the same in both.
    expect(services['temporal-dev'].networks).toEqual({ default: { aliases: ['temporal'] } });
    // The namespace the setup job creates is the worker's.
    expect(env(services['temporal-setup']).NAMESPACE).toBe(env(services.worker).TEMPORAL_NAMESPACE);
  });

  it('runs one Temporal server version, the one the team tests (1.29.1), and the dev server built the same', () => {
    const images = Object.values(services).map((s) => s.image ?? '');
    const tags = (repo: string) => images.filter((i) => i.startsWith(`${repo}:`)).map((i) => imageTag(i).tag);
    // Both nodes; the suites' cluster runs the same version (scripts/ensure-temporal-server builds it).
    expect(tags('temporalio/server')).toEqual([SERVER_VERSION, SERVER_VERSION]);
    expect(readFileSync(path.join(REPO, 'scripts', 'ensure-temporal-server'), 'utf8')).toContain(
      `TEMPORAL_SERVER_VERSION:-v${SERVER_VERSION}`,
    );
    const adminTools = tags('temporalio/admin-tools');
    expect(adminTools.length).toBe(2);
    for (const tag of adminTools) expect(tag.startsWith(`${SERVER_VERSION}-`)).toBe(true);
    // temporalio/temporal is the CLI; the one scripts/ensure-temporal builds for the tests runs server 1.29.1.
    const cli = /TEMPORAL_CLI_VERSION:-v([0-9.]+)/.exec(
      readFileSync(path.join(REPO, 'scripts', 'ensure-temporal'), 'utf8'),
    )![1];
    expect(tags('temporalio/temporal')).toEqual([cli]);
    expect(tags('temporalio/ui')).toHaveLength(1);
    expect(images.filter((i) => i.endsWith(':latest') || (i !== '' && !i.includes(':')))).toEqual([]);
  });

  it('mounts every file from the host read-only (keys, credentials, known_hosts, profiles, scripts)', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const m of mounts(service).filter((m) => m.type === 'bind'))
        expect([name, m.source, m.readOnly]).toEqual([name, m.source, true]);
    }
    const workerSources = mounts(services.worker).map((m) => m.source);
    expect(workerSources).toEqual(
      expect.arrayContaining(['./deploy/sites', './deploy/known_hosts', './deploy/keys', './deploy/credentials']),
    );
    // Nothing the worker reads from deploy/ is writable, and no secret lives in an image or a named volume.
    expect(mounts(services.worker).filter((m) => m.type !== 'bind')).toEqual([]);
  });

  it('keeps PostgreSQL on an internal network', () => {
    expect(compose.networks?.backend).toEqual({ internal: true });
    expect(services.postgresql.networks).toEqual(['backend']);
  });

  it("runs the worker as the Dockerfile's unprivileged user (uid 1000) by default", () => {
    expect(withDefaults(services.worker.user!)).toBe('1000:1000');
    const final = readDockerfile().at(-1)!;
    expect(final.instructions.filter((i) => i.op === 'USER').map((i) => i.args)).toEqual(['node']);
    expect(execForm(final.instructions.find((i) => i.op === 'CMD')!.args)).toEqual(['node', 'lib/worker.js']);
  });
});

describe('deploy/', () => {
  const deploy = path.join(REPO, 'deploy');
  const example = readFileSync(path.join(deploy, 'sites', 'example.yaml'), 'utf8');

  it('holds an example site profile the worker accepts, named after its file', () => {
    expect(parseSiteProfile(example, 'example.yaml').name).toBe('example');
  });

  it("points the example profile's keys, known_hosts and credentials into the worker's read-only mounts", () => {
    const profile = parseSiteProfile(example, 'example.yaml');
    const files = [profile.login.identityFile, profile.login.knownHostsFile, profile.credentials?.idToken ?? ''];
    const worker = mounts(services.worker);
    for (const file of files) {
      const mount = worker.find((m) => file === m.target || file.startsWith(`${m.target}/`));
      expect([file, mount?.readOnly]).toEqual([file, true]);
      // And the file's place in deploy/ is what the mount makes of it.
      const onHost = path.join(REPO, mount!.source, path.relative(mount!.target, file));
      expect(onHost.startsWith(`${deploy}${path.sep}`) || onHost === deploy).toBe(true);
    }
  });

  it('never lets a key or a credential be committed', () => {
    for (const dir of ['keys', 'credentials']) {
      const ignore = readFileSync(path.join(deploy, dir, '.gitignore'), 'utf8')
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'));
      expect(ignore).toEqual(['*', '!.gitignore']);
    }
    expect(readFileSync(path.join(REPO, '.dockerignore'), 'utf8').split('\n')).toContain('deploy');
    expect(readFileSync(path.join(REPO, '.gitignore'), 'utf8').split('\n')).toContain('deploy/known_hosts');
  });

  it('documents the layout, with an example known_hosts and the dynamic config the server mounts', () => {
    const readme = readFileSync(path.join(deploy, 'README.md'), 'utf8');
    for (const word of ['known_hosts', 'keys/', 'credentials/', 'sites/', '1000', 'chmod'])
      expect(readme).toContain(word);
    expect(existsSync(path.join(deploy, 'known_hosts.example'))).toBe(true);
    const dyn = mounts(services.temporal).find((m) => m.target === '/etc/temporal/config/dynamicconfig')!;
    const file = env(services.temporal).DYNAMIC_CONFIG_FILE_PATH.replace(
      /^\/etc\/temporal\/config\/dynamicconfig\//,
      '',
    );
    expect(existsSync(path.join(REPO, dyn.source, file))).toBe(true);
  });

  it('runs the cluster the suites run: the same configuration file, the same variables, the same schema script', () => {
    const template = readFileSync(path.join(REPO, 'deploy', 'temporal', 'cluster.yaml'), 'utf8');
    const read = new Set([...template.matchAll(/env "([A-Z_0-9]+)"/g)].map((m) => m[1]));
    const nodes = ['temporal', 'temporal-2'].map((name) => services[name]);
    for (const node of nodes) {
      const config = mounts(node).find((m) => m.target === '/etc/jsc-glidein/temporal')!;
      expect(config).toMatchObject({ type: 'bind', source: './deploy/temporal', readOnly: true });
      const entry = (node.entrypoint as string[]).join(' ');
      expect(entry).toContain(
        'temporal-server --root / --config /etc/jsc-glidein/temporal --env cluster --allow-no-auth start',
      );
      // Every variable compose gives a node is one the file reads (DB is the admin-tools' own), and the database's are given.
      const given = Object.keys(env(node)).filter((name) => name !== 'DB');
      expect(given.filter((name) => !read.has(name))).toEqual([]);
      expect(given).toEqual(expect.arrayContaining(['POSTGRES_SEEDS', 'POSTGRES_PWD', 'TEMPORAL_CLUSTER_ADDRESS']));
    }
    // The suites start their nodes with the same argv (but the binary's path) and variables the file reads.
    expect(serverArgv('temporal-server').join(' ')).toContain('--env cluster --allow-no-auth start');
    for (const n of [0, 1] as const) expect(Object.keys(nodeEnv(n)).filter((name) => !read.has(name))).toEqual([]);
    expect(nodeEnv(0).TEMPORAL_CLUSTER_ADDRESS).toBe(nodeEnv(1).TEMPORAL_CLUSTER_ADDRESS);
    // And the schema: compose's job and the suites' cluster run scripts/compose/setup-postgres.sh.
    expect(readFileSync(path.join(REPO, 'sandbox', 'cluster.ts'), 'utf8')).toContain("'setup-postgres.sh'");
  });
});
