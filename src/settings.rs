//! Flags, environment and the configuration file merged into plain settings, validated. No IO
//! beyond reading the configuration file (secrets are read later, by `secrets`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::bundle::P12Format;
use crate::challenge::authenticity::ChallengeAuth;
use crate::challenge::response::TokenJoin;
use crate::cli::{GlobalArgs, ObtainArgs};
use crate::keys::{KeyType, Usage};
use crate::mail::{Security, Server};

/// A configuration problem, shown as is; exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

fn bad(text: impl Into<String>) -> SettingsError {
    SettingsError(text.into())
}

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub mailbox: BTreeMap<String, MailboxConfig>,
}

/// `[server]`: the CA.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    pub url: Option<String>,
    pub ca_bundle: Option<PathBuf>,
    pub eab_kid: Option<String>,
    pub eab_hmac_key_file: Option<PathBuf>,
    pub agree_tos: Option<bool>,
    pub token_join: Option<String>,
    pub challenge_timing: Option<String>,
    pub timeout: Option<String>,
}

/// `[mailbox."you@example.com"]`: one mailbox.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MailboxConfig {
    pub imap: Option<String>,
    pub imap_security: Option<String>,
    pub imap_user: Option<String>,
    pub smtp: Option<String>,
    pub smtp_security: Option<String>,
    pub smtp_user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    #[serde(default)]
    pub watch_folder: Vec<String>,
    pub key_type: Option<String>,
    pub usage: Option<String>,
    pub p12_format: Option<String>,
    pub p12_password_file: Option<PathBuf>,
    pub challenge_auth: Option<String>,
    pub dns_server: Option<String>,
}

/// Where the mail password comes from, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    File(PathBuf),
    Env,
    Command(String),
    Prompt,
}

/// When the challenge is POSTed relative to the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChallengeTiming {
    /// Reply first; POST early only if no mail comes within a short first wait.
    #[default]
    Auto,
    /// Always reply first, then POST.
    ReplyFirst,
    /// POST right away (servers that send the mail only then), then reply.
    PostFirst,
}

/// Everything `obtain` needs, resolved.
#[derive(Debug, Clone)]
pub struct ObtainSettings {
    pub email: String,
    pub state_dir: PathBuf,
    pub server: String,
    pub ca_bundle: Option<PathBuf>,
    pub imap: Server,
    pub imap_security: Security,
    pub imap_user: String,
    pub smtp: Server,
    pub smtp_security: Security,
    pub smtp_user: String,
    pub password: PasswordSource,
    pub folders: Vec<String>,
    pub key_type: KeyType,
    pub usage: Usage,
    pub p12_format: P12Format,
    pub p12_password_file: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub eab: Option<(String, PathBuf)>,
    pub agree_tos: bool,
    pub challenge_auth: ChallengeAuth,
    pub dns_server: Option<SocketAddr>,
    pub token_join: TokenJoin,
    pub challenge_timing: ChallengeTiming,
    pub timeout: Duration,
}

/// The default configuration file and state folder.
pub fn default_paths() -> (Option<PathBuf>, Option<PathBuf>) {
    (
        dirs::config_dir().map(|d| d.join("smime-acme").join("config.toml")),
        dirs::data_dir().map(|d| d.join("smime-acme")),
    )
}

/// Reads the configuration file: the one named, else the default one if it exists.
pub fn load_config(named: Option<&Path>) -> Result<ConfigFile, SettingsError> {
    let path = match named {
        Some(path) => path.to_owned(),
        None => match default_paths().0 {
            Some(path) if path.exists() => path,
            _ => return Ok(ConfigFile::default()),
        },
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| bad(format!("{}: {}", path.display(), e.message())))
}

fn parse<T: std::str::FromStr<Err = String>>(
    value: Option<&str>,
    default: T,
) -> Result<T, SettingsError> {
    value.map_or(Ok(default), |v| v.parse().map_err(bad))
}

