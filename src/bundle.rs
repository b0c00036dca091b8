//! The PKCS#12 file a user imports into a mail client (compat or modern profile, see interop.md
//! §5), plus re-reading a written PKCS#12 to check it. The PEM files are `pem`'s. Pure apart from
//! drawing random numbers: no file or network IO.

use std::fmt;

use cbc::cipher::{BlockModeEncrypt as _, KeyIvInit as _, block_padding::Pkcs7};
use der::asn1::{BmpString, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode as _, Encode as _};
use p12_keystore::Pkcs12Archive;
use pkcs12::cms::cert::x509::attr::{Attribute, Attributes};
use pkcs12::cms::cert::x509::spki::AlgorithmIdentifierOwned;
use pkcs12::cms::content_info::{CmsVersion, ContentInfo};
use pkcs12::cms::encrypted_data::EncryptedData;
use pkcs12::cms::enveloped_data::EncryptedContentInfo;
use pkcs12::kdf::{Pkcs12KeyType, derive_key_utf8};
use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pkcs12PbeParams};
use pkcs12::pfx::{Pfx, Version};
use pkcs12::{CertBag, DigestInfo, MacData, SafeBag};
use ring::rand::{SecureRandom, SystemRandom};
use sha1::Sha1;
use sha2::Sha256;
use x509_parser::asn1_rs::FromDer as _;
use x509_parser::certificate::X509Certificate;

use crate::keys::{self, KeyError};

/// Iterations of the password-based key derivation, for both the bag encryption and the MAC,
/// in both profiles. Windows refuses more than 600 000, p12-keystore (which re-reads the file)
/// more than 1 000 000, OpenSSL 3 writes 2048; 100 000 is well inside every reader's range and
/// still costs a guesser something.
pub const ITERATIONS: u32 = 100_000;
const _: () = assert!(
    ITERATIONS <= 600_000,
    "Windows refuses more than 600 000 iterations"
);
/// [`ITERATIONS`] as the PKCS#12 structures and KDF take it (it fits, see the assertion).
const ITERATIONS_I32: i32 = ITERATIONS as i32;

/// How a PKCS#12 file is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum P12Format {
    /// pbeWithSHAAnd3-KeyTripleDES-CBC for the key bag and the certificate bags, HMAC-SHA1
    /// MAC: imports on Apple Mail, iOS, older Windows, Thunderbird and OpenSSL 3 (no `-legacy`).
    #[default]
    Compat,
    /// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for the key bag and the certificate bags,
    /// HMAC-SHA256 MAC: Windows 10 1709+/Server 2019+, Thunderbird, OpenSSL ≥ 1.1.1.
    /// Apple Mail and iOS refuse it.
    Modern,
}

named_values!(P12Format, "PKCS#12 format", {
    Compat => "compat",
    Modern => "modern",
});

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "a PKCS#12 file needs a non-empty password (mail clients refuse or mishandle empty ones)"
    )]
    EmptyPassword,
    #[error("no certificate to put into the bundle")]
    EmptyChain,
    #[error("certificate {index} of the chain (0 = leaf) is not a valid DER X.509 certificate")]
    BadCertificate { index: usize },
    #[error("the private key is not a PKCS#8 RSA, P-256, P-384 or Ed25519 key")]
    BadKey,
    #[error("the private key does not belong to the certificate's public key")]
    KeyMismatch,
    #[error("{0:?} cannot be a PKCS#12 friendly name (characters outside the BMP)")]
    BadFriendlyName(String),
    #[error("a PKCS#12 password cannot hold characters outside the BMP (such as emoji)")]
    PasswordOutsideBmp,
    #[error("writing the PKCS#12 failed: {0}")]
    Write(String),
    #[error("the PKCS#12 MAC does not verify: wrong password, or the file is damaged")]
    WrongPassword,
    #[error("the PKCS#12 has no MAC, so its password and integrity cannot be checked")]
    NoMac,
    #[error("the PKCS#12 cannot be read: {0}")]
    Unreadable(String),
    #[error("the PKCS#12 holds {0} private keys, expected exactly one")]
    KeyCount(usize),
    #[error("the PKCS#12 private key has no localKeyId, or no certificate carries it")]
    NoLeaf,
    #[error("the PKCS#12 leaf certificate is not the expected one")]
    UnexpectedLeaf,
}

/// What [`check_pkcs12`] found in a PKCS#12 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct P12Summary {
    /// Certificates in the file, the leaf included.
    pub certificates: usize,
    /// The friendlyName on the private key.
    pub friendly_name: Option<String>,
    /// The localKeyId shared by the private key and the leaf.
    pub local_key_id: Vec<u8>,
}

/// A PKCS#12 holding `key_pkcs8` and `chain` (DER, leaf first, then the intermediates),
/// protected with `password` as `format` says.
///
/// The key bag and the leaf's certificate bag both carry the friendlyName
/// `"<email> (<issuer CN>, <notAfter>)"` and the localKeyId (SHA-1 of the leaf certificate, as
/// OpenSSL does): RFC 8823 leaves have an empty subject, so the name is what mail clients and
/// key stores show for the certificate. The intermediates' bags carry no attributes.
pub fn pkcs12(
    email: &str,
    key_pkcs8: &[u8],
    chain: &[Vec<u8>],
    password: &str,
    format: P12Format,
) -> Result<Vec<u8>, BundleError> {
    pkcs12_many(email, &[(key_pkcs8, chain)], password, format)
}

