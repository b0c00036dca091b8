//! Flags, environment and the configuration file merged into plain settings, validated. No IO
//! beyond reading the configuration file and resolving the name of a server to be reached
//! without TLS (secrets are read later, by `secrets`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bundle::P12Format;
use crate::challenge::authenticity::ChallengeAuth;
use crate::challenge::response::JoinChoice;
use crate::keys::{KeyType, Usage};
use crate::mail::{Master, Security, Server};

/// A configuration problem, shown as is; exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

fn bad(text: impl Into<String>) -> SettingsError {
    SettingsError(text.into())
}

/// The configuration file (also the shape of the settings kept for `renew`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub mailbox: BTreeMap<String, MailboxConfig>,
}

/// `[server]`: the CA.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
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

/// `[mailbox."you@example.com"]`: one mailbox. Its `Debug` leaves out the password command.
#[derive(Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MailboxConfig {
    pub imap: Option<String>,
    pub imap_security: Option<String>,
    pub imap_user: Option<String>,
    pub smtp: Option<String>,
    pub smtp_security: Option<String>,
    pub smtp_user: Option<String>,
    pub master_user: Option<String>,
    pub master_separator: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub oauth_mechanism: Option<String>,
    pub oauth_token_command: Option<String>,
    pub oauth_token_url: Option<String>,
    pub oauth_client_id: Option<String>,
    pub oauth_client_secret_file: Option<PathBuf>,
    pub oauth_refresh_token_file: Option<PathBuf>,
    #[serde(default)]
    pub watch_folder: Vec<String>,
    pub key_type: Option<String>,
    pub usage: Option<String>,
    pub p12_format: Option<String>,
    pub p12_password_file: Option<PathBuf>,
    pub challenge_auth: Option<String>,
    pub dns_server: Option<String>,
    pub out: Option<PathBuf>,
    pub deploy_hook: Option<String>,
    /// Where to fetch the autoconfig document when the mail servers are discovered.
    pub autoconfig_url: Option<String>,
}

impl std::fmt::Debug for MailboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let MailboxConfig {
            imap,
            imap_security,
            imap_user,
            smtp,
            smtp_security,
            smtp_user,
            master_user,
            master_separator,
            password_file,
            password_command,
            oauth_mechanism,
            oauth_token_command,
            oauth_token_url,
            oauth_client_id,
            oauth_client_secret_file,
            oauth_refresh_token_file,
            watch_folder,
            key_type,
            usage,
            p12_format,
            p12_password_file,
            challenge_auth,
            dns_server,
            out,
            deploy_hook,
            autoconfig_url,
        } = self;
        f.debug_struct("MailboxConfig")
            .field("imap", imap)
            .field("imap_security", imap_security)
            .field("imap_user", imap_user)
            .field("smtp", smtp)
            .field("smtp_security", smtp_security)
            .field("smtp_user", smtp_user)
            .field("master_user", master_user)
            .field("master_separator", master_separator)
            .field("password_file", password_file)
            .field(
                "password_command",
                &password_command.as_ref().map(|_| REDACTED),
            )
            .field("oauth_mechanism", oauth_mechanism)
            .field(
                "oauth_token_command",
                &oauth_token_command.as_ref().map(|_| REDACTED),
            )
            .field("oauth_token_url", oauth_token_url)
            .field("oauth_client_id", oauth_client_id)
            .field("oauth_client_secret_file", oauth_client_secret_file)
            .field("oauth_refresh_token_file", oauth_refresh_token_file)
            .field("watch_folder", watch_folder)
            .field("key_type", key_type)
            .field("usage", usage)
            .field("p12_format", p12_format)
            .field("p12_password_file", p12_password_file)
            .field("challenge_auth", challenge_auth)
            .field("dns_server", dns_server)
            .field("out", out)
            .field("deploy_hook", deploy_hook)
            .field("autoconfig_url", autoconfig_url)
            .finish()
    }
}

/// What `Debug` shows in place of a secret.
const REDACTED: Redacted = Redacted;

struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the mail password comes from, in order of preference. Its `Debug` leaves out the
/// command, which may carry a secret of its own.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordSource {
    File(PathBuf),
    Env,
    Command(String),
    Prompt,
}

impl std::fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordSource::File(path) => f.debug_tuple("File").field(path).finish(),
            PasswordSource::Env => f.write_str("Env"),
            PasswordSource::Command(_) => f.debug_tuple("Command").field(&REDACTED).finish(),
            PasswordSource::Prompt => f.write_str("Prompt"),
        }
    }
}

/// When the challenge is POSTed relative to the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChallengeTiming {
    /// Reply first; POST early only if no mail comes within a short first wait, and at once
    /// for a CA known to send the mail only then (`issuance::learn`).
    #[default]
    Auto,
    /// Always reply first, then POST.
    ReplyFirst,
    /// POST right away (servers that send the mail only then), then reply.
    PostFirst,
}

named_values!(ChallengeTiming, "challenge timing", {
    Auto => "auto",
    ReplyFirst => "reply-first",
    PostFirst => "post-first",
});

