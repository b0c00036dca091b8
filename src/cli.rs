//! Command-line definitions (clap derive only; the doc comments are the help text). No IO.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::acme::types::RevocationReason;
use crate::bundle::P12Format;
use crate::challenge::response::JoinChoice;
use crate::keys::{KeyType, Usage};
use crate::mail::Security;
use crate::settings::{ChallengeTiming, Common, MailboxConfig, Request, ServerConfig};

/// The exit statuses, shown in `--help` and the man pages.
macro_rules! exit_codes {
    () => {
        "\
Exit status:
  0  success: everything asked for is done (for renew: renewed, or nothing due)
  1  internal error (a bug, or the system refused something unexpected)
  2  usage or configuration error
  3  some of several certificates failed (renew, provision), or a deploy hook failed (obtain, renew, provision)
  4  another smime-acme run holds the lock for this mailbox, or (install) Thunderbird has the profile open
  5  the CA refused (its problem document is shown)
  6  mail server error (connection, TLS, login, or the reply was not accepted)
  7  timed out waiting for the CA or the challenge mail
  8  cannot reach the CA (network or TLS)
"
    };
}
pub const EXIT_CODES: &str = exit_codes!();

/// How to run `renew` on a schedule, shown in its long help and man page.
macro_rules! scheduling {
    () => {
        "\
Running renew on a schedule (it exits 0 when nothing was due, prints nothing with -q unless
something was renewed or failed, and takes each mailbox's lock in turn):

  systemd: /etc/systemd/system/smime-acme-renew.service
    [Unit]
    Description=Renew S/MIME certificates
    Wants=network-online.target
    After=network-online.target

    [Service]
    Type=oneshot
    Environment=SMIME_ACME_HOME=/var/lib/smime-acme
    ExecStart=/usr/local/bin/smime-acme renew -q

  and /etc/systemd/system/smime-acme-renew.timer (enable with
  systemctl enable --now smime-acme-renew.timer):
    [Unit]
    Description=Renew S/MIME certificates twice a day

    [Timer]
    OnCalendar=*-*-* 00,12:00:00
    RandomizedDelaySec=1h
    Persistent=true

    [Install]
    WantedBy=timers.target

  cron (crontab -e; cron mails what -q still prints):
    17 3,15 * * * smime-acme renew -q

"
    };
}

/// Obtain and renew S/MIME certificates automatically over ACME (RFC 8823).
///
/// smime-acme orders a certificate for an email address from an ACME certificate authority,
/// answers the CA's challenge email from your mailbox over IMAP and SMTP, and saves the
/// certificate and its key as a PKCS#12 bundle that mail clients import.
#[derive(Debug, Parser)]
#[command(name = "smime-acme", version, about, long_about, after_help = EXIT_CODES, arg_required_else_help = true, disable_help_subcommand = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "SMIME_ACME_CONFIG",
        hide_env_values = true
    )]
    pub config: Option<PathBuf>,
    /// Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "SMIME_ACME_HOME",
        hide_env_values = true
    )]
    pub state_dir: Option<PathBuf>,
    /// Say more (repeat for more detail)
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Print nothing unless something failed
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)
    #[arg(long, global = true)]
    pub json: bool,
    /// Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]
    #[arg(long, global = true, value_name = "DURATION")]
    pub wait_lock: Option<String>,
    /// Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "SMIME_ACME_LOG_FILE",
        hide_env_values = true
    )]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Obtain(Box<ObtainArgs>),
    Renew(RenewArgs),
    Revoke(RevokeArgs),
    Account(AccountArgs),
    List(ListArgs),
    Show(ShowArgs),
    Export(ExportArgs),
    Provision(ProvisionArgs),
    Doctor(Box<DoctorArgs>),
    Forget(ForgetArgs),
    Completions(CompletionsArgs),
    Man(ManArgs),
    Install(InstallArgs),
}

