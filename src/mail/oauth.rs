//! OAuth2 mail logins, the pure part: the SASL mechanisms that carry a bearer token (XOAUTH2,
//! and OAUTHBEARER of RFC 7628), the choice between them, what a server's error challenge says,
//! and the settings naming where the token comes from (fetched by `tokens`). No IO beyond
//! resolving a token endpoint's host name.

use std::path::PathBuf;

use super::Server;

/// The environment variable that may hold the refresh token.
pub const REFRESH_TOKEN_ENV: &str = "SMIME_ACME_OAUTH_REFRESH_TOKEN";

/// Which SASL mechanism carries the token (`--oauth-mechanism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mechanism {
    /// OAUTHBEARER when the server offers it, else XOAUTH2.
    #[default]
    Auto,
    Xoauth2,
    OAuthBearer,
}

named_values!(Mechanism, "OAuth mechanism", {
    Auto => "auto",
    Xoauth2 => "xoauth2",
    OAuthBearer => "oauthbearer",
});

/// A SASL mechanism that carries a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sasl {
    Xoauth2,
    OAuthBearer,
}

impl Sasl {
    /// Its name in AUTHENTICATE and AUTH.
    pub fn name(self) -> &'static str {
        match self {
            Sasl::Xoauth2 => "XOAUTH2",
            Sasl::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The client's first message: XOAUTH2's `user=U^Aauth=Bearer T^A^A`, or OAUTHBEARER's GS2
    /// header with the user as authorization identity, then host, port and token (RFC 7628
    /// §3.1).
    pub fn initial_response(self, user: &str, token: &str, server: &Server) -> Vec<u8> {
        match self {
            Sasl::Xoauth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01"),
            Sasl::OAuthBearer => format!(
                "n,a={},\x01host={}\x01port={}\x01auth=Bearer {token}\x01\x01",
                gs2_name(user),
                server.host,
                server.port
            ),
        }
        .into_bytes()
    }

    /// The answer to the server's error challenge, after which the server ends the exchange
    /// with a failure: an empty response for XOAUTH2, a single %x01 for OAUTHBEARER (RFC 7628
    /// §3.2.3).
    pub fn error_response(self) -> &'static [u8] {
        match self {
            Sasl::Xoauth2 => b"",
            Sasl::OAuthBearer => b"\x01",
        }
    }
}

/// A name in a GS2 header: `,` as `=2C` and `=` as `=3D` (RFC 5801 §4).
fn gs2_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

impl Mechanism {
    /// The mechanism to use with a server offering `offered` (SASL names, any case). Auto
    /// prefers OAUTHBEARER, the standard one (RFC 7628), and takes XOAUTH2 (Google's and
    /// Microsoft's older form, the only one Microsoft 365 offers) otherwise. A mechanism named
    /// explicitly is used whatever the server lists.
    pub fn choose(self, offered: &[String]) -> Result<Sasl, String> {
        let offers = |name: &str| offered.iter().any(|m| m.eq_ignore_ascii_case(name));
        match self {
            Mechanism::Xoauth2 => Ok(Sasl::Xoauth2),
            Mechanism::OAuthBearer => Ok(Sasl::OAuthBearer),
            Mechanism::Auto if offers("OAUTHBEARER") => Ok(Sasl::OAuthBearer),
            Mechanism::Auto if offers("XOAUTH2") => Ok(Sasl::Xoauth2),
            Mechanism::Auto => Err(format!(
                "the server offers neither OAUTHBEARER nor XOAUTH2 (it offers {})",
                if offered.is_empty() {
                    "no SASL mechanism".to_owned()
                } else {
                    offered.join(" ")
                }
            )),
        }
    }
}

/// What a server's error challenge says (a JSON object, RFC 7628 §3.2.2), for messages: its
/// `status` and `scope`, printable and short.
pub fn describe_challenge(challenge: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(challenge).unwrap_or_default();
    let field = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(|s| printable(s, 80))
    };
    match (field("status"), field("scope")) {
        (Some(status), Some(scope)) => format!("the token was refused: {status}, scope {scope}"),
        (Some(status), None) => format!("the token was refused: {status}"),
        _ => "the token was refused".to_owned(),
    }
}

