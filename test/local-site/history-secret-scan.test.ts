import { readFileSync } from 'node:fs';
import { redact } from '../../src/common/redact';
import { leaksIn, secretFragments } from '../support/secrets';
import { SITE_PATHS } from '../../sandbox/local-site';

describe('secrets', () => {
  it('the history scan knows every line of the test site keys and finds a planted one', () => {
    const fragments = secretFragments();
    const keyLine = readFileSync(SITE_PATHS.operatorKey, 'utf8').split('\n')[2];
    expect(fragments).toContain(keyLine);
    expect(leaksIn(JSON.stringify({ events: [{ input: `x${keyLine}y` }] }), fragments)).toHaveLength(1);
    expect(
      leaksIn(
        JSON.stringify({ events: [{ input: 'identityFile: /tmp/glidein-local-site/operator/id_ed25519' }] }),
        fragments,
      ),
    ).toEqual([]);
  });

  it("knows the operator's pool token by its signature, not by its public header", () => {
    const token = readFileSync(SITE_PATHS.operatorToken, 'utf8').trim();
    const fragments = secretFragments();
    expect(fragments).toContain(token.split('.')[2]);
    expect(fragments).not.toContain(token.split('.')[0]);
  });

  it('redacts key material, certificates, tokens and passwords from messages and logs', () => {
    const key = readFileSync(SITE_PATHS.operatorKey, 'utf8');
    const text = redact(
      `stderr: ${key}\nBearer token=abc.def password: hunter2 ` +
        `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjbXMifQ.c2lnbmF0dXJlc2lnbg`,
    );
    expect(text).not.toContain(key.split('\n')[2]);
    expect(text).toContain('[redacted private key]');
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('eyJhbGciOiJIUzI1NiJ9');
  });
});