/// Print the shell completion script for SHELL.
///
/// Distributions put them in /usr/share/bash-completion/completions/smime-acme,
/// /usr/share/zsh/vendor-completions/_smime-acme and
/// /usr/share/fish/vendor_completions.d/smime-acme.fish; for one user,
/// ~/.local/share/bash-completion/completions/smime-acme, a folder in zsh's $fpath, or
/// ~/.config/fish/completions/smime-acme.fish.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Write the man pages (smime-acme.1 and one per subcommand) into DIR.
///
/// Distributions put them in /usr/share/man/man1; for one user, ~/.local/share/man/man1 (man
/// finds it when ~/.local/bin is on the PATH).
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The folder to write them into (made if missing)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Stop renewing an address; with --purge, remove everything kept for it.
///
/// Without --purge the certificates and keys stay in the state folder (old mail stays readable,
/// list and export still see them) and renew leaves the address alone unless it is named;
/// obtain takes it up again. With --purge the address's certificates, keys, kept settings and
/// any issuance in progress are removed. Asks first on a terminal; --yes answers for scripts.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct ForgetArgs {
    /// The address
    pub email: String,
    /// Also remove its certificates, keys and settings
    #[arg(long)]
    pub purge: bool,
    /// Do not ask
    #[arg(long)]
    pub yes: bool,
}

impl Command {
    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Obtain(_) => "obtain",
            Command::Renew(_) => "renew",
            Command::Revoke(_) => "revoke",
            Command::Account(_) => "account",
            Command::List(_) => "list",
            Command::Show(_) => "show",
            Command::Export(_) => "export",
            Command::Provision(_) => "provision",
            Command::Doctor(_) => "doctor",
            Command::Forget(_) => "forget",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
            Command::Install(_) => "install",
        }
    }
}

/// Check everything obtain needs for an address, one line each.
///
/// In order: the settings resolve; the CA's directory is reachable (its terms, whether it
/// requires external account binding, whether it offers renewal information); IMAP login, IDLE
/// and the folders watched; SMTP login; a test mail to the address itself, read back (is it
/// DKIM-signed with d= the address's domain, as a CA validating the reply needs, and what the
/// receiving server's Authentication-Results say; the test mail is removed); the clock against
/// the CA's; the state folder readable by its owner only. Takes obtain's settings. Exit status 0
/// when every check passes, else that of the first failing check (2 settings, 5 or 8 the CA,
/// 6 mail, 1 clock or state folder).
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub obtain: ObtainArgs,
}

/// Renew the certificates that are due, with the settings each was obtained with.
///
/// Without EMAIL, every certificate in the state folder is considered. A certificate is due when
/// the CA's renewal window (RFC 9773 ARI) says so, or, when the CA gives none, once a third of
/// its lifetime remains; --days and --force override. Revoked certificates are skipped unless
/// forced. Each renewal gets a fresh key (unless --reuse-key); old keys and certificates stay in
/// the state folder so that old mail can still be read.
///
/// Made for cron and systemd timers: no flags needed, -q prints only renewals and failures,
/// --json prints one line per certificate, and the exit status tells "all fine" (0, also when
/// nothing was due) from "some failed" (3). Mailboxes are locked one by one, so runs for
/// different mailboxes proceed in parallel.
#[derive(Debug, Args, Default)]
#[command(after_help = EXIT_CODES, after_long_help = concat!(scheduling!(), exit_codes!()))]
pub struct RenewArgs {
    /// Addresses to renew [default: every certificate in the state folder]
    pub emails: Vec<String>,
    /// Renew when fewer than N days remain (instead of the CA's window or a third of the lifetime)
    #[arg(long, value_name = "N")]
    pub days: Option<u32>,
    /// Renew now, whatever the dates say (also revoked certificates)
    #[arg(long)]
    pub force: bool,
    /// Certify the current key again instead of making a fresh one
    #[arg(long)]
    pub reuse_key: bool,
    /// Run this command (with sh -c) after each renewal, instead of the one kept from obtain; SMIME_ACME_EMAIL, SMIME_ACME_FOLDER, SMIME_ACME_P12, SMIME_ACME_P12_PASSWORD_FILE, SMIME_ACME_KEY, SMIME_ACME_CERT, SMIME_ACME_CHAIN and SMIME_ACME_FULLCHAIN name the address and the new files
    #[arg(long, value_name = "CMD")]
    pub deploy_hook: Option<String>,
    /// Protect the new bundles with a new PKCS#12 password (generated) instead of the kept one
    #[arg(long)]
    pub new_p12_password: bool,
    /// Say what would be renewed and why; change nothing and contact no mail server
    #[arg(long)]
    pub dry_run: bool,
    /// Overall wait for the CA and the mail, per certificate [default: as obtained, else 30m]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Renew this many certificates at once
    #[arg(short, long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
}

