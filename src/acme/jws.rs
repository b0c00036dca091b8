//! JSON Web Keys, RFC 7638 thumbprints, flattened JWS (RFC 8555 §6.2) and the external account
//! binding MAC (RFC 8555 §7.3.4). Pure: keys and inputs in, JSON values out; no IO.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

/// Unpadded base64url, as every ACME JSON field uses.
pub fn b64u(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Errors from key handling and signing.
#[derive(Debug, thiserror::Error)]
pub enum JwsError {
    #[error("the account key file is not a P-256 PKCS#8 key")]
    BadAccountKey,
    #[error("the external account binding key is empty")]
    EmptyMacKey,
    #[error("signing failed")]
    Signing,
    #[error("the certificate key is not an RSA, P-256, P-384 or Ed25519 PKCS#8 key")]
    BadCertificateKey,
}

/// A public JSON Web Key: the members RFC 7638 requires for each key type, base64url-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jwk {
    /// An elliptic-curve key (`kty` "EC"): curve name and full-length coordinates.
    Ec {
        crv: &'static str,
        x: String,
        y: String,
    },
    /// An RSA key: modulus and exponent without leading zero octets.
    Rsa { n: String, e: String },
    /// An octet key pair (`kty` "OKP"), such as Ed25519.
    Okp { crv: &'static str, x: String },
}

impl Jwk {
    /// The JWK as JSON (for `jwk` headers and the EAB payload).
    pub fn to_json(&self) -> Value {
        serde_json::from_str(&self.canonical()).unwrap_or_default()
    }

    /// The RFC 7638 form: required members only, in lexicographic order, no whitespace. Every
    /// value is base64url or a fixed curve name, so nothing needs escaping.
    fn canonical(&self) -> String {
        match self {
            Jwk::Ec { crv, x, y } => format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#),
            Jwk::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
            Jwk::Okp { crv, x } => format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{x}"}}"#),
        }
    }

    /// The RFC 7638 thumbprint: base64url(SHA-256(canonical form)).
    pub fn thumbprint(&self) -> String {
        b64u(ring::digest::digest(
            &ring::digest::SHA256,
            self.canonical().as_bytes(),
        ))
    }

    /// An RSA JWK from big-endian modulus and exponent, leading zero octets stripped.
    pub fn rsa(modulus: &[u8], exponent: &[u8]) -> Jwk {
        let strip = |b: &[u8]| {
            let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
            b64u(&b[start..])
        };
        Jwk::Rsa {
            n: strip(modulus),
            e: strip(exponent),
        }
    }
}

/// Something that signs JWS: the account key, or a certificate's key for revocation.
pub trait Signer {
    /// The JWS `alg` value.
    fn alg(&self) -> &'static str;
    /// The public key as a JWK.
    fn jwk(&self) -> Jwk;
    /// The JWS signature over `message` (for ECDSA: fixed-width R||S, not DER).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwsError>;
}

/// An ES256 (ECDSA P-256, SHA-256) account key.
pub struct AccountKey {
    pair: EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKey")
            .field("jwk", &self.jwk())
            .finish_non_exhaustive()
    }
}

impl AccountKey {
    /// Makes a new key; returns it with its PKCS#8 DER encoding, for storing.
    pub fn generate() -> Result<(AccountKey, Vec<u8>), JwsError> {
        let rng = ring::rand::SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| JwsError::Signing)?;
        let key = AccountKey::from_pkcs8(pkcs8.as_ref())?;
        Ok((key, pkcs8.as_ref().to_vec()))
    }

    /// Loads a key from PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<AccountKey, JwsError> {
        let rng = ring::rand::SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pair = EcdsaKeyPair::from_pkcs8(alg, der, &rng).map_err(|_| JwsError::BadAccountKey)?;
        Ok(AccountKey { pair, rng })
    }
}

impl Signer for AccountKey {
    fn alg(&self) -> &'static str {
        "ES256"
    }

    fn jwk(&self) -> Jwk {
        // An uncompressed point: 0x04 || x (32 octets) || y (32 octets).
        let point = self.pair.public_key().as_ref();
        Jwk::Ec {
            crv: "P-256",
            x: b64u(&point[1..33]),
            y: b64u(&point[33..65]),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwsError> {
        let sig = self
            .pair
            .sign(&self.rng, message)
            .map_err(|_| JwsError::Signing)?;
        Ok(sig.as_ref().to_vec())
    }
}

/// A certificate's own key, for revocation signed by it (RFC 8555 §7.6): RS256, ES256, ES384
/// or EdDSA.
pub enum CertKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair, &'static str, &'static str),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKey")
            .field("alg", &self.alg())
            .finish_non_exhaustive()
    }
}

