//! The issuance engine: one job (a mailbox's settings, its CA account, what a renewal adds) and
//! its credentials in, a typed result out. It owns the ACME client, the mailbox watcher, the reply
//! sender, the journal (`Pending`, saved before every step with an effect outside the process)
//! and the deadline, and walks the journal's steps: order, authorization, answers and POST
//! (`watch`), key, finalize, download, save. It never prompts and never prints: what it does goes
//! out as [`Events`] naming the mailbox. `obtain`, `renew` and `provision` drive it. IO driver.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::learn;
use super::reorder::{choose_join, keep_join, reorder, reorder_after_kill};
use super::save::save;
use super::watch::{self, Backoff, Ctx, MailSide, Verdict};
use super::{Pending, Step};
use crate::Error;
use crate::acme::client::{AcmeClient, AcmeError};
use crate::acme::jws::{self, AccountKey, KeyRef};
use crate::acme::types::{Authorization, Identifier, Order, Status};
use crate::bundle::P12Format;
use crate::certificate::{self, CertInfo};
use crate::challenge::authenticity::ChallengeAuth;
use crate::challenge::response::TokenJoin;
use crate::keys::{self, KeyType};
use crate::mail::imap::Mailbox;
use crate::mail::smtp::{self, Submission};
use crate::mail::{Login, MailError};
use crate::pem;
use crate::settings::ObtainSettings;
use crate::store::{self, Store};

/// How much an event matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The step now under way (a progress display's text).
    Phase,
    /// Worth a line at -v.
    Info,
    /// Worth a line at -vv.
    Debug,
    /// Shown unless -q.
    Warn,
}

/// Where the engine's events go: a progress display, a log, or nowhere.
pub trait Events: Sync {
    fn emit(&self, email: &str, level: Level, text: &str);
}

/// The events of one mailbox.
#[derive(Clone, Copy)]
pub struct Reporter<'a> {
    pub events: &'a dyn Events,
    pub email: &'a str,
}

impl std::fmt::Debug for Reporter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("email", &self.email)
            .finish()
    }
}

impl Reporter<'_> {
    pub fn phase(&self, text: &str) {
        self.events.emit(self.email, Level::Phase, text);
    }

    pub fn info(&self, text: &str) {
        self.events.emit(self.email, Level::Info, text);
    }

    pub fn debug(&self, text: &str) {
        self.events.emit(self.email, Level::Debug, text);
    }

    pub fn warn(&self, text: &str) {
        self.events.emit(self.email, Level::Warn, text);
    }
}

/// The account the job orders with, loaded or registered by the command.
#[derive(Debug)]
pub struct Account {
    pub key: AccountKey,
    pub url: String,
}

/// One certificate to get. Its `Debug` leaves out the key.
pub struct Job<'a> {
    pub settings: &'a ObtainSettings,
    pub account: &'a Account,
    /// The RFC 9773 identifier of the certificate replaced (sent when the CA offers ARI).
    pub replaces: Option<String>,
    /// The key to certify again (PKCS#8), instead of a fresh one.
    pub reuse_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Job<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("email", &self.settings.email)
            .field("replaces", &self.replaces)
            .field("reuse_key", &self.reuse_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The secrets a job needs, read by the command before the engine starts. Its `Debug` shows
/// none of them.
pub struct Credentials {
    /// The mailbox's password, or the administrator's for a master-user login.
    pub mail_password: String,
    /// OAuth2 access tokens to log in with instead of the password.
    pub oauth: Option<std::sync::Arc<crate::mail::tokens::Tokens>>,
    /// The PKCS#12 password; None: one is generated. Every one is kept for the address, so that
    /// renewals reuse it; a generated one (also when kept) is written beside the bundle too.
    pub p12_password: Option<String>,
    /// `p12_password` is the one kept for the address (not given for this run).
    pub p12_kept: bool,
    /// `p12_password` was chosen by the user (given now, or given once and kept): never written
    /// anywhere but the state folder's kept copy.
    pub p12_chosen: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { <redacted> }")
    }
}

