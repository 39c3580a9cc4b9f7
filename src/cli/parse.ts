/**
 * The command line of `glidein`, parsed once: a table of its commands, each with its arguments, flags and help, from
 * which commander builds the parser and the help. What commander hands back is checked against a zod schema derived
 * from the same table, then each command's `input` turns it into the typed input its file in ./commands/ runs with,
 * through the checks of ./input.ts (the workflows' own schemas). Every check runs here, before anything connects to
 * Temporal: a refused input ends the command with exit code 2 and a message naming the argument or flag.
 */
import { Command, Option } from 'commander';
import { z } from 'zod';
import type { FleetRequest } from '../common/fleet-request';
import type { LogKind } from '../common/operator-requests';
import { everyMs } from '../fleet-schedule';
import type { GlideinRequest } from '../common/request';
import type { Phase } from '../workflows/messages';
import { terminalIo, type Globals, type Io } from './context';
import { CliError, EXIT, usage } from './errors';
import { checkSite, checkWorkflowId, fleetCountInput, fleetRequestInput, launchInput, UsageError } from './input';

/** A flag of a command: `--<kebab-case of its key>`, its value under that key (camelCase, as commander names it). */
interface FlagSpec {
  /** The flag takes a value, named so in the help (`--lifetime <duration>`); without it, the flag is a switch. */
  value?: string;
  help?: string;
  default?: string;
  required?: true;
  choices?: readonly string[];
  /** The environment variable that gives the value when the flag is not given. */
  env?: string;
}

type FlagSpecs = Record<string, FlagSpec>;
/** A command's positional arguments in order, each with its help (none: not listed in the help). */
type ArgSpecs = Record<string, string | undefined>;

type FlagValue<F extends FlagSpec> = F extends { value: string }
  ? F extends { choices: readonly (infer C)[] }
    ? C | undefined
    : F extends { default: string } | { required: true }
      ? string
      : string | undefined
  : true | undefined;

type FlagValues<F extends FlagSpecs> = { [K in keyof F]: FlagValue<F[K]> };

/** What the parser hands a command's `input`: its arguments by name and its flags' values. */
export interface Parsed<A extends ArgSpecs, F extends FlagSpecs> {
  args: { [K in keyof A]: string };
  opts: FlagValues<F>;
}

interface CommandSpec<A extends ArgSpecs, F extends FlagSpecs, T> {
  description: string;
  args: A;
  flags: F;
  /** The command's typed input from what was parsed; a UsageError (./input.ts) refuses it (exit code 2). */
  input: (parsed: Parsed<A, F>) => T;
}

function command<const A extends ArgSpecs, const F extends FlagSpecs, T>(spec: {
  description: string;
  args?: A;
  flags?: F;
  input: (parsed: Parsed<A, F>) => T;
}): CommandSpec<A, F, T> {
  return { ...spec, args: spec.args ?? ({} as A), flags: spec.flags ?? ({} as F) };
}

const PHASES = [
  'planning',
  'setup',
  'registering',
  'monitoring',
  'teardown',
  'done',
  'failed',
  'cancelled',
] as const satisfies readonly Phase[];

const GLOBAL_FLAGS = {
  profile: {
    value: 'name',
    help: "Temporal environment profile (the temporal CLI's TOML file; default: TEMPORAL_PROFILE)",
  },
  taskQueue: { value: 'queue', help: 'task queue of the worker', env: 'TASK_QUEUE', default: 'glideins' },
  json: { help: 'print JSON for scripts' },
} as const satisfies FlagSpecs;

const PROGRAM =
  'HTCondor glideins on HPC sites, as Temporal workflows: launch, watch, drain, check a site, run the worker';

/** The commands that only group others: `glidein site …`, `glidein fleet …`. */
const GROUPS: Record<string, string> = {
  site: 'site profiles: check one, or print their JSON Schema',
  fleet: "a site's GlideinFleet on a Temporal Schedule",
};

const workflowIdArg = { workflowId: undefined };
const scheduleArg = { schedule: 'schedule id' };

function signalCommand(description: string) {
  return command({
    description,
    args: workflowIdArg,
    flags: { wait: { help: 'wait until everything on the site is released' } },
    input: ({ args, opts }) => ({
      workflowId: checkWorkflowId(args.workflowId),
      wait: opts.wait === true,
    }),
  });
}

/** `fleet create` and `fleet update`: either writes the schedule, creating it if need be. */
function upsertCommand(description: string) {
  return command({
    description,
    args: scheduleArg,
    flags: {
      site: { value: 'site', help: 'site profile', required: true },
      count: { value: 'n', help: 'glideins to keep running', required: true },
      fleet: { value: 'name', help: 'fleet name (default: the site)' },
      lifetime: { value: 'duration', help: "each glidein's lifetime" },
      every: { value: 'duration', help: 'how often the schedule checks its fleet runs', default: '1m' },
      note: { value: 'text', help: 'note on the schedule' },
    },
    input: ({ args, opts }): { scheduleId: string; request: FleetRequest; every: string; note?: string } => {
      const request = fleetRequestInput(args.schedule, opts);
      try {
        everyMs(opts.every);
      } catch (err) {
        throw new UsageError(`--${(err as Error).message}`);
      }
      return {
        scheduleId: args.schedule,
        request,
        every: opts.every,
        ...(opts.note !== undefined ? { note: opts.note } : {}),
      };
    },
  });
}

