/**
 * `npm run test:fast`: what runs without root, sshd, FUSE or a test site: the pure unit
 * tests, the replay of committed histories, and the workflow tests against the in-memory fake site (test/fast) on one
 * dev server shared by the run (globalSetup), which never touches a test site. The jest cache goes to a per-user
 * directory, so any user can run it.
 */
const os = require('node:os');
const path = require('node:path');

module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['<rootDir>/test/{fast,unit,replay}/**/*.test.ts'],
  // Reads the local test site's keys (it exists only where the site was built).
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/unit/secrets\\.test\\.ts$'],
  globalSetup: '<rootDir>/test/fast/global-setup.ts',
  globalTeardown: '<rootDir>/test/fast/global-teardown.ts',
  testSequencer: '<rootDir>/test/fast/sequencer.js',
  cacheDirectory: process.env.JEST_CACHE_DIR ?? path.join(os.tmpdir(), `jest-glidein-${os.userInfo().uid}`),
  // Most of the workflow tests' time is waiting on the dev server: a third worker overlaps it with the CPU-bound suites.
  maxWorkers: 3,
  testTimeout: 60000,
  transform: { '^.+\\.ts$': 'ts-jest' },
};
