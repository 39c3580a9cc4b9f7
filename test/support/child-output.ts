/**
 * What a child process prints, for tests that assert on it or parse it. A pipe delivers what it holds when it is read,
 * not a writer's lines: a line longer than PIPE_BUF (a logged error with its stack, say) can arrive in pieces, with
 * the other stream's output between them, and a character can be split across two chunks. So each stream is decoded
 * as a whole and taken a line at a time: stdout and stderr interleave only between whole lines, and a line still
 * being written is never seen half (it shows once its newline comes, or once its stream has ended).
 */
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';

export class ChildOutput {
  private text = '';
  private readonly streams: Readable[];

  constructor(child: ChildProcess) {
    this.streams = [child.stdout, child.stderr].filter((s): s is Readable => s !== null);
    for (const stream of this.streams) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => {
        partial += d;
        const end = partial.lastIndexOf('\n') + 1;
        this.text += partial.slice(0, end);
        partial = partial.slice(end);
      });
      stream.on('end', () => {
        this.text += partial;
        partial = '';
      });
    }
  }

  /** Every whole line so far, in the order they were completed (and a stream's last, unended one once it ended). */
  toString(): string {
    return this.text;
  }

  /**
   * Resolves once every stream has ended, so that all the child printed is in: true then, false after `ms` without
   * (a process the child started may hold a pipe open; the test then goes on with what came). A child's 'exit' can
   * come before the last of its output has been read.
   */
  async ended(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const all = Promise.all(
      this.streams.map((s) =>
        s.readableEnded || s.destroyed
          ? undefined
          : new Promise<void>((resolve) => {
              s.once('end', resolve);
              s.once('close', resolve);
            }),
      ),
    ).then(() => true as const);
    try {
      return await Promise.race([all, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
