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
 * args: marker, listen host, port (0: any free one, as printed), secret file, allowed `host:port`…; exits 2 on
 * bad arguments or secret file, 1 when it cannot listen, 0 on SIGTERM/SIGINT.
 * The secret file is created if missing (64 hex digits, 0600, linked into place so that two relays starting at
 * once end up with the same secret) and kept otherwise, so a restarted relay takes the password that the
 * proxychains.conf already holds. A CONNECT is allowed when an allowed entry has its port and a host that is, or
 * resolves to, its address; a refusal is one line on stderr (peer and why, never the password).
 */
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

MAX_CLIENTS = 1024
HANDSHAKE_SECONDS = 10
CONNECT_SECONDS = 10
RESOLVE_SECONDS = 10
BUFFER = 65536
SECRET = re.compile(r'[0-9a-f]{32,128}\Z')
PORT = re.compile(r'[0-9]{1,5}\Z')


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


class Relay:
    def __init__(self, loop, secret, allow):
        self.loop = loop
        self.secret = secret
        self.allow = allow
        self.clients = 0

    async def client(self, reader, writer):
        peer = show(writer.get_extra_info('peername'))
        if self.clients >= MAX_CLIENTS:
            log('%s: refused, %d connections already' % (peer, MAX_CLIENTS))
            writer.close()
            return
        self.clients += 1
        upstream = None
        try:
            target = await asyncio.wait_for(self.negotiate(reader, writer, peer), HANDSHAKE_SECONDS)
            if target is not None:
                upstream = await self.connect(writer, peer, target[0], target[1])
            if upstream is not None:
                keepalive(writer)
                keepalive(upstream[1])
                await asyncio.gather(pipe(reader, upstream[1], writer), pipe(upstream[0], writer, upstream[1]))
        except asyncio.CancelledError:
            raise
        except asyncio.TimeoutError:
            log('%s: refused, no complete SOCKS request within %d s' % (peer, HANDSHAKE_SECONDS))
        except asyncio.IncompleteReadError:
            log('%s: refused, closed during the handshake' % peer)
        except Exception as e:
            # One connection's failure never ends the relay.
            log('%s: %s' % (peer, describe(e)))
        finally:
            self.clients -= 1
            writer.close()
            if upstream is not None:
                upstream[1].close()

    async def negotiate(self, reader, writer, peer):
        version, count = await reader.readexactly(2)
        if version != 5:
            log('%s: refused, not SOCKS5 (version %d)' % (peer, version))
            return None
        if 2 not in await reader.readexactly(count):
            writer.write(b'\x05\xff')
            log('%s: refused, offers no username/password authentication' % peer)
            return None
        writer.write(b'\x05\x02')
        version, length = await reader.readexactly(2)
        if version != 1:
            log('%s: refused, username/password version %d' % (peer, version))
            return None
        await reader.readexactly(length)
        length = (await reader.readexactly(1))[0]
        password = await reader.readexactly(length)
        if not hmac.compare_digest(password, self.secret):
            writer.write(b'\x01\x01')
            log('%s: refused, wrong password' % peer)
            return None
        writer.write(b'\x01\x00')
        version, command, _, kind = await reader.readexactly(4)
        if version != 5:
            log('%s: refused, request version %d' % (peer, version))
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
            log('%s: refused, address type %d' % (peer, kind))
            return None
        port = struct.unpack('>H', await reader.readexactly(2))[0]
        if command != 1:
            writer.write(reply(7))
            log('%s: refused, command %d for %s (only CONNECT)' % (peer, command, show((host, port))))
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
                log('cannot resolve the allowed host %s: %s' % (h, describe(e)))
                continue
            if any(same_host(info[4][0], host) for info in infos):
                return True
        return False

    async def connect(self, writer, peer, host, port):
        target = show((host, port))
        if not await self.permitted(host, port):
            writer.write(reply(2))
            log('%s: refused, %s is not allowed' % (peer, target))
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
        log('%s: cannot connect to %s: %s' % (peer, target, why))
        return None


# --- main ---------------------------------------------------------------------------------------------------

def raise_file_limit():
    # Two descriptors a client: make room for MAX_CLIENTS where the hard limit allows.
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 2 * MAX_CLIENTS + 64
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
    except (ImportError, ValueError, OSError):
        pass


def on_loop_error(loop, context):
    error = context.get('exception')
    log('%s%s' % (context.get('message', 'error'), ': ' + describe(error) if error else ''))


def main(args):
    if len(args) < 4:
        fail('usage: relay MARKER LISTEN_HOST PORT SECRET_FILE [HOST:PORT...]', 2)
    listen_host, port, secret_file = args[1], args[2], args[3]
    if not PORT.match(port) or int(port) > 65535:
        fail('not a port: %r' % port, 2)
    allow = []
    for entry in args[4:]:
        try:
            allow.append(host_port(entry))
        except ValueError:
            fail('not host:port: %r' % entry, 2)
    secret = load_secret(secret_file)
    raise_file_limit()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(on_loop_error)
    relay = Relay(loop, secret, allow)
    stopping = loop.create_future()

    def stop(name):
        if not stopping.done():
            stopping.set_result(name)

    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop, s.name)
    try:
        server = loop.run_until_complete(asyncio.start_server(relay.client, listen_host, int(port), backlog=128))
    except OSError as e:
        fail('cannot listen on %s: %s' % (show((listen_host, int(port))), describe(e)), 1)
    print('${RELAY_READY} %s' % ' '.join(show(s.getsockname()) for s in server.sockets), flush=True)
    name = loop.run_until_complete(stopping)
    server.close()
    log('%s: stopped' % name)
    # Open connections end with the process; os._exit does not wait for a name lookup still running in a thread.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


main(sys.argv[1:])
`;

export interface RelayArgs {
  /** The Python 3 interpreter; python3 by default. */
  python?: string;
  listenHost: string;
  port: number;
  secretFile: string;
  /** The allowed next hops, `host:port` each. */
  allow: string[];
}

export function relayArgv(a: RelayArgs): string[] {
  return [a.python ?? 'python3', '-c', RELAY_PY, RELAY_MARKER, a.listenHost, String(a.port), a.secretFile, ...a.allow];
}
