"""A fault-injecting ACME CA for the tests: it sends the RFC 8823 challenge mail only when the
client POSTs the challenge, as some CAs do. acme2certifier, the testbed's real CA, sends the mail
when the authorization is fetched and cannot be made to wait, and joins the token parts as
strings with a token-part1 both joins agree on, so this stand-in exists to test the other timing
and the other join. It is not a CA to learn from: it checks no JWS signature and implements only
what `smime-acme` uses. Everything around it is real: the mail goes out through the testbed's
submission server as acme@ca.test (so it is DKIM-signed and Auto-Submitted), the reply is read
from acme@ca.test over IMAPS, and the certificate is signed by the testbed's issuing CA.

Every order has its own URLs (/order/N, /authz/N, /challenge/N, /finalize/N, /cert/N). A reply
whose digest is wrong makes the challenge invalid with an incorrectResponse error, and the
authorization and the order invalid, as a CA does.

Control (GET): /refuse-replaces (orders naming a certificate they replace are refused),
/renewal-due (the renewal window has passed), /byte-join (from now on token-part1 is 16 random
octets, 22 characters, and the parts are joined as octets, as CASTLE does). Seen (GET): /orders
(one object per order: its number, the join, when the authorization was first fetched and the
challenge first POSTed, and how its reply was judged), /revoked, /stats.

Run: python mail_on_post_ca.py TESTBED_ENV_FILE; prints the port it listens on (127.0.0.1).
"""
import base64
import datetime
import email
import hashlib
import imaplib
import json
import os
import secrets
import smtplib
import ssl
import sys
import threading
import time
from email.utils import formatdate, make_msgid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID

ENV = dict(line.split("=", 1) for line in open(sys.argv[1]).read().splitlines() if line and not line.startswith("#"))
PKI = os.path.join(ENV["TESTBED_STATE"], "pki")
CA_MAILBOX = ENV["TESTBED_CA_MAILBOX"]
CA_PASSWORD = open(os.path.join(ENV["TESTBED_PASSWORDS"], CA_MAILBOX + ".password")).read().strip()
TLS = ssl.create_default_context(cafile=ENV["SMIME_ACME_CA_BUNDLE"])
STATE = {"refuse_replaces": False, "byte_join": False}
ORDERS = []  # what was seen of each order, in order; ORDERS[n - 1] is order n's
OBJECTS = {}  # order number -> its state
REVOKED = []
ISSUED = {}  # RFC 9773 certificate identifier -> serial (hex)
LOCK = threading.Lock()


def b64u(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64u_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def thumbprint(jwk):
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y") if k in jwk}
    return b64u(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())


def send_challenge(address, token1):
    host, port = ENV["TESTBED_SUBMISSIONS"].rsplit(":", 1)
    message = (f"From: {CA_MAILBOX}\r\nTo: {address}\r\nSubject: ACME: {token1}\r\n"
               f"Date: {formatdate()}\r\nMessage-ID: {make_msgid(domain='ca.test')}\r\n"
               "Content-Type: text/plain; charset=us-ascii\r\n\r\nAn ACME challenge, sent on POST.\r\n")
    with smtplib.SMTP_SSL(host, int(port), context=TLS) as smtp:
        smtp.login(CA_MAILBOX, CA_PASSWORD)
        smtp.sendmail(CA_MAILBOX, [address], message.encode())


def joined(token1, token2, join):
    if join == "bytes":
        return b64u(b64u_decode(token1) + b64u_decode(token2))
    return f"{token1}{token2}"


def judged(obj, good):
    """Records the verdict on a reply: valid, or invalid with incorrectResponse (the caller holds
    LOCK)."""
    obj["status"] = "valid" if good else "invalid"
    obj["log"]["result"] = obj["status"]
    if not good:
        obj["error"] = {"type": "urn:ietf:params:acme:error:incorrectResponse",
                        "detail": "the response digest does not match the key authorization"}
        obj["order"] = "invalid"


def validate(obj, token1, token2, thumb, join):
    """Polls the CA mailbox for the reply and checks its digest."""
    expected = b64u(hashlib.sha256(f"{joined(token1, token2, join)}.{thumb}".encode()).digest())
    host, port = ENV["TESTBED_IMAPS"].rsplit(":", 1)
    deadline = time.time() + 90
    while time.time() < deadline:
        imap = imaplib.IMAP4_SSL(host, int(port), ssl_context=TLS)
        imap.login(CA_MAILBOX, CA_PASSWORD)
        imap.select("INBOX", readonly=True)
        _, data = imap.search(None, "SUBJECT", f'"ACME: {token1}"')
        for num in data[0].split():
            _, parts = imap.fetch(num, "(BODY.PEEK[])")
            reply = email.message_from_bytes(parts[0][1])
            if not str(reply["Subject"]).startswith("Re: "):
                continue
            body = reply.get_payload(decode=True).decode()
            block = body.split("-----BEGIN ACME RESPONSE-----")[1].split("-----END ACME RESPONSE-----")[0]
            with LOCK:
                judged(obj, "".join(block.split()) == expected)
            imap.logout()
            return
        imap.logout()
        time.sleep(0.3)
    with LOCK:
        judged(obj, False)


def public_key_of(jwk):
    """The public key of a JWK, and how to verify a JWS signature with it."""
    if jwk["kty"] == "RSA":
        key = rsa.RSAPublicNumbers(int.from_bytes(b64u_decode(jwk["e"]), "big"),
                                   int.from_bytes(b64u_decode(jwk["n"]), "big")).public_key()
        return key, lambda sig, data: key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    if jwk["kty"] == "EC":
        curve, digest = {"P-256": (ec.SECP256R1(), hashes.SHA256()), "P-384": (ec.SECP384R1(), hashes.SHA384())}[jwk["crv"]]
        key = ec.EllipticCurvePublicNumbers(int.from_bytes(b64u_decode(jwk["x"]), "big"),
                                            int.from_bytes(b64u_decode(jwk["y"]), "big"), curve).public_key()

        def verify(sig, data):
            half = len(sig) // 2
            der = encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))
            key.verify(der, data, ec.ECDSA(digest))
        return key, verify
    key = ed25519.Ed25519PublicKey.from_public_bytes(b64u_decode(jwk["x"]))
    return key, key.verify


