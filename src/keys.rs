//! Certificate keys and CSRs per RFC 8823 §3.3 and the S/MIME Baseline Requirements: the SAN is
//! exactly the address as an rfc822Name, the subject is empty, and the key usage follows the key
//! type and the intended use. Pure apart from drawing random numbers.

use rcgen::{CertificateParams, DistinguishedName, KeyPair, KeyUsagePurpose, SanType};

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

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509CertificationRequest};

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
}
