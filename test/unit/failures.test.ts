/**
 * Every failure that leaves an activity is redacted, whichever way it was raised, and keeps its type and retryability.
 */
import { PermanentFault } from '../../src/common/failure-types';
import { MockActivityEnvironment } from '@temporalio/testing';
import {
  ApplicationFailure,
  CancelledFailure,
  DefaultFailureConverter,
  defaultPayloadConverter,
} from '@temporalio/common';
import { asStep, toFailure } from '../../src/activities/to-failure';
import { redact, redactDeep } from '../../src/common/redact';

const KEY_LINES = [
  'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
  'QyNTUxOQAAACBzZWNyZXQta2V5LWJvZHktbGluZS10d28tbm90LWEtcmVhbC1rZXkAAA',
];
const KEY = `-----BEGIN OPENSSH PRIVATE KEY-----\n${KEY_LINES.join('\n')}\n-----END OPENSSH PRIVATE KEY-----`;
const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJnbGlkZWluQGpzYyJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg';
const CERT_LINES = [
  'MIIBszCCAVmgAwIBAgIUQmFzZTY0Q2VydGlmaWNhdGVCb2R5TGluZU9uZTAKBggqhkjO',
  'PQQDAjAiMSAwHgYDVQQDDBdwcm94eS1jZXJ0aWZpY2F0ZS1saW5lLXR3bzAeFw0yNTA',
];
const SECRETS = [
  ...KEY_LINES,
  ...CERT_LINES,
  'PRIVATE KEY-----',
  JWT,
  'eyJzdWIiOiJnbGlkZWluQGpzYyJ9',
  'token=abc',
  'hunter2',
];

/** The failure as Temporal would record it, payloads decoded, so a leak anywhere in it shows as text. */
function recorded(err: Error): string {
  const proto = new DefaultFailureConverter().errorToFailure(err, defaultPayloadConverter);
  return JSON.stringify(proto, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v));
}

function expectNoSecrets(text: string) {
  for (const s of SECRETS) expect(text).not.toContain(s);
}

describe('toFailure', () => {
  it('rebuilds an ApplicationFailure redacted: message, details, cause and stack; same type and nonRetryable', () => {
    const original = ApplicationFailure.create({
      message:
        `confirmRegistration: the glidein exited: ${KEY_LINES[1]}\n-----END OPENSSH PRIVATE ` +
        `KEY-----\nIDTOKEN=${JWT}`,
      type: 'GlideinExited',
      nonRetryable: true,
      details: [{ stderr: KEY, env: [`token=abc`], nested: { IDTOKEN: 'opaque' } }, 'password: hunter2'],
      cause: new Error(`ssh said ${KEY}`, { cause: ApplicationFailure.retryable('token=abc', 'Inner') }),
    });
    const failure = toFailure('confirmRegistration', original) as ApplicationFailure;
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: 'GlideinExited', nonRetryable: true });
    expect(failure.message).toBe(
      'confirmRegistration: the glidein exited: [redacted private key]\nIDTOKEN=[redacted token]',
    );
    expect(failure.details).toEqual([
      { stderr: '[redacted private key]', env: ['token=[redacted]'], nested: { IDTOKEN: '[redacted]' } },
      'password: [redacted]',
    ]);
    expect(failure.cause?.message).toBe('ssh said [redacted private key]');
    expect(failure.cause?.cause).toBeInstanceOf(ApplicationFailure);
    expect(failure.cause?.cause).toMatchObject({ type: 'Inner', message: 'token=[redacted]' });
    expect(failure.stack).toContain('failures.test.ts'); // where it was raised, not where it was rebuilt
    expectNoSecrets(recorded(failure));
    expectNoSecrets(failure.stack ?? '');
  });

  it('does not send the proto of a failure that came off the wire unredacted', () => {
    const original = ApplicationFailure.nonRetryable('token=abc', 'Remote');
    original.failure = { message: 'token=abc', applicationFailureInfo: { type: 'Remote', nonRetryable: true } };
    const failure = toFailure('step', original);
    expect(failure.message).toBe('token=[redacted]');
    expectNoSecrets(recorded(failure));
  });

  it('keeps a CancelledFailure a CancelledFailure, redacted', () => {
    const failure = toFailure('monitorGlidein', new CancelledFailure(`cancelled: token=abc`, [{ stderr: KEY }]));
    expect(failure).toBeInstanceOf(CancelledFailure);
    expect(failure.message).toBe('cancelled: token=[redacted]');
    expect((failure as CancelledFailure).details).toEqual([{ stderr: '[redacted private key]' }]);
    expectNoSecrets(recorded(failure));
  });

  it('redacts permanent faults and other errors, keeping their types', () => {
    const permanent = toFailure(
      'startGlidein',
      new PermanentFault(
        `image missing; proxy ${CERT_LINES.join('\n')}\n-----END CERTIFICATE-----`,
        'ContainerStartFailed',
      ),
    ) as ApplicationFailure;
    expect(permanent).toMatchObject({
      type: 'ContainerStartFailed',
      nonRetryable: true,
      message: 'startGlidein: image missing; proxy [redacted certificate]',
    });
    const other = toFailure('startGlidein', new Error(`spawn failed: IDTOKEN=${JWT}`)) as ApplicationFailure;
    expect(other).toMatchObject({ type: 'StepError', nonRetryable: false });
    expectNoSecrets(recorded(permanent) + recorded(other));
  });

  it('asStep converts whatever the body throws', async () => {
    const thrown = ApplicationFailure.nonRetryable(`the glidein exited: ${KEY}`, 'GlideinExited');
    // In an activity context, as every activity runs.
    const err = await new MockActivityEnvironment()
      .run(() => asStep('confirmRegistration', () => Promise.reject(thrown)))
      .catch((e: unknown) => e as ApplicationFailure);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({
      type: 'GlideinExited',
      nonRetryable: true,
      message: 'the glidein exited: [redacted private key]',
    });
  });
});

