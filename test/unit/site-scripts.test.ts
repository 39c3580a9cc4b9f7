/**
 * Every constant script the worker runs on a site parses, under dash (Debian's sh) and bash (the sh of JSC's
 * login and compute nodes): a syntax slip in one would otherwise show only on the site, as a step that fails.
 */
import { execFileSync } from 'node:child_process';
import * as scripts from '../../src/remote/scripts';
import { RETIRE_GLIDEIN } from '../../src/activities/cleanup';
import { CLAIM_GLIDEIN } from '../../src/activities/ownership';

const ALL: Record<string, string> = {
  ...Object.fromEntries(Object.entries(scripts).filter(([, v]) => typeof v === 'string')),
  RETIRE_GLIDEIN,
  CLAIM_GLIDEIN,
};

/** Scripts that use bash features on purpose (run with `bash -c`). */
const BASH_ONLY = new Set(['TCP_PROBE']);

it('finds the scripts', () => {
  expect(Object.keys(ALL).length).toBeGreaterThanOrEqual(10);
});

describe.each(Object.entries(ALL))('%s', (name, script) => {
  it.each(BASH_ONLY.has(name) ? ['bash'] : ['dash', 'bash'])('parses under %s', (shell) => {
    expect(() => execFileSync(shell, ['-n', '-c', script], { encoding: 'utf8', stdio: 'pipe' })).not.toThrow();
  });
});
