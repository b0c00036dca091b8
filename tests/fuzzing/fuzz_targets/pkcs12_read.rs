//! Re-reading a PKCS#12 bundle: its envelope and MAC, the key and the certificates, checked
//! against the leaf it should hold. The committed seeds are bundles of
//! `fixtures/chain.pem`'s leaf made by `openssl pkcs12 -export` with the password below.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use smime_acme::{bundle, certificate, keys, pem};

const PASSWORD: &str = "fuzzing";

static LEAF: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let chain = certificate::parse_pem_chain(include_bytes!("../fixtures/chain.pem"))
        .expect("fixtures/chain.pem is a PEM chain");
    chain[0].clone()
});

fuzz_target!(|data: &[u8]| {
    match bundle::check_pkcs12(data, PASSWORD, &LEAF) {
        Ok(summary) => {
            assert!(!summary.local_key_id.is_empty());
            assert!(summary.certificates >= 1);
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    // The input as a private key, in PEM and PKCS#8 forms.
    let _ = pem::private_key_der(data);
    let _ = keys::key_matches_certificate(data, &LEAF);
    let text = pem::private_key(data);
    assert!(pem::private_key_der(text.as_bytes()).is_some());
});