/// Everything `obtain` needs, resolved.
#[derive(Debug, Clone)]
pub struct ObtainSettings {
    pub email: String,
    pub state_dir: PathBuf,
    pub server: String,
    pub ca_bundle: Option<PathBuf>,
    /// None: to be discovered (`mail::discover`) before the issuance starts.
    pub imap: Option<Server>,
    pub imap_security: Security,
    pub imap_user: String,
    /// None: to be discovered, as `imap`.
    pub smtp: Option<Server>,
    pub smtp_security: Security,
    pub smtp_user: String,
    /// What discovery of the servers left unset goes by.
    pub discovery: Discovery,
    /// An administrator logging in on the user's behalf; `password` is then its password.
    pub master: Option<Master>,
    pub password: PasswordSource,
    /// Log in with OAuth2 access tokens instead of `password` (which is then not read).
    pub oauth: Option<crate::mail::oauth::OAuthSettings>,
    pub folders: Vec<String>,
    pub key_type: KeyType,
    pub usage: Usage,
    pub p12_format: P12Format,
    pub p12_password_file: Option<PathBuf>,
    pub out: Option<PathBuf>,
    /// Run after each issuance (obtain, renew), with the new files in its environment.
    pub deploy_hook: Option<String>,
    /// Do not reuse the PKCS#12 password kept for the address: ask, or generate a new one.
    pub new_p12_password: bool,
    pub eab: Option<(String, PathBuf)>,
    pub agree_tos: bool,
    pub challenge_auth: ChallengeAuth,
    pub dns_server: Option<SocketAddr>,
    pub token_join: JoinChoice,
    pub challenge_timing: ChallengeTiming,
    pub timeout: Duration,
    /// How long to wait for another run working on the same mailbox.
    pub wait_lock: Duration,
}

impl ObtainSettings {
    /// The CA part.
    pub fn ca(&self) -> CaSettings {
        CaSettings {
            server: self.server.clone(),
            ca_bundle: self.ca_bundle.clone(),
            eab: self.eab.clone(),
            agree_tos: self.agree_tos,
        }
    }
}

/// What discovery of the mail servers goes by: what the user set without naming a server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// `imap-security` and `smtp-security` as given: only candidates with that security.
    pub imap_security: Option<Security>,
    pub smtp_security: Option<Security>,
    /// Whether `imap-user` and `smtp-user` were given (else a login name from autoconfig is
    /// used).
    pub imap_user_given: bool,
    pub smtp_user_given: bool,
    /// `autoconfig-url`: the autoconfig document's URL, instead of the domain's own places.
    pub autoconfig_url: Option<String>,
}

impl ObtainSettings {
    /// Whether a mail server is still to be discovered.
    pub fn needs_discovery(&self) -> bool {
        self.imap.is_none() || self.smtp.is_none()
    }
}

/// The default configuration file and state folder.
pub fn default_paths() -> (Option<PathBuf>, Option<PathBuf>) {
    (
        dirs::config_dir().map(|d| d.join("smime-acme").join("config.toml")),
        dirs::data_dir().map(|d| d.join("smime-acme")),
    )
}

/// The system-wide configuration file, read when the user has none.
pub const SYSTEM_CONFIG: &str = "/etc/smime-acme/config.toml";

/// The configuration file to read: the one named (`--config`, `SMIME_ACME_CONFIG`), else the
/// first of the user's and the system's that `exists`.
pub fn config_path(
    named: Option<&Path>,
    user: Option<PathBuf>,
    exists: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    if let Some(path) = named {
        return Some(path.to_owned());
    }
    user.into_iter()
        .chain([PathBuf::from(SYSTEM_CONFIG)])
        .find(|path| exists(path))
}

/// Reads the configuration file (see [`config_path`]); none is an empty configuration.
pub fn load_config(named: Option<&Path>) -> Result<ConfigFile, SettingsError> {
    let Some(path) = config_path(named, default_paths().0, Path::exists) else {
        return Ok(ConfigFile::default());
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

/// One certificate asked for: the address and the settings given for it on top of the
/// configuration file (the command line's flags, or a manifest's entry).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub email: String,
    pub server: ServerConfig,
    pub mailbox: MailboxConfig,
    /// For this run only (never kept): a new PKCS#12 password instead of the kept one.
    pub new_p12_password: bool,
}

/// What every command shares: where the state is kept and how long to wait for a lock.
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub state_dir: Option<PathBuf>,
    pub wait_lock: Option<String>,
}

/// The CA to talk to, and how: resolved once for every command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSettings {
    pub server: String,
    pub ca_bundle: Option<PathBuf>,
    /// External account binding: key identifier and the file holding the MAC key.
    pub eab: Option<(String, PathBuf)>,
    pub agree_tos: bool,
}