/// What was issued and where it was saved.
#[derive(Debug, Clone)]
pub struct Issued {
    pub email: String,
    pub info: CertInfo,
    pub key_type: KeyType,
    pub p12_format: P12Format,
    pub folder: PathBuf,
    pub files: Files,
    /// HTTP requests to the CA for this certificate, failed tries included.
    pub http_requests: u32,
    pub challenge_mails_answered: usize,
    /// When the first reply was accepted by the submission server (Unix milliseconds).
    pub reply_sent_at_unix_ms: Option<u64>,
    /// How the token parts were joined in the replies (None when nothing was answered).
    pub token_join: Option<TokenJoin>,
}

/// The files of a saved certificate.
#[derive(Debug, Clone)]
pub struct Files {
    pub key: PathBuf,
    pub certificate: PathBuf,
    pub chain: PathBuf,
    pub fullchain: PathBuf,
    pub p12: PathBuf,
    /// The PKCS#12 password beside the bundle, when it was generated or kept (not given).
    pub p12_password: Option<PathBuf>,
    /// That password is the one kept for the address, not a new one.
    pub p12_password_kept: bool,
    /// The copy of the bundle asked for with `out`.
    pub out: Option<PathBuf>,
}

/// Gets the certificate of `job` with `acme` (connected to the job's CA and sharing its
/// account). The caller holds the mailbox's lock.
pub fn issue(
    job: &Job<'_>,
    credentials: &Credentials,
    acme: &mut AcmeClient,
    store: &Store,
    events: &dyn Events,
) -> Result<Issued, Error> {
    let settings = job.settings;
    let out = Reporter {
        events,
        email: &settings.email,
    };
    let deadline = Instant::now()
        .checked_add(settings.timeout)
        .ok_or_else(|| Error::Usage("--timeout is too long".into()))?;
    acme.set_deadline(deadline);
    let requests_before = acme.requests();
    let extra_roots = match &settings.ca_bundle {
        Some(path) => crate::tls::load_bundle(path)?,
        None => Vec::new(),
    };
    let tls = crate::tls::client_config(&extra_roots);
    let (Some(imap), Some(smtp)) = (&settings.imap, &settings.smtp) else {
        return Err(Error::Internal(
            "the mail servers were not found before the issuance".into(),
        ));
    };
    if settings.challenge_auth == ChallengeAuth::None {
        out.warn("--challenge-auth none: challenge mails are answered without checking they come from the CA (insecure)");
    }
    let imap_login = Login {
        user: &settings.imap_user,
        password: &credentials.mail_password,
        master: settings.master.as_ref(),
        oauth: credentials.oauth.as_deref(),
    };
    // What the token source did that the user should hear of (a replaced refresh token).
    let token_notes = || {
        for (warning, text) in credentials.oauth.iter().flat_map(|t| t.take_notes()) {
            if warning {
                out.warn(&text);
            } else {
                out.info(&text);
            }
        }
    };
    let pending_path = store.pending_file(&settings.email);
    let ctx = Ctx {
        settings,
        out,
        key: &job.account.key,
        store,
        pending_path: &pending_path,
        deadline,
    };

    let mut pending = match resume(&ctx, acme, &job.account.url)? {
        Some(pending) => pending,
        None => Pending {
            email: settings.email.clone(),
            server: settings.server.clone(),
            account_url: job.account.url.clone(),
            ..Pending::default()
        },
    };
    if !pending.order_url.is_empty() && !pending.validated {
        choose_join(&ctx, &mut pending);
    }
    let mut mailbox = None;
    if !pending.validated {
        out.phase(&format!(
            "logging in to {} as {}",
            imap,
            imap_login.describe()
        ));
        let opened = Mailbox::open_via(
            imap,
            settings.imap_security,
            Arc::clone(&tls),
            imap_login,
            Some(deadline),
            settings.dns_server,
        )?;
        out.debug(&format!(
            "IMAP server {} IDLE",
            if opened.has_idle() {
                "offers"
            } else {
                "does not offer"
            }
        ));
        if let Some(mechanism) = opened.oauth_mechanism() {
            out.debug(&format!("IMAP login with an OAuth2 token by {mechanism}"));
        }
        mailbox = Some(opened);
        token_notes();
    }
    // Logged in to SMTP before the authorization is fetched: when the mail comes, only the
    // message transfer is left (a CA may send the mail as soon as it hands out the challenge).
    let mut sender = smtp::Sender::new(Submission {
        server: smtp,
        security: settings.smtp_security,
        user: &settings.smtp_user,
        password: &credentials.mail_password,
        master: settings.master.as_ref(),
        oauth: credentials.oauth.as_deref(),
        extra_roots: &extra_roots,
    })
    .until(deadline)
    .resolving_with(settings.dns_server);
    if pending.next_step() == Step::Order {
        let mailbox = mailbox
            .as_mut()
            .ok_or_else(|| Error::Internal("no mailbox to watch".into()))?;
        new_order(&ctx, acme, mailbox, &mut pending, job.replaces.as_deref())?;
    }
    if !pending.validated && !pending.replied() {
        out.phase(&format!(
            "logging in to {} as {} for the reply",
            smtp,
            Login {
                user: &settings.smtp_user,
                ..imap_login
            }
            .describe()
        ));
        match sender.login() {
            // Not reachable now: the reply is sent (and retried) when the mail comes.
            Err(e @ MailError::Connect { .. }) => out.warn(&format!("{e}; trying again later")),
            other => other?,
        }
        token_notes();
    }
    let mut key_pkcs8 = None;
    let chain = loop {
        match pending.next_step() {
            // The one more order with the other join, after the CA rejected the reply.
            Step::Order => {
                let mailbox = mailbox
                    .as_mut()
                    .ok_or_else(|| Error::Internal("no mailbox to watch".into()))?;
                new_order(&ctx, acme, mailbox, &mut pending, job.replaces.as_deref())?;
            }
            Step::FetchAuthorization => fetch_authorization(&ctx, acme, &mut pending)?,
            Step::Validate => {
                let mailbox = mailbox
                    .as_mut()
                    .ok_or_else(|| Error::Internal("no mailbox to watch".into()))?;
                let mail = MailSide {
                    mailbox,
                    sender: &mut sender,
                    login: imap_login,
                    tls: &tls,
                };
                match watch::validate(&ctx, acme, mail, &mut pending)? {
                    Verdict::Valid => keep_join(&ctx, &pending),
                    refused => pending = reorder(&ctx, &pending, refused)?,
                }
            }
            Step::Key => {
                if let Some(mailbox) = mailbox.take() {
                    mailbox.logout();
                }
                key_pkcs8 = Some(make_key(&ctx, &mut pending, job.reuse_key.as_deref())?);
            }
            Step::Finalize => match saved_key(&ctx, &mut key_pkcs8) {
                Ok(pkcs8) => finalize(&ctx, acme, &mut pending, &pkcs8)?,
                // Lost before the CSR went out (or with it: then the certificate will not
                // match and the order is refused at the check): a new key.
                Err(e) => {
                    out.warn(&format!("{e}: making a new one"));
                    pending.key_file = None;
                    ctx.save(&pending)?;
                }
            },
            Step::Download => break download(&ctx, acme, &pending)?,
        }
    };
    if let Some(mailbox) = mailbox.take() {
        mailbox.logout();
    }
    token_notes();
    let pkcs8 = saved_key(&ctx, &mut key_pkcs8)?;
    let mut issued = save(&ctx, &chain, &pkcs8, credentials)?;
    // The certificate is saved: a journal that stays behind is found done by the next run.
    if let Err(e) = store::remove(&pending_path) {
        out.warn(&e.to_string());
    }
    if let Some(key_file) = &pending.key_file {
        let _ = std::fs::remove_file(key_file);
    }
    issued.http_requests = acme.requests() - requests_before;
    issued.reply_sent_at_unix_ms = pending.first_sent_at();
    issued.challenge_mails_answered = pending.answers.len();
    issued.token_join = pending.token_join.filter(|_| pending.replied());
    Ok(issued)
}

