/**
 * SPAWN_DETACHED never leaves a process that no pid file names: the spawning script is SIGKILLed at every
 * moment of its run (as when an activity is aborted and its remote command killed), and whatever it started is
 * the process its pid file names.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SPAWN_DETACHED } from '../../src/site/scripts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spawn-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Pids of processes whose command line is exactly argv. */
function processesRunning(argv: string[]): number[] {
  const want = argv.join('\0') + '\0';
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        return (
          fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8') === want &&
          !/^\d+ \(.*\) Z/s.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))
        );
      } catch {
        return false;
      }
    })
    .map(Number);
}

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('killed at any moment, the spawn leaves no process its pid file does not name', async () => {
  const strays: string[] = [];
  for (let k = 0; k < 25; k++) {
    const pidFile = path.join(dir, `p${k}.pid`);
    fs.writeFileSync(pidFile, '1 1\n'); // an old record, replaced by the spawn
    const argv = ['sleep', `3${k}.5`];
    const parent = spawn(
      'sh',
      ['-c', SPAWN_DETACHED, 'sh', path.join(dir, `p${k}.log`), pidFile, '', '0', '0', '', ...argv],
      { stdio: 'ignore' },
    );
    const exited = new Promise((r) => parent.once('exit', r));
    await sleep(k * 2);
    parent.kill('SIGKILL'); // a no-op once it has finished by itself
    await exited;
    await sleep(150); // a child forked before the kill has recorded itself by now
    const running = processesRunning(argv);
    const named = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').split(' ')[0]) : undefined;
    for (const pid of running) {
      if (pid !== named) strays.push(`kill after ${k * 2} ms: ${argv.join(' ')} pid ${pid}, pid file names ${named}`);
      process.kill(pid, 'SIGKILL');
    }
  }
  expect(strays).toEqual([]);
});
