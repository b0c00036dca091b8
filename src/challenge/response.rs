//! The RFC 8823 response: joining the two token parts, the key authorization and its digest,
//! and the bytes of the reply mail. Pure: no IO, time and randomness come in as values.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};

use crate::acme::jws::b64u;

/// How token-part1 (from the mail) and token-part2 (from the challenge) form the ACME token.
/// RFC 8823 says "concatenate" without saying of what; servers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenJoin {
    /// The two strings as received, one after the other (acme4j, acme2certifier).
    #[default]
    String,
    /// Both decoded, the octets joined, and the result base64url-encoded without padding
    /// (acmez, the CASTLE client).
    Bytes,
}

named_values!(TokenJoin, "token join", {
    String => "string",
    Bytes => "bytes",
});

impl TokenJoin {
    /// The join that is not this one.
    pub fn other(self) -> TokenJoin {
        match self {
            TokenJoin::String => TokenJoin::Bytes,
            TokenJoin::Bytes => TokenJoin::String,
        }
    }
}

/// The token join asked for: a fixed one, or `auto` (what the CA is known to do, and one more
/// order with the other join when the CA rejects the reply for a token the joins disagree on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JoinChoice {
    #[default]
    Auto,
    String,
    Bytes,
}

named_values!(JoinChoice, "token join", {
    Auto => "auto",
    String => "string",
    Bytes => "bytes",
});

impl JoinChoice {
    /// The join fixed by this choice; None for `auto`.
    pub fn fixed(self) -> Option<TokenJoin> {
        match self {
            JoinChoice::Auto => None,
            JoinChoice::String => Some(TokenJoin::String),
            JoinChoice::Bytes => Some(TokenJoin::Bytes),
        }
    }
}

/// A token part that is not base64url.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part} is not base64url")]
pub struct BadToken {
    pub part: &'static str,
}

/// Decodes base64url with or without `=` padding.
pub fn decode_lenient(text: &str) -> Option<Vec<u8>> {
    if text.contains('=') {
        URL_SAFE.decode(text).ok()
    } else {
        URL_SAFE_NO_PAD.decode(text).ok()
    }
}

/// Whether both join modes give the same token for this token-part1: when its unpadded length
/// is a multiple of 4 (a whole number of 3-octet groups, so no padding either way).
pub fn join_modes_agree(part1: &str) -> bool {
    part1.trim_end_matches('=').len().is_multiple_of(4)
}

/// The ACME token from its two parts, per `mode`.
pub fn join_tokens(part1: &str, part2: &str, mode: TokenJoin) -> Result<String, BadToken> {
    match mode {
        TokenJoin::String => Ok(format!("{part1}{part2}")),
        TokenJoin::Bytes => {
            let mut bytes = decode_lenient(part1).ok_or(BadToken {
                part: "token-part1",
            })?;
            bytes.extend(decode_lenient(part2).ok_or(BadToken {
                part: "token-part2",
            })?);
            Ok(b64u(bytes))
        }
    }
}

/// keyAuthorization = token "." thumbprint (RFC 8555 §8.1).
pub fn key_authorization(token: &str, thumbprint: &str) -> String {
    format!("{token}.{thumbprint}")
}

/// The digest the reply carries: unpadded base64url(SHA-256(key authorization)).
pub fn response_digest(key_authorization: &str) -> String {
    b64u(ring::digest::digest(
        &ring::digest::SHA256,
        key_authorization.as_bytes(),
    ))
}

/// Everything the reply mail says; see [`Reply::to_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    /// Our address (the identifier).
    pub from: &'a str,
    /// The challenge's Reply-To, or else its From.
    pub to: &'a str,
    /// token-part1 as received (whitespace removed).
    pub token_part1: &'a str,
    /// The challenge's Message-ID, without angle brackets.
    pub in_reply_to: &'a str,
    /// Our Message-ID, without angle brackets.
    pub message_id: &'a str,
    /// The RFC 5322 date, e.g. from [`crate::clock::rfc5322`].
    pub date: &'a str,
    /// The response digest.
    pub digest: &'a str,
}

