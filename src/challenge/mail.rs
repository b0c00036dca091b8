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
/// A Message-ID longer than this is not copied into a reply.
const MAX_MESSAGE_ID_CHARS: usize = 250;
/// How much of an unusable value a rejection quotes.
const MAX_QUOTED_CHARS: usize = 80;

/// The headers that judging reads or that the reply copies. Each may appear once, written
/// `Name:`, so that the instance read here is the one a DKIM signature's `h=` covers.
pub const JUDGED_HEADERS: [&str; 11] = [
    "From",
    "Sender",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
];

/// What a candidate mail says, as far as judging it goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChallengeMail {
    /// Message-ID without angle brackets, exactly as written (checked when judged).
    pub message_id: Option<String>,
    /// The subject, RFC 2047-decoded and unfolded.
    pub subject: Option<String>,
    /// The From address.
    pub from: Option<String>,
    /// Every To address.
    pub to: Vec<String>,
    /// The Reply-To address, if any.
    pub reply_to: Option<String>,
    /// A Reply-To header is present (even one without a usable address).
    pub has_reply_to: bool,
    /// The raw Auto-Submitted value, if any.
    pub auto_submitted: Option<String>,
    /// Every Authentication-Results value, top to bottom.
    pub authentication_results: Vec<String>,
    /// A header of [`JUDGED_HEADERS`] that is repeated or not plainly written.
    pub header_fault: Option<HeaderFault>,
    /// The `d=` domain of each DKIM-Signature, lowercased.
    pub dkim_domains: Vec<String>,
    /// The Date, as a Unix time.
    pub date: Option<i64>,
}

impl ChallengeMail {
    /// Reads the headers of `raw`. Never fails: missing parts stay empty and judging rejects them.
    ///
    /// Decoded values (subject, addresses) come from mail-parser. The header block is also split
    /// the way DKIM verification (mail-auth) splits it, where a name is every byte before the
    /// colon; a judged header that either reading sees twice, or that the two readings do not
    /// place at the same spot under the same name, becomes a [`HeaderFault`]. Auto-Submitted,
    /// Message-ID and Authentication-Results are read from that split, as DKIM sees them.
    pub fn parse(raw: &[u8]) -> ChallengeMail {
        let raw = raw.get(..MAX_MAIL_BYTES).unwrap_or(raw);
        let Some(message) = MessageParser::default().parse_headers(raw) else {
            return ChallengeMail::default();
        };
        let fields = raw_fields(raw);
        let named = |name: &'static str| {
            fields
                .iter()
                .filter(move |f| f.name.eq_ignore_ascii_case(name.as_bytes()))
                .map(|f| unfold(f.value))
        };
        let collapse = |v: String| v.split_whitespace().collect::<Vec<_>>().join(" ");
        let first = |a: Option<&mail_parser::Address<'_>>| {
            a.and_then(|a| a.first())
                .and_then(|a| a.address())
                .map(str::to_owned)
        };
        ChallengeMail {
            message_id: named("Message-ID")
                .next()
                .map(|v| strip_angles(&v).to_owned()),
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
            has_reply_to: named("Reply-To").next().is_some(),
            auto_submitted: named("Auto-Submitted").next().map(collapse),
            authentication_results: named("Authentication-Results").map(collapse).collect(),
            header_fault: header_fault(&fields, message.headers()),
            date: message.date().map(|d| d.to_timestamp()),
            dkim_domains: named("DKIM-Signature")
                .take(64)
                .filter_map(|v| {
                    v.split(';').find_map(|tag| {
                        let (name, value) = tag.split_once('=')?;
                        (name.trim() == "d").then(|| collapse(value.to_owned()).to_lowercase())
                    })
                })
                .collect(),
        }
    }
}

/// Why a judged header cannot be trusted to be the one a DKIM signature covers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderFault {
    #[error("its {0} header appears more than once")]
    Repeated(&'static str),
    #[error(
        "its {0} header is in an obsolete or malformed form (such as whitespace before the \
         colon), or below a line that ends the header block for DKIM"
    )]
    Malformed(&'static str),
}

