//! Test support shared by the unit tests of `keys`, `pem`, `secrets` and `bundle`: keys with
//! their certificate chains made with rcgen, throwaway directories, and running the tools the
//! written files are checked with (OpenSSL, NSS, GnuTLS). Compiled for unit tests only; writes
//! under the system temp dir and runs those tools.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use ring::rand::{SecureRandom as _, SystemRandom};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use crate::keys::{self, KeyType};
use crate::pem;

/// The address of every fixture's leaf.
pub const EMAIL: &str = "alice@example.test";
/// The common name of the fixtures' issuing CA.
pub const INTERMEDIATE_CN: &str = "Example Test Intermediate CA";
/// The key type of each of [`fixtures`], in order.
pub const KEY_TYPES: [KeyType; 3] = [KeyType::Rsa2048, KeyType::P256, KeyType::Ed25519];

/// A leaf key and its chain (leaf, intermediate); the root stays out of the bundle.
#[derive(Debug)]
pub struct Fixture {
    pub key_type: KeyType,
    /// PKCS#8 DER, as [`keys::generate`] makes it.
    pub key: Vec<u8>,
    pub chain: Vec<Vec<u8>>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn make_fixture(key_type: KeyType) -> Fixture {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let root = Issuer::new(ca_params("Example Test Root CA"), root_key);
    let intermediate_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let intermediate_params = ca_params(INTERMEDIATE_CN);
    let intermediate_der = intermediate_params
        .signed_by(&intermediate_key, &root)
        .unwrap()
        .der()
        .to_vec();
    let intermediate = Issuer::new(intermediate_params, intermediate_key);

    let key = keys::generate(key_type).unwrap();
    let pair = KeyPair::try_from(key.as_slice()).unwrap();
    // As RFC 8823 CAs issue them: empty subject, the address as the only SAN.
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::Rfc822Name(EMAIL.try_into().unwrap())];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
    params.key_usages = keys::key_usages(key_type, keys::Usage::Sign).unwrap();
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2030, 6, 30);
    let leaf = params.signed_by(&pair, &intermediate).unwrap();
    Fixture {
        key_type,
        key,
        chain: vec![leaf.der().to_vec(), intermediate_der],
    }
}

/// One fixture per [`KEY_TYPES`], made once per test run.
pub fn fixtures() -> &'static [Fixture] {
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| KEY_TYPES.into_iter().map(make_fixture).collect())
}

/// A fresh directory under the system temp dir, removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let mut random = [0u8; 8];
        SystemRandom::new().fill(&mut random).unwrap();
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("smime-acme-bundle-{suffix}"));
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }

    /// A new file `name` in the directory, readable by its owner only.
    pub fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.0.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        f.write_all(contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a checking tool; a missing tool fails the test with the install step.
pub fn run<S: AsRef<OsStr>>(tool: &str, args: &[S]) -> Output {
    match Command::new(tool).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "{tool} is not installed: run `sudo tests/testbed/install` (it installs openssl, \
             libnss3-tools and gnutls-bin)"
        ),
        Err(e) => panic!("running {tool}: {e}"),
    }
}

/// A tool's stdout then stderr, as text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A path as a tool argument.
pub fn p(path: &Path) -> &OsStr {
    path.as_os_str()
}

/// The leaf's public key as the PEM PUBLIC KEY block `openssl pkey -pubout` prints.
pub fn leaf_public_key_pem(leaf_der: &[u8]) -> String {
    let (_, leaf) = X509Certificate::from_der(leaf_der).unwrap();
    pem::block("PUBLIC KEY", leaf.public_key().raw)
}
