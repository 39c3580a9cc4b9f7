/**
 * The site scripts on a shared login node, in a group-shared project directory (JSC's are setgid, 2770): what they
 * make is private (umask 077), and a path they would trust — the glidein directory, its claim, a lease directory,
 * cvmfsexec's mountrepo, the Slurm job's spool — is refused (exit 77, the path named) when it is a symbolic link,
 * someone else's, or writable by its group or others. Run for real with the local executor, as root or not.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalExecutor } from '../../src/remote/local';
import { HOLDER_SCRIPT } from '../../src/site/batch';
import {
  claimArgv,
  IN_JOB,
  mountLeaseArgv,
  parseClaim,
  portLeaseArgv,
  retireArgv,
  setConfigLineArgv,
  spawnDetached,
  spawnedProcess,
  SUPERVISOR_SCRIPT,
  UNSAFE_PATH_EXIT,
  writeFileArgv,
} from '../../src/site/scripts';

const local = new LocalExecutor();
const opts = { timeoutMs: 30_000 };
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'site-modes-'));
  // The project directory as JSC has it: group-shared and setgid, so what is made in it is the group's.
  fs.chmodSync(dir, 0o2770);
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const modeOf = (p: string) => fs.statSync(p).mode & 0o7777;
/** A directory that is someone else's: made here and given away as root, or one of the system's otherwise. */
function someoneElses(): string {
  if (process.getuid?.() !== 0) return '/usr/share';
  const other = path.join(dir, 'theirs');
  fs.mkdirSync(other, { mode: 0o755 });
  fs.chownSync(other, 65534, 65534);
  return other;
}

describe('CLAIM_GLIDEIN', () => {
  it('makes the glidein directory and its claim private, in a setgid group-shared work directory', async () => {
    const g = path.join(dir, 'g1');
    const result = await local.run(claimArgv(g, '{"w":"a"}', 'claim'), opts);
    expect(result.code).toBe(0);
    expect(parseClaim(result.stdout)).toEqual({ state: 'ours' });
    // Only the setgid bit the parent hands down besides the owner's: nothing for the group or others.
    expect(modeOf(g) & 0o777).toBe(0o700);
    expect(modeOf(path.join(g, '.claim')) & 0o777).toBe(0o600);
    expect(fs.readdirSync(g)).toEqual(['.claim']);
  });

  it.each([
    ['writable by its group', (g: string) => (fs.mkdirSync(g), fs.chmodSync(g, 0o770)), 'writable by its group'],
    ['writable by others', (g: string) => (fs.mkdirSync(g), fs.chmodSync(g, 0o757)), 'writable by its group'],
    [
      'a symbolic link',
      (g: string) => (fs.mkdirSync(`${g}.real`, { mode: 0o700 }), fs.symlinkSync(`${g}.real`, g)),
      'is a symbolic link',
    ],
  ])('refuses a glidein directory %s, naming it, and writes no claim', async (_what, make, why) => {
    const g = path.join(dir, 'g1');
    make(g);
    const result = await local.run(claimArgv(g, '{"w":"a"}', 'claim'), opts);
    expect(result.code).toBe(UNSAFE_PATH_EXIT);
    expect(result.stderr).toContain(`${g} `);
    expect(result.stderr).toContain(why);
    expect(fs.existsSync(path.join(g, '.claim'))).toBe(false);
  });

  it("refuses someone else's directory", async () => {
    const theirs = someoneElses();
    const result = await local.run(claimArgv(theirs, '{"w":"a"}', 'verify'), opts);
    expect(result.code).toBe(UNSAFE_PATH_EXIT);
    expect(result.stderr).toMatch(/is owned by uid \d+, not by/);
  });

  it('refuses a claim file that others may rewrite (teardown would then release nothing of ours)', async () => {
    const g = path.join(dir, 'g1');
    fs.mkdirSync(g, { mode: 0o700 });
    fs.writeFileSync(path.join(g, '.claim'), '{"w":"a"}\n', { mode: 0o666 });
    fs.chmodSync(path.join(g, '.claim'), 0o666);
    const result = await local.run(claimArgv(g, '{"w":"a"}', 'verify'), opts);
    expect(result.code).toBe(UNSAFE_PATH_EXIT);
    expect(result.stderr).toContain(`${g}/.claim is writable`);
  });

  it('refuses a claim that is a symbolic link it did not make', async () => {
    const g = path.join(dir, 'g1');
    fs.mkdirSync(g, { mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'planted'), '{"w":"a"}\n', { mode: 0o600 });
    fs.symlinkSync(path.join(dir, 'planted'), path.join(g, '.claim'));
    const result = await local.run(claimArgv(g, '{"w":"a"}', 'verify'), opts);
    expect(result.code).toBe(UNSAFE_PATH_EXIT);
    expect(result.stderr).toContain('is a symbolic link');
  });
});