/// The CA from `layers`, the first layer that sets a field winning (flags, then what was kept
/// for the certificate, then the configuration file).
pub fn ca(layers: &[&ServerConfig]) -> Result<CaSettings, SettingsError> {
    let first =
        |field: fn(&ServerConfig) -> Option<&String>| layers.iter().find_map(|l| field(l)).cloned();
    let server = first(|l| l.url.as_ref()).ok_or_else(|| {
        bad("no ACME server: give --server URL, set SMIME_ACME_SERVER, or url in [server]")
    })?;
    let server = crate::known_cas::resolve(&server).map_err(bad)?;
    let eab = match (
        first(|l| l.eab_kid.as_ref()),
        layers.iter().find_map(|l| l.eab_hmac_key_file.clone()),
    ) {
        (Some(kid), Some(file)) => Some((kid, file)),
        (None, None) => None,
        _ => {
            return Err(bad(
                "external account binding needs both --eab-kid and --eab-hmac-key-file",
            ));
        }
    };
    Ok(CaSettings {
        server,
        ca_bundle: layers.iter().find_map(|l| l.ca_bundle.clone()),
        eab,
        agree_tos: layers.iter().any(|l| l.agree_tos == Some(true)),
    })
}

/// Checks each value of a request on its own, so that a problem names its field (as written in
/// the configuration file): the checks `obtain` makes again when it merges them.
pub fn check_fields(top: &Request) -> Result<(), (&'static str, String)> {
    fn check<T: std::str::FromStr<Err = String>>(
        field: &'static str,
        value: &Option<String>,
    ) -> Result<(), (&'static str, String)> {
        match value {
            Some(v) => v.parse::<T>().map(|_| ()).map_err(|e| (field, e)),
            None => Ok(()),
        }
    }
    let (s, m) = (&top.server, &top.mailbox);
    check::<Security>("imap-security", &m.imap_security)?;
    check::<Security>("smtp-security", &m.smtp_security)?;
    check::<KeyType>("key-type", &m.key_type)?;
    check::<Usage>("usage", &m.usage)?;
    check::<P12Format>("p12-format", &m.p12_format)?;
    check::<ChallengeAuth>("challenge-auth", &m.challenge_auth)?;
    check::<JoinChoice>("token-join", &s.token_join)?;
    check::<ChallengeTiming>("challenge-timing", &s.challenge_timing)?;
    check::<crate::mail::oauth::Mechanism>("oauth-mechanism", &m.oauth_mechanism)?;
    if let Some(url) = &m.oauth_token_url {
        crate::mail::oauth::check_token_url(url).map_err(|e| ("oauth-token-url", e))?;
    }
    for (field, value) in [
        ("imap", &m.imap),
        ("smtp", &m.smtp),
        ("dns-server", &m.dns_server),
    ] {
        if let Some(text) = value {
            Server::parse(text, 1).map_err(|e| (field, e))?;
        }
    }
    if let Some(url) = &m.autoconfig_url {
        check_autoconfig_url(url).map_err(|e| ("autoconfig-url", e))?;
    }
    if let Some(text) = &s.timeout {
        parse_duration(text).map_err(|e| ("timeout", e))?;
    }
    if let Some(url) = &s.url {
        crate::known_cas::resolve(url).map_err(|e| ("server", e))?;
    }
    Ok(())
}

