"""acme2certifier's openssl CA handler, issuing S/MIME certificates for the testbed.

The stock handler takes extensions from a fixed profile and copies only the CSR's subject
alternative names. This one also copies the key usage the CSR asks for (S/MIME clients choose
it from the key type and the intended use); without one in the CSR it uses the S/MIME Baseline
Requirements' choice for the key type: RSA digitalSignature + keyEncipherment, EC
digitalSignature + keyAgreement, Ed25519 digitalSignature. Everything else (emailProtection,
key identifiers, CA:FALSE) comes from the profile named by `openssl_conf`.
"""
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from acme2certifier.cahandlers.openssl_ca_handler import CAhandler as OpensslCAhandler


def _usage(digital_signature=True, key_encipherment=False, key_agreement=False):
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False,
        key_encipherment=key_encipherment, data_encipherment=False,
        key_agreement=key_agreement, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False)


def _default_usage(public_key):
    if isinstance(public_key, rsa.RSAPublicKey):
        return _usage(key_encipherment=True)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _usage(key_agreement=True)
    return _usage()


class CAhandler(OpensslCAhandler):
    """openssl_ca_handler with the key usage taken from the CSR."""

    def _cert_extension_apply(self, builder, ca_cert, req):
        builder = super()._cert_extension_apply(builder, ca_cert, req)
        if req is None:
            return builder
        try:
            usage = req.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = _default_usage(req.public_key())
        return builder.add_extension(usage, critical=True)
