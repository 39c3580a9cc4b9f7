/** The operator's read-only tools, on a scripted site: what they refuse, and what they never run. */
import * as path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createSiteToolActivities } from '../../src/activities/operator-checks';
import type { ActivityDeps } from '../../src/activities/deps';
import type { CommandResult, Executor } from '../../src/remote/executor';
import { SiteRegistry } from '../../src/site/load';
import type { LogChunk } from '../../src/common/operator-requests';
import { READ_CLAIM } from '../../src/site/scripts';

const sitesDir = path.join(__dirname, '..', '..', 'sites');

/** An executor that answers `instance list` with `listing` and records every argv it is given. */
function scripted(
  listing: unknown,
  claim = JSON.stringify({ namespace: 'default', workflowId: 'g1' }),
): Executor & { ran: string[][] } {
  const ran: string[][] = [];
  return {
    target: 'scripted',
    ran,
    async run(argv): Promise<CommandResult> {
      ran.push([...argv]);
      if (argv[2] === READ_CLAIM)
        return { code: 0, signal: null, stdout: claim ? `claim ${claim}\n` : 'absent\n', stderr: '' };
      if (argv.includes('list')) return { code: 0, signal: null, stdout: JSON.stringify(listing), stderr: '' };
      return { code: 0, signal: null, stdout: 'log /x 0\n', stderr: '' };
    },
  };
}

function tools(exec: Executor) {
  const deps = { sites: new SiteRegistry(sitesDir), executorsFor: () => ({ login: exec, node: exec }) };
  return createSiteToolActivities(deps as unknown as ActivityDeps);
}

describe('readGlideinLog', () => {
  it.each([
    ['a private key', '/home/glidein/.ssh/id_ed25519'],
    ['a path that climbs out', '/home/glidein/.apptainer/instances/logs/../../../.ssh/id_ed25519.err'],
    ['a relative path', '.apptainer/instances/logs/h/u/x.err'],
  ])('refuses a container log path the site names as %s, and reads nothing', async (_what, logErrPath) => {
    const exec = scripted({ instances: [{ instance: 'glidein-g1', pid: 1, img: '/i.sif', logErrPath }] });
    const read = tools(exec).readGlideinLog;
    await expect(
      new MockActivityEnvironment().run(read, { site: 'local', glideinId: 'g1', which: 'container' as const }),
    ).rejects.toThrow('which is not an instance log');
    expect(exec.ran.map((argv) => argv.join(' ')).filter((l) => l.includes('read-log'))).toEqual([]);
  });

  it.each([
    [{ site: '../etc', glideinId: 'g1', which: 'glidein' }, 'site'],
    [{ site: 'local', glideinId: 'g1; rm -rf ~', which: 'glidein' }, 'glideinId'],
    [{ site: 'local', glideinId: 'g1', which: 'ssh-key' }, 'which'],
    [{ site: 'local', glideinId: 'g1', which: 'glidein', offset: -1 }, 'offset'],
    // A caller never names the node or the job (the worker would srun into any job of the account).
    [{ site: 'local', glideinId: 'g1', which: 'glidein', node: 'jwc01' }, 'node'],
    [{ site: 'local', glideinId: 'g1', which: 'glidein', jobId: '4711' }, 'jobId'],
  ])('refuses %j naming %s, running nothing', async (input, field) => {
    const exec = scripted({});
    await expect(new MockActivityEnvironment().run(tools(exec).readGlideinLog, input as never)).rejects.toThrow(
      new RegExp(`\\b${field}\\b`),
    );
    expect(exec.ran).toEqual([]);
  });

  it.each([
    ['another namespace', { namespace: 'other', workflowId: 'g1' }, 'another namespace'],
    ['another workflow', { namespace: 'default', workflowId: 'someone-else' }, 'another workflow'],
    ['nobody known', { garbage: true }, 'another namespace'],
  ])('refuses a glidein claimed by %s, reading nothing of it', async (_what, claim, says) => {
    const exec = scripted({}, JSON.stringify(claim));
    const err = await new MockActivityEnvironment()
      .run(tools(exec).readGlideinLog, { site: 'local', glideinId: 'g1', which: 'glidein' as const })
      .catch((e: unknown) => e);
    if (!(err instanceof Error)) throw new Error('expected a failure');
    expect(err.message).toContain(`is claimed by ${says}`);
    expect((err as { type?: string }).type).toBe('GlideinIdConflict');
    expect(exec.ran.filter((argv) => argv.includes('read-log'))).toEqual([]);
  });

  it('answers "no log" for a glidein that has no directory on the site, reading nothing', async () => {
    const exec = scripted({}, '');
    const chunk: LogChunk = await new MockActivityEnvironment().run(tools(exec).readGlideinLog, {
      site: 'local',
      glideinId: 'g1',
      which: 'glidein' as const,
    });
    expect(chunk).toMatchObject({ size: 0, text: '' });
    expect(chunk.path).toBeUndefined();
    expect(exec.ran.filter((argv) => argv.includes('read-log'))).toEqual([]);
  });
});
