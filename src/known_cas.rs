//! The RFC 8823 servers smime-acme knows by name: `--server castle` stands for CASTLE's
//! directory URL, and what the table says about a CA (how it joins the token parts, when it
//! sends the challenge mail) is the starting point until smime-acme has learned better from the
//! CA itself. Pure: no IO.

use crate::challenge::response::TokenJoin;

/// When a CA sends the challenge mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailTiming {
    /// When the authorization is fetched (RFC 8823 §3): reply first, then tell the CA.
    OnAuthorization,
    /// Only once the challenge is POSTed: tell the CA at once, then reply.
    AfterPost,
}

impl MailTiming {
    /// In words, for the log.
    pub fn describe(self) -> &'static str {
        match self {
            MailTiming::OnAuthorization => "mails on the authorization",
            MailTiming::AfterPost => "mails only after the challenge POST",
        }
    }
}

/// A known CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownCa {
    /// The short name `--server` takes.
    pub name: &'static str,
    /// Its ACME directory URL.
    pub url: &'static str,
    /// How it joins token-part1 and token-part2.
    pub join: TokenJoin,
    /// When it sends the challenge mail.
    pub timing: MailTiming,
    /// Whether it needs external account binding.
    pub eab: bool,
}

/// The known CAs. CASTLE (CTTC): a 22-character (16-octet) token-part1, the octets joined, the
/// mail sent once the order and its authorization exist, no external account binding.
pub const KNOWN: &[KnownCa] = &[
    KnownCa {
        name: "castle",
        url: "https://acme.castle.cloud/acme/directory",
        join: TokenJoin::Bytes,
        timing: MailTiming::OnAuthorization,
        eab: false,
    },
    KnownCa {
        name: "castle-staging",
        url: "https://acme-staging.castle.cloud/acme/directory",
        join: TokenJoin::Bytes,
        timing: MailTiming::OnAuthorization,
        eab: false,
    },
];

/// The known CA named `name` (case-insensitive).
pub fn by_name(name: &str) -> Option<&'static KnownCa> {
    KNOWN
        .iter()
        .find(|ca| ca.name.eq_ignore_ascii_case(name.trim()))
}

/// The known CA whose directory URL is `url`.
pub fn by_url(url: &str) -> Option<&'static KnownCa> {
    KNOWN.iter().find(|ca| ca.url == url)
}

/// The known names, comma-separated.
pub fn names() -> String {
    KNOWN
        .iter()
        .map(|ca| ca.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The directory URL `server` stands for: an https:// URL as given, or a known CA's name.
pub fn resolve(server: &str) -> Result<String, String> {
    if server.starts_with("https://") {
        return Ok(server.to_owned());
    }
    by_name(server).map(|ca| ca.url.to_owned()).ok_or_else(|| {
        format!(
            "the ACME server must be an https:// URL or the name of a known CA ({}), not {server:?}",
            names()
        )
    })
}

impl KnownCa {
    /// What the table says, in words.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}): joins the token parts as {}, {}, {}",
            self.name,
            self.url,
            self.join,
            self.timing.describe(),
            if self.eab {
                "needs external account binding"
            } else {
                "no external account binding"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_directory_urls() {
        assert_eq!(
            resolve("castle").unwrap(),
            "https://acme.castle.cloud/acme/directory"
        );
        assert_eq!(
            resolve("CASTLE-staging").unwrap(),
            "https://acme-staging.castle.cloud/acme/directory"
        );
        assert_eq!(
            resolve("https://ca.test/dir").unwrap(),
            "https://ca.test/dir"
        );
        assert_eq!(by_url(KNOWN[0].url), Some(&KNOWN[0]));
        assert_eq!(by_url("https://ca.test/dir"), None);
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        for bad in ["castel", "http://acme.castle.cloud/acme/directory", ""] {
            let err = resolve(bad).unwrap_err();
            assert!(
                err.contains("castle, castle-staging") && err.contains("https://"),
                "{err}"
            );
        }
    }

    #[test]
    fn settings_take_a_name_wherever_they_take_a_url() {
        use crate::settings::{Request, ServerConfig, ca, check_fields};
        let named = ServerConfig {
            url: Some("castle-staging".into()),
            ..ServerConfig::default()
        };
        assert_eq!(ca(&[&named]).unwrap().server, KNOWN[1].url);
        let request = Request {
            email: "staff70@example.test".into(),
            server: named,
            ..Request::default()
        };
        assert_eq!(check_fields(&request), Ok(()));
        let unknown = Request {
            server: ServerConfig {
                url: Some("kastle".into()),
                ..ServerConfig::default()
            },
            ..request
        };
        let (field, reason) = check_fields(&unknown).unwrap_err();
        assert_eq!(field, "server");
        assert!(reason.contains("castle, castle-staging"), "{reason}");
        assert!(ca(&[&unknown.server]).is_err());
    }

    #[test]
    fn names_are_unique_and_urls_https() {
        for (i, ca) in KNOWN.iter().enumerate() {
            assert!(ca.url.starts_with("https://"), "{}", ca.name);
            assert!(!ca.name.starts_with("https://"));
            assert_eq!(by_name(ca.name), Some(ca));
            assert!(
                KNOWN[..i]
                    .iter()
                    .all(|o| o.name != ca.name && o.url != ca.url)
            );
        }
    }
}
