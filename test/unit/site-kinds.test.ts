/**
 * The points of variation as kinds, without a site: the batch system beside node access (src/site/batch/) with
 * Slurm's job states, job ids, node-name variable, its part of `glidein site check` and sbatch's failure rules; node
 * access using it; each tool's failure rules kept by its adapter; the container runtime's instance logs.
 */
import * as path from 'node:path';
import type { CommandResult, Executor } from '../../src/remote/executor';
import type { SshPool, SshTarget } from '../../src/remote/ssh';
import { batchFor, NODE_NAME_VARIABLES, SlurmStepExecutor, type CheckRun } from '../../src/site/batch';
import { MOUNT_LEASE, SUPERVISOR_SCRIPT } from '../../src/site/scripts';
import { nodeAccessFor, NoNodeYet } from '../../src/site/node-access';
import { SiteRegistry } from '../../src/site/load';
import type { SiteProfile } from '../../src/site/profile';
import { FailureType } from '../../src/common/failure-types';
import { adaptersFor, permanentCause, type PermanentCause, type ToolName } from '../../src/site/adapters';

let local: SiteProfile;
let box: SiteProfile;
beforeAll(async () => {
  const sites = new SiteRegistry(path.join(__dirname, '..', '..', 'sites'));
  local = await sites.get('local');
  box = await sites.get('jsc-box');
});

const withAccess = (access: 'ssh' | 'srun'): SiteProfile => {
  const p = structuredClone(box);
  if (p.workerNode.via !== 'slurm') throw new Error('box is a Slurm site');
  p.workerNode.access = access;
  return p;
};

/** A host that answers every command with `stdout` (exit 0), recording what it was asked. */
function answering(target: string, stdout: string): Executor & { seen: string[][] } {
  const seen: string[][] = [];
  return {
    target,
    seen,
    run(argv): Promise<CommandResult> {
      seen.push([...argv]);
      return Promise.resolve({ code: 0, signal: null, stdout, stderr: '' });
    },
  };
}

/** The site check's runner: stdout, or the command's failure as the activity words it. */
const run: CheckRun = async (exec, argv) => (await exec.run(argv)).stdout;

describe('the batch system a profile picks', () => {
  it('is Slurm where a Slurm holder job hands out the node, and none elsewhere', () => {
    expect(batchFor(local)).toBeUndefined();
    expect(nodeAccessFor(local).allocation).toBeUndefined();
    const slurm = batchFor(box)!;
    expect(slurm.name).toBe('Slurm');
    expect(slurm.commands).toEqual({ submit: 'sbatch', queue: 'squeue', cancel: 'scancel' });
    expect(nodeAccessFor(box).allocation?.name).toBe('Slurm');
  });

  it('runs the supervisor as the holder script with srun access, the plain holder with ssh access', () => {
    expect(batchFor(withAccess('srun'))!.holderScript).toBe(SUPERVISOR_SCRIPT);
    expect(batchFor(withAccess('ssh'))!.holderScript).toMatch(/^sleep infinity &$/m);
  });

  it('tells running, holding, active and ending jobs apart', () => {
    const slurm = batchFor(box)!;
    const job = (state: string) => ({ jobId: '1', state, node: 'wn1' });
    const states = ['PENDING', 'RUNNING', 'SUSPENDED', 'COMPLETING', 'CANCELLED'];
    expect(states.map((s) => [slurm.isActive(job(s)), slurm.isRunning(job(s)), slurm.isHolding(job(s))])).toEqual([
      [true, false, false],
      [true, true, true],
      [true, false, true],
      [false, false, false],
      [false, false, false],
    ]);
    expect(states.filter((s) => slurm.isEnding(job(s)))).toEqual(['COMPLETING']);
  });

  it('knows its job ids and the variable that names its node', () => {
    const slurm = batchFor(box)!;
    expect(['123456', '12_3'].map((id) => slurm.isJobId(id))).toEqual([true, true]);
    expect(['', 'x1', '1;rm', '1234567890123'].map((id) => slurm.isJobId(id))).toEqual([false, false, false, false]);
    expect(NODE_NAME_VARIABLES).toEqual(['SLURMD_NODENAME']);
    expect(MOUNT_LEASE).toContain('base=$1/${node:-${SLURMD_NODENAME:-$(uname -n)}}');
  });

  it("keeps sbatch's failure rules: a refused partition is permanent, a timeout is retried", () => {
    const slurm = batchFor(box)!;
    expect(slurm.permanentCause('sbatch: error: invalid partition specified: batchx')).toMatchObject({
      type: FailureType.AllocationRefused,
    });
    expect(slurm.permanentCause('Socket timed out on send/recv operation', 5)).toBeUndefined();
  });

  it('enters the job by srun steps with srun access, and has no node before the job runs', () => {
    const login = answering('login', '');
    const pool = { executor: (_t: SshTarget) => login } as unknown as SshPool;
    const access = nodeAccessFor(withAccess('srun'));
    expect(access.executors(pool).node).toBeInstanceOf(NoNodeYet);
    expect(access.executors(pool, { node: 'jwc01', jobId: '7' }).node).toBeInstanceOf(SlurmStepExecutor);
  });
});