/// The saved issuance, if its order can still be used. A CA that cannot be reached now ends
/// the run with the record kept; a record holding replies or a POST is never thrown away
/// unless its order is over.
fn resume(
    ctx: &Ctx<'_>,
    acme: &mut AcmeClient,
    account_url: &str,
) -> Result<Option<Pending>, Error> {
    let (settings, path) = (ctx.settings, ctx.pending_path);
    let Some(pending) = store::read_json::<Pending>(path)? else {
        return Ok(None);
    };
    let pending = pending.resumed();
    if !crate::challenge::mail::same_address(&pending.email, &settings.email) {
        return Ok(None);
    }
    if pending.order_url.is_empty() {
        return Ok(learn::retry_not_ordered(
            &pending,
            &settings.server,
            account_url,
        ));
    }
    if pending.server != settings.server {
        if pending.has_effects() {
            return Err(Error::Usage(format!(
                "an issuance for {} at {} is under way (its state is in {}); finish it with \
                 --server {}, or delete that file to start over",
                settings.email,
                pending.server,
                path.display(),
                pending.server
            )));
        }
        return Ok(None);
    }
    match acme.fetch::<Order>(ctx.key, &pending.account_url, &pending.order_url) {
        Ok((order, _))
            if !matches!(
                order.status,
                Status::Invalid | Status::Expired | Status::Deactivated | Status::Revoked
            ) =>
        {
            ctx.out.info(&format!(
                "resuming order {} ({})",
                pending.order_url, order.status
            ));
            Ok(Some(pending))
        }
        Ok((order, _)) => {
            ctx.out.info(&format!(
                "the saved order is {}: starting a new one",
                order.status
            ));
            if let Some(next) = reorder_after_kill(ctx, acme, &pending)? {
                return Ok(Some(next));
            }
            store::remove(path)?;
            Ok(None)
        }
        // Not reachable now, or busy: the record is kept for the next run.
        Err(
            e @ (AcmeError::Transport { .. }
            | AcmeError::RateLimited { .. }
            | AcmeError::Status { status: 500.., .. }),
        ) => Err(e.into()),
        Err(e) if pending.has_effects() => Err(Error::CaRefused(format!(
            "the saved order {} cannot be read ({e}); its state is kept in {}: delete that file \
             to start a new order",
            pending.order_url,
            path.display()
        ))),
        Err(e) => {
            ctx.out.info(&format!(
                "the saved order cannot be used ({e}): starting a new one"
            ));
            Ok(None)
        }
    }
}

