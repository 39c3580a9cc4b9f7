/**
 * The redactor against real-format secrets (test/support/corpus/secrets.ts) in the log lines they turn up in: condor
 * logs, ssh -v, proxychains, HTTP headers, cvmfs, python tracebacks. Each case is one the redactor once missed. And
 * the site text the workflow is made of comes through exactly as it was.
 */
import { randomBytes } from 'node:crypto';
import { redact, redactKeepingLines, redactResult } from '../../src/common/redact';
import { bodyLines, leaked, makeJwt, makeKeys, makePassword, makeProxy, SITE_TEXT } from '../support/corpus/secrets';

const jwt = makeJwt();
const { rsa, ed25519 } = makeKeys();
const proxy = makeProxy(rsa);
const password = makePassword();
const word = randomBytes(9).toString('base64url'); // a password without spaces
const relaySecret = randomBytes(32).toString('hex');
const basic = Buffer.from(`glidein:${word}`).toString('base64');
const wrap = (text: string, width: number) => text.match(new RegExp(`.{1,${width}}`, 'g'))!.join('\n');
const lower = (pem: string) =>
  pem.replace(
    /-----(BEGIN|END) ([A-Z ]+)-----/g,
    (_m, a: string, b: string) => `-----${a.toLowerCase()} ${b.toLowerCase()}-----`,
  );

/** [what, the log text, the secrets in it]. */
const CORPUS: Array<[string, string, string[]]> = [
  [
    'a JWT right after a word character (condor log)',
    `05/01/24 12:00:03 (pid:4242) SECMAN: using token GLIDEIN_IDTOKEN_${jwt} for collector.example.org`,
    [jwt],
  ],
  ['a JWT glued to a word (an env dump)', `_CONDOR_SEC_TOKEN${jwt}\nPATH=/usr/bin`, [jwt]],
  [
    'a JWT wrapped over lines at 64 columns',
    `05/01/24 12:00:03 (pid:4242) Token received:\n${wrap(jwt, 64)}\n05/01/24 12:00:04 (pid:4242) Sent ad`,
    [jwt],
  ],
  [
    'a private key body with neither BEGIN nor END (a tail cut inside it)',
    bodyLines(rsa).slice(3, 12).join('\n'),
    bodyLines(rsa).slice(3, 12),
  ],
  [
    'the body of an X.509 proxy (certificate, key, certificate) without its first and last lines',
    `+ cat x509up_u1000\n${proxy.split('\n').slice(1, -2).join('\n')}\ncat: write error`,
    bodyLines(proxy),
  ],
  [
    'a key file in base64 on one line (an env var)',
    `export GLIDEIN_KEY_B64=${Buffer.from(ed25519).toString('base64')}\nexec condor_master`,
    [Buffer.from(ed25519).toString('base64')],
  ],
  [
    'an X.509 proxy in base64, wrapped at 76 columns (base64 of the file)',
    `+ base64 "$X509_USER_PROXY"\n${wrap(Buffer.from(proxy).toString('base64'), 76)}\n+ exit 0`,
    [Buffer.from(proxy).toString('base64')],
  ],
  ['lowercase PEM labels', `stderr: ${lower(rsa)}done`, bodyLines(rsa)],
  [
    'SECRET_KEY= (a python traceback)',
    `  File "/p/work/g1/relay.py", line 12, in <module>\n    SECRET_KEY=${word}\nNameError: name 'x' is not defined`,
    [word],
  ],
  ['PRIVATE_KEY= (an env dump)', `HOME=/p/home/jusers/smith1\nPRIVATE_KEY=${word}\nSHELL=/bin/bash`, [word]],
  ['credential= (a tool line)', `condor_store_cred: credential=${word} user=glidein`, [word]],
  [
    'Proxy-Authorization: Basic (curl -v through KIT)',
    `> CONNECT collector.example.org:9618 HTTP/1.1\n> Proxy-Authorization: Basic ${basic}\n< HTTP/1.1 200 ` +
      `Connection established`,
    [basic, word],
  ],
  [
    'a quoted password with spaces (a python traceback)',
    `Traceback (most recent call last):\n  File "/p/work/g1/relay.py", line 40, in connect\n    password = ` +
      `"${password}"\nValueError: bad`,
    [password, password.split(' ')[2]],
  ],
  [
    'a quoted password with spaces (JSON)',
    `{"user": "glidein", "password": '${password}', "host": "login01"}`,
    [password.split(' ')[2]],
  ],
  [
    'user:password@ without a scheme (cvmfs proxy)',
    `CVMFS_HTTP_PROXY=glidein:${word}@squid.kit.edu:3128\nCernVM-FS: using proxy squid.kit.edu:3128`,
    [word],
  ],
  [
    "proxychains' ProxyList line with a user and its secret",
    `[proxychains] config:\n[ProxyList]\nsocks5 127.0.0.1 41002 glidein ${relaySecret}\n[proxychains] ` +
      `Strict chain ... OK`,
    [relaySecret],
  ],
];