describe('RETIRE_GLIDEIN', () => {
  it('refuses a directory of finished glideins that others may write', async () => {
    const done = path.join(dir, '.done');
    fs.mkdirSync(done);
    fs.chmodSync(done, 0o777);
    const result = await local.run(retireArgv(path.join(dir, 'g1'), '{"w":"a"}', done, 60), opts);
    expect(result.code).toBe(UNSAFE_PATH_EXIT);
  });
});

describe('WRITE_FILE', () => {
  it('refuses to write into a directory others may write, and leaves nothing there', async () => {
    const g = path.join(dir, 'g1');
    fs.mkdirSync(g);
    fs.chmodSync(g, 0o775);
    const result = await local.run(writeFileArgv(g, path.join(g, 'token')), { ...opts, stdin: 'secret' });
    expect(result.code).toBe(UNSAFE_PATH_EXIT);
    expect(fs.readdirSync(g)).toEqual([]);
  });

  it('writes through a temporary file of an unpredictable name, never through one planted beside it', async () => {
    const g = path.join(dir, 'g1');
    fs.mkdirSync(g, { mode: 0o700 });
    const planted = path.join(dir, 'stolen');
    fs.symlinkSync(planted, path.join(g, 'token.tmp'));
    const result = await local.run(writeFileArgv(g, path.join(g, 'token')), { ...opts, stdin: 'secret' });
    expect(result.code).toBe(0);
    expect(fs.existsSync(planted)).toBe(false);
    expect(fs.readFileSync(path.join(g, 'token'), 'utf8')).toBe('secret');
  });
});

describe('the lease scripts', () => {
  const mountrepo = () => {
    const tool = path.join(dir, 'cvmfsexec', 'mountrepo');
    fs.mkdirSync(path.dirname(tool), { mode: 0o700 });
    fs.writeFileSync(tool, '#!/bin/sh\nexit 0\n', { mode: 0o700 });
    return tool;
  };
  const lease = (root: string, tool: string) =>
    mountLeaseArgv({ root, repo: 'cms.cern.ch', glideinId: 'g1', tool, target: path.join(dir, 'mnt', 'cms.cern.ch') });

  it('make their lease directories private', async () => {
    const root = path.join(dir, 'leases');
    const result = await local.run(lease(root, mountrepo()), opts);
    expect(result.code).toBe(0);
    expect(modeOf(root) & 0o777).toBe(0o700);
  });

  it('refuse a lease root others may write', async () => {
    const root = path.join(dir, 'leases');
    fs.mkdirSync(root);
    fs.chmodSync(root, 0o770);
    const result = await local.run(lease(root, mountrepo()), opts);
    expect(result.code).toBe(UNSAFE_PATH_EXIT);
    expect(result.stderr).toContain(`${root} is writable`);
  });

  it('refuse a mountrepo others may rewrite', async () => {
    const tool = mountrepo();
    fs.chmodSync(tool, 0o777);
    const result = await local.run(lease(path.join(dir, 'leases'), tool), opts);
    expect(result.code).toBe(UNSAFE_PATH_EXIT);
    expect(result.stderr).toContain(`${tool} is writable`);
  });

  it('refuse a port lease root others may write', async () => {
    const root = path.join(dir, 'ports');
    fs.mkdirSync(root);
    fs.chmodSync(root, 0o775);
    const result = await local.run(portLeaseArgv({ root, glideinId: 'g1', first: 40000, last: 40010 }), opts);
    expect(result.code).toBe(UNSAFE_PATH_EXIT);
  });
});