/// `text` without control characters, at most `max` characters.
pub(crate) fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Where the access token comes from. Its `Debug` leaves out the command.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A command (run with `sh -c`) that prints an access token.
    Command(String),
    /// A refresh-token grant at a token endpoint.
    Grant(Grant),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Command(_) => f.write_str("Command(<redacted>)"),
            TokenSource::Grant(grant) => f.debug_tuple("Grant").field(grant).finish(),
        }
    }
}

/// A refresh-token grant: where, for which client, and where the refresh token is kept (never
/// the secrets themselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub token_url: String,
    pub client_id: String,
    pub client_secret_file: Option<PathBuf>,
    pub refresh_token: RefreshTokenSource,
}

/// Where the refresh token is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshTokenSource {
    File(PathBuf),
    /// [`REFRESH_TOKEN_ENV`].
    Env,
}

impl std::fmt::Display for RefreshTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefreshTokenSource::File(path) => write!(f, "{}", path.display()),
            RefreshTokenSource::Env => f.write_str(REFRESH_TOKEN_ENV),
        }
    }
}

/// OAuth2 for a mailbox: the mechanism and the token's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    pub mechanism: Mechanism,
    pub source: TokenSource,
}

/// The login settings of one level (the flags or a manifest entry; the configuration file's
/// mailbox table), as far as choosing between a password and OAuth2 goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Level<'a> {
    /// `password-file` or `password-command` is set.
    pub password: bool,
    pub mechanism: Option<&'a str>,
    pub token_command: Option<&'a str>,
    pub token_url: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub client_secret_file: Option<&'a PathBuf>,
    pub refresh_token_file: Option<&'a PathBuf>,
}

impl Level<'_> {
    /// Checks that the level names one way to log in: a password, a token command, or a token
    /// endpoint, and the grant's details only with a token endpoint. `flag` names a setting as
    /// the level spells it.
    fn check(&self, flag: impl Fn(&str) -> String) -> Result<(), String> {
        let named: Vec<String> = [
            (self.password, "password-file / password-command"),
            (self.token_command.is_some(), "oauth-token-command"),
            (self.token_url.is_some(), "oauth-token-url"),
        ]
        .into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| name.split(" / ").map(&flag).collect::<Vec<_>>().join(" / "))
        .collect();
        if named.len() > 1 {
            return Err(format!(
                "{} name different ways to log in to the mail servers: give one",
                named.join(" and ")
            ));
        }
        let grant_detail = [
            (self.client_id.is_some(), "oauth-client-id"),
            (
                self.client_secret_file.is_some(),
                "oauth-client-secret-file",
            ),
            (
                self.refresh_token_file.is_some(),
                "oauth-refresh-token-file",
            ),
        ]
        .into_iter()
        .find(|(set, _)| *set);
        if let Some((_, name)) = grant_detail
            && (self.password || self.token_command.is_some())
        {
            return Err(format!(
                "{} goes with {} (a refresh-token grant), not with {}",
                flag(name),
                flag("oauth-token-url"),
                named.join("")
            ));
        }
        Ok(())
    }

    fn names_oauth(&self) -> bool {
        self.token_command.is_some() || self.token_url.is_some()
    }
}

