/**
 * The one place that turns argv into a shell command line. Every remote command goes through here;
 * nothing else in the project builds shell strings.
 */
const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** POSIX single-quoting: 'it'\''s'. Safe for any byte except NUL, which a command line cannot carry. */
export function quoteArg(arg: string): string {
  if (arg.includes('\0')) throw new Error('a command argument contains a NUL byte');
  if (arg !== '' && SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * A command line for `sh -c` on the remote side. Environment variables become `env NAME=value … argv`, so
 * no shell assignment syntax is involved and names are checked.
 */
export function commandLine(argv: readonly string[], env?: Readonly<Record<string, string>>): string {
  return withEnv(argv, env).map(quoteArg).join(' ');
}

/** argv run with extra environment variables: `env NAME=value … argv`, names checked (no shell assignment). */
export function withEnv(argv: readonly string[], env?: Readonly<Record<string, string>>): string[] {
  if (argv.length === 0) throw new Error('empty command');
  if (!env || Object.keys(env).length === 0) return [...argv];
  const prefix = ['env'];
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) throw new Error(`environment variable name ${JSON.stringify(name)} is not valid`);
    prefix.push(`${name}=${value}`);
  }
  // `env` would read an argv[0] containing '=' as another assignment.
  if (argv[0].includes('=')) throw new Error(`command ${JSON.stringify(argv[0])} contains '='`);
  return [...prefix, ...argv];
}
