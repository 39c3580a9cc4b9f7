/**
 * docker-compose.yml's structure, read as compose reads it (YAML merge keys resolved), without a Docker engine:
 * the services of both profiles, volumes declared and used, ports published on 127.0.0.1 only, the worker's
 * environment only names the worker reads, one Temporal server version, operator files mounted read-only, and the
 * deploy/ example consistent with the mounts. Then the production profile's locks: mutual TLS with certificates
 * from scripts/compose/make-certs (run here, checked with openssl and by real TLS connections of the worker's and
 * the client's own kind), Temporal's authorizer, the Web UI on loopback, a PostgreSQL password that must be set.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { parse } from 'yaml';
import { NativeConnection } from '@temporalio/worker';
import { SEARCH_ATTRIBUTES } from '../../src/common/search-attributes';
import { parseSiteProfile } from '../../src/site/load';
import { connectClient, temporalTarget } from '../../src/temporal-connection';
import { envNamesRead, execForm, readDockerfile, REPO } from '../support/deployment';
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

  it('runs Temporal as its own compose examples do: PostgreSQL with a volume, a schema job, then the server', () => {
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

  it('never lets a key, a credential or a certificate be committed', () => {
    for (const dir of ['keys', 'credentials', 'tls']) {
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
      // The suites' argv after the configuration directory, but --allow-no-auth: compose runs an authorizer.
      const argv = serverArgv('temporal-server');
      const rest = argv.slice(argv.indexOf('--config') + 2).filter((a) => a !== '--allow-no-auth');
      expect(entry).toContain(`temporal-server --root / --config /etc/jsc-glidein/temporal ${rest.join(' ')}`);
      // Every variable compose gives a node is one the file reads (DB is the admin-tools' own), and the database's are
      // given.
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

// ---------------------------------------------------------------------------------------------------
// The production profile's locks

const MAKE_CERTS = path.join(REPO, 'scripts', 'compose', 'make-certs');
/** Where every container of the postgres profile finds its own certificate directory. */
const TLS_TARGET = '/etc/jsc-glidein/tls';
const CLIENT_DIRS = { worker: 'worker', 'temporal-setup': 'admin', 'temporal-ui': 'ui' } as const;

