/**
 * The Slurm-steps node access without Slurm: the holder job's supervisor script runs here for real (as its batch
 * step would, with SLURM_JOB_ID set), and SlurmStepExecutor's commands go through a stand-in `srun` on PATH that
 * checks its options and runs the step's argv as srun would (SLURM_JOB_ID in its environment). What the real srun
 * and a real job do is the box's test (test/box/jsc-box.test.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalExecutor } from '../../src/remote/local';
import type { CommandResult, Executor, RunOptions } from '../../src/remote/executor';
import { SlurmStepExecutor, srunArgv } from '../../src/site/adapters';
import { SUPERVISOR_SCRIPT, NO_SUPERVISOR_EXIT } from '../../src/site/batch/slurm-supervisor';

const JOB = String(900_000_000 + (process.pid % 1_000_000));
let dir: string;
let bin: string;
let supervisor: ChildProcess | undefined;

/** The login node: the local machine, with the stand-in srun first on PATH. */
class Login implements Executor {
  readonly target = 'login (local)';
  readonly seen: string[][] = [];
  private readonly local = new LocalExecutor();
  run(argv: readonly string[], options?: RunOptions): Promise<CommandResult> {
    this.seen.push([...argv]);
    return this.local.run(argv, { ...options, env: { ...options?.env, PATH: `${bin}:${process.env.PATH}` } });
  }
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'supervisor-'));
  bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  // srun --jobid=J --overlap --nodes=1 --ntasks=1 --nodelist=N --quiet -- argv: as a step of job J. A job that is
  // not ours answers as srun does for an unknown job.
  fs.writeFileSync(
    path.join(bin, 'srun'),
    `#!/bin/sh
job=; for a; do case $a in --jobid=*) job=\${a#--jobid=};; --) shift; break;; esac; shift; done
[ "$job" = "${JOB}" ] || { echo "srun: error: Unable to confirm allocation for job $job: Invalid job id ` +
      `specified" >&2; exit 1; }
SLURM_JOB_ID=$job SLURM_STEP_ID=0 exec "$@"
`,
    { mode: 0o755 },
  );
});

afterEach(() => {
  supervisor?.kill('SIGTERM');
  supervisor = undefined;
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Starts the holder's script; resolves once it has said, in a whole line, that it is ready. */
function startSupervisor(): Promise<void> {
  const child = spawn('sh', ['-c', SUPERVISOR_SCRIPT], {
    env: { ...process.env, SLURM_JOB_ID: JOB, HOME: dir },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  supervisor = child;
  return new Promise((resolve, reject) => {
    let out = '';
    const fail = (why: string) => {
      clearTimeout(timer);
      reject(new Error(`the supervisor did not say it is ready: ${why}; it printed ${JSON.stringify(out)}`));
    };
    const timer = setTimeout(() => fail('not within 15 s'), 15_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (!/ ready on \S+\n/.test(out)) return;
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code, signal) => fail(`it exited (${code ?? signal})`));
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('SlurmStepExecutor and the holder job as supervisor', () => {
  it('runs a command as a step: srun with the job, --overlap, the node; stdout, stderr, exit code kept', async () => {
    const login = new Login();
    const node = new SlurmStepExecutor(login, JOB, 'jwc01');
    const result = await node.run(['sh', '-c', 'echo "$SLURM_JOB_ID $1"; echo warn >&2; exit 3', 'sh', "it's"], {
      env: { GREETING: 'x' },
    });
    expect(result).toMatchObject({ code: 3, stdout: `${JOB} it's\n`, stderr: 'warn\n' });
    expect(login.seen[0].slice(0, 8)).toEqual(srunArgv(JOB, 'jwc01', []));
    expect(login.seen[0].slice(8, 10)).toEqual(['env', 'GREETING=x']);
    expect(node.target).toBe(`jwc01 (Slurm job ${JOB}, srun from login (local))`);
  });

  it('hands a persisting command to the supervisor: it outlives the step, and answers as the command did', async () => {
    await startSupervisor();
    const node = new SlurmStepExecutor(new Login(), JOB, 'jwc01');
    const pidFile = path.join(dir, 'daemon.pid');
    const result = await node.run(
      [
        'sh',
        '-c',
        'setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > "$1"; cat; echo err >&2; exit 4',
        'sh',
        pidFile,
      ],
      { persists: true, stdin: 'from stdin\n' },
    );
    expect(result).toMatchObject({ code: 4, stdout: 'from stdin\n', stderr: 'err\n' });
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(alive(pid)).toBe(true);
    // A child of the supervisor (the batch step), not of the step: its environment is the job's, with no step id.
    const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    expect(environ).toContain(`SLURM_JOB_ID=${JOB}`);
    expect(environ.filter((e) => e.startsWith('SLURM_STEP_ID='))).toEqual([]);
    process.kill(pid, 'SIGKILL');
    // Nothing of the request is left in the spool.
    expect(fs.readdirSync(`/tmp/jsc-glidein-job-${JOB}`)).toEqual(['requests']);
  });

  it('many hand-overs at once each get their own answer', async () => {
    await startSupervisor();
    const node = new SlurmStepExecutor(new Login(), JOB, 'jwc01');
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        node.run(['sh', '-c', 'sleep 0.$1; echo $1', 'sh', String(i % 10)], { persists: true }),
      ),
    );
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 12 }, (_, i) => `${i % 10}\n`));
  });

  it('a job without a supervisor answers with exit 75 (retryable) and says so', async () => {
    const node = new SlurmStepExecutor(new Login(), JOB, 'jwc01');
    fs.rmSync(`/tmp/jsc-glidein-job-${JOB}`, { recursive: true, force: true });
    const result = await node.run(['true'], { persists: true, timeoutMs: 60_000 });
    expect(result.code).toBe(NO_SUPERVISOR_EXIT);
    expect(result.stderr).toMatch(new RegExp(`job ${JOB} has no jsc-glidein supervisor`));
  }, 60_000);

  it('a job that has ended is a non-retryable AllocationEnded naming the job and the node', async () => {
    const node = new SlurmStepExecutor(new Login(), '12345', 'jwc01');
    await expect(node.run(['true'])).rejects.toMatchObject({
      type: 'AllocationEnded',
      message: expect.stringMatching(/the Slurm job 12345 holding jwc01 has ended \(Unable to confirm allocation/),
    });
  });
});
