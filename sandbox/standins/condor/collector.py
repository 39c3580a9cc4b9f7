#!/usr/bin/python3
"""Stand-in for the HTCondor pool's collector (the CMS Global Pool collector in production).

    collector.py --listen <addr:port> [--allow-update-from <addr>]... [--ad-lifetime <s>]
                 [--token-keys <dir>] [--log <file>] [--pid-file <file>]

Wire protocol (the stand-in's own, not CEDAR): a client connects over TCP, sends ONE JSON object on one
line and reads ONE JSON object on one line back:
    {"command": "UPDATE_STARTD_AD", "ad": {...}}          -> {"ok": true} | {"ok": false, "error": "..."}
    {"command": "INVALIDATE_STARTD_ADS", "name": "..."}   -> {"ok": true, "removed": n} | refusal
    {"command": "QUERY_STARTD_ADS", "constraint": "..."}  -> {"ok": true, "ads": [...]} | {"ok": false, ...}
Updates and invalidations are accepted only from the --allow-update-from addresses (like an ALLOW_ADVERTISE
host list); refusals are logged with the peer address. With --token-keys, an update or invalidation must also
carry "idtoken": an IDTOKEN (JWT, HS256) signed with the key file of <dir> its kid names (POOL when none), not
expired, as HTCondor's IDTOKENS authentication requires; others are refused as PERMISSION DENIED. Queries
are answered for anyone. An ad expires when it has not been updated for its ClassAdLifetime attribute, or
--ad-lifetime seconds (default 900).
Constraints are evaluated with ClassAd semantics for a subset of the language: literals, attribute
references (case-insensitive, MY./TARGET. prefixes), ! - == != =?= =!= < <= > >= && || and parentheses.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socketserver
import sys
import threading
import time

COMMAND_NUMBERS = {"UPDATE_STARTD_AD": 0, "INVALIDATE_STARTD_ADS": 2, "QUERY_STARTD_ADS": 5}


class Undefined:
    def __repr__(self):
        return "undefined"


class Error:
    def __repr__(self):
        return "error"


UNDEFINED, ERROR = Undefined(), Error()

TOKEN = re.compile(r'\s*(?:(?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?|\.\d+)'
                   r'|(?P<str>"(?:[^"\\]|\\.)*")'
                   r'|(?P<id>[A-Za-z_][A-Za-z0-9_.]*)'
                   r'|(?P<op>=\?=|=!=|==|!=|<=|>=|&&|\|\||[()<>!\-]))')


class ParseError(Exception):
    pass


def tokenize(text):
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ParseError("syntax error at %r" % text[pos:pos + 20])
        pos = m.end()
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
    return tokens


def parse(text):
    """Parse a constraint into a nested tuple tree."""
    tokens = tokenize(text)
    pos = [0]

    def peek():
        return tokens[pos[0]] if pos[0] < len(tokens) else (None, None)

    def take():
        tok = peek()
        pos[0] += 1
        return tok

    def binary(next_level, ops):
        def level():
            left = next_level()
            while peek()[0] == "op" and peek()[1] in ops:
                op = take()[1]
                left = ("bin", op, left, next_level())
            return left
        return level

    def unary():
        kind, val = peek()
        if kind == "op" and val in ("!", "-"):
            take()
            return ("un", val, unary())
        return primary()

    def primary():
        kind, val = take()
        if kind == "num":
            return ("lit", float(val) if re.search(r"[.eE]", val) else int(val))
        if kind == "str":
            return ("lit", json.loads(val))
        if kind == "id":
            low = val.lower()
            if low in ("true", "false"):
                return ("lit", low == "true")
            if low == "undefined":
                return ("lit", UNDEFINED)
            if low == "error":
                return ("lit", ERROR)
            if "." in val:
                scope, _, attr = val.partition(".")
                if scope.lower() not in ("my", "target") or not attr or "." in attr:
                    raise ParseError("unsupported attribute reference %s" % val)
                val = attr
            return ("attr", val)
        if kind == "op" and val == "(":
            inner = expr()
            if take() != ("op", ")"):
                raise ParseError("missing )")
            return inner
        raise ParseError("unexpected %s" % (val if val is not None else "end of expression"))

    relational = binary(unary, ("<", "<=", ">", ">="))
    equality = binary(relational, ("==", "!=", "=?=", "=!="))
    conj = binary(equality, ("&&",))
    expr = binary(conj, ("||",))
    tree = expr()
    if pos[0] != len(tokens):
        raise ParseError("unexpected %s" % tokens[pos[0]][1])
    return tree


def lookup(ad, name):
    low = name.lower()
    for k, v in ad.items():
        if k.lower() == low:
            return v
    return UNDEFINED


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def same(a, b):
    """=?= : identical type and value; strings compare case-sensitively."""
    if isinstance(a, Undefined) or isinstance(b, Undefined):
        return isinstance(a, Undefined) and isinstance(b, Undefined)
    if isinstance(a, Error) or isinstance(b, Error):
        return isinstance(a, Error) and isinstance(b, Error)
    if is_num(a) and is_num(b):
        return a == b
    return type(a) is type(b) and a == b


def evaluate(node, ad):
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "attr":
        return lookup(ad, node[1])
    if kind == "un":
        v = evaluate(node[2], ad)
        if isinstance(v, (Undefined, Error)):
            return v
        if node[1] == "!":
            return (not v) if isinstance(v, bool) else ERROR
        return -v if is_num(v) else ERROR
    op, left = node[1], evaluate(node[2], ad)
    if op == "&&":
        if left is False:
            return False
        right = evaluate(node[3], ad)
        if isinstance(left, Error) or isinstance(right, Error):
            return ERROR
        if right is False:
            return False
        if isinstance(left, Undefined) or isinstance(right, Undefined):
            return UNDEFINED
        return True if left is True and right is True else ERROR
    if op == "||":
        if left is True:
            return True
        right = evaluate(node[3], ad)
        if isinstance(left, Error) or isinstance(right, Error):
            return ERROR
        if right is True:
            return True
        if isinstance(left, Undefined) or isinstance(right, Undefined):
            return UNDEFINED
        return False if left is False and right is False else ERROR
    right = evaluate(node[3], ad)
    if op == "=?=":
        return same(left, right)
    if op == "=!=":
        return not same(left, right)
    if isinstance(left, Error) or isinstance(right, Error):
        return ERROR
    if isinstance(left, Undefined) or isinstance(right, Undefined):
        return UNDEFINED
    if isinstance(left, str) and isinstance(right, str):
        # ClassAd == on strings is case-insensitive.
        left, right = left.lower(), right.lower()
    elif isinstance(left, bool) and isinstance(right, bool) and op in ("==", "!="):
        pass
    elif not (is_num(left) and is_num(right)):
        return ERROR
    return {"==": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
            ">": left > right, ">=": left >= right}[op]


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_idtoken(token, keys_dir, now):
    """None if `token` is an IDTOKEN signed (HS256) with a key of keys_dir (the file named by its kid, POOL when it
    names none) and not expired; else why not. HTCondor derives its HMAC key from the signing key file; the
    stand-in uses the file's bytes as they are."""
    if not isinstance(token, str) or token.count(".") != 2:
        return "no IDTOKEN presented"
    head, body, sig = token.split(".")
    try:
        header = json.loads(b64url(head))
        payload = json.loads(b64url(body))
        signature = b64url(sig)
    except (ValueError, TypeError):
        return "the IDTOKEN does not parse"
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(payload, dict):
        return "the IDTOKEN is not HS256"
    kid = header.get("kid") or "POOL"
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", str(kid)):
        return "the IDTOKEN names a bad key id"
    try:
        with open(os.path.join(keys_dir, kid), "rb") as f:
            key = f.read()
    except OSError:
        return "the IDTOKEN's signing key %s is not known to this pool" % kid
    expected = hmac.new(key, (head + "." + body).encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        return "the IDTOKEN's signature does not verify with key %s" % kid
    exp = payload.get("exp")
    if exp is not None and (not isinstance(exp, (int, float)) or exp <= now):
        return "the IDTOKEN expired at %s" % time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp if isinstance(exp, (int, float)) else 0))
    return None


