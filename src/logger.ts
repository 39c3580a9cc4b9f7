/** One pino logger for the worker process; Temporal's runtime logs through it too (workflow and activity `log`). */
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import pino from 'pino';
import { redact } from './common/redact';

export const logger = pino({
  level: process.env.LOG_LEVEL ?? 'info',
  base: { service: 'jsc-glidein' },
  hooks: {
    // Last line of defence: nothing that looks like key material or a token leaves in a log line.
    logMethod(args, method) {
      method.apply(this, args.map((a) => (typeof a === 'string' ? redact(a) : a)) as Parameters<typeof method>);
    },
  },
});

let installed = false;

export function installRuntimeLogger(): void {
  if (installed) return;
  installed = true;
  const levels: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' };
  Runtime.install({
    logger: new DefaultLogger('INFO', (entry) => {
      const { meta, message, level } = entry;
      logger[levels[level]](meta ?? {}, message);
    }),
  });
}