/// Get certificates for many mailboxes listed in a manifest, several at once.
///
/// The manifest (TOML, or CSV with a header row) lists the mailboxes: `email` and any setting
/// obtain takes, in kebab-case (imap, imap-security, imap-user, smtp, smtp-security, smtp-user,
/// master-user, master-separator, password-file, password-command, oauth-token-command,
/// oauth-token-url, oauth-client-id, oauth-client-secret-file, oauth-refresh-token-file,
/// oauth-mechanism, watch-folder, key-type, usage,
/// p12-format, p12-password-file, out, challenge-auth, dns-server, autoconfig-url, server, ca-bundle, eab-kid,
/// eab-hmac-key-file, token-join, challenge-timing, timeout). In TOML, a [defaults] table holds
/// what every [[mailbox]] shares; in CSV, each column is one setting and an empty cell leaves
/// it unset. In `out`, {email} stands for the address (lowercased; characters other than
/// letters, digits and @._+- as _). With master-user, every mailbox is reached with the
/// administrator's credentials, so no user's password is needed.
///
/// A mailbox holding a valid certificate that is not yet due for renewal is skipped (--force
/// gets a new one anyway), so the same manifest can be run again after a failure or a kill: what
/// is done stays done, an order under way resumes. The CA account is shared by all mailboxes of
/// a CA (registered with --contact, else the manifest's first address), as are its HTTPS
/// connections; a CA that says "slow down" slows every worker.
///
/// --shard K/N takes only the mailboxes whose address hashes into shard K of N (SHA-256 of the
/// lowercased address, its first 8 bytes as a big-endian number, modulo N, plus 1), so that N
/// hosts or the pods of a Kubernetes indexed Job split one manifest without talking to each
/// other. Exit status 0 when every mailbox is done or skipped, 3 when some failed.
#[derive(Debug, Args, Default)]
#[command(after_help = EXIT_CODES)]
pub struct ProvisionArgs {
    /// The manifest: FILE.toml or FILE.csv
    pub manifest: PathBuf,
    /// Mailboxes worked at once
    #[arg(short, long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Get a new certificate even where a valid one is held and not yet due
    #[arg(long)]
    pub force: bool,
    /// Only the mailboxes of shard K out of N (e.g. 2/3)
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Say what would be done for each mailbox; contact nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Requests in flight to one CA at most
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub ca_requests: u16,
    /// ACME directory URL of the CA, or a known CA's name (castle, castle-staging), for every mailbox [default: the manifest's, else the configuration file's]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Extra trusted roots (PEM) for HTTPS, IMAP and SMTP, for every mailbox [default: the manifest's]
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
    /// External account binding: the key identifier the CA gave you
    #[arg(long, value_name = "KID", requires = "eab_hmac_key_file")]
    pub eab_kid: Option<String>,
    /// External account binding: file holding the base64url MAC key the CA gave you
    #[arg(long, value_name = "FILE", requires = "eab_kid")]
    pub eab_hmac_key_file: Option<PathBuf>,
    /// Agree to the CA's terms of service (otherwise asked on a terminal)
    #[arg(long)]
    pub agree_tos: bool,
    /// Contact address of the account when one is registered (repeatable) [default: the manifest's first mailbox]
    #[arg(long, value_name = "EMAIL")]
    pub contact: Vec<String>,
    /// Overall wait for the CA and the mail, per mailbox, e.g. 90s, 30m [default: 30m]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

impl ProvisionArgs {
    /// The CA flags, as the layer over the manifest.
    pub fn server_layer(&self) -> ServerConfig {
        ServerConfig {
            url: self.server.clone(),
            ca_bundle: self.ca_bundle.clone(),
            eab_kid: self.eab_kid.clone(),
            eab_hmac_key_file: self.eab_hmac_key_file.clone(),
            agree_tos: self.agree_tos.then_some(true),
            timeout: self.timeout.clone(),
            ..ServerConfig::default()
        }
    }
}

impl GlobalArgs {
    pub fn common(&self) -> Common {
        Common {
            state_dir: self.state_dir.clone(),
            wait_lock: self.wait_lock.clone(),
        }
    }
}

impl ObtainArgs {
    /// The flags, as the layer over the configuration file.
    pub fn request(&self) -> Request {
        Request {
            email: self.email.clone(),
            server: ServerConfig {
                url: self.server.clone(),
                ca_bundle: self.ca_bundle.clone(),
                eab_kid: self.eab_kid.clone(),
                eab_hmac_key_file: self.eab_hmac_key_file.clone(),
                agree_tos: self.agree_tos.then_some(true),
                token_join: self.token_join.clone(),
                challenge_timing: self.challenge_timing.clone(),
                timeout: self.timeout.clone(),
            },
            mailbox: MailboxConfig {
                imap: self.imap.clone(),
                imap_security: self.imap_security.clone(),
                imap_user: self.imap_user.clone(),
                smtp: self.smtp.clone(),
                smtp_security: self.smtp_security.clone(),
                smtp_user: self.smtp_user.clone(),
                master_user: self.master_user.clone(),
                master_separator: self.master_separator.clone(),
                password_file: self.password_file.clone(),
                password_command: self.password_command.clone(),
                oauth_mechanism: self.oauth_mechanism.clone(),
                oauth_token_command: self.oauth_token_command.clone(),
                oauth_token_url: self.oauth_token_url.clone(),
                oauth_client_id: self.oauth_client_id.clone(),
                oauth_client_secret_file: self.oauth_client_secret_file.clone(),
                oauth_refresh_token_file: self.oauth_refresh_token_file.clone(),
                watch_folder: self.watch_folder.clone(),
                key_type: self.key_type.clone(),
                usage: self.usage.clone(),
                p12_format: self.p12_format.clone(),
                p12_password_file: self.p12_password_file.clone(),
                challenge_auth: self.challenge_auth.clone(),
                dns_server: self.dns_server.clone(),
                out: self.out.clone(),
                deploy_hook: self.deploy_hook.clone(),
                autoconfig_url: self.autoconfig_url.clone(),
            },
            new_p12_password: self.new_p12_password,
        }
    }
}

/// Revoke a certificate, signed by the account key or by the certificate's own key.
///
/// Give the address (its current certificate) or --cert FILE. With --sign-with-cert-key the
/// request is signed by the certificate's key, which works when the account is lost. The
/// certificate is marked revoked in the state folder, and renew skips it.
#[derive(Debug, Args, Default)]
#[command(after_help = EXIT_CODES)]
pub struct RevokeArgs {
    /// The address whose current certificate to revoke
    #[arg(required_unless_present = "cert", conflicts_with = "cert")]
    pub email: Option<String>,
    /// The certificate to revoke (PEM)
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Why (omitted when not given; "unspecified" is never sent)
    #[arg(long, value_name = "REASON", value_parser = RevocationReason::NAMES)]
    pub reason: Option<String>,
    /// Sign the request with the certificate's own key instead of the account key
    #[arg(long)]
    pub sign_with_cert_key: bool,
    /// The certificate's key (PKCS#8 PEM), for --cert with --sign-with-cert-key when the certificate is not in the state folder
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// ACME directory URL, or a known CA's name (castle, castle-staging) [default: where the certificate was obtained]
    #[arg(
        long,
        value_name = "URL",
        env = "SMIME_ACME_SERVER",
        hide_env_values = true
    )]
    pub server: Option<String>,
    /// Extra trusted roots (PEM) for HTTPS
    #[arg(
        long,
        value_name = "FILE",
        env = "SMIME_ACME_CA_BUNDLE",
        hide_env_values = true
    )]
    pub ca_bundle: Option<PathBuf>,
}