describe("the batch system's part of the site check", () => {
  it('says the partition is up, and how the node is reached', async () => {
    const login = answering('login', 'up 4\n');
    await expect(nodeAccessFor(withAccess('srun')).check({ login, node: login }, run)).resolves.toBe(
      'Slurm partition batch is up (4 nodes), node reached by srun once allocated',
    );
    await expect(nodeAccessFor(withAccess('ssh')).check({ login, node: login }, run)).resolves.toBe(
      'Slurm partition batch is up (4 nodes), node reached by ssh once allocated',
    );
    expect(login.seen[0]).toEqual(['sinfo', '--noheader', '--partition', 'batch', '--format', '%a %D']);
  });

  it('fails on a partition that is down or unknown', async () => {
    const slurm = batchFor(box)!;
    await expect(slurm.checkPartition(answering('login', 'drain 2\n'), run)).rejects.toThrow(
      'partition batch is drain',
    );
    await expect(slurm.checkPartition(answering('login', ''), run)).rejects.toThrow(
      'Slurm knows no partition batch (sinfo printed nothing)',
    );
  });

  it('runs nothing on the login node itself, and `true` on a fixed worker node', async () => {
    const onLogin: SiteProfile = { ...structuredClone(local), workerNode: { via: 'login' } };
    const login = answering('login', '');
    await expect(nodeAccessFor(onLogin).check({ login, node: login }, run)).resolves.toBe(
      'the glidein runs on the login node itself',
    );
    expect(login.seen).toEqual([]);
    const node = answering('wn1', '');
    await expect(nodeAccessFor(local).check({ login, node }, run)).resolves.toBe('ssh wn1');
    expect(node.seen).toEqual([['true']]);
  });
});

describe("each tool's failure rules, kept by its adapter", () => {
  it('answers through the adapter as through the catalogue, fromAttempt kept', () => {
    const adapters = adaptersFor(box);
    const catalogue: Array<[ToolName, PermanentCause, string]> = [
      ['sbatch', adapters.batch!.permanentCause, 'sbatch: error: invalid account'],
      ['mountrepo', adapters.cvmfs.permanentCause, 'Repository nosuch.example.org not found'],
      ['instanceStart', adapters.container.permanentCause, 'FATAL: could not open image /x.sif'],
      ['glideinStart', adapters.condor.permanentCause, 'exec: "x": executable file not found in $PATH'],
      ['tunnelSsh', adapters.tunnel.permanentCause, 'Host key verification failed.'],
    ];
    for (const [tool, cause, output] of catalogue)
      for (const attempt of [1, 2, 3]) expect(cause(output, attempt)).toBe(permanentCause(tool, output, attempt));
    expect(adapters.cvmfs.permanentCause('Repository nosuch.example.org not found', 2)).toBeUndefined();
    expect(adapters.cvmfs.permanentCause('Repository nosuch.example.org not found', 3)).toBeDefined();
  });

  it("reads only the container runtime's own instance logs", () => {
    const { container } = adaptersFor(box);
    expect(container.isInstanceLog('/home/g/.apptainer/instances/logs/wn1/g/glidein-x.err')).toBe(true);
    expect(container.isInstanceLog('/home/g/.singularity/instances/logs/wn1/g/glidein-x.err')).toBe(true);
    expect(container.isInstanceLog('/home/g/.apptainer/instances/logs/../../../.ssh/id.err')).toBe(false);
    expect(container.isInstanceLog('/etc/shadow')).toBe(false);
  });
});