/// Merges `top` (flags, or a manifest entry) over environment over the configuration file over
/// defaults.
pub fn obtain(
    common: &Common,
    top: &Request,
    config: &ConfigFile,
) -> Result<ObtainSettings, SettingsError> {
    let args = &top.mailbox;
    let flags = &top.server;
    let email = top.email.trim().to_owned();
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

    let ca = ca(&[flags, server_cfg])?;

    let imap_security_given: Option<Security> =
        match pick(&args.imap_security, &mailbox.imap_security) {
            Some(text) => Some(text.parse().map_err(bad)?),
            None => None,
        };
    let imap_security = imap_security_given.unwrap_or(Security::Tls);
    let imap_port = if imap_security == Security::Tls {
        993
    } else {
        143
    };
    // No IMAP server given: it is discovered, once the password is known.
    let imap = pick(&args.imap, &mailbox.imap)
        .map(|text| Server::parse(&text, imap_port).map_err(bad))
        .transpose()?;
    let smtp_security_given: Option<Security> =
        match pick(&args.smtp_security, &mailbox.smtp_security) {
            Some(text) => Some(text.parse().map_err(bad)?),
            None => None,
        };
    let smtp_security = smtp_security_given.unwrap_or(Security::Tls);
    let smtp_port = if smtp_security == Security::Tls {
        465
    } else {
        587
    };
    let smtp = match pick(&args.smtp, &mailbox.smtp) {
        Some(text) => Some(Server::parse(&text, smtp_port).map_err(bad)?),
        None => imap.as_ref().map(|imap| Server {
            host: imap.host.clone(),
            port: smtp_port,
        }),
    };
    for (what, server, security) in [
        ("IMAP", &imap, imap_security),
        ("SMTP", &smtp, smtp_security),
    ] {
        let Some(server) = server else {
            if security == Security::Plain {
                return Err(bad(format!(
                    "{what} without TLS (plain) needs the server named (--{}): discovered \
                     servers are reached over TLS only",
                    what.to_ascii_lowercase()
                )));
            }
            continue;
        };
        if security == Security::Plain {
            server.check_loopback().map_err(|reason| {
                bad(format!(
                    "{what} without TLS (plain) is allowed only to a loopback address: {reason}"
                ))
            })?;
        }
    }
    let imap_user_given = pick(&args.imap_user, &mailbox.imap_user);
    let smtp_user_given = pick(&args.smtp_user, &mailbox.smtp_user);
    let discovery = Discovery {
        imap_security: imap_security_given,
        smtp_security: smtp_security_given,
        imap_user_given: imap_user_given.is_some(),
        smtp_user_given: smtp_user_given.is_some(),
        autoconfig_url: pick(&args.autoconfig_url, &mailbox.autoconfig_url)
            .map(|url| check_autoconfig_url(&url).map(|()| url).map_err(bad))
            .transpose()?,
    };
    let imap_user = imap_user_given.unwrap_or_else(|| email.clone());
    let smtp_user = smtp_user_given.unwrap_or_else(|| imap_user.clone());
    let master = pick(&args.master_user, &mailbox.master_user).map(|user| Master {
        user,
        separator: pick(&args.master_separator, &mailbox.master_separator),
    });
    if master.as_ref().is_some_and(|m| m.user.is_empty()) {
        return Err(bad("master-user is empty"));
    }
    if master
        .as_ref()
        .is_some_and(|m| m.separator.as_ref().is_some_and(|s| s.is_empty()))
    {
        return Err(bad("master-separator is empty"));
    }
    if master.is_none() && pick(&args.master_separator, &mailbox.master_separator).is_some() {
        return Err(bad("master-separator is set without master-user"));
    }
    // The administrator's password opens every mailbox: it goes only to servers named by the
    // user, never to ones found from the address (whose domain an address typed wrong, or
    // edited by its owner in a manifest, would choose).
    if master.is_some() && (imap.is_none() || smtp.is_none()) {
        return Err(bad(format!(
            "with master-user, name the mail servers for {email} (imap and smtp): the \
             administrator's password is not sent to servers found from the address"
        )));
    }
    // Names go into SASL messages and login commands: no control characters (NUL would shift
    // the fields of SASL PLAIN).
    let names = [
        Some(&imap_user),
        Some(&smtp_user),
        master.as_ref().map(|m| &m.user),
    ];
    let names = names
        .into_iter()
        .flatten()
        .chain(master.as_ref().and_then(|m| m.separator.as_ref()));
    if let Some(name) = names.into_iter().find(|n| n.chars().any(char::is_control)) {
        return Err(bad(format!(
            "the user name {name:?} holds a control character"
        )));
    }

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
    let oauth = crate::mail::oauth::resolve(
        &oauth_level(args),
        &oauth_level(mailbox),
        std::env::var_os("SMIME_ACME_PASSWORD").is_some(),
    )
    .map_err(|e| bad(format!("{email}: {e}")))?;
    if oauth.is_some() && master.is_some() {
        return Err(bad(
            "master-user logs in with the administrator's password: it does not go with OAuth2 \
             (oauth-token-command, oauth-token-url)",
        ));
    }

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
    let token_join: JoinChoice = parse(
        pick(&flags.token_join, &server_cfg.token_join).as_deref(),
        JoinChoice::default(),
    )?;
    let challenge_timing: ChallengeTiming = parse(
        pick(&flags.challenge_timing, &server_cfg.challenge_timing).as_deref(),
        ChallengeTiming::default(),
    )?;
    let timeout = parse_duration(
        pick(&flags.timeout, &server_cfg.timeout)
            .as_deref()
            .unwrap_or("30m"),
    )
    .map_err(|e| bad(format!("--timeout: {e}")))?;
    let state_dir = state_dir(common.state_dir.as_deref())?;

    Ok(ObtainSettings {
        email,
        state_dir,
        server: ca.server,
        ca_bundle: ca.ca_bundle,
        imap,
        imap_security,
        imap_user,
        smtp,
        smtp_security,
        smtp_user,
        discovery,
        master,
        password,
        oauth,
        folders,
        key_type,
        usage,
        p12_format,
        p12_password_file: args
            .p12_password_file
            .clone()
            .or_else(|| mailbox.p12_password_file.clone()),
        out: args.out.clone().or_else(|| mailbox.out.clone()),
        deploy_hook: pick(&args.deploy_hook, &mailbox.deploy_hook),
        new_p12_password: top.new_p12_password,
        eab: ca.eab,
        agree_tos: ca.agree_tos,
        challenge_auth,
        dns_server,
        token_join,
        challenge_timing,
        timeout,
        wait_lock: wait_lock(common.wait_lock.as_deref())?,
    })
}

/// An autoconfig URL must be https:// (its answer is trusted like the user's own settings).
fn check_autoconfig_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") && url.len() > "https://".len() {
        Ok(())
    } else {
        Err(format!(
            "autoconfig-url must be an https:// URL, not {url:?}"
        ))
    }
}

/// A level's login settings, for choosing between a password and OAuth2.
fn oauth_level(m: &MailboxConfig) -> crate::mail::oauth::Level<'_> {
    crate::mail::oauth::Level {
        password: m.password_file.is_some() || m.password_command.is_some(),
        mechanism: m.oauth_mechanism.as_deref(),
        token_command: m.oauth_token_command.as_deref(),
        token_url: m.oauth_token_url.as_deref(),
        client_id: m.oauth_client_id.as_deref(),
        client_secret_file: m.oauth_client_secret_file.as_ref(),
        refresh_token_file: m.oauth_refresh_token_file.as_ref(),
    }
}