describe('redact', () => {
  it('redacts an X.509 proxy (certificate and RSA key), a lone BEGIN line and a tail cut inside a block', () => {
    const proxy =
      `-----BEGIN CERTIFICATE-----\n${CERT_LINES.join('\n')}\n-----END CERTIFICATE-----\n-----BEGIN RSA ` +
      `PRIVATE KEY-----\n${KEY_LINES.join('\n')}\n-----END RSA PRIVATE KEY-----\n`;
    expect(redact(`proxy:\n${proxy}done`)).toBe('proxy:\n[redacted certificate]\n[redacted private key]\ndone');
    expect(redact(`tail: -----BEGIN OPENSSH PRIVATE KEY-----\n${KEY_LINES[0]}`)).toBe('tail: [redacted private key]');
    expect(redact(`tail: ${KEY_LINES[1]}\n-----END OPENSSH PRIVATE KEY-----\nexit 1`)).toBe(
      'tail: [redacted private key]\nexit 1',
    );
    expect(redact('---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nAAAA\n---- END SSH2 ENCRYPTED PRIVATE KEY ----')).toBe(
      '[redacted private key]',
    );
    expect(
      redact('https://user:hunter2@host/x access_token=abc123 Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123'),
    ).toBe('https://user:[redacted]@host/x access_token=[redacted] Authorization: Bearer [redacted]');
    expect(redact('uses a bearer token; password authentication refused; tokenFile: /x/token')).toBe(
      'uses a bearer token; password authentication refused; tokenFile: /x/token',
    );
  });

  it('redactDeep copies values with every string redacted and leaves the input alone', () => {
    const input = {
      a: [`token=abc`, 1, true, null],
      b: new Map([['k', 'password=hunter2']]),
      when: new Date(0),
      bytes: new Uint8Array([1]),
    };
    expect(redactDeep(input)).toEqual({
      a: ['token=[redacted]', 1, true, null],
      b: { k: 'password=[redacted]' },
      when: new Date(0),
      bytes: new Uint8Array([1]),
    });
    expect(input.a[0]).toBe('token=abc');
    const shared = { x: 'y' };
    // shared is not a cycle
    expect(redactDeep({ one: shared, two: shared })).toEqual({ one: { x: 'y' }, two: { x: 'y' } });
    expect(redactDeep(Array.from({ length: 105 }, () => 0))).toHaveLength(101);
  });
});