function noteCommand(description: string) {
  return command({
    description,
    args: scheduleArg,
    flags: { note: { value: 'text' } },
    input: ({ args, opts }): { scheduleId: string; note?: string } => ({
      scheduleId: args.schedule,
      ...(opts.note !== undefined ? { note: opts.note } : {}),
    }),
  });
}

function scheduleCommand(description: string) {
  return command({ description, args: scheduleArg, input: ({ args }) => ({ scheduleId: args.schedule }) });
}

/** Every command, in the order of the help; `<group> <verb>` for those under `site` and `fleet`. */
const COMMANDS = {
  worker: command({
    description: 'run the worker: LaunchGlidein, GlideinFleet and their activities (profiles from --sites-dir)',
    flags: { sitesDir: { value: 'dir', help: 'directory of site profiles (default: SITES_DIR, else ./sites)' } },
    input: ({ opts }): { sitesDir?: string } => (opts.sitesDir !== undefined ? { sitesDir: opts.sitesDir } : {}),
  }),
  launch: command({
    description: 'start one glidein at a site',
    args: { site: 'site profile name (sites/<site>.yaml on the worker)' },
    flags: {
      lifetime: { value: 'duration', help: "how long it runs before it drains, e.g. 12h (default: the profile's)" },
      id: { value: 'workflowId', help: 'workflow id (default: glidein-<site>-<time>-<random>)' },
      follow: { help: 'show each setup step live, until the glidein registers or the launch fails' },
    },
    // The workflow's own checks, and no fleet's slot: refused here, before anything starts.
    input: ({ args, opts }): { site: string; request: GlideinRequest; workflowId: string; follow: boolean } => ({
      site: args.site,
      ...launchInput(args.site, opts),
      follow: opts.follow === true,
    }),
  }),
  status: command({
    description: "a glidein's phase, node, registration, steps and what it holds on the site",
    args: workflowIdArg,
    input: ({ args }) => ({ workflowId: checkWorkflowId(args.workflowId) }),
  }),
  list: command({
    description: 'glideins from visibility, newest first',
    flags: {
      site: { value: 'site', help: 'only this site' },
      phase: { value: 'phase', help: 'only this phase', choices: PHASES },
      limit: { value: 'n', help: 'at most this many', default: '50' },
    },
    input: ({ opts }): { site?: string; phase?: Phase; limit: number } => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError('--limit: expected 1 to 10000');
      return {
        ...(opts.site !== undefined ? { site: checkSite(opts.site!) } : {}),
        ...(opts.phase !== undefined ? { phase: opts.phase } : {}),
        limit,
      };
    },
  }),
  drain: signalCommand('stop taking jobs, finish within glidein.drainGrace, then tear down'),
  stop: signalCommand('tear down now (glidein.stopGrace for the glidein to shut down)'),
  logs: command({
    description: "a glidein's log on the site (through the worker's SSH access), redacted",
    args: workflowIdArg,
    flags: {
      glidein: { help: "the glidein's own log (default)" },
      tunnel: { help: "the tunnel's log" },
      container: { help: "the container instance's log" },
      follow: { help: 'keep printing what is added, until the glidein ends (Ctrl-C to stop)' },
      bytes: { value: 'n', help: 'show the last n bytes first', default: '16384' },
    },
    input: ({ args, opts }): { workflowId: string; which: LogKind; follow: boolean; bytes: number } => {
      const kinds = (['glidein', 'tunnel', 'container'] as const).filter((k) => opts[k]);
      if (kinds.length > 1) throw new UsageError('choose one of --glidein, --tunnel, --container');
      const bytes = Number(opts.bytes);
      if (!Number.isInteger(bytes) || bytes < 1 || bytes > 1024 * 1024)
        throw new UsageError('--bytes: expected 1 to 1048576');
      return {
        workflowId: checkWorkflowId(args.workflowId),
        which: kinds[0] ?? 'glidein',
        follow: opts.follow === true,
        bytes,
      };
    },
  }),
  'site check': command({
    description:
      'validate a profile and test each hop (login, node access, tunnel, KIT proxy, collector, credentials) ' +
      'without launching',
    args: { site: undefined },
    input: ({ args }) => ({ site: checkSite(args.site) }),
  }),
  'site schema': command({
    description: 'the JSON Schema of a site profile (for editors: yaml-language-server $schema)',
    input: () => ({}),
  }),
  'fleet create': upsertCommand('create the schedule (or update it)'),
  'fleet update': upsertCommand('update the schedule (or create it)'),
  'fleet pause': noteCommand('no new glideins start; running ones go on'),
  'fleet resume': noteCommand('starts again'),
  'fleet count': command({
    description: "the running fleet's count now, and the schedule's",
    args: { ...scheduleArg, n: undefined },
    input: ({ args }) => ({ scheduleId: args.schedule, count: fleetCountInput(args.n) }),
  }),
  'fleet drain': scheduleCommand('pause the schedule and drain every glidein of the fleet'),
  'fleet status': scheduleCommand('the schedule and its running fleet'),
  'fleet delete': scheduleCommand('delete the schedule (its glideins go on to their own ends)'),
};