impl CertKey {
    /// Loads any of the certificate key types smime-acme makes, from PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<CertKey, JwsError> {
        let rng = ring::rand::SystemRandom::new();
        if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
            return Ok(CertKey::Rsa(pair));
        }
        for (alg, crv, name) in [
            (
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                "P-256",
                "ES256",
            ),
            (
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                "P-384",
                "ES384",
            ),
        ] {
            if let Ok(pair) = EcdsaKeyPair::from_pkcs8(alg, der, &rng) {
                return Ok(CertKey::Ec(pair, crv, name));
            }
        }
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(CertKey::Ed25519)
            .map_err(|_| JwsError::BadCertificateKey)
    }
}

impl Signer for CertKey {
    fn alg(&self) -> &'static str {
        match self {
            CertKey::Rsa(_) => "RS256",
            CertKey::Ec(_, _, alg) => alg,
            CertKey::Ed25519(_) => "EdDSA",
        }
    }

    fn jwk(&self) -> Jwk {
        match self {
            CertKey::Rsa(pair) => {
                let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                Jwk::rsa(&public.n, &public.e)
            }
            CertKey::Ec(pair, crv, _) => {
                let point = pair.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                Jwk::Ec {
                    crv,
                    x: b64u(&point[1..1 + half]),
                    y: b64u(&point[1 + half..]),
                }
            }
            CertKey::Ed25519(pair) => Jwk::Okp {
                crv: "Ed25519",
                x: b64u(pair.public_key().as_ref()),
            },
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwsError> {
        let rng = ring::rand::SystemRandom::new();
        match self {
            CertKey::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| JwsError::Signing)?;
                Ok(sig)
            }
            CertKey::Ec(pair, _, _) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| JwsError::Signing),
            CertKey::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// How the protected header names the key: the full public key, or the account URL.
#[derive(Debug, Clone, Copy)]
pub enum KeyRef<'a> {
    /// `jwk`: for newAccount, and for revocation signed by the certificate's key.
    Jwk,
    /// `kid`: the account URL, for every other request.
    Kid(&'a str),
}

/// A flattened JWS. `payload` None is POST-as-GET (an empty payload string); `nonce` None is
/// for inner JWS (key rollover), which carry none.
pub fn sign(
    signer: &dyn Signer,
    key_ref: KeyRef<'_>,
    nonce: Option<&str>,
    url: &str,
    payload: Option<&Value>,
) -> Result<Value, JwsError> {
    let mut protected = json!({"alg": signer.alg(), "url": url});
    match key_ref {
        KeyRef::Jwk => protected["jwk"] = signer.jwk().to_json(),
        KeyRef::Kid(kid) => protected["kid"] = json!(kid),
    }
    if let Some(nonce) = nonce {
        protected["nonce"] = json!(nonce);
    }
    let protected = b64u(protected.to_string());
    let payload = payload.map(|p| b64u(p.to_string())).unwrap_or_default();
    let signature = signer.sign(format!("{protected}.{payload}").as_bytes())?;
    Ok(json!({"protected": protected, "payload": payload, "signature": b64u(signature)}))
}

/// The `externalAccountBinding` member of a newAccount payload: an HS256 JWS over the account's
/// public JWK, keyed with the CA's MAC key (raw bytes, already base64url-decoded).
pub fn external_account_binding(
    eab_kid: &str,
    mac_key: &[u8],
    account_jwk: &Jwk,
    url: &str,
) -> Result<Value, JwsError> {
    if mac_key.is_empty() {
        return Err(JwsError::EmptyMacKey);
    }
    let protected = b64u(json!({"alg": "HS256", "kid": eab_kid, "url": url}).to_string());
    let payload = b64u(account_jwk.canonical());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, mac_key);
    let tag = ring::hmac::sign(&key, format!("{protected}.{payload}").as_bytes());
    Ok(json!({"protected": protected, "payload": payload, "signature": b64u(tag)}))
}

