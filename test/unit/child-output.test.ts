/**
 * The tests' reader of a child's output (test/support/child-output.ts): a line written in pieces, with the other
 * stream's output between them and a character split across two writes, is seen whole or not at all; its end waits
 * for the last of the output, and gives up on a pipe a grandchild holds open.
 */
import { spawn } from 'node:child_process';
import { ChildOutput } from '../support/child-output';

/** A node child running `code`, with `write(fd, text)` that writes and waits 50 ms (each write its own read). */
function child(code: string) {
  const prelude =
    'const fs = require("fs"); const nap = () => new Promise((r) => setTimeout(r, 50));' +
    'const write = async (fd, bytes) => { fs.writeSync(fd, Buffer.from(bytes)); await nap(); };';
  return spawn(process.execPath, ['-e', `${prelude}(async () => { ${code} })()`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

describe('ChildOutput', () => {
  it('shows a line only once it is whole, with the other stream only between whole lines', async () => {
    // "é" is 0xc3 0xa9: split across two writes, as a pipe read can split it.
    const c = child(
      'await write(1, [...Buffer.from("{\\"msg\\":\\"caf"), 0xc3]); await write(2, [...Buffer.from("warn\\n")]);' +
        'await write(1, [0xa9, ...Buffer.from("\\"}\\n")]); await write(2, [...Buffer.from("last, no newline")]);',
    );
    const output = new ChildOutput(c);
    const seen: string[] = [];
    const sample = setInterval(() => seen.push(output.toString()), 5);
    try {
      expect(await output.ended(15_000)).toBe(true);
    } finally {
      clearInterval(sample);
    }
    // Which stream's line comes first is the reader's timing; each line is whole.
    expect(output.toString().split('\n').sort()).toEqual(['last, no newline', 'warn', '{"msg":"café"}']);
    // Every view on the way held whole lines only: never half the JSON line, never a broken character.
    const lines = new Set(seen.flatMap((text) => text.split('\n')));
    expect([...lines].filter((l) => l.startsWith('{'))).toEqual(['{"msg":"café"}']);
    expect([...lines].filter((l) => l.includes('\ufffd'))).toEqual([]);
  });

  it('waits for the output after the exit, and gives up on a pipe a grandchild holds open', async () => {
    // The grandchild inherits stdout and keeps it open after the child has exited; its pid comes on stderr.
    const c = child(
      'const g = require("child_process").spawn("sleep", ["30"], { stdio: ["ignore", "inherit", "ignore"] });' +
        'g.unref(); await write(2, [...Buffer.from(`${g.pid}\\n`)]); await write(1, [...Buffer.from("bye\\n")]);',
    );
    const output = new ChildOutput(c);
    await new Promise((r) => c.once('exit', r));
    const started = Date.now();
    const ended = await output.ended(300);
    const grandchild = Number(/^(\d+)$/m.exec(output.toString())?.[1]);
    try {
      expect(ended).toBe(false);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(output.toString().split('\n').sort()).toEqual(['', `${grandchild}`, 'bye']);
    } finally {
      if (grandchild > 0) process.kill(grandchild, 'SIGKILL');
    }
    expect(await output.ended(15_000)).toBe(true); // its end comes with the grandchild's
  });
});
