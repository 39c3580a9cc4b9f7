#!/usr/bin/env node
/**
 * `glidein`: the operator's command. Launch, follow, list, drain and stop glideins; read their logs; check a site;
 * manage a fleet's schedule; run the worker. The Temporal server is found as every Temporal tool finds it
 * (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS, API key, TEMPORAL_PROFILE and the `temporal` CLI's TOML file); `--json`
 * prints what a script needs. Exit codes: 0 done, 1 what was asked failed (the launch, a hop of the check),
 * 2 bad usage or input, 3 the Temporal server could not be reached, 4 no such glidein or schedule.
 */
import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import { Client, ScheduleNotFoundError, WorkflowNotFoundError, type Connection } from '@temporalio/client';
import { Command, CommanderError, Option } from 'commander';
import { z } from 'zod';
import { launchStartOptions } from '../workflows/launch-options';
import type { LogChunk, LogKind, SiteCheck } from '../common/site-tools';
import { fleetCommand } from './fleet';
import { checkSite, checkWorkflowId, launchInput, UsageError } from './input';
import { siteProfileSchema } from '../site/profile';
import { connectClient, temporalTarget, type TemporalTarget } from '../temporal-connection';
import { TEARDOWN_STEP_NAMES } from '../workflows/steps';
import { drainSignal, statusQuery, stopSignal, type GlideinStatus, type Phase } from '../workflows/messages';
import { followLaunch } from './follow';
import { renderStatus, renderTable } from './render';
import { forTerminal, oneLine } from './terminal';
import { closedOutcome, failureMessage } from './workflow-outcome';

export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3, notFound: 4 } as const;

const PHASES: readonly Phase[] = [
  'planning',
  'setup',
  'registering',
  'monitoring',
  'teardown',
  'done',
  'failed',
  'cancelled',
];

/** An error that ends the command with this exit code and message (no stack: the message says what to do). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

interface Globals {
  profile?: string;
  taskQueue: string;
  json?: boolean;
}

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  tty: boolean;
}

/** One connection per command, opened on first use. */
class Session {
  private connection?: Connection;
  target?: TemporalTarget;
  constructor(private readonly globals: () => Globals) {}

  async client(): Promise<Client> {
    const target = (this.target ??= (() => {
      try {
        return temporalTarget(process.env, this.globals().profile);
      } catch (err) {
        throw new CliError((err as Error).message, EXIT.usage);
      }
    })());
    if (!this.connection) {
      try {
        this.connection = await connectClient(target);
      } catch (err) {
        throw new CliError(
          `cannot reach the Temporal server at ${target.address}: ${(err as Error).message}\n` +
            'Set TEMPORAL_ADDRESS (and TEMPORAL_NAMESPACE, TLS or TEMPORAL_API_KEY), or pick a profile with --profile.',
          EXIT.unreachable,
        );
      }
    }
    return new Client({ connection: this.connection, namespace: target.namespace });
  }

  async close(): Promise<void> {
    await this.connection?.close();
  }
}

function validSite(site: string): string {
  return usage(() => checkSite(site));
}

/** Runs a check of ./input.ts, its UsageError ending the command with exit code 2. */
function usage<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof UsageError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
}

function validId(id: string): string {
  return usage(() => checkWorkflowId(id));
}

async function glideinStatus(client: Client, id: string): Promise<GlideinStatus> {
  try {
    return await client.workflow.getHandle(id).query(statusQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError)
      throw new CliError(`no glidein workflow ${JSON.stringify(id)}`, EXIT.notFound);
    throw err;
  }
}

/** Runs a tool workflow (CheckSite, ReadGlideinLog) on the worker and returns its result. */
async function runTool<T>(client: Client, globals: Globals, type: string, id: string, arg: unknown): Promise<T> {
  try {
    return (await client.workflow.execute(type, {
      taskQueue: globals.taskQueue,
      workflowId: `${id}-${randomBytes(4).toString('hex')}`,
      args: [arg],
      workflowExecutionTimeout: '10 minutes',
      staticSummary: `${type}: read-only`,
    })) as T;
  } catch (err) {
    throw new CliError(`${type} failed: ${failureMessage(err)}`, EXIT.failed);
  }
}

/** The Io with every text it prints made safe for a terminal (./terminal.ts): site text never reaches one raw. */
function terminalIo(io: Io): Io {
  return { ...io, out: (text) => io.out(forTerminal(text)), err: (text) => io.err(forTerminal(text)) };
}

