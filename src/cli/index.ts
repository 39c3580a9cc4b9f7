#!/usr/bin/env node
/**
 * `glidein`: the operator's command. Launch, follow, list, drain and stop glideins; read their logs; check a site;
 * manage a fleet's schedule; run the worker. The Temporal server is found as every Temporal tool finds it
 * (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS, API key, TEMPORAL_PROFILE and the `temporal` CLI's TOML file); `--json`
 * prints what a script needs. Exit codes: 0 done, 1 what was asked failed (the launch, a hop of the check),
 * 2 bad usage or input, 3 the Temporal server could not be reached, 4 no such glidein or schedule.
 *
 * The command line is parsed and checked once (./parse.ts), then run by the command's file in ./commands/.
 */
import { CommanderError } from 'commander';
import { drain, stop } from './commands/drain-stop';
import {
  fleetCount,
  fleetCreate,
  fleetDelete,
  fleetDrain,
  fleetPause,
  fleetResume,
  fleetStatus,
  fleetUpdate,
} from './commands/fleet';
import { launch } from './commands/launch';
import { list } from './commands/list';
import { logs } from './commands/logs';
import { siteCheck, siteSchema } from './commands/site';
import { status } from './commands/status';
import { worker } from './commands/worker';
import { Session, terminalIo, type Context, type Io } from './context';
import { CliError, EXIT } from './errors';
import { parseCommandLine, type CommandName, type InputOf, type Invocation } from './parse';
import { forTerminal } from './terminal';

export { EXIT, CliError };

type Runners = { [K in CommandName]: (input: InputOf<K>, ctx: Context) => Promise<void> | void };

/** Each command's file: the type makes every command of the parser's table have one. */
const RUN: Runners = {
  worker,
  launch,
  status,
  list,
  drain,
  stop,
  logs,
  'site check': siteCheck,
  'site schema': siteSchema,
  'fleet create': fleetCreate,
  'fleet update': fleetUpdate,
  'fleet pause': fleetPause,
  'fleet resume': fleetResume,
  'fleet count': fleetCount,
  'fleet drain': fleetDrain,
  'fleet status': fleetStatus,
  'fleet delete': fleetDelete,
};

function dispatch<K extends CommandName>(invocation: { command: K; input: InputOf<K> }, ctx: Context) {
  return RUN[invocation.command](invocation.input, ctx);
}

export async function runCli(argv: string[], rawIo: Io): Promise<number> {
  const io = terminalIo(rawIo);
  let session: Session | undefined;
  try {
    const invocation: Invocation = parseCommandLine(argv, io);
    session = new Session(io, invocation.globals);
    await dispatch(invocation, session);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (err instanceof CliError) {
      if (err.message) io.err(`glidein: ${err.message}`);
      return err.exitCode;
    }
    io.err(`glidein: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT.failed;
  } finally {
    await session?.close();
  }
}

if (require.main === module) {
  runCli(process.argv.slice(2), {
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
    tty: Boolean(process.stdout.isTTY),
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`glidein: ${forTerminal(String(err))}\n`);
      process.exitCode = EXIT.failed;
    },
  );
}
