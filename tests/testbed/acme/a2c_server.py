"""Serves acme2certifier's WSGI application over HTTPS on loopback, for the testbed.

HTTP/1.1 with keep-alive, as a CA's web server does: a connection stays open for further requests
while each response's end is known (Content-Length). Every accepted TLS connection is logged to
stderr ("... TLS connection accepted"), next to one line per request, each with the client's port.

Environment: ACME_SRV_CONFIGFILE (acme2certifier's config), A2C_PORT, A2C_TLS_CERT and
A2C_TLS_KEY (the server certificate and key), A2C_MAIL_CA (the root that the CA's own IMAP and
SMTP connections must trust).
"""
import io
import os
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
