import { execFileSync } from 'node:child_process';
import { commandLine, quoteArg } from '../../src/remote/quote';

const HOSTILE = [
  '',
  ' ',
  "it's",
  '$(touch /tmp/pwned)',
  '`id`',
  '"; rm -rf / #',
  'a\nb',
  '\t\\n\\',
  '-oProxyCommand=sh -c id',
  '*',
  '~root',
  '$HOME',
  "'''",
  'ünïcödé ☃',
  '!event',
  '{a,b}',
];

/** Runs the quoted line through a real shell and returns the words it sees. */
function shellWords(line: string): string[] {
  const out = execFileSync('sh', ['-c', `${line}`], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

describe('quoting argv for a remote shell', () => {
  it.each(HOSTILE.map((s) => [s]))('passes %j through sh -c unchanged', (arg) => {
    expect(shellWords(commandLine(['printf', '%s\\0', arg]))).toEqual([arg]);
  });

  it('passes every hostile string at once, in order', () => {
    expect(shellWords(commandLine(['printf', '%s\\0', ...HOSTILE]))).toEqual(HOSTILE);
  });

  it('sets environment variables through env, values quoted, names checked', () => {
    const line = commandLine(['sh', '-c', 'printf "%s\\0" "$X"'], { X: "$(id) `id` 'q'" });
    expect(shellWords(line)).toEqual(["$(id) `id` 'q'"]);
    expect(() => commandLine(['true'], { 'A;B': '1' })).toThrow('environment variable name');
  });

  it('leaves plain words readable and refuses what a command line cannot carry', () => {
    expect(quoteArg('/usr/bin/ssh')).toBe('/usr/bin/ssh');
    expect(quoteArg('a b')).toBe("'a b'");
    expect(() => quoteArg('a\0b')).toThrow('NUL');
    expect(() => commandLine([])).toThrow('empty command');
  });
});
