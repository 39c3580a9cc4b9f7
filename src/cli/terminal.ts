/**
 * Text for an operator's terminal. What the `glidein` command prints comes in good part from the site (log lines,
 * step details, errors, the collector's answers) and from workflow state anyone with access to the namespace can
 * write: an escape sequence in it would be obeyed by the terminal (retitle it, rewrite what is on screen, hide text,
 * on some terminals answer back keystrokes). So every character a terminal acts on is shown as a JSON-style escape
 * instead: C0 controls (but newline and tab in multi-line text), DEL, the C1 controls (0x9b is a one-byte CSI to
 * some terminals) and the bidirectional overrides that reorder what is shown. JSON-style, so that JSON text passed
 * through it stays valid JSON of the same value.
 */

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const ACTED_ON = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex -- as above, newline and tab included
const ACTED_ON_IN_A_LINE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const SHORT: Record<string, string> = { '\n': '\\n', '\t': '\\t', '\r': '\\r' };
const escape = (c: string) => SHORT[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * Multi-line text with nothing a terminal acts on but line ends and tabs. CRLF line ends become plain ones; a
 * lone CR (which would let a line overwrite what came before it on screen) is escaped like the rest.
 */
export function forTerminal(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(ACTED_ON, escape);
}

/** One line of a view (a table cell, a step's detail): as forTerminal, and its line ends and tabs escaped too. */
export function oneLine(text: string): string {
  return text.replace(ACTED_ON_IN_A_LINE, escape);
}
