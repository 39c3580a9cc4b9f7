/**
 * Every suite against the real parts (test/README.md); the site-backed suites share one local test site
 * (globalSetup). The suites on the in-memory fake site (test/fake-site) have their own config, jest.fast.config.js:
 * `scripts/dev test` runs it after this one, as an unprivileged user.
 *
 * TEMPORAL_BACKEND=cluster runs the suites on a two-node Temporal cluster on PostgreSQL (sandbox/cluster.ts) that
 * globalSetup starts, instead of a dev server per file; the engine's own failures (test/cluster) need that cluster and
 * run only then. `npm run test:cluster` runs CLUSTER_SUITES there; `scripts/dev test` runs them only there
 * (GLIDEIN_CLUSTER_SUITES=on-cluster leaves them out of the dev-server pass), and everything else on dev servers.
 * CLUSTER_SUITES: the whole programs, LaunchGlidein and the fleet in the box (not box-itself, the box's own test),
 * and the fleet with a real Schedule on the local site.
 */
const cluster = process.env.TEMPORAL_BACKEND === 'cluster';
const CLUSTER_SUITES = [
  '<rootDir>/test/programs/',
  '<rootDir>/test/box/jsc-box(-strict)?\\.test\\.ts$',
  '<rootDir>/test/local-site/fleet-count\\.test\\.ts$',
];
const elsewhere = !cluster && process.env.GLIDEIN_CLUSTER_SUITES === 'on-cluster' ? CLUSTER_SUITES : [];

module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  testPathIgnorePatterns: [
    '/node_modules/',
    '<rootDir>/test/fake-site/',
    ...(cluster ? [] : ['<rootDir>/test/cluster/']),
    ...elsewhere,
  ],
  globalSetup: '<rootDir>/test/support/site-global-setup.ts',
  globalTeardown: '<rootDir>/test/support/site-global-teardown.ts',
  maxWorkers: 1,
  testTimeout: 120000,
  transform: { '^.+\\.ts$': 'ts-jest' },
};
