/**
 * Every constant script the worker runs on a site parses, under dash (Debian's sh) and bash (the sh of JSC's
 * login and compute nodes): a syntax slip in one would otherwise show only on the site, as a step that fails.
 */
import { execFileSync } from 'node:child_process';
import * as scripts from '../../src/site/scripts';
import { BASH_SCRIPTS, SITE_SCRIPTS } from '../../src/site/scripts';

/** Every shell text the scripts module exports: the scripts, the prelude, the spawn's child. */
const ALL: Record<string, string> = {};
for (const [name, value] of Object.entries(scripts) as Array<[string, unknown]>)
  if (typeof value === 'string' && value.includes('$')) ALL[name] = value;

/** Scripts that use bash features on purpose (run with `bash -c`). */
const BASH_ONLY = BASH_SCRIPTS;

it('finds the scripts', () => {
  expect(Object.keys(ALL).length).toBeGreaterThanOrEqual(10);
  expect(Object.keys(ALL)).toEqual(expect.arrayContaining(Object.keys(SITE_SCRIPTS)));
  expect(Object.values(SITE_SCRIPTS).every((s) => Object.values(ALL).includes(s))).toBe(true);
});

describe.each(Object.entries(ALL))('%s', (name, script) => {
  it.each(BASH_ONLY.has(name) ? ['bash'] : ['dash', 'bash'])('parses under %s', (shell) => {
    expect(() => execFileSync(shell, ['-n', '-c', script], { encoding: 'utf8', stdio: 'pipe' })).not.toThrow();
  });
});
