//! RFC 8823 challenge mails: parse one, and judge whether it may be answered. Pure: bytes and
//! expectations in, a verdict out; authenticity evidence comes from `authenticity`.

use mail_parser::MessageParser;

use super::authenticity::{self, AuthFailure, ChallengeAuth, DkimCheck};
use super::response::decode_lenient;

/// Mails larger than this are not challenge mails; adapters fetch no more.
pub const MAX_MAIL_BYTES: usize = 256 * 1024;
/// token-part1 longer than this is not a token.
const MAX_TOKEN_CHARS: usize = 512;
/// RFC 8823: token-part1 carries at least 128 bits.
const MIN_TOKEN_BYTES: usize = 16;

/// What a candidate mail says, as far as judging it goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChallengeMail {
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// The subject, RFC 2047-decoded and unfolded.
    pub subject: Option<String>,
    /// The From address.
    pub from: Option<String>,
    /// Every To address.
    pub to: Vec<String>,
    /// The Reply-To address, if any.
    pub reply_to: Option<String>,
    /// The raw Auto-Submitted value, if any.
    pub auto_submitted: Option<String>,
    /// Every Authentication-Results value, top to bottom.
    pub authentication_results: Vec<String>,
}

impl ChallengeMail {
    /// Reads the headers of `raw`. Never fails: missing parts stay empty and judging rejects them.
    pub fn parse(raw: &[u8]) -> ChallengeMail {
        let raw = &raw[..raw.len().min(MAX_MAIL_BYTES)];
        let Some(message) = MessageParser::default().parse_headers(raw) else {
            return ChallengeMail::default();
        };
        let first = |a: Option<&mail_parser::Address<'_>>| {
            a.and_then(|a| a.first())
                .and_then(|a| a.address())
                .map(str::to_owned)
        };
        let all_raw = |name: &str| -> Vec<String> {
            message
                .headers_raw()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        };
        ChallengeMail {
            message_id: message.message_id().map(str::to_owned),
            subject: message.subject().map(str::to_owned),
            from: first(message.from()),
            to: message
                .to()
                .map(|to| {
                    to.iter()
                        .filter_map(|a| a.address())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            reply_to: first(message.reply_to()),
            auto_submitted: all_raw("Auto-Submitted").into_iter().next(),
            authentication_results: all_raw("Authentication-Results"),
        }
    }
}

/// What the pending issuance expects of its challenge mail.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// Our address: the identifier being validated.
    pub email: &'a str,
    /// The challenge object's `from`.
    pub from: &'a str,
}

/// A mail that may be answered, and what the answer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// token-part1, whitespace removed, padding as received.
    pub token_part1: String,
    /// Where the reply goes: Reply-To, or else From.
    pub reply_to: String,
    /// The challenge's Message-ID.
    pub message_id: String,
}

/// Why a mail is not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("its subject is not \"ACME: <token>\"")]
    NotAChallenge,
    #[error("its subject is a reply, not a challenge")]
    IsReply,
    #[error("its token-part1 is not base64url")]
    TokenNotBase64Url,
    #[error("its token-part1 has {0} bytes, fewer than 16")]
    TokenTooShort(usize),
    #[error("it is from {found:?}, not from the challenge's sender {expected}")]
    FromMismatch {
        expected: String,
        found: Option<String>,
    },
    #[error("it is not addressed to {0}")]
    NotAddressedToUs(String),
    #[error("it lacks \"Auto-Submitted: auto-generated\"")]
    NotAutoSubmitted,
    #[error("it has no Message-ID")]
    NoMessageId,
    #[error("its Reply-To {0:?} is not an address")]
    BadReplyTo(String),
    #[error("it is not authentic: {0}")]
    NotAuthentic(#[from] AuthFailure),
}

/// Judges `mail` against `expected` and the authenticity policy. `dkim` holds the DKIM checks of
/// the mail (only consulted in `dkim` mode). Cheap rules come first, so callers may verify DKIM
/// only for mails that pass [`judge_headers`].
pub fn judge(
    mail: &ChallengeMail,
    expected: Expected<'_>,
    policy: &ChallengeAuth,
    dkim: &[DkimCheck],
) -> Result<Accepted, Rejection> {
    let accepted = judge_headers(mail, expected)?;
    let from_domain = domain_of(expected.from);
    match policy {
        ChallengeAuth::Dkim => authenticity::judge_dkim(dkim, from_domain)?,
        ChallengeAuth::AuthenticationResults(id) => {
            let headers: Vec<&str> = mail
                .authentication_results
                .iter()
                .map(String::as_str)
                .collect();
            authenticity::judge_authentication_results(&headers, id, from_domain)?;
        }
        ChallengeAuth::None => {}
    }
    Ok(accepted)
}