function run(argv: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function makeCerts(dir: string, env: NodeJS.ProcessEnv = {}): void {
  const r = run([MAKE_CERTS, dir], env);
  if (r.code !== 0) throw new Error(`make-certs exited ${r.code}: ${r.stderr}`);
}

/** `openssl verify` of a certificate against the CA, with extra checks (-purpose, -verify_hostname, …). */
function verify(dir: string, cert: string, ...checks: string[]): { ok: boolean; output: string } {
  const r = run(['openssl', 'verify', '-CAfile', path.join(dir, 'ca.pem'), ...checks, path.join(dir, cert)]);
  return { ok: r.code === 0, output: r.stdout + r.stderr };
}

function certField(file: string, ext: string): string {
  return run(['openssl', 'x509', '-in', file, '-noout', '-ext', ext]).stdout;
}

/** The container's certificate directory of a service, as the host path compose binds there. */
function tlsMount(service: Service): string | undefined {
  return mounts(service).find((m) => m.target === TLS_TARGET)?.source;
}

/**
 * deploy/temporal/cluster.yaml's TLS and authorization, rendered for `env` the way the server renders them (only
 * what those parts use: `print $tls "…"`, the two names, `with env`): the server's own loader was run on the whole
 * file by hand (server 1.29.1's common/config.LoadConfig), this keeps the test free of a Go build.
 */
function renderSecurity(env: Record<string, string>): { tls?: any; authorization?: any } {
  const template = readFileSync(path.join(REPO, 'deploy', 'temporal', 'cluster.yaml'), 'utf8');
  expect(template).toContain('{{- $tls := env "TEMPORAL_TLS_DIR" }}');
  const tlsBlock = /\{\{- if \$tls \}\}\n([\s\S]*?)\{\{- end \}\}\n/.exec(template)![1];
  const authBlock = /\{\{- with env "TEMPORAL_AUTHORIZER" \}\}\n([\s\S]*?)\{\{- end \}\}\n/.exec(template)![1];
  const defaults = (name: string, fallback: string) =>
    new RegExp(`env "${name}" \\| default "${fallback}"`).test(template) ? (env[name] ?? fallback) : undefined;
  const values: Record<string, string | undefined> = {
    frontendName: defaults('TEMPORAL_TLS_FRONTEND_NAME', 'temporal'),
    internodeName: defaults('TEMPORAL_TLS_INTERNODE_NAME', 'temporal-internode'),
  };
  const fill = (text: string) =>
    text
      .replace(/\{\{ print \$tls "([^"]+)" \| quote \}\}/g, (_, file: string) =>
        JSON.stringify(env.TEMPORAL_TLS_DIR + file),
      )
      .replace(/\{\{ \$(\w+) \| quote \}\}/g, (_, name: string) => JSON.stringify(values[name]))
      .replace(/\{\{ \. \| quote \}\}/g, JSON.stringify(env.TEMPORAL_AUTHORIZER));
  let global = '';
  if (env.TEMPORAL_TLS_DIR) global += fill(tlsBlock);
  if (env.TEMPORAL_AUTHORIZER) global += fill(authBlock);
  expect(global).not.toContain('{{');
  return (parse(`global:\n${global}`) as { global: { tls?: unknown; authorization?: unknown } | null }).global ?? {};
}

describe('the postgres profile authenticates', () => {
  const nodes = ['temporal', 'temporal-2'];

  it('runs the server without --allow-no-auth, with Temporal’s authorizer', () => {
    for (const name of nodes) {
      const node = services[name];
      expect([name, (node.entrypoint as string[]).join(' ')]).toEqual([
        name,
        expect.not.stringContaining('allow-no-auth'),
      ]);
      expect([name, env(node).TEMPORAL_ALLOW_NO_AUTH]).toEqual([name, undefined]);
      expect([name, env(node).TEMPORAL_AUTHORIZER]).toEqual([name, 'default']);
      expect(renderSecurity(env(node)).authorization).toEqual({ authorizer: 'default' });
    }
    // What the suites' cluster gets is unchanged: no authorizer, no TLS.
    for (const n of [0, 1] as const) expect(renderSecurity(nodeEnv(n))).toEqual({});
  });

  it('requires client certificates on the frontend and between the nodes, from the CA in the nodes’ mount', () => {
    for (const name of nodes) {
      const e = env(services[name]);
      expect([name, e.TEMPORAL_TLS_DIR]).toEqual([name, TLS_TARGET]);
      expect([name, tlsMount(services[name])]).toEqual([name, './deploy/tls/server']);
      const { tls } = renderSecurity(e);
      const ca = [`${TLS_TARGET}/ca.pem`];
      expect(tls.frontend.server).toEqual({
        certFile: `${TLS_TARGET}/frontend.pem`,
        keyFile: `${TLS_TARGET}/frontend.key`,
        requireClientAuth: true,
        clientCaFiles: ca,
      });
      expect(tls.internode.server).toEqual({
        certFile: `${TLS_TARGET}/internode.pem`,
        keyFile: `${TLS_TARGET}/internode.key`,
        requireClientAuth: true,
        clientCaFiles: ca,
      });
      // Nodes call each other, and their system workers call a frontend, by IP: each checks a fixed name instead.
      expect(tls.internode.client).toEqual({ serverName: 'temporal-internode', rootCaFiles: ca });
      expect(tls.systemWorker).toEqual({
        certFile: `${TLS_TARGET}/internode.pem`,
        keyFile: `${TLS_TARGET}/internode.key`,
        client: { serverName: 'temporal', rootCaFiles: ca },
      });
    }
  });

  it('gives every client of the frontend a certificate of its own, and none of them the CA’s key', () => {
    for (const name of ['worker', 'temporal-setup'] as const) {
      expect([name, env(services[name])]).toEqual([
        name,
        expect.objectContaining({
          TEMPORAL_ADDRESS: 'temporal:7233',
          TEMPORAL_TLS: 'true',
          TEMPORAL_TLS_CLIENT_CERT_PATH: `${TLS_TARGET}/client.pem`,
          TEMPORAL_TLS_CLIENT_KEY_PATH: `${TLS_TARGET}/client.key`,
          TEMPORAL_TLS_SERVER_CA_CERT_PATH: `${TLS_TARGET}/ca.pem`,
          TEMPORAL_TLS_SERVER_NAME: 'temporal',
        }),
      ]);
    }
    // The Web UI's server reads its own names (temporalio/ui-server's docker/config_template.yaml).
    expect(env(services['temporal-ui'])).toMatchObject({
      TEMPORAL_TLS_CA: `${TLS_TARGET}/ca.pem`,
      TEMPORAL_TLS_CERT: `${TLS_TARGET}/client.pem`,
      TEMPORAL_TLS_KEY: `${TLS_TARGET}/client.key`,
      TEMPORAL_TLS_SERVER_NAME: 'temporal',
      TEMPORAL_TLS_ENABLE_HOST_VERIFICATION: 'true',
    });
    for (const [name, dir] of Object.entries(CLIENT_DIRS))
      expect([name, tlsMount(services[name])]).toEqual([name, `./deploy/tls/${dir}`]);
    // deploy/tls itself (the CA's key) is never mounted; each directory under it goes to its own services only.
    const tlsSources = Object.entries(services).flatMap(([name, s]) =>
      mounts(s)
        .filter((m) => m.source.startsWith('./deploy/tls'))
        .map((m) => `${name} ${m.source}`),
    );
    expect(tlsSources.sort()).toEqual(
      [
        'temporal ./deploy/tls/server',
        'temporal-2 ./deploy/tls/server',
        'worker ./deploy/tls/worker',
        'temporal-setup ./deploy/tls/admin',
        'temporal-ui ./deploy/tls/ui',
      ].sort(),
    );
    // The dev profile's worker talks to a dev server without TLS.
    expect(Object.keys(env(services['worker-dev'])).filter((k) => k.startsWith('TEMPORAL_TLS'))).toEqual([]);
  });

  it('publishes the Web UI on loopback only, with the reason written beside it, and without a login of its own', () => {
    expect(services['temporal-ui'].ports).toEqual(['127.0.0.1:8080:8080']);
    expect(env(services['temporal-ui']).TEMPORAL_AUTH_ENABLED).toBeUndefined();
    const text = readFileSync(path.join(REPO, 'docker-compose.yml'), 'utf8');
    const ui = text.slice(text.indexOf('  temporal-ui:'), text.indexOf("'127.0.0.1:8080:8080'"));
    expect(ui).toMatch(/Loopback only[\s\S]*no login[\s\S]*ssh -L 8080:127\.0\.0\.1:8080/);
  });

  it('has no default PostgreSQL password: each of its users refuses to start without one', () => {
    expect(withDefaults(env(services.postgresql).POSTGRES_PASSWORD)).toBe('');
    expect(withDefaults(env(services['temporal-schema']).SQL_PASSWORD)).toBe('');
    for (const name of nodes) expect([name, withDefaults(env(services[name]).POSTGRES_PWD)]).toEqual([name, '']);
    // No `${…:?}`: compose would demand it for the dev profile too, which has no database.
    expect(readFileSync(path.join(REPO, 'docker-compose.yml'), 'utf8')).not.toMatch(/\$\{POSTGRES_PASSWORD:?\?/);
    // The nodes' configuration fails to render without one (the server's own loader: `fail`).
    expect(readFileSync(path.join(REPO, 'deploy', 'temporal', 'cluster.yaml'), 'utf8')).toContain(
      '{{- if not (env "POSTGRES_PWD") }}{{ fail "POSTGRES_PWD is required',
    );
  });

  it('starts PostgreSQL only with a password that is neither empty nor the old default', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'compose-pg-'));
    try {
      // The image's entrypoint, standing in: it says what it was asked to run.
      writeFileSync(path.join(dir, 'docker-entrypoint.sh'), '#!/bin/sh\necho "started: $*"\n');
      chmodSync(path.join(dir, 'docker-entrypoint.sh'), 0o755);
      const [shell, flag, script] = services.postgresql.entrypoint as string[];
      // `$$` is compose's escape for a `$` the container's shell sees.
      const argv = [shell, flag, script.replace(/\$\$/g, '$')];
      const start = (password?: string) =>
        run(argv, {
          PATH: `${dir}:${process.env.PATH}`,
          ...(password === undefined ? {} : { POSTGRES_PASSWORD: password }),
        });
      for (const password of [undefined, '', 'temporal']) {
        const r = start(password);
        expect([password, r.code, r.stdout]).toEqual([password, 64, '']);
        expect(r.stderr).toContain('POSTGRES_PASSWORD');
      }
      expect(start('a long random one')).toEqual({ code: 0, stdout: 'started: postgres\n', stderr: '' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sets up the schema only with a password (setup-postgres.sh, as the schema job and the suites run it)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'compose-schema-'));
    try {
      const tool = path.join(dir, 'sql-tool');
      writeFileSync(tool, `#!/bin/sh\necho "$*" >> ${path.join(dir, 'calls')}\n`);
      chmodSync(tool, 0o755);
      const r = run(['sh', path.join(REPO, 'scripts', 'compose', 'setup-postgres.sh')], {
        POSTGRES_SEEDS: 'db.invalid',
        POSTGRES_USER: 'temporal',
        SQL_PASSWORD: '',
        SQL_TOOL: tool,
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('POSTGRES_PASSWORD');
      expect(existsSync(path.join(dir, 'calls'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('scripts/compose/make-certs', () => {
  let dir: string;
  let other: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'compose-tls-'));
    other = mkdtempSync(path.join(os.tmpdir(), 'compose-tls-other-'));
    makeCerts(dir, { TLS_FRONTEND_NAMES: 'glidein.example.org 10.1.2.3' });
    makeCerts(other);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
  });

  it('writes one CA, the nodes’ certificates and one for each client, keys readable by the owner only', () => {
    const listing = (sub: string) => readdirSync(path.join(dir, sub)).sort();
    expect(listing('.')).toEqual(['admin', 'ca.key', 'ca.pem', 'cli', 'server', 'ui', 'worker']);
    expect(listing('server')).toEqual(['ca.pem', 'frontend.key', 'frontend.pem', 'internode.key', 'internode.pem']);
    for (const who of ['worker', 'ui', 'admin'])
      expect([who, listing(who)]).toEqual([who, ['ca.pem', 'client.key', 'client.pem']]);
    expect(listing('cli')).toEqual(['ca.pem', 'client.key', 'client.pem', 'temporal.toml']);
    const keys = [
      'ca.key',
      'server/frontend.key',
      'server/internode.key',
      ...['worker', 'ui', 'admin', 'cli'].map((w) => `${w}/client.key`),
    ];
    for (const key of keys) expect([key, statSync(path.join(dir, key)).mode & 0o777]).toEqual([key, 0o600]);
    for (const sub of ['server', 'worker', 'ui', 'admin', 'cli'])
      expect([sub, statSync(path.join(dir, sub)).mode & 0o777]).toEqual([sub, 0o700]);
    // Every file the nodes' configuration names is one make-certs wrote into server/.
    const named = JSON.stringify(renderSecurity({ TEMPORAL_TLS_DIR: path.join(dir, 'server') }).tls).match(
      /"\/[^"]+"/g,
    )!;
    expect(named.length).toBeGreaterThan(0);
    for (const file of named) expect([file, existsSync(JSON.parse(file) as string)]).toEqual([file, true]);
    // Every copy of the CA certificate is the CA's.
    const ca = readFileSync(path.join(dir, 'ca.pem'), 'utf8');
    for (const sub of ['server', 'worker', 'ui', 'admin', 'cli'])
      expect(readFileSync(path.join(dir, sub, 'ca.pem'), 'utf8')).toBe(ca);
  });

  it('signs every certificate with its CA, and the CA is one (basicConstraints CA:TRUE, pathlen 0)', () => {
    for (const cert of [
      'server/frontend.pem',
      'server/internode.pem',
      'worker/client.pem',
      'ui/client.pem',
      'admin/client.pem',
      'cli/client.pem',
    ]) {
      const r = verify(dir, cert);
      expect([cert, r.ok, r.output]).toEqual([cert, true, `${path.join(dir, cert)}: OK\n`]);
      // And not by another deployment's CA.
      expect([cert, verify(other, path.relative(other, path.join(dir, cert))).ok]).toEqual([cert, false]);
    }
    expect(certField(path.join(dir, 'ca.pem'), 'basicConstraints')).toMatch(/critical\s+CA:TRUE, pathlen:0/);
  });

  it('names the frontend as its clients reach it, and the internode certificate as the nodes check it', () => {
    for (const name of ['temporal', 'temporal-2', 'localhost', 'glidein.example.org'])
      expect([name, verify(dir, 'server/frontend.pem', '-purpose', 'sslserver', '-verify_hostname', name).ok]).toEqual([
        name,
        true,
      ]);
    for (const ip of ['127.0.0.1', '10.1.2.3'])
      expect([ip, verify(dir, 'server/frontend.pem', '-purpose', 'sslserver', '-verify_ip', ip).ok]).toEqual([
        ip,
        true,
      ]);
    expect(verify(dir, 'server/frontend.pem', '-verify_hostname', 'elsewhere.example.org').ok).toBe(false);
    expect(verify(dir, 'server/frontend.pem', '-verify_hostname', 'temporal-internode').ok).toBe(false);
    // The frontend certificate serves; it is no client's.
    expect(verify(dir, 'server/frontend.pem', '-purpose', 'sslclient').ok).toBe(false);
    // internode.pem is both ends of a node-to-node call, and a system worker's client certificate.
    for (const purpose of ['sslserver', 'sslclient'])
      expect([
        purpose,
        verify(dir, 'server/internode.pem', '-purpose', purpose, '-verify_hostname', 'temporal-internode').ok,
      ]).toEqual([purpose, true]);
    expect(certField(path.join(dir, 'server/internode.pem'), 'subjectAltName')).toMatch(
      /^\s*DNS:temporal-internode\s*$/m,
    );
  });

  it('makes client certificates for client authentication only (EKU clientAuth)', () => {
    for (const who of ['worker', 'ui', 'admin', 'cli']) {
      expect([who, verify(dir, `${who}/client.pem`, '-purpose', 'sslclient').ok]).toEqual([who, true]);
      expect([who, verify(dir, `${who}/client.pem`, '-purpose', 'sslserver').ok]).toEqual([who, false]);
      expect(certField(path.join(dir, who, 'client.pem'), 'extendedKeyUsage')).toMatch(
        /^\s*TLS Web Client Authentication\s*$/m,
      );
    }
  });

  it('keeps the CA when run again and makes every other certificate anew', () => {
    const again = mkdtempSync(path.join(os.tmpdir(), 'compose-tls-again-'));
    try {
      makeCerts(again);
      const before = ['ca.pem', 'ca.key', 'server/frontend.pem', 'worker/client.pem'].map((f) =>
        readFileSync(path.join(again, f), 'utf8'),
      );
      makeCerts(again);
      const after = ['ca.pem', 'ca.key', 'server/frontend.pem', 'worker/client.pem'].map((f) =>
        readFileSync(path.join(again, f), 'utf8'),
      );
      expect(after.slice(0, 2)).toEqual(before.slice(0, 2));
      expect(after[2]).not.toBe(before[2]);
      expect(after[3]).not.toBe(before[3]);
      expect(verify(again, 'worker/client.pem').ok).toBe(true);
    } finally {
      rmSync(again, { recursive: true, force: true });
    }
  });

  it('refuses a frontend name that is not a DNS name or an address, before writing anything', () => {
    const target = path.join(os.tmpdir(), `compose-tls-refused-${process.pid}`);
    try {
      for (const names of ['a,DNS:evil.example.org', 'ok.example.org bad_name', '-bad', 'IP:1.2.3.4', '256.1.1.1']) {
        const r = run([MAKE_CERTS, target], { TLS_FRONTEND_NAMES: names });
        expect([names, r.code]).toEqual([names, 1]);
        expect(r.stderr).toContain('TLS_FRONTEND_NAMES');
        expect(existsSync(target)).toBe(false);
      }
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  });

  it('writes into deploy/tls by default, where git commits nothing', () => {
    expect(readFileSync(MAKE_CERTS, 'utf8')).toContain('dir=${1:-$root/deploy/tls}');
    const files = ['deploy/tls/ca.key', 'deploy/tls/server/frontend.key', 'deploy/tls/cli/client.key'];
    expect(
      run(['git', '-C', REPO, 'check-ignore', ...files])
        .stdout.split('\n')
        .filter(Boolean),
    ).toEqual(files);
  });

  describe('its certificates, used as compose uses them', () => {
    /** A TLS gRPC endpoint that answers every call with an empty message, noting who called (the client's CN). */
    let server: http2.Http2SecureServer;
    let address: string;
    const callers: string[] = [];
    beforeAll(async () => {
      const file = (f: string) => readFileSync(path.join(dir, 'server', f));
      server = http2.createSecureServer({
        cert: file('frontend.pem'),
        key: file('frontend.key'),
        ca: file('ca.pem'),
        requestCert: true,
        rejectUnauthorized: true,
      });
      server.on('stream', (stream) => {
        const peer = (stream.session?.socket as TLSSocket | undefined)?.getPeerCertificate();
        callers.push(String(peer?.subject?.CN));
        stream.on('data', () => undefined);
        stream.on('end', () => {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          stream.end(Buffer.alloc(5)); // one message, empty
        });
      });
      server.on('sessionError', () => undefined);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    /** A service's environment from compose, its certificate directory the one make-certs wrote, its address ours. */
    function clientEnv(name: keyof typeof CLIENT_DIRS): Record<string, string> {
      const e = env(services[name]);
      const mapped = Object.entries(e).map(([k, v]) => [
        k,
        v.replace(`${TLS_TARGET}/`, `${path.join(dir, CLIENT_DIRS[name])}/`),
      ]);
      return { ...Object.fromEntries(mapped), TEMPORAL_ADDRESS: address };
    }

    it('connects the worker (native connection, its compose environment) with its client certificate', async () => {
      const target = temporalTarget(clientEnv('worker'));
      expect(target.secured).toEqual({ tls: true, apiKey: false });
      const connection = await NativeConnection.connect(target.connection);
      try {
        await connection.workflowService.getSystemInfo({});
      } finally {
        await connection.close();
      }
      expect(callers).toContain('jsc-glidein worker');
    });

    it('connects the CLI on the host through the profile make-certs writes (TEMPORAL_CONFIG_FILE)', async () => {
      const toml = readFileSync(path.join(dir, 'cli', 'temporal.toml'), 'utf8');
      expect(toml).toContain('address = "localhost:7233"');
      const config = path.join(dir, 'cli', 'here.toml');
      writeFileSync(config, toml.replace('localhost:7233', address));
      const connection = await connectClient(temporalTarget({ TEMPORAL_CONFIG_FILE: config }));
      try {
        await connection.workflowService.getSystemInfo({});
      } finally {
        await connection.close();
      }
      expect(callers).toContain('jsc-glidein cli');
    });

    it('is refused without a client certificate, or with one from another CA', async () => {
      const before = callers.length;
      const ca = readFileSync(path.join(dir, 'ca.pem'));
      const bare = NativeConnection.connect({
        address,
        tls: { serverRootCACertificate: ca, serverNameOverride: 'temporal' },
      });
      await expect(bare.then((c) => c.close())).rejects.toThrow();
      const strangerDir = path.join(other, 'worker');
      const stranger = NativeConnection.connect({
        address,
        tls: {
          serverRootCACertificate: ca,
          serverNameOverride: 'temporal',
          clientCertPair: {
            crt: readFileSync(path.join(strangerDir, 'client.pem')),
            key: readFileSync(path.join(strangerDir, 'client.key')),
          },
        },
      });
      await expect(stranger.then((c) => c.close())).rejects.toThrow();
      expect(callers.length).toBe(before);
    });
  });
});
