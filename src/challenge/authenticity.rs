//! Is a challenge mail really from the CA? The policy (`--challenge-auth`) and its verdict over
//! DKIM results or the receiving server's Authentication-Results. Pure: the DKIM verification
//! itself (which needs DNS) is done by `mail::dkim` and handed in as [`DkimCheck`] values.

use std::fmt;
use std::str::FromStr;

/// Headers a DKIM signature of a challenge mail must cover for us to trust it. A mail with a
/// Reply-To must have that covered too ([`REPLY_TO`]): it decides where the reply goes.
pub const REQUIRED_SIGNED: [&str; 6] = [
    "from",
    "subject",
    "to",
    "date",
    "message-id",
    "auto-submitted",
];

/// The `h=` name of Reply-To, required to be signed when the mail has one.
pub const REPLY_TO: &str = "reply-to";

/// Why an rsa-sha1 signature is no evidence, whatever its cryptographic verdict.
pub const RSA_SHA1_REFUSED: &str = "rsa-sha1 is not accepted (RFC 8301)";

/// How challenge mails are authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ChallengeAuth {
    /// Verify a DKIM signature here, with keys from DNS.
    #[default]
    Dkim,
    /// Trust the `Authentication-Results` header added by the mail server with this authserv-id.
    AuthenticationResults(String),
    /// No check at all (insecure; must be chosen explicitly).
    None,
}

impl FromStr for ChallengeAuth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dkim" => Ok(ChallengeAuth::Dkim),
            "none" => Ok(ChallengeAuth::None),
            _ => match s.strip_prefix("authentication-results:") {
                Some(id) if !id.trim().is_empty() => {
                    Ok(ChallengeAuth::AuthenticationResults(id.trim().to_owned()))
                }
                _ => Err(format!(
                    "{s:?}: expected dkim, authentication-results:<AUTHSERV-ID> or none"
                )),
            },
        }
    }
}

impl fmt::Display for ChallengeAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChallengeAuth::Dkim => f.write_str("dkim"),
            ChallengeAuth::AuthenticationResults(id) => write!(f, "authentication-results:{id}"),
            ChallengeAuth::None => f.write_str("none"),
        }
    }
}

/// The outcome of verifying one DKIM signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimCheck {
    /// The signature verified (body hash and signature with the key from DNS).
    pub pass: bool,
    /// Its `d=` domain.
    pub domain: String,
    /// Its algorithm (`RsaSha256`, `Ed25519Sha256`, ...); an rsa-sha1 signature never counts.
    pub algorithm: String,
    /// Its `h=` list.
    pub signed_headers: Vec<String>,
    /// For a failure: what went wrong.
    pub detail: String,
    /// The failure was temporary (DNS unreachable): retry rather than call it a forgery.
    pub temporary: bool,
}

/// Why a challenge mail's authenticity was not established.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("it has no DKIM signature")]
    NoDkimSignature,
    #[error("no DKIM signature verifies ({0})")]
    DkimFailed(String),
    #[error("the DKIM key could not be fetched from DNS ({0}); will retry")]
    DkimTemporary(String),
    #[error(
        "its valid DKIM signature is from {signed}, not from the sender's domain {from_domain}"
    )]
    DkimWrongDomain { signed: String, from_domain: String },
    #[error("its DKIM signature does not cover {}", .missing.join(", "))]
    DkimHeadersNotCovered { missing: Vec<String> },
    #[error(
        "its Reply-To {reply_to} is not its From address, and Authentication-Results cannot show \
         that a signature covers Reply-To"
    )]
    ReplyToNotFrom { reply_to: String },
    #[error("it has no Authentication-Results header from {0}")]
    NoAuthenticationResults(String),
    #[error("Authentication-Results from {authserv_id} does not say dkim=pass for {from_domain}")]
    AuthenticationResultsNotPass {
        authserv_id: String,
        from_domain: String,
    },
}

