//! Certificate keys and CSRs per RFC 8823 §3.3 and the S/MIME Baseline Requirements: the SAN is
//! exactly the address as an rfc822Name, the subject is empty, and the key usage follows the key
//! type and the intended use. Also whether a key belongs to a certificate, and the PKCS#8 form
//! written for other software. Pure apart from drawing random numbers.

use std::borrow::Cow;

use rcgen::{
    CertificateParams, DistinguishedName, KeyPair, KeyUsagePurpose, PublicKeyData as _, SanType,
};
use x509_parser::asn1_rs::{Any, Class, FromDer as _, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::x509::SubjectPublicKeyInfo;

/// The kinds of certificate key smime-acme makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyType {
    Rsa2048,
    #[default]
    Rsa3072,
    Rsa4096,
    P256,
    P384,
    Ed25519,
}

named_values!(KeyType, "key type", {
    Rsa2048 => "rsa2048",
    Rsa3072 => "rsa3072",
    Rsa4096 => "rsa4096",
    P256 => "p256",
    P384 => "p384",
    Ed25519 => "ed25519",
});

impl KeyType {
    fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyType::Rsa2048 => Some(2048),
            KeyType::Rsa3072 => Some(3072),
            KeyType::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    fn algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
            KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// What the certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Usage {
    /// Signing and encryption.
    #[default]
    Both,
    /// Signing only.
    Sign,
    /// Encryption only.
    Encrypt,
}

named_values!(Usage, "usage", {
    Both => "both",
    Sign => "sign",
    Encrypt => "encrypt",
});

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "ed25519 keys can only sign: use --usage sign, or an RSA or EC key type for encryption"
    )]
    Ed25519SigningOnly,
    #[error("{0:?} cannot go into a certificate request as an email address")]
    BadAddress(String),
    #[error("key generation failed: {0}")]
    Generation(String),
    #[error("the key is not a valid {0} PKCS#8 key")]
    BadKey(KeyType),
    #[error("building the certificate request failed: {0}")]
    Csr(String),
    #[error("the private key is not a PKCS#8 RSA, P-256, P-384 or Ed25519 key")]
    UnreadableKey,
    #[error("the certificate is not a valid DER X.509 certificate")]
    BadCertificate,
}

/// The key usage bits for a key type and use (S/MIME BR §7.1.2.3(e)).
pub fn key_usages(key_type: KeyType, usage: Usage) -> Result<Vec<KeyUsagePurpose>, KeyError> {
    use KeyUsagePurpose::{DigitalSignature, KeyAgreement, KeyEncipherment};
    let encipher = match key_type {
        KeyType::Ed25519 if usage != Usage::Sign => return Err(KeyError::Ed25519SigningOnly),
        KeyType::Ed25519 => DigitalSignature,
        KeyType::P256 | KeyType::P384 => KeyAgreement,
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => KeyEncipherment,
    };
    Ok(match usage {
        Usage::Sign => vec![DigitalSignature],
        Usage::Encrypt => vec![encipher],
        Usage::Both => vec![DigitalSignature, encipher],
    })
}

/// A new private key of `key_type`, as PKCS#8 DER.
pub fn generate(key_type: KeyType) -> Result<Vec<u8>, KeyError> {
    if let Some(bits) = key_type.rsa_bits() {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
            .map_err(|e| KeyError::Generation(e.to_string()))?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| KeyError::Generation(e.to_string()))?;
        return Ok(der.as_bytes().to_vec());
    }
    let pair = KeyPair::generate_for(key_type.algorithm())
        .map_err(|e| KeyError::Generation(e.to_string()))?;
    Ok(pair.serialize_der())
}

/// Loads a PKCS#8 DER key of `key_type`.
pub fn load(key_type: KeyType, pkcs8: &[u8]) -> Result<KeyPair, KeyError> {
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8);
    KeyPair::from_pkcs8_der_and_sign_algo(&der, key_type.algorithm())
        .map_err(|_| KeyError::BadKey(key_type))
}

/// The DER CSR for `email`: empty subject, SAN = the rfc822Name only, key usage per
/// [`key_usages`], signed with `key`.
pub fn csr(
    email: &str,
    key_type: KeyType,
    usage: Usage,
    key: &KeyPair,
) -> Result<Vec<u8>, KeyError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let name = email
        .try_into()
        .map_err(|_| KeyError::BadAddress(email.to_owned()))?;
    params.subject_alt_names = vec![SanType::Rfc822Name(name)];
    params.key_usages = key_usages(key_type, usage)?;
    let request = params
        .serialize_request(key)
        .map_err(|e| KeyError::Csr(e.to_string()))?;
    Ok(request.der().to_vec())
}