fn new_order(
    ctx: &Ctx<'_>,
    acme: &mut AcmeClient,
    mailbox: &mut Mailbox,
    pending: &mut Pending,
    replaces: Option<&str>,
) -> Result<(), Error> {
    let settings = ctx.settings;
    choose_join(ctx, pending);
    // Where new mail starts, before the order exists: its challenge mail comes after.
    for folder in &settings.folders {
        pending.marks.insert(folder.clone(), mailbox.mark(folder)?);
    }
    // A record holding replies or a POST is never replaced: `resume` removes it once its order
    // is over (the Message-IDs it answered stay in the answered list).
    if store::read_json::<Pending>(ctx.pending_path)?.is_some_and(|old| old.has_effects()) {
        return Err(Error::Internal(format!(
            "{} holds an issuance under way; it is not replaced",
            ctx.pending_path.display()
        )));
    }
    // Saved before the order exists, so that mail arriving from here on counts as new.
    ctx.save(pending)?;
    ctx.out
        .phase(&format!("ordering a certificate for {}", settings.email));
    let new_order = acme.directory.new_order.clone();
    let mut payload = json!({"identifiers": [Identifier::email(&settings.email)]});
    let replaces = replaces.filter(|_| acme.directory.renewal_info.is_some());
    if let Some(id) = replaces {
        payload["replaces"] = json!(id);
    }
    let account = pending.account_url.clone();
    let response = match acme.post(ctx.key, KeyRef::Kid(&account), &new_order, Some(&payload)) {
        // Some CAs refuse `replaces` (already replaced, or not understood): order without it.
        Err(AcmeError::Problem(problem)) if replaces.is_some() => {
            ctx.out.info(&format!(
                "the CA refused the order as a replacement ({problem}): ordering without \"replaces\""
            ));
            payload
                .as_object_mut()
                .map(|fields| fields.remove("replaces"));
            acme.post(ctx.key, KeyRef::Kid(&account), &new_order, Some(&payload))?
        }
        other => other?,
    };
    let order: Order = response.json(&new_order)?;
    pending.order_url = response
        .location
        .ok_or_else(|| Error::Internal("newOrder gave no order URL".into()))?;
    pending.authorization_url = order.authorizations.first().cloned();
    pending.finalize_url = Some(order.finalize);
    pending.created = crate::clock::now();
    ctx.save(pending)?;
    ctx.out.info(&format!("order {}", pending.order_url));
    Ok(())
}