/// Manage the ACME account kept for a CA: register, show, update contacts, roll over its key,
/// deactivate it.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES, disable_help_subcommand = true)]
pub struct AccountArgs {
    #[command(subcommand)]
    pub action: AccountAction,
    /// ACME directory URL of the CA, or a known CA's name (castle, castle-staging)
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "SMIME_ACME_SERVER",
        hide_env_values = true
    )]
    pub server: Option<String>,
    /// Extra trusted roots (PEM) for HTTPS
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "SMIME_ACME_CA_BUNDLE",
        hide_env_values = true
    )]
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AccountAction {
    /// Create the account (a new ES256 key kept in the state folder)
    Register {
        /// Contact address (repeatable)
        #[arg(long, value_name = "EMAIL")]
        contact: Vec<String>,
        /// External account binding: the key identifier the CA gave you
        #[arg(long, value_name = "KID", requires = "eab_hmac_key_file")]
        eab_kid: Option<String>,
        /// External account binding: file holding the base64url MAC key the CA gave you
        #[arg(long, value_name = "FILE", requires = "eab_kid")]
        eab_hmac_key_file: Option<PathBuf>,
        /// Agree to the CA's terms of service (otherwise asked on a terminal)
        #[arg(long)]
        agree_tos: bool,
    },
    /// Show the account as the CA has it
    Show,
    /// Replace the account's contact addresses
    Update {
        /// Contact address (repeatable)
        #[arg(long, value_name = "EMAIL", required = true)]
        contact: Vec<String>,
    },
    /// Replace the account key with a new one (RFC 8555 key change)
    Rollover,
    /// Deactivate the account for good; the CA refuses it afterwards
    Deactivate {
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
}

/// List the certificates in the state folder: address, serial, expiry, next renewal, status.
#[derive(Debug, Args, Default)]
#[command(after_help = EXIT_CODES)]
pub struct ListArgs {}

/// Show one address's current certificate, its renewal time and files, and its history.
#[derive(Debug, Args, Default)]
#[command(after_help = EXIT_CODES)]
pub struct ShowArgs {
    /// The address
    pub email: String,
}

/// Write an address's bundle again: in another PKCS#12 format, as PEM, or with every key ever
/// issued for it (so a mail client can still read mail encrypted to old certificates).
///
/// The PKCS#12 password comes from --p12-password-file or SMIME_ACME_P12_PASSWORD, or is asked on
/// a terminal; otherwise (or for an empty answer) a strong one is generated and written to
/// PATH.password (0600).
#[derive(Debug, Args, Default)]
#[command(after_help = EXIT_CODES)]
pub struct ExportArgs {
    /// The address
    pub email: String,
    /// compat (3DES/SHA-1), modern (AES-256/SHA-256), pem (key and certificates), or mobileconfig (an Apple configuration profile for iPhone, iPad and Mac holding compat PKCS#12; the password is not in it, the device asks for it) [default: compat]
    #[arg(long, value_name = "FORMAT", value_parser = ["compat", "modern", "pem", "mobileconfig"])]
    pub format: Option<String>,
    /// Every key and certificate ever issued for the address, not only the current one
    #[arg(long)]
    pub all_keys: bool,
    /// Where to write (0600)
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Read the PKCS#12 password from this file (env SMIME_ACME_P12_PASSWORD; else asked on a terminal, or generated)
    #[arg(long, value_name = "FILE")]
    pub p12_password_file: Option<PathBuf>,
}

/// Get a certificate for EMAIL: order it, answer the CA's challenge mail, save a PKCS#12 bundle.
///
/// The mailbox is watched over IMAP for the CA's challenge mail; the mail is checked (DKIM by
/// default) and answered over SMTP submission. Every step is saved in the state folder, so a
/// run that was stopped resumes the same order and never answers a challenge twice.
///
/// The mail password comes from --password-file, the SMIME_ACME_PASSWORD environment variable,
/// --password-command, or a prompt on a terminal; never from the command line. Mailboxes that
/// take no password (Gmail, Microsoft 365) are logged in to with OAuth2 instead: an access token
/// from --oauth-token-command, or from --oauth-token-url with --oauth-client-id and a refresh
/// token (--oauth-refresh-token-file or SMIME_ACME_OAUTH_REFRESH_TOKEN). The flags' way to log in
/// wins over SMIME_ACME_PASSWORD, which wins over the configuration file's; one way per level. Each flag can
/// also be set in the configuration file: the [server] table for the CA and the
/// [mailbox."EMAIL"] table for the mail settings.
///
/// Without --imap (and --smtp), the servers are discovered: DNS SRV records of the address's
/// domain (_imaps, _imap, _submissions, _submission), then its autoconfig document over HTTPS
/// (or --autoconfig-url), then the usual host names (imap., smtp., mail., the domain). A server
/// is used only after a TLS connection verified for its name and a login succeeded; one outside
/// the address's domain that only DNS or a guess names is used only when confirmed on a
/// terminal. What was chosen is printed and kept for renewals.
#[derive(Debug, Args, Default)]
#[command(after_help = EXIT_CODES)]
pub struct ObtainArgs {
    /// The address to get a certificate for
    pub email: String,

    /// ACME directory URL of the CA, or the name of a known CA: castle (https://acme.castle.cloud/acme/directory) or castle-staging (https://acme-staging.castle.cloud/acme/directory)
    #[arg(
        long,
        value_name = "URL",
        env = "SMIME_ACME_SERVER",
        hide_env_values = true
    )]
    pub server: Option<String>,
    /// Extra trusted roots (PEM) for HTTPS, IMAP and SMTP
    #[arg(
        long,
        value_name = "FILE",
        env = "SMIME_ACME_CA_BUNDLE",
        hide_env_values = true
    )]
    pub ca_bundle: Option<PathBuf>,

    /// IMAP server; the port defaults by security (993 tls, 143 starttls) [default: discovered: DNS SRV, autoconfig, usual host names]
    #[arg(long, value_name = "HOST[:PORT]")]
    pub imap: Option<String>,
    /// IMAP connection security [default: tls]
    #[arg(long, value_name = "MODE", value_parser = Security::NAMES)]
    pub imap_security: Option<String>,
    /// IMAP user name [default: EMAIL, or the login name a discovered autoconfig document gives]
    #[arg(long, value_name = "USER")]
    pub imap_user: Option<String>,
    /// SMTP submission server; the port defaults by security (465 tls, 587 starttls) [default: the IMAP host when --imap is given, else discovered]
    #[arg(long, value_name = "HOST[:PORT]")]
    pub smtp: Option<String>,
    /// SMTP connection security [default: tls]
    #[arg(long, value_name = "MODE", value_parser = Security::NAMES)]
    pub smtp_security: Option<String>,
    /// SMTP user name [default: the IMAP user]
    #[arg(long, value_name = "USER")]
    pub smtp_user: Option<String>,
    /// Log in to IMAP and SMTP as this administrator (a Dovecot master user, a Cyrus or Stalwart admin) on behalf of the user, with the administrator's password (SASL PLAIN with an authorization identity)
    #[arg(long, value_name = "ADMIN")]
    pub master_user: Option<String>,
    /// With --master-user: log in as USER<SEP>ADMIN instead (Dovecot's auth_master_user_separator, e.g. "*")
    #[arg(long, value_name = "SEP", requires = "master_user")]
    pub master_separator: Option<String>,
    /// Read the mail password from this file (first line)
    #[arg(long, value_name = "FILE", conflicts_with = "password_command")]
    pub password_file: Option<PathBuf>,
    /// Run this command (with sh -c) and take the mail password from its first output line
    #[arg(long, value_name = "CMD")]
    pub password_command: Option<String>,
    /// Log in with OAuth2: run this command (with sh -c) for an access token, its first output line (e.g. `oama access EMAIL`, `mutt_oauth2.py TOKENFILE`, `oauth2l fetch --credentials FILE --scope https://mail.google.com/`); run again when a server refuses the token
    #[arg(long, value_name = "CMD", conflicts_with_all = ["password_file", "password_command", "oauth_token_url"])]
    pub oauth_token_command: Option<String>,
    /// Log in with OAuth2: get access tokens from this token endpoint with a refresh token (https, or http to a loopback host); tokens are cached in the state folder until shortly before they expire
    #[arg(long, value_name = "URL", conflicts_with_all = ["password_file", "password_command"])]
    pub oauth_token_url: Option<String>,
    /// The OAuth2 client ID the refresh token was issued to (with --oauth-token-url)
    #[arg(long, value_name = "ID")]
    pub oauth_client_id: Option<String>,
    /// Read the OAuth2 client secret from this file, for clients that have one (with --oauth-token-url)
    #[arg(long, value_name = "FILE")]
    pub oauth_client_secret_file: Option<PathBuf>,
    /// Read the OAuth2 refresh token from this file (first line; env SMIME_ACME_OAUTH_REFRESH_TOKEN); a new one the endpoint returns is written back to it
    #[arg(long, value_name = "FILE")]
    pub oauth_refresh_token_file: Option<PathBuf>,
    /// SASL mechanism for OAuth2 logins: auto, xoauth2, oauthbearer. auto takes OAUTHBEARER (the standard, RFC 7628) when the server offers it, else XOAUTH2 (the older form Gmail and Microsoft 365 take) [default: auto]
    #[arg(long, value_name = "MECH", value_parser = crate::mail::oauth::Mechanism::NAMES)]
    pub oauth_mechanism: Option<String>,
    /// Folders to watch besides INBOX (repeatable; e.g. Junk)
    #[arg(long, value_name = "NAME")]
    pub watch_folder: Vec<String>,

    /// Certificate key type [default: rsa3072]
    #[arg(long, value_name = "TYPE", value_parser = KeyType::NAMES)]
    pub key_type: Option<String>,
    /// What the certificate is for; ed25519 keys can only sign [default: both]
    #[arg(long, value_name = "USE", value_parser = Usage::NAMES)]
    pub usage: Option<String>,
    /// PKCS#12 encryption: compat (3DES/SHA-1, imports everywhere incl. Apple) or modern (AES-256/SHA-256) [default: compat]
    #[arg(long, value_name = "FORMAT", value_parser = P12Format::NAMES)]
    pub p12_format: Option<String>,
    /// Read the PKCS#12 password from this file (env SMIME_ACME_P12_PASSWORD; else asked on a terminal, or generated)
    #[arg(long, value_name = "FILE")]
    pub p12_password_file: Option<PathBuf>,
    /// Also write the PKCS#12 bundle here (and a generated or kept password beside it, as PATH.password)
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Do not reuse the PKCS#12 password kept for the address: ask for a new one on a terminal, else generate one; renewals then reuse the new one
    #[arg(long)]
    pub new_p12_password: bool,
    /// Run this command (with sh -c) after the certificate is saved, and after each renewal (kept with the settings); SMIME_ACME_EMAIL, SMIME_ACME_FOLDER, SMIME_ACME_P12, SMIME_ACME_P12_PASSWORD_FILE, SMIME_ACME_KEY, SMIME_ACME_CERT, SMIME_ACME_CHAIN and SMIME_ACME_FULLCHAIN name the address and the files
    #[arg(long, value_name = "CMD")]
    pub deploy_hook: Option<String>,

    /// External account binding: the key identifier the CA gave you
    #[arg(long, value_name = "KID", requires = "eab_hmac_key_file")]
    pub eab_kid: Option<String>,
    /// External account binding: file holding the base64url MAC key the CA gave you
    #[arg(long, value_name = "FILE", requires = "eab_kid")]
    pub eab_hmac_key_file: Option<PathBuf>,
    /// Agree to the CA's terms of service (otherwise asked on a terminal)
    #[arg(long)]
    pub agree_tos: bool,

    /// How to check the challenge mail is from the CA: dkim, authentication-results:<AUTHSERV-ID>, or none (insecure) [default: dkim]
    #[arg(long, value_name = "MODE")]
    pub challenge_auth: Option<String>,
    /// DNS server for DKIM key lookups, mail server discovery and the mail servers' addresses [default: the system's]
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub dns_server: Option<String>,
    /// Where to fetch the autoconfig document (https://) when the mail servers are discovered, instead of autoconfig.<domain> and <domain>/.well-known
    #[arg(long, value_name = "URL")]
    pub autoconfig_url: Option<String>,
    /// How the CA joins the token parts: auto (as learned from this CA, else as the list of known CAs says, else string; when the CA rejects the reply for a token the joins disagree on, ordered once more with the other join, which is then kept for the CA), string (most CAs) or bytes (CASTLE); a given join is never retried [default: auto]
    #[arg(long, value_name = "MODE", value_parser = JoinChoice::NAMES)]
    pub token_join: Option<String>,
    /// When to tell the CA the challenge is answered: auto (after the reply, or after 15 s if no mail comes; at once for a CA seen to send the mail only then, as kept in the state folder), reply-first, post-first [default: auto]
    #[arg(long, value_name = "MODE", value_parser = ChallengeTiming::NAMES)]
    pub challenge_timing: Option<String>,
    /// Overall wait for the CA and the mail, e.g. 90s, 30m, 1h [default: 30m]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

