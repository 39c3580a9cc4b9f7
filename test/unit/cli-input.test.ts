/**
 * What the `glidein` command refuses before it starts or writes anything (src/cli/input.ts), and what it prints: never
 * a character a terminal would act on (src/cli/terminal.ts). No Temporal server: the fleet command runs against a
 * recording stand-in of the client, which is all it touches.
 */
import type { Client } from '@temporalio/client';
import { glideinRequestSchema } from '../../src/common/request';
import { fleetCount } from '../../src/cli/commands/fleet';
import type { Context } from '../../src/cli/context';
import { CliError, runCli } from '../../src/cli/index';
import { parseCommandLine } from '../../src/cli/parse';
import { fleetCountInput, fleetRequestInput, launchInput, newLaunchId, UsageError } from '../../src/cli/input';
import { renderStatus, renderTable } from '../../src/cli/render';
import { forTerminal, oneLine } from '../../src/cli/terminal';
import { fleetSlotOf } from '../../src/common/fleet-request';
import type { GlideinStatus } from '../../src/workflows/messages';

describe('glidein launch: checked before anything starts', () => {
  it('refuses a lifetime the workflow would refuse, naming --lifetime and the bound', () => {
    expect(() => launchInput('local', { lifetime: '5s' })).toThrow(UsageError);
    expect(() => launchInput('local', { lifetime: '5s' })).toThrow('--lifetime: "5s": expected at least 10000 ms');
    expect(() => launchInput('local', { lifetime: '31d' })).toThrow('--lifetime: "31d": expected at most');
    expect(() => launchInput('local', { lifetime: 'forever' })).toThrow('--lifetime: "forever": expected a duration');
    expect(() => launchInput('Not/A/Site', {})).toThrow('site: "Not/A/Site" is not a site profile name');
  });

  it.each(['1ms', '9s', '9999ms', '10s', '1m', '12h', '30d', '30d1ms', '1h30m', 'x'])(
    'accepts the lifetime %s exactly when the workflow does (one schema)',
    (lifetime) => {
      const workflow = glideinRequestSchema.safeParse({ site: 'local', lifetime }).success;
      const cli = (() => {
        try {
          launchInput('local', { lifetime, id: 'mine' });
          return true;
        } catch {
          return false;
        }
      })();
      expect(cli).toBe(workflow);
    },
  );

  it("refuses an id in a fleet's slot namespace, saying why and what to do instead", () => {
    let error: Error | undefined;
    try {
      launchInput('jsc', { id: 'glidein-jsc-3' });
    } catch (err) {
      error = err as Error;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect(error?.message).toMatch(/^--id: "glidein-jsc-3" is slot 3 of fleet "jsc"/);
    expect(error?.message).toContain('Leave out --id');
    expect(error?.message).toContain('glidein fleet count <schedule> <n>');
    expect(() => launchInput('jsc', { id: 'glidein-jsc-juwels-17' })).toThrow('slot 17 of fleet "jsc-juwels"');
  });

  it('takes any other id, and its default id is never a slot id', () => {
    expect(launchInput('jsc', { id: 'glidein-jsc-test', lifetime: '1h' })).toEqual({
      request: { site: 'jsc', lifetime: '1h' },
      workflowId: 'glidein-jsc-test',
    });
    expect(() => launchInput('jsc', { id: 'has space' })).toThrow('--id: "has space" is not a workflow id');
    for (let i = 0; i < 300; i++) {
      const id = newLaunchId('jsc', new Date(Date.UTC(2026, 0, 2, 3, 4, 5)));
      expect(id).toMatch(/^glidein-jsc-20260102t030405-[a-z]{5}$/);
      expect(fleetSlotOf(id)).toBeUndefined();
    }
    // A default id whose random part happened to be digits would have been a slot: the old form could be one.
    expect(fleetSlotOf('glidein-jsc-20260102t030405-1234')).toEqual({ fleet: 'jsc-20260102t030405', slot: 1234 });
  });
});

describe('glidein fleet: checked against the fleet request schema', () => {
  it("refuses a count outside the fleet's bound", () => {
    expect(fleetCountInput('10000')).toBe(10_000);
    expect(fleetCountInput('0')).toBe(0);
    expect(() => fleetCountInput('99999')).toThrow('count: 99999: expected at most 10000');
    expect(() => fleetCountInput('-1')).toThrow('count: expected a whole number, got "-1"');
    expect(() => fleetCountInput('2.5')).toThrow('count: expected a whole number');
  });

  it('refuses a bad create request naming the option', () => {
    expect(() => fleetRequestInput('fleet-jsc', { site: 'jsc', count: '99999' })).toThrow(
      '--count: 99999: expected at most 10000',
    );
    expect(() => fleetRequestInput('fleet-jsc', { site: 'jsc', count: '2', fleet: 'jsc-' })).toThrow(
      '--fleet: "jsc-": expected 1-40 lowercase letters',
    );
    expect(() => fleetRequestInput('fleet-jsc', { site: 'jsc', count: '2', lifetime: '5s' })).toThrow(
      '--lifetime: "5s": expected at least 10000 ms',
    );
    expect(fleetRequestInput('fleet-jsc', { site: 'jsc', count: '2' })).toEqual({
      site: 'jsc',
      count: 2,
      scheduleId: 'fleet-jsc',
    });
  });

  /** A client that records what the fleet command asks of it; the running fleet's update can be made to fail. */
  function recordingClient(fleetRefuses = false) {
    const calls: string[] = [];
    let args: unknown[] = [{ site: 'jsc', count: 2, scheduleId: 'fleet-jsc' }];
    const client = {
      schedule: {
        getHandle: () => ({
          describe: async () => ({ info: { runningActions: [{ workflow: { workflowId: 'fleet-jsc-1' } }] } }),
          update: async (fn: (previous: unknown) => { action: { args: unknown[] } }) => {
            calls.push('schedule.update');
            args = fn({ action: { type: 'startWorkflow', args } }).action.args;
          },
        }),
      },
      workflow: {
        getHandle: (id: string) => ({
          executeUpdate: async (_update: unknown, { args: [count] }: { args: [number] }) => {
            calls.push(`${id}.setCount(${count})`);
            if (fleetRefuses) throw new Error('count: refused');
          },
        }),
      },
    } as unknown as Client;
    return { client, calls, args: () => args };
  }

  /** The command's context around a client, recording what it prints. */
  function contextOf(client: Client) {
    const printed: unknown[] = [];
    const ctx: Context = {
      io: { out: () => {}, err: () => {}, tty: false },
      globals: { taskQueue: 'glideins', json: true },
      client: async () => client,
      print: (value) => printed.push(value),
    };
    return { ctx, printed };
  }

  it('fleet count out of bounds is refused by the parser: nothing connects, nothing is written', () => {
    const quiet = { out: () => {}, err: () => {} };
    expect(() => parseCommandLine(['fleet', 'count', 'fleet-jsc', '99999'], quiet)).toThrow(
      new CliError('count: 99999: expected at most 10000', 2),
    );
    expect(parseCommandLine(['fleet', 'count', 'fleet-jsc', '8'], quiet)).toMatchObject({
      command: 'fleet count',
      input: { scheduleId: 'fleet-jsc', count: 8 },
    });
  });

  it('fleet count writes the schedule only after the running fleet took the count', async () => {
    const refused = recordingClient(true);
    await expect(fleetCount({ scheduleId: 'fleet-jsc', count: 8 }, contextOf(refused.client).ctx)).rejects.toThrow(
      'refused',
    );
    expect(refused.calls).toEqual(['fleet-jsc-1.setCount(8)']);

    const taken = recordingClient();
    const { ctx, printed } = contextOf(taken.client);
    await fleetCount({ scheduleId: 'fleet-jsc', count: 8 }, ctx);
    expect(printed).toEqual([{ schedule: 'fleet-jsc', count: 8, fleetsUpdated: ['fleet-jsc-1'] }]);
    expect(taken.calls).toEqual(['fleet-jsc-1.setCount(8)', 'schedule.update']);
    expect(taken.args()).toEqual([{ site: 'jsc', count: 8, scheduleId: 'fleet-jsc' }]);
  });
});

/** Every character a terminal acts on, bar newline and tab: ESC, CSI (one byte), BEL, CR, DEL, a bidi override. */
// eslint-disable-next-line no-control-regex
const ACTED_ON = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

describe('what the command prints is safe for a terminal', () => {
  const hostile = 'ok\u001b]0;owned\u0007\u001b[2J\u009b31m\rfake\u202eevil\u007f';

  it('forTerminal escapes what a terminal would act on, keeping line ends and tabs', () => {
    expect(forTerminal(hostile)).toBe('ok\\u001b]0;owned\\u0007\\u001b[2J\\u009b31m\\rfake\\u202eevil\\u007f');
    expect(forTerminal('line 1\r\nline 2\n\tindented')).toBe('line 1\nline 2\n\tindented');
    expect(oneLine('a\nb\tc')).toBe('a\\nb\\tc');
    expect(forTerminal(forTerminal(hostile))).toBe(forTerminal(hostile));
  });

  it('keeps JSON valid and the same value', () => {
    const value = { detail: hostile, lines: 'a\nb' };
    expect(JSON.parse(forTerminal(JSON.stringify(value, null, 2)))).toEqual(value);
  });

  it('renders a status whose every field came from the site as lines without escapes', () => {
    const status = {
      site: 'jsc',
      glideinId: 'g1',
      phase: 'monitoring',
      registration: { name: `slot1@g1\u001b[8m`, state: 'Unclaimed\nfake: line', activity: 'Idle' },
      endReason: 'x\u009b2J',
      held: [],
      steps: [{ step: 'startGlidein', status: 'failed', error: `boom\u001b]52;c;ZWNobyBwd25lZA==\u0007\nsecond` }],
    } as unknown as GlideinStatus;
    const shown = renderStatus('g1', status);
    expect(shown).not.toMatch(ACTED_ON);
    // Four head lines (the glidein, its registration, its end, its holdings), a blank, the table's header and one row.
    expect(shown.split('\n')).toHaveLength(7);
    expect(renderTable([{ detail: 'a\u001bb' }])).toBe('DETAIL\na\\u001bb');
  });

  it('passes everything printed through it, the errors of its own parser included', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli([`\u001b]0;owned\u0007\u001b[2Jlaunch`], {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      tty: true,
    });
    expect(code).toBe(2);
    expect(err.join('\n')).toContain('\\u001b]0;owned');
    expect([...out, ...err].join('\n')).not.toMatch(ACTED_ON);
  });
});