/// Merges flags over environment over the configuration file over defaults.
pub fn obtain(
    global: &GlobalArgs,
    args: &ObtainArgs,
    config: &ConfigFile,
) -> Result<ObtainSettings, SettingsError> {
    let email = args.email.trim().to_owned();
    if !crate::challenge::mail::is_plain_address(&email) || !email.contains('.') {
        return Err(bad(format!("{email:?} is not an email address")));
    }
    let none = MailboxConfig::default();
    let mailbox = config
        .mailbox
        .iter()
        .find(|(k, _)| crate::challenge::mail::same_address(k, &email))
        .map_or(&none, |(_, v)| v);
    let server_cfg = &config.server;
    let pick = |flag: &Option<String>, cfg: &Option<String>| flag.clone().or_else(|| cfg.clone());

    let server = pick(&args.server, &server_cfg.url).ok_or_else(|| {
        bad("no ACME server: give --server URL, set SMIME_ACME_SERVER, or url in [server]")
    })?;
    if !server.starts_with("https://") {
        return Err(bad(format!(
            "the ACME server must be an https:// URL, not {server:?}"
        )));
    }

    let imap_security: Security = parse(
        pick(&args.imap_security, &mailbox.imap_security).as_deref(),
        Security::Tls,
    )?;
    let imap_port = if imap_security == Security::Tls {
        993
    } else {
        143
    };
    let imap_text = pick(&args.imap, &mailbox.imap).ok_or_else(|| {
        bad(format!(
            "no IMAP server for {email}: give --imap HOST[:PORT] or imap in [mailbox.\"{email}\"]"
        ))
    })?;
    let imap = Server::parse(&imap_text, imap_port).map_err(bad)?;
    let smtp_security: Security = parse(
        pick(&args.smtp_security, &mailbox.smtp_security).as_deref(),
        Security::Tls,
    )?;
    let smtp_port = if smtp_security == Security::Tls {
        465
    } else {
        587
    };
    let smtp = match pick(&args.smtp, &mailbox.smtp) {
        Some(text) => Server::parse(&text, smtp_port).map_err(bad)?,
        None => Server {
            host: imap.host.clone(),
            port: smtp_port,
        },
    };
    for (what, server, security) in [
        ("IMAP", &imap, imap_security),
        ("SMTP", &smtp, smtp_security),
    ] {
        if security == Security::Plain && !server.is_loopback() {
            return Err(bad(format!(
                "{what} without TLS (plain) is allowed only to a loopback address, not {server}"
            )));
        }
    }
    let imap_user = pick(&args.imap_user, &mailbox.imap_user).unwrap_or_else(|| email.clone());
    let smtp_user = pick(&args.smtp_user, &mailbox.smtp_user).unwrap_or_else(|| imap_user.clone());

    let password = if let Some(file) = args.password_file.clone() {
        PasswordSource::File(file)
    } else if let Some(cmd) = args.password_command.clone() {
        PasswordSource::Command(cmd)
    } else if std::env::var_os("SMIME_ACME_PASSWORD").is_some() {
        PasswordSource::Env
    } else if let Some(file) = mailbox.password_file.clone() {
        PasswordSource::File(file)
    } else if let Some(cmd) = mailbox.password_command.clone() {
        PasswordSource::Command(cmd)
    } else {
        PasswordSource::Prompt
    };

    let mut folders = vec!["INBOX".to_owned()];
    for folder in args.watch_folder.iter().chain(&mailbox.watch_folder) {
        if !folders.contains(folder) {
            folders.push(folder.clone());
        }
    }

    let key_type: KeyType = parse(
        pick(&args.key_type, &mailbox.key_type).as_deref(),
        KeyType::default(),
    )?;
    let usage: Usage = parse(
        pick(&args.usage, &mailbox.usage).as_deref(),
        Usage::default(),
    )?;
    crate::keys::key_usages(key_type, usage).map_err(|e| bad(e.to_string()))?;
    let p12_format: P12Format = parse(
        pick(&args.p12_format, &mailbox.p12_format).as_deref(),
        P12Format::default(),
    )?;

    let eab = match (
        args.eab_kid.clone().or_else(|| server_cfg.eab_kid.clone()),
        args.eab_hmac_key_file
            .clone()
            .or_else(|| server_cfg.eab_hmac_key_file.clone()),
    ) {
        (Some(kid), Some(file)) => Some((kid, file)),
        (None, None) => None,
        _ => {
            return Err(bad(
                "external account binding needs both --eab-kid and --eab-hmac-key-file",
            ));
        }
    };

    let challenge_auth: ChallengeAuth = parse(
        pick(&args.challenge_auth, &mailbox.challenge_auth).as_deref(),
        ChallengeAuth::Dkim,
    )?;
    let dns_server = pick(&args.dns_server, &mailbox.dns_server)
        .map(|text| {
            let server = Server::parse(&text, 53).map_err(bad)?;
            let ip: std::net::IpAddr = server
                .host
                .parse()
                .map_err(|_| bad(format!("--dns-server needs an IP address, not {text:?}")))?;
            Ok::<_, SettingsError>(SocketAddr::new(ip, server.port))
        })
        .transpose()?;
    let token_join = match pick(&args.token_join, &server_cfg.token_join).as_deref() {
        None | Some("string") => TokenJoin::String,
        Some("bytes") => TokenJoin::Bytes,
        Some(other) => {
            return Err(bad(format!(
                "token-join {other:?}: expected string or bytes"
            )));
        }
    };
    let challenge_timing =
        match pick(&args.challenge_timing, &server_cfg.challenge_timing).as_deref() {
            None | Some("auto") => ChallengeTiming::Auto,
            Some("reply-first") => ChallengeTiming::ReplyFirst,
            Some("post-first") => ChallengeTiming::PostFirst,
            Some(other) => {
                return Err(bad(format!(
                    "challenge-timing {other:?}: expected auto, reply-first or post-first"
                )));
            }
        };
    let timeout = parse_duration(
        pick(&args.timeout, &server_cfg.timeout)
            .as_deref()
            .unwrap_or("30m"),
    )
    .map_err(bad)?;
    let state_dir = global
        .state_dir
        .clone()
        .or_else(|| default_paths().1)
        .ok_or_else(|| bad("no state folder: give --state-dir or set SMIME_ACME_HOME"))?;

    Ok(ObtainSettings {
        email,
        state_dir,
        server,
        ca_bundle: args
            .ca_bundle
            .clone()
            .or_else(|| server_cfg.ca_bundle.clone()),
        imap,
        imap_security,
        imap_user,
        smtp,
        smtp_security,
        smtp_user,
        password,
        folders,
        key_type,
        usage,
        p12_format,
        p12_password_file: args
            .p12_password_file
            .clone()
            .or_else(|| mailbox.p12_password_file.clone()),
        out: args.out.clone(),
        eab,
        agree_tos: args.agree_tos || server_cfg.agree_tos.unwrap_or(false),
        challenge_auth,
        dns_server,
        token_join,
        challenge_timing,
        timeout,
    })
}