describe("the Slurm job's spool", () => {
  const jobId = () => String(900_000_000 + Math.floor(Math.random() * 99_999_999));

  it("is refused by a step when it is a squatter's: no argv and no stdin are handed over", async () => {
    const id = jobId();
    const spool = `/tmp/jsc-glidein-job-${id}`;
    fs.mkdirSync(spool, { mode: 0o777 });
    fs.chmodSync(spool, 0o777);
    try {
      const { execFileSync } = await import('node:child_process');
      execFileSync('mkfifo', [path.join(spool, 'requests')]);
      const result = await local.run(['sh', '-c', IN_JOB, 'sh', '1', 'cat'], {
        ...opts,
        stdin: 'a credential',
        env: { SLURM_JOB_ID: id },
      });
      expect(result.code).toBe(UNSAFE_PATH_EXIT);
      expect(result.stderr).toContain(`${spool} is writable`);
      expect(fs.readdirSync(spool)).toEqual(['requests']);
    } finally {
      fs.rmSync(spool, { recursive: true, force: true });
    }
  });

  it("makes the supervisor of a job whose spool name was taken fail instead of serving a squatter's", async () => {
    const id = jobId();
    const spool = `/tmp/jsc-glidein-job-${id}`;
    fs.symlinkSync(dir, spool);
    try {
      const result = await local.run(['sh', '-c', SUPERVISOR_SCRIPT], { ...opts, env: { SLURM_JOB_ID: id } });
      expect(result.code).toBe(UNSAFE_PATH_EXIT);
      expect(result.stderr).toContain('is a symbolic link');
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(spool, { force: true });
    }
  });
});