/// Put an address's current certificate and key into a mail client: Thunderbird, or any NSS
/// database (Evolution and Chromium share ~/.pki/nssdb).
///
/// The key and its chain go in as a one-time PKCS#12 with a random password, through NSS's own
/// tools (pk12util and certutil, from libnss3-tools or nss-tools); secrets reach them only in
/// files in a private temporary folder, removed afterwards. The CA certificates of the chain
/// are imported too (Thunderbird needs the intermediates to send signed mail), without trust.
/// Installing again changes nothing.
///
/// --thunderbird finds the profile Thunderbird starts with through profiles.ini (in
/// ~/.thunderbird, ~/.mozilla/thunderbird, the Snap's or the Flatpak's folder); with several
/// profiles and no default, give --profile. Thunderbird must be closed: while it has the profile
/// open, nothing is changed and the exit status is 4. A database with a primary password takes
/// it from --nss-password-file, or asks on a terminal.
#[derive(Debug, Args, Default)]
#[command(after_help = EXIT_CODES)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["thunderbird", "nss_db"])))]
pub struct InstallArgs {
    /// The address
    pub email: String,
    /// Into Thunderbird's certificate store (the default profile, or --profile)
    #[arg(long)]
    pub thunderbird: bool,
    /// With --thunderbird: this profile, by its folder or its name in profiles.ini
    #[arg(long, value_name = "DIR|NAME", requires = "thunderbird")]
    pub profile: Option<PathBuf>,
    /// Into the NSS database (cert9.db) in this folder, e.g. ~/.pki/nssdb for Evolution and Chromium
    #[arg(long, value_name = "DIR")]
    pub nss_db: Option<PathBuf>,
    /// Every key and certificate ever issued for the address, not only the current one, so that mail encrypted to old certificates stays readable
    #[arg(long)]
    pub all_keys: bool,
    /// Read the database's primary password from this file (first line); otherwise it is asked on a terminal when the database has one
    #[arg(long, value_name = "FILE")]
    pub nss_password_file: Option<PathBuf>,
    /// Also trust this root certificate (PEM) to issue email certificates, in this database only. For a CA that is not publicly trusted (a company's own, a test CA): mail clients already trust the public ones, and a root trusted here vouches for every address it signs for, so only a root your certificate's chain leads to is accepted, and only when you ask
    #[arg(long, value_name = "FILE")]
    pub trust_root: Option<PathBuf>,
}
