/**
 * `npm run test:fast`: what runs without root, sshd, FUSE or a test site (test/README.md): the unit tests
 * (test/unit), the replay of committed histories (test/replay), and the workflow tests against the in-memory fake site
 * (test/fake-site) on one dev server shared by the run (globalSetup), which never touches a test site. The jest cache
 * goes to a per-user directory, so any user can run it.
 */
const os = require('node:os');
const path = require('node:path');

module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['<rootDir>/test/{fake-site,unit,replay}/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  globalSetup: '<rootDir>/test/support/fast-global-setup.ts',
  globalTeardown: '<rootDir>/test/support/fast-global-teardown.ts',
  testSequencer: '<rootDir>/test/support/fast-sequencer.js',
  cacheDirectory: process.env.JEST_CACHE_DIR ?? path.join(os.tmpdir(), `jest-glidein-${os.userInfo().uid}`),
  // Most of the workflow tests' time is waiting on the dev server: a third worker overlaps it with the CPU-bound suites.
  maxWorkers: 3,
  testTimeout: 60000,
  transform: { '^.+\\.ts$': 'ts-jest' },
};