/// Whether `cert_der`'s public key is the public half of `key_pkcs8`.
pub fn key_matches_certificate(key_pkcs8: &[u8], cert_der: &[u8]) -> Result<bool, KeyError> {
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|_| KeyError::BadCertificate)?;
    key_matches_spki(key_pkcs8, cert.public_key())
}

/// Whether `cert_spki` (a certificate's subjectPublicKeyInfo) is the public half of
/// `key_pkcs8`: the same algorithm, the same curve for an EC key, the same public key.
pub fn key_matches_spki(
    key_pkcs8: &[u8],
    cert_spki: &SubjectPublicKeyInfo,
) -> Result<bool, KeyError> {
    let pair = KeyPair::try_from(key_pkcs8).map_err(|_| KeyError::UnreadableKey)?;
    let key_spki_der = pair.subject_public_key_info();
    let (_, key_spki) =
        SubjectPublicKeyInfo::from_der(&key_spki_der).map_err(|_| KeyError::UnreadableKey)?;
    let same_algorithm = key_spki.algorithm.algorithm == cert_spki.algorithm.algorithm;
    // The curve of an EC key is in the parameters; RSA's are NULL (or absent), Ed25519 has none.
    let same_parameters = key_spki.algorithm.algorithm
        != x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        || key_spki.algorithm.parameters.as_ref().map(Any::as_bytes)
            == cert_spki.algorithm.parameters.as_ref().map(Any::as_bytes);
    Ok(same_algorithm
        && same_parameters
        && key_spki.subject_public_key.data == cert_spki.subject_public_key.data)
}

/// The PKCS#8 for files other software reads. ring (and so rcgen and [`generate`]) writes
/// Ed25519 keys as PKCS#8 v2 (RFC 5958: version 1, the public key in `[1]`), which OpenSSL 3.0
/// and GnuTLS 3.7 refuse to parse; such a key becomes the RFC 8410 v1 form (version 0, the same
/// private key, no public key). Everything else is returned unchanged.
pub fn portable_pkcs8(pkcs8: &[u8]) -> Cow<'_, [u8]> {
    const OID_ED25519: &str = "1.3.101.112";
    // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }
    const ED25519_V1_PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let v1 = || -> Option<Vec<u8>> {
        let (rest, outer) = Any::from_der(pkcs8).ok()?;
        let fields = sequence(&outer)?;
        let [version, algorithm, key, ..] = fields.as_slice() else {
            return None;
        };
        let algorithm = sequence(algorithm)?;
        let [oid] = algorithm.as_slice() else {
            return None;
        };
        let seed = octets(key)?.strip_prefix(&[0x04, 0x20])?;
        let is_v2_ed25519 = rest.is_empty()
            && version.as_u64().ok()? == 1
            && oid.as_oid().ok()?.to_id_string() == OID_ED25519
            && seed.len() == 32;
        is_v2_ed25519.then(|| [&ED25519_V1_PREFIX[..], seed].concat())
    };
    v1().map_or(Cow::Borrowed(pkcs8), Cow::Owned)
}

/// The DER elements inside the SEQUENCE `any`.
fn sequence<'a>(any: &Any<'a>) -> Option<Vec<Any<'a>>> {
    if any.class() != Class::Universal || any.tag() != Tag::Sequence {
        return None;
    }
    let mut rest = any.data;
    let mut elements = Vec::new();
    while !rest.is_empty() {
        let (next, element) = Any::from_der(rest).ok()?;
        elements.push(element);
        rest = next;
    }
    Some(elements)
}

