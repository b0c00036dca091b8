"""Fault injection for the tests: an HTTPS proxy in front of the testbed's real CA
(acme2certifier) that makes chosen answers go wrong on demand, because a real CA cannot be made to
misbehave when a test wants it to. It is not a proxy to learn from: it trusts whatever the CA
answers, serves loopback targets only, and knows only the faults below.

How the client reaches it: as its HTTP proxy (HTTPS_PROXY=http://127.0.0.1:PORT). The client
opens a tunnel with CONNECT to the CA's host:port; the proxy answers the TLS handshake itself with
the testbed's server certificate (issued for 127.0.0.1 by the test root the client trusts), reads
each request, and forwards it over its own TLS connection to the CA. So the client keeps the CA's
real URLs, which acme2certifier needs: it checks that the URL inside each signed request is its own
(RFC 8555 §6.4), and a signed request cannot be rewritten. Should the CA answer with URLs on
another base (UPSTREAM_BASE in the environment, for a CA behind a front end), they are rewritten
to the tunnel's base in bodies and in Location and Link headers.

Control, with plain HTTP GETs on the proxy's port (outside any tunnel):
  /fault?kind=KIND&count=N[&match=TEXT][&method=M][&seconds=S]
      arms KIND for the next N requests inside tunnels whose path contains TEXT and whose method
      is M (badnonce: POST unless given). Replaces what was armed before.
  /stats
      JSON: every request seen inside tunnels (method, path, status, fault; "at": when it had been
      read, "answered_at": when its answer had been written or null, both time.monotonic() seconds
      of this process) and faults fired.
Faults (KIND):
  badnonce    400 with a badNonce problem and a fresh Replay-Nonce from the CA; not forwarded
  429         429 rateLimited with Retry-After: S seconds (default 1); not forwarded
  429date     the same with Retry-After as an HTTP date S seconds ahead (default 2)
  503         503 Service Unavailable, with Retry-After: S only when seconds is given
  reset       forwarded; the headers and half the body are sent, then the connection is reset
  stall       nothing is answered for S seconds (default 30), then the connection is closed
  badjson     forwarded; the JSON body is cut in half (200, application/json)
  big         200 with a 10 MB JSON body; not forwarded
  html        200 with a text/html maintenance page; not forwarded

Run: python fault_proxy.py TESTBED_ENV_FILE; prints the port it listens on (127.0.0.1).
"""
import http.client
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import _SocketWriter  # pylint: disable=protected-access

ENV = dict(line.split("=", 1) for line in open(sys.argv[1]).read().splitlines()
           if line and not line.startswith("#"))
PKI = os.path.join(ENV["TESTBED_STATE"], "pki")
DIRECTORY_PATH = urllib.parse.urlsplit(ENV["SMIME_ACME_SERVER"]).path
UPSTREAM_TLS = ssl.create_default_context(cafile=ENV["SMIME_ACME_CA_BUNDLE"])
TUNNEL_TLS = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
TUNNEL_TLS.load_cert_chain(os.path.join(PKI, "server.crt"), os.path.join(PKI, "server.key"))
# Headers that belong to one hop, never forwarded.
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
       "upgrade", "content-length", "host"}
BIG = 10 * 1024 * 1024

LOCK = threading.Lock()
ARMED = {"kind": None, "count": 0, "match": "", "method": None, "seconds": None}
SEEN = []
FIRED = {}


def take_fault(method, path):
    """The fault armed for this request, if any (and one fewer left)."""
    with LOCK:
        if ARMED["count"] <= 0 or ARMED["match"] not in path:
            return None
        if ARMED["method"] and ARMED["method"] != method:
            return None
        ARMED["count"] -= 1
        FIRED[ARMED["kind"]] = FIRED.get(ARMED["kind"], 0) + 1
        return dict(ARMED)


def upstream(target, method, path, headers, body):
    """Forwards one request to the CA; returns (status, reason, headers, body)."""
    host, port = target.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=UPSTREAM_TLS, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, response.reason, response.getheaders(), data
    finally:
        conn.close()


