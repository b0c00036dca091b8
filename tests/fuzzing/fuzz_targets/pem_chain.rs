//! A certificate download: the PEM chain parsed, each certificate described, and the chain
//! checked as `obtain` checks what the CA returned, against a key of our own and against the
//! leaf's own key (so the address, usage and signature checks are reached).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smime_acme::{certificate, pem};
use x509_parser::prelude::{FromDer, X509Certificate};

const EMAIL: &str = "alice@example.test";
/// A P-256 public key point that no input certificate carries.
const OUR_KEY: [u8; 65] = [4; 65];

fn describe(der: &[u8]) {
    if let Ok(info) = certificate::describe(der) {
        let _ = info.not_after_rfc3339();
        let _ = info.short_serial();
    }
}

fuzz_target!(|data: &[u8]| {
    // Some inputs are bare DER certificates.
    describe(data);

    let Ok(chain) = certificate::parse_pem_chain(data) else {
        return;
    };
    assert!(!chain.is_empty());
    // Written out again, the chain reads back the same.
    assert_eq!(
        certificate::parse_pem_chain(pem::chain(&chain).as_bytes()).as_ref(),
        Ok(&chain)
    );
    chain.iter().for_each(|der| describe(der));

    let _ = certificate::check(&chain, &OUR_KEY, EMAIL);
    let own_key = X509Certificate::from_der(&chain[0])
        .map(|(_, leaf)| leaf.public_key().subject_public_key.data.to_vec());
    if let Ok(key) = own_key {
        if let Ok(info) = certificate::check(&chain, &key, EMAIL) {
            assert_eq!(info.names.len(), 1);
            assert!(info.email_protection);
            assert_eq!(certificate::describe(&chain[0]), Ok(info));
        }
    }
});
