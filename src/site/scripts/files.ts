/** Small file and connection scripts that have no protocol of their own beyond their exit status. */

/** WRITE_FILE dir=$1 file=$2: write stdin to the file (mode 600) inside the directory, atomically; non-zero if not. */
export const WRITE_FILE = `umask 077; mkdir -p "$1" && cat > "$2.tmp" && mv "$2.tmp" "$2"`;

export function writeFileArgv(dir: string, file: string): string[] {
  return ['sh', '-c', WRITE_FILE, 'sh', dir, file];
}

/**
 * TCP_PROBE host=$1 port=$2: connect and close, with bash's /dev/tcp (bash only). Run under proxychains, whose
 * chain report on stderr says which hop failed (parseChainReport); exits 0 when the connection was made.
 */
export const TCP_PROBE = `exec 3<>"/dev/tcp/$1/$2"`;

export function tcpProbeArgv(host: string, port: number): string[] {
  return ['bash', '-c', TCP_PROBE, 'probe', host, String(port)];
}
