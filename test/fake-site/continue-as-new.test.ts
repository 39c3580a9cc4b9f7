/**
 * Continue-as-new on the fake site: the next run carries what the glidein holds and still tears it all down; a stop,
 * drain or cancel delivered in the very task that continues-as-new, or just after, ends it cleanly.
 */
import '../support/fake-site-runtime';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import type { GlideinActivities } from '../../src/activities';
import { CARRIED_TEXT } from '../../src/common/carried-text';
import { drainSignal, GlideinPhase, statusQuery, stopSignal } from '../../src/workflows/messages';
import { HELD_ORDER } from '../../src/workflows/steps';
import { EMPTY_FOOTPRINT, FAKE_SITE_DIR, fakeProfile, fakeSlurmProfile } from '../../sandbox/fake-site';
import { mintIdToken } from '../../sandbox/pool-token';
import {
  FAKE_SETUP as SETUP,
  FAKE_TEARDOWN as TEARDOWN,
  stepsOf,
  waitFor,
  waitForPhase,
} from '../support/workflow-harness';
import { glideinIdFor, useFakeSiteServer, type Handle } from '../support/fake-site-harness';

const { withFakeSite, env } = useFakeSiteServer();
const WORK_DIR = `${FAKE_SITE_DIR}/site/work`;

/** The profile's history cap at its minimum (50): setup alone passes it, so the first round continues-as-new. */
const capped = () => {
  const p = fakeProfile();
  p.monitor = { interval: '1s', reportEvery: '1s', historyEvents: 50 };
  return p;
};

describe('continue-as-new on the fake site', () => {
  it('carries what it holds into the next run, which still tears it all down', async () => {
    const id = glideinIdFor('can');
    await withFakeSite(capped(), async ({ site, start }) => {
      const handle = await start(id);
      const firstRun = (await handle.describe()).runId;
      await waitFor('a continue-as-new', async () => (await handle.describe()).runId !== firstRun, 20_000);
      const status = await waitForPhase(handle, 'monitoring');
      expect(stepsOf(status).slice(0, SETUP.length)).toEqual(SETUP);
      expect(status.held.map((h) => h.kind)).toEqual(['tunnel', 'cvmfs', 'container', 'glidein']);
      expect(site.glidein(id)).toBeDefined();
      await handle.signal(stopSignal);
      const result = await env().client.workflow.getHandle(id).result();
      expect(result.endReason).toBe('stopped');
      expect(stepsOf(result).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
      expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
    });
  });

  type End = 'stop' | 'drain' | 'cancel';
  const deliver = async (handle: Handle, end: End) => {
    const current = env().client.workflow.getHandle(handle.workflowId);
    if (end === 'cancel') await current.cancel();
    else await current.signal(end === 'stop' ? stopSignal : drainSignal);
  };

  /** Delivers `end` from inside the first run's monitor round, as it completes: in the task that continues-as-new. */
  const atRoundEnd =
    (workflowId: string, act: () => Promise<void>) =>
    (activities: GlideinActivities): GlideinActivities => ({
      ...activities,
      async monitorGlidein(ref, round) {
        const report = await activities.monitorGlidein(ref, round);
        const mine = Context.current().info.workflowExecution?.workflowId === workflowId;
        if (mine && report.end === 'round-complete' && !delivered.has(workflowId)) {
          delivered.add(workflowId);
          await act();
        }
        return report;
      },
    });
  const delivered = new Set<string>();

  it.each([
    ['stop', 'during'],
    ['drain', 'during'],
    ['cancel', 'during'],
    ['cancel', 'after'],
  ] as Array<[End, 'during' | 'after']>)(
    '%s delivered %s a continue-as-new: teardown runs, the memo is written, the phase is final',
    async (end, moment) => {
      const id = glideinIdFor(`edge-${end}-${moment}`);
      let handle: Handle | undefined;
      const wrap = moment === 'during' ? atRoundEnd(id, () => deliver(handle!, end)) : undefined;
      await withFakeSite(
        capped(),
        async ({ site, start }) => {
          handle = await start(id);
          const firstRun = (await handle.describe()).runId;
          if (moment === 'after') {
            await waitFor('a continue-as-new', async () => (await handle!.describe()).runId !== firstRun, 20_000);
            await deliver(handle, end);
          }
          const last = env().client.workflow.getHandle(id);
          const outcome = await last.result().then(
            (r) => r,
            (e) => e,
          );
          const reason = { cancel: 'cancelled', stop: 'stopped', drain: 'drained' }[end];
          if (end === 'cancel') expect(outcome.cause).toBeInstanceOf(CancelledFailure);
          else expect(outcome.endReason).toBe(reason);
          const description = await last.describe();
          expect(description.memo?.endReason).toBe(reason);
          expect(description.memo?.stillHeld).toBe('nothing');
          expect(description.searchAttributes[GlideinPhase.name]).toEqual([end === 'cancel' ? 'cancelled' : 'done']);
          expect(description.runId === firstRun ? 'first run' : 'second run').toBe(
            moment === 'during' ? 'first run' : 'second run',
          );
          const status = await last.query(statusQuery);
          expect(status.held).toEqual([]);
          expect(stepsOf(status).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
          expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
        },
        wrap,
      );
    },
  );
});

/**
 * A JSC-shaped site: a Slurm holder job and a pool credential, so a monitoring glidein holds every kind of resource
 * the catalogue has, with the history cap at its minimum so that every round continues-as-new.
 */
const jscShaped = () => {
  const p = fakeSlurmProfile();
  p.monitor = { interval: '1s', reportEvery: '1s', historyEvents: 50 };
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'glidein-fast-token-')), 'pool.idtoken');
  writeFileSync(file, `${mintIdToken(randomBytes(32), { exp: Math.floor(Date.now() / 1000) + 86_400 })}\n`, {
    mode: 0o600,
  });
  p.credentials = { idToken: file };
  return p;
};

