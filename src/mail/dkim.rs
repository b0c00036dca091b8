//! DKIM verification of challenge mails (mail-auth), with keys from the system's resolver or a
//! given DNS server. IO: DNS, kept cheap for forged mail: at most [`MAX_SIGNATURES`] signatures a
//! mail, only those of the sender's domain, each DNS lookup bounded by [`DNS_TIMEOUT`] and the
//! whole verification by the caller's deadline; key records are kept for their TTL. The verdict
//! over the results is `challenge::authenticity`.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mail_auth::common::crypto::Algorithm;
use mail_auth::common::headers::Header;
use mail_auth::common::resolver::ToFqdn;
use mail_auth::common::verify::VerifySignature;
use mail_auth::dkim::Signature;
use mail_auth::{
    AuthenticatedMessage, DkimOutput, DkimResult, MessageAuthenticator, Parameters, ResolverCache,
    Txt,
};

use crate::challenge::authenticity::{DkimCheck, RSA_SHA1_REFUSED};

/// At most this many DKIM signatures of one mail are verified.
pub const MAX_SIGNATURES: usize = 3;
/// One DNS lookup (all name servers together) gives up after this long, and is not retried.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(2);
/// RFC 8301: RSA keys shorter than this are not evidence.
pub const MIN_RSA_KEY_BITS: usize = 1024;
/// How long [`Verifier::verify`] may take as a whole.
const VERIFY_BOUND: Duration = Duration::from_secs(10);
/// At most this many signatures left unverified are reported, so the log says why.
const MAX_REPORTED: usize = 8;
/// At most this many key records are kept.
const MAX_CACHED_KEYS: usize = 64;
/// The detail of a signature whose verification ran out of time.
const TIMED_OUT: &str = "DNS lookup timed out";

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("cannot set up DNS for DKIM: {0}")]
    Resolver(String),
}

