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
 * READ_LOG file=$1 offset=$2 max=$3 [retired=$4 glob name=$5]: prints `log <path> <size>` and then at most max bytes
 * of the file from byte offset. A glidein torn down has its directory in <workDir>/.done/<id>.<epoch>/: when the
 * file is not where it lived, the newest retired copy ($4/$5.*\/<name of $1>) is read. Prints `none` when neither is.
 */
export const READ_LOG = `f=$1
if [ ! -f "$f" ] && [ -n "$4" ]; then
  for d in "$4"/"$5".*; do [ -f "$d/\${f##*/}" ] && f="$d/\${f##*/}"; done
fi
[ -f "$f" ] || { echo none; exit 0; }
size=$(wc -c < "$f") || exit 1
echo "log $f $size"
tail -c +"$(($2 + 1))" "$f" | head -c "$3"`;

export function readLogArgv(
  file: string,
  offset: number,
  maxBytes: number,
  retired?: { dir: string; glideinId: string },
): string[] {
  return [
    'sh',
    '-c',
    READ_LOG,
    'read-log',
    file,
    String(offset),
    String(maxBytes),
    retired?.dir ?? '',
    retired?.glideinId ?? '',
  ];
}

/** READ_LOG's answer: where the file was, its size, and the bytes read; undefined when there is no such log. */
export function parseReadLog(stdout: string): { path: string; size: number; text: string } | undefined {
  if (stdout.startsWith('none')) return undefined;
  const m = /^log (\S+) (\d+)\n/.exec(stdout);
  if (!m) throw new Error(`READ_LOG printed no header: ${JSON.stringify(stdout.slice(0, 80))}`);
  return { path: m[1], size: Number(m[2]), text: stdout.slice(m[0].length) };
}
