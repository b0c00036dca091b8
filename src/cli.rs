//! Command-line definitions (clap derive only; the doc comments are the help text). No IO.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// The exit statuses, shown in `--help` and the man page.
pub const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  internal error (a bug, or the system refused something unexpected)
  2  usage or configuration error
  3  some certificates failed (commands that handle several)
  4  another smime-acme run holds the lock for this mailbox
  5  the CA refused (its problem document is shown)
  6  mail server error (connection, TLS, login, or the reply was not accepted)
  7  timed out waiting for the CA or the challenge mail
  8  cannot reach the CA (network or TLS)
";

/// Obtain and renew S/MIME certificates automatically over ACME (RFC 8823).
///
/// smime-acme orders a certificate for an email address from an ACME certificate authority,
/// answers the CA's challenge email from your mailbox over IMAP and SMTP, and saves the
/// certificate and its key as a PKCS#12 bundle that mail clients import.
#[derive(Debug, Parser)]
#[command(name = "smime-acme", version, about, long_about, after_help = EXIT_CODES, arg_required_else_help = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file [default: <config dir>/smime-acme/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
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
    /// Print one JSON object on stdout, nothing else
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Obtain(ObtainArgs),
}

/// Get a certificate for EMAIL: order it, answer the CA's challenge mail, save a PKCS#12 bundle.
///
/// The mailbox is watched over IMAP for the CA's challenge mail; the mail is checked (DKIM by
/// default) and answered over SMTP submission. Every step is saved in the state folder, so a
/// run that was stopped resumes the same order and never answers a challenge twice.
///
/// The mail password comes from --password-file, the SMIME_ACME_PASSWORD environment variable,
/// --password-command, or a prompt on a terminal; never from the command line. Each flag can
/// also be set in the configuration file: the [server] table for the CA and the
/// [mailbox."EMAIL"] table for the mail settings.
#[derive(Debug, Args, Default)]
#[command(after_help = EXIT_CODES)]
pub struct ObtainArgs {
    /// The address to get a certificate for
    pub email: String,

    /// ACME directory URL of the CA
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

    /// IMAP server [default: the address's domain, port by security]
    #[arg(long, value_name = "HOST[:PORT]")]
    pub imap: Option<String>,
    /// IMAP connection security [default: tls]
    #[arg(long, value_name = "MODE", value_parser = ["tls", "starttls", "plain"])]
    pub imap_security: Option<String>,
    /// IMAP user name [default: EMAIL]
    #[arg(long, value_name = "USER")]
    pub imap_user: Option<String>,
    /// SMTP submission server [default: the IMAP host, port by security]
    #[arg(long, value_name = "HOST[:PORT]")]
    pub smtp: Option<String>,
    /// SMTP connection security [default: tls]
    #[arg(long, value_name = "MODE", value_parser = ["tls", "starttls", "plain"])]
    pub smtp_security: Option<String>,
    /// SMTP user name [default: the IMAP user]
    #[arg(long, value_name = "USER")]
    pub smtp_user: Option<String>,
    /// Read the mail password from this file (first line)
    #[arg(long, value_name = "FILE", conflicts_with = "password_command")]
    pub password_file: Option<PathBuf>,
    /// Run this command (with sh -c) and take the mail password from its first output line
    #[arg(long, value_name = "CMD")]
    pub password_command: Option<String>,
    /// Folders to watch besides INBOX (repeatable; e.g. Junk)
    #[arg(long, value_name = "NAME")]
    pub watch_folder: Vec<String>,

    /// Certificate key type [default: rsa3072]
    #[arg(long, value_name = "TYPE", value_parser = ["rsa2048", "rsa3072", "rsa4096", "p256", "p384", "ed25519"])]
    pub key_type: Option<String>,
    /// What the certificate is for; ed25519 keys can only sign [default: both]
    #[arg(long, value_name = "USE", value_parser = ["both", "sign", "encrypt"])]
    pub usage: Option<String>,
    /// PKCS#12 encryption: compat (3DES/SHA-1, imports everywhere incl. Apple) or modern (AES-256/SHA-256) [default: compat]
    #[arg(long, value_name = "FORMAT", value_parser = ["compat", "modern"])]
    pub p12_format: Option<String>,
    /// Read the PKCS#12 password from this file (env SMIME_ACME_P12_PASSWORD; else one is generated)
    #[arg(long, value_name = "FILE")]
    pub p12_password_file: Option<PathBuf>,
    /// Also write the PKCS#12 bundle here
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,

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
    /// DNS server for DKIM key lookups [default: the system's]
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub dns_server: Option<String>,
    /// How the CA joins the token parts: string (most CAs) or bytes [default: string]
    #[arg(long, value_name = "MODE", value_parser = ["string", "bytes"])]
    pub token_join: Option<String>,
    /// When to tell the CA the challenge is answered: auto (after the reply, or early if no mail comes), reply-first, post-first [default: auto]
    #[arg(long, value_name = "MODE", value_parser = ["auto", "reply-first", "post-first"])]
    pub challenge_timing: Option<String>,
    /// Overall wait for the CA and the mail, e.g. 90s, 30m, 1h [default: 30m]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}