/// Whether the mail servers are logged in to with OAuth2, and how. The flags (`top`) decide
/// when they name a way to log in; else a password in `SMIME_ACME_PASSWORD` (`env_password`);
/// else the configuration file (`file`). Within OAuth2, each setting is taken from the flags,
/// else the file; the refresh token from `--oauth-refresh-token-file`, else
/// [`REFRESH_TOKEN_ENV`], else the file's `oauth-refresh-token-file`.
pub fn resolve(
    top: &Level<'_>,
    file: &Level<'_>,
    env_password: bool,
) -> Result<Option<OAuthSettings>, String> {
    top.check(|name| format!("--{name}"))?;
    file.check(str::to_owned)?;
    let chosen = if top.password || top.names_oauth() {
        top
    } else if env_password || !file.names_oauth() {
        return Ok(None);
    } else {
        file
    };
    if !chosen.names_oauth() {
        return Ok(None);
    }
    let mechanism: Mechanism = top
        .mechanism
        .or(file.mechanism)
        .map_or(Ok(Mechanism::Auto), str::parse)?;
    let source = match (chosen.token_command, chosen.token_url) {
        (Some(command), _) => TokenSource::Command(command.to_owned()),
        (None, Some(url)) => {
            check_token_url(url).map_err(|e| format!("oauth-token-url: {e}"))?;
            let client_id = top.client_id.or(file.client_id).ok_or_else(|| {
                format!("oauth-token-url {url} needs a client: give --oauth-client-id")
            })?;
            let refresh_token = if let Some(path) = top.refresh_token_file {
                RefreshTokenSource::File(path.clone())
            } else if std::env::var_os(REFRESH_TOKEN_ENV).is_some() {
                RefreshTokenSource::Env
            } else if let Some(path) = file.refresh_token_file {
                RefreshTokenSource::File(path.clone())
            } else {
                return Err(format!(
                    "no OAuth refresh token: give --oauth-refresh-token-file or set \
                     {REFRESH_TOKEN_ENV}"
                ));
            };
            TokenSource::Grant(Grant {
                token_url: url.to_owned(),
                client_id: client_id.to_owned(),
                client_secret_file: top.client_secret_file.or(file.client_secret_file).cloned(),
                refresh_token,
            })
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(OAuthSettings { mechanism, source }))
}

/// Checks a token endpoint's URL: https, or http to a loopback host only.
pub fn check_token_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{url:?} names no host"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = parsed.port_or_known_default().unwrap_or(80);
            Server {
                host: host.to_owned(),
                port,
            }
            .check_loopback()
            .map_err(|e| format!("{url}: plain http is allowed to a loopback host only ({e})"))
        }
        other => Err(format!("{url}: the scheme must be https, not {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        Server {
            host: "imap.example.com".into(),
            port: 993,
        }
    }

    #[test]
    fn sasl_messages_are_built_as_each_mechanism_wants() {
        assert_eq!(
            Sasl::Xoauth2.initial_response("a@example.com", "tok", &server()),
            b"user=a@example.com\x01auth=Bearer tok\x01\x01"
        );
        assert_eq!(
            Sasl::OAuthBearer.initial_response("a,b=c@example.com", "tok", &server()),
            b"n,a=a=2Cb=3Dc@example.com,\x01host=imap.example.com\x01port=993\x01auth=Bearer tok\x01\x01"
        );
        assert_eq!(Sasl::Xoauth2.error_response(), b"");
        assert_eq!(Sasl::OAuthBearer.error_response(), b"\x01");
    }

    #[test]
    fn auto_prefers_oauthbearer_and_explicit_choices_stand() {
        let offered = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let both = offered(&["PLAIN", "XOAUTH2", "oauthbearer"]);
        assert_eq!(Mechanism::Auto.choose(&both), Ok(Sasl::OAuthBearer));
        assert_eq!(
            Mechanism::Auto.choose(&offered(&["XOAUTH2"])),
            Ok(Sasl::Xoauth2)
        );
        assert_eq!(Mechanism::Xoauth2.choose(&both), Ok(Sasl::Xoauth2));
        assert_eq!(Mechanism::OAuthBearer.choose(&[]), Ok(Sasl::OAuthBearer));
        let err = Mechanism::Auto
            .choose(&offered(&["PLAIN", "LOGIN"]))
            .unwrap_err();
        assert!(err.contains("PLAIN LOGIN"), "{err}");
        assert!(Mechanism::Auto.choose(&[]).is_err());
        assert_eq!("oauthbearer".parse(), Ok(Mechanism::OAuthBearer));
        assert!("bearer".parse::<Mechanism>().is_err());
    }

    #[test]
    fn error_challenges_are_described_without_trusting_them() {
        assert_eq!(
            describe_challenge(br#"{"status":"invalid_token","scope":"mail"}"#),
            "the token was refused: invalid_token, scope mail"
        );
        assert_eq!(
            describe_challenge(br#"{"status":"401","schemes":"bearer"}"#),
            "the token was refused: 401"
        );
        assert_eq!(
            describe_challenge(b"\xff\x00garbage"),
            "the token was refused"
        );
        let long = format!(r#"{{"status":"{}\u0007"}}"#, "x".repeat(500));
        assert_eq!(describe_challenge(long.as_bytes()).len(), 23 + 80);
    }

    #[test]
    fn one_way_to_log_in_per_level_and_the_flags_decide() {
        let pw = PathBuf::from("/pw");
        let grant = Level {
            token_url: Some("https://idp.test/token"),
            client_id: Some("client"),
            refresh_token_file: Some(&pw),
            ..Level::default()
        };
        let command = Level {
            token_command: Some("oama access a@example.com"),
            mechanism: Some("xoauth2"),
            ..Level::default()
        };
        let password = Level {
            password: true,
            ..Level::default()
        };
        let none = Level::default();
        // The file's OAuth2, unless the flags or the environment give a password.
        let got = resolve(&none, &grant, false).unwrap().unwrap();
        assert_eq!(got.mechanism, Mechanism::Auto);
        let TokenSource::Grant(g) = &got.source else {
            panic!("{got:?}")
        };
        assert_eq!(g.refresh_token, RefreshTokenSource::File(pw.clone()));
        assert_eq!(resolve(&password, &grant, false), Ok(None));
        assert_eq!(resolve(&none, &grant, true), Ok(None));
        assert_eq!(resolve(&none, &none, false), Ok(None));
        // Flags' OAuth2 over the file's password; settings fill in from the file.
        let got = resolve(&command, &password, true).unwrap().unwrap();
        assert_eq!(got.mechanism, Mechanism::Xoauth2);
        assert!(matches!(got.source, TokenSource::Command(_)));
        let url_only = Level {
            token_url: Some("https://idp.test/token"),
            ..Level::default()
        };
        let TokenSource::Grant(g) = resolve(&url_only, &grant, false).unwrap().unwrap().source
        else {
            panic!()
        };
        assert_eq!(g.client_id, "client");
        // Nonsense at one level.
        let both = Level {
            password: true,
            ..command
        };
        let err = resolve(&both, &none, false).unwrap_err();
        assert!(
            err.contains("--password-file / --password-command and --oauth-token-command"),
            "{err}"
        );
        let both = Level {
            token_command: Some("x"),
            ..grant
        };
        assert!(
            resolve(&none, &both, false)
                .unwrap_err()
                .contains("oauth-token-command and oauth-token-url")
        );
        let stray = Level {
            client_id: Some("client"),
            ..password
        };
        let err = resolve(&stray, &none, false).unwrap_err();
        assert!(
            err.contains("--oauth-client-id goes with --oauth-token-url"),
            "{err}"
        );
        let no_client = resolve(&url_only, &none, false).unwrap_err();
        assert!(no_client.contains("--oauth-client-id"), "{no_client}");
        let bad = Level {
            mechanism: Some("bearer"),
            ..command
        };
        assert!(resolve(&bad, &none, false).unwrap_err().contains("bearer"));
        let plain_http = Level {
            token_url: Some("http://idp.example.com/token"),
            ..grant
        };
        assert!(
            resolve(&plain_http, &none, false)
                .unwrap_err()
                .contains("loopback")
        );
    }

    #[test]
    fn token_urls_are_https_or_loopback_http() {
        assert!(check_token_url("https://oauth2.googleapis.com/token").is_ok());
        assert!(check_token_url("http://127.0.0.1:8080/token").is_ok());
        assert!(check_token_url("http://[::1]/token").is_ok());
        assert!(check_token_url("http://localhost/token").is_ok());
        let err = check_token_url("http://idp.example.com/token").unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        assert!(check_token_url("ftp://idp.example.com/token").is_err());
        assert!(check_token_url("not a url").is_err());
    }
}