type Commands = typeof COMMANDS;
export type CommandName = keyof Commands;
/** The typed input of a command, as its file in ./commands/ takes it. */
export type InputOf<K extends CommandName> = ReturnType<Commands[K]['input']>;
/** A command line, parsed and checked: which command, its input, the global options. */
export type Invocation = { [K in CommandName]: { command: K; input: InputOf<K>; globals: Globals } }[CommandName];

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function addFlags(cmd: Command, flags: FlagSpecs): void {
  for (const [key, flag] of Object.entries(flags)) {
    const option = new Option(`--${kebab(key)}${flag.value ? ` <${flag.value}>` : ''}`, flag.help);
    if (flag.default !== undefined) option.default(flag.default);
    if (flag.choices) option.choices(flag.choices);
    if (flag.env) option.env(flag.env);
    if (flag.required) option.makeOptionMandatory();
    cmd.addOption(option);
  }
}

/** What commander must have handed back for these flags: a schema derived from the same table. */
function flagsSchema<F extends FlagSpecs>(flags: F): z.ZodType<FlagValues<F>> {
  // The table's types and this schema say the same; the cast joins them.
  return z.strictObject(
    Object.fromEntries(
      Object.entries(flags).map(([key, flag]) => {
        const value = flag.value
          ? flag.choices
            ? z.enum(flag.choices as [string, ...string[]])
            : z.string()
          : z.literal(true);
        return [key, flag.default !== undefined || flag.required ? value : value.optional()];
      }),
    ),
  ) as unknown as z.ZodType<FlagValues<F>>;
}

function checked<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success)
    throw new CliError(
      parsed.error.issues.map((i) => `${what}${i.path.length ? ` ${i.path.join('.')}` : ''}: ${i.message}`).join('\n'),
      EXIT.usage,
    );
  return parsed.data;
}

/** The help and the parser: commander's, built from the table; its output goes through ./terminal.ts. */
function program(rawIo: Pick<Io, 'out' | 'err'>, chosen: (name: CommandName, cmd: Command) => void): Command {
  const io = terminalIo({ ...rawIo, tty: false });
  const root = new Command('glidein')
    .description(PROGRAM)
    .showHelpAfterError()
    .configureOutput({ writeOut: (t) => io.out(t.replace(/\n$/, '')), writeErr: (t) => io.err(t.replace(/\n$/, '')) })
    .exitOverride();
  addFlags(root, GLOBAL_FLAGS);
  const groups = new Map<string, Command>();
  for (const [name, spec] of Object.entries(COMMANDS) as Array<
    [CommandName, CommandSpec<ArgSpecs, FlagSpecs, unknown>]
  >) {
    const words = name.split(' ');
    let parent = root;
    if (words.length > 1) {
      const group = words[0];
      parent = groups.get(group) ?? root.command(group).description(GROUPS[group]);
      groups.set(group, parent);
    }
    const cmd = parent.command(words[words.length - 1]).description(spec.description);
    for (const [arg, help] of Object.entries(spec.args)) cmd.argument(`<${arg}>`, help);
    addFlags(cmd, spec.flags);
    cmd.action(() => chosen(name, cmd));
  }
  return root;
}

/**
 * Parses a command line (without `node glidein`) into the command to run and its checked input. Help, and commander's
 * own errors, are written to `io` and end in a CommanderError (the command exits 0 after help, else 2); a refused input
 * ends in a CliError with exit code 2. Nothing is connected or started.
 */
export function parseCommandLine(argv: string[], io: Pick<Io, 'out' | 'err'>): Invocation {
  let chosen: { name: CommandName; cmd: Command } | undefined;
  const root = program(io, (name, cmd) => (chosen = { name, cmd }));
  root.parse(argv, { from: 'user' });
  // Every command has an action and groups without a verb end in their help: parse returns only with a command.
  if (!chosen) throw new Error('glidein: no command was parsed');
  const { name, cmd } = chosen;
  const spec = COMMANDS[name] as CommandSpec<ArgSpecs, FlagSpecs, unknown>;
  const globals: Globals = checked(flagsSchema(GLOBAL_FLAGS), root.opts(), 'option');
  const argNames = Object.keys(spec.args);
  const values = checked(z.array(z.string()).length(argNames.length), cmd.processedArgs, 'arguments');
  const args = Object.fromEntries(argNames.map((arg, i) => [arg, values[i]]));
  const opts = checked(flagsSchema(spec.flags), cmd.opts(), 'option');
  return { command: name, input: usage(() => spec.input({ args, opts })), globals } as Invocation;
}
