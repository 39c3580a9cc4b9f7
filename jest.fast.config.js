/**
 * `npm run test:fast`: what runs without root, sshd, FUSE or the local test site (no globalSetup): the pure unit
 * tests, the replay of committed histories, and the workflow tests against the in-memory fake site (test/fast) on a
 * dev server. The jest cache goes to a per-user directory, so any user can run it.
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
  cacheDirectory: process.env.JEST_CACHE_DIR ?? path.join(os.tmpdir(), `jest-glidein-${os.userInfo().uid}`),
  maxWorkers: 2,
  testTimeout: 60000,
  transform: { '^.+\\.ts$': 'ts-jest' },
};
