/**
 * Round trip of one remote `true` on the login node (user glidein, the operator's key), three ways:
 *   (a) SshPool: an exec channel on the kept ssh2 connection (the worker's way),
 *   (b) OpenSSH with a ControlMaster (`ssh -S <socket> host true`: a bash script's best case),
 *   (c) a new OpenSSH connection per command.
 * (b) and (c) are timed inside bash with $EPOCHREALTIME, so they cost what they cost a script (fork + exec
 * of ssh included) and no Node spawn is measured. Target: (a) ≤ 3 ms median.
 *
 *   npx ts-node bench/ssh-roundtrip.ts          env: BENCH_N (200, for a and b), BENCH_N_NEW (30, for c)
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { SshPool } from '../src/remote/ssh';
import { joinLocalSite, leaveLocalSite } from '../sandbox/local-site';
import {
  describeMachine,
  envInt,
  LOGIN_TARGET,
  machineState,
  num,
  opensshOptions,
  stats,
  table,
  writeResults,
  type Stats,
} from './lib';

const N = envInt('BENCH_N', 200);
const N_NEW = envInt('BENCH_N_NEW', 30);
const WARMUP = 5;
const TARGET_MS = 3;

const dest = ['-p', String(LOGIN_TARGET.port), `${LOGIN_TARGET.user}@${LOGIN_TARGET.host}`];

/** Runs `ssh <args> true` n times in one bash loop; returns each round trip in ms. */
function bashLoop(n: number, sshArgs: string[]): Promise<number[]> {
  const script = `n=$1; shift
for ((i = 0; i < n; i++)); do
  s=$EPOCHREALTIME
  "$@" true </dev/null || { echo "fail $?"; continue; }
  e=$EPOCHREALTIME
  echo "$s $e"
done`;
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script, 'bash', String(n), 'ssh', ...sshArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const lines = out.trim().split('\n').filter(Boolean);
      const failed = lines.filter((l) => l.startsWith('fail'));
      if (code !== 0 || failed.length)
        return reject(
          new Error(`ssh loop: exit ${code}, ${failed.length} failed: ${err.trim().split('\n').slice(-3).join(' ')}`),
        );
      resolve(lines.map((l) => l.split(' ').map(Number)).map(([s, e]) => (e - s) * 1000));
    });
  });
}

async function sshPoolRoundTrips(n: number): Promise<{ samples: number[]; connects: number }> {
  const pool = new SshPool();
  try {
    const login = pool.executor(LOGIN_TARGET);
    for (let i = 0; i < WARMUP; i++) await login.run(['true']);
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const r = await login.run(['true']);
      samples.push(performance.now() - t0);
      if (r.code !== 0) throw new Error(`true exited ${r.code}: ${r.stderr}`);
    }
    return { samples, connects: login.connects };
  } finally {
    pool.close();
  }
}

async function controlMasterRoundTrips(n: number): Promise<number[]> {
  const socket = `/tmp/bench-cm-${process.pid}.sock`;
  const master = await bashLoopOnce([
    'ssh',
    ...opensshOptions(),
    '-M',
    '-S',
    socket,
    '-o',
    'ControlPersist=120',
    '-N',
    '-f',
    ...dest,
  ]);
  if (master !== 0) throw new Error(`the ControlMaster did not start (exit ${master})`);
  try {
    await bashLoop(WARMUP, ['-F', '/dev/null', '-S', socket, '-o', 'BatchMode=yes', ...dest]);
    return await bashLoop(n, ['-F', '/dev/null', '-S', socket, '-o', 'BatchMode=yes', ...dest]);
  } finally {
    await bashLoopOnce(['ssh', '-F', '/dev/null', '-S', socket, '-O', 'exit', ...dest]);
    fs.rmSync(socket, { force: true });
  }
}

function bashLoopOnce(argv: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: 'ignore' });
    child.on('close', (code) => resolve(code));
    child.on('error', () => resolve(null));
  });
}

async function main(): Promise<void> {
  await joinLocalSite();
  const before = machineState();
  try {
    console.log(
      `ssh round trips of \`true\` on the login node ${LOGIN_TARGET.host}:${LOGIN_TARGET.port} as ` +
        `${LOGIN_TARGET.user}; ${describeMachine(before)}\n`,
    );
    const a = await sshPoolRoundTrips(N);
    const b = await controlMasterRoundTrips(N);
    await bashLoop(2, [...opensshOptions(), ...dest]); // warm the sshd
    const c = await bashLoop(N_NEW, [...opensshOptions(), ...dest]);
    const after = machineState();

    const rows: Array<[string, string, Stats]> = [
      ['a', 'SshPool exec channel on the kept ssh2 connection (TCP_NODELAY)', stats(a.samples)],
      ['b', 'OpenSSH, ControlMaster (ssh -S <socket> host true)', stats(b)],
      ['c', 'OpenSSH, a new connection per command', stats(c)],
    ];
    console.log(
      table(
        ['', 'how', 'N', 'median ms', 'p90 ms', 'min ms', 'max ms'],
        rows.map(([k, how, s]) => [k, how, s.n, num(s.median, 2), num(s.p90, 2), num(s.min, 2), num(s.max, 2)]),
      ),
    );
    const met = rows[0][2].median <= TARGET_MS;
    console.log(
      `\ntarget (a) median ≤ ${TARGET_MS} ms: ${met ? 'met' : 'MISSED'} (${num(rows[0][2].median, 2)} ms); ` +
        `(a) opened ${a.connects} connection(s)`,
    );
    console.log(
      `(b)/(a) median ratio ${num(rows[1][2].median / rows[0][2].median, 1)}×, (c)/(a) ` +
        `${num(rows[2][2].median / rows[0][2].median, 0)}×`,
    );
    console.log(`machine after: ${describeMachine(after)}`);
    const file = writeResults('ssh-roundtrip', {
      bench: 'ssh-roundtrip',
      machine: { before, after },
      target: { aMedianMs: TARGET_MS, met },
      results: Object.fromEntries(rows.map(([k, how, s]) => [k, { how, ...s }])),
      samplesMs: { a: a.samples, b, c },
      sshPoolConnects: a.connects,
    });
    console.log(`wrote ${file}`);
  } finally {
    await leaveLocalSite();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