/// Verifies DKIM signatures.
pub struct Verifier {
    authenticator: MessageAuthenticator,
    runtime: tokio::runtime::Runtime,
    keys: KeyCache,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier asking `dns_server`, or the system's resolvers when None.
    pub fn new(dns_server: Option<SocketAddr>) -> Result<Verifier, DkimError> {
        let err = |e: &dyn std::fmt::Display| DkimError::Resolver(e.to_string());
        let (config, mut options) = super::resolve::config(dns_server).map_err(|e| err(&e))?;
        // hickory's `timeout` bounds one lookup across all name servers; `attempts` counts
        // retries after the first try.
        options.timeout = DNS_TIMEOUT;
        options.attempts = 0;
        let authenticator = MessageAuthenticator::new(config, options).map_err(|e| err(&e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err(&e))?;
        Ok(Verifier {
            authenticator,
            runtime,
            keys: KeyCache::default(),
        })
    }

    /// Checks of the DKIM signatures of `raw` whose `d=` is `from_domain` (ASCII
    /// case-insensitive), at most [`MAX_SIGNATURES`] of them, all DNS lookups ending by
    /// `deadline`. Signatures left out (another domain, rsa-sha1, beyond the limit, malformed)
    /// are reported as failed checks saying why, without any lookup; a signature whose
    /// verification runs out of time gives a temporary check.
    pub fn verify_from(&self, raw: &[u8], from_domain: &str, deadline: Instant) -> Vec<DkimCheck> {
        self.verify_signatures(raw, Some(from_domain), deadline)
    }

    /// Checks of the DKIM signatures of `raw` of any domain, with the limits of
    /// [`verify_from`](Self::verify_from) otherwise and a deadline 10 s away.
    pub fn verify(&self, raw: &[u8]) -> Vec<DkimCheck> {
        self.verify_signatures(raw, None, Instant::now() + VERIFY_BOUND)
    }

    fn verify_signatures(
        &self,
        raw: &[u8],
        from_domain: Option<&str>,
        deadline: Instant,
    ) -> Vec<DkimCheck> {
        let Some(mut message) = AuthenticatedMessage::parse(raw) else {
            return Vec::new();
        };
        let (selected, mut checks) = select_signatures(&mut message, from_domain);
        let deadline = tokio::time::Instant::from_std(deadline);
        // One signature at a time, so that one whose key lookup hangs does not cost the
        // verdicts of the others.
        for header in selected {
            let signature = header.header.clone();
            message.dkim_headers = vec![header];
            let params = Parameters::new(&message).with_txt_cache(&self.keys);
            // The timer must be made inside the runtime.
            let verified = self.runtime.block_on(async {
                tokio::time::timeout_at(deadline, self.authenticator.verify_dkim(params)).await
            });
            match verified {
                Ok(outputs) => checks.extend(outputs.iter().map(|o| self.check_of(o))),
                Err(_) => checks.push(unverified(&signature, TIMED_OUT, true)),
            }
        }
        checks
    }

    fn check_of(&self, output: &DkimOutput<'_>) -> DkimCheck {
        let signature = output.signature();
        let result = output.result();
        let refusal = match (result, signature) {
            (DkimResult::Pass, Some(s)) => rfc8301_refusal(s.a, self.key_bits(s)),
            _ => None,
        };
        DkimCheck {
            pass: matches!(result, DkimResult::Pass) && refusal.is_none(),
            domain: signature
                .map(|s| s.d.to_ascii_lowercase())
                .unwrap_or_default(),
            algorithm: signature.map(|s| format!("{:?}", s.a)).unwrap_or_default(),
            signed_headers: signature
                .map(|s| s.h.iter().map(|h| h.to_ascii_lowercase()).collect())
                .unwrap_or_default(),
            detail: refusal.unwrap_or_else(|| format!("{result:?}")),
            temporary: matches!(result, DkimResult::TempError(_)),
        }
    }

    /// The size of the key `signature` was verified with, from the key records kept.
    fn key_bits(&self, signature: &Signature) -> Option<usize> {
        let name = signature.domain_key();
        match self.keys.get::<str>(name.to_fqdn().as_ref())? {
            Txt::DomainKey(key) => Some(key.p.public_key_bits()),
            _ => None,
        }
    }
}

/// Takes out of `message` the DKIM signatures worth verifying: `d=` equal to `from_domain` (any
/// when None), not rsa-sha1, at most [`MAX_SIGNATURES`]. The rest, and malformed signatures,
/// become failed checks (at most [`MAX_REPORTED`]). Verification of the chosen ones asks DNS for
/// their keys and nothing else (no report or third-party-signature records).
fn select_signatures<'x>(
    message: &mut AuthenticatedMessage<'x>,
    from_domain: Option<&str>,
) -> (Vec<Header<'x, Signature>>, Vec<DkimCheck>) {
    let mut reported: Vec<DkimCheck> = std::mem::take(&mut message.errors)
        .into_iter()
        .filter(|e| e.name.trim_ascii().eq_ignore_ascii_case(b"DKIM-Signature"))
        .map(|e| DkimCheck {
            pass: false,
            domain: String::new(),
            algorithm: String::new(),
            signed_headers: Vec::new(),
            detail: format!("malformed DKIM-Signature: {}", e.header),
            temporary: false,
        })
        .take(MAX_REPORTED)
        .collect();
    let mut selected = Vec::new();
    for mut header in std::mem::take(&mut message.dkim_headers) {
        let signature = &header.header;
        let reason = if from_domain.is_some_and(|d| !signature.d.eq_ignore_ascii_case(d)) {
            Some(format!(
                "d={} is not the sender's domain; not verified",
                signature.d
            ))
        } else if signature.a == Algorithm::RsaSha1 {
            Some(RSA_SHA1_REFUSED.to_owned())
        } else if selected.len() >= MAX_SIGNATURES {
            Some(format!(
                "more than {MAX_SIGNATURES} signatures of the sender's domain; not verified"
            ))
        } else {
            None
        };
        match reason {
            Some(reason) if reported.len() < MAX_REPORTED => {
                reported.push(unverified(signature, &reason, false));
            }
            Some(_) => {}
            None => {
                header.header.r = false;
                header.header.atps = None;
                selected.push(header);
            }
        }
    }
    (selected, reported)
}

