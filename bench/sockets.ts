/**
 * Which TCP connections on the loopback site are whose: sockets from /proc/net/tcp, their owners from
 * /proc/<pid>/fd, and the sshd logs (LogLevel VERBOSE) read into connection and session events.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { allProcesses } from '../sandbox/local-site';

export interface TcpSocket {
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  state: string;
  inode: number;
}

function ipv4(hex: string): string {
  const n = parseInt(hex, 16);
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255].join('.');
}

export function tcpSockets(): TcpSocket[] {
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 9)
    .map((f) => {
      const [lip, lport] = f[1].split(':');
      const [rip, rport] = f[2].split(':');
      return {
        localIp: ipv4(lip),
        localPort: parseInt(lport, 16),
        remoteIp: ipv4(rip),
        remotePort: parseInt(rport, 16),
        state: f[3],
        inode: Number(f[9]),
      };
    });
}

export function socketInodes(pid: number): Set<number> {
  const out = new Set<number>();
  let fds: string[] = [];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Local ports of the established connections that the given processes hold to ip:port. */
export function clientPorts(pids: readonly number[], ip: string, port: number, sockets = tcpSockets()): number[] {
  const inodes = new Set<number>();
  for (const pid of pids) for (const i of socketInodes(pid)) inodes.add(i);
  return sockets
    .filter((s) => inodes.has(s.inode) && s.remoteIp === ip && s.remotePort === port && s.state === '01')
    .map((s) => s.localPort);
}

/**
 * For connections to a login sshd at loginIp:loginPort from the given client ports: the local ports of the
 * connections that the serving sshd processes opened onwards to jumpIp:jumpPort (ssh -J / forwardOut).
 */
export function jumpedPorts(
  clientPortsToLogin: readonly number[],
  loginIp: string,
  loginPort: number,
  jumpIp: string,
  jumpPort: number,
): number[] {
  const sockets = tcpSockets();
  const serverInodes = new Set(
    sockets
      .filter((s) => s.localIp === loginIp && s.localPort === loginPort && clientPortsToLogin.includes(s.remotePort))
      .map((s) => s.inode),
  );
  if (serverInodes.size === 0) return [];
  const out: number[] = [];
  for (const p of allProcesses().filter((x) => x.cmdline.startsWith('sshd: '))) {
    const inodes = socketInodes(p.pid);
    if (![...serverInodes].some((i) => inodes.has(i))) continue;
    out.push(
      ...sockets
        .filter((s) => inodes.has(s.inode) && s.remoteIp === jumpIp && s.remotePort === jumpPort)
        .map((s) => s.localPort),
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// sshd logs

export type SshdEvent =
  | { kind: 'connection'; port: number }
  | { kind: 'auth'; port: number; key: string }
  | { kind: 'session-start'; port: number; id: number }
  | { kind: 'session-close'; port: number; id: number }
  | { kind: 'no-more-sessions' }
  | { kind: 'disconnect'; port: number };

export function parseSshdLog(text: string): SshdEvent[] {
  const out: SshdEvent[] = [];
  for (const line of text.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^Connection from \S+ port (\d+) on /.exec(line))) out.push({ kind: 'connection', port: Number(m[1]) });
    else if ((m = /^Accepted publickey for \S+ from \S+ port (\d+) ssh2: \S+ (\S+)/.exec(line)))
      out.push({ kind: 'auth', port: Number(m[1]), key: m[2] });
    else if ((m = /^Starting session: \S+ for \S+ from \S+ port (\d+) id (\d+)/.exec(line)))
      out.push({ kind: 'session-start', port: Number(m[1]), id: Number(m[2]) });
    else if ((m = /^Close session: user \S+ from \S+ port (\d+) id (\d+)/.exec(line)))
      out.push({ kind: 'session-close', port: Number(m[1]), id: Number(m[2]) });
    else if (/^no more sessions/.test(line)) out.push({ kind: 'no-more-sessions' });
    else if ((m = /^Disconnected from user \S+ \S+ port (\d+)/.exec(line)))
      out.push({ kind: 'disconnect', port: Number(m[1]) });
  }
  return out;
}

export interface ConnectionSummary {
  port: number;
  key?: string;
  sessions: number;
  /** Most sessions open at once, in the order sshd logged their start and close. */
  maxConcurrentSessions: number;
}

export function summarizeConnections(events: readonly SshdEvent[]): Map<number, ConnectionSummary> {
  const out = new Map<number, ConnectionSummary>();
  const open = new Map<number, number>();
  const get = (port: number) => {
    let c = out.get(port);
    if (!c) out.set(port, (c = { port, sessions: 0, maxConcurrentSessions: 0 }));
    return c;
  };
  for (const e of events) {
    if (e.kind === 'connection') get(e.port);
    else if (e.kind === 'auth') get(e.port).key = e.key;
    else if (e.kind === 'session-start') {
      const c = get(e.port);
      c.sessions++;
      const now = (open.get(e.port) ?? 0) + 1;
      open.set(e.port, now);
      c.maxConcurrentSessions = Math.max(c.maxConcurrentSessions, now);
    } else if (e.kind === 'session-close') open.set(e.port, Math.max(0, (open.get(e.port) ?? 0) - 1));
  }
  return out;
}

/** The SHA256 fingerprint of a public key file, as sshd logs it. */
export function fingerprint(pubFile: string): string {
  const [, blob] = fs.readFileSync(pubFile, 'utf8').trim().split(/\s+/);
  const digest = createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '');
  return `SHA256:${digest}`;
}