class Collector:
    def __init__(self, allowed, lifetime, log_file, token_keys=None):
        self.allowed = set(allowed)
        self.lifetime = lifetime
        self.token_keys = token_keys
        self.log_file = log_file
        self.ads = {}
        self.lock = threading.Lock()

    def log(self, msg):
        line = time.strftime("%m/%d/%y %H:%M:%S ") + msg + "\n"
        with self.lock:
            self.log_file.write(line)
            self.log_file.flush()

    def expire(self, now):
        for name, ad in list(self.ads.items()):
            life = ad.get("ClassAdLifetime", self.lifetime)
            if not is_num(life):
                life = self.lifetime
            if now - ad["LastHeardFrom"] > life:
                del self.ads[name]
                self.log('Expired ad "%s" (not updated for %ds)' % (name, now - ad["LastHeardFrom"]))

    def refuse(self, peer, command, what):
        self.log("PERMISSION DENIED to unauthenticated@unmapped from host %s for command %d (%s), "
                 "access level ADVERTISE_STARTD: reason: ADVERTISE_STARTD authorization policy contains no "
                 "matching ALLOW entry for this request; identifiers used for this host: %s, hostname size = 0, "
                 "original ip address = %s (%s)" % (peer, COMMAND_NUMBERS[command], command, peer, peer, what))
        return {"ok": False, "error": "PERMISSION DENIED to unauthenticated@unmapped from host %s for command %d "
                                      "(%s)" % (peer, COMMAND_NUMBERS[command], command)}

    def unauthenticated(self, request, peer, command, what, now):
        """With signing keys, updates and invalidations need a valid IDTOKEN: the refusal, or None."""
        if not self.token_keys:
            return None
        why = check_idtoken(request.get("idtoken"), self.token_keys, now)
        if why is None:
            return None
        self.log("PERMISSION DENIED to unauthenticated@unmapped from host %s for command %d (%s), access level "
                 "ADVERTISE_STARTD: reason: IDTOKENS authentication failed: %s (%s)"
                 % (peer, COMMAND_NUMBERS[command], command, why, what))
        return {"ok": False, "error": "PERMISSION DENIED to unauthenticated@unmapped from host %s for command %d "
                                      "(%s): %s" % (peer, COMMAND_NUMBERS[command], command, why)}

    def handle(self, request, peer):
        command = request.get("command") if isinstance(request, dict) else None
        now = int(time.time())
        if command == "UPDATE_STARTD_AD":
            ad = request.get("ad")
            if not isinstance(ad, dict) or not isinstance(ad.get("Name"), str):
                return {"ok": False, "error": "malformed ad: no Name"}
            if peer not in self.allowed:
                return self.refuse(peer, command, 'ad "%s"' % ad["Name"])
            denied = self.unauthenticated(request, peer, command, 'ad "%s"' % ad["Name"], now)
            if denied:
                return denied
            ad = dict(ad)
            ad["LastHeardFrom"] = now
            ad["UpdatesPeerAddress"] = peer
            with self.lock:
                self.expire(now)
                fresh = ad["Name"] not in self.ads
                self.ads[ad["Name"]] = ad
            self.log('%s from %s: %s ad "%s"' % (command, peer, "new" if fresh else "updated", ad["Name"]))
            return {"ok": True}
        if command == "INVALIDATE_STARTD_ADS":
            name = request.get("name")
            if peer not in self.allowed:
                return self.refuse(peer, command, 'invalidate "%s"' % name)
            denied = self.unauthenticated(request, peer, command, 'invalidate "%s"' % name, now)
            if denied:
                return denied
            with self.lock:
                removed = 1 if self.ads.pop(name, None) is not None else 0
            self.log('%s from %s: invalidated ad "%s" (%d removed)' % (command, peer, name, removed))
            return {"ok": True, "removed": removed}
        if command == "QUERY_STARTD_ADS":
            constraint = request.get("constraint") or "true"
            try:
                tree = parse(constraint)
            except ParseError as e:
                self.log("%s from %s: bad constraint %r: %s" % (command, peer, constraint, e))
                return {"ok": False, "error": "Couldn't parse constraint %s: %s" % (constraint, e)}
            with self.lock:
                self.expire(now)
                ads = [dict(ad) for ad in self.ads.values() if evaluate(tree, ad) is True]
            self.log("%s from %s: constraint %s: %d ads" % (command, peer, constraint, len(ads)))
            return {"ok": True, "ads": ads}
        return {"ok": False, "error": "unknown command %r" % (command,)}


