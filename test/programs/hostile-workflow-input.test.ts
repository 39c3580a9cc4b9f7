/**
 * The whole workflow input is hostile until validated, internal fields included, driven as an attacker would:
 * with the `temporal` CLI against the worker process. Every case is refused as InvalidRequest with no activity
 * scheduled and no new connection in either sshd's log; a forged `resume` naming a running glidein leaves that
 * glidein exactly as it was. And what a glidein prints (a token, a private key) reaches neither the history nor
 * the worker's log, whose every error line keeps its message.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parse, stringify } from 'yaml';
import { FailureType } from '../../src/common/failure-types';
import { statusQuery } from '../../src/workflows/messages';
import { historyText } from '../support/secrets';
import { SITES_DIR } from '../../sandbox/sites';
import { createTestEnv, temporalCli } from '../../sandbox/temporal';
import { expectNoSecretsInHistories, startWorkerProcess, type WorkerProcess } from '../support/worker-process';
import { SITE_PATHS, sshdLog } from '../../sandbox/local-site';
import { EMPTY, footprint } from '../../sandbox/site-state';

const run = promisify(execFile);
const TASK_QUEUE = `hostile-${process.pid}`;
const scratch = mkdtempSync(path.join(tmpdir(), 'hostile-input-'));

/** What a leaky glidein prints: an IDTOKEN, a token assignment and a private key (the tail may cut its BEGIN line). */
const PLANTED = {
  jwt:
    'eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJnbGlkZWluQGNtcyIsImlzcyI6InBvb2wifQ.' +
    'c2lnbmF0dXJlLW9mLWEtdGVzdC10b2tlbi1vbmx5',
  token: 'token=PlantedSecret4711',
  keyBody: 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQAAACBwbGFudGVk',
};

let env: TestWorkflowEnvironment;
let worker: WorkerProcess;

beforeAll(async () => {
  // The shipped local profile, and `leaky`: the same site whose glidein prints secrets and exits at once.
  const sites = mkdtempSync(path.join(tmpdir(), 'hostile-sites-'));
  writeFileSync(path.join(sites, 'local.yaml'), readFileSync(path.join(SITES_DIR, 'local.yaml')));
  const leaky = parse(readFileSync(path.join(SITES_DIR, 'local.yaml'), 'utf8'));
  leaky.name = 'leaky';
  leaky.tunnel.socksPort = 1188;
  leaky.glidein.startCommand = [
    '/bin/sh',
    '-c',
    `echo "IDTOKEN ${PLANTED.jwt}"; echo "${PLANTED.token}"; echo "-----BEGIN OPENSSH PRIVATE KEY-----"; ` +
      `for i in 1 2 3 4 5 6 7 8 9; do echo "${PLANTED.keyBody}"; done; ` +
      `echo "-----END OPENSSH PRIVATE KEY-----"; sleep 1; exit 3`,
  ];
  writeFileSync(path.join(sites, 'leaky.yaml'), stringify(leaky));
  env = await createTestEnv();
  worker = startWorkerProcess(env, TASK_QUEUE, { SITES_DIR: sites, LOG_LEVEL: 'info' });
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  if (env) await expectNoSecretsInHistories(env);
  await env?.teardown();
});

async function temporal(...args: string[]): Promise<string> {
  const { stdout } = await run(
    temporalCli(),
    [...args, '--address', env.address, '--namespace', env.namespace ?? 'default'],
    {
      timeout: 60_000,
      maxBuffer: 64 << 20,
    },
  );
  return stdout;
}

/** Starts LaunchGlidein with `input` through the CLI (from a file: some inputs are larger than an argv word may be). */
async function startWithCli(id: string, input: unknown): Promise<void> {
  const file = path.join(scratch, `${id}.json`);
  writeFileSync(file, JSON.stringify(input));
  await temporal(
    'workflow',
    'start',
    '--type',
    'LaunchGlidein',
    '--task-queue',
    TASK_QUEUE,
    '--workflow-id',
    id,
    '--input-file',
    file,
  );
}

async function failureOf(id: string): Promise<ApplicationFailure> {
  const err = await env.client.workflow
    .getHandle(id)
    .result()
    .then(
      () => undefined,
      (e) => e,
    );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
}