/// A PKCS#12 holding several keys, each with its chain (every certificate ever issued for an
/// address, so that mail encrypted to old certificates stays readable). Each key and leaf pair
/// is named as in [`pkcs12`]; a name two certificates would share gets the serial number.
pub fn pkcs12_many(
    email: &str,
    entries: &[(&[u8], &[Vec<u8>])],
    password: &str,
    format: P12Format,
) -> Result<Vec<u8>, BundleError> {
    if password.is_empty() {
        return Err(BundleError::EmptyPassword);
    }
    if !in_bmp(password) {
        return Err(BundleError::PasswordOutsideBmp);
    }
    let mut keys = Vec::new();
    let leaves = entries
        .iter()
        .map(|(_, chain)| chain.first().map(Vec::as_slice))
        .collect::<Option<Vec<&[u8]>>>()
        .ok_or(BundleError::EmptyChain)?;
    let names = friendly_names(email, &leaves)?;
    for ((key_pkcs8, chain), name) in entries.iter().zip(names) {
        let leaf_der = &chain[0];
        let (_, leaf) = X509Certificate::from_der(leaf_der)
            .map_err(|_| BundleError::BadCertificate { index: 0 })?;
        let matches = keys::key_matches_spki(key_pkcs8, leaf.public_key())
            .map_err(|_| BundleError::BadKey)?;
        if !matches {
            return Err(BundleError::KeyMismatch);
        }
        for (index, der) in chain.iter().enumerate().skip(1) {
            X509Certificate::from_der(der).map_err(|_| BundleError::BadCertificate { index })?;
        }
        keys.push(KeyEntry {
            name,
            local_key_id: ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf_der)
                .as_ref()
                .to_vec(),
            key_pkcs8: keys::portable_pkcs8(key_pkcs8).into_owned(),
            chain,
        });
    }
    write_pfx(&keys, password, format)
}

/// The friendlyName [`pkcs12_many`] gives each of `leaves` (DER) and its key, in order: what
/// mail clients and NSS show as the certificate's name.
pub fn friendly_names(email: &str, leaves: &[&[u8]]) -> Result<Vec<String>, BundleError> {
    let mut names: Vec<String> = Vec::new();
    for leaf_der in leaves {
        let (_, leaf) = X509Certificate::from_der(leaf_der)
            .map_err(|_| BundleError::BadCertificate { index: 0 })?;
        let mut name = friendly_name(email, &leaf);
        if names.contains(&name) {
            name = format!("{name} [{}]", leaf.raw_serial_as_string());
        }
        if !in_bmp(&name) {
            return Err(BundleError::BadFriendlyName(name));
        }
        names.push(name);
    }
    Ok(names)
}

/// One key of a PKCS#12 being written, with its leaf-first chain.
struct KeyEntry<'a> {
    name: String,
    local_key_id: Vec<u8>,
    key_pkcs8: Vec<u8>,
    chain: &'a [Vec<u8>],
}

/// Whether every character of `s` fits one UTF-16 unit, as a BMPString needs.
fn in_bmp(s: &str) -> bool {
    s.chars().all(|c| u32::from(c) <= 0xffff)
}

/// Re-reads a PKCS#12: the MAC verifies with `password`, there is exactly one private key, the
/// certificate carrying its localKeyId is `expected_leaf_der`, and the key belongs to it.
pub fn check_pkcs12(
    bytes: &[u8],
    password: &str,
    expected_leaf_der: &[u8],
) -> Result<P12Summary, BundleError> {
    require_mac(bytes)?;
    let archive = check_keys(bytes, password, &[expected_leaf_der])?;
    let key = &archive.keys[0];
    Ok(P12Summary {
        certificates: archive.certs.len(),
        friendly_name: key.friendly_name.clone(),
        local_key_id: key
            .local_key_id
            .as_ref()
            .map(|id| id.as_ref().to_vec())
            .unwrap_or_default(),
    })
}

/// Re-reads a PKCS#12 of several keys: as [`check_pkcs12`], one key per expected leaf.
pub fn check_pkcs12_many(
    bytes: &[u8],
    password: &str,
    expected_leaves: &[&[u8]],
) -> Result<(), BundleError> {
    require_mac(bytes)?;
    check_keys(bytes, password, expected_leaves).map(|_| ())
}

/// Fails unless `bytes` is a DER PFX with a MAC: p12-keystore accepts a file without one, and
/// then neither the password nor the file's integrity has been checked.
fn require_mac(bytes: &[u8]) -> Result<(), BundleError> {
    let pfx = Pfx::from_der(bytes)
        .map_err(|e| BundleError::Unreadable(format!("malformed PFX ({e})")))?;
    pfx.mac_data.map(|_| ()).ok_or(BundleError::NoMac)
}

/// Decrypts the PKCS#12 (its MAC verified with `password`) and checks that it holds one key
/// per expected leaf, each beside its own certificate (same localKeyId, matching public key).
fn check_keys(
    bytes: &[u8],
    password: &str,
    expected_leaves: &[&[u8]],
) -> Result<Pkcs12Archive, BundleError> {
    if password.is_empty() {
        return Err(BundleError::EmptyPassword);
    }
    let archive = Pkcs12Archive::from_pkcs12(bytes, password).map_err(|e| match e {
        p12_keystore::error::Error::MacError(_) => BundleError::WrongPassword,
        other => BundleError::Unreadable(other.to_string()),
    })?;
    if archive.keys.len() != expected_leaves.len() {
        return Err(BundleError::KeyCount(archive.keys.len()));
    }
    for key in &archive.keys {
        let id = key.local_key_id.as_ref().ok_or(BundleError::NoLeaf)?;
        let leaf = archive
            .certs
            .iter()
            .find(|c| c.local_key_id.as_deref() == Some(id.as_ref()))
            .ok_or(BundleError::NoLeaf)?;
        if !expected_leaves.contains(&leaf.cert.as_der()) {
            return Err(BundleError::UnexpectedLeaf);
        }
        if !key_belongs_to(key.key.as_der(), leaf.cert.as_der())? {
            return Err(BundleError::KeyMismatch);
        }
    }
    Ok(archive)
}

/// [`keys::key_matches_certificate`], its failures named as a bundle's.
fn key_belongs_to(key_pkcs8: &[u8], cert_der: &[u8]) -> Result<bool, BundleError> {
    keys::key_matches_certificate(key_pkcs8, cert_der).map_err(|e| match e {
        KeyError::BadCertificate => BundleError::BadCertificate { index: 0 },
        _ => BundleError::BadKey,
    })
}

/// `"<email> (<issuer CN>, <notAfter as YYYY-MM-DD>)"`; the issuer's O when it has no CN, and
/// `"<email> (<notAfter>)"` when it has neither.
fn friendly_name(email: &str, leaf: &X509Certificate) -> String {
    let issuer = leaf
        .issuer()
        .iter_common_name()
        .chain(leaf.issuer().iter_organization())
        .find_map(|a| a.as_str().ok());
    let not_after = leaf.validity().not_after.to_datetime().date();
    let date = format!(
        "{:04}-{:02}-{:02}",
        not_after.year(),
        u8::from(not_after.month()),
        not_after.day()
    );
    match issuer {
        Some(issuer) => format!("{email} ({issuer}, {date})"),
        None => format!("{email} ({date})"),
    }
}