/// A failed check of `signature`, which was not (fully) verified.
fn unverified(signature: &Signature, detail: &str, temporary: bool) -> DkimCheck {
    DkimCheck {
        pass: false,
        domain: signature.d.to_ascii_lowercase(),
        algorithm: format!("{:?}", signature.a),
        signed_headers: signature.h.iter().map(|h| h.to_ascii_lowercase()).collect(),
        detail: detail.to_owned(),
        temporary,
    }
}

/// Why a signature that verifies is still no evidence (RFC 8301): rsa-sha1, or an RSA key under
/// [`MIN_RSA_KEY_BITS`]. mail-auth, built on ring here, already fails RSA keys under 1024 bits
/// (`RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY`, minimum 1024 bits: ring-0.17.14
/// `src/rsa/verification.rs:79-81`, used by mail-auth-0.13.3 `src/common/crypto/ring_impls.rs:
/// 259-263`); this rule keeps that true whatever the backend.
fn rfc8301_refusal(algorithm: Algorithm, key_bits: Option<usize>) -> Option<String> {
    match (algorithm, key_bits) {
        (Algorithm::RsaSha1, _) => Some(RSA_SHA1_REFUSED.to_owned()),
        (Algorithm::RsaSha256, Some(bits)) if bits < MIN_RSA_KEY_BITS => Some(format!(
            "its RSA key has {bits} bits, fewer than {MIN_RSA_KEY_BITS} (RFC 8301)"
        )),
        _ => None,
    }
}

/// DKIM key records (and other TXT answers mail-auth parsed) by name, each until its TTL ends;
/// at most [`MAX_CACHED_KEYS`], the one expiring first giving way.
#[derive(Default)]
struct KeyCache(Mutex<HashMap<Box<str>, (Txt, Instant)>>);

