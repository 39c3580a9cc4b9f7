/**
 * The main job on its embedded default: a Temporal dev server with its Web UI, the local test site and a
 * worker; then one glidein launched, each step printed as it completes, held for a while once registered,
 * drained, and torn down; then a GlideinFleet on a Temporal Schedule fills its count, and the whole site is
 * drained the way an operator would.
 *
 *   npm run demo                 # launch, hold DEMO_HOLD seconds (default 15), drain, stop everything
 *   DEMO_SITE=local npm run demo # the loopback site instead of JSC in a box (strict by default)
 *   DEMO_SITE=jsc-box npm run demo # JSC in a box, lenient (ssh into the node, the forward tunnel)
 *   npm run demo -- --serve      # keep server, site and worker up for the temporal CLI; Ctrl-C stops
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parse, stringify } from 'yaml';
import * as net from 'node:net';
import * as path from 'node:path';
import { Connection, Client } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { BAN, bannedSources, isStrict, joinJscBox, leaveJscBox, setStrict } from '../sandbox/jsc-box';
import { joinLocalSite, leaveLocalSite } from '../sandbox/local-site';
import { installRuntimeLogger, logger } from '../src/logger';
import { SshPool } from '../src/remote/ssh';
import { configFromEnv, createWorker, DEFAULT_TASK_QUEUE } from '../src/worker';
import { launchStartOptions } from '../src/workflows/launch-options';
import { LaunchGlidein } from '../src/workflows';
import { drainSignal, SEARCH_ATTRIBUTES, statusQuery, type GlideinStatus } from '../src/workflows/messages';
import { temporalCli } from '../sandbox/temporal-cli';
import { drainFleetSchedule, upsertFleetSchedule } from '../src/fleet-schedule';
import { fleetStatusQuery } from '../src/workflows/fleet-messages';

const PORT = Number(process.env.TEMPORAL_PORT ?? 7233);
const UI_PORT = Number(process.env.TEMPORAL_UI_PORT ?? 8233);
const HOLD_S = Number(process.env.DEMO_HOLD ?? 15);
const serve = process.argv.includes('--serve');
/**
 * Glideins in the fleet part of the demo (0: no fleet): three sharing the worker node, each with its own SOCKS port
 * (in JSC in a box, each in its own Slurm holder job asking for a share of the node).
 */
const fleetSize = () => Number(process.env.DEMO_FLEET ?? 3);
const say = (line: string) => console.log(`[demo] ${line}`);