def fresh_nonce(target):
    status, _, headers, body = upstream(target, "GET", DIRECTORY_PATH, {}, None)
    if status != 200:
        return None
    new_nonce = urllib.parse.urlsplit(json.loads(body)["newNonce"]).path
    _, _, headers, _ = upstream(target, "HEAD", new_nonce, {}, None)
    return next((v for k, v in headers if k.lower() == "replay-nonce"), None)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 75
    tunnel = None  # host:port of the CA once CONNECT made this a tunnel

    def log_message(self, *args):
        pass

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
            self.close_connection = True

    # ---- outside tunnels: CONNECT and control ----

    def do_CONNECT(self):
        host, _, port = self.path.rpartition(":")
        if host not in ("127.0.0.1", "localhost") or not port.isdigit():
            return self.plain(403, {"error": "loopback targets only"})
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.connection = TUNNEL_TLS.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb", self.rbufsize)
        self.wfile = _SocketWriter(self.connection)
        self.tunnel = self.path
        return None

    def plain(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def control(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/fault":
            kind = query.get("kind")
            with LOCK:
                ARMED.update(kind=kind, count=int(query.get("count", "1")), match=query.get("match", ""),
                             method=query.get("method") or ("POST" if kind == "badnonce" else None),
                             seconds=float(query["seconds"]) if "seconds" in query else None)
                return self.plain(200, dict(ARMED))
        if url.path == "/stats":
            with LOCK:
                return self.plain(200, {"requests": SEEN, "fired": FIRED})
        return self.plain(404, {"error": f"no {url.path}"})

    # ---- inside tunnels: ACME requests ----

    def do_GET(self):
        if self.tunnel is None:
            return self.control()
        return self.proxy()

    def do_HEAD(self):
        return self.proxy()

    def do_POST(self):
        return self.proxy()

    def proxy(self):
        if self.tunnel is None:
            return self.plain(400, {"error": "not a tunnel"})
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        arrived = time.monotonic()
        fault = take_fault(self.command, self.path)
        kind = fault["kind"] if fault else None
        record = {"method": self.command, "path": self.path, "fault": kind, "status": None,
                  "at": arrived, "answered_at": None}
        with LOCK:
            SEEN.append(record)
        seconds = fault["seconds"] if fault else None
        if kind == "stall":
            time.sleep(seconds if seconds is not None else 30)
            self.close_connection = True
            return None
        if kind == "badnonce":
            headers = [("Replay-Nonce", fresh_nonce(self.tunnel) or "")]
            return self.answer(record, 400, headers, {"type": "urn:ietf:params:acme:error:badNonce",
                                                      "detail": "the nonce was not accepted (fault injected)"},
                               "application/problem+json")
        if kind in ("429", "429date"):
            wait = seconds if seconds is not None else (1 if kind == "429" else 2)
            value = str(int(wait)) if kind == "429" else formatdate(time.time() + wait, usegmt=True)
            return self.answer(record, 429, [("Retry-After", value)],
                               {"type": "urn:ietf:params:acme:error:rateLimited",
                                "detail": "too many requests (fault injected)"}, "application/problem+json")
        if kind == "503":
            headers = [("Retry-After", str(int(seconds)))] if seconds is not None else []
            page = b"<html><body><h1>503 Service Unavailable</h1></body></html>"
            return self.answer(record, 503, headers, page, "text/html")
        if kind == "html":
            page = b"<html><body><h1>Down for maintenance</h1><p>Back soon.</p></body></html>"
            return self.answer(record, 200, [], page, "text/html; charset=utf-8")
        if kind == "big":
            return self.big(record)

        forward = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        status, reason, headers, data = upstream(self.tunnel, self.command, self.path, forward, body)
        headers = [(k, self.rewrite(v) if k.lower() in ("location", "link") else v)
                   for k, v in headers if k.lower() not in HOP | {"date", "server"}]
        data = self.rewrite(data)
        if kind == "badjson":
            data = data[: len(data) // 2] if len(data) > 2 else b'{"status": "pend'
        if kind == "reset":
            return self.reset(record, status, reason, headers, data)
        return self.answer(record, status, headers, data, None, reason)

    def rewrite(self, value):
        base = os.environ.get("UPSTREAM_BASE")
        if not base:
            return value
        own = f"https://{self.tunnel}"
        if isinstance(value, bytes):
            return value.replace(base.encode(), own.encode())
        return value.replace(base, own)

    def answer(self, record, status, headers, body, content_type, reason=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        record["status"] = status
        self.send_response(status, reason)
        for key, value in headers:
            self.send_header(key, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()
        record["answered_at"] = time.monotonic()
        return None

    def reset(self, record, status, reason, headers, data):
        """The status line, the headers and half the body, then a TCP reset."""
        record["status"] = status
        self.send_response(status, reason)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(max(len(data), 2)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        record["answered_at"] = time.monotonic()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
        return None

    def big(self, record):
        record["status"] = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(BIG))
        self.end_headers()
        chunk = b" " * 65536
        sent = 0
        try:
            self.wfile.write(b'{"padding": "')
            sent = 13
            while sent + len(chunk) < BIG - 2:
                self.wfile.write(chunk)
                sent += len(chunk)
            self.wfile.write(b" " * (BIG - 2 - sent) + b'"}')
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        self.close_connection = True
        return None


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that went away mid-answer is what some faults are for


server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