/// The contents of the OCTET STRING `any`.
fn octets<'a>(any: &Any<'a>) -> Option<&'a [u8]> {
    (any.class() == Class::Universal && any.tag() == Tag::OctetString).then_some(any.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, fixtures};
    use x509_parser::prelude::{GeneralName, ParsedExtension, X509CertificationRequest};

    /// (digitalSignature, keyEncipherment, keyAgreement, any other bit)
    type Bits = (bool, bool, bool, bool);

    fn inspect(der: &[u8]) -> (Vec<String>, Bits) {
        let (rest, req) = X509CertificationRequest::from_der(der).expect("a DER CSR");
        assert!(rest.is_empty());
        req.verify_signature()
            .expect("the CSR's self-signature verifies");
        assert_eq!(
            req.certification_request_info.subject.iter().count(),
            0,
            "subject is empty"
        );
        let mut sans = Vec::new();
        let mut bits = None;
        for ext in req.requested_extensions().expect("an extension request") {
            match ext {
                ParsedExtension::SubjectAlternativeName(san) => {
                    sans.extend(san.general_names.iter().map(|n| match n {
                        GeneralName::RFC822Name(a) => format!("email:{a}"),
                        other => format!("other:{other:?}"),
                    }));
                }
                ParsedExtension::KeyUsage(ku) => {
                    let others = ku.non_repudiation()
                        || ku.data_encipherment()
                        || ku.key_cert_sign()
                        || ku.crl_sign()
                        || ku.encipher_only()
                        || ku.decipher_only();
                    bits = Some((
                        ku.digital_signature(),
                        ku.key_encipherment(),
                        ku.key_agreement(),
                        others,
                    ));
                }
                _ => {}
            }
        }
        (sans, bits.expect("a keyUsage request"))
    }

    #[test]
    fn csr_contents_per_key_type_and_usage() {
        let cases: [(KeyType, Usage, Bits); 7] = [
            (KeyType::Rsa2048, Usage::Both, (true, true, false, false)),
            (KeyType::Rsa2048, Usage::Sign, (true, false, false, false)),
            (
                KeyType::Rsa2048,
                Usage::Encrypt,
                (false, true, false, false),
            ),
            (KeyType::P256, Usage::Both, (true, false, true, false)),
            (KeyType::P384, Usage::Encrypt, (false, false, true, false)),
            (KeyType::P256, Usage::Sign, (true, false, false, false)),
            (KeyType::Ed25519, Usage::Sign, (true, false, false, false)),
        ];
        for (key_type, usage, expected) in cases {
            let key = load(key_type, &generate(key_type).unwrap()).unwrap();
            let der = csr("alice@example.test", key_type, usage, &key).unwrap();
            let (sans, bits) = inspect(&der);
            assert_eq!(sans, ["email:alice@example.test"], "{key_type} {usage}");
            assert_eq!(bits, expected, "{key_type} {usage}");
        }
    }

    #[test]
    fn ed25519_cannot_encrypt() {
        for usage in [Usage::Both, Usage::Encrypt] {
            assert!(matches!(
                key_usages(KeyType::Ed25519, usage),
                Err(KeyError::Ed25519SigningOnly)
            ));
        }
    }

    #[test]
    fn names_round_trip_and_bad_input_is_refused() {
        for key_type in KeyType::ALL {
            assert_eq!(key_type.name().parse(), Ok(key_type));
        }
        assert!("rsa1024".parse::<KeyType>().is_err());
        assert_eq!(
            "rsa1024".parse::<KeyType>(),
            Err("unknown key type \"rsa1024\": expected rsa2048, rsa3072, rsa4096, p256, p384 or ed25519".into())
        );
        assert_eq!("encrypt".parse(), Ok(Usage::Encrypt));
        assert!(matches!(
            load(KeyType::P256, b"not a key"),
            Err(KeyError::BadKey(KeyType::P256))
        ));
        let key = load(KeyType::P256, &generate(KeyType::P256).unwrap()).unwrap();
        assert!(matches!(
            csr("bad\u{e9}@example.test", KeyType::P256, Usage::Both, &key),
            Err(KeyError::BadAddress(_))
        ));
    }

    #[test]
    fn a_key_matches_only_its_own_certificate() {
        let [rsa, p256, ed25519] = fixtures() else {
            panic!("three fixtures")
        };
        let other_p256 = generate(KeyType::P256).unwrap();
        let pairs: [(&[u8], &Fixture); 4] = [
            (&other_p256, p256),
            (&rsa.key, p256),
            (&p256.key, ed25519),
            (&ed25519.key, rsa),
        ];
        for (key, f) in pairs {
            assert!(
                !key_matches_certificate(key, &f.chain[0]).unwrap(),
                "{}",
                f.key_type
            );
        }
        for f in fixtures() {
            assert!(
                key_matches_certificate(&f.key, &f.chain[0]).unwrap(),
                "{}",
                f.key_type
            );
            // The intermediate certifies a different key.
            assert!(!key_matches_certificate(&f.key, &f.chain[1]).unwrap());
        }
        assert!(matches!(
            key_matches_certificate(b"junk", &p256.chain[0]),
            Err(KeyError::UnreadableKey)
        ));
        assert!(matches!(
            key_matches_certificate(&p256.key, b"junk"),
            Err(KeyError::BadCertificate)
        ));
    }

    #[test]
    fn ed25519_keys_are_written_as_pkcs8_v1() {
        let f = &fixtures()[2];
        assert_eq!(f.key_type, KeyType::Ed25519);
        let v1 = portable_pkcs8(&f.key);
        assert_eq!(v1.len(), 48);
        assert_eq!(&v1[..5], &[0x30, 0x2e, 0x02, 0x01, 0x00]);
        assert!(key_matches_certificate(&v1, &f.chain[0]).unwrap());
        // Other keys pass unchanged.
        assert_eq!(
            portable_pkcs8(&fixtures()[1].key),
            fixtures()[1].key.as_slice()
        );
    }
}
