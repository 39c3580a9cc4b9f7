/**
 * The site adapters a profile picks, without a site: which hosts keep part of a glidein's directory, where the
 * tunnel runs and which sshd gates its start, what each container runtime and Slurm command looks like.
 */
import { pathsFor } from '../../src/site/paths';
import * as path from 'node:path';
import type { CommandResult, Executor } from '../../src/remote/executor';
import type { SshPool, SshTarget } from '../../src/remote/ssh';
import {
  adaptersFor,
  NoNodeYet,
  parseSlurmTime,
  parseSqueue,
  parseSqueueAll,
  slurmTime,
} from '../../src/site/adapters';
import { SiteRegistry } from '../../src/site/load';
import { type SiteProfile } from '../../src/site/profile';
import { planFor } from '../../src/site/plan';

let local: SiteProfile;
let box: SiteProfile;
beforeAll(async () => {
  const sites = new SiteRegistry(path.join(__dirname, '..', '..', 'sites'));
  local = await sites.get('local');
  box = await sites.get('jsc-box');
});

const reverseTunnel = {
  mode: 'reverse' as const,
  socksPort: 1080,
  knownHostsFile: '/site/known_hosts',
  serverAliveInterval: '15s',
  startsInFlight: 3,
};

/** An SSH pool that hands out executors naming their target, and runs nothing. */
function fakePool(): SshPool & { targets: SshTarget[] } {
  const targets: SshTarget[] = [];
  return {
    targets,
    executor(target: SshTarget): Executor {
      targets.push(target);
      return {
        target: `${target.user}@${target.host}:${target.port}${target.jump ? ` via ${target.jump.host}` : ''}`,
        run: (): Promise<CommandResult> => Promise.reject(new Error('not here')),
      };
    },
  } as unknown as SshPool & { targets: SshTarget[] };
}

describe('node access', () => {
  it('reaches a jump-host node through the login node, and keeps the directory on the node only', () => {
    const a = adaptersFor(local);
    const ex = a.nodeAccess.executors(fakePool());
    expect(ex.node.target).toBe('glidein@127.0.0.2:2202 via 127.0.0.1');
    expect(a.directoryHosts(ex, true)).toEqual([ex.node]);
    expect(a.nodeAccess.allocation).toBeUndefined();
  });

  it('has no node before Slurm hands one out, and keeps part of the directory on the login node', async () => {
    const a = adaptersFor(box);
    const pool = fakePool();
    const before = a.nodeAccess.executors(pool);
    expect(before.node).toBeInstanceOf(NoNodeYet);
    await expect(before.node.run(['true'])).rejects.toMatchObject({ type: 'NoNodeAllocated' });
    expect(a.directoryHosts(before, false)).toEqual([before.login]);
    const after = a.nodeAccess.executors(pool, { node: 'wn042', jobId: '42' });
    expect(after.node.target).toBe('glidein@wn042:22 via 10.77.0.2');
    expect(a.directoryHosts(after, true)).toEqual([after.node, after.login]);
    expect(a.nodeAccess.nodeAddress('wn042')).toEqual({ host: 'wn042', port: 22, user: 'glidein' });
  });

  it('runs everything on the login node when the profile says so', () => {
    const onLogin = { ...local, workerNode: { via: 'login' as const } };
    const a = adaptersFor(onLogin);
    const ex = a.nodeAccess.executors(fakePool());
    expect(ex.node).toBe(ex.login);
    expect(a.directoryHosts(ex, true)).toEqual([ex.node]);
    expect(a.nodeAccess.nodeAddress()).toBeUndefined();
  });
});

