/** `glidein worker [--sites-dir <dir>]`: the worker, configured from the command's options, in this process. */
import type { Context } from '../context';
import type { InputOf } from '../parse';

export async function worker(input: InputOf<'worker'>, ctx: Context): Promise<void> {
  if (input.sitesDir) process.env.SITES_DIR = input.sitesDir;
  if (ctx.globals.profile) process.env.TEMPORAL_PROFILE = ctx.globals.profile;
  process.env.TASK_QUEUE = ctx.globals.taskQueue;
  const { runWorker } = await import('../../worker');
  await runWorker();
}
