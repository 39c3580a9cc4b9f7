/** The Temporal connection as every Temporal tool finds it: TEMPORAL_* variables and the TOML profiles (envconfig). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { temporalTarget } from '../../src/temporal-connection';
import { configFromEnv, describeConfig } from '../../src/worker';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'envconfig-'));
  // Read as files by envconfig (their content is only checked by the TLS handshake).
  writeFileSync(path.join(dir, 'client.pem'), 'client certificate placeholder');
  writeFileSync(path.join(dir, 'client.key'), 'client key placeholder');
  writeFileSync(
    path.join(dir, 'temporal.toml'),
    [
      '[profile.default]',
      'address = "localhost:7233"',
      '',
      '[profile.cloud]',
      'address = "glideins.a1b2c.tmprl.cloud:7233"',
      'namespace = "glideins.a1b2c"',
      'api_key = "not-a-real-key-but-secret"',
      '',
      '[profile.mtls]',
      'address = "temporal.example.org:7233"',
      'namespace = "cms"',
      '[profile.mtls.tls]',
      `client_cert_path = "${path.join(dir, 'client.pem')}"`,
      `client_key_path = "${path.join(dir, 'client.key')}"`,
      'server_name = "temporal.example.org"',
      '',
    ].join('\n'),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('temporalTarget', () => {
  it('defaults to localhost:7233 and the default namespace', () => {
    const target = temporalTarget({ HOME: dir });
    expect(target).toMatchObject({
      address: 'localhost:7233',
      namespace: 'default',
      secured: { tls: false, apiKey: false },
    });
  });

  it('takes TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and TEMPORAL_API_KEY (with TLS, as the CLI does for API keys)', () => {
    const target = temporalTarget({
      HOME: dir,
      TEMPORAL_ADDRESS: 'x.example:7233',
      TEMPORAL_NAMESPACE: 'ns',
      TEMPORAL_API_KEY: 'k',
    });
    expect(target).toMatchObject({ address: 'x.example:7233', namespace: 'ns', secured: { apiKey: true, tls: true } });
    expect(target.connection.apiKey).toBe('k');
  });

  it('reads a named profile of the TOML file: an API key, or mTLS client certificates', () => {
    const file = path.join(dir, 'temporal.toml');
    const cloud = temporalTarget({ HOME: dir, TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud' });
    expect(cloud).toMatchObject({ address: 'glideins.a1b2c.tmprl.cloud:7233', namespace: 'glideins.a1b2c' });
    expect(cloud.secured).toEqual({ tls: true, apiKey: true });
    const mtls = temporalTarget({ HOME: dir, TEMPORAL_CONFIG_FILE: file }, 'mtls');
    expect(mtls).toMatchObject({
      address: 'temporal.example.org:7233',
      namespace: 'cms',
      secured: { tls: true, apiKey: false },
    });
    expect(mtls.connection.tls).toMatchObject({ serverNameOverride: 'temporal.example.org' });
  });

  it('names the setting when the configuration is wrong', () => {
    expect(() =>
      temporalTarget({ HOME: dir, TEMPORAL_CONFIG_FILE: path.join(dir, 'temporal.toml'), TEMPORAL_PROFILE: 'nosuch' }),
    ).toThrow(/Temporal connection settings .*nosuch/);
  });

  it('the worker logs whether TLS and an API key are used, never the key', () => {
    const config = configFromEnv({
      HOME: dir,
      TEMPORAL_ADDRESS: 'x.example:7233',
      TEMPORAL_API_KEY: 'very-secret-key',
    });
    const logged = JSON.stringify(describeConfig(config));
    expect(logged).not.toContain('very-secret-key');
    expect(describeConfig(config)).toMatchObject({ address: 'x.example:7233', apiKey: true, tls: true });
  });
});