/** Waits until `handle`'s workflow has started `runs` runs (continued-as-new runs - 1 times). */
async function runsOf(handle: Handle, runs: number): Promise<void> {
  const seen = new Set<string>();
  await waitFor(
    `${runs} runs`,
    async () => {
      seen.add((await env().client.workflow.getHandle(handle.workflowId).describe()).runId);
      return seen.size >= runs;
    },
    60_000,
  );
}

describe('continue-as-new with every kind of resource held (a Slurm site with a credential)', () => {
  it.each(['stop', 'drain', 'cancel'] as const)(
    'carries all of them through several runs, then %s releases everything',
    async (end) => {
      const id = glideinIdFor(`every-kind-${end}`);
      await withFakeSite(jscShaped(), async ({ site, start }) => {
        const handle = await start(id);
        await runsOf(handle, 3);
        const last = env().client.workflow.getHandle(id);
        const status = await waitForPhase(last, 'monitoring');
        expect(status.held.map((h) => h.kind)).toEqual(HELD_ORDER);
        expect([...HELD_ORDER].sort()).toEqual(['allocation', 'container', 'credential', 'cvmfs', 'glidein', 'tunnel']);
        if (end === 'cancel') await last.cancel();
        else await last.signal(end === 'stop' ? stopSignal : drainSignal);
        await last.result().catch(() => undefined);
        const closed = await last.describe();
        expect(closed.status.name).toBe(end === 'cancel' ? 'CANCELLED' : 'COMPLETED');
        expect(closed.memo?.stillHeld).toBe('nothing');
        expect((await last.query(statusQuery)).held).toEqual([]);
        expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
        expect(
          [...site.hosts.worker.files.keys(), ...site.hosts.login.files.keys()].filter((f) => /idtoken/i.test(f)),
        ).toEqual([]);
      });
    },
  );

  it('clips site text that is too long to carry when it records it, and still continues-as-new', async () => {
    const id = glideinIdFor('long-site-text');
    const long = (c: string) => c.repeat(20_000);
    const verbose = (activities: GlideinActivities): GlideinActivities => ({
      ...activities,
      async confirmRegistration(ref, timeoutMs) {
        const r = await activities.confirmRegistration(ref, timeoutMs);
        return {
          name: `${r.name}${long('n')}`,
          state: `${r.state}${long('s')}`,
          activity: `${r.activity}${long('a')}`,
        };
      },
      async monitorGlidein(ref, round) {
        const report = await activities.monitorGlidein(ref, round);
        return report.last ? { ...report, last: { ...report.last, detail: long('d') } } : report;
      },
    });
    await withFakeSite(
      jscShaped(),
      async ({ site, start }) => {
        const handle = await start(id);
        await runsOf(handle, 3);
        const last = env().client.workflow.getHandle(id);
        const status = await last.query(statusQuery);
        expect(status.registration?.name).toHaveLength(CARRIED_TEXT.registrationName);
        expect(status.registration?.name.endsWith('…')).toBe(true);
        expect(status.registration?.state).toHaveLength(CARRIED_TEXT.registrationField);
        expect(status.lastCheck?.detail).toHaveLength(CARRIED_TEXT.detail);
        await last.signal(stopSignal);
        expect((await last.result()).endReason).toBe('stopped');
        expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
      },
      verbose,
    );
  });

  it('drains and tears down instead of continuing-as-new when the state to carry would be refused', async () => {
    const id = glideinIdFor('bad-carry');
    // A check time that is no ISO time: the next run would refuse the state that carries it.
    const badClock = (activities: GlideinActivities): GlideinActivities => ({
      ...activities,
      async monitorGlidein(ref, round) {
        const report = await activities.monitorGlidein(ref, round);
        return report.last ? { ...report, last: { ...report.last, at: 'yesterday' } } : report;
      },
    });
    await withFakeSite(
      jscShaped(),
      async ({ site, start }) => {
        const handle = await start(id);
        const firstRun = (await handle.describe()).runId;
        const err = await handle.result().catch((e) => e);
        expect(err.cause.type).toBe('CarriedStateInvalid');
        expect(err.cause.message).toMatch(/resume\.status\.lastCheck\.at: expected an ISO 8601 UTC time/);
        const closed = await handle.describe();
        expect(closed.runId).toBe(firstRun);
        expect(closed.memo?.stillHeld).toBe('nothing');
        const status = await handle.query(statusQuery);
        expect(status.steps.find((s) => s.step === 'stopGlidein')?.detail).toMatch(/drain|TERM/i);
        expect(site.footprint(WORK_DIR)).toEqual(EMPTY_FOOTPRINT);
      },
      badClock,
    );
  });
});
