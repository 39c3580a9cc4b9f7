#!/usr/bin/python3
"""Stand-in for a Frontier squid (and the cvmfs stratum-1 behind it), the HTTP proxy CMS jobs and cvmfs ask for
conditions data and repository files.

    squid.py --listen <addr:port> --store <dir> [--log <file>] [--pid-file <file>]

Speaks HTTP/1.0 and 1.1 as a forward proxy is spoken to: one request per connection, its target an absolute URL
(`GET http://host:port/path HTTP/1.1`). Answers, as the origin servers behind a real squid would:
    /cvmfs/<repo>/.cvmfspublished     200 when <store>/<repo> exists (the stand-in cvmfs store), else 404
    /FrontierProd/... /Frontier...    200 with a small Frontier XML payload
    anything else                     404
A request that is not in proxy form gets 400 ("Invalid URL", as squid answers), CONNECT and other methods 403.
Every request is logged in squid's access.log shape: time, elapsed ms, client address, TCP_MISS/<code>, bytes,
method, URL.
"""
import argparse
import os
import re
import signal
import socketserver
import sys
import time

FRONTIER_BODY = (
    '<?xml version="1.0" encoding="US-ASCII"?>\n'
    '<frontier version="3.41" xmlversion="1.0">\n'
    ' <transaction payloads="1">\n'
    '  <payload type="frontier_request" version="1" encoding="BLOBzip5">\n'
    '   <data>eJwLycgsVsgsVkhUKC5NTgYAJQMFGw==</data>\n'
    '   <quality error="0" md5="0" records="1" full_size="24"/>\n'
    '  </payload>\n'
    ' </transaction>\n'
    '</frontier>\n'
)
URL = re.compile(r"^http://([A-Za-z0-9.-]+)(?::(\d{1,5}))?(/[^ ]*)$")


class Handler(socketserver.StreamRequestHandler):
    timeout = 30

    def handle(self):
        started = time.time()
        try:
            line = self.rfile.readline(8192).decode("latin-1").rstrip("\r\n")
            while True:  # the headers: read and ignored
                header = self.rfile.readline(8192)
                if header in (b"\r\n", b"\n", b""):
                    break
        except OSError:
            return
        parts = line.split(" ")
        method, target = (parts[0], parts[1]) if len(parts) == 3 else ("-", line or "-")
        code, reason, body, ctype = self.answer(method, target)
        payload = body.encode()
        try:
            self.wfile.write(("HTTP/1.1 %d %s\r\nServer: squid\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                              "Connection: close\r\n\r\n" % (code, reason, ctype, len(payload))).encode() + payload)
        except OSError:
            pass
        self.server.log("%.3f %6d %s TCP_MISS/%03d %d %s %s" % (
            time.time(), int((time.time() - started) * 1000), self.client_address[0], code, len(payload),
            method, target))

    def answer(self, method, target):
        if method != "GET":
            return 403, "Forbidden", "Access Denied.\n", "text/plain"
        m = URL.match(target)
        if not m:
            return 400, "Bad Request", "Invalid URL\n", "text/plain"
        path = m.group(3)
        published = re.match(r"^/cvmfs/([A-Za-z0-9][A-Za-z0-9.-]*)/\.cvmfspublished$", path)
        if published:
            if os.path.isdir(os.path.join(self.server.store, published.group(1))):
                return 200, "OK", "C0000000000000000000000000000000000000000\nN%s\nS1\n--\n" % published.group(1), \
                    "application/x-cvmfs"
            return 404, "Not Found", "Not Found\n", "text/plain"
        if path.startswith("/FrontierProd/") or path.startswith("/Frontier"):
            return 200, "OK", FRONTIER_BODY, "text/xml"
        return 404, "Not Found", "Not Found\n", "text/plain"


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def log(self, text):
        self.log_file.write(text + "\n")
        self.log_file.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", required=True, help="addr:port")
    p.add_argument("--store", required=True, help="the cvmfs stand-in's store: one directory per repository")
    p.add_argument("--log")
    p.add_argument("--pid-file")
    a = p.parse_args()
    host, _, port = a.listen.rpartition(":")
    server = Server((host, int(port)), Handler)
    server.store = a.store
    server.log_file = open(a.log, "a") if a.log else sys.stdout
    if a.pid_file:
        with open(a.pid_file, "w") as f:
            f.write("%d\n" % os.getpid())

    def on_term(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    server.log("# squid stand-in listening on %s; cvmfs store %s" % (a.listen, a.store))
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if a.pid_file:
            try:
                os.unlink(a.pid_file)
            except OSError:
                pass


if __name__ == "__main__":
    main()
