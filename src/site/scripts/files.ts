/** Small file and connection scripts that have no protocol of their own beyond their exit status. */
import { SAFE_PATH, UNSAFE_PATH_EXIT } from './prelude';

/**
 * WRITE_FILE dir=$1 file=$2: write stdin to the file (mode 600) inside the directory, atomically, through a
 * temporary file of an unpredictable name; non-zero if not, 77 when the directory is not safe to write in.
 */
export const WRITE_FILE = `${SAFE_PATH}umask 077; safe_path "$1" || exit ${UNSAFE_PATH_EXIT}
mkdir -p "$1" && t=$(mktemp "$2.XXXXXXXX") && cat > "$t" && mv -f "$t" "$2"`;

export function writeFileArgv(dir: string, file: string): string[] {
  return ['sh', '-c', WRITE_FILE, 'sh', dir, file];
}

/**
 * WRITE_WITH_SECRET dir=$1 file=$2 secret=$3 placeholder=$4: as WRITE_FILE, with the placeholder on stdin
 * replaced by the content of the secret file (one line of hex digits, else exit 65): a secret made on the site goes
 * into a file there without ever leaving it. awk reads the secret file itself, so the secret is in no process's
 * argv (/proc/<pid>/cmdline is readable by every user of the login node), as it was in `sed "s/…/$secret/"`.
 */
export const WRITE_WITH_SECRET = `umask 077; mkdir -p "$1" || exit 1
awk -v f="$3" -v ph="$4" 'BEGIN {
  n = getline s < f; while ((getline more < f) > 0) if (more != "") n = -1
  if (n <= 0 || s !~ /^[0-9a-f]+$/) { print f " does not hold a hex secret" > "/dev/stderr"; exit 65 }
} { gsub(ph, s); print }' > "$2.tmp" || { e=$?; rm -f "$2.tmp"; exit $e; }
mv "$2.tmp" "$2"`;

export function writeWithSecretArgv(dir: string, file: string, secretFile: string, placeholder: string): string[] {
  return ['sh', '-c', WRITE_WITH_SECRET, 'sh', dir, file, secretFile, placeholder];
}

/**
 * SET_CONFIG_LINE file=$1 key=$2 line=$3: makes `line` the file's one line that sets `key` (KEY=...), keeping every
 * other line; atomically, and only when it is not so already. Prints `unchanged` or `written`. The file and its
 * directory must be this user's and writable by nobody else (exit 77 naming the path: a co-tenant could otherwise
 * swap cvmfs's proxy); the new file is private, made under an unpredictable name beside it.
 */
export const SET_CONFIG_LINE = `${SAFE_PATH}f=$1; d=\${f%/*}; umask 077
safe_path "$d" || exit ${UNSAFE_PATH_EXIT}; mkdir -p "$d" || exit 1
for p in "$d" "$f"; do safe_path "$p" || exit ${UNSAFE_PATH_EXIT}; done
if [ -f "$f" ] && [ "$(grep -c "^$2=" "$f")" = 1 ] && grep -qxF -- "$3" "$f"; then echo unchanged; exit 0; fi
t=$(mktemp "$d/.config.XXXXXXXX") || exit 1
if { if [ -f "$f" ]; then grep -v "^$2=" "$f"; fi; printf '%s\\n' "$3"; } > "$t" && mv -f "$t" "$f"; then echo written
else rm -f "$t"; exit 1; fi`;

export function setConfigLineArgv(file: string, key: string, line: string): string[] {
  return ['sh', '-c', SET_CONFIG_LINE, 'sh', file, key, line];
}

/**
 * TCP_PROBE host=$1 port=$2: connect and close, with bash's /dev/tcp (bash only). Run under proxychains, whose
 * chain report on stderr says which hop failed (parseChainReport); exits 0 when the connection was made.
 */
export const TCP_PROBE = `exec 3<>"/dev/tcp/$1/$2"`;

/**
 * HTTP_PROBE host=$1 port=$2 url=$3 hosthdr=$4: as TCP_PROBE, then `GET <url> HTTP/1.0` (an absolute URL: the form
 * an HTTP proxy such as a Frontier squid is asked in) and the answer's status line printed as `status <line>`;
 * exits 0 when one came back within 20 s.
 */
export const HTTP_PROBE = `exec 3<>"/dev/tcp/$1/$2" || exit 1
printf 'GET %s HTTP/1.0\\r\\nHost: %s\\r\\nUser-Agent: glidein-verify-outbound\\r\\n\\r\\n' "$3" "$4" >&3
IFS= read -r -t 20 line <&3 || { echo "no HTTP answer from $1:$2" >&2; exit 1; }
printf 'status %s\\n' "\${line%$'\\r'}"`;

export function httpProbeArgv(host: string, port: number, url: string): string[] {
  const hostHeader = /^http:\/\/([^/]+)/.exec(url)?.[1] ?? host;
  return ['bash', '-c', HTTP_PROBE, 'probe', host, String(port), url, hostHeader];
}

/** HTTP_PROBE's answer: the status code and the whole status line; undefined when none came. */
export function parseHttpStatus(stdout: string): { code: number; line: string } | undefined {
  const m = /^status (HTTP\/\d(?:\.\d)? (\d{3})\b.*)$/m.exec(stdout);
  return m ? { code: Number(m[2]), line: m[1].trim() } : undefined;
}

export function tcpProbeArgv(host: string, port: number): string[] {
  return ['bash', '-c', TCP_PROBE, 'probe', host, String(port)];
}
