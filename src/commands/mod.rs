//! One file per subcommand: each takes resolved settings and the output, and returns an
//! [`Outcome`] (or an error) that `lib.rs` prints and maps to the exit status.

pub mod account;
pub mod doctor;
pub mod export;
pub mod fleet;
pub mod forget;
pub mod install;
pub mod list;
pub mod obtain;
pub mod provision;
pub mod renew;
pub mod revoke;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;

use crate::acme::client::AcmeClient;
use crate::challenge::response;
use crate::issuance::engine::{Account, Credentials, Events, Issued, Reporter};
use crate::mail::candidates::Protocol;
use crate::mail::discover;
use crate::settings::{CaSettings, ObtainSettings};
use crate::store::Store;
use crate::{Error, secrets};

/// `smime-acme man DIR`: writes every man page into DIR.
pub fn man(dir: &Path) -> Result<Outcome, Error> {
    let fail =
        |e: std::io::Error| Error::Usage(format!("cannot write into {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let pages = crate::manpages::pages();
    for (name, content) in &pages {
        std::fs::write(dir.join(name), content).map_err(fail)?;
    }
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    Ok(Outcome::one(
        format!("Wrote {} man pages into {}.\n", pages.len(), dir.display()),
        serde_json::json!({"status": "written", "folder": dir, "pages": names}),
    ))
}

/// What a command did: words for people, JSON for scripts, and the exit status.
#[derive(Debug, Default)]
pub struct Outcome {
    pub human: String,
    /// What is still printed with -q (renewals and failures).
    pub quiet: String,
    /// One object, or one per certificate for `renew` and `list`.
    pub json: Vec<Value>,
    pub exit: u8,
}

impl Outcome {
    /// A successful command with one result.
    pub fn one(human: String, json: Value) -> Outcome {
        Outcome {
            human,
            quiet: String::new(),
            json: vec![json],
            exit: crate::exit::OK,
        }
    }
}

/// The secrets of one job: the mail password (asked on a terminal when that is its source) or
/// the OAuth2 token source (its client secret and refresh token read now), and the PKCS#12
/// password: the one given (file, environment), else the one kept for the address (unless
/// `new_p12_password`), else asked on a terminal when `ask_p12`, else none (generated).
pub fn credentials(settings: &ObtainSettings, ask_p12: bool) -> Result<Credentials, Error> {
    let user = match &settings.master {
        Some(master) => master.user.as_str(),
        None => settings.imap_user.as_str(),
    };
    let oauth = match &settings.oauth {
        Some(oauth) => {
            let roots = match &settings.ca_bundle {
                Some(path) => crate::tls::load_bundle(path)?,
                None => Vec::new(),
            };
            Some(std::sync::Arc::new(crate::mail::tokens::Tokens::new(
                oauth,
                &settings.imap_user,
                &settings.state_dir,
                crate::tls::client_config(&roots),
            )?))
        }
        None => None,
    };
    let mail_password = match oauth {
        Some(_) => String::new(),
        None => secrets::mail_password(&settings.password, user)?,
    };
    let given = secrets::p12_password(settings.p12_password_file.as_deref(), false)?;
    let kept = Store::new(&settings.state_dir).p12_password_file(&settings.email);
    let (p12_password, p12_kept, p12_chosen) = match given {
        Some(password) => (Some(password), false, true),
        None if !settings.new_p12_password && kept.exists() => (
            Some(secrets::from_file("kept PKCS#12 password", &kept)?),
            true,
            crate::store::chosen_marker(&kept).exists(),
        ),
        None => match secrets::p12_password(None, ask_p12)? {
            Some(typed) => (Some(typed), false, true),
            None => (None, false, false),
        },
    };
    Ok(Credentials {
        mail_password,
        oauth,
        p12_password,
        p12_kept,
        p12_chosen,
    })
}

/// Runs the deploy hook after an issuance, with the new files in its environment. Its output
/// goes to stderr, so that stdout stays JSON with --json.
pub fn deploy(hook: &str, issued: &Issued, p12_password_file: Option<&Path>) -> Result<(), String> {
    use std::os::fd::AsFd;
    use std::process::{Command, Stdio};
    let files = &issued.files;
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| e.to_string())?;
    let mut command = Command::new("sh");
    secrets::without_secrets(&mut command)
        .arg("-c")
        .arg(hook)
        .env("SMIME_ACME_EMAIL", &issued.email)
        .env("SMIME_ACME_FOLDER", &issued.folder)
        .env("SMIME_ACME_P12", &files.p12)
        .env("SMIME_ACME_KEY", &files.key)
        .env("SMIME_ACME_CERT", &files.certificate)
        .env("SMIME_ACME_CHAIN", &files.chain)
        .env("SMIME_ACME_FULLCHAIN", &files.fullchain)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr));
    if let Some(path) = files.p12_password.as_deref().or(p12_password_file) {
        command.env("SMIME_ACME_P12_PASSWORD_FILE", path);
    }
    let status = command
        .status()
        .map_err(|e| format!("cannot run it: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("it exited with {status}"))
    }
}