/// `90s`, `30m`, `1h`, `1h30m`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("bad duration {text:?}: use e.g. 90s, 30m, 1h30m")),
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("bad duration {text:?}"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(format!("bad duration {text:?}: use e.g. 90s, 30m, 1h30m"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(email: &str) -> ObtainArgs {
        ObtainArgs {
            email: email.into(),
            server: Some("https://ca.test/dir".into()),
            imap: Some("127.0.0.1:10993".into()),
            ..Default::default()
        }
    }

    fn global() -> GlobalArgs {
        GlobalArgs {
            config: None,
            state_dir: Some("/tmp/x".into()),
            verbose: 0,
            quiet: false,
            json: false,
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn defaults_follow_the_email_and_security() {
        let s = obtain(
            &global(),
            &args("alice@example.test"),
            &ConfigFile::default(),
        )
        .unwrap();
        assert_eq!(s.imap_user, "alice@example.test");
        assert_eq!(
            s.smtp,
            Server {
                host: "127.0.0.1".into(),
                port: 465
            }
        );
        assert_eq!(s.folders, ["INBOX"]);
        assert_eq!(s.key_type, KeyType::Rsa3072);
        assert_eq!(s.timeout, Duration::from_secs(1800));
    }

    #[test]
    fn config_file_fills_what_flags_leave_out() {
        let config: ConfigFile = toml::from_str(
            r#"
            [server]
            url = "https://other.test/dir"
            token-join = "bytes"
            [mailbox."alice@example.test"]
            smtp = "127.0.0.1:10587"
            smtp-security = "starttls"
            key-type = "p256"
            watch-folder = ["Junk"]
            "#,
        )
        .unwrap();
        let s = obtain(&global(), &args("alice@example.test"), &config).unwrap();
        assert_eq!(s.server, "https://ca.test/dir", "a flag wins over the file");
        assert_eq!(
            s.smtp,
            Server {
                host: "127.0.0.1".into(),
                port: 10587
            }
        );
        assert_eq!(s.smtp_security, Security::StartTls);
        assert_eq!(s.key_type, KeyType::P256);
        assert_eq!(s.token_join, TokenJoin::Bytes);
        assert_eq!(s.folders, ["INBOX", "Junk"]);
        assert!(toml::from_str::<ConfigFile>("[server]\nbogus = 1").is_err());
    }

    #[test]
    fn refusals() {
        let mut a = args("alice@example.test");
        a.imap = Some("mail.example.com".into());
        a.imap_security = Some("plain".into());
        assert!(
            obtain(&global(), &a, &ConfigFile::default())
                .unwrap_err()
                .0
                .contains("loopback")
        );

        let mut a = args("alice@example.test");
        a.key_type = Some("ed25519".into());
        assert!(
            obtain(&global(), &a, &ConfigFile::default())
                .unwrap_err()
                .0
                .contains("ed25519")
        );
        a.usage = Some("sign".into());
        assert!(obtain(&global(), &a, &ConfigFile::default()).is_ok());

        let mut a = args("alice@example.test");
        a.server = Some("http://ca.test/dir".into());
        assert!(obtain(&global(), &a, &ConfigFile::default()).is_err());
        assert!(obtain(&global(), &args("not-an-address"), &ConfigFile::default()).is_err());
    }
}