describe('tunnel shape', () => {
  it('runs a forward tunnel on the worker node towards the login node', () => {
    const { tunnel } = adaptersFor(local);
    const ex = { login: { target: 'login' }, node: { target: 'node' } } as unknown as {
      login: Executor;
      node: Executor;
    };
    expect(tunnel.host(ex)).toBe(ex.node);
    expect(tunnel.server()).toBe('127.0.0.1:2201');
    expect(tunnel.forwardAgent).toBe(false);
    expect(tunnel.ready).toBeUndefined();
    expect(tunnel.route(ex)).toBe('node to 127.0.0.1');
  });

  it('runs a reverse tunnel on the login node into the node, with our agent, until ssh says the forward is up', () => {
    const a = adaptersFor({ ...box, tunnel: reverseTunnel });
    const ex = { login: { target: 'login' }, node: { target: 'node' } } as unknown as {
      login: Executor;
      node: Executor;
    };
    expect(a.tunnel.host(ex)).toBe(ex.login);
    expect(a.tunnel.server('wn042')).toBe('wn042:22');
    expect(a.tunnel.forwardAgent).toBe(true);
    expect(a.tunnel.ready).toEqual({ marker: 'remote forward success', seconds: 20 });
    expect(a.tunnel.route(ex)).toBe('login into node');
    expect(a.tunnel.argv(1080, 'wn042', pathsFor(local, 'g')).slice(-2)).toEqual(['--', 'wn042']);
    expect(() => a.tunnel.argv(1080, undefined, pathsFor(local, 'g'))).toThrow('needs a worker node');
    // Its pid file and log are on the login node: that keeps part of the directory even off Slurm.
    const jump = adaptersFor({ ...local, tunnel: reverseTunnel });
    const jex = jump.nodeAccess.executors(fakePool());
    expect(jump.directoryHosts(jex, true)).toEqual([jex.node, jex.login]);
  });
});

describe('container runtime', () => {
  it('sets variables inside an apptainer or a singularity container by its own prefix', () => {
    const apptainer = adaptersFor(local).container;
    expect(apptainer.env({ LD_PRELOAD: '/l.so' })).toEqual({ APPTAINERENV_LD_PRELOAD: '/l.so' });
    const singularity = adaptersFor({
      ...local,
      container: { ...local.container, runtime: 'singularity', executable: undefined },
    }).container;
    expect(singularity.env({ LD_PRELOAD: '/l.so' })).toEqual({ SINGULARITYENV_LD_PRELOAD: '/l.so' });
    expect(singularity.listArgv('glidein-x')).toEqual(['singularity', 'instance', 'list', '--json', 'glidein-x']);
    expect(singularity.stopArgv('glidein-x')).toEqual(['singularity', 'instance', 'stop', 'glidein-x']);
    expect(singularity.execArgv('glidein-x', ['id'])).toEqual([
      'singularity',
      'exec',
      '--cleanenv',
      'instance://glidein-x',
      'id',
    ]);
    expect(singularity.startArgv('glidein-x', ['/a:/a:ro'], '/w/s')).toEqual([
      'singularity',
      'instance',
      'start',
      '--contain',
      '--no-home',
      '--pid',
      '--ipc',
      '--cleanenv',
      '--workdir',
      '/w/s',
      '--bind',
      '/a:/a:ro',
      local.container.image,
      'glidein-x',
    ]);
  });

  it('finds the instance of that name in instance list --json, and refuses an answer that is not JSON', () => {
    const { container } = adaptersFor(local);
    const listing = JSON.stringify({
      instances: [
        { instance: 'glidein-y', pid: 7, img: '/i.sif' },
        { instance: 'glidein-x', pid: 8, img: '/i.sif' },
      ],
    });
    expect(container.parseList(listing, 'glidein-x')).toEqual({ instance: 'glidein-x', pid: 8, img: '/i.sif' });
    expect(container.parseList('', 'glidein-x')).toBeUndefined();
    expect(() => container.parseList('FATAL: no', 'glidein-x')).toThrow('not JSON');
  });
});

