/**
 * The `glidein` command line, parsed once (src/cli/parse.ts): every command's arguments and flags become its typed
 * input; bad input ends with exit code 2 and a message naming the argument or flag, before anything connects to
 * Temporal (the connection is a stand-in here that records whether it was asked for and is never reachable).
 */
import { CommanderError } from 'commander';
import { CliError, runCli } from '../../src/cli/index';
import { parseCommandLine } from '../../src/cli/parse';
import { connectClient } from '../../src/temporal-connection';

jest.mock('../../src/temporal-connection', () => ({
  ...jest.requireActual('../../src/temporal-connection'),
  connectClient: jest.fn(async () => {
    throw new Error('no server in this test');
  }),
}));
const connects = connectClient as jest.MockedFunction<typeof connectClient>;

const quiet = { out: () => {}, err: () => {} };
const parse = (...argv: string[]) => parseCommandLine(argv, quiet);
const defaults = { taskQueue: 'glideins' };

let savedTaskQueue: string | undefined;
beforeEach(() => {
  savedTaskQueue = process.env.TASK_QUEUE;
  delete process.env.TASK_QUEUE;
  connects.mockClear();
});
afterEach(() => {
  if (savedTaskQueue === undefined) delete process.env.TASK_QUEUE;
  else process.env.TASK_QUEUE = savedTaskQueue;
});

/** Runs the whole command as `glidein <argv>` would, with its output captured. */
async function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t), tty: false });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

describe('good input becomes the typed input of its command', () => {
  it('global options, from flags or TASK_QUEUE', () => {
    expect(parse('worker')).toEqual({ command: 'worker', input: {}, globals: defaults });
    expect(parse('--profile', 'prod', '--task-queue', 'q', '--json', 'worker', '--sites-dir', '/etc/sites')).toEqual({
      command: 'worker',
      input: { sitesDir: '/etc/sites' },
      globals: { profile: 'prod', taskQueue: 'q', json: true },
    });
    process.env.TASK_QUEUE = 'from-env';
    expect(parse('status', 'g1').globals).toEqual({ taskQueue: 'from-env' });
  });

  it('launch', () => {
    expect(parse('launch', 'jsc', '--lifetime', '12h', '--id', 'mine', '--follow')).toEqual({
      command: 'launch',
      input: { site: 'jsc', request: { site: 'jsc', lifetime: '12h' }, workflowId: 'mine', follow: true },
      globals: defaults,
    });
    const plain = parse('launch', 'jsc');
    expect(plain).toEqual({
      command: 'launch',
      input: {
        site: 'jsc',
        request: { site: 'jsc' },
        workflowId: expect.stringMatching(/^glidein-jsc-/),
        follow: false,
      },
      globals: defaults,
    });
  });

  it('status, list, drain, stop, logs', () => {
    expect(parse('status', 'glidein-jsc-1')).toMatchObject({
      command: 'status',
      input: { workflowId: 'glidein-jsc-1' },
    });
    expect(parse('list').input).toEqual({ limit: 50 });
    expect(parse('list', '--site', 'jsc', '--phase', 'monitoring', '--limit', '5')).toMatchObject({
      command: 'list',
      input: { site: 'jsc', phase: 'monitoring', limit: 5 },
    });
    expect(parse('drain', 'g1')).toMatchObject({ command: 'drain', input: { workflowId: 'g1', wait: false } });
    expect(parse('stop', 'g1', '--wait')).toMatchObject({ command: 'stop', input: { workflowId: 'g1', wait: true } });
    expect(parse('logs', 'g1')).toMatchObject({
      command: 'logs',
      input: { workflowId: 'g1', which: 'glidein', follow: false, bytes: 16384 },
    });
    expect(parse('logs', 'g1', '--tunnel', '--follow', '--bytes', '200').input).toEqual({
      workflowId: 'g1',
      which: 'tunnel',
      follow: true,
      bytes: 200,
    });
    expect(parse('logs', 'g1', '--container').input).toMatchObject({ which: 'container' });
  });

  it('site check, site schema', () => {
    expect(parse('site', 'check', 'jsc-juwels')).toMatchObject({
      command: 'site check',
      input: { site: 'jsc-juwels' },
    });
    expect(parse('site', 'schema')).toMatchObject({ command: 'site schema', input: {} });
  });

  it('every fleet verb', () => {
    for (const verb of ['create', 'update'])
      expect(
        parse(
          'fleet',
          verb,
          'fleet-jsc',
          '--site',
          'jsc',
          '--count',
          '4',
          '--fleet',
          'jsc-a',
          '--lifetime',
          '24h',
          '--every',
          '2m',
          '--note',
          'hello',
        ),
      ).toEqual({
        command: `fleet ${verb}`,
        input: {
          scheduleId: 'fleet-jsc',
          request: { site: 'jsc', count: 4, fleet: 'jsc-a', lifetime: '24h', scheduleId: 'fleet-jsc' },
          every: '2m',
          note: 'hello',
        },
        globals: defaults,
      });
    expect(parse('fleet', 'create', 'fleet-jsc', '--site', 'jsc', '--count', '0').input).toEqual({
      scheduleId: 'fleet-jsc',
      request: { site: 'jsc', count: 0, scheduleId: 'fleet-jsc' },
      every: '1m',
    });
    expect(parse('fleet', 'pause', 'fleet-jsc', '--note', 'maintenance').input).toEqual({
      scheduleId: 'fleet-jsc',
      note: 'maintenance',
    });
    expect(parse('fleet', 'resume', 'fleet-jsc').input).toEqual({ scheduleId: 'fleet-jsc' });
    expect(parse('fleet', 'count', 'fleet-jsc', '8').input).toEqual({ scheduleId: 'fleet-jsc', count: 8 });
    for (const verb of ['drain', 'status', 'delete'])
      expect(parse('fleet', verb, 'fleet-jsc')).toEqual({
        command: `fleet ${verb}`,
        input: { scheduleId: 'fleet-jsc' },
        globals: defaults,
      });
  });

  it('hands good input on to the command, which only then connects', async () => {
    const { code, stderr } = await run('status', 'g1');
    expect(connects).toHaveBeenCalledTimes(1);
    expect(code).toBe(3);
    expect(stderr).toContain('cannot reach the Temporal server');
  });
});

