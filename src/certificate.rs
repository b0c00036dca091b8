//! Checking what the CA returned: a PEM chain of CERTIFICATE blocks only, whose leaf carries
//! our key, exactly our address, emailProtection, and chains through the returned
//! intermediates. Also the facts shown and used later (serial, validity, issuer, key type, the
//! RFC 9773 certificate identifier). Pure.

use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
use x509_parser::public_key::PublicKey;

/// Chains larger than this are refused.
const MAX_CERTS: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("the certificate download is not a PEM chain: {0}")]
    NotPem(String),
    #[error("the certificate does not parse: {0}")]
    Unparsable(String),
    #[error("the certificate is not for our key")]
    WrongKey,
    #[error("the certificate names {found:?}, not exactly {expected}")]
    WrongAddress {
        expected: String,
        found: Vec<String>,
    },
    #[error("the certificate is not for email protection (no emailProtection extended key usage)")]
    NoEmailProtection,
    #[error("certificate {0} of the chain is not signed by the next one")]
    BrokenChain(usize),
}

/// Facts about a certificate, for the user, the JSON output and the renewal decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Hex bytes joined by colons.
    pub serial: String,
    pub issuer: String,
    /// Unix times.
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the DER, upper-case hex joined by colons.
    pub sha256: String,
    /// `rsa3072`, `p256`, `ed25519`, ... (or the algorithm's OID when it is none of ours).
    pub key_type: String,
    /// The RFC 9773 certificate identifier; None without an authority key identifier.
    pub ari_id: Option<String>,
    /// The subject alternative names (rfc822Name as the bare address).
    pub names: Vec<String>,
    pub email_protection: bool,
}

impl CertInfo {
    pub fn not_after_rfc3339(&self) -> String {
        crate::clock::rfc3339(self.not_after)
    }

    /// The certificate folder name's serial part.
    pub fn short_serial(&self) -> String {
        self.serial.replace(':', "").chars().take(16).collect()
    }
}

fn hex(bytes: &[u8], upper: bool) -> String {
    bytes
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// The facts of one DER certificate.
pub fn describe(der: &[u8]) -> Result<CertInfo, CertError> {
    info(&parse(der)?, der)
}

fn info(cert: &X509Certificate<'_>, der: &[u8]) -> Result<CertInfo, CertError> {
    let mut names = Vec::new();
    let mut email_protection = false;
    let mut key_id = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                names.extend(san.general_names.iter().map(|n| match n {
                    GeneralName::RFC822Name(a) => (*a).to_owned(),
                    other => format!("{other}"),
                }));
            }
            ParsedExtension::ExtendedKeyUsage(eku) => email_protection = eku.email_protection,
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                key_id = aki.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            _ => {}
        }
    }
    let spki = cert.public_key();
    let key_type = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("rsa{}", rsa.key_size()),
        Ok(PublicKey::EC(point)) if point.data().len() == 65 => "p256".into(),
        Ok(PublicKey::EC(point)) if point.data().len() == 97 => "p384".into(),
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => "ed25519".into(),
        _ => spki.algorithm.algorithm.to_id_string(),
    };
    let sha256 = ring::digest::digest(&ring::digest::SHA256, der);
    Ok(CertInfo {
        serial: hex(cert.raw_serial(), false),
        issuer: cert.issuer().to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        sha256: hex(sha256.as_ref(), true),
        key_type,
        ari_id: key_id.map(|id| ari_id(&id, cert.raw_serial())),
        names,
        email_protection,
    })
}

/// RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial DER content octets).
pub fn ari_id(key_identifier: &[u8], serial: &[u8]) -> String {
    format!(
        "{}.{}",
        crate::acme::jws::b64u(key_identifier),
        crate::acme::jws::b64u(serial)
    )
}

/// The DER certificates of a PEM chain; anything but CERTIFICATE blocks is refused.
pub fn parse_pem_chain(pem: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    use rustls_pki_types::pem::{PemObject, SectionKind};
    let mut certs = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        match section.map_err(|e| CertError::NotPem(e.to_string()))? {
            (SectionKind::Certificate, der) => certs.push(der),
            (kind, _) => return Err(CertError::NotPem(format!("it holds a {kind:?} block"))),
        }
        if certs.len() > MAX_CERTS {
            return Err(CertError::NotPem(format!(
                "more than {MAX_CERTS} certificates"
            )));
        }
    }
    if certs.is_empty() {
        return Err(CertError::NotPem("no certificate".into()));
    }
    Ok(certs)
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| CertError::Unparsable(e.to_string()))
}

