//! RFC 8555 wire types (with the RFC 8823 challenge `from` and RFC 9773 `renewalInfo`), and
//! problem documents. Pure serde; unknown fields are ignored, unknown states kept as `Unknown`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The directory: where each resource lives.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    pub new_nonce: String,
    pub new_account: String,
    pub new_order: String,
    #[serde(default)]
    pub revoke_cert: Option<String>,
    #[serde(default)]
    pub key_change: Option<String>,
    #[serde(default)]
    pub renewal_info: Option<String>,
    #[serde(default)]
    pub meta: DirectoryMeta,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryMeta {
    #[serde(default)]
    pub terms_of_service: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    #[serde(default)]
    pub external_account_required: bool,
}

/// An identifier; smime-acme only orders `email` ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

impl Identifier {
    pub fn email(address: &str) -> Identifier {
        Identifier {
            kind: "email".into(),
            value: address.into(),
        }
    }
}

/// Object states (accounts, orders, authorizations and challenges share the vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
    Deactivated,
    Expired,
    Revoked,
    #[serde(other)]
    Unknown,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        f.write_str(text.as_deref().unwrap_or("unknown"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    pub status: Status,
    #[serde(default)]
    pub contact: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Order {
    pub status: Status,
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
    pub authorizations: Vec<String>,
    pub finalize: String,
    #[serde(default)]
    pub certificate: Option<String>,
    #[serde(default)]
    pub error: Option<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Authorization {
    pub status: Status,
    pub identifier: Identifier,
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub challenges: Vec<Challenge>,
}

impl Authorization {
    /// The RFC 8823 challenge, if the server offers one.
    pub fn email_reply(&self) -> Option<&Challenge> {
        self.challenges.iter().find(|c| c.kind == "email-reply-00")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Challenge {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    #[serde(default = "pending")]
    pub status: Status,
    /// token-part2, for `email-reply-00`.
    #[serde(default)]
    pub token: Option<String>,
    /// RFC 8823: the address the challenge mail comes from.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub error: Option<Problem>,
}

fn pending() -> Status {
    Status::Pending
}

/// Why a certificate is revoked: the RFC 5280 reasons the S/MIME BR let a subscriber give
/// ("unspecified" is never sent; the reason is left out instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReason {
    KeyCompromise,
    Superseded,
    AffiliationChanged,
    CessationOfOperation,
}

named_values!(RevocationReason, "revocation reason", {
    KeyCompromise => "key-compromise",
    Superseded => "superseded",
    AffiliationChanged => "affiliation-changed",
    CessationOfOperation => "cessation-of-operation",
});

impl RevocationReason {
    /// The RFC 5280 CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::KeyCompromise => 1,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
        }
    }
}

/// An RFC 7807 problem document as ACME uses it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Problem {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub subproblems: Vec<Subproblem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subproblem {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub identifier: Option<Identifier>,
}

const ACME_ERROR: &str = "urn:ietf:params:acme:error:";

impl Problem {
    /// The ACME error name (`badNonce`, ...) when the type is one, else the whole type.
    pub fn short_kind(&self) -> &str {
        self.kind.strip_prefix(ACME_ERROR).unwrap_or(&self.kind)
    }

    pub fn is(&self, name: &str) -> bool {
        self.short_kind() == name
    }
}

/// What an ACME error means (RFC 8555 §6.7, RFC 9773), for CAs that send no detail.
fn meaning(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "accountDoesNotExist" => {
            "the CA does not know this account, or it was deactivated: register a new one with smime-acme account register"
        }
        "alreadyRevoked" => "the certificate is already revoked",
        "alreadyReplaced" => "the certificate was already replaced",
        "badCSR" => "the CA does not accept the certificate request",
        "badRevocationReason" => "the CA does not accept this revocation reason",
        "externalAccountRequired" => "the CA requires external account binding",
        "incorrectResponse" => "the CA found the reply to its challenge wrong",
        "invalidContact" | "unsupportedContact" => "the CA does not accept the contact address",
        "rateLimited" => "too many requests: the CA asks to wait",
        "rejectedIdentifier" | "unsupportedIdentifier" => {
            "the CA does not issue certificates for this address"
        }
        "unauthorized" => "the CA does not allow this account to do this",
        "userActionRequired" => "the CA needs you to do something first (see its website)",
        _ => return None,
    })
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = self
            .detail
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty());
        match detail.or_else(|| meaning(self.short_kind())) {
            Some(detail) => write!(f, "{detail} ({})", self.short_kind())?,
            None => write!(f, "{}", self.short_kind())?,
        }
        for sub in &self.subproblems {
            let kind = sub.kind.strip_prefix(ACME_ERROR).unwrap_or(&sub.kind);
            write!(f, "; ")?;
            if let Some(id) = &sub.identifier {
                write!(f, "{}: ", id.value)?;
            }
            match sub.detail.as_deref() {
                Some(detail) => write!(f, "{detail} ({kind})")?,
                None => write!(f, "{kind}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8823_challenge_and_rfc8555_order_parse() {
        let authz: Authorization = serde_json::from_str(
            r#"{"status":"pending","identifier":{"type":"email","value":"alexey@example.com"},
                "challenges":[{"type":"http-01","url":"https://e/1","token":"x"},
                  {"type":"email-reply-00","url":"https://example.com/acme/chall/ABprV_B7yEyA4f",
                   "from":"acme-challenge+2i211oi1204310@example.com","token":"DGyRejmCefe7v4NfDGDKfA"}]}"#,
        )
        .unwrap();
        let challenge = authz.email_reply().unwrap();
        assert_eq!(challenge.token.as_deref(), Some("DGyRejmCefe7v4NfDGDKfA"));
        assert_eq!(
            challenge.from.as_deref(),
            Some("acme-challenge+2i211oi1204310@example.com")
        );
        assert_eq!(challenge.status, Status::Pending);

        let order: Order = serde_json::from_str(
            r#"{"status":"pending","expires":"2016-01-05T14:09:07.99Z",
                "identifiers":[{"type":"email","value":"alexey@example.com"}],
                "authorizations":["https://example.com/acme/authz/PAniVnsZcis"],
                "finalize":"https://example.com/acme/order/TOlocE8rfgo/finalize","newField":1}"#,
        )
        .unwrap();
        assert_eq!(order.identifiers, [Identifier::email("alexey@example.com")]);
        assert_eq!(order.certificate, None);
    }

    #[test]
    fn unknown_states_do_not_fail_parsing() {
        let c: Challenge =
            serde_json::from_str(r#"{"type":"x","url":"u","status":"frobnicated"}"#).unwrap();
        assert_eq!(c.status, Status::Unknown);
        assert_eq!(Status::Valid.to_string(), "valid");
    }

    #[test]
    fn problems_show_detail_and_subproblems() {
        let p: Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:malformed","detail":"Some of the identifiers requested were rejected",
                "subproblems":[{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"This CA will not issue for \"example.net\"",
                "identifier":{"type":"dns","value":"example.net"}}]}"#,
        )
        .unwrap();
        assert!(p.is("malformed"));
        assert_eq!(
            p.to_string(),
            "Some of the identifiers requested were rejected (malformed); example.net: This CA will not issue for \"example.net\" (rejectedIdentifier)"
        );
        let bare = Problem {
            kind: "about:blank".into(),
            ..Problem::default()
        };
        assert_eq!(bare.to_string(), "about:blank");
        let terse: Problem =
            serde_json::from_str(r#"{"type":"urn:ietf:params:acme:error:accountDoesNotExist"}"#)
                .unwrap();
        assert!(
            terse
                .to_string()
                .starts_with("the CA does not know this account")
                && terse.to_string().ends_with("(accountDoesNotExist)"),
            "{terse}"
        );
    }

    #[test]
    fn directory_with_meta() {
        let d: Directory = serde_json::from_str(
            r#"{"newNonce":"n","newAccount":"a","newOrder":"o","revokeCert":"r","keyChange":"k",
                "renewalInfo":"ri","meta":{"termsOfService":"https://ca/tos","externalAccountRequired":true}}"#,
        )
        .unwrap();
        assert!(d.meta.external_account_required);
        assert_eq!(d.renewal_info.as_deref(), Some("ri"));
        let minimal: Directory =
            serde_json::from_str(r#"{"newNonce":"n","newAccount":"a","newOrder":"o"}"#).unwrap();
        assert!(!minimal.meta.external_account_required);
    }
}
