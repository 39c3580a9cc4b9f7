/**
 * Commands as exec channels on a connected SSH client: queued below sshd's MaxSessions, stdin written and
 * ended at once, stdout and stderr kept as bytes and decoded once (OutputBuffer), and an abort that kills the
 * remote command with a signal request rather than only closing its channel.
 */
import type { Client, ClientChannel, ExecOptions } from 'ssh2';
import { ExecutorError, OutputBuffer, type CommandResult } from './executor';
import { agentOf } from './key-agent';
import { Semaphore } from './semaphore';

export interface ChannelOptions {
  stdin?: string;
  /** Gives up the wait for a channel, and kills the command once it runs. */
  signal?: AbortSignal;
  /** Forward our key agent on this channel. */
  forwardAgent: boolean;
}

/** How long an aborted command's channel may take to close before run() rejects anyway. */
const ABORT_GRACE_MS = 2_000;

/** The exec channels of one connection, at most `maxChannels` open at once. */
export class SshChannels {
  private readonly slots: Semaphore;

  constructor(
    /** Where the commands run, for messages. */
    private readonly target: string,
    maxChannels: number,
  ) {
    this.slots = new Semaphore(maxChannels);
  }

  /** Runs the shell line `line` on `client` once a channel is free. */
  async run(client: Client, line: string, options: ChannelOptions): Promise<CommandResult> {
    const release = await this.slots.acquire(options.signal);
    try {
      return await this.exec(client, line, options);
    } finally {
      release();
    }
  }

  private exec(client: Client, line: string, { stdin, signal, forwardAgent }: ChannelOptions): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      // ssh2 honours a per-channel agentForward (auth-agent-req) though its typings do not list it.
      const execOptions = { agentForward: forwardAgent } as unknown as ExecOptions;
      // The agent answers while this channel is open, and for no other (KeyAgent.arm).
      const disarm = forwardAgent ? agentOf.get(client)?.arm() : undefined;
      client.exec(line, execOptions, (err, stream: ClientChannel) => {
        if (err) {
          disarm?.();
          reject(new ExecutorError(`cannot open a channel on ${this.target}: ${err.message}`, 'channel'));
          return;
        }
        const stdout = new OutputBuffer();
        const stderr = new OutputBuffer();
        let code: number | null = null;
        let signalName: string | null = null;
        let gaveUp: NodeJS.Timeout | undefined;
        const onAbort = () => {
          signalChannel(stream, 'KILL');
          stream.close();
          // sshd holds a session channel open until its command exits; don't wait on a server that ignored the signal.
          gaveUp = setTimeout(() => reject(new ExecutorError('aborted', 'aborted')), ABORT_GRACE_MS);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        if (signal?.aborted) onAbort(); // aborted while the channel was opening
        stream.on('data', (c: Buffer) => stdout.push(c));
        stream.stderr.on('data', (c: Buffer) => stderr.push(c));
        stream.on('exit', (exitCode: number | null, sig?: string) => {
          code = exitCode;
          signalName = sig ?? null;
        });
        stream.on('close', () => {
          disarm?.();
          clearTimeout(gaveUp);
          signal?.removeEventListener('abort', onAbort);
          if (signal?.aborted) reject(new ExecutorError('aborted', 'aborted'));
          else if (code === null && signalName === null)
            reject(new ExecutorError(`the channel on ${this.target} closed before the command exited`, 'channel'));
          else resolve({ code, signal: signalName, stdout: stdout.toString(), stderr: stderr.toString() });
        });
        stream.end(stdin ?? '');
      });
    });
  }
}

/**
 * Sends a signal request on a session channel. ssh2's Channel.signal() does nothing once the channel's stdin
 * is ended (the stream is no longer writable), and exec() ends stdin at once, so the request goes to the
 * protocol directly. OpenSSH's sshd delivers it with killpg() to the command's process group.
 */
function signalChannel(stream: ClientChannel, name: string): void {
  const channel = stream as unknown as {
    outgoing?: { id: number; state: string };
    _client?: { _protocol?: { signal?: (id: number, signal: string) => void } };
  };
  const protocol = channel._client?._protocol;
  if (
    !channel.outgoing ||
    (channel.outgoing.state !== 'open' && channel.outgoing.state !== 'eof') ||
    typeof protocol?.signal !== 'function'
  )
    return;
  try {
    protocol.signal(channel.outgoing.id, name);
  } catch {
    // the connection is gone; closing the channel is all that is left
  }
}
