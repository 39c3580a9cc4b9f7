/**
 * One pino logger for the worker process; Temporal's runtime logs through it too: workflow and activity `log`, the
 * SDK's own lines, and the native Core's (forwarded). Every activity's lines carry its workflowId (the SDK) and the
 * site and glideinId it works on (activityLogContext below).
 *   LOG_LEVEL   pino's level names (default info), for the runtime too
 *   LOG_FORMAT  json (one JSON object a line) or pretty (pino-pretty); default pretty on a terminal, else json
 */
import {
  DefaultLogger,
  Runtime,
  type ActivityInterceptorsFactory,
  type LogEntry,
  type LogLevel,
} from '@temporalio/worker';
import type { MetricsExporterConfig } from '@temporalio/worker';
import pino, { type DestinationStream, type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { redact, redactDeep } from './common/redact';

export type LogFormat = 'json' | 'pretty';

/** LOG_FORMAT when set (json or pretty), else pretty on a terminal and JSON otherwise (files, journald, collectors). */
export function logFormat(env: NodeJS.ProcessEnv = process.env, isTTY = process.stdout.isTTY === true): LogFormat {
  const asked = env.LOG_FORMAT?.trim().toLowerCase();
  if (asked === 'json' || asked === 'pretty') return asked;
  if (asked) throw new Error(`LOG_FORMAT: expected json or pretty, got ${JSON.stringify(env.LOG_FORMAT)}`);
  return isTTY ? 'pretty' : 'json';
}

/**
 * A logger whose every line is redacted, fields included, and whose errors keep their message, type, stack and
 * cause under whatever key they appear (pino serialises only a top-level `err`; anything else becomes `{}`).
 * `destination` is for tests; the default writes to stdout. Redaction happens before formatting: a pretty line is
 * as clean as a JSON one.
 */
export function createLogger(destination?: DestinationStream, format: LogFormat = 'json'): Logger {
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
  const log =
    format === 'pretty'
      ? pino(options, prettyStream(destination))
      : destination
        ? pino(options, destination)
        : pino(options);
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

/**
 * pino-pretty's formatter on the line pino wrote, synchronously (its transport stream formats on a later tick, and a
 * line logged just before process.exit would be lost).
 */
function prettyStream(destination?: DestinationStream): DestinationStream {
  const out = destination ?? pino.destination({ dest: 1, sync: true });
  const prettify = prettyFactory({
    colorize: !destination && process.stdout.isTTY === true,
    translateTime: 'SYS:standard',
  });
  return { write: (line: string) => out.write(prettify(line)) };
}

export const logger = createLogger(undefined, logFormat());

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

/** Core's own lines: its warnings and errors, or everything down to LOG_LEVEL=trace (debug is Core's chatter). */
export function coreLevel(level: string | undefined): LogLevel {
  const sdk = runtimeLevel(level);
  return sdk === 'TRACE' || sdk === 'ERROR' ? sdk : 'WARN';
}

export interface RuntimeSettings {
  /** Core's metrics exporter (src/metrics.ts: Prometheus on METRICS_ADDRESS); none when absent. */
  metrics?: MetricsExporterConfig;
}

let installed = false;

/**
 * The process's one Temporal Runtime (Runtime.install may run once): its logs through this logger, Core's forwarded to
 * it, and its metrics exporter. A second call does nothing; a failed one (the metrics port taken) throws and can be
 * retried.
 */
export function installRuntime(settings: RuntimeSettings = {}): void {
  if (installed) return;
  const level = process.env.LOG_LEVEL;
  // The SDK's logs (workflow and activity `log`) at the level LOG_LEVEL asks for; LOG_LEVEL=debug shows every site
  // command.
  Runtime.install({
    logger: new DefaultLogger(runtimeLevel(level), (entry) => runtimeLogSink(entry)),
    telemetryOptions: {
      logging: { filter: { core: coreLevel(level), other: 'ERROR' }, forward: {} },
      ...(settings.metrics ? { metrics: settings.metrics } : {}),
    },
  });
  installed = true;
}

/** The runtime with the logger alone (scripts/demo.ts). */
export function installRuntimeLogger(): void {
  installRuntime();
}

/** Whom an activity works for, from its first argument: a GlideinRef ({ site, glideinId }), a fleet request, a site. */
export function activitySubject(args: readonly unknown[]): { site?: string; glideinId?: string } {
  const first = args[0];
  const name = (v: unknown) => (typeof v === 'string' && v.length > 0 && v.length <= 200 ? v : undefined);
  if (typeof first === 'string') return name(first) ? { site: first } : {};
  if (first === null || typeof first !== 'object') return {};
  const { site, glideinId } = first as { site?: unknown; glideinId?: unknown };
  return {
    ...(name(site) ? { site: site as string } : {}),
    ...(name(glideinId) ? { glideinId: glideinId as string } : {}),
  };
}

/**
 * Adds site and glideinId to every line an activity logs (its `log`, and the SDK's "Activity failed"), next to the
 * SDK's workflowId, activityType and attempt. The SDK logs "Activity started" before interceptors run: that debug
 * line has the workflowId only.
 */
export const activityLogContext: ActivityInterceptorsFactory = () => {
  let subject: { site?: string; glideinId?: string } = {};
  return {
    inbound: {
      execute(input, next) {
        subject = activitySubject(input.args);
        return next(input);
      },
    },
    outbound: {
      getLogAttributes: (input, next) => next({ ...input, ...subject }),
    },
  };
};