async function activitiesScheduled(id: string): Promise<number> {
  const history = JSON.parse(await temporal('workflow', 'show', '--workflow-id', id, '--output', 'json'));
  return history.events.filter((e: any) => e.activityTaskScheduledEventAttributes).length;
}

/** A carried state as the workflow writes it, for the glidein `glideinId`. */
function resumeFor(glideinId: string, extra: { status?: Record<string, unknown>; [k: string]: unknown } = {}) {
  const { status, ...rest } = extra;
  return {
    plan: {
      site: 'local',
      glideinId,
      lifetimeMs: 600_000,
      registrationTimeoutMs: 60_000,
      monitorIntervalMs: 60_000,
      monitorRoundMs: 600_000,
      drainGraceMs: 60_000,
      stopGraceMs: 30_000,
      repositories: ['cms.cern.ch', 'oasis.opensciencegrid.org'],
      workDir: `${SITE_PATHS.workDir}/${glideinId}`,
      collector: '127.0.0.4:9618',
    },
    status: {
      site: 'local',
      glideinId,
      phase: 'monitoring',
      steps: [],
      held: [
        { kind: 'tunnel', socksPort: 1080 },
        { kind: 'cvmfs', repositories: ['cms.cern.ch'] },
        { kind: 'container', instance: `glidein-${glideinId}` },
        { kind: 'glidein' },
      ],
      deadline: 1,
      ...status,
    },
    tunnelRepairs: 0,
    ...rest,
  };
}

const HOSTILE: Array<[string, (id: string) => unknown, RegExp]> = [
  [
    'resume with a traversal glidein id',
    () => ({ site: 'local', resume: resumeFor('../../../../../../tmp/x') }),
    /resume/,
  ],
  ['resume naming its own glidein, in a first run', (id) => ({ site: 'local', resume: resumeFor(id) }), /resume/],
  [
    'resume naming its own workflow, in a first run',
    (id) => ({ site: 'local', resume: { ...resumeFor(id), workflowId: id } }),
    /resume/,
  ],
  [
    'resume holding an unknown kind',
    (id) => ({ site: 'local', resume: resumeFor(id, { status: { held: [{ kind: 'rootfs', path: '/' }] } }) }),
    /resume/,
  ],
  [
    'resume with a huge held array',
    (id) => ({
      site: 'local',
      resume: resumeFor(id, { status: { held: Array.from({ length: 50_000 }, () => ({ kind: 'glidein' })) } }),
    }),
    /resume/,
  ],
  [
    'resume with a hostile node',
    (id) => ({
      site: 'local',
      resume: resumeFor(id, { status: { allocation: { jobId: '1', node: '-oProxyCommand=touch /tmp/pwned' } } }),
    }),
    /resume/,
  ],
  ['resume as a string', () => ({ site: 'local', resume: 'x' }), /resume/],
  ['resume as a number', () => ({ site: 'local', resume: 42 }), /resume/],
  ['resume as an array', () => ({ site: 'local', resume: [] }), /resume/],
  ['resume as null', () => ({ site: 'local', resume: null }), /resume/],
  ['maxHistoryEvents 0', () => ({ site: 'local', maxHistoryEvents: 0 }), /maxHistoryEvents/],
  ['maxHistoryEvents 1', () => ({ site: 'local', maxHistoryEvents: 1 }), /maxHistoryEvents/],
  ['maxHistoryEvents -1', () => ({ site: 'local', maxHistoryEvents: -1 }), /maxHistoryEvents/],
  ['maxHistoryEvents as a string', () => ({ site: 'local', maxHistoryEvents: '5' }), /maxHistoryEvents/],
  ['an unknown field', () => ({ site: 'local', node: 'evil.example.org' }), /node/],
  ['a __proto__ key', () => JSON.parse('{"site":"local","__proto__":{"polluted":true}}'), /__proto__/],
  ['an array', () => ['local'], /top level|site/],
  ['a string', () => 'local', /top level|site/],
  ['null', () => null, /top level|site/],
  ['a hostile site', () => ({ site: '../../etc/passwd' }), /site/],
  ['a hostile lifetime', () => ({ site: 'local', lifetime: '$(touch /tmp/pwned)' }), /lifetime/],
];

