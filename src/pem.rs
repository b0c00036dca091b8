//! PEM text (RFC 7468) for the files other software reads: a private key as a PKCS#8 PRIVATE
//! KEY block, certificates as CERTIFICATE blocks, and the DER back out of a PEM key (read with
//! rustls-pki-types, as is a PEM certificate chain in `certificate::parse_pem_chain`). Pure: no
//! file or network IO.

use base64::Engine as _;

use crate::keys;

/// The certificates as PEM CERTIFICATE blocks, in the given order.
pub fn chain(chain: &[Vec<u8>]) -> String {
    chain.iter().map(|der| block("CERTIFICATE", der)).collect()
}

/// A PKCS#8 key as a PEM PRIVATE KEY block. An Ed25519 key in ring's PKCS#8 v2 form is written
/// in the v1 form (same private key), which OpenSSL 3.0 and GnuTLS 3.7 can read (see
/// [`keys::portable_pkcs8`]).
pub fn private_key(pkcs8: &[u8]) -> String {
    block("PRIVATE KEY", &keys::portable_pkcs8(pkcs8))
}

/// The PKCS#8 DER inside a PEM PRIVATE KEY block (the inverse of [`private_key`]).
pub fn private_key_der(pem: &[u8]) -> Option<Vec<u8>> {
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject;
    PrivatePkcs8KeyDer::from_pem_slice(pem)
        .ok()
        .map(|key| key.secret_pkcs8_der().to_vec())
}

/// `der` as one PEM block labelled `label`, in 64-column base64 lines.
pub fn block(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // Base64 is ASCII, so splitting the bytes splits at character boundaries.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TempDir, fixtures, leaf_public_key_pem, p, run, text};
    use std::ffi::OsStr;

    #[test]
    fn openssl_reads_the_pem_files() {
        for f in fixtures() {
            let dir = TempDir::new();
            let key = dir.file("key.pem", private_key(&f.key).as_bytes());
            let public = run(
                "openssl",
                &[
                    OsStr::new("pkey"),
                    OsStr::new("-in"),
                    p(&key),
                    OsStr::new("-pubout"),
                ],
            );
            assert!(public.status.success(), "{}: {}", f.key_type, text(&public));
            assert_eq!(
                String::from_utf8_lossy(&public.stdout),
                leaf_public_key_pem(&f.chain[0]),
                "{}",
                f.key_type
            );
            let chain = dir.file("chain.pem", chain(&f.chain).as_bytes());
            let subjects = run(
                "openssl",
                &[
                    OsStr::new("storeutl"),
                    OsStr::new("-noout"),
                    OsStr::new("-certs"),
                    p(&chain),
                ],
            );
            assert!(subjects.status.success(), "{}", text(&subjects));
            assert!(
                text(&subjects).contains("Total found: 2"),
                "{}",
                text(&subjects)
            );
        }
    }

    #[test]
    fn pem_blocks_have_64_column_lines_and_round_trip() {
        let f = &fixtures()[0];
        let pem = chain(&f.chain);
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----\n").count(), 2);
        assert_eq!(pem.matches("-----END CERTIFICATE-----\n").count(), 2);
        let mut decoded = Vec::new();
        let mut current = String::new();
        for line in pem.lines() {
            assert!(line.len() <= 64, "{line}");
            if line.starts_with("-----END") {
                decoded.push(
                    base64::engine::general_purpose::STANDARD
                        .decode(&current)
                        .unwrap(),
                );
                current.clear();
            } else if !line.starts_with("-----") {
                current.push_str(line);
            }
        }
        assert_eq!(decoded, f.chain);
        let key = private_key(&f.key);
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(key.ends_with("-----END PRIVATE KEY-----\n"));
        assert!(key.lines().all(|l| l.len() <= 64));
    }
}
