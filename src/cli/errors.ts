/** How the `glidein` command ends: its exit codes, and the error that ends it with one. */
import { UsageError } from './input';

export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3, notFound: 4 } as const;

/** An error that ends the command with this exit code and message (no stack: the message says what to do). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Runs a check of ./input.ts, its UsageError ending the command with exit code 2. */
export function usage<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof UsageError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
}
