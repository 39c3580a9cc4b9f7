/** A command's output as the executors collect it: whole characters across chunks, bounded by bytes. */
import { OutputBuffer } from '../../src/remote/executor';

function collect(chunks: Array<Buffer | string>, limit?: number): string {
  const out = new OutputBuffer(limit);
  for (const c of chunks) out.push(c);
  return out.toString();
}

describe('OutputBuffer', () => {
  it('keeps a character whose bytes arrive in two chunks', () => {
    const text = 'Jülich → KIT 𝄞';
    const bytes = Buffer.from(text, 'utf8');
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(collect([bytes.subarray(0, cut), bytes.subarray(cut)])).toBe(text);
    }
    // One byte at a time, as a slow channel may deliver it.
    expect(collect([...bytes].map((b) => Buffer.from([b])))).toBe(text);
  });

  it('limits by bytes and says it truncated, never ending in half a character', () => {
    expect(collect(['aaaaaa'], 4)).toBe('aaaa\n[output truncated]');
    expect(collect(['aa', 'aa', 'aa'], 4)).toBe('aaaa\n[output truncated]');
    expect(collect(['aaaa'], 4)).toBe('aaaa');
    // "ü" is two bytes, "→" three, "𝄞" four: a limit inside one drops it whole.
    expect(collect(['aü'], 2)).toBe('a\n[output truncated]');
    expect(collect(['a→'], 3)).toBe('a\n[output truncated]');
    expect(collect(['a𝄞'], 4)).toBe('a\n[output truncated]');
    expect(collect(['a𝄞b'], 5)).toBe('a𝄞\n[output truncated]');
    expect(collect(['ü'.repeat(10)], 7)).toBe('üüü\n[output truncated]');
  });
});
