//! smime-acme: an ACME client for S/MIME certificates (RFC 8823).
//!
//! Layout, one way down: `cli` (flags, clap) → `settings` (flags, a `manifest` entry, the
//! environment and the configuration file resolved into plain settings) → `commands::*` (one per
//! subcommand: settle secrets and questions, run, put the result into words or JSON) → the
//! issuance engine `issuance::engine` (one job in, a typed result out, progress as events; for
//! many mailboxes `commands::fleet` runs it on worker threads) → the IO adapters
//! (`acme::client`, `mail`, `store`, `tls`) and the pure core (`acme::jws`, `acme::types`,
//! `challenge`, `keys`, `certificate`, `pem`, `bundle` (PKCS#12), `renewal`, and the journal in
//! `issuance`).
//! Into mail clients: `nss` (an NSS database through NSS's own tools; IO), `mozilla`
//! (Thunderbird's profiles.ini and profile lock, as text) and `plist` (Apple configuration
//! profiles); `commands::install` drives them.
//! `known_cas` is the built-in list of RFC 8823 CAs known by name; what is learned about a CA
//! (its token join, when it mails) is `issuance::learn`. Finding a mailbox's servers is
//! `mail::discover` (DNS SRV, autoconfig, guesses; the choices in `mail::candidates`); OAuth2
//! logins are `mail::oauth` and `mail::tokens`. `manpages` renders the completions and man pages.
//! `run` maps every error to the documented exit status, once.