/// Every rule but authenticity.
pub fn judge_headers(mail: &ChallengeMail, expected: Expected<'_>) -> Result<Accepted, Rejection> {
    let token_part1 = token_from_subject(mail.subject.as_deref().unwrap_or_default())?;
    let from_ok = mail
        .from
        .as_deref()
        .is_some_and(|f| same_address(f, expected.from));
    if !from_ok {
        return Err(Rejection::FromMismatch {
            expected: expected.from.to_owned(),
            found: mail.from.clone(),
        });
    }
    if !mail.to.iter().any(|to| same_address(to, expected.email)) {
        return Err(Rejection::NotAddressedToUs(expected.email.to_owned()));
    }
    let auto_generated = mail.auto_submitted.as_deref().is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|keyword| keyword.trim().eq_ignore_ascii_case("auto-generated"))
    });
    if !auto_generated {
        return Err(Rejection::NotAutoSubmitted);
    }
    let message_id = mail
        .message_id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .ok_or(Rejection::NoMessageId)?;
    let reply_to = mail
        .reply_to
        .clone()
        .unwrap_or_else(|| expected.from.to_owned());
    if !is_plain_address(&reply_to) {
        return Err(Rejection::BadReplyTo(reply_to));
    }
    Ok(Accepted {
        token_part1,
        reply_to,
        message_id,
    })
}

/// token-part1 from a decoded subject `ACME: <token>`, whitespace inside the token removed.
pub fn token_from_subject(subject: &str) -> Result<String, Rejection> {
    let subject = subject.trim();
    let Some(rest) = subject.strip_prefix("ACME:") else {
        return Err(if subject.contains("ACME:") {
            Rejection::IsReply
        } else {
            Rejection::NotAChallenge
        });
    };
    let token: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
    if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
        return Err(Rejection::NotAChallenge);
    }
    let alphabet = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let body = token.trim_end_matches('=');
    if !body.chars().all(alphabet) || token.len() - body.len() > 2 {
        return Err(Rejection::TokenNotBase64Url);
    }
    let bytes = decode_lenient(&token).ok_or(Rejection::TokenNotBase64Url)?;
    if bytes.len() < MIN_TOKEN_BYTES {
        return Err(Rejection::TokenTooShort(bytes.len()));
    }
    Ok(token)
}

/// The domain of an address (after the last `@`).
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// Same mailbox: local parts equal, domains equal ignoring ASCII case.
pub fn same_address(a: &str, b: &str) -> bool {
    match (a.trim().rsplit_once('@'), b.trim().rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => false,
    }
}