describe('the whole workflow input, through the temporal CLI', () => {
  it.each(HOSTILE)(
    'refuses %s as InvalidRequest, with no activity and no connection to the site',
    async (name, input, field) => {
      const id = `hostile-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}-${Date.now()}`;
      const logs = { login: sshdLog('login').length, worker: sshdLog('worker').length };
      await startWithCli(id, input(id));
      const failure = await failureOf(id);
      expect(failure.type).toBe(FailureType.InvalidRequest);
      expect(failure.message).toMatch(field);
      expect(await activitiesScheduled(id)).toBe(0);
      expect(sshdLog('login').slice(logs.login)).not.toMatch(/Connection from/);
      expect(sshdLog('worker').slice(logs.worker)).not.toMatch(/Connection from/);
      // Refused glideins are findable in the Web UI's list like any failed one.
      const listed = await temporal(
        'workflow',
        'list',
        '--query',
        `WorkflowId = "${id}" AND GlideinPhase = "failed"`,
        '--output',
        'json',
      );
      expect(listed).toContain(id);
    },
  );

  it('a forged resume naming a running glidein, with a past deadline, leaves that glidein as it was', async () => {
    const victim = `victim-${Date.now()}`;
    await temporal(
      'workflow',
      'start',
      '--type',
      'LaunchGlidein',
      '--task-queue',
      TASK_QUEUE,
      '--workflow-id',
      victim,
      '--input',
      '{"site":"local","lifetime":"1h"}',
    );
    const handle = env.client.workflow.getHandle(victim);
    for (let i = 0; (await handle.query(statusQuery)).phase !== 'monitoring'; i++) {
      if (i > 300) throw new Error(`${victim} never reached monitoring: ${worker.log().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const before = await footprint(victim);
    expect([
      before.tunnels.length,
      before.glideins.length,
      before.instances.length,
      before.ads.length,
      before.workDir,
    ]).toEqual([1, 1, 1, 1, true]);

    const attacker = `attacker-${Date.now()}`;
    await startWithCli(attacker, { site: 'local', resume: resumeFor(victim) });
    const failure = await failureOf(attacker);
    expect(failure.type).toBe(FailureType.InvalidRequest);
    expect(await activitiesScheduled(attacker)).toBe(0);

    expect(await footprint(victim)).toEqual(before);
    expect((await handle.query(statusQuery)).phase).toBe('monitoring');
    await temporal('workflow', 'signal', '--workflow-id', victim, '--name', 'stop');
    await handle.result();
    expect(await footprint(victim)).toEqual(EMPTY);
  });

  it("a glidein that prints a token and a private key: neither reaches the history or the worker's log", async () => {
    const id = `leaky-${Date.now()}`;
    await temporal(
      'workflow',
      'start',
      '--type',
      'LaunchGlidein',
      '--task-queue',
      TASK_QUEUE,
      '--workflow-id',
      id,
      '--input',
      '{"site":"leaky"}',
    );
    const failure = await failureOf(id);
    expect(failure.message).toMatch(/glidein/i);
    const history = historyText(await env.client.workflow.getHandle(id).fetchHistory());
    // The failure did carry the glidein's output, redacted.
    expect(`${failure.message}\n${history}`).toMatch(/redacted/);
    for (const secret of Object.values(PLANTED)) expect(history).not.toContain(secret);
    const log = worker.log();
    for (const secret of Object.values(PLANTED)) expect(log).not.toContain(secret);
  });

  it('no line of the worker log has an empty error', () => {
    const lines = worker
      .log()
      .split('\n')
      .filter((l) => l.startsWith('{'));
    expect(lines.length).toBeGreaterThan(0);
    const empty = lines.filter((l) => /"(error|err|failure)":\{\}/.test(l));
    expect(empty).toEqual([]);
    // Where an error is logged, its message is there.
    const withError = lines.map((l) => JSON.parse(l)).filter((l) => l.error !== undefined);
    for (const line of withError) expect(typeof line.error === 'string' ? line.error : line.error.message).toBeTruthy();
  });
});
