/**
 * The activity boundary: what an activity returns and heartbeats is redacted like what it throws, with its shape
 * unchanged, so that a glidein's log tail in a report carries no token into history, status, memo or result.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { atBoundary } from '../../src/activities/boundary';
import { heartbeat } from '../../src/activities/kit';
import { bodyLines, leaked, makeJwt, makeKeys } from '../support/corpus/secrets';

const jwt = makeJwt();
const { rsa } = makeKeys();
const tail =
  `05/01/24 12:00:03 (pid:4242) using GLIDEIN_IDTOKEN_${jwt}\n` + `stderr: ${rsa}condor_master (pid 4242) exiting`;
const secrets = [jwt, ...bodyLines(rsa)];

describe('atBoundary', () => {
  it('returns results redacted, however deep, with everything else as it was', async () => {
    const report = {
      end: 'glidein-exited',
      checks: 3,
      last: { at: '2025-03-14T09:26:53.589Z', tunnel: true, glidein: false, registered: false, detail: tail },
      detail: `the glidein process ended: ${tail}`,
      lines: [tail, 'slot1@glidein-g1@jwc01'],
      ghost: undefined,
    };
    const { monitor } = atBoundary({ monitor: async () => report });
    const result = await new MockActivityEnvironment().run(monitor);
    expect(leaked(JSON.stringify(result), secrets)).toEqual([]);
    const redacted =
      '05/01/24 12:00:03 (pid:4242) using GLIDEIN_IDTOKEN_[redacted token]\n' +
      'stderr: [redacted private key]\ncondor_master (pid 4242) exiting';
    expect(result).toEqual({
      ...report,
      last: { ...report.last, detail: redacted },
      detail: `the glidein process ended: ${redacted}`,
      lines: [redacted, 'slot1@glidein-g1@jwc01'],
    });
  });

  it('throws failures redacted, named after the activity', async () => {
    const { readGlideinLog } = atBoundary({
      readGlideinLog: async () => {
        throw new Error(`tail said ${tail}`);
      },
    });
    const err = (await new MockActivityEnvironment().run(readGlideinLog).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/^readGlideinLog: tail said /);
    expect(leaked(`${err.message}\n${err.stack}`, secrets)).toEqual([]);
  });

  it('heartbeats redacted (the server keeps the last details; a timed-out attempt carries them)', async () => {
    const env = new MockActivityEnvironment();
    const seen: unknown[] = [];
    env.on('heartbeat', (d: unknown) => seen.push(d));
    await env.run(async () => heartbeat({ checks: 1, last: { detail: tail } }));
    expect(seen).toHaveLength(1);
    expect(leaked(JSON.stringify(seen), secrets)).toEqual([]);
    expect(seen[0]).toMatchObject({ checks: 1, last: { detail: expect.stringContaining('[redacted token]') } });
  });
});
