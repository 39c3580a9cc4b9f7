/**
 * Cuts the window a reader asked for out of a log read with context on either side (READ_LOG), after redaction:
 * only whole lines are shown, and they are redacted together with the lines around them, so that the window's edges
 * never cut a token or a key into pieces redaction no longer knows.
 */
import { redactKeepingLines } from '../common/redact';
import type { LogBytes } from '../site/scripts';

export interface LogWindow {
  /** The file offset of the first byte shown (the start of a line). */
  offset: number;
  /** The file offset after the last line shown: where a follower reads on. */
  end: number;
  text: string;
}

const NEWLINE = 0x0a;

/** The whole lines of `read` in the window of `maxBytes` from its offset, redacted (see the top of this file). */
export function logWindow(read: LogBytes, maxBytes: number): LogWindow {
  const { bytes, from, offset, size } = read;
  const windowEnd = offset + maxBytes;
  const readEnd = from + bytes.length;
  // Known line starts, as file offsets: the file's start, and after every newline. What comes before the first
  // newline of a read that began inside the file is the end of a line whose start was not read: context at most.
  const starts: number[] = from === 0 ? [0] : [];
  for (let i = bytes.indexOf(NEWLINE); i >= 0; i = bytes.indexOf(NEWLINE, i + 1)) starts.push(from + i + 1);
  // Complete lines [start, end), the end after its newline; a last line without one is still being written.
  const lines: Array<{ start: number; end: number }> = [];
  for (let i = 0; i + 1 < starts.length; i++) lines.push({ start: starts[i], end: starts[i + 1] });

  let shown = lines.filter((l) => l.start >= offset && l.end <= windowEnd);
  // No whole line fits: the first one that overlaps the window is shown whole rather than cut.
  if (shown.length === 0) shown = lines.filter((l) => l.end > offset && l.start < windowEnd).slice(0, 1);
  if (shown.length === 0) {
    const next = starts.find((s) => (readEnd >= size ? s >= offset : s > offset));
    const end = next ?? (readEnd >= size ? offset : readEnd);
    const text = end > offset ? `[${end - offset} bytes of a line too long to show whole]\n` : '';
    return { offset, end, text };
  }

  const first = lines.indexOf(shown[0]);
  const context = bytes.subarray(lines[0].start - from, lines[lines.length - 1].end - from).toString('utf8');
  const original = context.split('\n');
  const redacted = redactKeepingLines(context).split('\n');
  const out: string[] = [];
  for (let i = first; i < first + shown.length; i++) {
    // A line that redaction emptied lies inside a secret spanning lines, whose marker is on the line it began on;
    // when that line is before the window, the window's first line says so instead.
    if (redacted[i] === '' && original[i] !== '') {
      if (i === first) out.push('[redacted]');
      continue;
    }
    out.push(redacted[i]);
  }
  return { offset: shown[0].start, end: shown[shown.length - 1].end, text: out.map((l) => `${l}\n`).join('') };
}
