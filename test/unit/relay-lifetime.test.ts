/**
 * The relay's end, without a site: the tunnel adapter's argv with and without the glidein's die time (histories from
 * before it pass none), when a relay started now ends, and openTunnel's refusal of a die time that is not one.
 */
import * as path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { ActivityDeps } from '../../src/activities/deps';
import { createTunnelActivities } from '../../src/activities/tunnel';
import type { CommandResult, Executor } from '../../src/remote/executor';
import { adaptersFor, relayEnd } from '../../src/site/adapters';
import { SiteRegistry } from '../../src/site/load';
import { pathsFor } from '../../src/site/paths';
import type { SiteProfile } from '../../src/site/profile';
import { CLAIM_GLIDEIN } from '../../src/site/scripts/ownership';
import { PORT_LEASE } from '../../src/site/scripts/ports';
import { RELAY_MARKER, RELAY_PY } from '../../src/site/scripts/relay';

const sites = new SiteRegistry(path.join(__dirname, '..', '..', 'sites'));
let strict: SiteProfile;
beforeAll(async () => {
  strict = await sites.get('jsc-box-strict');
});

/** A relay site that claims, leases port 1110, finds nothing running, and starts what it is asked to; records all. */
function scripted(): Executor & { ran: string[][] } {
  const ran: string[][] = [];
  const answer = (stdout: string): CommandResult => ({ code: 0, signal: null, stdout, stderr: '' });
  return {
    target: 'scripted',
    ran,
    async run(argv): Promise<CommandResult> {
      ran.push([...argv]);
      if (argv[2] === CLAIM_GLIDEIN) return answer('ours\n');
      if (argv[2] === PORT_LEASE) return answer('leased 1110\n');
      if (argv.includes(RELAY_MARKER)) return answer('started 4242 99\n');
      return answer('');
    },
  };
}

function openTunnel(exec: Executor) {
  const deps = { sites, executorsFor: () => ({ login: exec, node: exec }) } as unknown as ActivityDeps;
  return createTunnelActivities(deps).openTunnel;
}

const ref = { site: 'jsc-box-strict', glideinId: 'g1', node: 'wn1', jobId: '42' };

describe('the relay’s end', () => {
  it('is in the relay’s argv when the glidein’s die time is known, and absent otherwise', () => {
    const { tunnel } = adaptersFor(strict);
    const paths = pathsFor(strict, 'g1');
    expect(tunnel.argv(1110, 'wn1', paths, 1_900_000_060)).toEqual([
      'python3',
      paths.relayProgram,
      RELAY_MARKER,
      '10.77.0.2',
      '1110',
      paths.relaySecret,
      '--die-at',
      '1900000060',
      '10.77.0.3:80',
    ]);
    expect(tunnel.argv(1110, 'wn1', paths)).not.toContain('--die-at');
    // The program written to the site is the one that reads the option.
    expect(tunnel.files!(paths)).toEqual([{ path: paths.relayProgram, content: RELAY_PY }]);
    expect(RELAY_PY).toContain("'--die-at'");
  });

  it('is a minute after the glidein’s die time, and never sooner than ten minutes after the start', () => {
    expect(relayEnd(1_900_000_000, 1_800_000_000_000)).toBe(1_900_000_060);
    // Setup still under way past the glidein's die time (a long queue wait) keeps its chain a while.
    expect(relayEnd(1_900_000_000, 1_900_000_000_000)).toBe(1_900_000_600);
    expect(relayEnd(1_900_000_000, 1_900_001_000_001)).toBe(1_900_001_601);
  });

  it('reaches the relay started by openTunnel: --die-at as relayEnd makes it, none without a die time', async () => {
    const dieAt = Math.floor(Date.now() / 1000) + 3_600;
    const spawned = async (lifetime?: { dieAt?: number }) => {
      const exec = scripted();
      const info = await new MockActivityEnvironment().run(openTunnel(exec), ref, lifetime);
      expect(info).toEqual({ socksPort: 1110, process: { pid: 4242, startTime: '99' }, reused: false });
      return exec.ran.find((argv) => argv.includes(RELAY_MARKER))!;
    };
    const withEnd = await spawned({ dieAt });
    expect(withEnd.slice(withEnd.indexOf('--die-at'), withEnd.indexOf('--die-at') + 2)).toEqual([
      '--die-at',
      String(dieAt + 60),
    ]);
    expect(await spawned()).not.toContain('--die-at');
    expect(await spawned({})).not.toContain('--die-at');
  });

  it.each([
    [{ dieAt: '1900000000' }, 'dieAt'],
    [{ dieAt: 1.5 }, 'dieAt'],
    [{ dieAt: -1 }, 'dieAt'],
    [{ dieAt: 2 ** 40 }, 'dieAt'],
    [{ dieAt: null }, 'dieAt'],
    ['tomorrow', 'lifetime'],
    [[1_900_000_000], 'lifetime'],
  ])('openTunnel refuses %j, naming %s, before any command runs', async (lifetime, field) => {
    const exec = scripted();
    await expect(new MockActivityEnvironment().run(openTunnel(exec), ref, lifetime as never)).rejects.toMatchObject({
      type: 'InvalidRequest',
      nonRetryable: true,
      message: expect.stringMatching(new RegExp(`\\b${field}\\b`)),
    });
    expect(exec.ran).toEqual([]);
  });
});
