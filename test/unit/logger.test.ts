/**
 * The worker's log lines: errors keep their message, type, stack and cause wherever they sit; nothing secret gets out.
 */
import { ApplicationFailure, type MetricMeter, type MetricTags } from '@temporalio/common';
import { log as activityLog } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, type LogEntry } from '@temporalio/worker';
import {
  activityLogContext,
  activitySubject,
  coreLevel,
  createLogger,
  logFormat,
  runtimeLevel,
  runtimeLogSink,
} from '../../src/logger';
import { activityFailureMetrics } from '../../src/metrics';
import { METRIC } from '../../src/common/metric-names';

const KEY_LINES = [
  'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
  'QyNTUxOQAAACBzZWNyZXQta2V5LWJvZHktbGluZS10d28tbm90LWEtcmVhbC1rZXkAAA',
];
const KEY = `-----BEGIN OPENSSH PRIVATE KEY-----\n${KEY_LINES.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJnbGlkZWluQGpzYyJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg';
const SECRETS = [...KEY_LINES, 'PRIVATE KEY-----', JWT, 'eyJzdWIiOiJnbGlkZWluQGpzYyJ9', 'token=abc', 'hunter2'];

/** A logger writing into an array, one raw JSON line per entry. */
function capture() {
  const lines: string[] = [];
  const log = createLogger({ write: (line: string) => void lines.push(line) });
  return { log, lines, last: () => JSON.parse(lines[lines.length - 1]) };
}

function entry(message: string, meta: Record<string, unknown>, level: LogEntry['level'] = 'WARN'): LogEntry {
  return { message, level, meta, timestampNanos: BigInt(Date.now()) * 1_000_000n };
}

function expectNoSecrets(line: string) {
  for (const s of SECRETS) expect(line).not.toContain(s);
}

describe('logger', () => {
  it('writes an error the SDK logs under `error` with its message, type and stack, not as {}', () => {
    const { log, lines, last } = capture();
    runtimeLogSink(
      entry('Activity failed', { error: new Error('boom'), workflowId: 'glidein-jsc-1', activityType: 'startGlidein' }),
      log,
    );
    expect(lines).toHaveLength(1);
    const line = last();
    expect(line).toMatchObject({
      msg: 'Activity failed',
      level: 40,
      workflowId: 'glidein-jsc-1',
      service: 'jsc-glidein',
    });
    expect(line.error).toMatchObject({ message: 'boom', type: 'Error', name: 'Error' });
    expect(line.error.stack).toContain('Error: boom');
    expect(line.error.stack).toContain('logger.test.ts');
  });

  it('keeps nested errors, an ApplicationFailure type and its cause chain', () => {
    const { log, last } = capture();
    const failure = ApplicationFailure.create({
      message: 'the glidein exited',
      type: 'GlideinExited',
      nonRetryable: true,
      details: [{ polls: 3 }],
      cause: new TypeError('inner'),
    });
    runtimeLogSink(
      entry('Workflow failed', { failure, activity: { attempts: [{ error: new RangeError('deep') }] } }, 'ERROR'),
      log,
    );
    const line = last();
    expect(line.failure).toMatchObject({
      name: 'ApplicationFailure',
      type: 'GlideinExited',
      message: 'the glidein exited',
      nonRetryable: true,
      details: [{ polls: 3 }],
    });
    expect(line.failure.cause).toMatchObject({ type: 'TypeError', message: 'inner' });
    expect(line.failure.cause.stack).toContain('TypeError: inner');
    expect(line.failure).not.toHaveProperty('failure');
    expect(line.activity.attempts[0].error).toMatchObject({ type: 'RangeError', message: 'deep' });
  });

  it('logs an Error passed directly, or under err, in pino shape, and bounds cause chains and cycles', () => {
    const { log, lines, last } = capture();
    log.error(new Error('direct'));
    expect(last()).toMatchObject({ msg: 'direct', err: { type: 'Error', message: 'direct' } });

    let chain = new Error('cause 0');
    for (let i = 1; i < 30; i++) chain = new Error(`cause ${i}`, { cause: chain });
    const loop = new Error('loop') as Error & { self?: unknown };
    loop.cause = loop;
    loop.self = { back: loop };
    log.warn({ err: chain, loop }, 'chained');
    const line = last();
    expect(line.err.message).toBe('cause 29');
    expect(JSON.stringify(line.err)).toContain('[cause chain truncated]');
    expect(JSON.stringify(line.err)).not.toContain('cause 0"');
    expect(line.loop).toMatchObject({ message: 'loop', cause: '[Circular]', self: { back: '[Circular]' } });
    expect(lines).toHaveLength(2);
  });

  it('redacts every string in every field, deeply, as well as the message', () => {
    const { log, lines, last } = capture();
    const deep: Record<string, unknown> = { level0: {} };
    let cursor = deep.level0 as Record<string, unknown>;
    for (let i = 1; i < 40; i++) cursor = cursor[`level${i}`] = {};
    const cyclic: Record<string, unknown> = { note: 'password: hunter2' };
    cyclic.self = cyclic;
    log.info(
      {
        glidein: {
          tail: `starting\n${KEY}exited`,
          env: ['X=1', `IDTOKEN=${JWT}`],
          url: 'https://collector/?token=abc',
        },
        error: new Error(`ssh refused: ${KEY}`),
        credentials: { IDTOKEN: 'opaque-value-not-jwt-shaped' },
        cyclic,
        deep,
      },
      'launch failed with token=abc',
    );
    const raw = lines[0];
    expectNoSecrets(raw);
    expect(raw).not.toContain('opaque-value-not-jwt-shaped');
    const line = last();
    expect(line.msg).toBe('launch failed with token=[redacted]');
    expect(line.glidein.tail).toBe('starting\n[redacted private key]\nexited');
    expect(line.glidein.env).toEqual(['X=1', 'IDTOKEN=[redacted token]']);
    expect(line.error.message).toBe('ssh refused: [redacted private key]\n');
    expect(line.credentials.IDTOKEN).toBe('[redacted]');
    expect(line.cyclic.self).toBe('[Circular]');
    expect(raw).toContain('[Truncated]');
  });

  it('redacts a Runtime log entry and child logger bindings too', () => {
    const { log, lines } = capture();
    runtimeLogSink(
      entry(`Activity failed: ${KEY}`, {
        error: ApplicationFailure.nonRetryable(`tail: IDTOKEN=${JWT}`, 'GlideinExited'),
        workflowId: 'w',
      }),
      log,
    );
    log.child({ site: 'jsc', note: 'password=hunter2' }).info('child');
    log
      .child({ site: 'jsc' })
      .child({ glidein: { env: `IDTOKEN=${JWT}` } })
      .info('grandchild');
    expect(lines).toHaveLength(3);
    for (const line of lines) expectNoSecrets(line);
    expect(JSON.parse(lines[1])).toMatchObject({ site: 'jsc', note: 'password=[redacted]', msg: 'child' });
  });
});

describe('the SDK runtime log level', () => {
  it('follows LOG_LEVEL as pino names levels, and is INFO otherwise', () => {
    expect(runtimeLevel('debug')).toBe('DEBUG');
    expect(runtimeLevel('WARN')).toBe('WARN');
    expect(runtimeLevel(undefined)).toBe('INFO');
    expect(runtimeLevel('verbose')).toBe('INFO');
  });
});

describe('the log format', () => {
  it('is pretty on a terminal and JSON elsewhere, unless LOG_FORMAT says', () => {
    expect(logFormat({}, true)).toBe('pretty');
    expect(logFormat({}, false)).toBe('json');
    expect(logFormat({ LOG_FORMAT: 'json' }, true)).toBe('json');
    expect(logFormat({ LOG_FORMAT: 'pretty' }, false)).toBe('pretty');
    expect(logFormat({ LOG_FORMAT: ' JSON ' }, true)).toBe('json');
    expect(() => logFormat({ LOG_FORMAT: 'yaml' }, true)).toThrow('LOG_FORMAT: expected json or pretty, got "yaml"');
  });

  it('writes pretty lines, redacted like the JSON ones, with their fields', () => {
    const lines: string[] = [];
    const log = createLogger({ write: (line: string) => void lines.push(line) }, 'pretty');
    log.warn({ site: 'jsc', glideinId: 'glidein-jsc-1', tail: `IDTOKEN=${JWT}\n${KEY}` }, 'launch failed, token=abc');
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(() => JSON.parse(line)).toThrow();
    expect(line).toContain('WARN');
    expect(line).toContain('launch failed, token=[redacted]');
    expect(line).toContain('glidein-jsc-1');
    expect(line).toContain('[redacted private key]');
    expectNoSecrets(line);
  });

  it("follows LOG_LEVEL for Core's own lines only at trace or error; warnings otherwise", () => {
    expect(coreLevel(undefined)).toBe('WARN');
    expect(coreLevel('debug')).toBe('WARN');
    expect(coreLevel('trace')).toBe('TRACE');
    expect(coreLevel('error')).toBe('ERROR');
  });
});

describe("an activity's log lines", () => {
  it('name the site and glidein from its first argument (a GlideinRef, a fleet request, a site name)', () => {
    expect(activitySubject([{ site: 'jsc', glideinId: 'g-1', node: 'n1' }, 60_000])).toEqual({
      site: 'jsc',
      glideinId: 'g-1',
    });
    expect(activitySubject(['jsc'])).toEqual({ site: 'jsc' });
    expect(activitySubject([{ site: 'jsc', slots: [] }])).toEqual({ site: 'jsc' });
    expect(activitySubject([])).toEqual({});
    expect(activitySubject([null])).toEqual({});
    expect(activitySubject([{ site: 42, glideinId: '' }])).toEqual({});
  });

  it("carry workflowId, site and glideinId, the SDK's too, redacted; failed attempts counted by type", async () => {
    const { log, lines } = capture();
    const counted: Array<{ name: string; value: number; tags: MetricTags }> = [];
    const meter: MetricMeter = {
      createCounter: (name) => ({
        name,
        kind: 'counter',
        valueType: 'int',
        add: (value, tags = {}) => void counted.push({ name, value, tags }),
        withTags: () => {
          throw new Error('unused');
        },
      }),
      createHistogram: () => {
        throw new Error('unused');
      },
      createGauge: () => {
        throw new Error('unused');
      },
      withTags: () => meter,
    };
    const env = new MockActivityEnvironment(
      { workflowExecution: { workflowId: 'glidein-jsc-1', runId: 'r1' }, activityType: 'startGlidein' },
      {
        logger: new DefaultLogger('TRACE', (e) => runtimeLogSink(e, log)),
        interceptors: [activityLogContext, activityFailureMetrics((site) => site === 'jsc')],
        metricMeter: meter,
      },
    );
    const failed = env.run(
      async (_ref: { site: string; glideinId: string }) => {
        activityLog.info(`starting with IDTOKEN=${JWT}`);
        throw ApplicationFailure.retryable('the glidein exited', 'GlideinExited');
      },
      { site: 'jsc', glideinId: 'glidein-jsc-1' },
    );
    await expect(failed).rejects.toThrow('the glidein exited');
    const parsed = lines.map((l) => JSON.parse(l));
    const mine = parsed.find((l) => l.msg.startsWith('starting'));
    expect(mine).toMatchObject({ workflowId: 'glidein-jsc-1', site: 'jsc', glideinId: 'glidein-jsc-1' });
    expect(mine.msg).toBe('starting with IDTOKEN=[redacted token]');
    expect(parsed.find((l) => l.msg === 'Activity failed')).toMatchObject({
      workflowId: 'glidein-jsc-1',
      site: 'jsc',
      glideinId: 'glidein-jsc-1',
      activityType: 'startGlidein',
    });
    for (const line of lines) expectNoSecrets(line);
    expect(counted).toEqual([
      {
        name: METRIC.activityFailures,
        value: 1,
        tags: expect.objectContaining({ site: 'jsc', type: 'GlideinExited', activityType: 'startGlidein' }),
      },
    ]);
  });
});
