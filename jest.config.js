/**
 * Every suite against the real parts; the site-backed suites share one local test site (globalSetup). The fast
 * suite (test/fast, on the in-memory fake site) has its own config, jest.fast.config.js: `scripts/dev test` runs it
 * after this one, as an unprivileged user.
 *
 * TEMPORAL_BACKEND=cluster runs the suites on a two-node Temporal cluster on PostgreSQL (sandbox/cluster.ts) that
 * globalSetup starts, instead of a dev server per file; the engine's own failures (test/engine) need that cluster and
 * run only then.
 */
const cluster = process.env.TEMPORAL_BACKEND === 'cluster';

module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/fast/', ...(cluster ? [] : ['<rootDir>/test/engine/'])],
  globalSetup: '<rootDir>/test/setup/global-setup.ts',
  globalTeardown: '<rootDir>/test/setup/global-teardown.ts',
  maxWorkers: 1,
  testTimeout: 120000,
  transform: { '^.+\\.ts$': 'ts-jest' },
};