/// Finds the mail servers `settings` leaves unset (`mail::discover`), proving each with a login
/// with `credentials`, and puts them (and the login names that worked) into `settings`, so that
/// they are kept for renewals. Nothing is looked up when both servers are set. With `ask`, a host
/// outside the address's domain named by an unauthenticated source may be confirmed on a
/// terminal; otherwise it is not used.
pub fn discover_mail(
    settings: &mut ObtainSettings,
    credentials: &Credentials,
    out: Reporter<'_>,
    ask: bool,
) -> Result<Vec<discover::Found>, Error> {
    if !settings.needs_discovery() {
        return Ok(Vec::new());
    }
    let extra_roots = match &settings.ca_bundle {
        Some(path) => crate::tls::load_bundle(path)?,
        None => Vec::new(),
    };
    let d = &settings.discovery;
    let search = discover::Search {
        email: &settings.email,
        imap: settings.imap.is_none(),
        smtp: settings.smtp.is_none(),
        imap_security: d.imap_security,
        smtp_security: d.smtp_security,
        imap_user: d.imap_user_given.then_some(settings.imap_user.as_str()),
        smtp_user: d.smtp_user_given.then_some(settings.smtp_user.as_str()),
        password: &credentials.mail_password,
        oauth: credentials.oauth.clone(),
        master: settings.master.as_ref(),
        autoconfig_url: d.autoconfig_url.as_deref(),
        dns_server: settings.dns_server,
        tls: crate::tls::client_config(&extra_roots),
        extra_roots: &extra_roots,
        deadline: Instant::now() + settings.timeout,
    };
    let domain = settings.email.rsplit_once('@').map_or("", |(_, d)| d);
    out.info(&format!("looking for the mail servers of {domain}"));
    let listener = Listening { out, ask };
    let found = discover::discover(&search, &listener, random_below)?;
    for f in &found {
        let server = Some(f.candidate.server.clone());
        match f.protocol {
            Protocol::Imap => {
                settings.imap = server;
                settings.imap_security = f.candidate.security;
                if !settings.discovery.imap_user_given {
                    settings.imap_user = f.user.clone();
                    if !settings.discovery.smtp_user_given {
                        settings.smtp_user = f.user.clone();
                    }
                }
            }
            Protocol::Submission => {
                settings.smtp = server;
                settings.smtp_security = f.candidate.security;
                if !settings.discovery.smtp_user_given {
                    settings.smtp_user = f.user.clone();
                }
            }
        }
    }
    Ok(found)
}

/// What was discovered, for `--json`: `{"imap": {...}, "smtp": {...}}`.
pub fn discovered_json(found: &[discover::Found]) -> Value {
    let mut object = serde_json::Map::new();
    for f in found {
        let key = match f.protocol {
            Protocol::Imap => "imap",
            Protocol::Submission => "smtp",
        };
        object.insert(key.to_owned(), f.to_json());
    }
    Value::Object(object)
}

/// A number in `0..=n`, for the order of SRV records of equal priority.
fn random_below(n: u32) -> u32 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 4];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return 0;
    }
    match n.checked_add(1) {
        Some(m) => u32::from_le_bytes(bytes) % m,
        None => u32::from_le_bytes(bytes),
    }
}

/// The discovery's notes as the command's events, and its question on a terminal when allowed.
struct Listening<'a> {
    out: Reporter<'a>,
    ask: bool,
}

impl discover::Listener for Listening<'_> {
    fn note(&self, text: &str) {
        self.out.info(text);
    }

    fn warn(&self, text: &str) {
        self.out.warn(text);
    }

    fn confirm(&self, question: &str) -> Option<bool> {
        if self.ask {
            secrets::ask_yes(question)
        } else {
            None
        }
    }
}

/// A CA and the account kept for it: its client, from which every worker takes its own.
#[derive(Debug)]
pub struct Ca {
    pub client: AcmeClient,
    pub account: Account,
}

impl Ca {
    /// Connects (at most `in_flight` requests at once, for all workers) and loads the account,
    /// registering one with `contacts` when none is kept. The terms question is asked here, on
    /// a terminal, when the CA has terms and they were not agreed to with --agree-tos.
    pub fn open(
        ca: &CaSettings,
        contacts: Vec<String>,
        store: &Store,
        events: &dyn Events,
        deadline: Instant,
        in_flight: usize,
    ) -> Result<Ca, Error> {
        let client = Ca::connect(ca, deadline, in_flight)?;
        Ca::with_account(client, ca, contacts, store, events)
    }

