/** One pino logger for the worker process; Temporal's runtime logs through it too (workflow and activity `log`). */
import { DefaultLogger, Runtime, type LogEntry, type LogLevel } from '@temporalio/worker';
import pino, { type DestinationStream, type Logger } from 'pino';
import { redact, redactDeep } from './common/redact';

/**
 * A logger whose every line is redacted, fields included, and whose errors keep their message, type, stack and
 * cause under whatever key they appear (pino serialises only a top-level `err`; anything else becomes `{}`).
 * `destination` is for tests; the default writes to stdout.
 */
export function createLogger(destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: process.env.LOG_LEVEL ?? 'info',
    base: { service: 'jsc-glidein' },
    // The hook has already turned errors into plain objects; pino's own err serializer would relabel them `Object`.
    serializers: { err: (value: unknown) => (value instanceof Error ? redactDeep(value) : value) },
    hooks: {
      // Last line of defence: nothing that looks like key material or a token leaves in a log line.
      logMethod(args, method) {
        method.apply(this, redactArgs(args) as Parameters<typeof method>);
      },
    },
  };
  const log = destination ? pino(options, destination) : pino(options);
  // Child bindings are serialised once, at child(), past both the hook and formatters.bindings (which pino applies
  // to the root's bindings only); children inherit this from the root.
  const child = log.child as unknown as (
    this: Logger,
    bindings: pino.Bindings,
    childOptions?: pino.ChildLoggerOptions,
  ) => Logger;
  log.child = function (this: Logger, bindings: pino.Bindings, childOptions?: pino.ChildLoggerOptions) {
    return child.call(this, redactDeep(bindings) as pino.Bindings, childOptions);
  } as unknown as typeof log.child;
  return log;
}

export const logger = createLogger();

function redactArgs(args: unknown[]): unknown[] {
  const [first, ...rest] = args;
  // pino logs a leading Error as `{ err }` with its message as the line's msg: keep that shape, redacted.
  if (first instanceof Error)
    return [{ err: redactDeep(first) }, ...(rest.length > 0 ? rest.map(redactArg) : [redact(first.message)])];
  return args.map(redactArg);
}

function redactArg(arg: unknown): unknown {
  return typeof arg === 'string' ? redact(arg) : redactDeep(arg);
}

const LEVELS: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/** The Runtime logger's sink: the SDK's `meta` (errors under `error`, `failure`, ...) becomes this line's fields. */
export function runtimeLogSink(entry: LogEntry, target: Logger = logger): void {
  const { meta, message, level } = entry;
  target[LEVELS[level]](meta ?? {}, message);
}

/** pino's level name as the SDK's: debug → DEBUG; unknown or unset → INFO. */
export function runtimeLevel(level: string | undefined): LogLevel {
  const upper = (level ?? 'info').toUpperCase();
  return (['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'] as const).find((l) => l === upper) ?? 'INFO';
}

let installed = false;

export function installRuntimeLogger(): void {
  if (installed) return;
  installed = true;
  // The SDK's logs (workflow and activity `log`) at the level LOG_LEVEL asks for; LOG_LEVEL=debug shows every site command.
  Runtime.install({ logger: new DefaultLogger(runtimeLevel(process.env.LOG_LEVEL), (entry) => runtimeLogSink(entry)) });
}