/// Checks the chain (leaf first) against our public key (the raw subjectPublicKey bits, as
/// `rcgen::PublicKeyData::der_bytes` gives them) and address.
pub fn check(chain: &[Vec<u8>], our_public_key: &[u8], email: &str) -> Result<CertInfo, CertError> {
    let certs = chain
        .iter()
        .map(|der| parse(der))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = certs
        .first()
        .ok_or_else(|| CertError::NotPem("no certificate".into()))?;
    if *leaf.public_key().subject_public_key.data != *our_public_key {
        return Err(CertError::WrongKey);
    }
    let facts = info(leaf, &chain[0])?;
    if facts.names.len() != 1 || !crate::challenge::mail::same_address(&facts.names[0], email) {
        return Err(CertError::WrongAddress {
            expected: email.to_owned(),
            found: facts.names,
        });
    }
    if !facts.email_protection {
        return Err(CertError::NoEmailProtection);
    }
    for (i, pair) in certs.windows(2).enumerate() {
        pair[0]
            .verify_signature(Some(pair[1].public_key()))
            .map_err(|_| CertError::BrokenChain(i))?;
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;

    #[test]
    fn only_certificate_blocks_are_accepted() {
        assert!(matches!(
            parse_pem_chain(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(CertError::NotPem(_))
        ));
        assert!(matches!(
            parse_pem_chain(b"hello"),
            Err(CertError::NotPem(_))
        ));
        assert!(matches!(
            parse_pem_chain(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
            Err(CertError::NotPem(_))
        ));
        let two = b"-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBAUG\n-----END CERTIFICATE-----\n";
        assert_eq!(
            parse_pem_chain(two).unwrap(),
            vec![vec![1, 2, 3], vec![4, 5, 6]]
        );
    }

    fn chain(email: &str, eku: bool) -> (Vec<Vec<u8>>, rcgen::KeyPair) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::default();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::default();
        leaf.subject_alt_names = vec![rcgen::SanType::Rfc822Name(email.try_into().unwrap())];
        if eku {
            leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::EmailProtection];
        }
        let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        (
            vec![leaf_cert.der().to_vec(), ca_cert.der().to_vec()],
            leaf_key,
        )
    }

    #[test]
    fn a_good_chain_passes_and_each_fault_is_named() {
        let (good, key) = chain("alice@example.test", true);
        let issued = check(&good, key.der_bytes(), "alice@example.test").unwrap();
        assert_eq!(issued.sha256.len(), 32 * 3 - 1);
        assert_eq!(
            check(&good, key.der_bytes(), "bob@example.test").unwrap_err(),
            CertError::WrongAddress {
                expected: "bob@example.test".into(),
                found: vec!["alice@example.test".into()]
            }
        );
        let other = rcgen::KeyPair::generate().unwrap();
        assert_eq!(
            check(&good, other.der_bytes(), "alice@example.test").unwrap_err(),
            CertError::WrongKey
        );
        let (no_eku, key2) = chain("alice@example.test", false);
        assert_eq!(
            check(&no_eku, key2.der_bytes(), "alice@example.test").unwrap_err(),
            CertError::NoEmailProtection
        );
        let (other_chain, _) = chain("alice@example.test", true);
        let mixed = vec![good[0].clone(), other_chain[1].clone()];
        assert_eq!(
            check(&mixed, key.der_bytes(), "alice@example.test").unwrap_err(),
            CertError::BrokenChain(0)
        );
    }

    #[test]
    fn rfc9773_certificate_identifier() {
        let key_id = [
            0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
            0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4,
        ];
        assert_eq!(
            ari_id(&key_id, &[0x00, 0x87, 0x65, 0x43, 0x21]),
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
        );
    }

    #[test]
    fn facts_of_a_certificate() {
        let (good, key) = chain("alice@example.test", true);
        let info = describe(&good[0]).unwrap();
        assert_eq!(info.key_type, "p256");
        assert_eq!(info.names, ["alice@example.test"]);
        assert!(info.not_after > info.not_before);
        assert_eq!(
            info.short_serial().len(),
            16.min(info.serial.replace(':', "").len())
        );
        assert_eq!(
            check(&good, key.der_bytes(), "alice@example.test").unwrap(),
            info
        );
        for (alg, want) in [
            (&rcgen::PKCS_ED25519, "ed25519"),
            (&rcgen::PKCS_ECDSA_P384_SHA384, "p384"),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::default()
                .self_signed(&key)
                .unwrap();
            assert_eq!(describe(cert.der()).unwrap().key_type, want);
        }
    }
}