/// One header field as DKIM verification splits the header block: the name is every byte before
/// the first colon, the value runs to the end of the field's last (continuation) line.
#[derive(Debug)]
struct RawField<'a> {
    offset: usize,
    name: &'a [u8],
    value: &'a [u8],
}

/// The named fields of `raw`'s header block, split as mail-auth 0.13 splits it when it matches
/// `h=` names (`common/headers.rs`, `scan_field`): a line without a colon continues onto lines
/// that start with whitespace; if it ends in CRLF (or is empty) the header block ends there,
/// otherwise it is an unnamed field. A last field without a line end is not a field.
fn raw_fields(raw: &[u8]) -> Vec<RawField<'_>> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut cur = 0;
    while let Some(rest) = raw.get(cur..) {
        let Some(offset) = rest.iter().position(|&b| b == b':' || b == b'\n') else {
            break;
        };
        let pos = cur + offset;
        if raw.get(pos) == Some(&b':') {
            let Some(end) = field_end(raw, pos + 1) else {
                break;
            };
            fields.push(RawField {
                offset: start,
                name: raw.get(start..pos).unwrap_or_default(),
                value: raw.get(pos + 1..end).unwrap_or_default(),
            });
            (start, cur) = (end, end);
        } else if pos == start || (pos > cur && raw.get(pos - 1) == Some(&b'\r')) {
            break;
        } else if matches!(raw.get(pos + 1), Some(b' ' | b'\t')) {
            cur = pos + 1;
        } else {
            (start, cur) = (pos + 1, pos + 1);
        }
    }
    fields
}

/// Where the field whose value starts at `from` ends: after the first line end that is not
/// followed by whitespace. None when the header block has no such line end.
fn field_end(raw: &[u8], from: usize) -> Option<usize> {
    let mut cur = from;
    loop {
        let pos = cur + raw.get(cur..)?.iter().position(|&b| b == b'\n')?;
        match raw.get(pos + 1) {
            Some(b' ' | b'\t') => cur = pos + 1,
            _ => return Some(pos + 1),
        }
    }
}

/// A field value unfolded (every line break removed, RFC 5322 §2.2.3) and trimmed of spaces and
/// tabs. A carriage return that ends no line stays.
fn unfold(value: &[u8]) -> String {
    let mut out = Vec::with_capacity(value.len());
    for (i, &b) in value.iter().enumerate() {
        match b {
            b'\n' => {}
            b'\r' if value.get(i + 1) == Some(&b'\n') => {}
            _ => out.push(b),
        }
    }
    String::from_utf8_lossy(&out)
        .trim_matches([' ', '\t'])
        .to_owned()
}

/// `<id>` → `id`; anything else as it is.
fn strip_angles(value: &str) -> &str {
    value
        .strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(value)
}

/// The first judged header that is written with whitespace around its name, appears more than
/// once (in either reading), or is not read by mail-parser exactly where and as the raw split has
/// it.
fn header_fault(
    fields: &[RawField<'_>],
    parsed: &[mail_parser::Header<'_>],
) -> Option<HeaderFault> {
    JUDGED_HEADERS.into_iter().find_map(|name| {
        let is = |n: &[u8]| n.eq_ignore_ascii_case(name.as_bytes());
        if fields
            .iter()
            .any(|f| !is(f.name) && is(f.name.trim_ascii()))
        {
            return Some(HeaderFault::Malformed(name));
        }
        let raw: Vec<usize> = fields
            .iter()
            .filter(|f| is(f.name))
            .map(|f| f.offset)
            .collect();
        let read: Vec<usize> = parsed
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .map(|h| h.offset_field as usize)
            .collect();
        if raw.len() > 1 || read.len() > 1 {
            Some(HeaderFault::Repeated(name))
        } else if raw != read {
            Some(HeaderFault::Malformed(name))
        } else {
            None
        }
    })
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
    /// The challenge's Message-ID, safe to copy into a header (see [`is_plain_message_id`]).
    pub message_id: String,
}

/// Why a mail is not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    AmbiguousHeader(#[from] HeaderFault),
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
    #[error(
        "its Message-ID {0:?} is not a plain msg-id (printable ASCII without spaces, at most 250 \
         characters)"
    )]
    BadMessageId(String),
    #[error("its Reply-To {0:?} is not an address")]
    BadReplyTo(String),
    #[error("it is not authentic: {0}")]
    NotAuthentic(#[from] AuthFailure),
}

