/** The worker's word on its connection: one line when the server is lost, one when it answers again, none between. */
import { ConnectionWatch } from '../../src/connection-watch';

function recorder() {
  const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
  return {
    lines,
    warn: (fields: Record<string, unknown>, message: string) => lines.push({ level: 'warn', message, fields }),
    info: (fields: Record<string, unknown>, message: string) => lines.push({ level: 'info', message, fields }),
  };
}

describe('ConnectionWatch', () => {
  it('says nothing while the server answers', async () => {
    const log = recorder();
    const watch = new ConnectionWatch(() => Promise.resolve({}), log, { address: 'a:7233' });
    for (let i = 0; i < 5; i++) await watch.check();
    expect(log.lines).toEqual([]);
    expect(watch.lost).toBe(false);
  });

  it('says once that it is lost, and once that it is back, with how long it was gone', async () => {
    const log = recorder();
    let up = true;
    let now = 1_000;
    const watch = new ConnectionWatch(
      () => (up ? Promise.resolve({}) : Promise.reject(new Error('unavailable'))),
      log,
      {
        address: 'a:7233',
        now: () => now,
      },
    );
    await watch.check();
    up = false;
    for (let i = 0; i < 4; i++) {
      now += 5_000;
      await watch.check();
    }
    expect(watch.lost).toBe(true);
    up = true;
    now += 5_000;
    await watch.check();
    await watch.check();
    expect(log.lines.map((l) => [l.level, l.message.split(':')[0]])).toEqual([
      ['warn', 'Temporal server unreachable'],
      ['info', 'Temporal server reachable again'],
    ]);
    expect(log.lines[0].fields).toMatchObject({ temporal: 'a:7233', error: 'unavailable' });
    expect(log.lines[1].fields).toEqual({ temporal: 'a:7233', downMs: 20_000 });
    expect(watch.lost).toBe(false);
  });

  it('checks on its own every interval until stopped', async () => {
    const log = recorder();
    let calls = 0;
    const watch = new ConnectionWatch(
      () => {
        calls++;
        return Promise.reject(new Error('down'));
      },
      log,
      { address: 'a:7233', everyMs: 10 },
    ).start();
    await new Promise((r) => setTimeout(r, 100));
    watch.stop();
    const seen = calls;
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toBeGreaterThanOrEqual(3);
    expect(calls).toBe(seen);
    expect(log.lines).toHaveLength(1);
  });
});

describe('ConnectionWatch timeouts', () => {
  it('counts a check that does not answer in time as lost, and its late answer as back', async () => {
    const log = recorder();
    let answer: (() => void) | undefined;
    const watch = new ConnectionWatch(() => new Promise<void>((resolve) => (answer = resolve)), log, {
      address: 'a:7233',
      timeoutMs: 20,
    });
    await watch.check();
    expect(watch.lost).toBe(true);
    expect(log.lines.map((l) => l.fields.error)).toEqual(['no answer within 20 ms']);
    answer?.();
    const next = watch.check();
    answer?.();
    await next;
    expect(watch.lost).toBe(false);
    expect(log.lines.map((l) => l.level)).toEqual(['warn', 'info']);
  });
});
