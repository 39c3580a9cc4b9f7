/**
 * The fake site itself: an argv it does not know fails loudly (never a silent success), and what it prints is read
 * by the activities' own parsers.
 */
import { ApplicationFailure } from '@temporalio/common';
import { parseInspect, parseSpawn } from '../../src/site/scripts';
import { EMPTY_FOOTPRINT, FAKE_SITE_DIR, fakeProfile, fakeSiteFor } from '../../sandbox/fake-site';
import { SH_SCRIPTS } from '../../sandbox/fake-site/scripts';

const site = () => fakeSiteFor({ ...fakeProfile(), name: 'fake' });
const dir = `${FAKE_SITE_DIR}/site/work/g1`;

describe('the fake site', () => {
  it.each([
    [['rm', '-rf', '/']],
    [['sh', '-c', 'echo hi', 'sh']],
    [['sh', '-c', `${SH_SCRIPTS.INSPECT_PROCESSES} `, 'sh']],
    [['squeue']],
    [['mkdir', dir]],
  ])('refuses %j loudly, non-retryably, and remembers it', async (argv) => {
    const fake = site();
    const err = await fake.run('worker', argv).catch((e) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err.nonRetryable).toBe(true);
    expect(err.type).toBe('FakeSiteUnknownCommand');
    expect(fake.unknown).toHaveLength(1);
  });

  it('spawns, inspects and signals in the scripts own formats', async () => {
    const fake = site();
    const sh = (script: keyof typeof SH_SCRIPTS, ...args: string[]) =>
      fake.run('worker', ['sh', '-c', SH_SCRIPTS[script], 'sh', ...args]);
    expect((await sh('CLAIM_GLIDEIN', dir, '{"w":1}', 'claim')).stdout).toBe('ours\n');
    expect((await sh('CLAIM_GLIDEIN', dir, '{"w":2}', 'verify')).stdout).toBe('theirs {"w":1}\n');
    const tunnel = ['ssh', '-N', '-D', '127.0.0.1:1080', '-o', 'BatchMode=yes', '--', '127.0.0.1'];
    const spawned = parseSpawn(
      (await sh('SPAWN_DETACHED', `${dir}/t.log`, `${dir}/t.pid`, '', '0', '0', '', ...tunnel)).stdout,
    );
    expect(spawned).toEqual({ started: { pid: expect.any(Number), startTime: expect.any(String) } });
    const snap = parseInspect((await sh('INSPECT_PROCESSES', `${dir}/t.pid`)).stdout);
    expect(snap.processes.get(`${dir}/t.pid`)).toMatchObject({ alive: true, cmdline: tunnel.join(' ') });
    expect(snap.listening.has(1080)).toBe(true);
    expect((await sh('SIGNAL_RECORDED', 'TERM', `${dir}/t.pid`, '5')).stdout).toMatch(/^ended \d+\n$/);
    expect((await sh('SIGNAL_RECORDED', 'TERM', `${dir}/t.pid`)).stdout).toBe('gone\n');
    expect(parseInspect((await sh('INSPECT_PROCESSES', `${dir}/t.pid`)).stdout).listening.has(1080)).toBe(false);
    expect((await sh('RETIRE_GLIDEIN', dir, '{"w":1}', `${FAKE_SITE_DIR}/site/work/.done`, '60')).stdout).toMatch(
      /^moved .*\/\.done\/g1\.\d+\n$/,
    );
    expect(fake.footprint(`${FAKE_SITE_DIR}/site/work`)).toEqual(EMPTY_FOOTPRINT);
    expect(fake.unknown).toEqual([]);
  });
});
