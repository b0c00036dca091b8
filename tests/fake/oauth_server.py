"""A small OAuth2 authorization server for the testbed, on loopback HTTP. It is a fake because no
real provider (Google, Microsoft, an identity server with mail users) is reachable from the test
machine, and a real one could not be told to expire or revoke a token when a test wants it to.
It does only what mail servers and mail clients use: the refresh-token grant (RFC 6749 §6) and
token introspection (RFC 7662), which Dovecot's oauth2 passdb asks about each login.

Endpoints (form-encoded POSTs, JSON answers):
  POST /token        grant_type=refresh_token, refresh_token, client_id, client_secret (in the
                     body or as HTTP Basic): a new access token (Bearer, expires_in), and a new
                     refresh token too when rotation is on for the user. Errors as RFC 6749 §5.2:
                     400 invalid_grant (unknown, revoked or rotated-away refresh token),
                     401 invalid_client, 400 unsupported_grant_type / invalid_request.
  POST /introspect   token=ACCESS_TOKEN: {"active": true, "username": USER, "client_id", "exp"}
                     while the token is live, else {"active": false}.
Control, for tests (JSON bodies; each setting is per user, so tests on different mailboxes do not
disturb each other):
  POST /control/refresh-token  {"user"}: a new refresh token for the user (the grant a person
                               would make in a browser)
  POST /control/lifetime       {"user", "seconds"}: lifetime of the user's next access tokens
  POST /control/expire         {"user"}: every live access token of the user expires now
  POST /control/revoke         {"refresh_token"}: that refresh token is refused from now on
  POST /control/rotate         {"user", "on"}: each grant also returns a new refresh token and
                               retires the old one
  GET  /control/stats?user=U   {"grants", "refused_grants", "introspections",
                               "active_introspections"} of the user, counted since start-up

Run: python oauth_server.py PORT CLIENT_ID CLIENT_SECRET_FILE; prints the port once it listens
(127.0.0.1 only).
"""
import base64
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
CLIENT_ID = sys.argv[2]
with open(sys.argv[3], encoding="utf-8") as secret_file:
    CLIENT_SECRET = secret_file.read().strip()
MAX_BODY = 64 * 1024
DEFAULT_LIFETIME = 3600

LOCK = threading.Lock()
REFRESH = {}  # refresh token -> {"user", "revoked"}
ACCESS = {}  # access token -> {"user", "expires"}
LIFETIME = {}  # user -> seconds
ROTATE = set()  # users
STATS = {}  # user -> counters


def stats(user):
    return STATS.setdefault(user, {"grants": 0, "refused_grants": 0, "introspections": 0,
                                   "active_introspections": 0})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # to stderr, the testbed's log file
        sys.stderr.write("oauth: " + (fmt % args) + "\n")

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length).decode("utf-8", "replace")

    def form(self):
        return {k: v[0] for k, v in urllib.parse.parse_qs(self.body()).items()}

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/control/stats":
            user = urllib.parse.parse_qs(url.query).get("user", [""])[0].lower()
            with LOCK:
                return self.answer(200, dict(stats(user)))
        self.answer(404, {"error": "not_found"})

    def do_POST(self):
        try:
            path = urllib.parse.urlsplit(self.path).path
            if path == "/token":
                return self.token(self.form())
            if path == "/introspect":
                return self.introspect(self.form())
            if path.startswith("/control/"):
                return self.control(path[len("/control/"):], json.loads(self.body() or "{}"))
            self.answer(404, {"error": "not_found"})
        except (ValueError, KeyError, TypeError) as e:
            self.answer(400, {"error": "invalid_request", "error_description": str(e)})

    def token(self, form):
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = self.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            pair = base64.b64decode(basic[6:]).decode()
            client_id, client_secret = (urllib.parse.unquote_plus(p) for p in pair.split(":", 1))
        if client_id != CLIENT_ID or not secrets.compare_digest(client_secret or "", CLIENT_SECRET):
            return self.answer(401, {"error": "invalid_client",
                                     "error_description": "unknown client or wrong secret"})
        if form.get("grant_type") != "refresh_token":
            return self.answer(400, {"error": "unsupported_grant_type"})
        with LOCK:
            grant = REFRESH.get(form.get("refresh_token", ""))
            if grant is None or grant["revoked"]:
                if grant is not None:
                    stats(grant["user"])["refused_grants"] += 1
                return self.answer(400, {"error": "invalid_grant",
                                         "error_description": "the refresh token is not valid"})
            user = grant["user"]
            lifetime = LIFETIME.get(user, DEFAULT_LIFETIME)
            access = secrets.token_urlsafe(32)
            ACCESS[access] = {"user": user, "expires": time.time() + lifetime}
            stats(user)["grants"] += 1
            body = {"access_token": access, "token_type": "Bearer", "expires_in": lifetime,
                    "scope": "mail"}
            if user in ROTATE:
                grant["revoked"] = True
                rotated = secrets.token_urlsafe(32)
                REFRESH[rotated] = {"user": user, "revoked": False}
                body["refresh_token"] = rotated
        self.answer(200, body)

    def introspect(self, form):
        with LOCK:
            entry = ACCESS.get(form.get("token", ""))
            if entry is not None:
                counters = stats(entry["user"])
                counters["introspections"] += 1
            if entry is None or entry["expires"] <= time.time():
                return self.answer(200, {"active": False})
            counters["active_introspections"] += 1
            self.answer(200, {"active": True, "username": entry["user"], "client_id": CLIENT_ID,
                              "token_type": "Bearer", "exp": int(entry["expires"])})

    def control(self, what, body):
        with LOCK:
            if what == "refresh-token":
                token = secrets.token_urlsafe(32)
                REFRESH[token] = {"user": body["user"].lower(), "revoked": False}
                return self.answer(200, {"refresh_token": token})
            if what == "lifetime":
                LIFETIME[body["user"].lower()] = int(body["seconds"])
                return self.answer(200, {})
            if what == "expire":
                user, expired = body["user"].lower(), 0
                for entry in ACCESS.values():
                    if entry["user"] == user and entry["expires"] > time.time():
                        entry["expires"], expired = 0, expired + 1
                return self.answer(200, {"expired": expired})
            if what == "revoke":
                REFRESH[body["refresh_token"]]["revoked"] = True
                return self.answer(200, {})
            if what == "rotate":
                (ROTATE.add if body["on"] else ROTATE.discard)(body["user"].lower())
                return self.answer(200, {})
        self.answer(404, {"error": "not_found"})


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
