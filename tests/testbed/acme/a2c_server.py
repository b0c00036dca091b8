"""Serves acme2certifier's WSGI application over HTTPS on loopback, for the testbed.

Environment: ACME_SRV_CONFIGFILE (acme2certifier's config), A2C_PORT, A2C_TLS_CERT and
A2C_TLS_KEY (the server certificate and key), A2C_MAIL_CA (the root that the CA's own IMAP and
SMTP connections must trust).
"""
import os
import ssl
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

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


def app(environ, start_response):
    # acme2certifier builds its URLs from wsgi.url_scheme, which wsgiref leaves at "http".
    environ["wsgi.url_scheme"] = "https"
    environ["HTTPS"] = "on"
    return a2c.application(environ, start_response)


def main():
    port = int(os.environ["A2C_PORT"])
    server = make_server("127.0.0.1", port, app, server_class=ThreadingWSGIServer,
                         handler_class=a2c.get_handler_cls())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.environ["A2C_TLS_CERT"], os.environ["A2C_TLS_KEY"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"acme2certifier on https://127.0.0.1:{port}/directory", flush=True)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
