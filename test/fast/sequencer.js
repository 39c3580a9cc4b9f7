/**
 * Test order of `npm run test:fast`: the CPU-bound suites (ESLint in a subprocess, the hostile corpus) first, while
 * the workflow files (mostly waiting on the dev server) fill the other workers; then jest's own order (slowest known
 * first). On a cold cache jest would otherwise start them last, alone, or squeezed against a timeout.
 */
/* global require, module */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- jest loads a test sequencer untransformed, as CommonJS
const Sequencer = require('@jest/test-sequencer').default;

const FIRST = ['/test/unit/lint-rules.test.ts', '/test/unit/hostile-input.test.ts'];

class FastSequencer extends Sequencer {
  sort(tests) {
    const rank = (t) => {
      const i = FIRST.findIndex((f) => t.path.endsWith(f));
      return i < 0 ? FIRST.length : i;
    };
    const sorted = super.sort(tests);
    return [...sorted].sort((a, b) => rank(a) - rank(b));
  }
}

module.exports = FastSequencer;
