/**
 * Shared by the JSC-in-a-box end-to-end suites: the `temporal` CLI as an operator types it, the status query,
 * waiting, and what the box holds for a glidein (read from the box's /proc, Slurm and collector, never over ssh:
 * the strict box has no sshd on the worker node).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { GlideinStatus } from '../../src/workflows/messages';
import type { WorkerProcess } from '../support/worker-process';
import { temporalCli } from '../../sandbox/temporal';
import { boxCollectorAds, boxMounts, boxProcesses, slurmJobs } from '../../sandbox/jsc-box';

export const run = promisify(execFile);

export interface BoxHarness {
  temporal(...args: string[]): Promise<string>;
  /** `temporal workflow start --type LaunchGlidein` on the worker's queue, as an operator types it. */
  startLaunch(id: string, input: string): Promise<string>;
  status<T = GlideinStatus>(id: string): Promise<T | undefined>;
  until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs?: number): Promise<T>;
  closed(id: string, expected: string): Promise<unknown>;
  /** `temporal workflow signal --name drain`, then its result: drained, and the box's teardown in order. */
  drainAndCheck(id: string): Promise<void>;
}

/** A Slurm glidein's teardown as its status lists it, last steps last. */
export const BOX_TEARDOWN = [
  'stopGlidein:ok',
  'removeCredential:ok',
  'stopContainer:ok',
  'unmountCvmfs:ok',
  'closeTunnel:ok',
  'cleanupGlidein:ok',
  'releaseNode:ok',
];

/** `current` gives the suite's server, worker and task queue as they are when called (the worker may restart). */
export function boxHarness(
  current: () => { env: TestWorkflowEnvironment; worker: WorkerProcess; taskQueue: string },
): BoxHarness {
  const temporal = async (...args: string[]) => {
    const { stdout } = await run(
      temporalCli(),
      [...args, '--address', current().env.address, '--namespace', current().env.namespace ?? 'default'],
      {
        timeout: 120_000,
      },
    );
    return stdout;
  };
  const until = async <T>(
    what: string,
    probe: () => Promise<T | undefined | false>,
    timeoutMs = 90_000,
  ): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v) return v;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; worker log:\n${current().worker.log().slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const status = async <T = GlideinStatus>(id: string): Promise<T | undefined> => {
    const out = await temporal('workflow', 'query', '--workflow-id', id, '--type', 'status', '--output', 'json').catch(
      () => undefined,
    );
    if (!out) return undefined;
    const parsed = JSON.parse(out);
    return (parsed.queryResult ?? parsed)[0] as T;
  };
  return {
    temporal,
    until,
    status,
    async drainAndCheck(id) {
      await temporal('workflow', 'signal', '--workflow-id', id, '--name', 'drain');
      const result = JSON.parse(await temporal('workflow', 'result', '--workflow-id', id, '--output', 'json'));
      expect(JSON.stringify(result)).toContain('drained');
      const steps = (await status(id))!.steps.map((s) => `${s.step}:${s.status}`);
      expect(steps.slice(-BOX_TEARDOWN.length)).toEqual(BOX_TEARDOWN);
    },
    startLaunch: (id, input) =>
      temporal(
        'workflow',
        'start',
        '--type',
        'LaunchGlidein',
        '--task-queue',
        current().taskQueue,
        '--workflow-id',
        id,
        '--input',
        input,
      ),
    closed: (id, expected) =>
      until(`${id} to close as ${expected}`, async () => {
        const d = JSON.parse(await temporal('workflow', 'describe', '--workflow-id', id, '--output', 'json'));
        return d.workflowExecutionInfo.status === expected && d;
      }),
  };
}

/** What the box holds for one glidein. */
export async function footprint(id: string) {
  const procs = boxProcesses();
  return {
    jobs: (await slurmJobs()).filter((j) => j.name === id).map((j) => `${j.state}@${j.nodes}`),
    tunnels: procs.filter((p) => p.argv[0] === 'ssh' && / -[DR] 127\.0\.0\.1:1080 /.test(p.cmdline)).map((p) => p.node),
    // A relay names its glidein's directory (its secret file) in its argv.
    relays: procs
      .filter((p) => p.argv.includes('jsc-glidein-relay') && p.cmdline.includes(`/${id}/`))
      .map((p) => p.node),
    glideins: procs.filter((p) => p.cmdline.includes('condor_master')).map((p) => p.node),
    instances: procs
      .filter((p) => p.cmdline.includes(`[glidein-${id}]`) || p.cmdline.includes(`[${id}]`))
      .map((p) => p.node),
    mounts: boxMounts()
      .filter((m) => m.target.includes('/dist/cvmfs/'))
      .map((m) => m.where),
    ads: (await boxCollectorAds(`GlideinLaunchId == "${id}"`)).map((ad) => String(ad.UpdatesPeerAddress ?? '')),
  };
}
export const NOTHING = { jobs: [], tunnels: [], relays: [], glideins: [], instances: [], mounts: [], ads: [] };

/**
 * What a test left running, ended the way an operator would, so that one failing test never holds the box's one
 * worker node for the tests after it (they would wait in the Slurm queue until they time out). Schedules are
 * deleted, fleets drained (drain-all), glideins stopped; whatever has not closed after `graceMs` is terminated and
 * named. A no-op when the test left nothing running. Returns the ids it had to end.
 */
export async function endWhatIsLeft(env: TestWorkflowEnvironment, graceMs = 180_000): Promise<string[]> {
  const { client } = env;
  for await (const schedule of client.schedule.list()) await client.schedule.getHandle(schedule.scheduleId).delete();
  const open: Array<{ id: string; type: string }> = [];
  for await (const w of client.workflow.list({ query: 'ExecutionStatus = "Running"' }))
    open.push({ id: w.workflowId, type: w.type });
  for (const w of open) {
    const handle = client.workflow.getHandle(w.id);
    await handle.signal(w.type === 'GlideinFleet' ? 'drain-all' : 'stop').catch(() => undefined);
  }
  const deadline = Date.now() + graceMs;
  for (const w of open) {
    const handle = client.workflow.getHandle(w.id);
    const closed = await Promise.race([
      handle.result().then(
        () => true,
        () => true,
      ),
      new Promise<false>((r) => setTimeout(() => r(false), Math.max(0, deadline - Date.now()))),
    ]);
    if (!closed) await handle.terminate('left running by a failed test').catch(() => undefined);
  }
  return open.map((w) => `${w.type} ${w.id}`);
}
