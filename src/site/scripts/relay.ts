/**
 * The egress relay on a login node (JSC): compute nodes reach only the login node, so a glidein's proxychains-ng
 * takes this relay as its first hop (`socks5 <login addr> <port> glidein <secret>`), then the KIT proxy
 * (`http <ip> 80`). The relay runs as the user, detached, listening on the login node's cluster address, where
 * every other user of the cluster reaches it too: so it speaks SOCKS5 with username/password authentication only
 * (the password is a secret kept in a 0600 file, the username is free) and connects only to the allowed next hops
 * (`host:port`), so that it gives no one else an egress path and us no path but the one we need.
 * A Python 3 program (standard library, 3.6 as on Rocky 8 up to 3.12): a login node has python3 and no node. The
 * tunnel runs it from a file (`python3 relay.py <args…>`, relayArgv's args), not as `python3 -c RELAY_PY`: in argv
 * its lines would be the process's cmdline, which INSPECT_PROCESSES prints line by line, losing the marker.
 */

/** argv[1] of the relay (sys.argv[1]), by which its /proc cmdline is recognised. */
export const RELAY_MARKER = 'jsc-glidein-relay';

/** The relay prints this, then its address (`relay listening on 10.77.0.2:1090`), on stdout once it listens. */
export const RELAY_READY = 'relay listening on';

/**
 * args: marker, listen host, port (0: any free one, as printed), secret file, then `--die-at <epoch seconds>`
 * and `--handshake-seconds <n>` if given, then the allowed `host:port`…; exits 2 on bad arguments, a die time
 * already past or a bad secret file, 1 when it cannot listen, 0 on SIGTERM/SIGINT or at its die time (by the wall
 * clock, looked at every 30 s at most), open connections and all.
 * Anyone on the cluster can connect, so connections have two budgets: MAX_CLIENTS relayed ones, which only an
 * authenticated client (the glidein) takes, and handshakes (MAX_PENDING in all, MAX_PENDING_PER_SOURCE per source
 * address), each cut HANDSHAKE_SECONDS (3) after accept. A connection over a handshake cap closes the oldest
 * handshake of its source, or of the source holding the most, rather than being refused: a flood costs its own
 * handshakes, never the glidein's relayed connections, and a new handshake of the glidein (milliseconds) is
 * heard even when it shares an address with the flood. Refusals are logged at most 60 a minute, then counted.
 * The secret file is created if missing (64 hex digits, 0600, linked into place so that two relays starting at
 * once end up with the same secret) and kept otherwise, so a restarted relay takes the password that the
 * proxychains.conf already holds. A CONNECT is allowed when an allowed entry has its port and a host that is, or
 * resolves to, its address; a refusal is one line on stderr (peer and why, never the password).
 */
