/**
 * The pool credential through a real lifecycle on the local site, whose collector admits only ads carrying an
 * IDTOKEN signed with one of the pool's keys: staged (mode 600) before the glidein starts, refused before it when
 * it is unusable or would expire first, renewed on the site while the glidein runs, removed at teardown.
 */
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { drainSignal, statusQuery } from '../../src/workflows/messages';
import { localSiteWith } from '../../sandbox/sites';
import { collectorAds, SITE_PATHS, siteProcesses } from '../../sandbox/local-site';
import { ensureSigningKey, mintIdToken } from '../../sandbox/pool-token';
import { stepsOf, useDevServer, waitFor, waitForPhase } from '../support/workflow-harness';
import { EMPTY, footprint } from '../../sandbox/site-state';

const { withWorker, start } = useDevServer();

const now = () => Math.floor(Date.now() / 1000);
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pool-cred-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A token file of the operator's own (mode 600), and the local site with it as its credential. */
function tokenFile(token: string): string {
  const file = path.join(dir, 'pool.idtoken');
  writeFileSync(`${file}.tmp`, `${token}\n`, { mode: 0o600 });
  // Renamed into place, as a renewal tool does: the monitor never reads half a token.
  renameSync(`${file}.tmp`, file);
  return file;
}
const withToken = (file: string) =>
  localSiteWith((p) => {
    p.monitor.interval = '1s';
    p.credentials = { idToken: file };
  });
const siteToken = (id: string) => `${SITE_PATHS.workDir}/${id}/config/tokens.d/pool.idtoken`;
const poolKey = (kid: string) => ensureSigningKey(SITE_PATHS.poolKeysDir, kid);
const dropKey = (kid: string) => rmSync(path.join(SITE_PATHS.poolKeysDir, kid), { force: true });
const collectorLog = () => readFileSync(SITE_PATHS.collectorLog, 'utf8');
/** The environment of this glidein's condor_master on the site. */
function masterEnv(id: string): string[] {
  for (const p of siteProcesses().filter((q) => q.cmdline.includes('condor_master'))) {
    const env = readFileSync(`/proc/${p.pid}/environ`, 'utf8').split('\0');
    if (env.includes(`_CONDOR_GLIDEIN_NAME=${id}`)) return env;
  }
  throw new Error(`no condor_master of ${id} on the site`);
}

describe('the pool credential', () => {
  it('is staged mode 600 before the glidein starts, renewed on the site when renewed here, then removed', async () => {
    const id = `wf-cred-${Date.now()}`;
    const [OLD, NEW] = [`OLD${Date.now()}`, `NEW${Date.now()}`];
    const first = mintIdToken(poolKey(OLD), { kid: OLD, exp: now() + 3600 });
    const file = tokenFile(first);
    try {
      await withWorker(withToken(file), async (w) => {
        const handle = await start(w, id);
        const status = await waitForPhase(handle, 'monitoring');
        const staged = status.steps.find((s) => s.step === 'stageCredential');
        expect(staged?.detail).toMatch(new RegExp(`^idToken from ${file}, valid until \\d{4}-`));
        const st = statSync(siteToken(id));
        expect(st.mode & 0o777).toBe(0o600);
        expect(readFileSync(siteToken(id), 'utf8').trim()).toBe(first);
        // The glidein authenticates with it: its configuration points at the directory, and the pool admitted it.
        const env = masterEnv(id);
        expect(env).toContain(`_CONDOR_SEC_TOKEN_DIRECTORY=${SITE_PATHS.workDir}/${id}/config/tokens.d`);
        expect(env).toContain('_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS=IDTOKENS');
        expect((await footprint(id)).ads).toHaveLength(1);

        // The pool rotates its key: the operator gets a token under the new key, the monitor carries it to the
        // site, and only then is the old key withdrawn. The glidein goes on updating, accepted.
        const second = mintIdToken(poolKey(NEW), { kid: NEW, exp: now() + 7200 });
        tokenFile(second);
        await waitFor(
          'the renewed token on the site',
          async () => readFileSync(siteToken(id), 'utf8').trim() === second,
          30_000,
        );
        expect(statSync(siteToken(id)).mode & 0o777).toBe(0o600);
        dropKey(OLD);
        const withdrawn = now();
        await waitFor(
          'an update accepted after the old key was withdrawn',
          async () => {
            const [ad] = await collectorAds(`GlideinLaunchId == "${id}"`);
            return ad !== undefined && Number(ad.LastHeardFrom) > withdrawn + 1;
          },
          30_000,
        );
        expect(collectorLog()).not.toMatch(new RegExp(`DENIED.*${id}`));
        expect((await handle.query(statusQuery)).phase).toBe('monitoring');

        await handle.signal(drainSignal);
        const result = await handle.result();
        expect(result.endReason).toBe('drained');
        expect(stepsOf(result)).toContain('removeCredential:ok');
      });
    } finally {
      dropKey(OLD);
      dropKey(NEW);
    }
    expect(await footprint(id)).toEqual(EMPTY);
    expect(existsSync(siteToken(id))).toBe(false);
  });

  it.each([
    [
      'expired',
      () => mintIdToken(poolKey('POOL'), { exp: now() - 60 }),
      'CredentialExpired',
      /expired at .*so the pool would refuse the glidein/,
    ],
    [
      'expiring before the glidein ends',
      () => mintIdToken(poolKey('POOL'), { exp: now() + 120 }),
      'CredentialExpired',
      /expires at .*before the glidein's end at/,
    ],
    ['not a token', () => 'not-a-token', 'CredentialUnusable', /is not an IDTOKEN/],
  ])(
    'refuses a token %s before the glidein starts, non-retryably, naming the file',
    async (_what, make, type, message) => {
      const id = `wf-cred-bad-${Date.now()}`;
      const file = tokenFile(make());
      await withWorker(withToken(file), async (w) => {
        const handle = await start(w, id);
        const err = await handle.result().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(WorkflowFailedError);
        const failure = (err as WorkflowFailedError).cause as ApplicationFailure;
        expect(failure.type).toBe(type);
        expect(failure.message).toContain(`credentials.idToken file ${file}`);
        expect(failure.message).toMatch(message);
        const status = await handle.query(statusQuery);
        const steps = stepsOf(status);
        expect(steps).toContain('stageCredential:failed');
        expect(steps.some((s) => s.startsWith('startGlidein'))).toBe(false);
        // Once: a credential that is wrong now is wrong on every retry.
        const history = await handle.fetchHistory();
        const attempts = (history.events ?? [])
          .filter((e) => e.activityTaskStartedEventAttributes)
          .map((e) => e.activityTaskStartedEventAttributes!.attempt);
        const scheduled = (history.events ?? []).filter(
          (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'stageCredential',
        );
        expect(scheduled).toHaveLength(1);
        expect(attempts.every((a) => a === 1)).toBe(true);
      });
      expect(await footprint(id)).toEqual(EMPTY);
    },
  );

  it('refuses a token file that is missing, naming it', async () => {
    const id = `wf-cred-none-${Date.now()}`;
    const file = path.join(dir, 'never-written.idtoken');
    await withWorker(withToken(file), async (w) => {
      const err = await (await start(w, id)).result().catch((e: unknown) => e);
      const failure = (err as WorkflowFailedError).cause as ApplicationFailure;
      expect(failure.type).toBe('CredentialUnusable');
      expect(failure.message).toContain(
        `credentials.idToken file ${file} cannot be read on the worker's machine (ENOENT)`,
      );
    });
    expect(await footprint(id)).toEqual(EMPTY);
  });
});
