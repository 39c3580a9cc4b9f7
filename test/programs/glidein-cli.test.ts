/**
 * The operator's command as built (`npm run build` → lib/cli/index.js), against a dev server and the local test
 * site, with the worker run by the same command (`glidein worker`): check a site (and a broken one, naming the
 * first failing hop), launch with a live view in a pseudo-terminal (tmux) and as plain lines, list, status, logs,
 * drain; the site is checked afterwards.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { TestWorkflowEnvironment as Env } from '@temporalio/testing';
import { GlideinFleet, GlideinId, GlideinPhase, GlideinSite } from '../../src/workflows/messages';
import { ROOT, temporalCli } from '../../sandbox/temporal';
import { EMPTY, footprint } from '../../sandbox/site-state';
import { freePort } from '../support/ports';

const CLI = path.join(ROOT, 'lib', 'cli', 'index.js');
const TASK_QUEUE = `cli-${process.pid}`;

let env: TestWorkflowEnvironment;
let worker: ChildProcess;
let workerLog = '';
let sitesDir: string;
let uiPort: number;
let metricsPort: number;

/** The Web UI's own HTTP API (what its pages read), on the dev server's UI port. */
async function webUi(pathAndQuery: string): Promise<Record<string, unknown>> {
  const response = await fetch(`http://127.0.0.1:${uiPort}/api/v1/namespaces/default/${pathAndQuery}`);
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

function cliEnv(): NodeJS.ProcessEnv {
  return { ...process.env, TEMPORAL_ADDRESS: env.address, TASK_QUEUE, NO_COLOR: '1', LOG_LEVEL: 'warn' };
}

/** Runs the built command; resolves with its exit code and output (never rejects on a non-zero exit). */
function glidein(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: cliEnv(), timeout: 240_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function until(ok: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(what);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs the command in a tmux pseudo-terminal and returns the screen once it has exited. */
async function inTerminal(name: string, args: string[], timeoutMs = 240_000): Promise<string> {
  const e = cliEnv();
  const vars = ['TEMPORAL_ADDRESS', 'TASK_QUEUE', 'NO_COLOR', 'PATH', 'HOME'].flatMap((k) => ['-e', `${k}=${e[k]}`]);
  const command = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(' ');
  spawnSync('tmux', ['kill-session', '-t', name]);
  const started = spawnSync('tmux', [
    'new-session',
    '-d',
    '-s',
    name,
    '-x',
    '160',
    '-y',
    '50',
    ...vars,
    `${command}; echo "EXIT=$?"; sleep 600`,
  ]);
  expect(started.status).toBe(0);
  const until = Date.now() + timeoutMs;
  try {
    for (;;) {
      const screen = spawnSync('tmux', ['capture-pane', '-p', '-t', name]).stdout.toString();
      if (/EXIT=\d+/.test(screen)) return screen;
      if (Date.now() > until)
        throw new Error(
          `${args.join(' ')} did not end in ${timeoutMs} ms; screen:\n${screen}\nworker:\n${workerLog.slice(-2000)}`,
        );
      await new Promise((r) => setTimeout(r, 300));
    }
  } finally {
    spawnSync('tmux', ['kill-session', '-t', name]);
  }
}

beforeAll(async () => {
  // The command as it ships: built from the sources.
  const built = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`npm run build failed:\n${built.stdout}\n${built.stderr}`);
  sitesDir = mkdtempSync(path.join(tmpdir(), 'cli-sites-'));
  copyFileSync(path.join(ROOT, 'sites', 'local.yaml'), path.join(sitesDir, 'local.yaml'));
  // The same site with KIT's proxy on a port nothing listens on: the check must name that hop.
  const broken = readFileSync(path.join(ROOT, 'sites', 'local.yaml'), 'utf8')
    .replace(/^name: local$/m, 'name: local-nokit')
    .replace(/(kitProxy:\n\s+host: [^\n]+\n\s+port: )80/, '$1' + '8');
  writeFileSync(path.join(sitesDir, 'local-nokit.yaml'), broken);
  uiPort = await freePort();
  metricsPort = await freePort();
  env = await Env.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalCli() },
      searchAttributes: [GlideinSite, GlideinId, GlideinPhase, GlideinFleet],
      ui: true,
      uiPort,
    },
  });
  worker = spawn(process.execPath, [CLI, 'worker', '--sites-dir', sitesDir], {
    env: { ...cliEnv(), LOG_FORMAT: 'json', METRICS_ADDRESS: `127.0.0.1:${metricsPort}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  worker.stdout?.on('data', (d) => (workerLog += d));
  worker.stderr?.on('data', (d) => (workerLog += d));
}, 240_000);

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const exited = new Promise((r) => worker.once('exit', r));
    worker.kill('SIGINT');
    await exited;
  }
  await env?.teardown();
  if (sitesDir) rmSync(sitesDir, { recursive: true, force: true });
});

describe('the glidein command, built, against a dev server and the local site', () => {
  it('--help lists every command; bad input exits 2 naming the field, and nothing starts', async () => {
    const help = await glidein('--help');
    expect(help.code).toBe(0);
    for (const c of ['worker', 'launch', 'status', 'list', 'drain', 'stop', 'logs', 'site', 'fleet'])
      expect(help.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    const bad = await glidein('launch', 'Not/A/Site');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('site: "Not/A/Site" is not a site profile name');
    const lifetime = await glidein('launch', 'local', '--lifetime', 'forever');
    expect(lifetime.code).toBe(2);
    expect(lifetime.stderr).toContain('--lifetime');
    const listed = await glidein('--json', 'list');
    expect(JSON.parse(listed.stdout)).toEqual([]);
  });

  it('site schema prints the JSON Schema of a profile', async () => {
    const { code, stdout } = await glidein('site', 'schema');
    expect(code).toBe(0);
    const schema = JSON.parse(stdout);
    expect(schema.type).toBe('object');
    expect(schema.required).toEqual(
      expect.arrayContaining(['name', 'login', 'workerNode', 'tunnel', 'kitProxy', 'collector']),
    );
  });

  it('site check passes every hop of the local site and names the first failing one of a broken profile', async () => {
    const ok = await glidein('site', 'check', 'local');
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    for (const hop of ['profile', 'login', 'nodeAccess', 'tunnel', 'kitProxy', 'collector'])
      expect(ok.stdout).toMatch(new RegExp(`^✔ ${hop}: `, 'm'));
    expect(ok.stdout).toContain('local: every hop checked is open');

    const broken = await glidein('site', 'check', 'local-nokit');
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/^✖ kitProxy: connecting to 127\.0\.0\.3:8 on .* failed/m);
    expect(broken.stdout).toMatch(/^- collector: after kitProxy failed/m);
    expect(broken.stdout).toContain('local-nokit: first failing hop: kitProxy');

    const unknown = await glidein('--json', 'site', 'check', 'nosuchsite');
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ ok: false, failedHop: 'profile' });
  });

  it('launch --follow in a terminal shows each step live, then registration; list, status, logs, drain', async () => {
    const id = `cli-follow-${Date.now()}`;
    const screen = await inTerminal(`glidein-${process.pid}`, [
      'launch',
      'local',
      '--id',
      id,
      '--lifetime',
      '1h',
      '--follow',
    ]);
    writeFileSync(path.join(tmpdir(), 'glidein-launch-follow.screen'), screen);
    expect(screen).toContain(`launching ${id} at local`);
    for (const step of [
      'planLaunch',
      'openTunnel',
      'verifyOutbound',
      'mountCvmfs',
      'startContainer',
      'startGlidein',
      'confirmRegistration',
    ])
      expect(screen).toMatch(new RegExp(`✔ ${step} \\(\\d+\\.\\ds\\)`));
    expect(screen).toMatch(/allocateNode: not used at this site/);
    expect(screen).toMatch(new RegExp(`registered: \\S*${id}\\S* \\(Unclaimed/Idle\\) with the collector`));
    expect(screen).toContain('EXIT=0');

    // Found by its search attributes.
    const listed = await glidein('--json', 'list', '--site', 'local', '--phase', 'monitoring');
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([
      expect.objectContaining({ workflowId: id, site: 'local', phase: 'monitoring' }),
    ]);
    const table = await glidein('list', '--site', 'local');
    expect(table.stdout).toMatch(new RegExp(`^WORKFLOWID +SITE +PHASE +STATUS +STARTED`, 'm'));
    expect(table.stdout).toMatch(new RegExp(`^${id} +local +monitoring +RUNNING`, 'm'));

    // Named in the Web UI by its summary, from the start.
    const described = await env.client.workflow.getHandle(id).describe();
    expect(await described.staticSummary()).toBe('Glidein at local for 1h');
    expect(await described.staticDetails()).toContain('via glidein launch');
    // As the Web UI finds it: its list filtered by the search attributes, then the workflow's page with the summary.
    const query = encodeURIComponent(`GlideinSite="local" AND GlideinPhase="monitoring"`);
    const page = (await webUi(`workflows?query=${query}`)) as {
      executions?: Array<{ execution: { workflowId: string } }>;
    };
    expect(page.executions?.map((e) => e.execution.workflowId)).toEqual([id]);
    const shown = (await webUi(`workflows/${encodeURIComponent(id)}`)) as {
      executionConfig?: { userMetadata?: { summary?: { data?: string } } };
    };
    const summary = shown.executionConfig?.userMetadata?.summary?.data;
    expect(summary && JSON.parse(Buffer.from(summary, 'base64').toString())).toBe('Glidein at local for 1h');

    const status = await glidein('status', id);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`${id}: monitoring at local`);
    expect(status.stdout).toMatch(/^confirmRegistration +ok /m);

    // The worker the command runs serves Prometheus metrics: the runtime's and the glideins'.
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^temporal_workflow_task_execution_latency\w*\{.*task_queue="cli-/m);
    expect(metrics).toMatch(/^glidein_phase_entered\w*\{[^}]*phase="monitoring"[^}]*site="local"[^}]*\} 1$/m);
    expect(metrics).toMatch(/^glidein_step_duration_seconds_count\{[^}]*step="openTunnel"/m);
    expect(metrics).toMatch(/^glidein_registration_latency_seconds_count\{[^}]*site="local"[^}]*\} 1$/m);
    expect(metrics).toMatch(/^glidein_ssh_connections_opened\w*\{[^}]*target="127\.0\.0\.1:2201"/m);

    // The glidein's own log and the tunnel's, read on the site through the worker.
    const log = await glidein('logs', id, '--glidein');
    expect(log.code).toBe(0);
    expect(log.stdout).toContain('condor_master');
    const tunnel = await glidein('--json', 'logs', id, '--tunnel');
    expect(JSON.parse(tunnel.stdout)).toMatchObject({
      which: 'tunnel',
      path: expect.stringContaining(`${id}/tunnel.log`),
    });
    const container = await glidein('--json', 'logs', id, '--container');
    expect(JSON.parse(container.stdout)).toMatchObject({
      which: 'container',
      path: expect.stringMatching(/\/\.apptainer\/instances\/logs\/.*\.err$/),
    });

    // logs --follow prints what is added and ends by itself once the glidein has ended.
    let followed = '';
    const follower = spawn(process.execPath, [CLI, 'logs', id, '--glidein', '--follow', '--bytes', '200'], {
      env: cliEnv(),
    });
    follower.stdout.on('data', (d) => (followed += d));
    const followerExit = new Promise<number | null>((r) => follower.once('exit', (code) => r(code)));
    await until(() => followed.length > 0, 30_000, 'logs --follow printed nothing');

    const drained = await glidein('drain', id, '--wait');
    expect(drained.code).toBe(0);
    expect(drained.stdout).toContain(`${id}: done; held on the site: nothing`);
    expect(await footprint(id)).toEqual(EMPTY);
    expect(await followerExit).toBe(0);
    // The drain reached the glidein's log while it was followed (its master logs the shutdown).
    expect(followed.length).toBeGreaterThan(0);
    // After teardown the log is read from where the glidein's directory was retired to.
    const after = await glidein('--json', 'logs', id, '--glidein');
    expect(JSON.parse(after.stdout).path).toContain(`/.done/${id}.`);
  });

  it('launch --follow without a terminal prints plain lines; a launch that fails says why and exits 1', async () => {
    const id = `cli-plain-${Date.now()}`;
    const failed = await glidein('launch', 'local-nokit', '--id', id, '--follow');
    expect(failed.code).toBe(1);
    const printed = failed.stdout + failed.stderr;
    expect(printed).toMatch(/^✔ planLaunch \(\d+\.\ds\): /m);
    expect(printed).toMatch(/^↓ allocateNode \[SKIPPED: not used at this site\]/m);
    // The proxy at KIT is out of reach: the tunnel opens, the check through it fails, naming the hop.
    expect(printed).toMatch(/✖ verifyOutbound \[FAILED: verifyOutbound failed after \d+\.\ds: .*127\.0\.0\.3:8/);
    expect(failed.stderr).toMatch(/^launch failed: /m);
    expect(failed.stderr).toMatch(/^ {2}teardown closeTunnel: ok/m);
    expect(await footprint(id)).toEqual(EMPTY);
  });

  it('fleet create runs a glidein from a Schedule; fleet status, pause, resume, drain, delete manage it', async () => {
    const schedule = `cli-fleet-${process.pid}`;
    const created = await glidein(
      '--json',
      'fleet',
      'create',
      schedule,
      '--site',
      'local',
      '--count',
      '1',
      '--every',
      '2s',
    );
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toEqual({ schedule, created: true });
    const running = async () => {
      const { stdout } = await glidein('--json', 'fleet', 'status', schedule);
      const status = JSON.parse(stdout) as {
        paused: boolean;
        fleets: Array<{ slots: Array<{ id: string; state: string }> }>;
      };
      return status;
    };
    let glideinId: string | undefined;
    const end = Date.now() + 180_000;
    while (!glideinId) {
      if (Date.now() > end)
        throw new Error(`no fleet glidein running: ${JSON.stringify(await running())}\n${workerLog.slice(-2000)}`);
      glideinId = (await running()).fleets[0]?.slots.find((slot) => slot.state === 'running')?.id;
      if (!glideinId) await new Promise((r) => setTimeout(r, 1_000));
    }
    const listed = JSON.parse((await glidein('--json', 'list', '--site', 'local', '--phase', 'monitoring')).stdout);
    expect(listed.map((g: { workflowId: string }) => g.workflowId)).toEqual([glideinId]);

    expect(JSON.parse((await glidein('--json', 'fleet', 'pause', schedule)).stdout)).toEqual({
      schedule,
      paused: true,
    });
    expect((await running()).paused).toBe(true);
    expect(JSON.parse((await glidein('--json', 'fleet', 'resume', schedule)).stdout)).toEqual({
      schedule,
      paused: false,
    });

    const drained = JSON.parse((await glidein('--json', 'fleet', 'drain', schedule)).stdout);
    expect(drained).toMatchObject({ schedule, paused: true });
    await env.client.workflow.getHandle(glideinId).result();
    expect(await footprint(glideinId)).toEqual(EMPTY);
    expect(JSON.parse((await glidein('--json', 'fleet', 'delete', schedule)).stdout)).toEqual({
      schedule,
      deleted: true,
    });
    const gone = await glidein('fleet', 'status', schedule);
    expect(gone.code).toBe(4);
    expect(gone.stderr).toContain(`no fleet schedule "${schedule}"`);
  });

  it('a launch started by `temporal workflow start` (as in the README) is found, followed and stopped', async () => {
    const id = `cli-temporal-${Date.now()}`;
    const started = spawnSync(
      temporalCli(),
      [
        'workflow',
        'start',
        '--address',
        env.address,
        '--type',
        'LaunchGlidein',
        '--task-queue',
        TASK_QUEUE,
        '--workflow-id',
        id,
        '--input',
        '{"site":"local","lifetime":"30m"}',
        '--static-summary',
        'Glidein at local for 30m',
      ],
      { encoding: 'utf8' },
    );
    expect(started.status).toBe(0);
    expect(await (await env.client.workflow.getHandle(id).describe()).staticSummary()).toBe('Glidein at local for 30m');
    const end = Date.now() + 120_000;
    for (;;) {
      const listed = JSON.parse((await glidein('--json', 'list', '--site', 'local', '--phase', 'monitoring')).stdout);
      if (listed.some((g: { workflowId: string }) => g.workflowId === id)) break;
      if (Date.now() > end) throw new Error(`${id} never listed as monitoring:\n${workerLog.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 1_000));
    }
    const stopped = await glidein('stop', id, '--wait');
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toContain(`${id}: done; held on the site: nothing`);
    expect(await footprint(id)).toEqual(EMPTY);
  });
});
