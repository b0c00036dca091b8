"""An autoconfig server for the tests: serves, over HTTPS with the testbed's server certificate,
the mail settings document Thunderbird reads (config-v1.1.xml), naming the testbed's IMAPS and
submissions ports on localhost. A mail provider publishes such a document at
https://autoconfig.<domain>/mail/config-v1.1.xml; the tests point smime-acme at this one with
--autoconfig-url. Each request's path is appended to the log file, one line each.

Run: python autoconfig.py TESTBED_ENV_FILE LOG_FILE; prints the port it listens on (127.0.0.1).
"""
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENV = dict(line.split("=", 1) for line in open(sys.argv[1]).read().splitlines() if line and not line.startswith("#"))
LOG = sys.argv[2]
LOCK = threading.Lock()
IMAPS_PORT = ENV["TESTBED_IMAPS"].rsplit(":", 1)[1]
SUBMISSIONS_PORT = ENV["TESTBED_SUBMISSIONS"].rsplit(":", 1)[1]

DOCUMENT = f"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="other.test">
    <domain>other.test</domain>
    <displayName>Other &amp; Co (testbed)</displayName>
    <incomingServer type="pop3">
      <hostname>localhost</hostname>
      <port>995</port>
      <socketType>SSL</socketType>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>localhost</hostname>
      <port>{IMAPS_PORT}</port>
      <socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username>
      <authentication>password-cleartext</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>localhost</hostname>
      <port>{SUBMISSIONS_PORT}</port>
      <socketType>SSL</socketType>
      <username>%EMAILLOCALPART%@%EMAILDOMAIN%</username>
      <authentication>password-cleartext</authentication>
    </outgoingServer>
  </emailProvider>
</clientConfig>
""".encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        with LOCK, open(LOG, "a") as log:
            log.write(self.path + "\n")
        if not self.path.split("?", 1)[0].endswith("/config-v1.1.xml"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(DOCUMENT)))
        self.end_headers()
        self.wfile.write(DOCUMENT)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ENV["TESTBED_TLS_CERT"], ENV["TESTBED_TLS_KEY"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


main()
