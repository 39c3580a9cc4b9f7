/**
 * Keeps key material, tokens and passwords out of anything that is logged or recorded in history.
 * Pure and free of Node built-ins: workflow code imports it too.
 */

// PEM labels as OpenSSL, OpenSSH and RFC 4716 (four dashes and spaces) write them, in either case; an X.509 proxy
// file holds a CERTIFICATE block and an RSA PRIVATE KEY block.
const DASHES = '-{4,5} ?';
const PRIVATE_LABEL = '[A-Z0-9 ]*PRIVATE KEY[A-Z0-9 ]*?';
const CERT_LABEL = '[A-Z0-9 ]*CERTIFICATE[A-Z0-9 ]*?';

/** [pattern, replacement, a test without which the pattern cannot match: most texts skip most patterns]. */
type Rule = [RegExp, string | Replacer, RegExp?];
type Replacer = (match: string, ...groups: Array<string | undefined>) => string;

const HAS_PRIVATE = /private key/i;
const HAS_CERT = /certificate/i;

/** Whole PEM blocks, first: what is left of a block after them is an orphan END line. */
const BLOCKS: Rule[] = [
  // A BEGIN line with no END (a truncated log tail) redacts to the end of the text: what follows is the key.
  [
    new RegExp(`${DASHES}BEGIN ${PRIVATE_LABEL} ?-{4,5}[\\s\\S]*?(?:${DASHES}END ${PRIVATE_LABEL} ?-{4,5}|$)`, 'gi'),
    '[redacted private key]',
    HAS_PRIVATE,
  ],
  [
    new RegExp(`${DASHES}BEGIN ${CERT_LABEL} ?-{4,5}[\\s\\S]*?(?:${DASHES}END ${CERT_LABEL} ?-{4,5}|$)`, 'gi'),
    '[redacted certificate]',
    HAS_CERT,
  ],
];

/**
 * One part of a JWT: base64url, which a wrapped log line may break with a newline. Line breaks are bounded (a
 * header's few, a payload's or signature's 32: 2 KiB at 64 columns), so that a text of "eyJ" lines without a dot
 * is scanned in linear time.
 */
const JWT_CHARS = '[A-Za-z0-9_-]';
const JWT_PART = `${JWT_CHARS}+(?:\\r?\\n${JWT_CHARS}+){0,32}`;
/**
 * A line that goes on a signature: random-looking (upper and lower case, and a digit, - or _), never a word such as
 * "done".
 */
const WRAPPED_SIGNATURE = `(?=${JWT_CHARS}*[A-Z])(?=${JWT_CHARS}*[a-z])(?=${JWT_CHARS}*[0-9_-])${JWT_CHARS}{8,}`;
/**
 * A JWT (a base64url JSON object, "eyJ", then more parts after dots), also wrapped over lines and also a fragment of
 * one (a log tail that starts or ends inside it). After a letter or digit ("IDTOKENeyJ...") only the header.payload
 * shape counts, where "eyJ" alone could be part of a word (the header taken atomically, by a lookahead's capture).
 * The signature goes on over a line break only onto a line that is all random-looking base64url: a wrapped
 * signature, never the next log line's first word.
 */
const JWT = new RegExp(
  `(?:(?<![A-Za-z0-9])eyJ${JWT_CHARS}{8,}|eyJ(?=(${JWT_CHARS}{8,400}))\\1(?=\\r?\\n?\\.\\r?\\n?eyJ))` +
    `(?:(?:\\r?\\n${JWT_CHARS}+){0,4}\\r?\\n?\\.\\r?\\n?${JWT_PART}` +
    `(?:\\r?\\n?\\.\\r?\\n?${JWT_CHARS}*(?:\\r?\\n${WRAPPED_SIGNATURE}(?=\\r?\\n|$)){0,32})?)?`,
  'g',
);

/** Tokens first: a wrapped one's lines look like a wrapped key body to the rules after it. */
const TOKENS: Rule[] = [[JWT, '[redacted token]', /eyJ/]];

const SECRET_WORDS = [
  'password',
  'passwd',
  'passphrase',
  'token',
  'secret',
  'bearer',
  'credentials?',
  'api[_-]?key',
  'private[_-]?key',
  'access[_-]?key',
];
/** Names whose value is a secret: `password=`, `IDTOKEN:`, `SECRET_KEY=`, `"api_key": "..."`, `credential=`. */
const SECRET_NAME = `(?:${SECRET_WORDS.join('|')})(?:[_-]?key)?`;

/**
 * The profile's credential fields named after a label that looks like a secret's name (`stageCredential:
 * credentials.idToken file …`, a step's failure): a field's name, never a value to hide.
 */
