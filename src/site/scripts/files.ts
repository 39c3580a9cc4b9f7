/** Small file and connection scripts that have no protocol of their own beyond their exit status. */

/** WRITE_FILE dir=$1 file=$2: write stdin to the file (mode 600) inside the directory, atomically; non-zero if not. */
export const WRITE_FILE = `umask 077; mkdir -p "$1" && cat > "$2.tmp" && mv "$2.tmp" "$2"`;

export function writeFileArgv(dir: string, file: string): string[] {
  return ['sh', '-c', WRITE_FILE, 'sh', dir, file];
}

/**
 * WRITE_WITH_SECRET dir=$1 file=$2 secret=$3 placeholder=$4: as WRITE_FILE, with the placeholder on stdin
 * replaced by the content of the secret file (hex digits only, else exit 65): a secret made on the site goes
 * into a file there without ever leaving it.
 */
export const WRITE_WITH_SECRET = `umask 077; mkdir -p "$1" || exit 1
secret=$(cat "$3") || exit 1
case $secret in ''|*[!0-9a-f]*) echo "$3 does not hold a hex secret" >&2; exit 65;; esac
sed "s/$4/$secret/g" > "$2.tmp" && mv "$2.tmp" "$2"`;

export function writeWithSecretArgv(dir: string, file: string, secretFile: string, placeholder: string): string[] {
  return ['sh', '-c', WRITE_WITH_SECRET, 'sh', dir, file, secretFile, placeholder];
}

/**
 * TCP_PROBE host=$1 port=$2: connect and close, with bash's /dev/tcp (bash only). Run under proxychains, whose
 * chain report on stderr says which hop failed (parseChainReport); exits 0 when the connection was made.
 */
export const TCP_PROBE = `exec 3<>"/dev/tcp/$1/$2"`;

export function tcpProbeArgv(host: string, port: number): string[] {
  return ['bash', '-c', TCP_PROBE, 'probe', host, String(port)];
}
