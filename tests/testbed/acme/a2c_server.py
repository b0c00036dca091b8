"""Serves acme2certifier's WSGI application over HTTPS on loopback, for the testbed.

HTTP/1.1 with keep-alive, as a CA's web server does: a connection stays open for further requests
while each response's end is known (Content-Length). Every accepted TLS connection is logged to
stderr ("... TLS connection accepted"), next to one line per request, each with the client's port.

Two changes to acme2certifier itself, for issuances at once (see _reply_fetch and _db_open): a
validation reads only its own challenge's reply and leaves the others unseen, and SQLite waits
for its lock instead of failing with "database is locked".

Environment: ACME_SRV_CONFIGFILE (acme2certifier's config), A2C_PORT, A2C_TLS_CERT and
A2C_TLS_KEY (the server certificate and key), A2C_MAIL_CA (the root that the CA's own IMAP and
SMTP connections must trust).
"""
import email
import io
import os
import re
import sqlite3
import ssl
import sys
from http.server import BaseHTTPRequestHandler
from socketserver import ThreadingMixIn
from wsgiref.simple_server import ServerHandler, WSGIServer, make_server

# acme2certifier opens its IMAP and SMTP connections with Python's default "stdlib" context,
# which verifies nothing. A CA's mail system checks its peers: trust exactly the test root.
MAIL_CA = os.environ["A2C_MAIL_CA"]


def _verified_context(*_args, **_kwargs):
    return ssl.create_default_context(cafile=MAIL_CA)


ssl._create_stdlib_context = _verified_context  # pylint: disable=protected-access

# Importing the application reads ACME_SRV_CONFIGFILE, so it comes after the environment is set.
from acme2certifier.share import acme2certifier_wsgi as a2c  # noqa: E402
from acme2certifier.acme_srv.email_handler import EmailHandler  # noqa: E402
from acme2certifier.dbhandlers import wsgi_handler  # noqa: E402

_stock_emails_fetch = EmailHandler._emails_fetch  # pylint: disable=protected-access


def _reply_fetch(self, mail, callback, mark_as_read):
    """EmailHandler._emails_fetch for one challenge's validation, safe when several run at once.

    acme2certifier validates an email-reply-00 challenge inside its POST by reading its one
    mailbox: it FETCHes every UNSEEN mail as RFC822 (which sets \\Seen) and marks every mail that
    does not match *this* challenge as seen too. Validations of different challenges run at once
    in this threaded server (one thread per connection), and a reply that one validation read
    and set aside is UNSEEN no more, so the validation it belongs to never finds it: its five
    tries run out and the challenge turns invalid (with 12 issuances at once, 6 to 10 failed so).
    Here the unseen mails are read with BODY.PEEK, which changes no flag, by UID (sequence
    numbers move under a concurrent EXPUNGE), headers first; only the mail that passes the
    challenge's filter is read whole and marked seen, as before. Mail for other challenges
    stays unseen for their own validations; nothing needs a lock. (Mail that answers no
    challenge now stays unseen too: each try reads its headers again, one FETCH for all.)
    """
    if callback is None:  # the polling loop's use, not the validation's: unchanged
        return _stock_emails_fetch(self, mail, callback, mark_as_read)
    status, data = mail.uid("SEARCH", None, "UNSEEN")
    uids = data[0].split() if status == "OK" and data and data[0] else []
    if not uids:
        return []
    status, data = mail.uid("FETCH", b",".join(uids), "(UID BODY.PEEK[HEADER])")
    if status != "OK":
        return []
    for item in data:
        if not isinstance(item, tuple):
            continue
        uid = re.search(rb"\bUID (\d+)", item[0])
        if uid is None:
            continue
        # The filter reads Subject and From only; the whole mail is read for a candidate.
        if not callback(self._email_parse_headers(email.message_from_bytes(item[1]))):
            continue
        status, whole = mail.uid("FETCH", uid.group(1), "(BODY.PEEK[])")
        if status != "OK" or not whole or not isinstance(whole[0], tuple):
            continue
        result = callback(self._email_parse(email.message_from_bytes(whole[0][1])))
        if result:
            self.logger.info("Email passed filter: %s", result["subject"])
            if mark_as_read:
                mail.uid("STORE", uid.group(1), "+FLAGS", "(\\Seen)")
            return result
    return []