/// Accepts when one signature passes, is not rsa-sha1 (RFC 8301), has `d=` equal to the From
/// domain and covers [`REQUIRED_SIGNED`] and `also_signed` (say [`REPLY_TO`] when the mail has
/// one); otherwise names the most telling reason.
pub fn judge_dkim(
    checks: &[DkimCheck],
    from_domain: &str,
    also_signed: &[&str],
) -> Result<(), AuthFailure> {
    if checks.is_empty() {
        return Err(AuthFailure::NoDkimSignature);
    }
    let mut failure = None;
    for check in checks {
        let reason = if check.pass && is_rsa_sha1(&check.algorithm) {
            AuthFailure::DkimFailed(format!("d={}: {RSA_SHA1_REFUSED}", check.domain))
        } else if !check.pass {
            if check.temporary {
                AuthFailure::DkimTemporary(check.detail.clone())
            } else {
                AuthFailure::DkimFailed(format!("d={}: {}", check.domain, check.detail))
            }
        } else if !check.domain.eq_ignore_ascii_case(from_domain) {
            AuthFailure::DkimWrongDomain {
                signed: check.domain.clone(),
                from_domain: from_domain.to_owned(),
            }
        } else {
            let missing: Vec<String> = REQUIRED_SIGNED
                .iter()
                .chain(also_signed)
                .filter(|h| {
                    !check
                        .signed_headers
                        .iter()
                        .any(|s| s.trim().eq_ignore_ascii_case(h))
                })
                .map(|h| (*h).to_owned())
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            AuthFailure::DkimHeadersNotCovered { missing }
        };
        // A passing-but-unsuitable signature says more than a broken one.
        let better = match (&failure, &reason) {
            (None, _) => true,
            (Some(AuthFailure::DkimFailed(_) | AuthFailure::DkimTemporary(_)), r) => {
                !matches!(r, AuthFailure::DkimFailed(_))
            }
            _ => false,
        };
        if better {
            failure = Some(reason);
        }
    }
    Err(failure.unwrap_or(AuthFailure::NoDkimSignature))
}

/// An rsa-sha1 algorithm name, as mail-auth prints it (`RsaSha1`) or as `a=` writes it.
fn is_rsa_sha1(algorithm: &str) -> bool {
    let name: String = algorithm
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    name.eq_ignore_ascii_case("rsasha1")
}

/// Accepts when the topmost `Authentication-Results` header from `authserv_id` (the one our own
/// server added last) reports `dkim=pass` for `from_domain` (`header.d=` or `header.i=@...`).
/// Headers are given top to bottom, unfolded or not.
pub fn judge_authentication_results(
    headers: &[&str],
    authserv_id: &str,
    from_domain: &str,
) -> Result<(), AuthFailure> {
    let ours = headers.iter().map(|h| strip_comments(h)).find(|h| {
        h.split(';')
            .next()
            .and_then(|id| id.split_whitespace().next())
            .is_some_and(|id| id.eq_ignore_ascii_case(authserv_id))
    });
    let Some(ours) = ours else {
        return Err(AuthFailure::NoAuthenticationResults(authserv_id.to_owned()));
    };
    let pass = ours.split(';').skip(1).any(|resinfo| {
        let mut words = resinfo.split_whitespace();
        let result = words.next().unwrap_or_default();
        result.eq_ignore_ascii_case("dkim=pass")
            && words.any(|prop| {
                let (key, value) = prop.split_once('=').unwrap_or((prop, ""));
                let value = value.trim_matches('"');
                (key.eq_ignore_ascii_case("header.d") && value.eq_ignore_ascii_case(from_domain))
                    || (key.eq_ignore_ascii_case("header.i")
                        && value
                            .rsplit_once('@')
                            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(from_domain)))
            })
    });
    if pass {
        Ok(())
    } else {
        Err(AuthFailure::AuthenticationResultsNotPass {
            authserv_id: authserv_id.to_owned(),
            from_domain: from_domain.to_owned(),
        })
    }
}