/// Judges `mail` against `expected` and the authenticity policy. `dkim` holds the DKIM checks of
/// the mail (only consulted in `dkim` mode). Cheap rules come first, so callers may verify DKIM
/// only for mails that pass [`judge_headers`].
///
/// A Reply-To decides where the reply goes, so it must be covered by the DKIM signature; in
/// `authentication-results` mode, which cannot show coverage, it must be the From address.
pub fn judge(
    mail: &ChallengeMail,
    expected: Expected<'_>,
    policy: &ChallengeAuth,
    dkim: &[DkimCheck],
) -> Result<Accepted, Rejection> {
    let accepted = judge_headers(mail, expected)?;
    let from_domain = domain_of(expected.from);
    let has_reply_to = mail.has_reply_to || mail.reply_to.is_some();
    match policy {
        ChallengeAuth::Dkim => {
            let also_signed: &[&str] = if has_reply_to {
                &[authenticity::REPLY_TO]
            } else {
                &[]
            };
            authenticity::judge_dkim(dkim, from_domain, also_signed)?;
        }
        ChallengeAuth::AuthenticationResults(id) => {
            let headers: Vec<&str> = mail
                .authentication_results
                .iter()
                .map(String::as_str)
                .collect();
            authenticity::judge_authentication_results(&headers, id, from_domain)?;
            if has_reply_to && !same_address(&accepted.reply_to, expected.from) {
                return Err(AuthFailure::ReplyToNotFrom {
                    reply_to: accepted.reply_to,
                }
                .into());
            }
        }
        ChallengeAuth::None => {}
    }
    Ok(accepted)
}

/// Every rule that the header block alone can decide, so that the rest of a mail is downloaded
/// only for a candidate: [`judge_headers`], and in `dkim` mode a DKIM-Signature of the From
/// domain to verify.
pub fn judge_header_block(
    mail: &ChallengeMail,
    expected: Expected<'_>,
    policy: &ChallengeAuth,
) -> Result<Accepted, Rejection> {
    let accepted = judge_headers(mail, expected)?;
    let from_domain = domain_of(expected.from);
    if *policy == ChallengeAuth::Dkim
        && !mail
            .dkim_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(from_domain))
    {
        return Err(Rejection::NotAuthentic(AuthFailure::NoDkimSignature));
    }
    Ok(accepted)
}

