/** Values an attacker or a typo could put into a request or a site profile. Each must be refused, or be harmless. */
export const HOSTILE_STRINGS: Array<[string, string]> = [
  ['shell command substitution', '$(touch /tmp/pwned)'],
  ['backticks', '`id`'],
  ['a command separator', 'login.example; rm -rf ~'],
  ['a pipe', 'a|b'],
  ['option injection', '-oProxyCommand=touch /tmp/pwned'],
  ['a leading dash', '-v'],
  ['path traversal', '/tmp/../../etc/shadow'],
  ['a relative traversal', '../../etc/passwd'],
  ['a newline', 'ok\nsecond-line'],
  ['a carriage return', 'ok\rx'],
  ['a NUL byte', 'ok\u0000x'],
  ['an escape sequence', '\u001b[31mred'],
  ['a right-to-left override', 'abc\u202Egpj.exe'],
  ['spaces', 'a b'],
  ['quotes', `"'`],
  ['a glob', '*'],
  ['a tilde', '~root'],
  ['an empty string', ''],
  ['an oversized value', 'a'.repeat(5000)],
];

export const HOSTILE_TYPES: Array<[string, unknown]> = [
  ['a number', 42],
  ['an object', { nested: true }],
  ['an array', ['x']],
  ['null', null],
  ['a boolean', true],
];

/** Strings that carry control characters or exceed any limit: refused even where free text is allowed. */
export const ALWAYS_REFUSED = new Set([
  'a newline',
  'a carriage return',
  'a NUL byte',
  'an escape sequence',
  'an oversized value',
]);