// --- Writing a PKCS#12 (RFC 7292) -------------------------------------------------------------

const OID_CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
const OID_X509_CERTIFICATE: &str = "1.2.840.113549.1.9.22.1";
const OID_FRIENDLY_NAME: &str = "1.2.840.113549.1.9.20";
const OID_LOCAL_KEY_ID: &str = "1.2.840.113549.1.9.21";
const OID_SHA1: &str = "1.3.14.3.2.26";
const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const OID_DATA: &str = "1.2.840.113549.1.7.1";
const OID_ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";
const OID_SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
const OID_PBE_SHA1_3DES: &str = "1.2.840.113549.1.12.1.3";
const OID_PBES2: &str = "1.2.840.113549.1.5.13";

const fn oid(id: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(id)
}

impl From<der::Error> for BundleError {
    fn from(e: der::Error) -> Self {
        BundleError::Write(e.to_string())
    }
}

fn write_error(e: impl fmt::Display) -> BundleError {
    BundleError::Write(e.to_string())
}

/// The PFX: an encrypted safe with the certificate bags (each leaf's first, with its key's
/// attributes; each intermediate once), a data safe with the shrouded key bags, and the MAC
/// over both, all keyed by `password` as `format` says.
fn write_pfx(
    keys: &[KeyEntry<'_>],
    password: &str,
    format: P12Format,
) -> Result<Vec<u8>, BundleError> {
    let mut cert_bags = Vec::new();
    let mut key_bags = Vec::new();
    let mut intermediates: Vec<&[u8]> = Vec::new();
    let cert_bag = |der: &[u8], attributes: Option<Attributes>| -> Result<SafeBag, der::Error> {
        let bag = CertBag {
            cert_id: oid(OID_X509_CERTIFICATE),
            cert_value: OctetString::new(der)?,
        };
        Ok(SafeBag {
            bag_id: oid(OID_CERT_BAG),
            bag_value: bag.to_der()?,
            bag_attributes: attributes,
        })
    };
    for key in keys {
        let attributes = bag_attributes(&key.name, &key.local_key_id)?;
        cert_bags.push(cert_bag(&key.chain[0], Some(attributes.clone()))?);
        for der in &key.chain[1..] {
            if !intermediates.contains(&der.as_slice()) {
                intermediates.push(der);
            }
        }
        let (algorithm, encrypted) = encrypt(format, &key.key_pkcs8, password)?;
        let key_info = EncryptedPrivateKeyInfo {
            encryption_algorithm: algorithm,
            encrypted_data: OctetString::new(encrypted)?,
        };
        key_bags.push(SafeBag {
            bag_id: oid(OID_SHROUDED_KEY_BAG),
            bag_value: key_info.to_der()?,
            bag_attributes: Some(attributes),
        });
    }
    for der in intermediates {
        cert_bags.push(cert_bag(der, None)?);
    }
    let (algorithm, encrypted) = encrypt(format, &cert_bags.to_der()?, password)?;
    let encrypted_data = EncryptedData {
        version: CmsVersion::V0,
        enc_content_info: EncryptedContentInfo {
            content_type: oid(OID_DATA),
            content_enc_alg: algorithm,
            encrypted_content: Some(OctetString::new(encrypted)?),
        },
        unprotected_attrs: None,
    };
    let cert_safe = ContentInfo {
        content_type: oid(OID_ENCRYPTED_DATA),
        content: der::Any::encode_from(&encrypted_data)?,
    };
    let key_safe = data(key_bags.to_der()?)?;

    let safes = vec![cert_safe, key_safe].to_der()?;
    let mac_data = mac(format, &safes, password)?;
    let pfx = Pfx {
        version: Version::V3,
        auth_safe: data(safes)?,
        mac_data: Some(mac_data),
    };
    Ok(pfx.to_der()?)
}

/// A data ContentInfo holding `bytes`.
fn data(bytes: Vec<u8>) -> Result<ContentInfo, der::Error> {
    Ok(ContentInfo {
        content_type: oid(OID_DATA),
        content: der::Any::encode_from(&OctetString::new(bytes)?)?,
    })
}

/// The friendlyName (a BMPString) and localKeyId bag attributes.
fn bag_attributes(name: &str, local_key_id: &[u8]) -> Result<Attributes, der::Error> {
    let attribute = |id: &str, value: der::Any| -> Result<Attribute, der::Error> {
        Ok(Attribute {
            oid: oid(id),
            values: SetOfVec::try_from(vec![value])?,
        })
    };
    SetOfVec::try_from(vec![
        attribute(
            OID_FRIENDLY_NAME,
            der::Any::encode_from(&BmpString::from_utf8(name)?)?,
        )?,
        attribute(
            OID_LOCAL_KEY_ID,
            der::Any::encode_from(&OctetString::new(local_key_id)?)?,
        )?,
    ])
}

/// `data` encrypted with `password` as `format` says, and the AlgorithmIdentifier saying how.
/// Salts: 20 bytes for the PKCS#12 PBE, 32 for PBKDF2.
fn encrypt(
    format: P12Format,
    data: &[u8],
    password: &str,
) -> Result<(AlgorithmIdentifierOwned, Vec<u8>), BundleError> {
    match format {
        P12Format::Compat => {
            let salt: [u8; 20] = random()?;
            let derive =
                |id, len| derive_key_utf8::<Sha1>(password, &salt, id, ITERATIONS_I32, len);
            let key = derive(Pkcs12KeyType::EncryptionKey, 24)?;
            let iv = derive(Pkcs12KeyType::Iv, 8)?;
            let cipher =
                cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, &iv).map_err(write_error)?;
            let params = Pkcs12PbeParams {
                salt: OctetString::new(salt)?,
                iterations: ITERATIONS_I32,
            };
            let algorithm = AlgorithmIdentifierOwned {
                oid: oid(OID_PBE_SHA1_3DES),
                parameters: Some(der::Any::encode_from(&params)?),
            };
            Ok((algorithm, cipher.encrypt_padded_vec::<Pkcs7>(data)))
        }
        P12Format::Modern => {
            let salt: [u8; 32] = random()?;
            let params = pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(
                ITERATIONS,
                &salt,
                random()?,
            )
            .map_err(write_error)?;
            let encrypted = params.encrypt(password, data).map_err(write_error)?;
            let algorithm = AlgorithmIdentifierOwned {
                oid: oid(OID_PBES2),
                parameters: Some(der::Any::encode_from(&params)?),
            };
            Ok((algorithm, encrypted))
        }
    }
}