    /// Connects to the CA (its directory), trusting the system roots and those in its bundle;
    /// no account yet.
    pub fn connect(
        ca: &CaSettings,
        deadline: Instant,
        in_flight: usize,
    ) -> Result<AcmeClient, Error> {
        let roots = match &ca.ca_bundle {
            Some(path) => crate::tls::load_bundle(path)?,
            None => Vec::new(),
        };
        let tls = crate::tls::client_config(&roots);
        Ok(AcmeClient::connect_shared(
            &ca.server, tls, deadline, in_flight,
        )?)
    }

    /// The CA reached by `client`, with its account loaded or registered.
    pub fn with_account(
        mut client: AcmeClient,
        ca: &CaSettings,
        contacts: Vec<String>,
        store: &Store,
        events: &dyn Events,
    ) -> Result<Ca, Error> {
        let out = Reporter { events, email: "" };
        let (key, url) = match crate::account::load(store, &ca.server)? {
            Some(account) => account,
            None => {
                let registration = registration(&client, ca, contacts)?;
                crate::account::load_or_register(
                    &mut client,
                    store,
                    &ca.server,
                    &registration,
                    out,
                )?
            }
        };
        Ok(Ca {
            client,
            account: Account { key, url },
        })
    }
}

/// What a new account at `ca` is registered with: the terms question asked here, on a
/// terminal, when the CA has terms not agreed to with --agree-tos; the EAB key read.
pub fn registration(
    client: &AcmeClient,
    ca: &CaSettings,
    contacts: Vec<String>,
) -> Result<crate::account::Registration, Error> {
    let mut agree_tos = ca.agree_tos;
    if let Some(terms) = &client.directory.meta.terms_of_service
        && !agree_tos
    {
        let question = format!("Do you agree to the CA's terms of service at {terms}?");
        agree_tos = secrets::ask_yes(&question) == Some(true);
    }
    let eab = match &ca.eab {
        Some((kid, file)) => {
            let text = secrets::from_file("external account binding key", file)?;
            let mac = response::decode_lenient(text.trim()).ok_or_else(|| {
                Error::Usage(format!(
                    "{} does not hold a base64url MAC key",
                    file.display()
                ))
            })?;
            Some((kid.clone(), mac))
        }
        None => None,
    };
    Ok(crate::account::Registration {
        contacts,
        agree_tos,
        eab,
    })
}

/// The CA's last renewal window for a certificate, and when to ask again (`renewal-info.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RenewalInfo {
    pub window: crate::renewal::Window,
    /// Unix time before which the CA is not asked again (its Retry-After).
    pub next_check: i64,
    #[serde(default)]
    pub explanation_url: Option<String>,
}

/// A certificate folder of the state folder, read.
#[derive(Debug)]
pub struct Held {
    pub dir: PathBuf,
    pub der: Vec<u8>,
    pub info: crate::certificate::CertInfo,
    pub revoked: Option<Value>,
    pub renewal_info: Option<RenewalInfo>,
    /// `forget` was run for the address: renew leaves it alone.
    pub forgotten: bool,
}

impl Held {
    pub fn read(dir: &std::path::Path) -> Result<Held, Error> {
        let pem = crate::store::read_optional(&dir.join("cert.pem"), 1024 * 1024)?
            .ok_or_else(|| Error::Internal(format!("{} has no cert.pem", dir.display())))?;
        let damaged = |e: crate::certificate::CertError| crate::store::StoreError::Damaged {
            path: dir.join("cert.pem"),
            reason: e.to_string(),
        };
        let der = crate::certificate::parse_pem_chain(&pem)
            .map_err(damaged)?
            .swap_remove(0);
        let info = crate::certificate::describe(&der).map_err(damaged)?;
        Ok(Held {
            revoked: crate::store::read_json(&dir.join("revoked.json"))?,
            renewal_info: crate::store::read_json(&dir.join("renewal-info.json"))?,
            forgotten: dir
                .parent()
                .is_some_and(|certs| certs.join("forgotten.json").exists()),
            dir: dir.to_owned(),
            der,
            info,
        })
    }

    /// The current certificate of `email`; a usage error when there is none.
    pub fn current(store: &crate::store::Store, email: &str) -> Result<Held, Error> {
        match store.current(email)? {
            Some(dir) => Held::read(&dir),
            None => Err(Error::Usage(format!(
                "no certificate for {email} in {}: run smime-acme obtain {email} first",
                store.root().display()
            ))),
        }
    }

    /// The facts the renewal decision needs.
    pub fn facts(&self) -> crate::renewal::Facts {
        crate::renewal::Facts {
            not_before: self.info.not_before,
            not_after: self.info.not_after,
            revoked: self.revoked.is_some(),
            window: self.renewal_info.as_ref().map(|r| r.window),
            jitter: crate::renewal::jitter(&self.info.sha256),
        }
    }

    /// The address the certificate is for.
    pub fn email(&self) -> String {
        self.info.names.first().cloned().unwrap_or_default()
    }
}