/// Every rule but authenticity.
pub fn judge_headers(mail: &ChallengeMail, expected: Expected<'_>) -> Result<Accepted, Rejection> {
    if let Some(fault) = &mail.header_fault {
        return Err(fault.clone().into());
    }
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
    if !is_plain_message_id(&message_id) {
        return Err(Rejection::BadMessageId(quoted(&message_id)));
    }
    let reply_to = match (&mail.reply_to, mail.has_reply_to) {
        (Some(reply_to), _) => reply_to.clone(),
        (None, true) => return Err(Rejection::BadReplyTo(String::new())),
        (None, false) => expected.from.to_owned(),
    };
    if !is_plain_address(&reply_to) {
        return Err(Rejection::BadReplyTo(quoted(&reply_to)));
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

/// A Message-ID (without angle brackets) safe to copy into In-Reply-To and References: 1 to 250
/// printable ASCII characters, none of them `<` or `>` (so no space, CR, LF or other control).
pub fn is_plain_message_id(id: &str) -> bool {
    (1..=MAX_MESSAGE_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

/// At most [`MAX_QUOTED_CHARS`] characters of `value`, for a rejection's message.
fn quoted(value: &str) -> String {
    value.chars().take(MAX_QUOTED_CHARS).collect()
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
    fn fields_are_split_as_dkim_verification_splits_them() {
        for raw in [
            &b"From: a@b\r\nTo : c@d\r\nSubject\t: x\r\n folded\r\n\r\nbody\r\n"[..],
            b"A: 1\nno colon\nB: 2\n\nbody",
            b"A: 1\r\nno colon\r\nB: 2\r\n\r\n",
            b"A\n : 1\r\nB:2\r\n\tC: 3\r\nlast: no line end",
            b" lead: 1\r\nx:\r\n\r\n",
            b":\n::\n: \n\n",
            b"A: 1\r\r\nB: 2\r\n",
        ] {
            let ours: Vec<(&[u8], &[u8])> =
                raw_fields(raw).iter().map(|f| (f.name, f.value)).collect();
            let dkim: Vec<(&[u8], &[u8])> = mail_auth::AuthenticatedMessage::parse(raw)
                .map(|m| m.headers)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, value)| !value.is_empty())
                .collect();
            assert_eq!(ours, dkim, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn garbage_never_panics() {
        for input in [
            &b""[..],
            b"\r\n\r\n",
            b"Subject: =?x?Q?\xff\xfe?=\r\n",
            &[0xffu8; 300],
            b":",
            b"\n",
            b"a:",
            b"a\n b",
            b"\r",
            b"Message-ID: <",
            b"Message-ID:\r\n\r\n",
        ] {
            let m = ChallengeMail::parse(input);
            assert!(judge(&m, EXPECTED, &ChallengeAuth::None, &[]).is_err());
        }
    }

    /// A genuine challenge's header lines; tests replace or add lines.
    fn lines() -> Vec<String> {
        [
            "Auto-Submitted: auto-generated; type=acme",
            "Date: Sat, 5 Dec 2020 10:08:55 +0100",
            "Message-ID: <A2299BB.FF7788@ca.test>",
            "From: acme@ca.test",
            "To: alice@example.test",
            &format!("Subject: ACME: {TOKEN}"),
            "Content-Type: text/plain",
        ]
        .map(String::from)
        .to_vec()
    }

    fn mail_of(lines: &[String]) -> ChallengeMail {
        ChallengeMail::parse(format!("{}\r\n\r\nHello\r\n", lines.join("\r\n")).as_bytes())
    }

    /// `lines()` with the line starting with `name:` replaced by `line`.
    fn with(name: &str, line: &str) -> ChallengeMail {
        let mut lines = lines();
        for l in &mut lines {
            if l.starts_with(&format!("{name}:")) {
                *l = line.to_owned();
            }
        }
        mail_of(&lines)
    }

    /// `lines()` with `extra` added before Content-Type.
    fn plus(extra: &[&str]) -> ChallengeMail {
        let mut lines = lines();
        let at = lines.len() - 1;
        lines.splice(at..at, extra.iter().map(|l| (*l).to_owned()));
        mail_of(&lines)
    }

    fn covering(headers: &[&str]) -> DkimCheck {
        DkimCheck {
            pass: true,
            domain: "ca.test".into(),
            algorithm: "RsaSha256".into(),
            signed_headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            detail: String::new(),
            temporary: false,
        }
    }

    const SIGNED: [&str; 6] = [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "auto-submitted",
    ];

    #[test]
    fn the_line_based_mail_is_genuine() {
        let m = mail_of(&lines());
        assert_eq!(m.header_fault, None);
        assert_eq!(m, good());
        assert!(judge_headers(&m, EXPECTED).is_ok());
    }

    #[test]
    fn a_repeated_judged_header_is_rejected() {
        for (name, copy) in [
            ("From", "From: acme@ca.test"),
            ("To", "To: alice@example.test"),
            (
                "Subject",
                "Subject: ACME: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ),
            ("Auto-Submitted", "Auto-Submitted: no"),
            ("Message-ID", "Message-ID: <other@ca.test>"),
            ("Date", "Date: Sun, 6 Dec 2020 10:08:55 +0100"),
            ("Reply-To", "reply-to: evil@evil.test"),
        ] {
            let mut extra = vec![copy];
            if name == "Reply-To" {
                extra.insert(0, "Reply-To: acme@ca.test");
            }
            assert_eq!(
                judge_headers(&plus(&extra), EXPECTED),
                Err(Rejection::AmbiguousHeader(HeaderFault::Repeated(name))),
                "a second {name}"
            );
        }
        for name in ["Cc", "Sender", "In-Reply-To", "References"] {
            let a = format!("{name}: <a@ca.test>");
            let b = format!("{name}: <b@ca.test>");
            assert_eq!(
                judge_headers(&plus(&[&a, &b]), EXPECTED),
                Err(Rejection::AmbiguousHeader(HeaderFault::Repeated(name)))
            );
            // Once is fine.
            assert!(judge_headers(&plus(&[&a]), EXPECTED).is_ok(), "one {name}");
        }
    }

    #[test]
    fn an_obsolete_form_of_a_judged_header_is_rejected() {
        let evil_to = plus(&["To : mallory@evil.test"]);
        assert_eq!(
            evil_to.header_fault,
            Some(HeaderFault::Malformed("To")),
            "a copy that mail-parser reads as To but DKIM does not"
        );
        let only = with("To", "To : alice@example.test");
        assert_eq!(
            judge_headers(&only, EXPECTED),
            Err(Rejection::AmbiguousHeader(HeaderFault::Malformed("To")))
        );
        let subject = with("Subject", &format!("Subject\t: ACME: {TOKEN}"));
        assert_eq!(
            judge_headers(&subject, EXPECTED),
            Err(Rejection::AmbiguousHeader(HeaderFault::Malformed(
                "Subject"
            )))
        );
        // A name folded before its colon (after a bare LF: DKIM's name is then "Auto-Submitted\n ").
        let folded = with("Auto-Submitted", "Auto-Submitted\n : auto-generated");
        assert_eq!(
            folded.header_fault,
            Some(HeaderFault::Malformed("Auto-Submitted"))
        );
        // After CRLF, DKIM ends the header block there and reads the rest as body.
        let folded = with("Auto-Submitted", "Auto-Submitted\r\n : auto-generated");
        assert!(matches!(
            judge_headers(&folded, EXPECTED),
            Err(Rejection::AmbiguousHeader(HeaderFault::Malformed(_)))
        ));
        // mail-parser ignores whitespace inside a name: `T o:` is To to it, not to DKIM.
        assert_eq!(
            plus(&["T o: mallory@evil.test"]).header_fault,
            Some(HeaderFault::Repeated("To"))
        );
        assert_eq!(
            with("To", "T o: alice@example.test").header_fault,
            Some(HeaderFault::Malformed("To"))
        );
    }

    #[test]
    fn a_judged_header_dkim_would_read_as_body_is_rejected() {
        // DKIM ends the header block at a CRLF line without a colon; mail-parser reads on.
        let m = plus(&["this line has no colon", "Reply-To: mallory@evil.test"]);
        assert_eq!(m.header_fault, Some(HeaderFault::Malformed("Reply-To")));
    }

    #[test]
    fn harmless_repeats_and_other_headers_are_fine() {
        let m = plus(&[
            "Received: from a by b",
            "Received: from c by d",
            "Authentication-Results: mx.example.test; dkim=pass header.d=ca.test",
            "Authentication-Results: other.test; none",
            "X-Mailer : something",
            "DKIM-Signature: v=1; a=rsa-sha256; d=ca.test; s=x; h=from; bh=; b=",
        ]);
        assert_eq!(m.header_fault, None);
        assert_eq!(m.authentication_results.len(), 2);
        assert!(judge_headers(&m, EXPECTED).is_ok());
    }

    #[test]
    fn a_delivered_mail_with_trace_headers_is_fine() {
        let raw = format!(
            "Return-Path: <acme@ca.test>\r\nDelivered-To: alice@example.test\r\n\
             Received: from mx.ca.test (mx.ca.test [192.0.2.1])\r\n\tby mx.example.test \
             (Postfix) with ESMTPS id 4F1;\r\n\tSat, 5 Dec 2020 10:08:56 +0100 (CET)\r\n\
             Authentication-Results: mx.example.test;\r\n\tdkim=pass (2048-bit key) \
             header.d=ca.test header.s=rsa header.b=abc\r\n\
             DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=ca.test; s=rsa;\r\n\
             \tt=1607159335; h=from:to:subject:date:message-id:auto-submitted;\r\n\
             \tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n\
             Auto-Submitted: auto-generated; type=acme\r\n\
             From: \"ACME (CA)\" <acme@ca.test>\r\nTo: <alice@example.test>\r\n\
             Cc: undisclosed-recipients:;\r\nSubject: ACME: {TOKEN}\r\n\
             Message-ID: <A2299BB.FF7788@ca.test>\r\n\
             Date: Sat, 5 Dec 2020 10:08:55 +0100 (CET)\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\r\nHello\r\n"
        );
        let m = ChallengeMail::parse(raw.as_bytes());
        assert_eq!(m.header_fault, None);
        assert_eq!(m.authentication_results.len(), 1);
        assert!(judge_headers(&m, EXPECTED).is_ok());
        // The same with bare LF line ends.
        let m = ChallengeMail::parse(raw.replace("\r\n", "\n").as_bytes());
        assert_eq!(m.header_fault, None);
        assert!(judge_headers(&m, EXPECTED).is_ok());
    }

    #[test]
    fn folded_headers_are_read_unfolded() {
        let m = mail_of(&[
            "Auto-Submitted:\r\n auto-generated;\r\n\ttype=acme".to_owned(),
            "Message-ID:\r\n <A2299BB.FF7788@ca.test>".to_owned(),
            "From: ACME CA\r\n <acme@ca.test>".to_owned(),
            "To: carol@example.test,\r\n alice@example.test".to_owned(),
            format!("Subject: ACME:\r\n {TOKEN}"),
        ]);
        assert_eq!(m.header_fault, None);
        assert_eq!(
            m.auto_submitted.as_deref(),
            Some("auto-generated; type=acme")
        );
        assert_eq!(
            judge_headers(&m, EXPECTED).map(|a| a.message_id),
            Ok("A2299BB.FF7788@ca.test".to_owned())
        );
    }

    #[test]
    fn auto_submitted_is_read_from_the_plainly_written_header() {
        assert_eq!(
            with("Auto-Submitted", "AUTO-SUBMITTED: Auto-Generated").auto_submitted,
            Some("Auto-Generated".into())
        );
        let no = with("Auto-Submitted", "Auto-Submitted: no");
        assert_eq!(
            judge_headers(&no, EXPECTED),
            Err(Rejection::NotAutoSubmitted)
        );
        // A second copy, whichever order, is never read: the mail is rejected.
        for extra in ["Auto-Submitted: no", "Auto-Submitted: auto-generated"] {
            let mut lines = lines();
            lines.insert(0, extra.to_owned());
            assert_eq!(
                judge_headers(&mail_of(&lines), EXPECTED),
                Err(Rejection::AmbiguousHeader(HeaderFault::Repeated(
                    "Auto-Submitted"
                )))
            );
        }
    }

    #[test]
    fn reply_to_must_be_signed_in_dkim_mode() {
        let m = plus(&["Reply-To: replies@ca.test"]);
        assert!(m.has_reply_to);
        assert_eq!(
            judge(&m, EXPECTED, &ChallengeAuth::Dkim, &[covering(&SIGNED)]),
            Err(Rejection::NotAuthentic(
                AuthFailure::DkimHeadersNotCovered {
                    missing: vec!["reply-to".into()]
                }
            ))
        );
        let mut with_reply_to = SIGNED.to_vec();
        with_reply_to.push("reply-to");
        assert_eq!(
            judge(
                &m,
                EXPECTED,
                &ChallengeAuth::Dkim,
                &[covering(&with_reply_to)]
            )
            .map(|a| a.reply_to),
            Ok("replies@ca.test".to_owned())
        );
        // Without a Reply-To, its coverage is not needed.
        assert!(
            judge(
                &good(),
                EXPECTED,
                &ChallengeAuth::Dkim,
                &[covering(&SIGNED)]
            )
            .is_ok()
        );
    }

    #[test]
    fn reply_to_must_be_from_in_authentication_results_mode() {
        let ar = ChallengeAuth::AuthenticationResults("mx.example.test".into());
        let pass = "Authentication-Results: mx.example.test; dkim=pass header.d=ca.test";
        assert!(judge(&plus(&[pass]), EXPECTED, &ar, &[]).is_ok());
        assert_eq!(
            judge(
                &plus(&[pass, "Reply-To: replies@ca.test"]),
                EXPECTED,
                &ar,
                &[]
            ),
            Err(Rejection::NotAuthentic(AuthFailure::ReplyToNotFrom {
                reply_to: "replies@ca.test".into()
            }))
        );
        let same = plus(&[pass, "Reply-To: ACME CA <acme@CA.test>"]);
        assert_eq!(
            judge(&same, EXPECTED, &ar, &[]).map(|a| a.reply_to),
            Ok("acme@CA.test".to_owned())
        );
    }

    #[test]
    fn a_reply_to_without_an_address_is_rejected() {
        let m = plus(&["Reply-To: undisclosed"]);
        assert!(m.has_reply_to);
        assert!(matches!(
            judge_headers(&m, EXPECTED),
            Err(Rejection::BadReplyTo(_))
        ));
    }

    #[test]
    fn message_id_must_be_plain() {
        for (what, line) in [
            ("a CR", "Message-ID: <a\rBcc: x@y.test@ca.test>"),
            ("a space", "Message-ID: <a b@ca.test>"),
            ("a control", "Message-ID: <a\u{1}b@ca.test>"),
            ("a NUL", "Message-ID: <a\0b@ca.test>"),
            ("unbalanced brackets", "Message-ID: <a@ca.test"),
            ("non-ASCII", "Message-ID: <a\u{e9}@ca.test>"),
        ] {
            assert!(
                matches!(
                    judge_headers(&with("Message-ID", line), EXPECTED),
                    Err(Rejection::BadMessageId(_))
                ),
                "a Message-ID with {what}"
            );
        }
        let long = format!("Message-ID: <{}@ca.test>", "a".repeat(243));
        assert!(matches!(
            judge_headers(&with("Message-ID", &long), EXPECTED),
            Err(Rejection::BadMessageId(id)) if id.len() == MAX_QUOTED_CHARS
        ));
        let longest = format!("Message-ID: <{}@ca.test>", "a".repeat(242));
        assert!(judge_headers(&with("Message-ID", &longest), EXPECTED).is_ok());
        assert_eq!(
            judge_headers(&with("Message-ID", "Message-ID: <>"), EXPECTED),
            Err(Rejection::NoMessageId)
        );
        let mut m = good();
        m.message_id = Some("a\r\nBcc: x@y.test".into());
        assert!(matches!(
            judge_headers(&m, EXPECTED),
            Err(Rejection::BadMessageId(_))
        ));
    }

    #[test]
    fn a_header_block_without_a_signature_of_the_senders_domain_is_not_a_candidate() {
        let dkim = ChallengeAuth::Dkim;
        let token = format!("ACME: {TOKEN}");
        let unsigned = ChallengeMail::parse(&raw(&token, ""));
        assert_eq!(
            judge_header_block(&unsigned, EXPECTED, &dkim),
            Err(Rejection::NotAuthentic(AuthFailure::NoDkimSignature))
        );
        let other = ChallengeMail::parse(&raw(
            &token,
            "DKIM-Signature: v=1; a=rsa-sha256; d=evil.test; s=x;\r\n\tbh=AAAA; b=AAAA\r\n",
        ));
        assert_eq!(other.dkim_domains, vec!["evil.test".to_owned()]);
        assert!(judge_header_block(&other, EXPECTED, &dkim).is_err());
        let ours = ChallengeMail::parse(&raw(
            &token,
            "DKIM-Signature: v=1; a=rsa-sha256; s=x;\r\n\td = CA.test ; bh=AAAA; b=AAAA\r\n",
        ));
        assert!(judge_header_block(&ours, EXPECTED, &dkim).is_ok());
        let none = ChallengeAuth::None;
        assert!(judge_header_block(&unsigned, EXPECTED, &none).is_ok());
    }
}
