/**
 * ReadGlideinLog's activity on a real file, its READ_LOG run by sh on this machine: whatever window is asked for,
 * redaction sees whole lines with the lines around them before the window is cut, and its errors are redacted.
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { createActivities, type ActivityDeps } from '../../src/activities';
import type { LogChunk, ReadLogRequest } from '../../src/common/operator-requests';
import type { Executor } from '../../src/remote/executor';
import { LocalExecutor } from '../../src/remote/local';
import { READ_CLAIM } from '../../src/site/scripts';
import { SiteRegistry } from '../../src/site/load';
import { bodyLines, leaked, makeJwt, makeKeys } from '../support/corpus/secrets';

const sitesDir = path.join(__dirname, '..', '..', 'sites');
const dir = mkdtempSync(path.join(tmpdir(), 'read-log-'));
const logFile = path.join(dir, 'glidein.log');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const local = new LocalExecutor();
const OURS = JSON.stringify({ namespace: 'default', workflowId: 'g1' });
/** The node: runs what it is sent here, with this test's file in place of the glidein's log on the site. */
const node: Executor = {
  target: 'jwc01',
  run: (argv, options) =>
    // The glidein's claim names this test's workflow (the mock activity's namespace, a workflow that derives g1).
    argv[2] === READ_CLAIM
      ? Promise.resolve({ code: 0, signal: null, stdout: `claim ${OURS}\n`, stderr: '' })
      : local.run(
          argv.map((a) => (a.endsWith('/glidein.log') ? logFile : a)),
          options,
        ),
};
const activities = (exec: Executor) =>
  createActivities({
    sites: new SiteRegistry(sitesDir),
    executorsFor: () => ({ login: exec, node: exec }),
  } as unknown as ActivityDeps);

function read(request: Partial<ReadLogRequest>, exec = node): Promise<LogChunk> {
  return new MockActivityEnvironment().run(activities(exec).readGlideinLog, {
    site: 'local',
    glideinId: 'g1',
    which: 'glidein' as const,
    ...request,
  });
}

const jwt = makeJwt();
const { rsa } = makeKeys();
const before = '05/01/24 12:00:01 (pid:4242) ** condor_master (CONDOR_MASTER) STARTING UP\n';
const after = '05/01/24 12:00:09 (pid:4242) Sent ad to central manager for glidein@jwc01\n';

describe('readGlideinLog redacts whole lines before it cuts the window', () => {
  it('a window that starts and ends inside a token shows the whole line, redacted', async () => {
    const line = `05/01/24 12:00:03 (pid:4242) SECMAN: token ${jwt}\n`;
    writeFileSync(logFile, before + line + after);
    const chunk = await read({ offset: before.length + 80, maxBytes: 60 });
    expect(leaked(chunk.text, [jwt])).toEqual([]);
    expect(chunk.text).toBe('05/01/24 12:00:03 (pid:4242) SECMAN: token [redacted token]\n');
    expect(chunk.offset).toBe(before.length);
    expect(chunk.end).toBe(before.length + line.length);
  });

  it('a token wrapped over lines is redacted in every window, wherever the windows fall', async () => {
    const wrapped = jwt.match(/.{1,64}/g)!.join('\n');
    writeFileSync(logFile, `${before}Token received:\n${wrapped}\n${after}`);
    for (const maxBytes of [70, 130, 200]) {
      let offset = 0;
      let shown = '';
      for (let i = 0; i < 50; i++) {
        const chunk = await read({ offset, maxBytes });
        shown += chunk.text;
        if (chunk.end === undefined || chunk.end === offset) break;
        offset = chunk.end;
      }
      expect(leaked(shown, [jwt])).toEqual([]);
      expect(shown).toContain(after);
    }
  });

  it('a window inside a key, or across its first or last line, shows none of it', async () => {
    const text = `${before}stderr: ${rsa}${after}`;
    writeFileSync(logFile, text);
    const keyAt = text.indexOf('-----BEGIN');
    const lines = bodyLines(rsa);
    for (const [offset, maxBytes] of [
      [keyAt + 200, 130], // inside the body
      [0, keyAt + 100], // ends inside it
      [keyAt + 900, 2000], // starts inside it
    ]) {
      const chunk = await read({ offset, maxBytes });
      expect(leaked(chunk.text, lines)).toEqual([]);
      expect(chunk.text).toMatch(/\[redacted/);
    }
  });

  it('follows a growing log line by line: each whole line once, a line still being written once it ends', async () => {
    writeFileSync(logFile, `${before}${after}`);
    const first = await read({ tail: true, maxBytes: 100 });
    expect(first.text).toBe(after);
    appendFileSync(logFile, '05/01/24 12:00:10 (pid:4242) Sta');
    const partial = await read({ offset: first.end! });
    expect(partial).toMatchObject({ text: '', end: first.end });
    appendFileSync(logFile, 'rting jobs\n');
    const rest = await read({ offset: partial.end! });
    expect(rest.text).toBe('05/01/24 12:00:10 (pid:4242) Starting jobs\n');
  });

  it('fails redacted: what the site said is not carried unredacted in the failure', async () => {
    const failing: Executor = {
      target: 'jwc01',
      run: async (argv) =>
        argv[2] === READ_CLAIM
          ? { code: 0, signal: null, stdout: `claim ${OURS}\n`, stderr: '' }
          : { code: 1, signal: null, stdout: '', stderr: `tail: token ${jwt}\n${rsa}` },
    };
    const err = await read({}, failing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    const text = `${(err as Error).message}\n${(err as Error).stack}`;
    expect(text).toMatch(/reading .*glidein\.log on jwc01 failed/);
    expect(leaked(text, [jwt, ...bodyLines(rsa)])).toEqual([]);
  });
});
