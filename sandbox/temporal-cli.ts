/** The official Temporal CLI on this machine (scripts/ensure-temporal finds it or builds it once). */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..');

export function temporalCli(): string {
  if (process.env.TEMPORAL_CLI) return process.env.TEMPORAL_CLI;
  const cli = execFileSync(path.join(ROOT, 'scripts', 'ensure-temporal'), {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  process.env.TEMPORAL_CLI = cli;
  return cli;
}
