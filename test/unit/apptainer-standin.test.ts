/**
 * The apptainer stand-in's contained instance, run for real as an unprivileged user in a temporary directory (no
 * site): started with the argv the lifecycle builds (src/site/adapters), a job-shaped process in it reaches only
 * what is bound. This is what makes the site tests' isolation checks mean something; the real lifecycle's container
 * is checked on the local test site by test/local-site/payload-isolation.test.ts.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SiteRegistry } from '../../src/site/load';
import { adaptersFor } from '../../src/site/adapters';
import { pathsFor, type GlideinPaths } from '../../src/site/paths';
import type { SiteProfile } from '../../src/site/profile';

const STANDIN = path.join(__dirname, '..', '..', 'sandbox', 'standins', 'apptainer');
/** Root runs the stand-in as nobody: user namespaces are what an unprivileged site user has. */
const AS_NOBODY = process.getuid?.() === 0;

let dir: string;
let home: string;
let profile: SiteProfile;
let paths: GlideinPaths;
const instance = 'glidein-g1';

/** Runs argv as the site user, with exactly this environment (plus HOME and PATH). */
function asSiteUser(argv: readonly string[], env: Record<string, string> = {}) {
  const vars = Object.entries({ PATH: '/usr/bin:/bin', HOME: home, ...env }).map(([k, v]) => `${k}=${v}`);
  const full = ['env', '-i', ...vars, ...argv];
  return AS_NOBODY ? ['runuser', '-u', 'nobody', '--', ...full] : full;
}

function run(argv: readonly string[], env?: Record<string, string>) {
  const [cmd, ...args] = asSiteUser(argv, env);
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A job-shaped process: a shell in the instance, in its execute directory, as the glidein's daemons start one. */
function job(script: string, env?: Record<string, string>) {
  const execute = path.join(paths.condorLocal, 'execute', 'dir_1');
  return run(adaptersFor(profile).container.execArgv(instance, ['sh', '-c', `cd ${execute} && ${script}`]), env);
}

function write(file: string, content: string) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content, { mode: 0o600 });
}

beforeAll(async () => {
  const local = await new SiteRegistry(path.join(__dirname, '..', '..', 'sites')).get('local');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'standin-contain-'));
  home = path.join(dir, 'home');
  const image = path.join(dir, 'image.sif');
  const cvmfsexec = path.join(dir, 'cvmfsexec');
  profile = {
    ...local,
    workDir: path.join(dir, 'work'),
    cvmfs: { ...local.cvmfs, cvmfsexecDir: cvmfsexec },
    container: { ...local.container, executable: STANDIN, image, binds: [] },
  };
  paths = pathsFor(profile, 'g1');
  // The site user's home and a glidein directory as the lifecycle leaves it before the container starts.
  write(path.join(home, '.ssh', 'authorized_keys'), 'ssh-ed25519 AAAA operator\n');
  write(image, 'SIF');
  write(path.join(cvmfsexec, 'dist', 'cvmfs', 'cms.cern.ch', 'README'), 'cvmfs\n');
  write(path.join(paths.dir, '.claim'), 'default glidein-workflow-1\n');
  write(paths.relaySecret, 'feedc0ffee\n');
  write(paths.glideinPid, '1 1\n');
  write(paths.proxychainsConf, 'strict_chain\n');
  write(paths.idToken, 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJnIn0.c2ln\n');
  fs.mkdirSync(path.join(paths.condorLocal, 'execute', 'dir_1'), { recursive: true });
  fs.mkdirSync(paths.scratchDir, { recursive: true });
  if (AS_NOBODY) spawnSync('chown', ['-R', 'nobody', dir]);
  fs.chmodSync(dir, 0o755);

  const start = run(adaptersFor(profile).instanceStartArgv(instance, paths));
  if (start.code !== 0) throw new Error(`instance start failed: ${start.stderr}`);
});