/* eslint-disable max-len -- the program's text is exact (written to the site as it is); one line is longer */
export const RELAY_PY = String.raw`import asyncio
import binascii
import errno
import hmac
import ipaddress
import os
import re
import signal
import socket
import struct
import sys
import time

# Relayed connections: only a client that knows the secret (the glidein) ever takes one.
MAX_CLIENTS = 1024
# Connections still in the handshake, anyone's (every user of the cluster reaches the relay): a budget of their own,
# so they never take the glidein's. Over a cap, the oldest handshake of the source holding the most is closed to
# make room: a new connection is always heard, and the glidein's handshake takes milliseconds, a flood's seconds.
MAX_PENDING = 512
MAX_PENDING_PER_SOURCE = 128
HANDSHAKE_SECONDS = 3
CONNECT_SECONDS = 10
RESOLVE_SECONDS = 10
BUFFER = 65536
# A connection's refusal is logged at most this often a minute, then counted: a flood must not fill the disk.
NOTES_PER_MINUTE = 60
# How often the relay looks at the clock (its die time; the count of notes left out).
TICK_SECONDS = 30
SECRET = re.compile(r'[0-9a-f]{32,128}\Z')
PORT = re.compile(r'[0-9]{1,5}\Z')
SECONDS = re.compile(r'[0-9]{1,11}\Z')


def log(message):
    sys.stderr.write('%s relay: %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%S'), message))
    sys.stderr.flush()


def fail(message, code):
    log(message)
    sys.exit(code)


def describe(error):
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error)
    return '%s: %s' % (type(error).__name__, text) if text else type(error).__name__


def show(address):
    if not isinstance(address, tuple):
        return str(address)
    return ('[%s]:%d' if ':' in address[0] else '%s:%d') % (address[0], address[1])


def source_of(address):
    # The peer's address, an IPv4-mapped one as IPv4: what the handshake caps count by.
    host = address[0] if isinstance(address, tuple) else str(address)
    return host[7:] if host.startswith('::ffff:') and '.' in host else host


def host_port(text):
    host, sep, port = text.rpartition(':')
    if host.startswith('[') and host.endswith(']'):
        host = host[1:-1]
    if not sep or not host or not PORT.match(port) or not 0 < int(port) < 65536:
        raise ValueError(text)
    return host, int(port)


def same_host(a, b):
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower().rstrip('.') == b.lower().rstrip('.')


# --- the secret ---------------------------------------------------------------------------------------------

def read_secret(path):
    # Never shown: text that is not hex only fails the pattern.
    with open(path, 'rb') as f:
        return f.read(4096).decode('ascii', 'replace').strip()


def create_secret(path):
    # Written whole to a private temporary file, then linked into place: a link never replaces a file, so of two
    # relays starting at once one links and the other reads what the first wrote.
    secret = binascii.hexlify(os.urandom(32)).decode('ascii')
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), '.%s.%d.%s' % (
        os.path.basename(path), os.getpid(), binascii.hexlify(os.urandom(4)).decode('ascii')))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, 'w') as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(secret + '\n')
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return read_secret(path)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    return secret


def load_secret(path):
    try:
        text = read_secret(path)
    except FileNotFoundError:
        try:
            text = create_secret(path)
        except OSError as e:
            fail('cannot create the secret file %s: %s' % (path, describe(e)), 2)
    except OSError as e:
        fail('cannot read the secret file %s: %s' % (path, describe(e)), 2)
    if not SECRET.match(text):
        fail('the secret file %s does not hold 32 to 128 hex digits' % path, 2)
    return text.encode('ascii')


# --- SOCKS5 (RFC 1928) with username/password (RFC 1929) ----------------------------------------------------

def reply(code, bound=None):
    host, port = (bound[0], bound[1]) if bound else ('0.0.0.0', 0)
    if ':' in host:
        address = b'\x04' + socket.inet_pton(socket.AF_INET6, host.split('%')[0])
    else:
        address = b'\x01' + socket.inet_pton(socket.AF_INET, host)
    return bytes([5, code, 0]) + address + struct.pack('>H', port)


def keepalive(writer):
    # A relayed connection may idle for hours (HTCondor's): keepalive finds a peer that went away.
    try:
        writer.get_extra_info('socket').setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except (AttributeError, OSError):
        pass


async def pipe(source, sink, source_writer):
    # Copies until EOF, then half-closes the sink (the other direction goes on); on an error, ends both.
    try:
        while True:
            data = await source.read(BUFFER)
            if not data:
                break
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except asyncio.CancelledError:
        raise
    except Exception:
        sink.transport.abort()
        source_writer.transport.abort()


class Notes:
    # A connection's events on stderr, at most NOTES_PER_MINUTE lines a minute; the rest are counted, and the count
    # said once the minute is over.
    def __init__(self):
        self.since = time.monotonic()
        self.lines = 0
        self.left_out = 0

    def __call__(self, message):
        self.roll()
        if self.lines < NOTES_PER_MINUTE:
            self.lines += 1
            log(message)
        else:
            self.left_out += 1

    def roll(self):
        now = time.monotonic()
        if now - self.since < 60:
            return
        if self.left_out:
            log('%d more connection messages in the minute before left out' % self.left_out)
        self.since, self.lines, self.left_out = now, 0, 0


class Handshake:
    # A connection from accept until it authenticates (it then counts as a client) or ends.
    __slots__ = ('seq', 'source', 'peer', 'writer', 'done', 'evicted', 'relaying')

    def __init__(self, seq, source, peer, writer):
        self.seq = seq
        self.source = source
        self.peer = peer
        self.writer = writer
        self.done = False
        self.evicted = False
        self.relaying = False


class Relay:
    def __init__(self, loop, secret, allow, handshake_seconds):
        self.loop = loop
        self.secret = secret
        self.allow = allow
        self.handshake_seconds = handshake_seconds
        self.clients = 0
        # Handshakes per source, oldest first.
        self.pending = {}
        self.pending_count = 0
        self.seq = 0
        self.note = Notes()

    def admit(self, source, peer, writer):
        queue = self.pending.get(source)
        if queue and len(queue) >= MAX_PENDING_PER_SOURCE:
            self.make_room(queue[0], '%d handshakes from %s' % (len(queue), source))
        elif self.pending_count >= MAX_PENDING:
            fullest = max(self.pending.values(), key=lambda q: (len(q), -q[0].seq))
            self.make_room(fullest[0], '%d handshakes in all' % self.pending_count)
        self.seq += 1
        handshake = Handshake(self.seq, source, peer, writer)
        self.pending.setdefault(source, []).append(handshake)
        self.pending_count += 1
        return handshake

    def leave(self, handshake):
        if handshake.done:
            return
        handshake.done = True
        queue = self.pending[handshake.source]
        queue.remove(handshake)
        if not queue:
            del self.pending[handshake.source]
        self.pending_count -= 1

    def make_room(self, handshake, why):
        self.leave(handshake)
        handshake.evicted = True
        self.note('%s: closed in the handshake to make room (%s)' % (handshake.peer, why))
        handshake.writer.transport.abort()

    async def client(self, reader, writer):
        address = writer.get_extra_info('peername')
        peer = show(address)
        handshake = self.admit(source_of(address), peer, writer)
        upstream = None
        try:
            target = await asyncio.wait_for(self.negotiate(reader, writer, handshake), self.handshake_seconds)
            if target is not None:
                upstream = await self.connect(writer, peer, target[0], target[1])
            if upstream is not None:
                keepalive(writer)
                keepalive(upstream[1])
                await asyncio.gather(pipe(reader, upstream[1], writer), pipe(upstream[0], writer, upstream[1]))
        except asyncio.CancelledError:
            raise
        except asyncio.TimeoutError:
            self.note('%s: refused, no complete SOCKS request within %d s' % (peer, self.handshake_seconds))
        except asyncio.IncompleteReadError:
            if not handshake.evicted:
                self.note('%s: refused, closed during the handshake' % peer)
        except Exception as e:
            # One connection's failure never ends the relay.
            if not handshake.evicted:
                self.note('%s: %s' % (peer, describe(e)))
        finally:
            self.leave(handshake)
            if handshake.relaying:
                self.clients -= 1
            writer.close()
            if upstream is not None:
                upstream[1].close()

    async def negotiate(self, reader, writer, handshake):
        peer = handshake.peer
        version, count = await reader.readexactly(2)
        if version != 5:
            self.note('%s: refused, not SOCKS5 (version %d)' % (peer, version))
            return None
        if 2 not in await reader.readexactly(count):
            writer.write(b'\x05\xff')
            self.note('%s: refused, offers no username/password authentication' % peer)
            return None
        writer.write(b'\x05\x02')
        version, length = await reader.readexactly(2)
        if version != 1:
            self.note('%s: refused, username/password version %d' % (peer, version))
            return None
        await reader.readexactly(length)
        length = (await reader.readexactly(1))[0]
        password = await reader.readexactly(length)
        if not hmac.compare_digest(password, self.secret):
            writer.write(b'\x01\x01')
            self.note('%s: refused, wrong password' % peer)
            return None
        # The glidein's from here on: out of the handshakes' budget, into the clients'.
        self.leave(handshake)
        if self.clients >= MAX_CLIENTS:
            writer.write(b'\x01\x01')
            self.note('%s: refused, %d relayed connections already' % (peer, MAX_CLIENTS))
            return None
        self.clients += 1
        handshake.relaying = True
        writer.write(b'\x01\x00')
        version, command, _, kind = await reader.readexactly(4)
        if version != 5:
            self.note('%s: refused, request version %d' % (peer, version))
            return None
        if kind == 1:
            host = socket.inet_ntop(socket.AF_INET, await reader.readexactly(4))
        elif kind == 4:
            host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
        elif kind == 3:
            length = (await reader.readexactly(1))[0]
            host = (await reader.readexactly(length)).decode('ascii', 'replace')
        else:
            writer.write(reply(8))
            self.note('%s: refused, address type %d' % (peer, kind))
            return None
        port = struct.unpack('>H', await reader.readexactly(2))[0]
        if command != 1:
            writer.write(reply(7))
            self.note('%s: refused, command %d for %s (only CONNECT)' % (peer, command, show((host, port))))
            return None
        return host, port

    async def permitted(self, host, port):
        hosts = [h for h, p in self.allow if p == port]
        if any(same_host(h, host) for h in hosts):
            return True
        for h in hosts:
            try:
                infos = await asyncio.wait_for(
                    self.loop.getaddrinfo(h, port, type=socket.SOCK_STREAM), RESOLVE_SECONDS)
            except (OSError, asyncio.TimeoutError) as e:
                self.note('cannot resolve the allowed host %s: %s' % (h, describe(e)))
                continue
            if any(same_host(info[4][0], host) for info in infos):
                return True
        return False

    async def connect(self, writer, peer, host, port):
        target = show((host, port))
        if not await self.permitted(host, port):
            writer.write(reply(2))
            self.note('%s: refused, %s is not allowed' % (peer, target))
            return None
        try:
            upstream = await asyncio.wait_for(asyncio.open_connection(host, port, limit=BUFFER), CONNECT_SECONDS)
        except asyncio.TimeoutError:
            code, why = 4, 'no answer within %d s' % CONNECT_SECONDS
        except ConnectionRefusedError as e:
            code, why = 5, describe(e)
        except socket.gaierror as e:
            code, why = 4, describe(e)
        except OSError as e:
            code, why = (4 if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT) else 1), describe(e)
        else:
            writer.write(reply(0, upstream[1].get_extra_info('sockname')))
            await writer.drain()
            return upstream
        writer.write(reply(code))
        self.note('%s: cannot connect to %s: %s' % (peer, target, why))
        return None


# --- main ---------------------------------------------------------------------------------------------------

def raise_file_limit():
    # Two descriptors a client and one a handshake: make room for both budgets where the hard limit allows.
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 2 * MAX_CLIENTS + MAX_PENDING + 64
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
    except (ImportError, ValueError, OSError):
        pass


def on_loop_error(loop, context):
    error = context.get('exception')
    log('%s%s' % (context.get('message', 'error'), ': ' + describe(error) if error else ''))


def utc(epoch):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(epoch))


def main(args):
    if len(args) < 4:
        fail('usage: relay MARKER LISTEN_HOST PORT SECRET_FILE [--die-at EPOCH] [--handshake-seconds N] '
             '[HOST:PORT...]', 2)
    listen_host, port, secret_file = args[1], args[2], args[3]
    if not PORT.match(port) or int(port) > 65535:
        fail('not a port: %r' % port, 2)
    allow = []
    die_at = None
    handshake_seconds = HANDSHAKE_SECONDS
    rest = list(args[4:])
    while rest:
        entry = rest.pop(0)
        if entry in ('--die-at', '--handshake-seconds'):
            value = rest.pop(0) if rest else ''
            if not SECONDS.match(value):
                fail('%s takes whole seconds, not %r' % (entry, value), 2)
            if entry == '--die-at':
                die_at = int(value)
            elif not 0 < int(value) <= 3600:
                fail('--handshake-seconds takes 1 to 3600, not %s' % value, 2)
            else:
                handshake_seconds = int(value)
            continue
        try:
            allow.append(host_port(entry))
        except ValueError:
            fail('not host:port: %r' % entry, 2)
    # The glidein is gone by its die time: a relay for it has no one to serve.
    if die_at is not None and die_at <= time.time():
        fail('the die time %s (%d) has passed' % (utc(die_at), die_at), 2)
    secret = load_secret(secret_file)
    raise_file_limit()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(on_loop_error)
    relay = Relay(loop, secret, allow, handshake_seconds)
    stopping = loop.create_future()

    def stop(why):
        if not stopping.done():
            stopping.set_result(why)

    def tick():
        # By the wall clock, looked at again at least every TICK_SECONDS: the relay ends at its die time even with
        # no worker left to stop it (a terminated workflow), and a clock that was set meanwhile is followed.
        relay.note.roll()
        left = TICK_SECONDS if die_at is None else die_at - time.time()
        if left <= 0:
            stop('reached its die time %s' % utc(die_at))
        else:
            loop.call_later(min(left, TICK_SECONDS), tick)

    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop, s.name)
    try:
        server = loop.run_until_complete(asyncio.start_server(relay.client, listen_host, int(port), backlog=128))
    except OSError as e:
        fail('cannot listen on %s: %s' % (show((listen_host, int(port))), describe(e)), 1)
    print('${RELAY_READY} %s' % ' '.join(show(s.getsockname()) for s in server.sockets), flush=True)
    if die_at is not None:
        log('ends at its die time %s' % utc(die_at))
    tick()
    why = loop.run_until_complete(stopping)
    server.close()
    log('%s: stopped' % why)
    # Open connections end with the process; os._exit does not wait for a name lookup still running in a thread.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


main(sys.argv[1:])
`;
/* eslint-enable max-len */

export interface RelayArgs {
  /** The Python 3 interpreter; python3 by default. */
  python?: string;
  listenHost: string;
  port: number;
  secretFile: string;
  /** The allowed next hops, `host:port` each. */
  allow: string[];
  /** Epoch seconds at which the relay ends by itself (`--die-at`); none: it runs until signalled. */
  dieAt?: number;
  /** The handshake deadline in seconds, HANDSHAKE_SECONDS (3) unless given: tests that hold handshakes open. */
  handshakeSeconds?: number;
}

export function relayArgv(a: RelayArgs): string[] {
  const seconds = (name: string, value: number | undefined) => {
    if (value === undefined) return [];
    if (!Number.isSafeInteger(value) || value <= 0)
      throw new Error(`relay ${name}: ${JSON.stringify(value)} is not a whole number of seconds`);
    return [`--${name}`, String(value)];
  };
  return [
    a.python ?? 'python3',
    '-c',
    RELAY_PY,
    RELAY_MARKER,
    a.listenHost,
    String(a.port),
    a.secretFile,
    ...seconds('die-at', a.dieAt),
    ...seconds('handshake-seconds', a.handshakeSeconds),
    ...a.allow,
  ];
}