describe('bad input ends with exit code 2 and a message naming what was wrong, before anything connects', () => {
  /** argv, and what the message on stderr must contain: the argument or flag, and what was expected. */
  const refused: Array<[string[], string]> = [
    [['launch', 'Not/A/Site'], 'site: "Not/A/Site" is not a site profile name'],
    [['launch', 'local', '--lifetime', 'forever'], '--lifetime: "forever": expected a duration'],
    [['launch', 'local', '--id', 'has space'], '--id: "has space" is not a workflow id'],
    [['launch', 'jsc', '--id', 'glidein-jsc-3'], '--id: "glidein-jsc-3" is slot 3 of fleet "jsc"'],
    [['launch'], "missing required argument 'site'"],
    [['launch', 'local', '--bogus'], "unknown option '--bogus'"],
    [['launch', 'local', '--lifetime'], "option '--lifetime <duration>' argument missing"],
    [['worker', '--sites-dir'], "option '--sites-dir <dir>' argument missing"],
    [['--profile'], "option '--profile <name>' argument missing"],
    [['status', 'has space'], 'workflow id: "has space" is not a workflow id'],
    [['status'], "missing required argument 'workflowId'"],
    [['list', '--limit', '0'], '--limit: expected 1 to 10000'],
    [['list', '--limit', 'many'], '--limit: expected 1 to 10000'],
    [['list', '--site', 'Bad'], 'site: "Bad" is not a site profile name'],
    [['list', '--phase', 'nope'], "option '--phase <phase>' argument 'nope' is invalid"],
    [['drain', 'x y'], 'workflow id: "x y" is not a workflow id'],
    [['stop', 'x\u0007'], 'workflow id: "x\\u0007" is not a workflow id'],
    [['drain', 'g1', '--now'], "unknown option '--now'"],
    [['logs', 'g1', '--glidein', '--tunnel'], 'choose one of --glidein, --tunnel, --container'],
    [['logs', 'g1', '--bytes', '0'], '--bytes: expected 1 to 1048576'],
    [['logs', 'g1', '--bytes', '2000000'], '--bytes: expected 1 to 1048576'],
    [['logs', 'x y'], 'workflow id: "x y" is not a workflow id'],
    [['site', 'check', 'Bad'], 'site: "Bad" is not a site profile name'],
    [['site', 'schema', 'extra'], 'too many arguments'],
    [['site', 'bogus'], "unknown command 'bogus'"],
    [['fleet', 'create', 's'], "required option '--site <site>' not specified"],
    [['fleet', 'update', 's', '--site', 'jsc'], "required option '--count <n>' not specified"],
    [['fleet', 'create', 's', '--site', 'Bad', '--count', '2'], '--site: "Bad"'],
    [['fleet', 'create', 's', '--site', 'jsc', '--count', '99999'], '--count: 99999: expected at most 10000'],
    [['fleet', 'create', 's', '--site', 'jsc', '--count', 'x'], '--count: expected a whole number, got "x"'],
    [['fleet', 'create', 's', '--site', 'jsc', '--count', '2', '--fleet', 'jsc-'], '--fleet: "jsc-": expected'],
    [
      ['fleet', 'create', 's', '--site', 'jsc', '--count', '2', '--lifetime', '5s'],
      '--lifetime: "5s": expected at least',
    ],
    [
      ['fleet', 'update', 's', '--site', 'jsc', '--count', '2', '--every', 'xx'],
      '--every: expected a duration of at least 1s',
    ],
    [['fleet', 'create', 'Bad Schedule', '--site', 'jsc', '--count', '2'], '<schedule>: "Bad Schedule"'],
    [['fleet', 'pause', 's', '--site', 'jsc'], "unknown option '--site'"],
    [['fleet', 'resume'], "missing required argument 'schedule'"],
    [['fleet', 'count', 's'], "missing required argument 'n'"],
    [['fleet', 'count', 's', 'abc'], 'count: expected a whole number, got "abc"'],
    [['fleet', 'count', 's', '10001'], 'count: 10001: expected at most 10000'],
    [['fleet', 'drain', 's', 'extra'], 'too many arguments'],
    [['fleet', 'status'], "missing required argument 'schedule'"],
    [['fleet', 'delete', 's', '--note', 'x'], "unknown option '--note'"],
    [['fleet', 'bogus', 's'], "unknown command 'bogus'"],
    [['bogus'], "unknown command 'bogus'"],
  ];

  it.each(refused)('glidein %j', async (argv, message) => {
    const { code, stdout, stderr } = await run(...argv);
    expect(stderr).toContain(message);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(connects).not.toHaveBeenCalled();
  });

  it('the parser itself throws a CliError with exit code 2 for refused input, a CommanderError for bad usage', () => {
    let error: unknown;
    try {
      parse('logs', 'g1', '--bytes', '0');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(CliError);
    expect(error).toMatchObject({ exitCode: 2, message: '--bytes: expected 1 to 1048576' });
    expect(() => parse('launch', '--bogus')).toThrow(CommanderError);
  });
});

describe('help', () => {
  it('lists every command and every flag of a command, and exits 0', async () => {
    const top = await run('--help');
    expect(top.code).toBe(0);
    for (const c of ['worker', 'launch', 'status', 'list', 'drain', 'stop', 'logs', 'site', 'fleet'])
      expect(top.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    for (const flag of ['--profile <name>', '--task-queue <queue>', '--json']) expect(top.stdout).toContain(flag);
    const fleet = await run('fleet', 'create', '--help');
    expect(fleet.code).toBe(0);
    expect(fleet.stdout).toContain('Usage: glidein fleet create [options] <schedule>');
    for (const flag of [
      '--site <site>',
      '--count <n>',
      '--fleet <name>',
      '--lifetime <duration>',
      '--every <duration>',
    ])
      expect(fleet.stdout).toContain(flag);
    expect(fleet.stdout).toMatch(/\(default:\s+"1m"\)/);
    expect(connects).not.toHaveBeenCalled();
  });
});