/// The state folder: --state-dir, SMIME_ACME_HOME, or the default.
pub fn state_dir(named: Option<&Path>) -> Result<PathBuf, SettingsError> {
    named
        .map(Path::to_owned)
        .or_else(|| default_paths().1)
        .ok_or_else(|| bad("no state folder: give --state-dir or set SMIME_ACME_HOME"))
}

/// --wait-lock, zero when not given.
pub fn wait_lock(text: Option<&str>) -> Result<Duration, SettingsError> {
    text.map_or(Ok(Duration::ZERO), parse_duration)
        .map_err(|e| bad(format!("--wait-lock: {e}")))
}

/// The settings of a successful issuance as configuration, kept beside the certificate so that
/// `renew` needs no flags. Paths are made absolute; no secret is kept, only where it comes from.
pub fn to_config(s: &ObtainSettings) -> ConfigFile {
    let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let (password_file, password_command) = match &s.password {
        PasswordSource::File(path) => (Some(absolute(path)), None),
        PasswordSource::Command(cmd) => (None, Some(cmd.clone())),
        PasswordSource::Env | PasswordSource::Prompt => (None, None),
    };
    let (password_file, password_command) = match s.oauth {
        Some(_) => (None, None),
        None => (password_file, password_command),
    };
    use crate::mail::oauth::{RefreshTokenSource, TokenSource};
    let (mut oauth_token_command, mut grant) = (None, None);
    match s.oauth.as_ref().map(|o| &o.source) {
        Some(TokenSource::Command(cmd)) => oauth_token_command = Some(cmd.clone()),
        Some(TokenSource::Grant(g)) => grant = Some(g),
        None => {}
    }
    let mailbox = MailboxConfig {
        imap: s.imap.as_ref().map(Server::to_string),
        imap_security: Some(s.imap_security.to_string()),
        imap_user: Some(s.imap_user.clone()),
        smtp: s.smtp.as_ref().map(Server::to_string),
        smtp_security: Some(s.smtp_security.to_string()),
        smtp_user: Some(s.smtp_user.clone()),
        master_user: s.master.as_ref().map(|m| m.user.clone()),
        master_separator: s.master.as_ref().and_then(|m| m.separator.clone()),
        password_file,
        password_command,
        oauth_mechanism: s.oauth.as_ref().map(|o| o.mechanism.to_string()),
        oauth_token_command,
        oauth_token_url: grant.map(|g| g.token_url.clone()),
        oauth_client_id: grant.map(|g| g.client_id.clone()),
        oauth_client_secret_file: grant.and_then(|g| g.client_secret_file.as_ref().map(absolute)),
        oauth_refresh_token_file: grant.and_then(|g| match &g.refresh_token {
            RefreshTokenSource::File(path) => Some(absolute(path)),
            RefreshTokenSource::Env => None,
        }),
        watch_folder: s
            .folders
            .iter()
            .filter(|f| *f != "INBOX")
            .cloned()
            .collect(),
        key_type: Some(s.key_type.to_string()),
        usage: Some(s.usage.to_string()),
        p12_format: Some(s.p12_format.to_string()),
        p12_password_file: s.p12_password_file.as_ref().map(absolute),
        challenge_auth: Some(s.challenge_auth.to_string()),
        dns_server: s.dns_server.map(|a| a.to_string()),
        out: s.out.as_ref().map(absolute),
        deploy_hook: s.deploy_hook.clone(),
        // The servers found are kept above; renewals do not look again.
        autoconfig_url: None,
    };
    ConfigFile {
        server: ServerConfig {
            url: Some(s.server.clone()),
            ca_bundle: s.ca_bundle.as_ref().map(absolute),
            token_join: Some(s.token_join.name().into()),
            challenge_timing: Some(s.challenge_timing.name().into()),
            ..ServerConfig::default()
        },
        mailbox: BTreeMap::from([(s.email.clone(), mailbox)]),
    }
}

