/**
 * The operator's read-only tools on a site (`glidein site check`, `glidein logs`): probes that launch nothing and a
 * log reader that changes nothing.
 */

/**
 * CONNECT_PROBE proxy=$1 port=$2 target=$3: asks the HTTP proxy (KIT's) for a tunnel to host:port, as proxychains
 * does, and prints `status <line>` with the proxy's answer (200: the proxy reached the target); bash only.
 */
export const CONNECT_PROBE = `exec 3<>"/dev/tcp/$1/$2" || exit 1
printf 'CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n' "$3" "$3" >&3
IFS= read -r -t 20 line <&3 || { echo "no answer from the proxy $1:$2" >&2; exit 1; }
printf 'status %s\\n' "\${line%$'\\r'}"`;

export function connectProbeArgv(proxyHost: string, proxyPort: number, target: string): string[] {
  return ['bash', '-c', CONNECT_PROBE, 'probe', proxyHost, String(proxyPort), target];
}

/**
 * READ_LOG file=$1 offset=$2 max=$3 [retired=$4 glob name=$5] margin=$6 [tail=$7]: prints
 * `log <path> <size> <offset> <from>` and then, in base64 (so that byte offsets survive decoding), the bytes of the
 * file from byte `from` = offset - margin to offset + max + margin: the window asked for with context on either side,
 * so that the worker redacts whole lines, and what spans lines, before it cuts the window out. With `tail` the
 * offset is size - max (the last max bytes). A glidein torn down has its directory in <workDir>/.done/<id>.<epoch>/:
 * when the file is not where it lived, the newest retired copy ($4/$5.*\/<name of $1>) is read. Prints `none` when
 * neither is.
 */
export const READ_LOG = `f=$1
if [ ! -f "$f" ] && [ -n "$4" ]; then
  for d in "$4"/"$5".*; do [ -f "$d/\${f##*/}" ] && f="$d/\${f##*/}"; done
fi
[ -f "$f" ] || { echo none; exit 0; }
size=$(wc -c < "$f") || exit 1
size=$((size + 0))
o=$2
if [ "$7" = tail ]; then o=$((size - $3)); [ "$o" -lt 0 ] && o=0; fi
from=$((o - $6)); [ "$from" -lt 0 ] && from=0
echo "log $f $size $o $from"
tail -c +"$((from + 1))" "$f" | head -c "$((o - from + $3 + $6))" | base64`;

export interface LogRead {
  /** The window asked for: `maxBytes` from `offset` (with `tail`, the last `maxBytes` of the file). */
  offset: number;
  maxBytes: number;
  tail: boolean;
  /** Bytes of context read on either side of the window. */
  margin: number;
}

export function readLogArgv(file: string, read: LogRead, retired?: { dir: string; glideinId: string }): string[] {
  return [
    'sh',
    '-c',
    READ_LOG,
    'read-log',
    file,
    String(read.offset),
    String(read.maxBytes),
    retired?.dir ?? '',
    retired?.glideinId ?? '',
    String(read.margin),
    read.tail ? 'tail' : '',
  ];
}

/** READ_LOG's answer: where the file was, its size, the window's offset, and the bytes read from `from`. */
export interface LogBytes {
  path: string;
  size: number;
  offset: number;
  from: number;
  bytes: Buffer;
}

/** READ_LOG's answer; undefined when there is no such log. */
export function parseReadLog(stdout: string): LogBytes | undefined {
  if (stdout.startsWith('none')) return undefined;
  const m = /^log (\S+) (\d+) (\d+) (\d+)\n/.exec(stdout);
  if (!m) throw new Error(`READ_LOG printed no header: ${JSON.stringify(stdout.slice(0, 80))}`);
  const body = stdout.slice(m[0].length);
  if (!/^[A-Za-z0-9+/=\s]*$/.test(body))
    throw new Error('READ_LOG printed something other than base64 after its header');
  return {
    path: m[1],
    size: Number(m[2]),
    offset: Number(m[3]),
    from: Number(m[4]),
    bytes: Buffer.from(body, 'base64'),
  };
}
