/**
 * How a monitored glidein's lifecycle ends on the fake site: its lifetime, the glidein ending by itself (cleanly,
 * or killed and left in the collector as a ghost), the tunnel dropping (repaired, or too often), the ad lost.
 */
import '../support/fake-site-runtime';
import { WorkflowFailedError } from '@temporalio/client';
import { drainSignal, statusQuery, stopSignal } from '../../src/workflows/messages';
import { EMPTY_FOOTPRINT, FAKE_SITE_DIR, fakeProfile } from '../../sandbox/fake-site';
import {
  FAKE_SETUP as SETUP,
  FAKE_TEARDOWN as TEARDOWN,
  stepsOf,
  waitFor,
  waitForPhase,
} from '../support/workflow-harness';
import { glideinIdFor, useFakeSiteServer } from '../support/fake-site-harness';
import { leaked, makeJwt, makePassword } from '../support/corpus/secrets';
import { historyText } from '../support/secrets';

const { withFakeSite } = useFakeSiteServer();
const WORK_DIR = `${FAKE_SITE_DIR}/site/work`;
const count = (steps: string[], step: string) => steps.filter((s) => s === step).length;

describe('LaunchGlidein while monitoring, on the fake site', () => {
  it('drains at the end of its lifetime', async () => {
    const id = glideinIdFor('lifetime');
    await withFakeSite(fakeProfile(), async ({ site, name, start }) => {
      const handle = await start(id, { site: name, lifetime: '10s' });
      const result = await handle.result();
      expect(result.endReason).toBe('lifetime');
      expect(stepsOf(result)).toEqual([...SETUP, ...TEARDOWN]);
      expect(result.steps.find((s) => s.step === 'stopGlidein')?.detail).toMatch(/graceful shutdown, SIGTERM/);
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  }, 30_000);

  it('ends normally when the glidein exits by itself, and tears down the rest', async () => {
    const id = glideinIdFor('exited');
    await withFakeSite(fakeProfile(), async ({ site, start }) => {
      const handle = await start(id);
      await waitForPhase(handle, 'monitoring');
      site.exitGlidein(id);
      const result = await handle.result();
      expect(result.endReason).toMatch(/^glidein exited: the glidein process ended: .*exiting$/s);
      expect(result.steps.find((s) => s.step === 'stopGlidein')?.detail).toBe('no glidein running');
      expect((await handle.query(statusQuery)).ghost).toBeUndefined();
      expect(site.adNames()).toEqual([]);
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });

  it('keeps the secrets a glidein prints to its log out of the result, status, memo and history', async () => {
    const id = glideinIdFor('secret-log');
    const jwt = makeJwt();
    const password = makePassword();
    await withFakeSite(fakeProfile(), async ({ site, start }) => {
      const handle = await start(id);
      await waitForPhase(handle, 'monitoring');
      // The monitor reports the last 5 lines of the log when the glidein exits: a token, a password, the exit.
      site.logFromGlidein(
        id,
        `05/01/24 12:00:03 (pid:4242) SECMAN: token GLIDEIN_IDTOKEN_${jwt}\n05/01/24 12:00:04 (pid:4242) ` +
          `password="${password}"\n`,
      );
      site.exitGlidein(id);
      const result = await handle.result();
      expect(result.endReason).toMatch(/^glidein exited: the glidein process ended: .*\[redacted token\].*exiting$/s);
      // The token's header and claims are public and alike in every token: its signature is the secret.
      const secrets = [jwt.split('.')[2], password.split(' ')[2]];
      const status = await handle.query(statusQuery);
      const { memo } = await handle.describe();
      const history = historyText(await handle.fetchHistory());
      for (const [where, text] of Object.entries({
        result: JSON.stringify(result),
        status: JSON.stringify(status),
        memo: JSON.stringify(memo),
        history,
      }))
        expect({ where, leaked: leaked(text, secrets) }).toEqual({ where, leaked: [] });
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });

  it('names a ghost: the glidein was killed but the collector still lists it', async () => {
    const id = glideinIdFor('ghost');
    await withFakeSite(fakeProfile(), async ({ site, start }) => {
      const handle = await start(id);
      await waitForPhase(handle, 'monitoring');
      const [ad] = site.adNames();
      site.exitGlidein(id, 'killed');
      const result = await handle.result();
      expect(result.endReason).toContain(`the collector still lists it as ${ad}`);
      const status = await handle.query(statusQuery);
      expect(status.ghost).toBe(ad);
      expect(status.phase).toBe('done');
      // The ad is the collector's until it expires; everything on the site is released.
      expect(site.adNames()).toEqual([ad]);
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });

  it('reopens a tunnel that died and keeps the glidein running', async () => {
    const id = glideinIdFor('tunnel');
    await withFakeSite(fakeProfile(), async ({ site, start }) => {
      const handle = await start(id);
      await waitForPhase(handle, 'monitoring');
      const [old] = site.tunnels();
      const glidein = site.glidein(id)!.pid;
      site.killTunnels();
      const repaired = await waitFor(
        'the tunnel to be reopened',
        async () => {
          const s = await handle.query(statusQuery);
          return count(stepsOf(s), 'openTunnel:ok') === 2 && s;
        },
        15_000,
      );
      expect(repaired.phase).toBe('monitoring');
      expect(site.tunnels().map((t) => t.pid)).toEqual([expect.any(Number)]);
      expect(site.tunnels()[0].pid).not.toBe(old.pid);
      expect(site.glidein(id)?.pid).toBe(glidein);
      await handle.signal(drainSignal);
      expect((await handle.result()).endReason).toBe('drained');
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });

  it('gives up with TunnelUnstable when the tunnel keeps dying', async () => {
    const id = glideinIdFor('unstable');
    await withFakeSite(fakeProfile(), async ({ site, start }) => {
      const handle = await start(id);
      await waitForPhase(handle, 'monitoring');
      // Every tunnel from now on dies soon after it is up: each repair works, the next check finds it gone.
      site.faults.tunnelDiesAfterMs = 150;
      site.killTunnels();
      const err = await handle.result().catch((e) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(err.cause.type).toBe('TunnelUnstable');
      const status = await handle.query(statusQuery);
      expect(count(stepsOf(status), 'openTunnel:ok')).toBe(6);
      expect(stepsOf(status).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
      expect(status.held).toEqual([]);
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  }, 40_000);

  it('fails with GlideinUnregistered when the collector loses the ad of a running glidein', async () => {
    const id = glideinIdFor('unregistered');
    await withFakeSite(fakeProfile(), async ({ site, start }) => {
      const handle = await start(id);
      await waitForPhase(handle, 'monitoring');
      site.dropAd(id);
      const err = await handle.result().catch((e) => e);
      expect(err.cause.type).toBe('GlideinUnregistered');
      expect(err.cause.message).toContain('not in the collector for 3 checks');
      const status = await handle.query(statusQuery);
      expect(stepsOf(status).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });

  it('runs with a reverse tunnel (started on the login node with the forwarded agent) and tears it down', async () => {
    const id = glideinIdFor('reverse');
    const profile = fakeProfile();
    profile.tunnel = {
      mode: 'reverse',
      socksPort: 1080,
      knownHostsFile: `${FAKE_SITE_DIR}/site/home/.ssh/known_hosts`,
    };
    await withFakeSite(profile, async ({ site, start }) => {
      const handle = await start(id);
      await waitForPhase(handle, 'monitoring');
      expect(site.tunnels().map((t) => t.host)).toEqual(['login']);
      await handle.signal(stopSignal);
      expect((await handle.result()).endReason).toBe('stopped');
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });
});
