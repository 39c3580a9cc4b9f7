/**
 * The Dockerfile's build, outside Docker (the development machine has a docker client but no engine): each stage
 * becomes a directory standing for its WORKDIR, its COPY lines copy what they name (from the build context, minus
 * .dockerignore, or from an earlier stage), its RUN lines run there with sh. Then the final stage's CMD starts with a
 * bad MAX_CONCURRENT_ACTIVITIES and must exit with the worker's own message: the image's entry point loads, with only
 * the runtime dependencies `npm prune --omit=dev` left. Needs no test site and no network beyond the npm registry
 * (npm ci prefers its cache, ~/.npm). It takes 1.5 to 3 minutes on 2 cores, most of it npm ci unpacking about 400 MB
 * into node_modules (45 to 65 s measured even without install scripts), then tsc and the bundle. What this does
 * not prove: the base image (node:20-bookworm-slim), its user `node`, Docker's layer caching.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execForm, parseCopy, readDockerfile, REPO, type Stage } from '../support/deployment';

const TIMEOUT_MS = 280_000;

/** .dockerignore's top-level names (this project's file holds only plain names). */
function dockerignored(): Set<string> {
  return new Set(
    readFileSync(path.join(REPO, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#')),
  );
}

function run(command: string, cwd: string, env: NodeJS.ProcessEnv): void {
  const result = spawnSync('sh', ['-c', command], { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0)
    throw new Error(`RUN ${command} exited ${result.status}:\n${(result.stdout + result.stderr).slice(-4000)}`);
}

/** The stage's directory for a path in its image (relative to WORKDIR unless absolute). */
function inStage(root: string, workdir: string, p: string): string {
  return path.join(root, path.posix.isAbsolute(p) ? p : path.posix.join(workdir, p));
}

describe('the Dockerfile, built outside Docker', () => {
  const stages: Stage[] = readDockerfile();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'glidein-dockerfile-'));
  /** Each stage's root directory and WORKDIR, by name and by index. */
  const built = new Map<string, { root: string; workdir: string }>();
  const ignored = dockerignored();
  // Only what a RUN in the image would see: no project tools on PATH before node_modules/.bin, npm from its cache.
  const runEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    npm_config_prefer_offline: 'true',
    npm_config_update_notifier: 'false',
  };

  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it(
    'builds lib/worker.js and the workflow bundle, and the final stage starts the worker',
    () => {
      expect(stages.length).toBeGreaterThanOrEqual(2);
      stages.forEach((stage, index) => {
        const root = path.join(tmp, `stage-${index}`);
        let workdir = '/';
        for (const { op, args } of stage.instructions) {
          if (op === 'WORKDIR') {
            workdir = path.posix.resolve(workdir, args);
            mkdirSync(inStage(root, '/', workdir), { recursive: true });
          } else if (op === 'COPY') {
            const copy = parseCopy(args);
            const from = copy.from === undefined ? undefined : built.get(copy.from);
            if (copy.from !== undefined && !from) throw new Error(`COPY --from=${copy.from}: no such stage`);
            for (const source of copy.sources) {
              const top = source.split('/')[0];
              if (!from && ignored.has(top)) throw new Error(`COPY ${source}: excluded by .dockerignore`);
              const src = from ? inStage(from.root, from.workdir, source) : path.join(REPO, source);
              const dest = inStage(root, workdir, copy.dest);
              // A directory's contents go into the destination, as Docker copies them; a file goes into it when
              // the destination ends with / or there are several sources.
              const intoDir = !statSync(src).isDirectory() && (copy.dest.endsWith('/') || copy.sources.length > 1);
              const target = intoDir ? path.join(dest, path.basename(source)) : dest;
              mkdirSync(path.dirname(target), { recursive: true });
              // Symlinks (node_modules/.bin) kept as they are.
              cpSync(src, target, { recursive: true, verbatimSymlinks: true });
            }
          } else if (op === 'RUN') {
            run(args, inStage(root, '/', workdir), runEnv);
          } else if (op === 'ENV') {
            const m = /^([A-Za-z_][A-Za-z0-9_]*)[= ](.*)$/.exec(args);
            if (!m) throw new Error(`ENV ${args}: not handled`);
            runEnv[m[1]] = m[2];
          } else if (!['USER', 'CMD', 'EXPOSE', 'LABEL', 'ENTRYPOINT'].includes(op)) {
            throw new Error(`${op} is not handled by this test: teach it`);
          }
        }
        built.set(String(index), { root, workdir });
        if (stage.name) built.set(stage.name, { root, workdir });
      });

      const final = built.get(String(stages.length - 1))!;
      const app = inStage(final.root, '/', final.workdir);
      expect(existsSync(path.join(app, 'lib', 'worker.js'))).toBe(true);
      expect(existsSync(path.join(app, 'lib', 'workflow-bundle.js'))).toBe(true);
      // npm prune --omit=dev: the compilers stayed in the build stage.
      expect(existsSync(path.join(app, 'node_modules', 'typescript'))).toBe(false);
      expect(existsSync(path.join(app, 'node_modules', 'ts-node'))).toBe(false);

      const cmd = execForm(stages.at(-1)!.instructions.find((i) => i.op === 'CMD')!.args);
      expect(cmd).toEqual(['node', 'lib/worker.js']);
      const started = spawnSync(cmd[0], cmd.slice(1), {
        cwd: app,
        env: { ...runEnv, MAX_CONCURRENT_ACTIVITIES: 'x', TEMPORAL_ADDRESS: '127.0.0.1:1' },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(started.status).toBe(1);
      expect(started.stderr).toContain(
        'worker failed: MAX_CONCURRENT_ACTIVITIES: expected a positive whole number, got "x"',
      );
    },
    TIMEOUT_MS,
  );
});