afterAll(() => {
  if (dir) {
    run([STANDIN, 'instance', 'stop', '-t', '2', instance]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('a contained instance of the apptainer stand-in', () => {
  it('hides the claim, the pid files and the relay secret from a job', () => {
    for (const file of [path.join(paths.dir, '.claim'), paths.relaySecret, paths.glideinPid]) {
      const read = job(`cat ${file}`);
      expect(read.code).not.toBe(0);
      expect(read.stderr).toMatch(/No such file or directory/);
    }
    // The glidein's directory holds only what is bound into it.
    expect(job(`ls -A ${paths.dir}`).stdout.split('\n').filter(Boolean).sort()).toEqual(['condor', 'config']);
  });

  it('lets a job neither rewrite the claim nor touch what the daemons read', () => {
    const claim = path.join(paths.dir, '.claim');
    // Where the glidein's directory lies under /tmp (as here and on the local test site), the path a job writes
    // to is in the instance's own /tmp: whatever it writes there, the claim on the site stays as it is.
    job(`echo mine > ${claim}`);
    expect(fs.readFileSync(claim, 'utf8')).toBe('default glidein-workflow-1\n');
    const rewrite = job(`echo forged > ${paths.idToken}`);
    expect(rewrite.stderr).toMatch(/Read-only file system/);
    expect(job(`rm -f ${paths.proxychainsConf}`).code).not.toBe(0);
    expect(fs.readFileSync(paths.idToken, 'utf8')).toContain('eyJ');
    expect(fs.readFileSync(paths.proxychainsConf, 'utf8')).toBe('strict_chain\n');
    // What the daemons must read, a job can read too (same uid): said in docs/ARCHITECTURE.md.
    expect(job(`cat ${paths.idToken}`).stdout).toContain('eyJ');
    // Its own working directory is writable.
    expect(job('echo out > job.out && cat job.out').stdout).toBe('out\n');
  });

  it("keeps a job from writing the site user's ~/.ssh/rc, by $HOME or by the host's processes", () => {
    const rc = path.join(home, '.ssh', 'rc');
    const claim = path.join(paths.dir, '.claim');
    // With --no-home there is no home: where $HOME points, nothing of the host's is.
    job('mkdir -p "$HOME/.ssh" 2>/dev/null; echo evil > "$HOME/.ssh/rc"');
    job(`echo evil > ${rc}`);
    // Through another process's root (/proc/<pid>/root): the instance has its own PID namespace.
    const escape = job(
      `for p in /proc/[0-9]*; do cat $p/root${claim} 2>/dev/null; echo evil 2>/dev/null > $p/root${rc}; done; true`,
    );
    expect(escape.stdout).not.toContain('glidein-workflow-1');
    expect(fs.existsSync(rc)).toBe(false);
    expect(fs.readdirSync(path.join(home, '.ssh'))).toEqual(['authorized_keys']);
    expect(
      job('ls /proc')
        .stdout.split('\n')
        .filter((p) => /^\d+$/.test(p)).length,
    ).toBeLessThan(6);
  });

  it('passes a job only what the runtime prefix carries, never the host environment', () => {
    const env = job('echo "[$HOST_ONLY] [$CARRIED]"', { HOST_ONLY: 'host', APPTAINERENV_CARRIED: 'carried' });
    expect(env.stdout).toBe('[] [carried]\n');
  });

  it('forwards a signal sent to the exec to the command in it, which ends the exec with it', async () => {
    const execute = path.join(paths.condorLocal, 'execute', 'dir_1');
    const [cmd, ...args] = asSiteUser(
      adaptersFor(profile).container.execArgv(instance, [
        'sh',
        '-c',
        `trap 'echo graceful > ${execute}/term; exit 0' TERM; echo up > ${execute}/up; while :; do sleep 0.1; done`,
      ]),
    );
    const child = spawn(cmd, args, { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    for (let i = 0; i < 100 && !fs.existsSync(path.join(execute, 'up')); i++)
      await new Promise((r) => setTimeout(r, 50));
    // The exec's own pid (as the lifecycle records it): under runuser, runuser's child.
    const pid = AS_NOBODY
      ? Number(fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0])
      : child.pid!;
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toMatch(/^Apptainer runtime parent/);
    process.kill(pid, 'SIGTERM');
    expect(await exited).toBe(0);
    expect(fs.readFileSync(path.join(execute, 'term'), 'utf8')).toBe('graceful\n');
  });
});
