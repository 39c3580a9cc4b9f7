import { MockActivityEnvironment } from '@temporalio/testing';
import { SharedLookup } from '../../src/activities/shared-lookup';
import { registrationCheck as checkInActivity } from '../../src/activities/monitor';
import { adaptersFor, parseLaunchedAds } from '../../src/site/adapters';
import type { SiteAccess } from '../../src/activities/site-access';
import type { Registration } from '../../src/common/types';
import type { CommandResult, Executor, RunOptions } from '../../src/remote/executor';
import type { SiteProfile } from '../../src/site/profile';

/** A query we resolve or reject by hand, counting its calls. */
function manual<V>() {
  const pending: Array<{ resolve: (v: V) => void; reject: (e: Error) => void }> = [];
  const query = jest.fn(() => new Promise<V>((resolve, reject) => pending.push({ resolve, reject })));
  return { query, pending };
}

const tick = () => new Promise((r) => setImmediate(r));

/** A registration check as a monitor activity runs it: in an activity context (it heartbeats while it waits). */
const registrationCheck = (...args: Parameters<typeof checkInActivity>): ReturnType<typeof checkInActivity> =>
  new MockActivityEnvironment().run(() => checkInActivity(...args));

describe('SharedLookup', () => {
  let now = 1_000_000;
  const clock = () => now;

  it('concurrent callers share one query in flight', async () => {
    const lookup = new SharedLookup<string>(clock);
    const { query, pending } = manual<string>();
    const a = lookup.get('site', 500, query);
    const b = lookup.get('site', 500, query);
    const c = lookup.get('site', 500, query);
    await tick();
    expect(query).toHaveBeenCalledTimes(1);
    pending[0].resolve('ads');
    expect(await Promise.all([a, b, c])).toEqual([
      { value: 'ads', shared: false },
      { value: 'ads', shared: true },
      { value: 'ads', shared: true },
    ]);
  });

  it("reuses an answer within the caller's freshness window (from the query's start), then asks again", async () => {
    const lookup = new SharedLookup<string>(clock);
    const { query, pending } = manual<string>();
    const first = lookup.get('site', 500, query);
    await tick();
    now += 200; // the query takes 200 ms
    pending[0].resolve('one');
    await first;
    now += 300; // 500 ms after the start: still fresh for a 500 ms window
    expect(await lookup.get('site', 500, query)).toEqual({ value: 'one', shared: true });
    expect(await lookup.get('site', 1_000, query)).toEqual({ value: 'one', shared: true });
    now += 1;
    const second = lookup.get('site', 500, query); // too old for this caller
    await tick();
    expect(query).toHaveBeenCalledTimes(2);
    pending[1].resolve('two');
    expect(await second).toEqual({ value: 'two', shared: false });
  });

  it('keeps sites apart', async () => {
    const lookup = new SharedLookup<string>(clock);
    const q1 = jest.fn(async () => 'a');
    const q2 = jest.fn(async () => 'b');
    expect((await lookup.get('site-a 127.0.0.4:9618', 500, q1)).value).toBe('a');
    expect((await lookup.get('site-b 127.0.0.4:9618', 500, q2)).value).toBe('b');
    expect((await lookup.get('site-a 127.0.0.4:9618', 500, q2)).value).toBe('a');
    expect(q1).toHaveBeenCalledTimes(1);
    expect(q2).toHaveBeenCalledTimes(1);
  });

  it('a failed query fails everyone who shared it, and is forgotten: the next caller asks again', async () => {
    const lookup = new SharedLookup<string>(clock);
    const { query, pending } = manual<string>();
    const a = lookup.get('site', 500, query);
    const b = lookup.get('site', 500, query);
    await tick();
    pending[0].reject(new Error('tunnel down'));
    await expect(a).rejects.toThrow('tunnel down');
    await expect(b).rejects.toThrow('tunnel down');
    const c = lookup.get('site', 500, query);
    await tick();
    expect(query).toHaveBeenCalledTimes(2);
    pending[1].resolve('ok');
    expect(await c).toEqual({ value: 'ok', shared: false });
  });

  it('a query that throws at once is a failure like any other', async () => {
    const lookup = new SharedLookup<string>(clock);
    await expect(
      lookup.get('site', 500, () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect((await lookup.get('site', 500, async () => 'fine')).value).toBe('fine');
  });

  it('a caller that gives up (its signal) stops waiting; the others still get the answer', async () => {
    const lookup = new SharedLookup<string>(clock);
    const { query, pending } = manual<string>();
    const controller = new AbortController();
    const a = lookup.get('site', 500, query);
    const b = lookup.get('site', 500, query, controller.signal);
    controller.abort(new Error('cancelled'));
    await expect(b).rejects.toThrow('cancelled');
    pending[0].resolve('ads');
    expect(await a).toEqual({ value: 'ads', shared: false });
  });
});

describe('collector-wide registration check', () => {
  const profile = {
    name: 'local',
    collector: { host: '127.0.0.4', port: 9618 },
    container: { runtime: 'apptainer', executable: 'apptainer' },
    glidein: { statusCommand: ['condor_status'] },
    proxychains: { library: '/lib/libproxychains.so.4', localnet: [] },
  } as unknown as SiteProfile;

  const collectorStatusArgv = (p: SiteProfile, instance: string) => adaptersFor(p).condor.collectorStatusArgv(instance);

  it('asks the collector for every glidein we launched, with its launch id', () => {
    expect(collectorStatusArgv(profile, 'glidein-a')).toEqual([
      'apptainer',
      'exec',
      '--cleanenv',
      'instance://glidein-a',
      'condor_status',
      '-pool',
      '127.0.0.4:9618',
      '-constraint',
      'GlideinLaunchId =!= undefined',
      '-af',
      'GlideinLaunchId',
      'Name',
      'State',
      'Activity',
    ]);
  });

  it('reads the ads by launch id, skipping proxychains lines and ads without one', () => {
    const ads = parseLaunchedAds(
      '[proxychains] Strict chain ... OK\na slot1@a@h Unclaimed Idle\nundefined slot1@x@h Owner Idle\nb ' +
        'slot1@b@h Claimed Busy\n\n',
    );
    expect([...ads.entries()]).toEqual([
      ['a', { name: 'slot1@a@h', state: 'Unclaimed', activity: 'Idle' }],
      ['b', { name: 'slot1@b@h', state: 'Claimed', activity: 'Busy' }],
    ]);
  });

  /** A SiteAccess whose node answers condor_status: the collector-wide query and the glidein's own. */
  function accessFor(
    glideinId: string,
    answer: (argv: readonly string[]) => CommandResult,
    calls: string[],
  ): SiteAccess {
    const node: Executor = {
      target: `node of ${glideinId}`,
      async run(argv: readonly string[], _opts?: RunOptions) {
        calls.push(`${glideinId}:${argv.includes('GlideinLaunchId') ? 'site' : 'own'}`);
        await tick();
        return answer(argv);
      },
    };
    return {
      login: node,
      node,
      ref: { site: 'local', glideinId },
      profile,
      adapters: adaptersFor(profile),
      paths: { proxychainsConf: `/w/${glideinId}/proxychains.conf` },
      instance: `glidein-${glideinId}`,
      opts: (extra = {}) => ({ timeoutMs: 60_000, ...extra }),
    } as unknown as SiteAccess;
  }
  const ok = (stdout: string): CommandResult => ({ code: 0, signal: null, stdout, stderr: '' });
  const down: CommandResult = {
    code: 1,
    signal: null,
    stdout: '',
    stderr: 'Error: communication error\nCEDAR:6001:Failed to connect to <127.0.0.4:9618>',
  };
  const siteAds = 'a slot1@a@h Unclaimed Idle\nb slot1@b@h Claimed Busy\nc slot1@c@h Unclaimed Idle\n';
  const own = (argv: readonly string[]) => {
    const id = /GlideinLaunchId == "(.*)"/.exec(argv[argv.indexOf('-constraint') + 1])![1];
    return ok(`slot1@${id}@h Unclaimed Idle\n`);
  };

  it('three glideins checking at once cost one condor_status, each finds its own ad', async () => {
    const calls: string[] = [];
    const lookup = new SharedLookup<Map<string, Registration>>();
    const answer = (argv: readonly string[]) => (argv.includes('GlideinLaunchId') ? ok(siteAds) : own(argv));
    const checks = await Promise.all(
      ['a', 'b', 'c'].map((id) => registrationCheck(lookup, accessFor(id, answer, calls), 60_000, () => undefined)),
    );
    expect(calls).toEqual(['a:site']);
    expect(checks.map((c) => c.registered)).toEqual([
      { name: 'slot1@a@h', state: 'Unclaimed', activity: 'Idle' },
      { name: 'slot1@b@h', state: 'Claimed', activity: 'Busy' },
      { name: 'slot1@c@h', state: 'Unclaimed', activity: 'Idle' },
    ]);
  });

  it("if the shared query fails in one glidein's container, each asks alone; only the broken one misses", async () => {
    const calls: string[] = [];
    const lookup = new SharedLookup<Map<string, Registration>>();
    const broken = () => down; // glidein a's chain is down: nothing it runs reaches the collector
    const healthy = (argv: readonly string[]) => (argv.includes('GlideinLaunchId') ? ok(siteAds) : own(argv));
    const checks = await Promise.all([
      registrationCheck(lookup, accessFor('a', broken, calls), 60_000, () => undefined),
      registrationCheck(lookup, accessFor('b', healthy, calls), 60_000, () => undefined),
      registrationCheck(lookup, accessFor('c', healthy, calls), 60_000, () => undefined),
    ]);
    expect(calls.sort()).toEqual(['a:own', 'a:site', 'b:own', 'c:own']);
    expect(checks[0]).toEqual({ registered: undefined, error: expect.stringContaining('condor_status exited with 1') });
    expect(checks[1].registered?.name).toBe('slot1@b@h');
    expect(checks[2].registered?.name).toBe('slot1@c@h');
  });

  it('a glidein missing from the shared answer asks for itself before it counts as a miss', async () => {
    const calls: string[] = [];
    const lookup = new SharedLookup<Map<string, Registration>>();
    const answer = (argv: readonly string[]) =>
      argv.includes('GlideinLaunchId') ? ok('a slot1@a@h Unclaimed Idle\n') : ok('');
    const [a, d] = await Promise.all([
      registrationCheck(lookup, accessFor('a', answer, calls), 60_000, () => undefined),
      registrationCheck(lookup, accessFor('d', answer, calls), 60_000, () => undefined),
    ]);
    expect(a.registered?.name).toBe('slot1@a@h');
    expect(d).toEqual({ registered: undefined });
    expect(calls).toEqual(['a:site', 'd:own']);
  });
});