describe('a holder job as Slurm ends it', () => {
  const jobId = () => String(900_000_000 + Math.floor(Math.random() * 99_999_999));
  it.each([
    ['the holder script (ssh access)', HOLDER_SCRIPT],
    ['the supervisor (srun access)', SUPERVISOR_SCRIPT],
  ])('%s removes the pool credential from its directory, worker or no worker', async (_what, script) => {
    const g = path.join(dir, 'g1');
    fs.mkdirSync(path.join(g, 'config', 'tokens.d'), { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(g, 'config', 'tokens.d', 'pool.idtoken'), 'eyJ...', { mode: 0o600 });
    fs.writeFileSync(path.join(g, 'config', 'x509up'), 'proxy', { mode: 0o600 });
    fs.writeFileSync(path.join(g, 'glidein.log'), 'kept');
    // The glidein, still signing its last messages to the pool as the job ends: recorded as SPAWN_DETACHED does.
    const glidein = spawn('sleep', ['300'], { stdio: 'ignore' });
    fs.writeFileSync(path.join(g, 'glidein.pid'), `${glidein.pid} 12345\n`);
    const id = jobId();
    // Its own process group, as a job's processes are Slurm's to end: killed whole after the test.
    const job = spawn('sh', ['-c', script], {
      cwd: g,
      env: { ...process.env, SLURM_JOB_ID: id },
      stdio: ['ignore', 'pipe', 'ignore'],
      detached: true,
    });
    let out = '';
    job.stdout.on('data', (d) => (out += String(d)));
    try {
      // Its trap is set: the supervisor says it is ready after it; the holder starts its sleep after it.
      const trapped = () =>
        script === SUPERVISOR_SCRIPT
          ? out.includes('ready')
          : fs.readFileSync(`/proc/${job.pid}/task/${job.pid}/children`, 'utf8').trim() !== '';
      for (let i = 0; i < 600 && !trapped(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(trapped()).toBe(true);
      job.kill('SIGTERM'); // what Slurm sends at the time limit, at scancel, or as the node is taken back
      await new Promise((r) => job.once('exit', r));
      // The job's end is not delayed; the credential stays while the glidein ends (its ads invalidated with it).
      await new Promise((r) => setTimeout(r, 1000));
      expect(fs.existsSync(path.join(g, 'config', 'x509up'))).toBe(true);
      glidein.kill('SIGKILL');
      // Then it goes: half a second after the glidein, or 4 s after the job's end at the latest.
      for (let i = 0; i < 100 && fs.existsSync(path.join(g, 'config', 'x509up')); i++)
        await new Promise((r) => setTimeout(r, 100));
      expect(fs.readdirSync(path.join(g, 'config', 'tokens.d'))).toEqual([]);
      expect(fs.existsSync(path.join(g, 'config', 'x509up'))).toBe(false);
      expect(fs.readFileSync(path.join(g, 'glidein.log'), 'utf8')).toBe('kept');
    } finally {
      glidein.kill('SIGKILL');
      try {
        process.kill(-job.pid!, 'SIGKILL'); // the holder's sleep, as Slurm would
      } catch {
        // gone already
      }
      fs.rmSync(`/tmp/jsc-glidein-job-${id}`, { recursive: true, force: true });
    }
  });
});

describe('SPAWN_DETACHED', () => {
  it("makes the spawned process's log and pid file private, and the process's umask 077", async () => {
    const log = path.join(dir, 'g.log');
    const pidFile = path.join(dir, 'g.pid');
    const result = await spawnDetached(
      local,
      ['sh', '-c', 'umask > "$0"; exec sleep 300', path.join(dir, 'umask')],
      { log, pidFile, settleMs: 300 },
      opts,
    );
    const child = spawnedProcess(result);
    try {
      expect(child).toBeDefined();
      expect(modeOf(log) & 0o777).toBe(0o600);
      expect(modeOf(pidFile) & 0o777).toBe(0o600);
      expect(fs.readFileSync(path.join(dir, 'umask'), 'utf8').trim()).toBe('0077');
    } finally {
      if (child) process.kill(-child.pid, 'SIGKILL');
    }
  });
});

describe('SET_CONFIG_LINE (the proxy cvmfs asks)', () => {
  const line = "CVMFS_HTTP_PROXY='http://squid:3128'";
  it('writes a private file, under no name left behind, in a private directory', async () => {
    const file = path.join(dir, 'etc', 'cvmfs', 'default.local');
    const result = await local.run(setConfigLineArgv(file, 'CVMFS_HTTP_PROXY', line), opts);
    expect(result.stdout.trim()).toBe('written');
    expect(modeOf(file) & 0o777).toBe(0o600);
    expect(modeOf(path.dirname(file)) & 0o777).toBe(0o700);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['default.local']);
  });

  it.each([
    ['a group-writable directory', (d: string, _f: string) => (fs.mkdirSync(d), fs.chmodSync(d, 0o770)), 'd'],
    [
      'a symbolic link for the file',
      (d: string, f: string) => (fs.mkdirSync(d, { mode: 0o700 }), fs.symlinkSync(path.join(dir, 'elsewhere'), f)),
      'f',
    ],
    [
      'a group-writable file',
      (d: string, f: string) => (
        fs.mkdirSync(d, { mode: 0o700 }),
        fs.writeFileSync(f, 'X=1\n'),
        fs.chmodSync(f, 0o664)
      ),
      'f',
    ],
  ])('refuses %s, naming it, and changes nothing', async (_what, make, named) => {
    const d = path.join(dir, 'etc');
    const f = path.join(d, 'default.local');
    make(d, f);
    const result = await local.run(setConfigLineArgv(f, 'CVMFS_HTTP_PROXY', line), opts);
    expect(result.code).toBe(UNSAFE_PATH_EXIT);
    expect(result.stderr).toContain(`${named === 'd' ? d : f} `);
    expect(fs.existsSync(path.join(dir, 'elsewhere'))).toBe(false);
    if (named === 'f' && !fs.lstatSync(f).isSymbolicLink()) expect(fs.readFileSync(f, 'utf8')).toBe('X=1\n');
  });
});