def cert_id(cert):
    """RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial's DER content octets)."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    serial = cert.serial_number
    octets = serial.to_bytes(serial.bit_length() // 8 + 1, "big")  # a leading 0 when the top bit is set
    return f"{b64u(aki)}.{b64u(octets)}"


def spki(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def issue(csr_der):
    csr = x509.load_der_x509_csr(csr_der)
    issuer_cert = x509.load_pem_x509_certificate(open(os.path.join(PKI, "issuing.crt"), "rb").read())
    issuer_key = serialization.load_pem_private_key(open(os.path.join(PKI, "issuing.key"), "rb").read(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(issuer_cert.subject)
               .public_key(csr.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False))
    for ext in csr.extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    leaf = builder.sign(issuer_key, hashes.SHA256())
    ISSUED[cert_id(leaf)] = format(leaf.serial_number, "x")
    return leaf.public_bytes(serialization.Encoding.PEM) + issuer_cert.public_bytes(serialization.Encoding.PEM)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def base(self):
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, code, body=None, location=None, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
        self.send_response(code)
        self.send_header("Replay-Nonce", secrets.token_urlsafe(16))
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        b = self.base()
        with LOCK:
            if self.path == "/orders":
                return self.answer(200, ORDERS)
            if self.path == "/revoked":
                return self.answer(200, REVOKED)
            if self.path == "/stats":
                return self.answer(200, {"directory": STATE.get("directory_gets", 0)})
            if self.path in ("/refuse-replaces", "/renewal-due", "/byte-join"):
                STATE[self.path[1:].replace("-", "_")] = True
                return self.answer(200, {})
            if self.path.startswith("/renewal-info/"):
                now = datetime.datetime.now(datetime.timezone.utc)
                days = (-2, -1) if STATE.get("renewal_due") else (20, 25)
                window = {key: (now + datetime.timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ")
                          for key, d in zip(("start", "end"), days)}
                return self.answer(200, {"suggestedWindow": window})
            STATE["directory_gets"] = STATE.get("directory_gets", 0) + 1
        self.answer(200, {"newNonce": f"{b}/nonce", "newAccount": f"{b}/account", "newOrder": f"{b}/order",
                          "revokeCert": f"{b}/revoke", "keyChange": f"{b}/key-change",
                          "renewalInfo": f"{b}/renewal-info"})

    def do_HEAD(self):
        self.answer(200, b"")

    def order(self, n):
        b = self.base()
        obj = OBJECTS[n]
        body = {"status": obj["order"], "identifiers": [{"type": "email", "value": obj["email"]}],
                "authorizations": [f"{b}/authz/{n}"], "finalize": f"{b}/finalize/{n}"}
        if obj["order"] == "valid":
            body["certificate"] = f"{b}/cert/{n}"
        return body

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        protected = json.loads(b64u_decode(request["protected"]))
        payload = json.loads(b64u_decode(request["payload"])) if request["payload"] else None
        b = self.base()
        with LOCK:
            if self.path == "/account":
                STATE["thumb"] = thumbprint(protected["jwk"])
                return self.answer(201, {"status": "valid"}, location=f"{b}/account/1")
            if self.path == "/order":
                join = "bytes" if STATE["byte_join"] else "string"
                log = {"n": len(ORDERS) + 1, "replaces": payload.get("replaces"),
                       "replaces_serial": ISSUED.get(payload.get("replaces")), "join": join,
                       "authz_fetched_at": None, "posted_at": None, "result": None}
                ORDERS.append(log)
                if STATE["refuse_replaces"] and "replaces" in payload:
                    log["result"] = "refused"
                    return self.answer(409, {"type": "urn:ietf:params:acme:error:alreadyReplaced",
                                             "detail": "this certificate was already replaced"})
                n = log["n"]
                # 16 octets (22 characters) when joined as octets: the two joins then disagree.
                OBJECTS[n] = {"email": payload["identifiers"][0]["value"], "order": "pending", "status": "pending",
                              "token1": b64u(secrets.token_bytes(16 if join == "bytes" else 24)),
                              "token2": b64u(secrets.token_bytes(16)), "join": join, "mailed": False,
                              "error": None, "log": log}
                return self.answer(201, self.order(n), location=f"{b}/order/{n}")
            kind, _, number = self.path.strip("/").partition("/")
            obj = OBJECTS.get(int(number)) if number.isdigit() else None
            if obj is None:
                if self.path == "/revoke":
                    return self.revoke(request, protected, payload)
                return self.answer(404, {"type": "urn:ietf:params:acme:error:malformed", "detail": f"no {self.path}"})
            n = int(number)
            if kind == "order":
                if obj["order"] == "pending" and obj["status"] == "valid":
                    obj["order"] = "ready"
                return self.answer(200, self.order(n))
            challenge = {"type": "email-reply-00", "url": f"{b}/challenge/{n}", "token": obj["token2"],
                         "from": CA_MAILBOX, "status": obj["status"]}
            if obj["error"]:
                challenge["error"] = obj["error"]
            if kind == "authz":
                if obj["log"]["authz_fetched_at"] is None:
                    obj["log"]["authz_fetched_at"] = time.time()
                return self.answer(200, {"status": obj["status"], "identifier": {"type": "email", "value": obj["email"]},
                                         "challenges": [challenge]})
            if kind == "challenge":
                if not obj["mailed"]:
                    obj["mailed"] = True
                    obj["log"]["posted_at"] = time.time()
                    obj["status"] = challenge["status"] = "processing"
                    send_challenge(obj["email"], obj["token1"])
                    threading.Thread(target=validate, args=(obj, obj["token1"], obj["token2"], STATE["thumb"], obj["join"]),
                                     daemon=True).start()
                return self.answer(200, challenge)
            if kind == "finalize":
                if obj["status"] != "valid":
                    return self.answer(403, {"type": "urn:ietf:params:acme:error:orderNotReady", "detail": "not validated"})
                obj["chain"] = issue(b64u_decode(payload["csr"]))
                obj["order"] = "valid"
                return self.answer(200, self.order(n))
            if kind == "cert" and "chain" in obj:
                return self.answer(200, obj["chain"], ctype="application/pem-certificate-chain")
        self.answer(404, {"type": "urn:ietf:params:acme:error:malformed", "detail": f"no {self.path}"})

    def revoke(self, request, protected, payload):
        cert = x509.load_der_x509_certificate(b64u_decode(payload["certificate"]))
        if "jwk" in protected:
            key, verify = public_key_of(protected["jwk"])
            try:
                verify(b64u_decode(request["signature"]), f"{request['protected']}.{request['payload']}".encode())
            except Exception:
                return self.answer(400, {"type": "urn:ietf:params:acme:error:badSignatureAlgorithm", "detail": "bad signature"})
            if spki(key) != spki(cert.public_key()):
                return self.answer(403, {"type": "urn:ietf:params:acme:error:unauthorized",
                                         "detail": "the key is not the certificate's"})
        serial = format(cert.serial_number, "x")
        if serial in REVOKED:
            return self.answer(400, {"type": "urn:ietf:params:acme:error:alreadyRevoked", "detail": "already revoked"})
        REVOKED.append(serial)
        return self.answer(200, b"")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(os.path.join(PKI, "server.crt"), os.path.join(PKI, "server.key"))
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