/// A bare addr-spec safe to put in a header: one `@`, no whitespace, brackets or controls.
pub fn is_plain_address(address: &str) -> bool {
    address.len() <= 254
        && address.matches('@').count() == 1
        && !address.starts_with('@')
        && !address.ends_with('@')
        && address
            .chars()
            .all(|c| c.is_ascii_graphic() && !"<>()[]\\,;:\"".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME=";
    const EXPECTED: Expected<'static> = Expected {
        email: "alice@example.test",
        from: "acme@ca.test",
    };

    fn raw(subject: &str, extra: &str) -> Vec<u8> {
        format!(
            "Auto-Submitted: auto-generated; type=acme\r\nDate: Sat, 5 Dec 2020 10:08:55 +0100\r\n\
             Message-ID: <A2299BB.FF7788@ca.test>\r\nFrom: acme@ca.test\r\nTo: alice@example.test\r\n\
             Subject: {subject}\r\n{extra}Content-Type: text/plain\r\nMIME-Version: 1.0\r\n\r\nHello\r\n"
        )
        .into_bytes()
    }

    fn good() -> ChallengeMail {
        ChallengeMail::parse(&raw(&format!("ACME: {TOKEN}"), ""))
    }

    #[test]
    fn a_genuine_challenge_is_accepted() {
        let accepted = judge(&good(), EXPECTED, &ChallengeAuth::None, &[]).unwrap();
        assert_eq!(
            accepted,
            Accepted {
                token_part1: TOKEN.into(),
                reply_to: "acme@ca.test".into(),
                message_id: "A2299BB.FF7788@ca.test".into()
            }
        );
    }

    #[test]
    fn subjects_plain_encoded_folded_and_padded() {
        // RFC 2047 Q encoding with spaces inside the token (acme4j's test mail).
        let q = "=?UTF-8?Q?ACME:_LgYemJLy3F1LDki=20JrdIGbEzyFJyOyf=20=206vBdyZ1TG3sME=3D?=";
        assert_eq!(
            ChallengeMail::parse(&raw(q, ""))
                .subject
                .as_deref()
                .map(token_from_subject),
            Some(Ok(TOKEN.into()))
        );
        // RFC 2047 B encoding.
        let b =
            "=?US-ASCII?B?QUNNRTogTGdZZW1KTHkzRjFMRGtpSnJkSUdiRXp5Rkp5T3lmNnZCZHlaMVRHM3NNRT0=?=";
        assert_eq!(
            ChallengeMail::parse(&raw(b, ""))
                .subject
                .as_deref()
                .map(token_from_subject),
            Some(Ok(TOKEN.into()))
        );
        // Folded across lines.
        let folded = "ACME: LgYemJLy3F1LDkiJrdIGbEzy\r\n FJyOyf6vBdyZ1TG3sME=";
        assert_eq!(
            ChallengeMail::parse(&raw(folded, ""))
                .subject
                .as_deref()
                .map(token_from_subject),
            Some(Ok(TOKEN.into()))
        );
        // Unpadded is fine too.
        assert_eq!(
            token_from_subject("ACME: LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME"),
            Ok(TOKEN.trim_end_matches('=').into())
        );
    }

    #[test]
    fn subject_rules() {
        assert_eq!(
            token_from_subject(&format!("Re: ACME: {TOKEN}")),
            Err(Rejection::IsReply)
        );
        assert_eq!(token_from_subject("Hello"), Err(Rejection::NotAChallenge));
        assert_eq!(
            token_from_subject("ACME:   "),
            Err(Rejection::NotAChallenge)
        );
        assert_eq!(
            token_from_subject("ACME: abc+def/ghijklmnopqrstuvwxyz"),
            Err(Rejection::TokenNotBase64Url)
        );
        assert_eq!(
            token_from_subject("ACME: AAECAwQFBgcICQoLDA0O"),
            Err(Rejection::TokenTooShort(15))
        );
        assert_eq!(
            token_from_subject(&format!("ACME: {}", "A".repeat(600))),
            Err(Rejection::NotAChallenge)
        );
    }

    #[test]
    fn each_header_rule_alone_rejects() {
        let mut m = good();
        m.from = Some("acme@evil.test".into());
        assert!(matches!(
            judge_headers(&m, EXPECTED),
            Err(Rejection::FromMismatch { .. })
        ));

        let mut m = good();
        m.to = vec!["bob@example.test".into()];
        assert_eq!(
            judge_headers(&m, EXPECTED),
            Err(Rejection::NotAddressedToUs("alice@example.test".into()))
        );

        let mut m = good();
        m.auto_submitted = None;
        assert_eq!(
            judge_headers(&m, EXPECTED),
            Err(Rejection::NotAutoSubmitted)
        );
        m.auto_submitted = Some("no".into());
        assert_eq!(
            judge_headers(&m, EXPECTED),
            Err(Rejection::NotAutoSubmitted)
        );

        let mut m = good();
        m.message_id = None;
        assert_eq!(judge_headers(&m, EXPECTED), Err(Rejection::NoMessageId));

        let mut m = good();
        m.reply_to = Some("a@b.test\r\nBcc: x@y".into());
        assert!(matches!(
            judge_headers(&m, EXPECTED),
            Err(Rejection::BadReplyTo(_))
        ));
    }

    #[test]
    fn addresses_compare_domain_case_insensitively() {
        let mut m = good();
        m.from = Some("acme@CA.Test".into());
        m.to = vec!["carol@example.test".into(), "alice@EXAMPLE.test".into()];
        m.reply_to = Some("replies@ca.test".into());
        assert_eq!(
            judge_headers(&m, EXPECTED).unwrap().reply_to,
            "replies@ca.test"
        );
        m.from = Some("ACME@ca.test".into());
        assert!(
            judge_headers(&m, EXPECTED).is_err(),
            "local parts are case-sensitive"
        );
    }

    #[test]
    fn authenticity_is_required_unless_none() {
        let m = good();
        assert_eq!(
            judge(&m, EXPECTED, &ChallengeAuth::Dkim, &[]),
            Err(Rejection::NotAuthentic(AuthFailure::NoDkimSignature))
        );
        let signed = DkimCheck {
            pass: true,
            domain: "ca.test".into(),
            algorithm: "Ed25519Sha256".into(),
            signed_headers: [
                "from",
                "to",
                "subject",
                "date",
                "message-id",
                "auto-submitted",
            ]
            .map(String::from)
            .to_vec(),
            detail: String::new(),
            temporary: false,
        };
        assert!(judge(&m, EXPECTED, &ChallengeAuth::Dkim, &[signed]).is_ok());

        let ar = ChallengeAuth::AuthenticationResults("mx.example.test".into());
        assert!(judge(&m, EXPECTED, &ar, &[]).is_err());
        let with_ar = ChallengeMail::parse(&raw(
            &format!("ACME: {TOKEN}"),
            "Authentication-Results: mx.example.test;\r\n\tdkim=pass header.d=ca.test\r\n",
        ));
        assert!(judge(&with_ar, EXPECTED, &ar, &[]).is_ok());
    }

    #[test]
    fn garbage_never_panics() {
        for input in [
            &b""[..],
            b"\r\n\r\n",
            b"Subject: =?x?Q?\xff\xfe?=\r\n",
            &[0xffu8; 300],
        ] {
            let m = ChallengeMail::parse(input);
            assert!(judge(&m, EXPECTED, &ChallengeAuth::None, &[]).is_err());
        }
    }
}