impl ResolverCache<Box<str>, Txt> for KeyCache {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.0.lock().ok()?;
        let (value, until) = map.get(name)?;
        (*until > Instant::now()).then(|| value.clone())
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.remove(name).map(|(value, _)| value)
    }

    fn insert(&self, name: Box<str>, value: Txt, valid_until: Instant) {
        let Ok(mut map) = self.0.lock() else {
            return;
        };
        if map.len() >= MAX_CACHED_KEYS && !map.contains_key(&name) {
            let now = Instant::now();
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= MAX_CACHED_KEYS {
                let first = map.iter().min_by_key(|(_, (_, until))| *until);
                if let Some(first) = first.map(|(name, _)| name.clone()) {
                    map.remove(&first);
                }
            }
        }
        map.insert(name, (value, valid_until));
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    use mail_auth::dkim::DkimSigner;

    use super::*;

    const MAIL: &str = "Auto-Submitted: auto-generated; type=acme\r\nFrom: acme@ca.test\r\n\
                        To: alice@example.test\r\nSubject: ACME: abc\r\n\
                        Message-ID: <1@ca.test>\r\nDate: Sat, 5 Dec 2020 10:08:55 +0100\r\n\
                        \r\nHello\r\n";

    /// A DKIM-Signature header that parses; its signature is not meant to verify.
    fn fake(algorithm: &str, domain: &str, selector: &str) -> String {
        format!(
            "DKIM-Signature: v=1; a={algorithm}; c=relaxed/relaxed; d={domain}; s={selector}; \
             r=y; h=from:to:subject; bh=AAAA; b=AAAA\r\n"
        )
    }

    /// A DNS server that never answers, and a verifier asking it.
    fn silent_verifier() -> (std::net::UdpSocket, Verifier) {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let verifier = Verifier::new(Some(socket.local_addr().unwrap())).unwrap();
        (socket, verifier)
    }

    /// `MAIL` signed with a fresh Ed25519 key as `selector._domainkey.domain`, whose record is
    /// put among `verifier`'s kept keys when `publish`.
    fn signed(verifier: &Verifier, domain: &str, selector: &str, publish: bool) -> Vec<u8> {
        let der = Ed25519Key::generate_pkcs8().unwrap();
        let key = Ed25519Key::from_pkcs8_der(&der).unwrap();
        let public = base64::engine::general_purpose::STANDARD.encode(key.public_key());
        let signature = DkimSigner::from_key(key)
            .domain(domain)
            .selector(selector)
            .headers([
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "Auto-Submitted",
            ])
            .sign(MAIL.as_bytes())
            .unwrap();
        if publish {
            let record = DomainKey::parse(format!("v=DKIM1; k=ed25519; p={public}").as_bytes());
            verifier.keys.insert(
                format!("{selector}._domainkey.{domain}.").into(),
                Txt::from(record),
                Instant::now() + Duration::from_secs(3600),
            );
        }
        [signature.to_header().as_bytes(), MAIL.as_bytes()].concat()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn only_the_senders_domain_and_at_most_three_are_chosen() {
        let mut raw = String::new();
        for selector in ["s1", "s2", "s3", "s4"] {
            raw.push_str(&fake("rsa-sha256", "CA.test", selector));
        }
        raw.push_str(&fake("rsa-sha256", "evil.test", "e1"));
        raw.push_str(&fake("rsa-sha1", "ca.test", "old"));
        raw.push_str("DKIM-Signature: v=1; a=rsa-sha256; garbage\r\n");
        raw.push_str(MAIL);
        let mut message = AuthenticatedMessage::parse(raw.as_bytes()).unwrap();
        let (selected, reported) = select_signatures(&mut message, Some("ca.TEST"));

        let chosen: Vec<&str> = selected.iter().map(|h| h.header.s.as_str()).collect();
        assert_eq!(chosen, ["s1", "s2", "s3"]);
        assert!(
            selected
                .iter()
                .all(|h| !h.header.r && h.header.atps.is_none()),
            "no report or third-party lookups"
        );
        let details: Vec<&str> = reported.iter().map(|c| c.detail.as_str()).collect();
        assert!(
            details[0].starts_with("malformed DKIM-Signature"),
            "{details:?}"
        );
        assert_eq!(
            &details[1..],
            [
                "more than 3 signatures of the sender's domain; not verified",
                "d=evil.test is not the sender's domain; not verified",
                "rsa-sha1 is not accepted (RFC 8301)",
            ]
        );
        assert!(reported.iter().all(|c| !c.pass && !c.temporary));
        assert!(message.errors.is_empty() && message.dkim_headers.is_empty());

        // Without a domain, any domain is chosen; rsa-sha1 still is not.
        let mut message = AuthenticatedMessage::parse(raw.as_bytes()).unwrap();
        let (selected, _) = select_signatures(&mut message, None);
        assert_eq!(selected.len(), 3);
        let raw = format!("{}{}", fake("rsa-sha256", "evil.test", "e1"), MAIL);
        let mut message = AuthenticatedMessage::parse(raw.as_bytes()).unwrap();
        assert_eq!(select_signatures(&mut message, None).0.len(), 1);
    }

    #[test]
    fn unverified_reports_are_bounded() {
        let mut raw = String::new();
        for i in 0..30 {
            raw.push_str(&fake("rsa-sha256", "evil.test", &format!("s{i}")));
        }
        raw.push_str(MAIL);
        let mut message = AuthenticatedMessage::parse(raw.as_bytes()).unwrap();
        let (selected, reported) = select_signatures(&mut message, Some("ca.test"));
        assert!(selected.is_empty());
        assert_eq!(reported.len(), MAX_REPORTED);
    }

    #[test]
    fn rsa_sha1_and_short_rsa_keys_are_not_evidence() {
        assert_eq!(
            rfc8301_refusal(Algorithm::RsaSha1, Some(2048)).as_deref(),
            Some("rsa-sha1 is not accepted (RFC 8301)")
        );
        assert_eq!(
            rfc8301_refusal(Algorithm::RsaSha256, Some(512)).as_deref(),
            Some("its RSA key has 512 bits, fewer than 1024 (RFC 8301)")
        );
        assert_eq!(rfc8301_refusal(Algorithm::RsaSha256, Some(1024)), None);
        assert_eq!(rfc8301_refusal(Algorithm::RsaSha256, None), None);
        assert_eq!(rfc8301_refusal(Algorithm::Ed25519Sha256, Some(256)), None);
    }

    #[test]
    fn key_size_is_read_from_the_kept_record() {
        use rsa::pkcs8::EncodePublicKey;
        let (_dns, verifier) = silent_verifier();
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 512).unwrap();
        let der = key.to_public_key().to_public_key_der().unwrap();
        let public = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
        let record = DomainKey::parse(format!("v=DKIM1; k=rsa; p={public}").as_bytes());
        verifier.keys.insert(
            "weak._domainkey.ca.test.".into(),
            Txt::from(record),
            Instant::now() + Duration::from_secs(60),
        );
        let signature = Signature {
            d: "CA.test".into(),
            s: "weak".into(),
            a: Algorithm::RsaSha256,
            ..Signature::default()
        };
        let bits = verifier.key_bits(&signature);
        assert_eq!(bits, Some(512));
        assert!(rfc8301_refusal(signature.a, bits).is_some());
    }

    #[test]
    fn a_signature_of_the_senders_domain_verifies() {
        let (_dns, verifier) = silent_verifier();
        let raw = signed(&verifier, "ca.test", "ed", true);
        let checks = verifier.verify_from(&raw, "CA.test", soon());
        assert_eq!(checks.len(), 1, "{checks:?}");
        assert!(checks[0].pass, "{checks:?}");
        assert_eq!(checks[0].domain, "ca.test");
        assert_eq!(checks[0].algorithm, "Ed25519Sha256");
        assert!(
            checks[0]
                .signed_headers
                .contains(&"auto-submitted".to_owned())
        );
        assert_eq!(verifier.verify(&raw), checks);

        let tampered = String::from_utf8_lossy(&raw).replace("ACME: abc", "ACME: abd");
        let checks = verifier.verify_from(tampered.as_bytes(), "ca.test", soon());
        assert!(!checks[0].pass, "{checks:?}");
    }

    #[test]
    fn another_domains_signature_is_not_verified() {
        let (_dns, verifier) = silent_verifier();
        // Its key is not kept: verifying it would wait for the silent DNS server.
        let raw = signed(&verifier, "evil.test", "ed", false);
        let started = Instant::now();
        let checks = verifier.verify_from(&raw, "ca.test", soon());
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(checks.len(), 1);
        assert!(!checks[0].pass && !checks[0].temporary);
        assert_eq!(
            checks[0].detail,
            "d=evil.test is not the sender's domain; not verified"
        );
    }

    #[test]
    fn verification_ends_by_the_deadline() {
        let (_dns, verifier) = silent_verifier();
        let raw = signed(&verifier, "ca.test", "ed", false);
        let started = Instant::now();
        let checks = verifier.verify_from(&raw, "ca.test", started + Duration::from_millis(300));
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        assert_eq!(checks.len(), 1);
        assert!(!checks[0].pass && checks[0].temporary);
        assert_eq!(checks[0].detail, "DNS lookup timed out");
    }

    #[test]
    fn one_dns_lookup_gives_up_after_the_dns_timeout() {
        let (_dns, verifier) = silent_verifier();
        let raw = signed(&verifier, "ca.test", "ed", false);
        let started = Instant::now();
        let checks = verifier.verify_from(&raw, "ca.test", started + Duration::from_secs(30));
        let took = started.elapsed();
        assert!(took < DNS_TIMEOUT + Duration::from_secs(2), "took {took:?}");
        assert_eq!(checks.len(), 1);
        assert!(!checks[0].pass && checks[0].temporary, "{checks:?}");
    }
}