fn fetch_authorization(
    ctx: &Ctx<'_>,
    acme: &mut AcmeClient,
    pending: &mut Pending,
) -> Result<(), Error> {
    let authz_url = match pending.authorization_url.clone() {
        Some(url) => url,
        None => {
            let (order, _) =
                acme.fetch::<Order>(ctx.key, &pending.account_url, &pending.order_url)?;
            order
                .authorizations
                .first()
                .cloned()
                .ok_or_else(|| Error::Internal("the order has no authorization".into()))?
        }
    };
    let (authz, _) = acme.fetch::<Authorization>(ctx.key, &pending.account_url, &authz_url)?;
    pending.authorization_url = Some(authz_url);
    if authz.status == Status::Valid {
        // Already validated (an earlier order's authorization is reused): nothing to answer.
        pending.challenge_url = Some(String::new());
        pending.challenge_posted = true;
        pending.validated = true;
        ctx.out
            .info("the CA already holds a valid authorization for this address");
        return ctx.save(pending);
    }
    let challenge = authz.email_reply().ok_or_else(|| {
        Error::CaRefused(format!(
            "the CA offers no email-reply-00 challenge for {}",
            ctx.settings.email
        ))
    })?;
    let token = challenge
        .token
        .clone()
        .ok_or_else(|| Error::CaRefused("the email-reply-00 challenge has no token".into()))?;
    let from = match &challenge.from {
        Some(from) => from.clone(),
        None => return Err(Error::CaRefused(
            "the email-reply-00 challenge does not say which address the challenge mail comes from"
                .into(),
        )),
    };
    pending.challenge_url = Some(challenge.url.clone());
    pending.token_part2 = Some(token);
    pending.challenge_from = Some(from);
    pending.challenge_posted = challenge.status != Status::Pending;
    ctx.save(pending)
}

pub(super) fn key_path(ctx: &Ctx<'_>) -> PathBuf {
    ctx.pending_path.with_extension("key.pem")
}

/// Makes the certificate key (or takes the one to certify again) and saves it before finalize.
fn make_key(ctx: &Ctx<'_>, pending: &mut Pending, reuse: Option<&[u8]>) -> Result<Vec<u8>, Error> {
    let der = match reuse {
        Some(der) => der.to_vec(),
        None => {
            ctx.out
                .phase(&format!("generating a {} key", ctx.settings.key_type));
            keys::generate(ctx.settings.key_type)?
        }
    };
    let path = key_path(ctx);
    store::write_atomic(&path, pem::private_key(&der).as_bytes())?;
    pending.key_file = Some(path);
    ctx.save(pending)?;
    Ok(der)
}