/// Removes RFC 5322 comments `( ... )`, nested ones too, and quoted-pair escapes inside them.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if depth > 0 => {
                chars.next();
            }
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pass: bool, domain: &str, headers: &[&str]) -> DkimCheck {
        DkimCheck {
            pass,
            domain: domain.into(),
            algorithm: "RsaSha256".into(),
            signed_headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            detail: if pass {
                String::new()
            } else {
                "signature mismatch".into()
            },
            temporary: false,
        }
    }

    const ALL: [&str; 7] = [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Auto-Submitted",
        "Content-Type",
    ];

    #[test]
    fn policy_parses_and_prints() {
        assert_eq!("dkim".parse(), Ok(ChallengeAuth::Dkim));
        assert_eq!("none".parse(), Ok(ChallengeAuth::None));
        assert_eq!(
            "authentication-results:mx.example.test".parse(),
            Ok(ChallengeAuth::AuthenticationResults(
                "mx.example.test".into()
            ))
        );
        assert!("authentication-results:".parse::<ChallengeAuth>().is_err());
        assert!("spf".parse::<ChallengeAuth>().is_err());
        assert_eq!(
            ChallengeAuth::AuthenticationResults("a.b".into()).to_string(),
            "authentication-results:a.b"
        );
    }

    #[test]
    fn dkim_passes_with_matching_domain_and_coverage() {
        assert_eq!(
            judge_dkim(&[check(true, "CA.test", &ALL)], "ca.test", &[]),
            Ok(())
        );
        // One good signature among bad ones is enough.
        let checks = [
            check(false, "ca.test", &ALL),
            check(true, "other.test", &ALL),
            check(true, "ca.test", &ALL),
        ];
        assert_eq!(judge_dkim(&checks, "ca.test", &[]), Ok(()));
    }

    #[test]
    fn dkim_each_rule_alone_fails() {
        assert_eq!(
            judge_dkim(&[], "ca.test", &[]),
            Err(AuthFailure::NoDkimSignature)
        );
        assert!(matches!(
            judge_dkim(&[check(false, "ca.test", &ALL)], "ca.test", &[]),
            Err(AuthFailure::DkimFailed(_))
        ));
        assert_eq!(
            judge_dkim(&[check(true, "evil.test", &ALL)], "ca.test", &[]),
            Err(AuthFailure::DkimWrongDomain {
                signed: "evil.test".into(),
                from_domain: "ca.test".into()
            })
        );
        assert_eq!(
            judge_dkim(
                &[check(
                    true,
                    "ca.test",
                    &["From", "To", "Subject", "Date", "Message-ID"]
                )],
                "ca.test",
                &[]
            ),
            Err(AuthFailure::DkimHeadersNotCovered {
                missing: vec!["auto-submitted".into()]
            })
        );
        let mut temporary = check(false, "ca.test", &ALL);
        temporary.temporary = true;
        temporary.detail = "timed out".into();
        assert_eq!(
            judge_dkim(&[temporary], "ca.test", &[]),
            Err(AuthFailure::DkimTemporary("timed out".into()))
        );
    }

    #[test]
    fn rsa_sha1_is_not_evidence() {
        let mut sha1 = check(true, "ca.test", &ALL);
        sha1.algorithm = "RsaSha1".into();
        assert_eq!(
            judge_dkim(std::slice::from_ref(&sha1), "ca.test", &[]),
            Err(AuthFailure::DkimFailed(
                "d=ca.test: rsa-sha1 is not accepted (RFC 8301)".into()
            ))
        );
        sha1.algorithm = "rsa-sha1".into();
        assert!(judge_dkim(std::slice::from_ref(&sha1), "ca.test", &[]).is_err());
        // Beside it, a sha256 signature of the same domain still counts.
        let sha256 = check(true, "ca.test", &ALL);
        assert_eq!(judge_dkim(&[sha1, sha256], "ca.test", &[]), Ok(()));
    }

    #[test]
    fn reply_to_must_be_covered_when_asked() {
        let without = check(true, "ca.test", &ALL);
        assert_eq!(
            judge_dkim(std::slice::from_ref(&without), "ca.test", &[]),
            Ok(())
        );
        assert_eq!(
            judge_dkim(&[without], "ca.test", &[REPLY_TO]),
            Err(AuthFailure::DkimHeadersNotCovered {
                missing: vec!["reply-to".into()]
            })
        );
        let mut headers = ALL.to_vec();
        headers.push("Reply-To");
        assert_eq!(
            judge_dkim(&[check(true, "ca.test", &headers)], "ca.test", &[REPLY_TO]),
            Ok(())
        );
    }

    #[test]
    fn authentication_results_from_our_server_only() {
        let pass = "mx.example.test; dkim=pass (2048-bit key) header.d=ca.test header.i=@ca.test header.s=rsa";
        assert_eq!(
            judge_authentication_results(&[pass], "mx.example.test", "ca.test"),
            Ok(())
        );
        assert_eq!(
            judge_authentication_results(
                &["mx.example.test 1; dkim=pass header.i=@CA.test"],
                "mx.example.test",
                "ca.test"
            ),
            Ok(())
        );
        // Another server's verdict is not ours to trust.
        assert_eq!(
            judge_authentication_results(
                &["evil.test; dkim=pass header.d=ca.test"],
                "mx.example.test",
                "ca.test"
            ),
            Err(AuthFailure::NoAuthenticationResults(
                "mx.example.test".into()
            ))
        );
        // Only the topmost header from our server counts: a forged one further down does not.
        let none = "mx.example.test; dkim=none";
        assert!(judge_authentication_results(&[none, pass], "mx.example.test", "ca.test").is_err());
        // A pass for another domain, or a comment that merely mentions pass, is not a pass.
        assert!(
            judge_authentication_results(
                &["mx.example.test; dkim=pass header.d=evil.test"],
                "mx.example.test",
                "ca.test"
            )
            .is_err()
        );
        assert!(
            judge_authentication_results(
                &["mx.example.test; dkim=fail (dkim=pass header.d=ca.test) header.d=ca.test"],
                "mx.example.test",
                "ca.test"
            )
            .is_err()
        );
    }
}