describe('Slurm', () => {
  it('submits a holder job named after the glidein, in its directory', () => {
    const slurm = adaptersFor(box).nodeAccess.allocation!;
    expect(slurm.submitArgv('g1')).toEqual([
      'sbatch',
      '--parsable',
      '--job-name=g1',
      '--partition=batch',
      '--account=cms',
      '--time=02:00:00',
      '--nodes=1',
      '--ntasks=1',
      '--chdir=/tmp/glidein-jsc-box/site/work/g1',
      '--output=/tmp/glidein-jsc-box/site/work/g1/slurm-%j.out',
    ]);
    // The walltime the glidein's life needs, within the profile's timeLimit (2 h here).
    expect(slurm.submitArgv('g1', 1_800_500)).toContain('--time=00:30:00');
    expect(slurm.submitArgv('g1', 30 * 3_600_000)).toContain('--time=02:00:00');
    expect(slurm.holderScript).toMatch(/^sleep infinity &\nwait$/m);
    // As Slurm ends it: the credential goes once the glidein (its pid file's process) has ended, or after 4 s.
    expect(slurm.holderScript).toContain(
      `trap '(trap "" TERM INT HUP; i=0; while [ $i -lt 20 ] && read -r p _ 2>/dev/null <`,
    );
    expect(slurm.holderScript).toContain('sleep 0.5; rm -f -- config/tokens.d/pool.idtoken config/x509up');
    expect(slurm.cancelArgv(['12', '13'])).toEqual(['scancel', '12', '13']);
    expect(planFor(box, 'g1', undefined).slurm).toEqual({ timeLimitMs: 7_200_000, queueTimeoutMs: 3_600_000 });
    expect(planFor(local, 'g1', undefined).slurm).toBeUndefined();
  });

  it('reads squeue: jobs, their node and time left, active or not', () => {
    const slurm = adaptersFor(box).nodeAccess.allocation!;
    const jobs = parseSqueue('12|RUNNING|wn042|1-02:03:04\n13|COMPLETING|wn043|0:05\nsqueue: error\n\n');
    expect(jobs).toEqual([
      { jobId: '12', state: 'RUNNING', node: 'wn042', timeLeftMs: ((26 * 60 + 3) * 60 + 4) * 1000 },
      { jobId: '13', state: 'COMPLETING', node: 'wn043', timeLeftMs: 5000 },
    ]);
    expect(jobs.map((j) => slurm.isActive(j))).toEqual([true, false]);
    expect(parseSlurmTime('UNLIMITED')).toBeUndefined();
    expect(slurmTime(90_061_000)).toBe('1-01:01:01');
    expect(slurmTime(1_000)).toBe('00:01:00');
  });

  it('reads the whole queue in one look, by job name (a name may hold "|")', () => {
    const slurm = adaptersFor(box).nodeAccess.allocation!;
    expect(slurm.queueAllArgv()).toEqual(['squeue', '--me', '--noheader', '--format=%i|%T|%N|%L|%j']);
    const byName = parseSqueueAll(
      '12|RUNNING|wn042|10:00|g1\n13|PENDING||INVALID|a|b\n14|COMPLETING|wn042|0:05|g1\njunk\n',
    );
    expect([...byName.keys()]).toEqual(['g1', 'a|b']);
    expect(byName.get('g1')).toEqual([
      { jobId: '12', state: 'RUNNING', node: 'wn042', timeLeftMs: 600_000 },
      { jobId: '14', state: 'COMPLETING', node: 'wn042', timeLeftMs: 5_000 },
    ]);
    expect(byName.get('a|b')).toEqual([{ jobId: '13', state: 'PENDING', node: '', timeLeftMs: undefined }]);
  });

  it('asks for a share of a node only when the profile says so', () => {
    const shared = structuredClone(box);
    if (shared.workerNode.via !== 'slurm') throw new Error('box is a Slurm site');
    shared.workerNode.memory = '256M';
    shared.workerNode.cpusPerTask = 1;
    const argv = adaptersFor(shared).nodeAccess.allocation!.submitArgv('g1');
    expect(argv).toEqual(expect.arrayContaining(['--mem=256M', '--cpus-per-task=1']));
    expect(
      adaptersFor(box)
        .nodeAccess.allocation!.submitArgv('g1')
        .some((a) => a.startsWith('--mem')),
    ).toBe(false);
  });
});