export function buildProgram(rawIo: Io): { program: Command; session: Session } {
  const io = terminalIo(rawIo);
  const program = new Command('glidein');
  const globals = () => program.opts<Globals>();
  const s = new Session(globals);
  const print = (value: unknown, human: () => string) =>
    io.out(globals().json ? JSON.stringify(value, null, 2) : human());

  program
    .description(
      'HTCondor glideins on HPC sites, as Temporal workflows: launch, watch, drain, check a site, run the worker',
    )
    .option(
      '--profile <name>',
      "Temporal environment profile (the temporal CLI's TOML file; default: TEMPORAL_PROFILE)",
    )
    .addOption(new Option('--task-queue <queue>', 'task queue of the worker').env('TASK_QUEUE').default('glideins'))
    .option('--json', 'print JSON for scripts')
    .showHelpAfterError()
    .configureOutput({ writeOut: (t) => io.out(t.replace(/\n$/, '')), writeErr: (t) => io.err(t.replace(/\n$/, '')) })
    .exitOverride();

  program
    .command('worker')
    .description('run the worker: LaunchGlidein, GlideinFleet and their activities (profiles from --sites-dir)')
    .option('--sites-dir <dir>', 'directory of site profiles (default: SITES_DIR, else ./sites)')
    .action(async (opts: { sitesDir?: string }) => {
      if (opts.sitesDir) process.env.SITES_DIR = opts.sitesDir;
      if (globals().profile) process.env.TEMPORAL_PROFILE = globals().profile;
      process.env.TASK_QUEUE = globals().taskQueue;
      const { runWorker } = await import('../worker');
      await runWorker();
    });

  program
    .command('launch')
    .description('start one glidein at a site')
    .argument('<site>', 'site profile name (sites/<site>.yaml on the worker)')
    .option('--lifetime <duration>', "how long it runs before it drains, e.g. 12h (default: the profile's)")
    .option('--id <workflowId>', 'workflow id (default: glidein-<site>-<time>-<random>)')
    .option('--follow', 'show each setup step live, until the glidein registers or the launch fails')
    .action(async (site: string, opts: { lifetime?: string; id?: string; follow?: boolean }) => {
      // The workflow's own checks, and no fleet's slot: refused here, before anything starts.
      const { request, workflowId } = usage(() => launchInput(site, opts));
      const client = await s.client();
      const handle = await client.workflow.start('LaunchGlidein', {
        taskQueue: globals().taskQueue,
        workflowId,
        args: [request],
        // Found in the Web UI by this line; the details say who asked and what the lifecycle will do.
        ...launchStartOptions(request, { requestedBy: `${userInfo().username} via glidein launch` }),
      });
      if (!opts.follow) {
        print({ workflowId, runId: handle.firstExecutionRunId, site }, () =>
          [`started ${workflowId} at ${site}`, `follow it:  glidein status ${workflowId}   (or the Web UI)`].join('\n'),
        );
        return;
      }
      if (!globals().json) io.out(`launching ${workflowId} at ${site}`);
      // With --json, stdout carries only the final JSON: the view is silent.
      const end = await followLaunch(handle, { tty: io.tty, silent: globals().json });
      const registration = end.status?.registration;
      if (end.registered && registration) {
        print({ workflowId, site, registered: true, registration, node: end.status?.allocation?.node }, () =>
          [
            `registered: ${oneLine(`${registration.name} (${registration.state}/${registration.activity})`)} with the collector`,
            `  status: glidein status ${workflowId}    log: glidein logs ${workflowId} --glidein --follow`,
            `  end it: glidein drain ${workflowId}`,
          ].join('\n'),
        );
        return;
      }
      // The lifecycle gives back what it took before it ends: wait for that, and show it.
      const closed = end.closed ?? (await closedOutcome(handle));
      const final = await handle.query(statusQuery).catch(() => end.status);
      const teardown = (final?.steps ?? []).filter((st) =>
        (TEARDOWN_STEP_NAMES as readonly string[]).includes(st.step),
      );
      const reason = closed.message ?? final?.endReason ?? `the launch ended ${closed.status} without registering`;
      if (globals().json)
        io.out(JSON.stringify({ workflowId, site, registered: false, error: reason, status: final }, null, 2));
      else
        io.err(
          [
            `launch failed: ${reason}`,
            ...teardown.map(
              (st) => `  teardown ${st.step}: ${st.status}${st.detail ? ` (${oneLine(st.detail)})` : ''}`,
            ),
          ].join('\n'),
        );
      throw new CliError('', EXIT.failed);
    });

  program
    .command('status')
    .description("a glidein's phase, node, registration, steps and what it holds on the site")
    .argument('<workflowId>')
    .action(async (id: string) => {
      const status = await glideinStatus(await s.client(), validId(id));
      print(status, () => renderStatus(id, status));
    });

  program
    .command('list')
    .description('glideins from visibility, newest first')
    .option('--site <site>', 'only this site')
    .addOption(new Option('--phase <phase>', 'only this phase').choices(PHASES))
    .option('--limit <n>', 'at most this many', '50')
    .action(async (opts: { site?: string; phase?: string; limit: string }) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
        throw new CliError('--limit: expected 1 to 10000', EXIT.usage);
      const clauses = [`WorkflowType = 'LaunchGlidein'`];
      if (opts.site) clauses.push(`GlideinSite = '${validSite(opts.site)}'`);
      if (opts.phase) clauses.push(`GlideinPhase = '${opts.phase}'`);
      const rows: Array<Record<string, string>> = [];
      for await (const wf of (await s.client()).workflow.list({ query: clauses.join(' AND ') })) {
        const attr = (name: string) => String((wf.searchAttributes?.[name] as unknown[] | undefined)?.[0] ?? '');
        rows.push({
          workflowId: wf.workflowId,
          site: attr('GlideinSite'),
          phase: attr('GlideinPhase'),
          status: wf.status.name,
          started: wf.startTime.toISOString(),
        });
        if (rows.length >= limit) break;
      }
      print(rows, () => (rows.length ? renderTable(rows) : 'no glideins'));
    });

  for (const [verb, signal, what] of [
    ['drain', drainSignal, 'stop taking jobs, finish within glidein.drainGrace, then tear down'],
    ['stop', stopSignal, 'tear down now (glidein.stopGrace for the glidein to shut down)'],
  ] as const) {
    program
      .command(verb)
      .description(what)
      .argument('<workflowId>')
      .option('--wait', 'wait until everything on the site is released')
      .action(async (id: string, opts: { wait?: boolean }) => {
        const client = await s.client();
        const handle = client.workflow.getHandle(validId(id));
        try {
          await handle.signal(signal);
        } catch (err) {
          if (err instanceof WorkflowNotFoundError)
            throw new CliError(`no running glidein workflow ${JSON.stringify(id)}`, EXIT.notFound);
          throw err;
        }
        if (!opts.wait) {
          print(
            { workflowId: id, requested: verb },
            () => `${verb} requested for ${id}; watch it: glidein status ${id}`,
          );
          return;
        }
        let result: unknown;
        try {
          result = await handle.result();
        } catch (err) {
          throw new CliError(`${id} ended with an error: ${failureMessage(err)}`, EXIT.failed);
        }
        const status = await handle.query(statusQuery);
        print({ workflowId: id, result, held: status.held }, () =>
          [`${id}: ${status.phase}; held on the site: ${status.held.map((h) => h.kind).join(', ') || 'nothing'}`].join(
            '\n',
          ),
        );
      });
  }

  program
    .command('logs')
    .description("a glidein's log on the site (through the worker's SSH access), redacted")
    .argument('<workflowId>')
    .option('--glidein', "the glidein's own log (default)")
    .option('--tunnel', "the tunnel's log")
    .option('--container', "the container instance's log")
    .option('--follow', 'keep printing what is added, until the glidein ends (Ctrl-C to stop)')
    .option('--bytes <n>', 'show the last n bytes first', '16384')
    .action(
      async (
        id: string,
        opts: { glidein?: boolean; tunnel?: boolean; container?: boolean; follow?: boolean; bytes: string },
      ) => {
        const kinds = (['glidein', 'tunnel', 'container'] as const).filter((k) => opts[k]);
        if (kinds.length > 1) throw new CliError('choose one of --glidein, --tunnel, --container', EXIT.usage);
        const which: LogKind = kinds[0] ?? 'glidein';
        const bytes = Number(opts.bytes);
        if (!Number.isInteger(bytes) || bytes < 1 || bytes > 1024 * 1024)
          throw new CliError('--bytes: expected 1 to 1048576', EXIT.usage);
        const client = await s.client();
        const status = await glideinStatus(client, validId(id));
        // The glidein id and its site only: the worker finds its node and job on the site, and checks the claim.
        const request = { site: status.site, glideinId: status.glideinId, which };
        let chunk = await runTool<LogChunk>(client, globals(), 'ReadGlideinLog', `logs-${status.glideinId}`, {
          ...request,
          tail: true,
          maxBytes: bytes,
        });
        const emit = (c: LogChunk) => {
          if (globals().json) io.out(JSON.stringify(c));
          else if (c.text) io.out(c.text.replace(/\n$/, ''));
        };
        if (!chunk.path && !globals().json) io.err(`no ${which} log of ${id} on the site (yet, or any more)`);
        emit(chunk);
        if (!opts.follow) return;
        const handle = client.workflow.getHandle(id);
        for (;;) {
          await new Promise((r) => setTimeout(r, 3_000));
          const running = (await handle.describe()).status.name === 'RUNNING';
          const next = await runTool<LogChunk>(client, globals(), 'ReadGlideinLog', `logs-${status.glideinId}`, {
            ...request,
            offset: chunk.size < (chunk.offset ?? 0) ? 0 : (chunk.end ?? chunk.size),
            maxBytes: 1024 * 1024,
          });
          if (next.text) emit(next);
          chunk = next.path ? next : chunk;
          if (!running) return;
        }
      },
    );

  const site = program.command('site').description('site profiles: check one, or print their JSON Schema');
  site
    .command('check')
    .description(
      'validate a profile and test each hop (login, node access, tunnel, KIT proxy, collector, credentials) without launching',
    )
    .argument('<site>')
    .action(async (name: string) => {
      const result = await runTool<SiteCheck>(
        await s.client(),
        globals(),
        'CheckSite',
        `check-${validSite(name)}`,
        name,
      );
      const mark = { ok: '✔', failed: '✖', 'not checked': '-' } as const;
      print(result, () =>
        [
          ...result.hops.map(
            (h) =>
              `${mark[h.status]} ${h.hop}: ${oneLine(h.detail)}${h.status === 'not checked' ? '' : ` (${h.ms} ms)`}`,
          ),
          result.ok ? `${name}: every hop checked is open` : `${name}: first failing hop: ${result.failedHop}`,
        ].join('\n'),
      );
      if (!result.ok) throw new CliError('', EXIT.failed);
    });
  site
    .command('schema')
    .description('the JSON Schema of a site profile (for editors: yaml-language-server $schema)')
    .action(() => {
      io.out(JSON.stringify(z.toJSONSchema(siteProfileSchema, { io: 'input', unrepresentable: 'any' }), null, 2));
    });

  const fleet = program.command('fleet').description("a site's GlideinFleet on a Temporal Schedule");
  const fleetVerb = (verb: string, description: string, extra: (c: Command) => Command = (c) => c) =>
    extra(fleet.command(verb).description(description).argument('<schedule>', 'schedule id')).action(
      async (schedule: string, ...rest: unknown[]) => {
        const command = rest[rest.length - 1] as Command;
        const opts = command.opts<Record<string, string | undefined>>();
        const argv = [verb, schedule, ...command.args.slice(1)];
        for (const [k, v] of Object.entries(opts)) if (v !== undefined) argv.push(`--${k}`, v);
        let result: unknown;
        try {
          result = await fleetCommand(argv, await s.client(), globals().taskQueue);
        } catch (err) {
          if (err instanceof UsageError) throw new CliError(err.message, EXIT.usage);
          if (err instanceof ScheduleNotFoundError)
            throw new CliError(`no fleet schedule ${JSON.stringify(schedule)}`, EXIT.notFound);
          throw err;
        }
        print(result, () => JSON.stringify(result, null, 2));
      },
    );
  const upsert = (c: Command) =>
    c
      .requiredOption('--site <site>', 'site profile')
      .requiredOption('--count <n>', 'glideins to keep running')
      .option('--fleet <name>', 'fleet name (default: the site)')
      .option('--lifetime <duration>', "each glidein's lifetime")
      .option('--every <duration>', 'how often the schedule checks its fleet runs', '1m')
      .option('--note <text>', 'note on the schedule');
  fleetVerb('create', 'create the schedule (or update it)', upsert);
  fleetVerb('update', 'update the schedule (or create it)', upsert);
  fleetVerb('pause', 'no new glideins start; running ones go on', (c) => c.option('--note <text>'));
  fleetVerb('resume', 'starts again', (c) => c.option('--note <text>'));
  fleetVerb('count', "the running fleet's count now, and the schedule's", (c) => c.argument('<n>'));
  fleetVerb('drain', 'pause the schedule and drain every glidein of the fleet');
  fleetVerb('status', 'the schedule and its running fleet');
  fleetVerb('delete', 'delete the schedule (its glideins go on to their own ends)');

  return { program, session: s };
}

export async function runCli(argv: string[], rawIo: Io): Promise<number> {
  const io = terminalIo(rawIo);
  const { program, session } = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
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
    await session.close();
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
