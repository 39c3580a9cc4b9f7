/**
 * Durations as operators write them: "90s", "5m", "2h", "1h30m", "1d". Pure, so workflows can use it.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(?:\d{1,7}(?:ms|s|m|h|d))+$/;
const PART = /(\d{1,7})(ms|s|m|h|d)/g;

export function isDuration(text: string): boolean {
  return DURATION.test(text);
}

/** Milliseconds in a duration string; throws on anything else (callers validate first). */
export function parseDuration(text: string): number {
  if (!isDuration(text))
    throw new Error(`not a duration: ${JSON.stringify(text)} (expected e.g. "30s", "5m", "2h", "1h30m")`);
  let total = 0;
  for (const [, n, unit] of text.matchAll(PART)) total += Number(n) * UNIT_MS[unit];
  return total;
}