class Handler(socketserver.StreamRequestHandler):
    timeout = 30

    def handle(self):
        peer = self.client_address[0]
        try:
            line = self.rfile.readline(1 << 20)
        except OSError:
            return
        if not line.strip():
            return
        try:
            request = json.loads(line)
        except ValueError:
            reply = {"ok": False, "error": "malformed request"}
        else:
            reply = self.server.collector.handle(request, peer)
        try:
            self.wfile.write((json.dumps(reply) + "\n").encode())
        except OSError:
            pass


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    p = argparse.ArgumentParser(description="HTCondor collector stand-in")
    p.add_argument("--listen", required=True, help="addr:port")
    p.add_argument("--allow-update-from", action="append", default=[], metavar="ADDR")
    p.add_argument("--ad-lifetime", type=int, default=900)
    p.add_argument("--token-keys", metavar="DIR",
                   help="require an IDTOKEN signed with a key in DIR (file name = key id) for updates")
    p.add_argument("--log")
    p.add_argument("--pid-file")
    a = p.parse_args()
    host, _, port = a.listen.rpartition(":")
    log_file = open(a.log, "a") if a.log else sys.stdout
    collector = Collector(a.allow_update_from, a.ad_lifetime, log_file, a.token_keys)
    server = Server((host, int(port)), Handler)
    server.collector = collector
    if a.pid_file:
        with open(a.pid_file, "w") as f:
            f.write("%d\n" % os.getpid())

    def on_term(signum, _frame):
        collector.log("Got %s. Shutting down." % signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    collector.log("Collector stand-in listening on %s; updates allowed from %s; ad lifetime %ds; %s"
                  % (a.listen, ", ".join(a.allow_update_from) or "nobody", a.ad_lifetime,
                     "IDTOKENs required (keys in %s)" % a.token_keys if a.token_keys else "no authentication"))
    server.serve_forever()
    server.server_close()
    if a.pid_file:
        try:
            os.unlink(a.pid_file)
        except OSError:
            pass
    collector.log("Collector stand-in exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