/// The MacData over `data`: HMAC-SHA-1 (compat) or HMAC-SHA-256 (modern) keyed by the PKCS#12
/// KDF of `password` with an 8-byte salt.
fn mac(format: P12Format, data: &[u8], password: &str) -> Result<MacData, BundleError> {
    let salt: [u8; 8] = random()?;
    let (digest, algorithm, key) = match format {
        P12Format::Compat => (
            OID_SHA1,
            ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            derive_key_utf8::<Sha1>(password, &salt, Pkcs12KeyType::Mac, ITERATIONS_I32, 20)?,
        ),
        P12Format::Modern => (
            OID_SHA256,
            ring::hmac::HMAC_SHA256,
            derive_key_utf8::<Sha256>(password, &salt, Pkcs12KeyType::Mac, ITERATIONS_I32, 32)?,
        ),
    };
    let tag = ring::hmac::sign(&ring::hmac::Key::new(algorithm, &key), data);
    Ok(MacData {
        mac: DigestInfo {
            algorithm: AlgorithmIdentifierOwned {
                oid: oid(digest),
                parameters: None,
            },
            digest: OctetString::new(tag.as_ref())?,
        },
        mac_salt: OctetString::new(salt)?,
        iterations: ITERATIONS_I32,
    })
}

/// `N` bytes from the operating system's random generator.
fn random<const N: usize>() -> Result<[u8; N], BundleError> {
    let mut bytes = [0; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| write_error("the system random number generator failed"))?;
    Ok(bytes)
}