/// Fills `buf` with random bytes from the system's generator.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), JwsError> {
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| JwsError::Signing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn decode(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).expect("base64url")
    }

    #[test]
    fn rfc7638_rsa_example_thumbprint() {
        let jwk = Jwk::Rsa {
            n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into(),
            e: "AQAB".into(),
        };
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn rfc7515_p256_key_thumbprint() {
        let jwk = Jwk::Ec {
            crv: "P-256",
            x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into(),
            y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into(),
        };
        assert_eq!(
            jwk.thumbprint(),
            "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"
        );
    }

    #[test]
    fn rsa_jwk_strips_leading_zero_octets() {
        assert_eq!(
            Jwk::rsa(&[0, 0, 1, 2], &[0, 1, 0, 1]),
            Jwk::Rsa {
                n: "AQI".into(),
                e: "AQAB".into()
            }
        );
    }

    #[test]
    fn es256_jws_verifies_with_ring_and_has_the_right_header() {
        let (key, pkcs8) = AccountKey::generate().unwrap();
        let reloaded = AccountKey::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(key.jwk(), reloaded.jwk());

        let payload = json!({"identifiers": [{"type": "email", "value": "alice@example.test"}]});
        let jws = sign(
            &key,
            KeyRef::Kid("https://ca/acct/1"),
            Some("n0nce"),
            "https://ca/new-order",
            Some(&payload),
        )
        .unwrap();
        let protected: Value =
            serde_json::from_slice(&decode(jws["protected"].as_str().unwrap())).unwrap();
        assert_eq!(
            protected,
            json!({"alg": "ES256", "kid": "https://ca/acct/1", "nonce": "n0nce", "url": "https://ca/new-order"})
        );
        let body: Value =
            serde_json::from_slice(&decode(jws["payload"].as_str().unwrap())).unwrap();
        assert_eq!(body, payload);

        let Jwk::Ec { x, y, .. } = key.jwk() else {
            panic!("not an EC key")
        };
        let point = [vec![4], decode(&x), decode(&y)].concat();
        let signed = format!(
            "{}.{}",
            jws["protected"].as_str().unwrap(),
            jws["payload"].as_str().unwrap()
        );
        let sig = decode(jws["signature"].as_str().unwrap());
        assert_eq!(sig.len(), 64, "ES256 signatures are fixed-width R||S");
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(signed.as_bytes(), &sig)
            .expect("the signature verifies");
    }

    #[test]
    fn post_as_get_has_an_empty_payload_and_jwk_mode_has_no_kid() {
        let (key, _) = AccountKey::generate().unwrap();
        let jws = sign(&key, KeyRef::Jwk, Some("n"), "https://ca/x", None).unwrap();
        assert_eq!(jws["payload"], "");
        let protected: Value =
            serde_json::from_slice(&decode(jws["protected"].as_str().unwrap())).unwrap();
        assert_eq!(protected["jwk"], key.jwk().to_json());
        assert!(protected.get("kid").is_none());
    }

    #[test]
    fn external_account_binding_is_an_hs256_mac_over_the_account_jwk() {
        let (key, _) = AccountKey::generate().unwrap();
        let mac_key = b"0123456789abcdef0123456789abcdef";
        let eab =
            external_account_binding("kid-1", mac_key, &key.jwk(), "https://ca/new-acct").unwrap();
        let protected: Value =
            serde_json::from_slice(&decode(eab["protected"].as_str().unwrap())).unwrap();
        assert_eq!(
            protected,
            json!({"alg": "HS256", "kid": "kid-1", "url": "https://ca/new-acct"})
        );
        let payload: Value =
            serde_json::from_slice(&decode(eab["payload"].as_str().unwrap())).unwrap();
        assert_eq!(payload, key.jwk().to_json());
        let signed = format!(
            "{}.{}",
            eab["protected"].as_str().unwrap(),
            eab["payload"].as_str().unwrap()
        );
        let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, mac_key);
        ring::hmac::verify(
            &mac,
            signed.as_bytes(),
            &decode(eab["signature"].as_str().unwrap()),
        )
        .expect("MAC verifies");
        assert!(matches!(
            external_account_binding("k", b"", &key.jwk(), "u"),
            Err(JwsError::EmptyMacKey)
        ));
    }

    #[test]
    fn certificate_keys_of_every_type_sign_what_their_jwk_verifies() {
        use crate::keys::{self, KeyType};
        use ring::signature::{self, UnparsedPublicKey};
        for (key_type, alg) in [
            (KeyType::Rsa2048, "RS256"),
            (KeyType::P256, "ES256"),
            (KeyType::P384, "ES384"),
            (KeyType::Ed25519, "EdDSA"),
        ] {
            let key = CertKey::from_pkcs8(&keys::generate(key_type).unwrap()).unwrap();
            assert_eq!(key.alg(), alg);
            let message = b"protected.payload";
            let sig = key.sign(message).unwrap();
            let ok = match key.jwk() {
                Jwk::Rsa { n, e } => signature::RsaPublicKeyComponents {
                    n: decode(&n),
                    e: decode(&e),
                }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, &sig)
                .is_ok(),
                Jwk::Ec { crv, x, y } => {
                    let point = [vec![4], decode(&x), decode(&y)].concat();
                    let alg = match crv {
                        "P-256" => &signature::ECDSA_P256_SHA256_FIXED,
                        _ => &signature::ECDSA_P384_SHA384_FIXED,
                    };
                    UnparsedPublicKey::new(alg, point)
                        .verify(message, &sig)
                        .is_ok()
                }
                Jwk::Okp { x, .. } => UnparsedPublicKey::new(&signature::ED25519, decode(&x))
                    .verify(message, &sig)
                    .is_ok(),
            };
            assert!(ok, "{alg} signature verifies with the JWK");
        }
        assert!(CertKey::from_pkcs8(b"not a key").is_err());
    }
}