/// For an enum of plain variants that the command line and the configuration file name:
/// `ALL`, `NAMES`, `name()`, `Display`, and `FromStr` with an error that lists the names.
macro_rules! named_values {
    ($type:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $type {
            pub const ALL: [$type; [$($name),+].len()] = [$($type::$variant),+];
            pub const NAMES: [&'static str; [$($name),+].len()] = [$($name),+];

            pub fn name(self) -> &'static str {
                match self {
                    $($type::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $type {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL.into_iter().find(|v| v.name() == s).ok_or_else(|| {
                    let (last, rest) = Self::NAMES.split_last().unwrap_or((&"", &[]));
                    let expected = match rest {
                        [] => (*last).to_owned(),
                        _ => format!("{} or {last}", rest.join(", ")),
                    };
                    format!("unknown {} {s:?}: expected {expected}", $what)
                })
            }
        }
    };
}

pub mod account;
pub mod acme;
pub mod bundle;
pub mod certificate;
pub mod challenge;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod issuance;
pub mod keys;
pub mod known_cas;
pub mod mail;
pub mod manifest;
pub mod manpages;
pub mod mozilla;
pub mod nss;
pub mod output;
pub mod pem;
pub mod plist;
pub mod renewal;
pub mod secrets;
pub mod settings;
pub mod store;
#[cfg(test)]
mod testing;
pub mod tls;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use serde_json::json;

/// Every way a command can fail, each mapped to one exit status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
    #[error(transparent)]
    Acme(#[from] acme::client::AcmeError),
    #[error("{0}")]
    CaRefused(String),
    #[error(transparent)]
    Mail(#[from] mail::MailError),
    #[error(transparent)]
    Discover(#[from] mail::discover::DiscoverError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    #[error(transparent)]
    Jws(#[from] acme::jws::JwsError),
    #[error("{0}")]
    TimedOut(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Nss(#[from] nss::NssError),
    /// A mail client has the profile open.
    #[error("{0}")]
    ProfileInUse(String),
}

/// The exit statuses (documented in `cli::EXIT_CODES`).
pub mod exit {
    pub const OK: u8 = 0;
    pub const INTERNAL: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const SOME_FAILED: u8 = 3;
    pub const LOCKED: u8 = 4;
    pub const CA_REFUSED: u8 = 5;
    pub const MAIL: u8 = 6;
    pub const TIMED_OUT: u8 = 7;
    pub const CA_UNREACHABLE: u8 = 8;
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        use acme::client::AcmeError;
        match self {
            Error::Settings(_) | Error::Usage(_) | Error::Tls(_) | Error::Secret(_) => exit::USAGE,
            Error::Key(keys::KeyError::Ed25519SigningOnly | keys::KeyError::BadAddress(_)) => {
                exit::USAGE
            }
            Error::Acme(AcmeError::Transport { .. }) => exit::CA_UNREACHABLE,
            Error::Acme(_) | Error::CaRefused(_) => exit::CA_REFUSED,
            Error::Mail(_) => exit::MAIL,
            Error::Discover(mail::discover::DiscoverError::Login(_)) => exit::MAIL,
            Error::Discover(mail::discover::DiscoverError::NotFound { .. }) => exit::USAGE,
            Error::Store(store::StoreError::Locked(_)) => exit::LOCKED,
            Error::ProfileInUse(_) => exit::LOCKED,
            Error::Nss(nss::NssError::Tool { .. } | nss::NssError::TempDir { .. }) => {
                exit::INTERNAL
            }
            Error::Nss(_) => exit::USAGE,
            Error::TimedOut(_) => exit::TIMED_OUT,
            Error::Store(_)
            | Error::Key(_)
            | Error::Bundle(_)
            | Error::Jws(_)
            | Error::Internal(_) => exit::INTERNAL,
        }
    }

    /// A short name for the JSON `error` field.
    pub fn kind(&self) -> &'static str {
        match self.exit_code() {
            exit::USAGE => "usage",
            exit::LOCKED => "locked",
            exit::CA_REFUSED => "ca_refused",
            exit::MAIL => "mail",
            exit::TIMED_OUT => "timed_out",
            exit::CA_UNREACHABLE => "ca_unreachable",
            _ => "internal",
        }
    }
}

/// Parses `args` and runs the requested command, returning the process exit status.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with status 0; usage errors to stderr with status 2.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(exit::USAGE));
        }
    };
    let global = &cli.global;
    let out = output::Output::new(global.verbose, global.quiet, global.json);
    let out = match &global.log_file {
        None => out,
        Some(path) => match out.with_log_file(path) {
            Ok(out) => out,
            Err(e) => {
                let message = format!("cannot open the log file {}: {e}", path.display());
                let out = output::Output::new(0, false, global.json);
                out.error(
                    &message,
                    &json!({"status": "error", "error": "usage", "message": message}),
                );
                return ExitCode::from(exit::USAGE);
            }
        },
    };
    out.log(&format!(
        "smime-acme {} {}",
        env!("CARGO_PKG_VERSION"),
        cli.command.name()
    ));
    let result = settings::load_config(global.config.as_deref())
        .map_err(Error::from)
        .and_then(|config| {
            use cli::Command;
            match &cli.command {
                Command::Obtain(args) => commands::obtain::run(
                    &settings::obtain(&global.common(), &args.request(), &config)?,
                    &out,
                ),
                Command::Renew(args) => commands::renew::run(global, args, &config, &out),
                Command::Revoke(args) => commands::revoke::run(global, args, &config, &out),
                Command::Account(args) => commands::account::run(global, args, &config, &out),
                Command::List(_) => commands::list::list(global, &out),
                Command::Show(args) => commands::list::show(global, &args.email),
                Command::Export(args) => commands::export::run(global, args, &out),
                Command::Provision(args) => commands::provision::run(global, args, &config, &out),
                Command::Forget(args) => commands::forget::run(global, args),
                Command::Completions(args) => {
                    output::stdout(&String::from_utf8_lossy(&manpages::completion(args.shell)));
                    Ok(commands::Outcome::default())
                }
                Command::Man(args) => commands::man(&args.dir),
                Command::Doctor(args) => {
                    commands::doctor::run(&global.common(), &args.obtain.request(), &config, &out)
                }
                Command::Install(args) => commands::install::run(global, args, &out),
            }
        });
    match result {
        Ok(outcome) => {
            out.result(&outcome);
            ExitCode::from(outcome.exit)
        }
        Err(error) => {
            let message = error.to_string();
            out.error(
                &message,
                &json!({"status": "error", "error": error.kind(), "message": message}),
            );
            ExitCode::from(error.exit_code())
        }
    }
}