impl Reply<'_> {
    /// The reply as sent: US-ASCII, 7bit, CRLF line endings, the digest on one line.
    pub fn to_bytes(&self) -> Vec<u8> {
        let Reply {
            from,
            to,
            token_part1,
            in_reply_to,
            message_id,
            date,
            digest,
        } = self;
        format!(
            "From: <{from}>\r\n\
             To: <{to}>\r\n\
             Subject: Re: ACME: {token_part1}\r\n\
             Date: {date}\r\n\
             Message-ID: <{message_id}>\r\n\
             In-Reply-To: <{in_reply_to}>\r\n\
             References: <{in_reply_to}>\r\n\
             Auto-Submitted: auto-replied\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\
             Content-Transfer-Encoding: 7bit\r\n\
             \r\n\
             -----BEGIN ACME RESPONSE-----\r\n\
             {digest}\r\n\
             -----END ACME RESPONSE-----\r\n"
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // protocol.md §4.2: acme4j-smime's test key and the RFC 8823 example tokens.
    const THUMB_RSA: &str = "1_nKJnlH9boVxdoO63T8zP7O2w42qZL4d6xj35Hy5aI";
    const PART1: &str = "LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME=";
    const PART2: &str = "DGyRejmCefe7v4NfDGDKfA";
    // §4.3: RFC 7515 A.3 P-256 key.
    const THUMB_P256: &str = "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U";

    fn digest(part1: &str, thumb: &str, mode: TokenJoin) -> String {
        response_digest(&key_authorization(
            &join_tokens(part1, PART2, mode).unwrap(),
            thumb,
        ))
    }

    #[test]
    fn string_join_matches_acme4j() {
        assert_eq!(
            key_authorization(
                &join_tokens(PART1, PART2, TokenJoin::String).unwrap(),
                THUMB_RSA
            ),
            format!("{PART1}{PART2}.{THUMB_RSA}")
        );
        assert_eq!(
            digest(PART1, THUMB_RSA, TokenJoin::String),
            "AjXW0h9_4YMP6Sv-9tKQNUrapI0us7ayBn0nCGOkUsk"
        );
        assert_eq!(
            digest(PART1, THUMB_P256, TokenJoin::String),
            "5HTN9joxzZG1BMjsHODpsGhpmtURmrlTtZDs2jtnIyc"
        );
    }

    #[test]
    fn byte_join_matches_acmez() {
        assert_eq!(
            join_tokens(PART1, PART2, TokenJoin::Bytes).unwrap(),
            "LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sMEMbJF6OYJ597u_g18MYMp8"
        );
        assert_eq!(
            digest(PART1, THUMB_RSA, TokenJoin::Bytes),
            "xyC6Z01DHFuV0pZgacdI2xN9nIKkPSARDv1gLbxY8Xk"
        );
        assert_eq!(
            digest(PART1, THUMB_P256, TokenJoin::Bytes),
            "HNoJ_wxFA00RLxGfHExytFqSs3h6WGkFnCbiOuRgqyA"
        );
        assert!(!join_modes_agree(PART1));
    }

    #[test]
    fn modes_agree_when_part1_is_whole_groups() {
        let part1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
        assert!(join_modes_agree(part1));
        let expected = "rRJ_YZrkZnAGXyTlxstW4AkMhRSfI9___xD8PbpD4X8";
        assert_eq!(digest(part1, THUMB_P256, TokenJoin::String), expected);
        assert_eq!(digest(part1, THUMB_P256, TokenJoin::Bytes), expected);
    }

    #[test]
    fn byte_join_rejects_non_base64url() {
        assert_eq!(
            join_tokens("abc$", PART2, TokenJoin::Bytes),
            Err(BadToken {
                part: "token-part1"
            })
        );
        assert_eq!(
            join_tokens(PART1, "a+b/", TokenJoin::Bytes),
            Err(BadToken {
                part: "token-part2"
            })
        );
    }

    #[test]
    fn reply_bytes_are_exact() {
        let reply = Reply {
            from: "alice@example.test",
            to: "acme@ca.test",
            token_part1: PART1,
            in_reply_to: "A2299BB.FF7788@example.org",
            message_id: "r1.abc@example.test",
            date: &crate::clock::rfc5322(1_795_878_114),
            digest: "AjXW0h9_4YMP6Sv-9tKQNUrapI0us7ayBn0nCGOkUsk",
        };
        let expected = "From: <alice@example.test>\r\n\
            To: <acme@ca.test>\r\n\
            Subject: Re: ACME: LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME=\r\n\
            Date: Sat, 28 Nov 2026 15:01:54 +0000\r\n\
            Message-ID: <r1.abc@example.test>\r\n\
            In-Reply-To: <A2299BB.FF7788@example.org>\r\n\
            References: <A2299BB.FF7788@example.org>\r\n\
            Auto-Submitted: auto-replied\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: text/plain; charset=us-ascii\r\n\
            Content-Transfer-Encoding: 7bit\r\n\
            \r\n\
            -----BEGIN ACME RESPONSE-----\r\n\
            AjXW0h9_4YMP6Sv-9tKQNUrapI0us7ayBn0nCGOkUsk\r\n\
            -----END ACME RESPONSE-----\r\n";
        assert_eq!(String::from_utf8(reply.to_bytes()).unwrap(), expected);
    }
}
