/**
 * Runs commands on this machine, without a shell. Used by unit tests and for sites where the worker sits on the node.
 */
import { spawn } from 'node:child_process';
import { ExecutorError, OutputBuffer, type CommandResult, type Executor, type RunOptions } from './executor';

export class LocalExecutor implements Executor {
  readonly target = 'localhost';

  run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    if (argv.length === 0) return Promise.reject(new Error('empty command'));
    if (options.signal?.aborted)
      return Promise.reject(new ExecutorError(`command ${argv[0]} aborted before it started`, 'aborted'));
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0], argv.slice(1), {
        env: { ...process.env, ...options.env },
        stdio: ['pipe', 'pipe', 'pipe'],
        // Its own process group, so that a timeout or abort also kills what the command started: a shell's
        // children would otherwise keep running and hold the output pipes (and this promise) open.
        detached: true,
      });
      const stdout = new OutputBuffer();
      const stderr = new OutputBuffer();
      let failure: ExecutorError | undefined;
      const kill = (why: ExecutorError) => {
        failure ??= why;
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      };
      const timer = options.timeoutMs
        ? setTimeout(
            () => kill(new ExecutorError(`${argv[0]} timed out after ${options.timeoutMs} ms`, 'timeout')),
            options.timeoutMs,
          )
        : undefined;
      const onAbort = () => kill(new ExecutorError(`${argv[0]} aborted`, 'aborted'));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      child.stdout.on('data', (c: Buffer) => stdout.push(c));
      child.stderr.on('data', (c: Buffer) => stderr.push(c));
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.stdin ?? '');
      child.on('error', (err) => {
        failure ??= new ExecutorError(`cannot run ${argv[0]}: ${err.message}`, 'channel');
      });
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        if (failure) reject(failure);
        else resolve({ code, signal, stdout: stdout.toString(), stderr: stderr.toString() });
      });
    });
  }
}
