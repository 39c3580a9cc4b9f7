/**
 * Every suite against the real parts; the site-backed suites share one local test site (globalSetup). The fast
 * suite (test/fast, on the in-memory fake site) has its own config, jest.fast.config.js: `scripts/dev test` runs it
 * after this one, as an unprivileged user.
 *
 * TEMPORAL_BACKEND=cluster runs the suites on a two-node Temporal cluster on PostgreSQL (sandbox/cluster.ts) that
 * globalSetup starts, instead of a dev server per file; the engine's own failures (test/engine) need that cluster and
 * run only then. `npm run test:cluster` runs CLUSTER_SUITES there; `scripts/dev test` runs them only there
 * (GLIDEIN_CLUSTER_SUITES=on-cluster leaves them out of the dev-server pass), and everything else on dev servers.
 */
const cluster = process.env.TEMPORAL_BACKEND === 'cluster';
const CLUSTER_SUITES = ['<rootDir>/test/e2e/', '<rootDir>/test/crash/', '<rootDir>/test/workflow/fleet\\.test\\.ts$'];
const elsewhere = !cluster && process.env.GLIDEIN_CLUSTER_SUITES === 'on-cluster' ? CLUSTER_SUITES : [];

module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  testPathIgnorePatterns: [
    '/node_modules/',
    '<rootDir>/test/fast/',
    ...(cluster ? [] : ['<rootDir>/test/engine/']),
    ...elsewhere,
  ],
  globalSetup: '<rootDir>/test/setup/global-setup.ts',
  globalTeardown: '<rootDir>/test/setup/global-teardown.ts',
  maxWorkers: 1,
  testTimeout: 120000,
  transform: { '^.+\\.ts$': 'ts-jest' },
};
