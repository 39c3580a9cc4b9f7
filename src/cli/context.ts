/**
 * What a command of `glidein` runs with: the terminal-safe Io it prints through, the global options, and the
 * Temporal client, connected on first use (a command refused by the parser never connects).
 */
import { randomBytes } from 'node:crypto';
import { Client, WorkflowNotFoundError, type Connection } from '@temporalio/client';
import { connectClient, temporalTarget, type TemporalTarget } from '../temporal-connection';
import { statusQuery, type GlideinStatus } from '../workflows/messages';
import { CliError, EXIT } from './errors';
import { forTerminal } from './terminal';
import { failureMessage } from './workflow-outcome';

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  tty: boolean;
}

/** The options before the command: `--profile`, `--task-queue` (or TASK_QUEUE), `--json`. */
export interface Globals {
  profile?: string;
  taskQueue: string;
  json?: true;
}

export interface Context {
  /** Prints through ./terminal.ts: site text never reaches a terminal raw. */
  io: Io;
  globals: Globals;
  client(): Promise<Client>;
  /** `value` as JSON with --json, else the human view. */
  print(value: unknown, human: () => string): void;
}

/** The Io with every text it prints made safe for a terminal (./terminal.ts). */
export function terminalIo(io: Io): Io {
  return { ...io, out: (text) => io.out(forTerminal(text)), err: (text) => io.err(forTerminal(text)) };
}

/** One connection per command, opened on first use. */
export class Session implements Context {
  readonly io: Io;
  private connection?: Connection;
  private target?: TemporalTarget;

  constructor(
    io: Io,
    readonly globals: Globals,
  ) {
    this.io = terminalIo(io);
  }

  print(value: unknown, human: () => string): void {
    this.io.out(this.globals.json ? JSON.stringify(value, null, 2) : human());
  }

  async client(): Promise<Client> {
    const target = (this.target ??= (() => {
      try {
        return temporalTarget(process.env, this.globals.profile);
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

export async function glideinStatus(client: Client, id: string): Promise<GlideinStatus> {
  try {
    return await client.workflow.getHandle(id).query(statusQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError)
      throw new CliError(`no glidein workflow ${JSON.stringify(id)}`, EXIT.notFound);
    throw err;
  }
}

/** Runs a tool workflow (CheckSite, ReadGlideinLog) on the worker and returns its result. */
export async function runTool<T>(ctx: Context, type: string, id: string, arg: unknown): Promise<T> {
  const client = await ctx.client();
  try {
    return (await client.workflow.execute(type, {
      taskQueue: ctx.globals.taskQueue,
      workflowId: `${id}-${randomBytes(4).toString('hex')}`,
      args: [arg],
      workflowExecutionTimeout: '10 minutes',
      staticSummary: `${type}: read-only`,
    })) as T;
  } catch (err) {
    throw new CliError(`${type} failed: ${failureMessage(err)}`, EXIT.failed);
  }
}