const PROFILE_FIELD = 'credentials\\.(?:idToken|x509Proxy)\\b';

/** A base64 character (not the padding). */
const BASE64 = '[A-Za-z0-9+/]';

/** The HTTP authentication schemes an authorization header may name before its credentials. */
const AUTH_SCHEMES = 'basic|bearer|digest|negotiate|ntlm|token';

/** Tokens, passwords and credentials in URLs, headers and configuration lines. */
const SECRETS: Rule[] = [
  // An HTTP authorization header (curl -v, a proxy's log): whatever its scheme, the rest of its line.
  [
    new RegExp(
      `\\b((?:proxy-)?authorization["']?\\s*[=:][ \\t]*(?:(?:${AUTH_SCHEMES})[ \\t]+)?)` +
        '(?!\\[redacted)[^\\s\\r\\n][^\\r\\n]*',
      'gi',
    ),
    '$1[redacted]',
    /authorization/i,
  ],
  // Also catches prefixed names (IDTOKEN=, access_token=, AWS_SECRET_KEY=) and JSON-ish "token": "..."; a quoted
  // value is taken whole, spaces included. The bounded prefix keeps the scan linear on long hyphenated words.
  [
    new RegExp(
      `\\b([\\w-]{0,40}${SECRET_NAME}["']?\\s*[=:]\\s*)(?!\\[redacted|${PROFILE_FIELD})` +
        `(?:"[^"\\r\\n]*"?|'[^'\\r\\n]*'?|\\S+)`,
      'gi',
    ),
    '$1[redacted]',
  ],
  // "Bearer <opaque token>", "Basic <user:password in base64>"; the length floor spares prose such as "bearer token".
  [/\b(bearer\s+)(?!\[redacted)[A-Za-z0-9._~+/-]{20,}=*/gi, '$1[redacted]'],
  // Base64, not a word: an upper case letter, a digit, + or / after its first character ("Basic authentication").
  [
    new RegExp(
      '\\b((?:basic|Basic|BASIC)\\s+)(?!\\[redacted)' +
        `(?=.${BASE64}*[A-Z0-9+/=])${BASE64}{8,}={0,2}(?![A-Za-z0-9+/=])`,
      'g',
    ),
    '$1[redacted]',
  ],
  [/\b([a-z][a-z0-9+.-]{0,30}:\/\/[^\s:/@]+:)(?!\[redacted)[^\s@/]+@/gi, '$1[redacted]@', /:\/\//],
  // user:password@host without a scheme (http_proxy=alice:pw@proxy:3128); the user starts a word, so that
  // "slot1@glidein@node" and times (12:30:00) are left alone.
  [
    /(?<![^\s"'=(<,;])([A-Za-z0-9._~%+-]{1,64}:)(?!\[redacted)[^\s:@/"']{1,200}@(?=[A-Za-z0-9[])/g,
    '$1[redacted]@',
    /@/,
  ],
  // A proxychains ProxyList entry with credentials: `socks5 <host> <port> <user> <password>`.
  [
    /\b((?:socks4|socks5|http|raw)[ \t]+[A-Za-z0-9.:[\]-]+[ \t]+\d{1,5}[ \t]+[^\s]+[ \t]+)(?!\[redacted)[^\s]+/g,
    '$1[redacted]',
    /(?:socks[45]|http|raw)[ \t]/,
  ],
  // Key material with no PEM lines around it: a key body cut out of its block, or a key file in base64.
  // Fingerprints (SHA256:...) are left alone: they name a key and are what a refused host key is told by.
  [/(?<![A-Za-z0-9+/])(?<!(?:SHA1|SHA256|SHA384|SHA512):)[A-Za-z0-9+/]{40,}={0,2}(?![A-Za-z0-9+/=])/g, base64Run],
];

/** An SSH public key blob (ssh-rsa, ssh-ed25519, ecdsa-sha2-*, sk-*): known_hosts and authorized_keys say them. */
const SSH_PUBLIC_KEY = /^AAAA(?:B3NzaC1|C3NzaC1|E2VjZHNh|GnNrL|InNr)/;

/**
 * A run of base64 that is key material, not site text: long, with upper and lower case letters (hex hashes and
 * instance names have not both), not hex, and few slashes (a path of words has many).
 */
function base64Run(run: string): string {
  if (SSH_PUBLIC_KEY.test(run)) return run;
  const slashes = run.split('/').length - 1;
  const looksEncoded =
    /[A-Z]/.test(run) && /[a-z]/.test(run) && !/^[0-9a-f]+$/i.test(run) && slashes <= run.length / 16 + 1;
  return looksEncoded ? '[redacted key material]' : run;
}

/**
 * The last line of a wrapped base64 body (PEM and OpenSSH wrap at 64 characters, MIME at 76) is shorter than the
 * base64 rule's floor: it goes with the full-width line above it.
 */
const WRAPPED_TAILS: Rule[] = [
  [
    /^([ \t]*([A-Za-z0-9+/]{64})\r?\n[ \t]*)[A-Za-z0-9+/]{1,63}={0,2}(?=\r?$)/gm,
    (match, head, full) => (base64Run(full!) === full ? match : `${head}[redacted key material]`),
  ],
  [
    /^([ \t]*([A-Za-z0-9+/]{76})\r?\n[ \t]*)[A-Za-z0-9+/]{1,75}={0,2}(?=\r?$)/gm,
    (match, head, full) => (base64Run(full!) === full ? match : `${head}[redacted key material]`),
  ],
];

// END lines left once whole blocks are gone: a log tail that starts inside a block.
const ORPHAN_ENDS: Array<[RegExp, string, RegExp]> = [
  [new RegExp(`${DASHES}END ${PRIVATE_LABEL} ?-{4,5}`, 'gi'), '[redacted private key]', HAS_PRIVATE],
  [new RegExp(`${DASHES}END ${CERT_LABEL} ?-{4,5}`, 'gi'), '[redacted certificate]', HAS_CERT],
];
const BASE64_RUN_AT_END = /[A-Za-z0-9+/=]{16,}\r?$/;

/** `text` with key material, certificates, tokens and passwords replaced by `[redacted ...]`. */
export function redact(text: string): string {
  return redactText(text, false);
}

/**
 * As redact, but every line of `text` is still there, in its place: what replaces a match spanning lines is followed
 * by as many line breaks as it took. A reader can then cut a window of lines out of a text redacted as a whole.
 */
export function redactKeepingLines(text: string): string {
  return redactText(text, true);
}

function redactText(text: string, keepLines: boolean): string {
  let out = applyRules(text, BLOCKS, keepLines);
  for (const [end, replacement, needle] of ORPHAN_ENDS) {
    if (needle.test(out)) out = redactOrphanEnds(out, end, replacement, keepLines);
  }
  out = applyRules(out, TOKENS, keepLines);
  out = applyRules(out, WRAPPED_TAILS, keepLines);
  return applyRules(out, SECRETS, keepLines);
}

function applyRules(text: string, rules: Rule[], keepLines: boolean): string {
  let out = text;
  for (const [pattern, replacement, needle] of rules) {
    if (needle !== undefined && !needle.test(out)) continue;
    out = out.replace(pattern, (match: string, ...args: unknown[]) => {
      const groups = args.slice(0, -2) as Array<string | undefined>; // then the offset and the whole text
      const replaced =
        typeof replacement === 'string'
          ? replacement.replace(/\$(\d)/g, (_, n: string) => groups[Number(n) - 1] ?? '')
          : replacement(match, ...groups);
      return keepLines ? replaced + lostLines(match, replaced) : replaced;
    });
  }
  return out;
}

/** The line breaks `from` had and `to` has not. */
function lostLines(from: string, to: string): string {
  return '\n'.repeat(Math.max(0, lineBreaks(from) - lineBreaks(to)));
}

function lineBreaks(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * Replaces each END line with the base64 lines just before it (the body of the block), walking back line by line:
 * linear, where a regex with a repeated line group goes quadratic on a long base64 text.
 */
function redactOrphanEnds(text: string, end: RegExp, replacement: string, keepLines: boolean): string {
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
    const cut = text.slice(start, m.index + m[0].length);
    out += text.slice(copied, start) + replacement + (keepLines ? lostLines(cut, replacement) : '');
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

/**
 * An activity's result (or heartbeat) redacted: every string however deep, values under secret-looking keys dropped,
 * and nothing else changed: no entry or depth limit a real result could reach, so the workflow reads what it expects.
 */
export function redactResult<T>(value: T): T {
  return walk(value, 0, 0, { maxDepth: 64, maxEntries: Number.MAX_SAFE_INTEGER, maxCauses: 5, path: new Set() }) as T;
}

function walk(value: unknown, depth: number, causes: number, w: Walk): unknown {
  if (typeof value === 'string') return redact(value);
  // numbers, booleans, bigints, undefined, functions, symbols
  if (value === null || typeof value !== 'object') return value;
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
  // AggregateError's are not enumerable
  if (Array.isArray(err.errors)) out.errors = walk(err.errors, depth + 1, causes, w);
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

/**
 * Own enumerable properties; a getter that throws is recorded, not propagated: redaction must never fail a log call.
 */
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