async function main(): Promise<void> {
  logger.level = process.env.LOG_LEVEL ?? 'warn';
  installRuntimeLogger();
  const cli = temporalCli();
  say(`starting the Temporal dev server (${cli}) on 127.0.0.1:${PORT}, Web UI on http://127.0.0.1:${UI_PORT}`);
  const server = spawn(
    cli,
    [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(PORT),
      '--ui-port',
      String(UI_PORT),
      '--log-level',
      'error',
      ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const cleanups: Array<() => Promise<void> | void> = [() => stopProcess(server)];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        say(`cleanup: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  try {
    await waitForPort('127.0.0.1', PORT, 60_000);
    const site = await startSite();
    cleanups.push(site.leave);

    const ssh = new SshPool();
    const nativeConnection = await NativeConnection.connect({ address: `127.0.0.1:${PORT}` });
    const worker = await createWorker(
      { ...configFromEnv({ TEMPORAL_ADDRESS: `127.0.0.1:${PORT}` }), sitesDir: demoSites() },
      nativeConnection,
      ssh,
    );
    const running = worker.run();
    cleanups.push(async () => {
      // Ctrl-C reaches the worker too (the SDK shuts it down on SIGINT/SIGTERM): only shut it down if it runs.
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      ssh.close();
      await nativeConnection.close();
    });
    say(`worker polling task queue "${DEFAULT_TASK_QUEUE}"`);

    if (serve) {
      say('serving. From another shell, for example:');
      say(
        `  temporal workflow start --type LaunchGlidein --task-queue ${DEFAULT_TASK_QUEUE} --workflow-id ` +
          `glidein-local-1 --input '{"site":"${site.name}"}' --static-summary 'Glidein at ` +
          `${site.name}, by hand'`,
      );
      say('  temporal workflow query --workflow-id glidein-local-1 --type status');
      say('  temporal workflow signal --workflow-id glidein-local-1 --name drain');
      say(`(the temporal CLI is ${cli}). Ctrl-C stops everything.`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      return;
    }

    const connection = await Connection.connect({ address: `127.0.0.1:${PORT}` });
    cleanups.push(() => connection.close());
    const client = new Client({ connection });
    const workflowId = `glidein-${site.name}-demo-${Date.now()}`;
    const request = { site: site.name, lifetime: '1h' };
    const handle = await client.workflow.start(LaunchGlidein, {
      taskQueue: DEFAULT_TASK_QUEUE,
      workflowId,
      args: [request],
      ...launchStartOptions(request, { requestedBy: 'scripts/dev demo' }),
    });
    say(`started LaunchGlidein ${workflowId}`);
    say(`watch it: http://127.0.0.1:${UI_PORT}/namespaces/default/workflows/${workflowId}`);

    let printed = 0;
    const printSteps = (status: GlideinStatus) => {
      for (; printed < status.steps.length && status.steps[printed].status !== 'running'; printed++) {
        const s = status.steps[printed];
        say(
          `  ${s.status === 'ok' ? '✓' : '✗'} ${s.step.padEnd(19)} ` +
            `${String(s.durationMs ?? 0).padStart(5)} ms  ${s.detail ?? s.error ?? ''}`,
        );
      }
    };
    let drained = false;
    let registeredAt = 0;
    const done = handle.result();
    let finished = false;
    done.then(
      () => (finished = true),
      () => (finished = true),
    );
    while (!finished) {
      const status = await handle.query(statusQuery);
      printSteps(status);
      if (status.phase === 'monitoring' && !registeredAt) {
        registeredAt = Date.now();
        say(`registered with the collector as ${status.registration?.name}; holding ${HOLD_S} s, then drain`);
      }
      if (registeredAt && !drained && Date.now() - registeredAt > HOLD_S * 1000) {
        say('signal drain');
        await handle.signal(drainSignal);
        drained = true;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const result = await done;
    printSteps({ ...(await handle.query(statusQuery)) });
    say(`finished: ${result.endReason}; everything acquired on the site has been released`);
    if (fleetSize() > 0) await demoFleet(client, site.name, fleetSize());
  } finally {
    await cleanup();
  }
}

/**
 * The test sites' profiles as the demo runs them: each glidein leases its own SOCKS port from a range, so that
 * the fleet's glideins share the worker node, and the fleet may hold DEMO_FLEET of them.
 */
function demoSites(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'demo-sites-'));
  for (const name of ['local', 'jsc-box', 'jsc-box-strict']) {
    const profile = parse(readFileSync(path.join(__dirname, '..', 'sites', `${name}.yaml`), 'utf8'));
    const first = profile.tunnel.socksPort as number | undefined;
    if (first !== undefined) {
      delete profile.tunnel.socksPort;
      profile.tunnel.socksPorts = `${first}-${first + 9}`;
    }
    const n = Math.max(fleetSize(), 1);
    profile.fleet = { ...profile.fleet, maxGlideins: n, maxStarting: n };
    // Slurm gives each job the whole node unless it asks for less: here each holder job asks for a share.
    if (profile.workerNode.via === 'slurm')
      profile.workerNode = { ...profile.workerNode, memory: '256M', cpusPerTask: 1 };
    writeFileSync(path.join(dir, `${name}.yaml`), stringify(profile));
  }
  return dir;
}

/** A fleet on a schedule: created as an operator would, watched until full, then the whole site drained. */
async function demoFleet(client: Client, site: string, size: number): Promise<void> {
  const scheduleId = `fleet-${site}-demo`;
  say(`fleet: creating schedule ${scheduleId} (GlideinFleet of ${size} on ${site}, overlap SKIP)`);
  await upsertFleetSchedule(client, {
    scheduleId,
    taskQueue: DEFAULT_TASK_QUEUE,
    every: '1m',
    request: { site, count: size, fleet: `${site}-demo` },
  });
  const schedule = client.schedule.getHandle(scheduleId);
  try {
    let fleetId: string | undefined;
    let shown = '';
    const until = Date.now() + 600_000;
    for (;;) {
      if (Date.now() > until) throw new Error('the fleet did not fill within 10 minutes');
      fleetId ??= (await schedule.describe()).info.runningActions[0]?.workflow.workflowId;
      if (fleetId) {
        const v = await client.workflow.getHandle(fleetId).query(fleetStatusQuery);
        const line =
          `fleet ${v.fleet}: ${v.phase}, ${v.running} running, ${v.starting} starting of ` +
          `${v.target}${v.held ? ` (${v.held})` : ''}`;
        if (line !== shown) say((shown = line));
        if (v.running >= size) break;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    say(
      `fleet full; watch it: ` +
        `http://127.0.0.1:${UI_PORT}/namespaces/default/workflows?query=GlideinFleet%3D%22${site}-demo%22`,
    );
    await new Promise((r) => setTimeout(r, Math.min(HOLD_S, 10) * 1000));
    say(`fleet: draining the whole site (glidein fleet drain ${scheduleId})`);
    const fleets = await drainFleetSchedule(client, scheduleId);
    for (const id of fleets) {
      const result = await client.workflow.getHandle(id).result();
      say(`fleet ${id} ended: ${result.endReason} after ${result.rounds} rounds`);
    }
  } finally {
    await schedule.delete().catch(() => undefined);
  }
}

/**
 * JSC in a box (namespaces with JSC's firewall, Slurm) where the machine allows it, else the loopback site.
 * DEMO_SITE=local or DEMO_SITE=jsc-box chooses.
 */
async function startSite(): Promise<{ name: string; leave: () => Promise<void> }> {
  const wanted = process.env.DEMO_SITE;
  if (wanted !== 'local') {
    try {
      say(
        "starting JSC in a box: namespaces gl-login, gl-worker, gl-kit, gl-pool with JSC's firewall, Slurm, " +
          'sshd, tinyproxy as KIT, collector, squid',
      );
      await joinJscBox();
      // JSC as it publishes itself, unless the lenient box was asked for: no sshd on the worker node, keys with
      // from=, a login node that bans a source opening too many connections; the node by srun, the relay tunnel.
      const strict = wanted !== 'jsc-box';
      const wasStrict = isStrict();
      if (strict !== wasStrict) await setStrict(strict);
      const name = strict ? 'jsc-box-strict' : 'jsc-box';
      say(
        strict
          ? `site: ${name} (sites/${name}.yaml): strict JSC in a box: no sshd on the worker node (srun ` +
              `--jobid --overlap steps), no key on the site (a relay on the login node), from= keys, and a login ` +
              `node that bans a source opening more than ${BAN.connections} SSH connections a minute`
          : `site: ${name} (sites/${name}.yaml): the worker node comes from a Slurm job and reaches ` +
              `only the login node`,
      );
      return {
        name,
        leave: async () => {
          const banned = await bannedSources();
          say(`banned by the login node's firewall: ${banned.join(' ') || 'nobody'}`);
          if (strict !== wasStrict) await setStrict(wasStrict);
          await leaveJscBox();
        },
      };
    } catch (err) {
      if (wanted === 'jsc-box' || wanted === 'jsc-box-strict') throw err;
      say(
        `JSC in a box is not possible here ` +
          `(${err instanceof Error ? err.message.split('\n')[0] : String(err)}); using the loopback site`,
      );
    }
  }
  say('starting the local test site (sshd login + worker node, tinyproxy as KIT, collector stand-in)');
  await joinLocalSite();
  say('site: local (sites/local.yaml): loopback, no firewall between the parts');
  return { name: 'local', leave: async () => void (await leaveLocalSite()) };
}

function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const sock = net.connect({ host, port });
      sock.once('connect', () => {
        sock.destroy();
        resolve();
      });
      sock.once('error', () => {
        sock.destroy();
        if (Date.now() > until) reject(new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`));
        else setTimeout(attempt, 200);
      });
    };
    attempt();
  });
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`[demo] failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