/// The key made for this order: in memory, else read back from the state folder.
fn saved_key(ctx: &Ctx<'_>, made: &mut Option<Vec<u8>>) -> Result<Vec<u8>, Error> {
    if let Some(der) = made {
        return Ok(der.clone());
    }
    let path = key_path(ctx);
    let der = store::read_optional(&path, 64 * 1024)?
        .and_then(|pem| pem::private_key_der(&pem))
        .ok_or_else(|| {
            Error::Internal(format!(
                "the key of the order under way ({}) is missing or damaged",
                path.display()
            ))
        })?;
    *made = Some(der.clone());
    Ok(der)
}

/// Sends the CSR and waits for the order to be valid; its certificate URL is saved.
fn finalize(
    ctx: &Ctx<'_>,
    acme: &mut AcmeClient,
    pending: &mut Pending,
    pkcs8: &[u8],
) -> Result<(), Error> {
    let settings = ctx.settings;
    // A fresh key of its own: never the account key.
    let key_pair = keys::load(settings.key_type, pkcs8)?;
    let account = pending.account_url.clone();
    let csr = keys::csr(
        &settings.email,
        settings.key_type,
        settings.usage,
        &key_pair,
    )?;
    let body = json!({"csr": jws::b64u(csr)});
    let finalize_url = match pending.finalize_url.clone() {
        Some(url) => url,
        None => {
            acme.fetch::<Order>(ctx.key, &account, &pending.order_url)?
                .0
                .finalize
        }
    };
    ctx.out.phase("sending the certificate request");
    // The order should be ready now; if it is not (or was finalized before a kill), look.
    let (mut order, mut retry_after) =
        match acme.post(ctx.key, KeyRef::Kid(&account), &finalize_url, Some(&body)) {
            Ok(response) => (response.json::<Order>(&finalize_url)?, response.retry_after),
            Err(AcmeError::Problem(p)) if p.is("orderNotReady") => {
                let (order, response) =
                    acme.fetch::<Order>(ctx.key, &account, &pending.order_url)?;
                (order, response.retry_after)
            }
            Err(e) => return Err(e.into()),
        };
    let mut poll = Backoff::new(
        std::time::Duration::from_millis(500),
        std::time::Duration::from_secs(10),
    );
    loop {
        match order.status {
            Status::Valid => {
                let url = order.certificate.ok_or_else(|| {
                    Error::CaRefused("the valid order has no certificate URL".into())
                })?;
                pending.certificate_url = Some(url);
                return ctx.save(pending);
            }
            Status::Ready => {
                let response =
                    acme.post(ctx.key, KeyRef::Kid(&account), &finalize_url, Some(&body))?;
                order = response.json(&finalize_url)?;
                retry_after = response.retry_after;
                continue;
            }
            Status::Pending | Status::Processing => {}
            status => {
                let reason = order
                    .error
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "no reason given".into());
                return Err(Error::CaRefused(format!(
                    "the order became {status}: {reason}"
                )));
            }
        }
        ctx.timed_out("the CA did not issue the certificate")?;
        poll.wait_at_least(retry_after);
        ctx.sleep(poll.left());
        let (next, response) = acme.fetch::<Order>(ctx.key, &account, &pending.order_url)?;
        (order, retry_after) = (next, response.retry_after);
    }
}

fn download(
    ctx: &Ctx<'_>,
    acme: &mut AcmeClient,
    pending: &Pending,
) -> Result<Vec<Vec<u8>>, Error> {
    let url = pending.certificate_url.clone().unwrap_or_default();
    ctx.out.phase("downloading the certificate");
    let response = acme.post(ctx.key, KeyRef::Kid(&pending.account_url), &url, None)?;
    certificate::parse_pem_chain(&response.body).map_err(|e| Error::CaRefused(e.to_string()))
}