describe('redact on a corpus of real-format secrets in site logs', () => {
  it.each(CORPUS)('%s', (_what, text, secrets) => {
    expect(leaked(redact(text), secrets)).toEqual([]);
    expect(leaked(redactKeepingLines(text), secrets)).toEqual([]);
    // The same number of lines, each in its place, when asked to keep them.
    expect(redactKeepingLines(text).split('\n')).toHaveLength(text.split('\n').length);
  });

  it('keeps the lines around a secret and says what was there', () => {
    const text = `05/01/24 12:00:02 (pid:4242) Starting\nstderr: ${lower(rsa)}05/01/24 12:00:05 (pid:4242) exiting`;
    expect(redact(text)).toBe(
      '05/01/24 12:00:02 (pid:4242) Starting\nstderr: [redacted private key]\n05/01/24 12:00:05 (pid:4242) exiting',
    );
    expect(redact(`IDTOKEN_${jwt}\nMaster started`)).toBe('IDTOKEN_[redacted token]\nMaster started');
    expect(redact(`password="${password}" next=1`)).toBe('password=[redacted] next=1');
    expect(redact(`socks5 127.0.0.1 41002 glidein ${relaySecret}`)).toBe('socks5 127.0.0.1 41002 glidein [redacted]');
  });

  it('leaves ordinary site text exactly as it is, in strings and in results', () => {
    const sshKey = Buffer.concat([
      Buffer.from([0, 0, 0, 11]),
      Buffer.from('ssh-ed25519'),
      Buffer.from([0, 0, 0, 32]),
      randomBytes(32),
    ]).toString('base64');
    const text = [...SITE_TEXT, `login01 ssh-ed25519 ${sshKey}`].join('\n');
    expect(redact(text)).toBe(text);
    for (const line of SITE_TEXT) expect(redact(line)).toBe(line);
    const report = {
      end: 'glidein-exited',
      checks: 3,
      last: { at: '2025-03-14T09:26:53.589Z', tunnel: true, glidein: false, registered: false, detail: SITE_TEXT[2] },
      allocation: { jobId: '1234567', node: 'jwc01', timeLeftMs: 86_000_000, reused: false },
      repositories: ['cms.cern.ch', 'oasis.opensciencegrid.org'],
      staged: [{ kind: 'idToken', file: '/p/work/g1/tokens.d/pool.idtoken', expiresAt: '2030-01-01T00:00:00.000Z' }],
      slots: Array.from({ length: 250 }, (_, i) => ({ slot: i, runId: `${i}-4f3a9c2e`, ghost: undefined })),
    };
    expect(redactResult(report)).toEqual(report);
  });

  it.each([
    ['lines of "eyJ" and base64url without a dot', ('eyJ' + 'a'.repeat(50) + '\n').repeat(20_000)],
    ['"eyJ" glued to letters, over and over', 'aeyJ'.repeat(260_000)],
    ['one run of base64', 'aB3/'.repeat(260_000)],
    ['user:password-like words', ('a:' + 'b'.repeat(150) + ' ').repeat(7_000)],
    ['END lines', '-----END PRIVATE KEY-----\n'.repeat(40_000)],
  ])('redacts 1 MiB of %s in linear time', (_what, text) => {
    const started = Date.now();
    redactKeepingLines(text);
    redact(text);
    // Linear is well under a second here; quadratic was 45 s.
    expect(Date.now() - started).toBeLessThan(8_000);
  });
});
