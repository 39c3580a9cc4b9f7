/**
 * Keeps key material, tokens and passwords out of anything that is logged or recorded in history.
 * Pure and free of Node built-ins: workflow code imports it too.
 */

// PEM labels as OpenSSL, OpenSSH and RFC 4716 (four dashes and spaces) write them; an X.509 proxy file holds a
// CERTIFICATE block and an RSA PRIVATE KEY block.
const DASHES = '-{4,5} ?';
const PRIVATE_LABEL = '[A-Z0-9 ]*PRIVATE KEY[A-Z0-9 ]*?';
const CERT_LABEL = '[A-Z0-9 ]*CERTIFICATE[A-Z0-9 ]*?';

/** [pattern, replacement, a substring without which the pattern cannot match: most texts skip most patterns]. */
type Rule = [RegExp, string, string?];

/** Whole PEM blocks, first: what is left of a block after them is an orphan END line. */
const BLOCKS: Rule[] = [
  // A BEGIN line with no END (a truncated log tail) redacts to the end of the text: what follows is the key.
  [
    new RegExp(`${DASHES}BEGIN ${PRIVATE_LABEL} ?-{4,5}[\\s\\S]*?(?:${DASHES}END ${PRIVATE_LABEL} ?-{4,5}|$)`, 'g'),
    '[redacted private key]',
    'PRIVATE KEY',
  ],
  [
    new RegExp(`${DASHES}BEGIN ${CERT_LABEL} ?-{4,5}[\\s\\S]*?(?:${DASHES}END ${CERT_LABEL} ?-{4,5}|$)`, 'g'),
    '[redacted certificate]',
    'CERTIFICATE',
  ],
];