/// The settings to renew `email` with: the mailbox's table in the configuration file over the
/// kept settings (so a changed server name or password file takes effect), and the kept CA
/// over the file's `[server]` (a certificate is renewed where it was issued). `top` holds the
/// address and whatever `renew` itself sets (the timeout).
pub fn for_renewal(
    common: &Common,
    top: &Request,
    config: &ConfigFile,
    kept: &ConfigFile,
) -> Result<ObtainSettings, SettingsError> {
    let args = top;
    let find = |file: &ConfigFile| {
        file.mailbox
            .iter()
            .find(|(k, _)| crate::challenge::mail::same_address(k, &args.email))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (table, mut kept_box) = (find(config), find(kept));
    // A table naming a way to log in replaces the kept one whole (a password by OAuth2, or
    // the other way round), rather than mixing the two.
    let table_login = oauth_level(&table);
    if table_login.password
        || table_login.token_command.is_some()
        || table_login.token_url.is_some()
    {
        kept_box = MailboxConfig {
            password_file: None,
            password_command: None,
            oauth_token_command: None,
            oauth_token_url: None,
            oauth_client_id: None,
            oauth_client_secret_file: None,
            oauth_refresh_token_file: None,
            ..kept_box
        };
    }
    let merged = ConfigFile {
        server: layer(&kept.server, &config.server)?,
        mailbox: BTreeMap::from([(args.email.clone(), layer(&table, &kept_box)?)]),
    };
    obtain(common, top, &merged)
}

/// `top` with its unset fields taken from `under`.
pub fn layer<T: Serialize + serde::de::DeserializeOwned>(
    top: &T,
    under: &T,
) -> Result<T, SettingsError> {
    let fail = |e: serde_json::Error| bad(format!("cannot combine settings: {e}"));
    let mut value = serde_json::to_value(top).map_err(fail)?;
    let fallback = serde_json::to_value(under).map_err(fail)?;
    if let (Some(top), Some(under)) = (value.as_object_mut(), fallback.as_object()) {
        for (key, below) in under {
            let slot = top.entry(key.clone()).or_insert(serde_json::Value::Null);
            let unset = slot.is_null() || slot.as_array().is_some_and(Vec::is_empty);
            if unset {
                *slot = below.clone();
            }
        }
    }
    serde_json::from_value(value).map_err(fail)
}

/// The longest duration taken (`--timeout`, `--wait-lock`).
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 86_400);

