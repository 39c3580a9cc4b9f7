/**
 * Test order of `npm run test:fast`. The lint-rules suite runs ESLint with type information in a child process
 * under a 60 s timeout: it starts first, beside the workflow files (mostly waiting on the dev server), and the
 * other CPU-bound suite (the hostile corpus) only after them. Within each group, jest's own order.
 */
/* global require, module */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- jest loads a test sequencer untransformed, as CommonJS
const Sequencer = require('@jest/test-sequencer').default;

const rank = (path) => {
  if (path.endsWith('/test/unit/lint-rules.test.ts')) return 0;
  if (path.includes('/test/fake-site/')) return 1;
  if (path.endsWith('/test/unit/hostile-input.test.ts')) return 2;
  return 3;
};

class FastSequencer extends Sequencer {
  sort(tests) {
    return [...super.sort(tests)].sort((a, b) => rank(a.path) - rank(b.path));
  }
}

module.exports = FastSequencer;