EmailHandler._emails_fetch = _reply_fetch  # pylint: disable=protected-access


def _db_open(self):
    """wsgi_handler.DBstore._db_open, waiting up to 60 s (not sqlite3's 5 s) for a lock.

    acme2certifier opens its SQLite file for each query. With some 40 issuances at once, its
    threads (all sharing one GIL on a busy machine) held the lock long enough for others to give
    up after 5 s with "database is locked": nonces lost (badNonce) and certificates not stored
    (badCSR). main() also switches the file to WAL, where readers and the writer do not block
    each other; writers still take turns, now waiting for it.
    """
    self.dbs = sqlite3.connect(self.db_name, timeout=60)
    self.dbs.row_factory = sqlite3.Row
    self.cursor = self.dbs.cursor()


wsgi_handler.DBstore._db_open = _db_open  # pylint: disable=protected-access


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class KeepAliveServerHandler(ServerHandler):
    """Answers in HTTP/1.1; asks to close the connection when the response's length is unknown."""

    http_version = "1.1"

    def cleanup_headers(self):
        super().cleanup_headers()
        if "Content-Length" not in self.headers:
            self.request_handler.close_connection = True
        if self.request_handler.close_connection:
            self.headers["Connection"] = "close"

    def write(self, data):
        # A response to HEAD has no body, whatever the application returns.
        super().write(b"" if self.environ["REQUEST_METHOD"] == "HEAD" else data)


class KeepAliveHandler(a2c.get_handler_cls()):
    """Serves requests on one connection until the client closes it or it idles for `timeout`."""

    protocol_version = "HTTP/1.1"
    timeout = 75
    wbufsize = -1  # each response leaves in one write, flushed after the request
    disable_nagle_algorithm = True
    handle = BaseHTTPRequestHandler.handle  # wsgiref's handle() serves one request only
    requests = 0

    def setup(self):
        super().setup()
        self.log_message("TLS connection accepted")

    def finish(self):
        self.log_message("connection closed after %d request(s)", self.requests)
        super().finish()

    def handle_expect_100(self):
        accepted = super().handle_expect_100()
        self.wfile.flush()  # the client waits for "100 Continue" before it sends the body
        return accepted

    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > 65536:
                self.requestline = self.request_version = self.command = ""
                self.send_error(414)
                return
            if not self.parse_request():
                return
            self.requests += 1
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self.send_error(400, "bad Content-Length")
                return
            if "Transfer-Encoding" in self.headers:
                self.send_error(411, "chunked request bodies are not supported")
                return
            # Read whole, so that the next request starts where this one ends.
            body = io.BytesIO(self.rfile.read(length))
            handler = KeepAliveServerHandler(body, self.wfile, sys.stderr, self.get_environ())
            handler.request_handler = self
            handler.run(self.server.get_app())
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        host, port = self.client_address[:2]
        sys.stderr.write(f"{host}:{port} - - [{self.log_date_time_string()}] {format % args}\n")


def app(environ, start_response):
    # acme2certifier builds its URLs from wsgi.url_scheme, which wsgiref leaves at "http".
    environ["wsgi.url_scheme"] = "https"
    environ["HTTPS"] = "on"
    return a2c.application(environ, start_response)


def main():
    port = int(os.environ["A2C_PORT"])
    # The database exists once a DBstore was made; WAL is a property of the file, set once.
    db = sqlite3.connect(wsgi_handler.DBstore(logger=a2c.LOGGER).db_name, timeout=60)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    server = make_server("127.0.0.1", port, app, server_class=ThreadingWSGIServer,
                         handler_class=KeepAliveHandler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.environ["A2C_TLS_CERT"], os.environ["A2C_TLS_KEY"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"acme2certifier on https://127.0.0.1:{port}/directory", flush=True)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