/// `90s`, `30m`, `1h`, `1h30m`, `2d`, or plain seconds; at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let too_long = || format!("{text:?} is too long: at most 30 days (30d)");
    if let Ok(seconds) = text.parse::<u64>() {
        let duration = Duration::from_secs(seconds);
        return if duration > MAX_DURATION {
            Err(too_long())
        } else {
            Ok(duration)
        };
    }
    if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        // Digits only, but more than fit in a number.
        return Err(too_long());
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
        if number.is_empty() {
            return Err(format!("bad duration {text:?}: use e.g. 90s, 30m, 1h30m"));
        }
        // Digits that do not fit in a number are far beyond the limit.
        let n: u64 = number.parse().map_err(|_| too_long())?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(format!("bad duration {text:?}: use e.g. 90s, 30m, 1h30m"));
    }
    let duration = Duration::from_secs(total);
    if duration > MAX_DURATION {
        return Err(too_long());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_is_the_named_one_else_the_users_else_the_systems() {
        let user = PathBuf::from("/home/u/.config/smime-acme/config.toml");
        let named = Path::new("/srv/c.toml");
        let all = |_: &Path| true;
        let none = |_: &Path| false;
        assert_eq!(
            config_path(Some(named), Some(user.clone()), none),
            Some(named.to_owned()),
            "a named file is read even when missing (and then fails)"
        );
        assert_eq!(
            config_path(None, Some(user.clone()), all),
            Some(user.clone())
        );
        let system_only = |p: &Path| p == Path::new(SYSTEM_CONFIG);
        assert_eq!(
            config_path(None, Some(user.clone()), system_only),
            Some(PathBuf::from(SYSTEM_CONFIG))
        );
        assert_eq!(
            config_path(None, None, all),
            Some(PathBuf::from(SYSTEM_CONFIG)),
            "no user folder (a system account): the system's file"
        );
        assert_eq!(config_path(None, Some(user), none), None);
    }
    use crate::cli::ObtainArgs;

    fn args(email: &str) -> ObtainArgs {
        ObtainArgs {
            email: email.into(),
            server: Some("https://ca.test/dir".into()),
            imap: Some("127.0.0.1:10993".into()),
            ..Default::default()
        }
    }

    fn global() -> Common {
        Common {
            state_dir: Some("/tmp/x".into()),
            wait_lock: None,
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(parse_duration("30d"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("2592000"), Ok(MAX_DURATION));
        for too_long in [
            "30d1s",
            "2592001",
            "9999d",
            "18446744073709551615",
            "99999999999999999999999",
            "99999999999999999999999s",
            "18446744073709551615d",
        ] {
            let err = parse_duration(too_long).unwrap_err();
            assert!(err.contains("at most 30 days"), "{too_long}: {err}");
        }
    }

    #[test]
    fn durations_beyond_the_limit_are_usage_errors() {
        let mut a = args("alice@example.test");
        a.timeout = Some("9999d".into());
        let err = obtain(&global(), &a.request(), &ConfigFile::default())
            .unwrap_err()
            .0;
        assert!(
            err.contains("--timeout") && err.contains("30 days"),
            "{err}"
        );
        let mut g = global();
        g.wait_lock = Some("31d".into());
        let err = obtain(
            &g,
            &args("alice@example.test").request(),
            &ConfigFile::default(),
        )
        .unwrap_err()
        .0;
        assert!(
            err.contains("--wait-lock") && err.contains("30 days"),
            "{err}"
        );
    }

    #[test]
    fn debug_output_leaves_secrets_out() {
        let secret = "hunter2-token";
        let command = format!("curl -H 'Authorization: Bearer {secret}' https://vault.test");
        let mut a = args("alice@example.test");
        a.password_command = Some(command.clone());
        let s = obtain(&global(), &a.request(), &ConfigFile::default()).unwrap();
        assert_eq!(s.password, PasswordSource::Command(command.clone()));
        let config: ConfigFile = toml::from_str(&format!(
            "[mailbox.\"alice@example.test\"]\npassword-command = \"{}\"\n",
            command.replace('\'', "")
        ))
        .unwrap();
        for shown in [
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{:?}", s.password),
            format!("{config:?}"),
            format!("{:?}", to_config(&s)),
        ] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        assert_eq!(
            format!("{:?}", PasswordSource::File("/pw".into())),
            "File(\"/pw\")"
        );
    }

    #[test]
    fn defaults_follow_the_email_and_security() {
        let s = obtain(
            &global(),
            &args("alice@example.test").request(),
            &ConfigFile::default(),
        )
        .unwrap();
        assert_eq!(s.imap_user, "alice@example.test");
        assert_eq!(
            s.smtp,
            Some(Server {
                host: "127.0.0.1".into(),
                port: 465
            })
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
        let s = obtain(&global(), &args("alice@example.test").request(), &config).unwrap();
        assert_eq!(s.server, "https://ca.test/dir", "a flag wins over the file");
        assert_eq!(
            s.smtp,
            Some(Server {
                host: "127.0.0.1".into(),
                port: 10587
            })
        );
        assert_eq!(s.smtp_security, Security::StartTls);
        assert_eq!(s.key_type, KeyType::P256);
        assert_eq!(s.token_join, JoinChoice::Bytes);
        assert_eq!(s.folders, ["INBOX", "Junk"]);
        assert!(toml::from_str::<ConfigFile>("[server]\nbogus = 1").is_err());
    }

    #[test]
    fn refusals() {
        let mut a = args("alice@example.test");
        a.imap = Some("mail.example.com".into());
        a.imap_security = Some("plain".into());
        assert!(
            obtain(&global(), &a.request(), &ConfigFile::default())
                .unwrap_err()
                .0
                .contains("loopback")
        );
        // A name that only looks local is judged by what it resolves to.
        a.imap = Some("localhost.attacker.example".into());
        let err = obtain(&global(), &a.request(), &ConfigFile::default())
            .unwrap_err()
            .0;
        assert!(
            err.contains("loopback") && err.contains("localhost.attacker.example"),
            "{err}"
        );
        for local in ["127.0.0.1:143", "[::1]:143", "localhost:143"] {
            a.imap = Some(local.into());
            a.smtp_security = Some("plain".into());
            assert!(
                obtain(&global(), &a.request(), &ConfigFile::default()).is_ok(),
                "{local}"
            );
        }

        let mut a = args("alice@example.test");
        a.key_type = Some("ed25519".into());
        assert!(
            obtain(&global(), &a.request(), &ConfigFile::default())
                .unwrap_err()
                .0
                .contains("ed25519")
        );
        a.usage = Some("sign".into());
        assert!(obtain(&global(), &a.request(), &ConfigFile::default()).is_ok());

        let mut a = args("alice@example.test");
        a.server = Some("http://ca.test/dir".into());
        assert!(obtain(&global(), &a.request(), &ConfigFile::default()).is_err());
        assert!(
            obtain(
                &global(),
                &args("not-an-address").request(),
                &ConfigFile::default()
            )
            .is_err()
        );
    }

    #[test]
    fn renewal_reuses_the_kept_settings_under_the_mailbox_table() {
        let mut first = args("alice@example.test");
        first.key_type = Some("p384".into());
        first.usage = Some("sign".into());
        first.password_file = Some("relative/pw".into());
        first.watch_folder = vec!["Junk".into()];
        let obtained = obtain(&global(), &first.request(), &ConfigFile::default()).unwrap();
        let kept: ConfigFile =
            serde_json::from_value(serde_json::to_value(to_config(&obtained)).unwrap()).unwrap();
        let renew_args = ObtainArgs {
            email: "alice@example.test".into(),
            ..Default::default()
        };
        let again = for_renewal(
            &global(),
            &renew_args.request(),
            &ConfigFile::default(),
            &kept,
        )
        .unwrap();
        assert_eq!(again.server, obtained.server);
        assert_eq!(again.imap, obtained.imap);
        assert_eq!(again.key_type, KeyType::P384);
        assert_eq!(again.usage, Usage::Sign);
        assert_eq!(again.folders, ["INBOX", "Junk"]);
        let PasswordSource::File(path) = &again.password else {
            panic!("password source {:?}", again.password)
        };
        assert!(path.is_absolute() && path.ends_with("relative/pw"));

        // The mailbox's table wins over what was kept; the kept CA wins over [server].
        let config: ConfigFile = toml::from_str(
            "[server]\nurl = \"https://other.test/dir\"\n[mailbox.\"alice@example.test\"]\nimap = \"imap.example.test\"\n",
        )
        .unwrap();
        let again = for_renewal(&global(), &renew_args.request(), &config, &kept).unwrap();
        assert_eq!(again.server, "https://ca.test/dir");
        assert_eq!(again.imap.as_ref().unwrap().host, "imap.example.test");
        assert_eq!(again.key_type, KeyType::P384);
    }

    #[test]
    fn an_administrators_password_never_goes_to_discovered_servers() {
        let mut a = args("alice@example.test");
        a.imap = None;
        a.master_user = Some("admin".into());
        let err = obtain(&global(), &a.request(), &ConfigFile::default())
            .unwrap_err()
            .0;
        assert!(
            err.contains("master-user") && err.contains("imap and smtp"),
            "{err}"
        );
        a.imap = Some("imap.example.test".into());
        assert!(obtain(&global(), &a.request(), &ConfigFile::default()).is_ok());
    }

    #[test]
    fn servers_not_given_are_left_to_discovery() {
        let mut a = args("alice@example.test");
        a.imap = None;
        let s = obtain(&global(), &a.request(), &ConfigFile::default()).unwrap();
        assert_eq!((s.imap.clone(), s.smtp.clone()), (None, None));
        assert!(s.needs_discovery());
        assert_eq!(s.discovery, Discovery::default());
        assert_eq!(to_config(&s).mailbox["alice@example.test"].imap, None);

        a.smtp = Some("smtp.example.test".into());
        a.imap_security = Some("starttls".into());
        a.imap_user = Some("alice".into());
        a.autoconfig_url = Some("https://127.0.0.1:8443/config.xml".into());
        let s = obtain(&global(), &a.request(), &ConfigFile::default()).unwrap();
        assert_eq!(s.imap, None);
        assert_eq!(s.smtp.as_ref().map(|s| s.port), Some(465));
        assert_eq!(s.discovery.imap_security, Some(Security::StartTls));
        assert_eq!(s.discovery.smtp_security, None);
        assert!(s.discovery.imap_user_given && !s.discovery.smtp_user_given);
        assert_eq!(
            s.discovery.autoconfig_url.as_deref(),
            Some("https://127.0.0.1:8443/config.xml")
        );
        // Kept settings never send a later run looking again.
        assert_eq!(
            to_config(&s).mailbox["alice@example.test"].autoconfig_url,
            None
        );

        a.autoconfig_url = Some("http://autoconfig.example.test/".into());
        let err = obtain(&global(), &a.request(), &ConfigFile::default())
            .unwrap_err()
            .0;
        assert!(err.contains("https://"), "{err}");
        a.autoconfig_url = None;
        a.imap_security = Some("plain".into());
        let err = obtain(&global(), &a.request(), &ConfigFile::default())
            .unwrap_err()
            .0;
        assert!(err.contains("--imap") && err.contains("TLS"), "{err}");
    }

    #[test]
    fn oauth_is_kept_for_renewal_by_where_its_secrets_are() {
        use crate::mail::oauth::{Mechanism, RefreshTokenSource, TokenSource};
        let mut first = args("alice@example.test");
        first.oauth_token_url = Some("https://idp.test/token".into());
        first.oauth_client_id = Some("client".into());
        first.oauth_refresh_token_file = Some("relative/rt".into());
        first.oauth_mechanism = Some("xoauth2".into());
        let obtained = obtain(&global(), &first.request(), &ConfigFile::default()).unwrap();
        let kept: ConfigFile =
            serde_json::from_value(serde_json::to_value(to_config(&obtained)).unwrap()).unwrap();
        let renew_args = ObtainArgs {
            email: "alice@example.test".into(),
            ..Default::default()
        };
        let again = for_renewal(
            &global(),
            &renew_args.request(),
            &ConfigFile::default(),
            &kept,
        )
        .unwrap();
        let oauth = again.oauth.expect("OAuth2 kept");
        assert_eq!(oauth.mechanism, Mechanism::Xoauth2);
        let TokenSource::Grant(grant) = &oauth.source else {
            panic!("{oauth:?}")
        };
        assert_eq!(grant.client_id, "client");
        let RefreshTokenSource::File(path) = &grant.refresh_token else {
            panic!("{grant:?}")
        };
        assert!(path.is_absolute() && path.ends_with("relative/rt"));

        // A password named in the mailbox's table replaces the kept OAuth2 whole.
        let config: ConfigFile =
            toml::from_str("[mailbox.\"alice@example.test\"]\npassword-file = \"/pw\"\n").unwrap();
        let again = for_renewal(&global(), &renew_args.request(), &config, &kept).unwrap();
        assert!(again.oauth.is_none());
        assert_eq!(again.password, PasswordSource::File("/pw".into()));

        // Nonsense: an administrator's password with OAuth2; a password and a token command.
        let mut a = first;
        a.master_user = Some("admin".into());
        let err = obtain(&global(), &a.request(), &ConfigFile::default())
            .unwrap_err()
            .0;
        assert!(
            err.contains("master-user") && err.contains("OAuth2"),
            "{err}"
        );
        let mut a = args("alice@example.test");
        a.password_file = Some("/pw".into());
        a.oauth_token_command = Some("oama access alice@example.test".into());
        let err = obtain(&global(), &a.request(), &ConfigFile::default())
            .unwrap_err()
            .0;
        assert!(err.contains("--oauth-token-command"), "{err}");

        // The token command, like the password command, stays out of Debug output.
        let mut a = args("alice@example.test");
        a.oauth_token_command = Some("vault read -field=token-s3cr3t".into());
        let s = obtain(&global(), &a.request(), &ConfigFile::default()).unwrap();
        for shown in [format!("{s:?}"), format!("{:?}", to_config(&s))] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
    }
}