/** Tokens, passwords and credentials in URLs. */
const SECRETS: Rule[] = [
  [/\b(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})\b/g, '[redacted token]', 'eyJ'],
  // Also catches prefixed names (IDTOKEN=, access_token=) and JSON-ish "token": "..."; the bounded prefix keeps the
  // scan linear on long hyphenated words.
  [
    /\b([\w-]{0,40}(?:password|passwd|passphrase|token|secret|bearer|api[_-]?key)["']?\s*[=:]\s*)(?!\[redacted)\S+/gi,
    '$1[redacted]',
  ],
  // "Bearer <opaque token>"; the length floor spares prose such as "bearer token".
  [/\b(bearer\s+)(?!\[redacted)[A-Za-z0-9._~+/-]{20,}=*/gi, '$1[redacted]'],
  [/\b([a-z][a-z0-9+.-]{0,30}:\/\/[^\s:/@]+:)[^\s@/]+@/gi, '$1[redacted]@', '://'],
];

// END lines left once whole blocks are gone: a log tail that starts inside a block.
const ORPHAN_ENDS: Rule[] = [
  [new RegExp(`${DASHES}END ${PRIVATE_LABEL} ?-{4,5}`, 'g'), '[redacted private key]', 'PRIVATE KEY'],
  [new RegExp(`${DASHES}END ${CERT_LABEL} ?-{4,5}`, 'g'), '[redacted certificate]', 'CERTIFICATE'],
];
const BASE64_RUN_AT_END = /[A-Za-z0-9+/=]{16,}\r?$/;

export function redact(text: string): string {
  let out = applyRules(text, BLOCKS);
  for (const [end, replacement, needle] of ORPHAN_ENDS) {
    if (out.includes(needle!)) out = redactOrphanEnds(out, end, replacement);
  }
  return applyRules(out, SECRETS);
}

function applyRules(text: string, rules: Rule[]): string {
  let out = text;
  for (const [pattern, replacement, needle] of rules) {
    if (needle === undefined || out.includes(needle)) out = out.replace(pattern, replacement);
  }
  return out;
}

/**
 * Replaces each END line with the base64 lines just before it (the body of the block), walking back line by line:
 * linear, where a regex with a repeated line group goes quadratic on a long base64 text.
 */
function redactOrphanEnds(text: string, end: RegExp, replacement: string): string {
  let out = '';
  let copied = 0;
  for (const m of text.matchAll(end)) {
    let start = m.index;
    while (start > copied && text[start - 1] === '\n') {
      const lineStart = Math.max(text.lastIndexOf('\n', start - 2) + 1, copied);
      const run = BASE64_RUN_AT_END.exec(text.slice(lineStart, start - 1));
      if (!run) break;
      start = lineStart + run.index;
      if (run.index > 0) break; // text before the run on that line ("stderr: ") is not the key
    }
    out += text.slice(copied, start) + replacement;
    copied = m.index + m[0].length;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** Field names whose values are secrets whatever they look like (IDTOKEN, clientSecret, password, ...). */
const SECRET_KEY = /(?:password|passwd|passphrase|secret|token|private_?key|api_?key)$/i;

export interface RedactDeepOptions {
  /** Nesting below this many levels is replaced by '[Truncated]'. */
  maxDepth?: number;
  /** Arrays, maps, sets and objects keep at most this many entries. */
  maxEntries?: number;
  /** An error's cause chain is followed at most this far. */
  maxCauses?: number;
}

interface Walk {
  maxDepth: number;
  maxEntries: number;
  maxCauses: number;
  /** Ancestors only, so a value shared by two siblings is not mistaken for a cycle. */
  path: Set<object>;
}

/**
 * A redacted copy of any value, safe to log or to put in failure details: every string is redacted, however deep,
 * values under secret-looking keys are dropped, and errors become plain `{ name, type, message, stack, cause, ... }`
 * objects (JSON, and so pino and Temporal's payload converter, would turn an Error into `{}`). Cycles and depth are
 * bounded.
 */
export function redactDeep(value: unknown, options: RedactDeepOptions = {}): unknown {
  return walk(value, 0, 0, {
    maxDepth: options.maxDepth ?? 8,
    maxEntries: options.maxEntries ?? 100,
    maxCauses: options.maxCauses ?? 5,
    path: new Set(),
  });
}

function walk(value: unknown, depth: number, causes: number, w: Walk): unknown {
  if (typeof value === 'string') return redact(value);
  if (value === null || typeof value !== 'object') return value; // numbers, booleans, bigints, undefined, functions, symbols
  // Binary data and dates carry no text to redact, and copying them would change their type.
  if (value instanceof Date || ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
  if (w.path.has(value)) return '[Circular]';
  if (depth >= w.maxDepth) return '[Truncated]';
  w.path.add(value);
  try {
    if (isErrorLike(value)) return describeError(value, depth, causes, w);
    if (Array.isArray(value))
      return entries(
        value.map((v, i) => [i, v] as const),
        depth,
        causes,
        w,
        true,
      );
    if (value instanceof Map)
      return entries(
        [...value.entries()].map(([k, v]) => [String(k), v] as const),
        depth,
        causes,
        w,
        false,
      );
    if (value instanceof Set)
      return entries(
        [...value].map((v, i) => [i, v] as const),
        depth,
        causes,
        w,
        true,
      );
    return entries(ownEntries(value), depth, causes, w, false);
  } finally {
    w.path.delete(value);
  }
}

function entries(
  list: ReadonlyArray<readonly [string | number, unknown]>,
  depth: number,
  causes: number,
  w: Walk,
  asArray: boolean,
): unknown {
  const kept = list.slice(0, w.maxEntries);
  const more = list.length - kept.length;
  if (asArray) {
    const out = kept.map(([, v]) => walk(v, depth + 1, causes, w));
    if (more > 0) out.push(`[${more} more]`);
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of kept) out[k] = field(String(k), v, depth, causes, w);
  if (more > 0) out['[more]'] = more;
  return out;
}

function field(key: string, value: unknown, depth: number, causes: number, w: Walk): unknown {
  if (SECRET_KEY.test(key) && value !== null && value !== undefined && typeof value !== 'boolean') return '[redacted]';
  return walk(value, depth + 1, causes, w);
}

function describeError(err: ErrorLike, depth: number, causes: number, w: Walk): Record<string, unknown> {
  const name = typeof err.name === 'string' && err.name ? err.name : 'Error';
  // ApplicationFailure and PermanentFault carry the type an operator searches for; other errors go by their name.
  const type = typeof err.type === 'string' && err.type ? err.type : name;
  const out: Record<string, unknown> = { name, type, message: redact(String(err.message ?? '')) };
  if (typeof err.stack === 'string') out.stack = redact(err.stack);
  for (const [k, v] of ownEntries(err)) {
    // `failure` is the raw proto of a failure that came off the wire: payload bytes, and a repeat of the rest.
    if (k in out || k === 'cause' || k === 'failure' || v === undefined) continue;
    out[k] = field(k, v, depth, causes, w);
  }
  if (Array.isArray(err.errors)) out.errors = walk(err.errors, depth + 1, causes, w); // AggregateError's are not enumerable
  if (err.cause !== undefined) {
    // A cause does not nest deeper in any useful sense, so it counts against its own bound, not maxDepth.
    out.cause = causes >= w.maxCauses ? '[cause chain truncated]' : walk(err.cause, depth, causes + 1, w);
  }
  return out;
}

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  stack?: unknown;
  type?: unknown;
  cause?: unknown;
  errors?: unknown;
}

/** Errors from another realm (the workflow sandbox) fail `instanceof Error`, so go by shape as well. */
function isErrorLike(value: object): value is ErrorLike {
  if (value instanceof Error) return true;
  const v = value as ErrorLike;
  return typeof v.message === 'string' && typeof v.stack === 'string';
}

/** Own enumerable properties; a getter that throws is recorded, not propagated: redaction must never fail a log call. */
function ownEntries(value: object): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  for (const k of Object.keys(value)) {
    try {
      out.push([k, (value as Record<string, unknown>)[k]]);
    } catch {
      out.push([k, '[unreadable]']);
    }
  }
  return out;
}