/// Reading back the algorithms that protect a PKCS#12, as `openssl pkcs12 -info` reports them,
/// to check what [`pkcs12`](super::pkcs12) writes. Test-only: typed decoding with the `pkcs12`
/// and `pkcs5` crates, which panics on anything but a password-integrity PFX.
#[cfg(test)]
mod protection {
    use der::Decode as _;
    use der::asn1::OctetString;
    use pkcs5::pbes2::{EncryptionScheme, Kdf, Parameters, Pbkdf2Prf};
    use pkcs12::cms::cert::x509::spki::AlgorithmIdentifierOwned;
    use pkcs12::cms::encrypted_data::EncryptedData;
    use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pkcs12PbeParams};
    use pkcs12::pfx::Pfx;
    use pkcs12::{AuthenticatedSafe, SafeBag};

    use super::{
        OID_DATA, OID_ENCRYPTED_DATA, OID_PBE_SHA1_3DES, OID_PBES2, OID_SHA1, OID_SHA256,
        OID_SHROUDED_KEY_BAG, P12Format, oid,
    };

    /// The algorithms protecting a PKCS#12 file.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Protection {
        /// Encryption of each shrouded key bag.
        pub keys: Vec<Pbe>,
        /// Encryption of each encrypted safe (the certificate bags); empty if they are in clear.
        pub safes: Vec<Pbe>,
        pub mac: Mac,
    }

    impl Protection {
        /// The profile these algorithms are, if they are exactly one of ours.
        pub fn format(&self) -> Option<P12Format> {
            let all = || self.keys.iter().chain(&self.safes);
            let uses = |cipher: &PbeCipher| {
                !self.keys.is_empty()
                    && !self.safes.is_empty()
                    && all().all(|p| &p.cipher == cipher)
            };
            if uses(&PbeCipher::Sha1TripleDes) && self.mac.digest == "sha1" {
                Some(P12Format::Compat)
            } else if uses(&PbeCipher::Pbes2Sha256Aes256) && self.mac.digest == "sha256" {
                Some(P12Format::Modern)
            } else {
                None
            }
        }
    }

    /// One password-based encryption (PKCS#12 PBE or PBES2).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Pbe {
        pub cipher: PbeCipher,
        pub iterations: u64,
        pub salt_len: usize,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum PbeCipher {
        /// pbeWithSHAAnd3-KeyTripleDES-CBC (1.2.840.113549.1.12.1.3).
        Sha1TripleDes,
        /// PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC.
        Pbes2Sha256Aes256,
        /// Anything else, as decoded.
        Other(String),
    }

    /// The PKCS#12 MAC.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Mac {
        /// "sha1", "sha256", or the digest OID.
        pub digest: String,
        pub iterations: u64,
        pub salt_len: usize,
    }

    /// The algorithms of a PKCS#12, read from its structure without the password.
    pub fn protection(bytes: &[u8]) -> Protection {
        let pfx = Pfx::from_der(bytes).expect("a DER PFX");
        let mac_data = pfx.mac_data.expect("a MAC");
        let digest = mac_data.mac.algorithm.oid;
        let mac = Mac {
            digest: if digest == oid(OID_SHA1) {
                "sha1".to_owned()
            } else if digest == oid(OID_SHA256) {
                "sha256".to_owned()
            } else {
                digest.to_string()
            },
            iterations: u64::try_from(mac_data.iterations).expect("a positive iteration count"),
            salt_len: mac_data.mac_salt.as_bytes().len(),
        };
        assert_eq!(
            pfx.auth_safe.content_type,
            oid(OID_DATA),
            "password integrity mode"
        );
        let safes: OctetString = pfx.auth_safe.content.decode_as().expect("authSafe data");
        let mut keys = Vec::new();
        let mut encrypted_safes = Vec::new();
        for safe in AuthenticatedSafe::from_der(safes.as_bytes()).expect("an AuthenticatedSafe") {
            if safe.content_type == oid(OID_DATA) {
                let bags: OctetString = safe.content.decode_as().expect("a data safe");
                for bag in Vec::<SafeBag>::from_der(bags.as_bytes()).expect("SafeContents") {
                    if bag.bag_id == oid(OID_SHROUDED_KEY_BAG) {
                        // The decoded bag value still has its [0] wrapper.
                        let value = der::Any::from_der(&bag.bag_value).expect("a bag value");
                        let key = EncryptedPrivateKeyInfo::from_der(value.value())
                            .expect("an EncryptedPrivateKeyInfo");
                        keys.push(pbe(&key.encryption_algorithm));
                    }
                }
            } else if safe.content_type == oid(OID_ENCRYPTED_DATA) {
                let data: EncryptedData = safe.content.decode_as().expect("EncryptedData");
                encrypted_safes.push(pbe(&data.enc_content_info.content_enc_alg));
            } else {
                panic!("unexpected safe content type {}", safe.content_type);
            }
        }
        Protection {
            keys,
            safes: encrypted_safes,
            mac,
        }
    }

    /// The PBE an AlgorithmIdentifier describes.
    fn pbe(alg: &AlgorithmIdentifierOwned) -> Pbe {
        let params = alg.parameters.as_ref().expect("PBE parameters");
        if alg.oid == oid(OID_PBE_SHA1_3DES) {
            let params: Pkcs12PbeParams = params.decode_as().expect("PKCS#12 PBE parameters");
            return Pbe {
                cipher: PbeCipher::Sha1TripleDes,
                iterations: u64::try_from(params.iterations).expect("a positive iteration count"),
                salt_len: params.salt.as_bytes().len(),
            };
        }
        if alg.oid == oid(OID_PBES2) {
            let params: Parameters = params.decode_as().expect("PBES2 parameters");
            return match (&params.kdf, &params.encryption) {
                (Kdf::Pbkdf2(kdf), EncryptionScheme::Aes256Cbc { .. })
                    if kdf.prf == Pbkdf2Prf::HmacWithSha256 =>
                {
                    Pbe {
                        cipher: PbeCipher::Pbes2Sha256Aes256,
                        iterations: kdf.iteration_count.into(),
                        salt_len: kdf.salt.as_bytes().len(),
                    }
                }
                (kdf, scheme) => Pbe {
                    cipher: PbeCipher::Other(format!("PBES2 {kdf:?} {scheme:?}")),
                    iterations: 0,
                    salt_len: 0,
                },
            };
        }
        Pbe {
            cipher: PbeCipher::Other(alg.oid.to_string()),
            iterations: 0,
            salt_len: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::protection::{PbeCipher, protection};
    use super::*;
    use crate::keys::KeyType;
    use crate::pem;
    use crate::testing::{EMAIL, Fixture, TempDir, fixtures, leaf_public_key_pem, p, run, text};
    use std::ffi::OsStr;

    const PASSWORD: &str = "correct horse battery staple";
    /// The friendlyName of the fixtures' leaves.
    const NAME: &str = "alice@example.test (Example Test Intermediate CA, 2030-06-30)";

    /// Every (key type, format) bundle, written with [`PASSWORD`].
    fn bundles() -> impl Iterator<Item = (&'static Fixture, P12Format, Vec<u8>)> {
        fixtures().iter().flat_map(|f| {
            P12Format::ALL.into_iter().map(move |format| {
                let p12 = pkcs12(EMAIL, &f.key, &f.chain, PASSWORD, format)
                    .unwrap_or_else(|e| panic!("{} {format}: {e}", f.key_type));
                (f, format, p12)
            })
        })
    }

    fn sha1(data: &[u8]) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
            .as_ref()
            .to_vec()
    }

    #[test]
    fn format_names_round_trip() {
        assert_eq!(P12Format::default(), P12Format::Compat);
        for format in P12Format::ALL {
            assert_eq!(format.to_string().parse(), Ok(format));
        }
        assert_eq!("modern".parse(), Ok(P12Format::Modern));
        assert!("legacy".parse::<P12Format>().is_err());
    }

    #[test]
    fn both_formats_read_back_with_the_promised_algorithms() {
        for (f, format, p12) in bundles() {
            let what = format!("{} {format}", f.key_type);
            let summary =
                check_pkcs12(&p12, PASSWORD, &f.chain[0]).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(summary.certificates, 2, "{what}: leaf + intermediate");
            assert_eq!(summary.friendly_name.as_deref(), Some(NAME), "{what}");
            assert_eq!(summary.local_key_id, sha1(&f.chain[0]), "{what}");
            let protection = &protection(&p12);
            assert_eq!(protection.format(), Some(format), "{what}: {protection:?}");
            let (cipher, digest) = match format {
                P12Format::Compat => (PbeCipher::Sha1TripleDes, "sha1"),
                P12Format::Modern => (PbeCipher::Pbes2Sha256Aes256, "sha256"),
            };
            assert_eq!(protection.keys.len(), 1, "{what}");
            assert_eq!(
                protection.safes.len(),
                1,
                "{what}: the certificates are encrypted"
            );
            for pbe in protection.keys.iter().chain(&protection.safes) {
                assert_eq!(pbe.cipher, cipher, "{what}");
                assert_eq!(pbe.iterations, u64::from(ITERATIONS), "{what}");
                assert!(pbe.salt_len >= 8, "{what}: {pbe:?}");
            }
            assert_eq!(protection.mac.digest, digest, "{what}");
            assert_eq!(protection.mac.iterations, u64::from(ITERATIONS), "{what}");
            assert!(protection.mac.salt_len >= 8, "{what}: {:?}", protection.mac);
        }
    }

    #[test]
    fn the_leaf_bag_carries_the_key_bags_name_and_local_key_id() {
        for (f, format, p12) in bundles() {
            let what = format!("{} {format}", f.key_type);
            let archive = Pkcs12Archive::from_pkcs12(&p12, PASSWORD).unwrap();
            let [key] = archive.keys.as_slice() else {
                panic!("{what}: one key")
            };
            let key_id = key.local_key_id.as_ref().map(|id| id.as_ref().to_vec());
            assert_eq!(key.friendly_name.as_deref(), Some(NAME), "{what}");
            assert_eq!(key_id, Some(sha1(&f.chain[0])), "{what}");
            let bags: Vec<_> = archive
                .certs
                .iter()
                .map(|c| {
                    (
                        c.cert.as_der(),
                        c.friendly_name.clone(),
                        c.local_key_id.clone(),
                    )
                })
                .collect();
            let expected = [
                (&f.chain[0][..], key.friendly_name.clone(), key_id),
                (&f.chain[1][..], None, None),
            ];
            assert_eq!(
                bags, expected,
                "{what}: leaf named like the key, then the intermediate"
            );
        }
    }

    #[test]
    fn the_algorithm_identifiers_decode_as_promised() {
        use der::Decode as _;
        use pkcs5::pbes2::{EncryptionScheme, Kdf, Parameters, Pbkdf2Prf};
        use pkcs12::AuthenticatedSafe;

        /// Asserts `alg` is the bag encryption `format` promises.
        fn check(alg: &AlgorithmIdentifierOwned, format: P12Format, what: &str) {
            let params = alg.parameters.as_ref().expect("parameters");
            match format {
                P12Format::Compat => {
                    assert_eq!(alg.oid, oid(OID_PBE_SHA1_3DES), "{what}");
                    let pbe: Pkcs12PbeParams = params.decode_as().unwrap();
                    assert_eq!(pbe.iterations, ITERATIONS_I32, "{what}");
                    assert_eq!(pbe.salt.as_bytes().len(), 20, "{what}");
                }
                P12Format::Modern => {
                    assert_eq!(alg.oid, oid(OID_PBES2), "{what}");
                    let pbes2: Parameters = params.decode_as().unwrap();
                    let Kdf::Pbkdf2(kdf) = pbes2.kdf else {
                        panic!("{what}: PBKDF2")
                    };
                    assert_eq!(kdf.prf, Pbkdf2Prf::HmacWithSha256, "{what}");
                    assert_eq!(kdf.iteration_count, ITERATIONS, "{what}");
                    assert!(
                        matches!(pbes2.encryption, EncryptionScheme::Aes256Cbc { .. }),
                        "{what}"
                    );
                }
            }
        }

        for (f, format, p12) in bundles() {
            let what = format!("{} {format}", f.key_type);
            let pfx = Pfx::from_der(&p12).unwrap();
            let mac = pfx.mac_data.expect("a MAC");
            let digest = match format {
                P12Format::Compat => OID_SHA1,
                P12Format::Modern => OID_SHA256,
            };
            assert_eq!(mac.mac.algorithm.oid, oid(digest), "{what}");
            assert_eq!(mac.iterations, ITERATIONS_I32, "{what}");
            let safes: OctetString = pfx.auth_safe.content.decode_as().unwrap();
            let safes = AuthenticatedSafe::from_der(safes.as_bytes()).unwrap();
            let [certs, keys] = safes.as_slice() else {
                panic!("{what}: two safes")
            };
            assert_eq!(certs.content_type, oid(OID_ENCRYPTED_DATA), "{what}");
            let certs: EncryptedData = certs.content.decode_as().unwrap();
            check(&certs.enc_content_info.content_enc_alg, format, &what);
            assert_eq!(keys.content_type, oid(OID_DATA), "{what}");
            let keys: OctetString = keys.content.decode_as().unwrap();
            let [key] = Vec::<SafeBag>::from_der(keys.as_bytes())
                .unwrap()
                .try_into()
                .unwrap();
            assert_eq!(key.bag_id, oid(OID_SHROUDED_KEY_BAG), "{what}");
            // The decoded bag value still has its [0] wrapper.
            let value = der::Any::from_der(&key.bag_value).unwrap();
            let key = EncryptedPrivateKeyInfo::from_der(value.value()).unwrap();
            check(&key.encryption_algorithm, format, &what);
        }
    }

    #[test]
    fn non_bmp_passwords_are_refused() {
        let f = &fixtures()[1];
        let err = pkcs12(EMAIL, &f.key, &f.chain, "pass 🔑 word", P12Format::Compat).unwrap_err();
        assert!(matches!(err, BundleError::PasswordOutsideBmp), "{err:?}");
        assert!(!err.to_string().contains("🔑"));
    }

    /// The attribute `name` OpenSSL prints among the bag attributes of the certificate `der`
    /// in `openssl pkcs12 -nokeys` output.
    fn openssl_bag_attribute(output: &str, der: &[u8], name: &str) -> Option<String> {
        let end = output.find(&pem::block("CERTIFICATE", der))?;
        let start = output[..end].rfind("Bag Attributes")?;
        output[start..end].lines().find_map(|line| {
            let value = line.trim().strip_prefix(name)?.strip_prefix(": ")?;
            Some(value.to_owned())
        })
    }

    #[test]
    fn openssl_reads_both_formats_without_legacy() {
        for (f, format, p12) in bundles() {
            let what = format!("{} {format}", f.key_type);
            let dir = TempDir::new();
            let file = dir.file("bundle.p12", &p12);
            let pw = dir.file("password", PASSWORD.as_bytes());
            let passin = format!("file:{}", pw.display());
            let info = run(
                "openssl",
                &[
                    OsStr::new("pkcs12"),
                    OsStr::new("-info"),
                    OsStr::new("-in"),
                    p(&file),
                    OsStr::new("-passin"),
                    OsStr::new(&passin),
                    OsStr::new("-noout"),
                ],
            );
            let info_text = text(&info);
            assert!(info.status.success(), "{what}: {info_text}");
            let expected = match format {
                P12Format::Compat => [
                    format!("MAC: sha1, Iteration {ITERATIONS}"),
                    format!(
                        "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration {ITERATIONS}"
                    ),
                    format!(
                        "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration {ITERATIONS}"
                    ),
                ],
                P12Format::Modern => [
                    format!("MAC: sha256, Iteration {ITERATIONS}"),
                    format!(
                        "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration {ITERATIONS}, PRF hmacWithSHA256"
                    ),
                    format!(
                        "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration {ITERATIONS}, PRF hmacWithSHA256"
                    ),
                ],
            };
            for line in expected {
                assert!(
                    info_text.lines().any(|l| l == line),
                    "{what}: no {line:?} in\n{info_text}"
                );
            }
            assert!(!info_text.contains("RC2"), "{what}: {info_text}");

            // The key decrypts, and it is the leaf's.
            let key_pem = dir.0.join("key.pem");
            let out = run(
                "openssl",
                &[
                    OsStr::new("pkcs12"),
                    OsStr::new("-in"),
                    p(&file),
                    OsStr::new("-passin"),
                    OsStr::new(&passin),
                    OsStr::new("-nocerts"),
                    OsStr::new("-nodes"),
                    OsStr::new("-out"),
                    p(&key_pem),
                ],
            );
            assert!(out.status.success(), "{what}: {}", text(&out));
            let public = run(
                "openssl",
                &[
                    OsStr::new("pkey"),
                    OsStr::new("-in"),
                    p(&key_pem),
                    OsStr::new("-pubout"),
                ],
            );
            assert!(public.status.success(), "{what}: {}", text(&public));
            assert_eq!(
                String::from_utf8_lossy(&public.stdout),
                leaf_public_key_pem(&f.chain[0]),
                "{what}"
            );

            // Both certificates come out.
            let certs = run(
                "openssl",
                &[
                    OsStr::new("pkcs12"),
                    OsStr::new("-in"),
                    p(&file),
                    OsStr::new("-passin"),
                    OsStr::new(&passin),
                    OsStr::new("-nokeys"),
                ],
            );
            let certs_text = text(&certs);
            assert!(certs.status.success(), "{what}: {certs_text}");
            for der in &f.chain {
                assert!(
                    certs_text.contains(&pem::chain(std::slice::from_ref(der))),
                    "{what}"
                );
            }
            // The leaf's bag carries the key's name and localKeyID; the intermediate's nothing.
            let [leaf, intermediate] = [&f.chain[0], &f.chain[1]];
            let key_id = sha1(leaf)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>();
            let attribute = |der, name| openssl_bag_attribute(&certs_text, der, name);
            assert_eq!(
                attribute(leaf, "friendlyName").as_deref(),
                Some(NAME),
                "{what}: {certs_text}"
            );
            assert_eq!(
                attribute(leaf, "localKeyID"),
                Some(key_id.join(" ")),
                "{what}: {certs_text}"
            );
            assert_eq!(attribute(intermediate, "friendlyName"), None, "{what}");

            // A wrong password fails the MAC.
            let wrong = dir.file("wrong", b"not the password");
            let out = run(
                "openssl",
                &[
                    OsStr::new("pkcs12"),
                    OsStr::new("-info"),
                    OsStr::new("-in"),
                    p(&file),
                    OsStr::new("-passin"),
                    OsStr::new(&format!("file:{}", wrong.display())),
                    OsStr::new("-noout"),
                ],
            );
            assert!(!out.status.success(), "{what}");
            assert!(
                text(&out).contains("Mac verify error"),
                "{what}: {}",
                text(&out)
            );
        }
    }

    #[test]
    fn nss_imports_both_formats() {
        for (f, format, p12) in bundles() {
            let what = format!("{} {format}", f.key_type);
            let dir = TempDir::new();
            let file = dir.file("bundle.p12", &p12);
            let pw = dir.file("password", PASSWORD.as_bytes());
            let db_dir = dir.0.join("nssdb");
            std::fs::create_dir(&db_dir).unwrap();
            let db = format!("sql:{}", db_dir.display());
            let db = OsStr::new(&db);
            let out = run(
                "certutil",
                &[
                    OsStr::new("-N"),
                    OsStr::new("-d"),
                    db,
                    OsStr::new("--empty-password"),
                ],
            );
            assert!(out.status.success(), "{what}: {}", text(&out));
            let import = run(
                "pk12util",
                &[
                    OsStr::new("-i"),
                    p(&file),
                    OsStr::new("-d"),
                    db,
                    OsStr::new("-w"),
                    p(&pw),
                ],
            );
            let import_text = text(&import);
            if f.key_type == KeyType::Ed25519 && !import.status.success() {
                // NSS 3.87 (Debian 12) cannot import Ed25519 private keys at all: a PKCS#12
                // made by `openssl pkcs12 -export` from an OpenSSL Ed25519 key fails the same
                // way. Newer NSS may succeed, and then the checks below apply.
                assert!(
                    import_text.contains("SEC_ERROR_PKCS12_UNABLE_TO_IMPORT_KEY"),
                    "{what}: {import_text}"
                );
                continue;
            }
            assert!(import.status.success(), "{what}: {import_text}");
            assert!(
                import_text.contains("PKCS12 IMPORT SUCCESSFUL"),
                "{what}: {import_text}"
            );

            let list = run("certutil", &[OsStr::new("-L"), OsStr::new("-d"), db]);
            let list_text = text(&list);
            assert!(list.status.success(), "{what}: {list_text}");
            assert!(
                list_text
                    .lines()
                    .any(|l| l.starts_with(NAME) && l.trim_end().ends_with("u,u,u")),
                "{what}: the leaf with its key, named after the address:\n{list_text}"
            );
            let leaf = run(
                "certutil",
                &[
                    OsStr::new("-L"),
                    OsStr::new("-d"),
                    db,
                    OsStr::new("-n"),
                    OsStr::new(NAME),
                    OsStr::new("-a"),
                ],
            );
            assert!(leaf.status.success(), "{what}: {}", text(&leaf));
            assert_eq!(
                String::from_utf8_lossy(&leaf.stdout).replace('\r', ""),
                pem::chain(&f.chain[..1]),
                "{what}"
            );
            let keys = run("certutil", &[OsStr::new("-K"), OsStr::new("-d"), db]);
            assert!(keys.status.success(), "{what}: {}", text(&keys));
            assert!(text(&keys).contains(NAME), "{what}: {}", text(&keys));
        }
    }

    #[test]
    fn gnutls_reads_both_formats() {
        for (f, format, p12) in bundles() {
            let what = format!("{} {format}", f.key_type);
            let dir = TempDir::new();
            let file = dir.file("bundle.p12", &p12);
            // certtool takes the password only as an argument; this one is a throwaway.
            let info = run(
                "certtool",
                &[
                    OsStr::new("--p12-info"),
                    OsStr::new("--inder"),
                    OsStr::new("--infile"),
                    p(&file),
                    OsStr::new("--password"),
                    OsStr::new(PASSWORD),
                ],
            );
            let info_text = text(&info);
            assert!(info.status.success(), "{what}: {info_text}");
            let (mac, schema) = match format {
                P12Format::Compat => ("MAC: SHA1 (1.3.14.3.2.26)", "Schema: PKCS12-3DES-SHA1"),
                P12Format::Modern => (
                    "MAC: SHA256 (2.16.840.1.101.3.4.2.1)",
                    "Schema: PBES2-AES256-CBC",
                ),
            };
            assert!(info_text.contains(mac), "{what}: {info_text}");
            assert_eq!(info_text.matches(schema).count(), 2, "{what}: {info_text}");
            assert_eq!(
                info_text.matches(&format!("Friendly name: {NAME}")).count(),
                2,
                "{what}: the key bag and the leaf's certificate bag: {info_text}"
            );
            for der in &f.chain {
                assert!(
                    info_text.contains(&pem::chain(std::slice::from_ref(der))),
                    "{what}"
                );
            }

            // certtool prints the still-encrypted key bag; decrypt it and compare public keys.
            let start = info_text
                .find("-----BEGIN ENCRYPTED PRIVATE KEY-----")
                .unwrap_or_else(|| panic!("{what}: no key bag in {info_text}"));
            let end = info_text[start..]
                .find("-----END ENCRYPTED PRIVATE KEY-----")
                .map(|e| start + e + "-----END ENCRYPTED PRIVATE KEY-----".len())
                .unwrap_or_else(|| panic!("{what}: {info_text}"));
            let key = dir.file("key.pem", &info_text.as_bytes()[start..end]);
            let public = run(
                "certtool",
                &[
                    OsStr::new("--pubkey-info"),
                    OsStr::new("--load-privkey"),
                    p(&key),
                    OsStr::new("--password"),
                    OsStr::new(PASSWORD),
                ],
            );
            let public_text = text(&public);
            assert!(public.status.success(), "{what}: {public_text}");
            assert!(
                public_text.contains(&leaf_public_key_pem(&f.chain[0])),
                "{what}: {public_text}"
            );
        }
    }

    #[test]
    fn wrong_password_is_reported_without_the_password() {
        let f = &fixtures()[1];
        let p12 = pkcs12(EMAIL, &f.key, &f.chain, PASSWORD, P12Format::Compat).unwrap();
        for wrong in ["correct horse battery stapler", "x"] {
            let err = check_pkcs12(&p12, wrong, &f.chain[0]).unwrap_err();
            assert!(matches!(err, BundleError::WrongPassword), "{err:?}");
            let message = err.to_string();
            assert!(message.contains("wrong password"), "{message}");
            assert!(!message.contains(wrong) && !message.contains(PASSWORD));
        }
        assert!(matches!(
            check_pkcs12(&p12, PASSWORD, &f.chain[1]),
            Err(BundleError::UnexpectedLeaf)
        ));
        assert!(matches!(
            check_pkcs12(b"not a pkcs12", PASSWORD, &f.chain[0]),
            Err(BundleError::Unreadable(_))
        ));
    }

    #[test]
    fn a_pkcs12_without_a_mac_is_refused() {
        let f = &fixtures()[1];
        let p12 = pkcs12(EMAIL, &f.key, &f.chain, PASSWORD, P12Format::Compat).unwrap();
        let mut pfx = Pfx::from_der(&p12).unwrap();
        pfx.mac_data = None;
        let unauthenticated = pfx.to_der().unwrap();
        assert!(matches!(
            check_pkcs12(&unauthenticated, PASSWORD, &f.chain[0]),
            Err(BundleError::NoMac)
        ));
        assert!(matches!(
            check_pkcs12_many(&unauthenticated, PASSWORD, &[&f.chain[0]]),
            Err(BundleError::NoMac)
        ));
    }

    #[test]
    fn a_key_that_is_not_the_leafs_is_refused() {
        let [rsa, p256, ed25519] = fixtures() else {
            panic!("three fixtures")
        };
        let other_p256 = keys::generate(KeyType::P256).unwrap();
        let pairs: [(&[u8], &Fixture); 4] = [
            (&other_p256, p256),
            (&rsa.key, p256),
            (&p256.key, ed25519),
            (&ed25519.key, rsa),
        ];
        for (key, f) in pairs {
            let err = pkcs12(EMAIL, key, &f.chain, PASSWORD, P12Format::Compat).unwrap_err();
            assert!(matches!(err, BundleError::KeyMismatch), "{err:?}");
        }
    }

    #[test]
    fn empty_password_and_bad_input_are_refused() {
        let f = &fixtures()[1];
        for format in P12Format::ALL {
            assert!(matches!(
                pkcs12(EMAIL, &f.key, &f.chain, "", format),
                Err(BundleError::EmptyPassword)
            ));
        }
        let p12 = pkcs12(EMAIL, &f.key, &f.chain, PASSWORD, P12Format::Modern).unwrap();
        assert!(matches!(
            check_pkcs12(&p12, "", &f.chain[0]),
            Err(BundleError::EmptyPassword)
        ));
        assert!(matches!(
            pkcs12(EMAIL, &f.key, &[], PASSWORD, P12Format::Compat),
            Err(BundleError::EmptyChain)
        ));
        let bad_intermediate = vec![f.chain[0].clone(), b"junk".to_vec()];
        assert!(matches!(
            pkcs12(
                EMAIL,
                &f.key,
                &bad_intermediate,
                PASSWORD,
                P12Format::Compat
            ),
            Err(BundleError::BadCertificate { index: 1 })
        ));
        assert!(matches!(
            pkcs12(EMAIL, b"junk", &f.chain, PASSWORD, P12Format::Compat),
            Err(BundleError::BadKey)
        ));
    }

    #[test]
    fn several_keys_in_one_bundle_each_beside_its_certificate() {
        let all = fixtures();
        let entries: Vec<(&[u8], &[Vec<u8>])> = all
            .iter()
            .map(|f| (f.key.as_slice(), f.chain.as_slice()))
            .collect();
        let leaves: Vec<&[u8]> = all.iter().map(|f| f.chain[0].as_slice()).collect();
        for format in P12Format::ALL {
            let p12 = pkcs12_many(EMAIL, &entries, PASSWORD, format).unwrap();
            check_pkcs12_many(&p12, PASSWORD, &leaves).unwrap();
            assert!(matches!(
                check_pkcs12(&p12, PASSWORD, leaves[0]),
                Err(BundleError::KeyCount(n)) if n == all.len()
            ));
            assert!(matches!(
                check_pkcs12_many(&p12, PASSWORD, &leaves[1..]),
                Err(BundleError::KeyCount(_))
            ));
            // The same address, issuer and expiry: the names differ by serial number.
            let archive = Pkcs12Archive::from_pkcs12(&p12, PASSWORD).unwrap();
            let mut names: Vec<String> = archive
                .keys
                .iter()
                .filter_map(|k| k.friendly_name.clone())
                .collect();
            assert_eq!(names.len(), all.len());
            names.sort();
            names.dedup();
            assert_eq!(names.len(), all.len(), "{names:?}");
        }
    }
}
