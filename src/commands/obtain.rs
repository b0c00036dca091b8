//! `smime-acme obtain EMAIL`: account, order, challenge mail, reply, validation, key and CSR,
//! finalize, download, checks, and the saved bundle. Drives the IO adapters; every step with an
//! effect outside the process is saved first (`issuance::Pending`), so a rerun resumes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::acme::client::{AcmeClient, AcmeError};
use crate::acme::jws::{self, AccountKey, KeyRef, Signer};
use crate::acme::types::{Authorization, Challenge, Identifier, Order, Status};
use crate::bundle;
use crate::certificate::{self, CertInfo};
use crate::challenge::authenticity::{AuthFailure, ChallengeAuth};
use crate::challenge::mail::{self, ChallengeMail, Expected, Rejection};
use crate::challenge::response::{self, Reply};
use crate::commands::Outcome;
use crate::issuance::{Pending, Step};
use crate::keys;
use crate::mail::dkim::Verifier;
use crate::mail::imap::Mailbox;
use crate::mail::smtp::{self, Submission};
use crate::output::Output;
use crate::secrets;
use crate::settings::{ChallengeTiming, ObtainSettings};
use crate::store::{self, Store};
use crate::{Error, account};
use rcgen::PublicKeyData;

/// With `challenge-timing = auto`: how long to wait for the mail before POSTing the challenge
/// for servers that send the mail only then.
const FIRST_WAIT: Duration = Duration::from_secs(15);
/// How long one IDLE (or poll) lasts before the folders are checked again.
const WAIT_SLICE: Duration = Duration::from_secs(5);
/// Right after the order, when a CA's mail is expected, the folders are checked this often
/// rather than waiting for IDLE (Dovecot, for one, holds IDLE notices back for half a second).
const FAST_POLL: Duration = Duration::from_millis(50);
const FAST_WINDOW: Duration = Duration::from_secs(10);
/// Answered Message-IDs remembered per mailbox.
const ANSWERED_KEPT: usize = 200;

/// What a renewal adds to an issuance.
#[derive(Debug)]
pub struct Renewal {
    /// The RFC 9773 identifier of the certificate being replaced (sent when the CA offers ARI).
    pub replaces: Option<String>,
    /// The key to certify again (PKCS#8), instead of a fresh one.
    pub key: Option<Vec<u8>>,
    /// The connection to the CA opened for its renewal information, to go on with.
    pub acme: Option<AcmeClient>,
}

/// Runs `obtain`.
pub fn run(settings: &ObtainSettings, out: &Output) -> Result<Outcome, Error> {
    let store = Store::new(&settings.state_dir);
    let _lock = store.lock_wait(&settings.email, settings.wait_lock)?;
    issue(settings, &store, None, out)
}

/// Gets a certificate for `settings.email`, as a renewal when `renewal` is given (then nothing
/// is asked on the terminal); the caller holds the mailbox's lock.
pub fn issue(
    settings: &ObtainSettings,
    store: &Store,
    mut renewal: Option<Renewal>,
    out: &Output,
) -> Result<Outcome, Error> {
    let deadline = Instant::now() + settings.timeout;
    let extra_roots = match &settings.ca_bundle {
        Some(path) => crate::tls::load_bundle(path)?,
        None => Vec::new(),
    };
    let tls = crate::tls::client_config(&extra_roots);
    let password = secrets::mail_password(&settings.password, &settings.imap_user)?;
    let p12_password =
        secrets::p12_password(settings.p12_password_file.as_deref(), renewal.is_none())?;
    if settings.challenge_auth == ChallengeAuth::None {
        out.warn("--challenge-auth none: challenge mails are answered without checking they come from the CA (insecure)");
    }

    let mut acme = match renewal.as_mut().and_then(|r| r.acme.take()) {
        Some(acme) => acme,
        None => {
            out.phase(&format!("contacting the CA at {}", settings.server));
            AcmeClient::connect(&settings.server, Arc::clone(&tls))?
        }
    };
    let registration = account::Registration {
        contacts: vec![settings.email.clone()],
        agree_tos: settings.agree_tos,
        eab: settings.eab.clone(),
    };
    let (key, account_url) =
        account::load_or_register(&mut acme, store, &settings.server, &registration, out)?;

    out.phase(&format!(
        "logging in to {} as {}",
        settings.imap, settings.imap_user
    ));
    let mut mailbox = Mailbox::open(
        &settings.imap,
        settings.imap_security,
        Arc::clone(&tls),
        &settings.imap_user,
        &password,
    )?;
    out.debug(&format!(
        "IMAP server {} IDLE",
        if mailbox.has_idle() {
            "offers"
        } else {
            "does not offer"
        }
    ));

    let pending_path = store.pending_file(&settings.email);
    let mut pending = match resume(&mut acme, &key, &pending_path, settings, out)? {
        Some(pending) => pending,
        None => new_order(
            &mut acme,
            &key,
            &account_url,
            &mut mailbox,
            &pending_path,
            settings,
            renewal.as_ref().and_then(|r| r.replaces.as_deref()),
            out,
        )?,
    };
    // Logged in to SMTP before the authorization is fetched: when the mail comes, only the
    // message transfer is left (a CA may send the mail as soon as it hands out the challenge).
    let mut sender = smtp::Sender::new(Submission {
        server: &settings.smtp,
        security: settings.smtp_security,
        user: &settings.smtp_user,
        password: &password,
        extra_roots: &extra_roots,
    });
    if !pending.reply_sent {
        out.phase(&format!(
            "logging in to {} as {} for the reply",
            settings.smtp, settings.smtp_user
        ));
        sender.login()?;
    }
    let ctx = Ctx {
        settings,
        out,
        key: &key,
        store,
        pending_path: &pending_path,
        deadline,
    };

    let mut validated = false;
    loop {
        match pending.next_step() {
            Step::FetchAuthorization => fetch_authorization(&ctx, &mut acme, &mut pending)?,
            Step::AnswerMail => answer_mail(
                &ctx,
                &mut acme,
                &mut mailbox,
                &mut sender,
                &mut pending,
                &password,
                &tls,
            )?,
            Step::PostChallenge => {
                out.info("challenge timing: the reply went out first, now the CA is told");
                // Servers that validate at once say so in the answer: no need to poll.
                validated = post_challenge(&ctx, &mut acme, &mut pending)? == Status::Valid;
            }
            Step::AwaitValidation => break,
        }
    }
    mailbox.logout();
    if !validated {
        await_validation(&ctx, &mut acme, &pending)?;
    }
    let (chain, key_pkcs8) = finalize(
        &ctx,
        &mut acme,
        &mut pending,
        renewal.as_ref().and_then(|r| r.key.as_deref()),
    )?;
    let mut outcome = save(&ctx, &chain, &key_pkcs8, &p12_password)?;
    let _ = std::fs::remove_file(&pending_path);
    if let Some(key_file) = &pending.key_file {
        let _ = std::fs::remove_file(key_file);
    }
    outcome.json[0]["http_requests"] = json!(acme.requests());
    outcome.json[0]["reply_sent_at_unix_ms"] = json!(pending.reply_sent_at);
    Ok(outcome)
}

struct Ctx<'a> {
    settings: &'a ObtainSettings,
    out: &'a Output,
    key: &'a AccountKey,
    store: &'a Store,
    pending_path: &'a std::path::Path,
    deadline: Instant,
}

impl Ctx<'_> {
    fn save(&self, pending: &Pending) -> Result<(), Error> {
        Ok(store::write_json(self.pending_path, pending)?)
    }

    fn timed_out(&self, what: &str) -> Result<(), Error> {
        if Instant::now() >= self.deadline {
            return Err(Error::TimedOut(format!(
                "{what} (gave up after {}s; see --timeout)",
                self.settings.timeout.as_secs()
            )));
        }
        Ok(())
    }

    fn sleep(&self, wanted: Duration) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(wanted.min(left));
    }
}

/// The saved issuance, if its order can still be used.
fn resume(
    acme: &mut AcmeClient,
    key: &AccountKey,
    path: &std::path::Path,
    settings: &ObtainSettings,
    out: &Output,
) -> Result<Option<Pending>, Error> {
    let Some(pending) = store::read_json::<Pending>(path)? else {
        return Ok(None);
    };
    if pending.server != settings.server
        || pending.email != settings.email
        || pending.order_url.is_empty()
    {
        return Ok(None);
    }
    match acme.fetch::<Order>(key, &pending.account_url, &pending.order_url) {
        Ok((order, _))
            if !matches!(
                order.status,
                Status::Invalid | Status::Expired | Status::Deactivated | Status::Revoked
            ) =>
        {
            out.info(&format!(
                "resuming order {} ({})",
                pending.order_url, order.status
            ));
            Ok(Some(pending))
        }
        Ok((order, _)) => {
            out.info(&format!(
                "the saved order is {}: starting a new one",
                order.status
            ));
            Ok(None)
        }
        Err(e) => {
            out.info(&format!(
                "the saved order cannot be used ({e}): starting a new one"
            ));
            Ok(None)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn new_order(
    acme: &mut AcmeClient,
    key: &AccountKey,
    account_url: &str,
    mailbox: &mut Mailbox,
    path: &std::path::Path,
    settings: &ObtainSettings,
    replaces: Option<&str>,
    out: &Output,
) -> Result<Pending, Error> {
    // Where new mail starts, before the order exists: its challenge mail comes after.
    let mut pending = Pending {
        email: settings.email.clone(),
        server: settings.server.clone(),
        account_url: account_url.to_owned(),
        ..Pending::default()
    };
    for folder in &settings.folders {
        pending.marks.insert(folder.clone(), mailbox.mark(folder)?);
    }
    // Saved before the order exists, so that mail arriving from here on counts as new.
    store::write_json(path, &pending)?;
    out.phase(&format!("ordering a certificate for {}", settings.email));
    let new_order = acme.directory.new_order.clone();
    let mut payload = json!({"identifiers": [Identifier::email(&settings.email)]});
    let replaces = replaces.filter(|_| acme.directory.renewal_info.is_some());
    if let Some(id) = replaces {
        payload["replaces"] = json!(id);
    }
    let response = match acme.post(key, KeyRef::Kid(account_url), &new_order, Some(&payload)) {
        // Some CAs refuse `replaces` (already replaced, or not understood): order without it.
        Err(AcmeError::Problem(problem)) if replaces.is_some() => {
            out.info(&format!(
                "the CA refused the order as a replacement ({problem}): ordering without \"replaces\""
            ));
            payload
                .as_object_mut()
                .map(|fields| fields.remove("replaces"));
            acme.post(key, KeyRef::Kid(account_url), &new_order, Some(&payload))?
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
    store::write_json(path, &pending)?;
    out.info(&format!("order {}", pending.order_url));
    Ok(pending)
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
        pending.answered_message_id = Some(String::new());
        pending.challenge_posted = true;
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

fn post_challenge(
    ctx: &Ctx<'_>,
    acme: &mut AcmeClient,
    pending: &mut Pending,
) -> Result<Status, Error> {
    let url = pending.challenge_url.clone().unwrap_or_default();
    // Saved first: a rerun does not POST twice (a second POST would only ask for a retry).
    pending.challenge_posted = true;
    ctx.save(pending)?;
    ctx.out.phase("telling the CA the challenge is answered");
    let response = acme.post(
        ctx.key,
        KeyRef::Kid(&pending.account_url),
        &url,
        Some(&json!({})),
    )?;
    let challenge: Challenge = response.json(&url)?;
    Ok(challenge.status)
}

fn answered_path(ctx: &Ctx<'_>) -> std::path::PathBuf {
    ctx.pending_path.with_extension("answered.json")
}

#[allow(clippy::too_many_arguments)]
fn answer_mail(
    ctx: &Ctx<'_>,
    acme: &mut AcmeClient,
    mailbox: &mut Mailbox,
    sender: &mut smtp::Sender<'_>,
    pending: &mut Pending,
    password: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(), Error> {
    let settings = ctx.settings;
    let from = pending.challenge_from.clone().unwrap_or_default();
    let expected = Expected {
        email: &settings.email,
        from: &from,
    };
    let verifier = match settings.challenge_auth {
        ChallengeAuth::Dkim => {
            Some(Verifier::new(settings.dns_server).map_err(|e| Error::Usage(e.to_string()))?)
        }
        _ => None,
    };
    let mut answered: Vec<String> = store::read_json(&answered_path(ctx))?.unwrap_or_default();
    if settings.challenge_timing == ChallengeTiming::PostFirst && !pending.challenge_posted {
        ctx.out
            .info("challenge timing post-first: telling the CA before the mail arrives");
        post_challenge(ctx, acme, pending)?;
    }
    let started = Instant::now();
    let mut judged: HashSet<(String, u32)> = HashSet::new();
    ctx.out
        .phase(&format!("waiting for the challenge mail from {from}"));
    loop {
        // Every new mail is judged (and a rejection logged) before one is answered.
        let mut chosen: Option<(String, u32, mail::Accepted)> = None;
        for folder in &settings.folders {
            let mark = pending
                .marks
                .get(folder)
                .copied()
                .unwrap_or(crate::mail::imap::Mark {
                    uid_validity: 0,
                    uid_next: 1,
                });
            let mails = match mailbox.fetch_new(folder, mark) {
                Ok(mails) => mails,
                Err(e) => {
                    ctx.out.warn(&format!("IMAP: {e}; reconnecting"));
                    *mailbox = reconnect(ctx, tls, password)?;
                    continue;
                }
            };
            for (uid, raw) in mails {
                if !judged.insert((folder.clone(), uid)) {
                    continue;
                }
                let parsed = ChallengeMail::parse(&raw);
                let verdict = mail::judge_headers(&parsed, expected).and_then(|_| {
                    let dkim = verifier
                        .as_ref()
                        .map(|v| v.verify(&raw))
                        .unwrap_or_default();
                    mail::judge(&parsed, expected, &settings.challenge_auth, &dkim)
                });
                let subject = parsed.subject.as_deref().unwrap_or("(no subject)");
                match verdict {
                    Ok(accepted) if answered.contains(&accepted.message_id) => {
                        ctx.out.info(&format!(
                            "ignored mail {uid} in {folder} ({subject:?}): already answered"
                        ));
                    }
                    Ok(_) if chosen.is_some() => ctx.out.info(&format!(
                        "mail {uid} in {folder} is also a valid challenge; only one is answered"
                    )),
                    Ok(accepted) => chosen = Some((folder.clone(), uid, accepted)),
                    Err(Rejection::NotAuthentic(AuthFailure::DkimTemporary(reason))) => {
                        ctx.out.warn(&format!(
                            "mail {uid} in {folder}: DKIM key lookup failed ({reason}); will retry"
                        ));
                        judged.remove(&(folder.clone(), uid));
                    }
                    Err(reason) => ctx.out.info(&format!(
                        "ignored mail {uid} in {folder} ({subject:?}): {reason}"
                    )),
                }
            }
        }
        if let Some((folder, uid, accepted)) = chosen {
            ctx.out.info(&format!(
                "challenge mail {uid} in {folder} accepted after {} ms",
                started.elapsed().as_millis()
            ));
            // Recorded before the reply goes out: never answered twice, even after a kill.
            pending.token_part1 = Some(accepted.token_part1.clone());
            pending.answered_message_id = Some(accepted.message_id.clone());
            ctx.save(pending)?;
            answered.push(accepted.message_id.clone());
            let excess = answered.len().saturating_sub(ANSWERED_KEPT);
            answered.drain(..excess);
            store::write_json(&answered_path(ctx), &answered)?;
            send_reply(ctx, sender, pending, &accepted)?;
            if let Err(e) = mailbox.mark_seen(&folder, uid) {
                ctx.out
                    .warn(&format!("could not mark the challenge mail seen: {e}"));
            }
            return Ok(());
        }
        if settings.challenge_timing == ChallengeTiming::Auto
            && !pending.challenge_posted
            && started.elapsed() >= FIRST_WAIT
        {
            ctx.out.info(&format!("no challenge mail after {}s: telling the CA now, for servers that send the mail only then", FIRST_WAIT.as_secs()));
            post_challenge(ctx, acme, pending)?;
            ctx.out
                .phase(&format!("waiting for the challenge mail from {from}"));
        }
        ctx.timed_out(&format!(
            "no challenge mail from {from} reached {}",
            settings.email
        ))?;
        if started.elapsed() < FAST_WINDOW {
            ctx.sleep(FAST_POLL);
            continue;
        }
        let slice = WAIT_SLICE.min(ctx.deadline.saturating_duration_since(Instant::now()));
        if let Err(e) = mailbox.wait("INBOX", slice) {
            ctx.out.warn(&format!("IMAP: {e}; reconnecting"));
            *mailbox = reconnect(ctx, tls, password)?;
        }
    }
}

fn reconnect(
    ctx: &Ctx<'_>,
    tls: &Arc<rustls::ClientConfig>,
    password: &str,
) -> Result<Mailbox, Error> {
    let s = ctx.settings;
    let mut delay = Duration::from_secs(1);
    loop {
        match Mailbox::open(
            &s.imap,
            s.imap_security,
            Arc::clone(tls),
            &s.imap_user,
            password,
        ) {
            Ok(mailbox) => return Ok(mailbox),
            Err(e @ crate::mail::MailError::Login { .. }) => return Err(e.into()),
            Err(e) => {
                ctx.timed_out(&format!("the IMAP server stayed unreachable ({e})"))?;
                ctx.out
                    .warn(&format!("{e}; retrying in {}s", delay.as_secs()));
                ctx.sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn send_reply(
    ctx: &Ctx<'_>,
    sender: &mut smtp::Sender<'_>,
    pending: &mut Pending,
    accepted: &mail::Accepted,
) -> Result<(), Error> {
    let settings = ctx.settings;
    let part2 = pending.token_part2.clone().unwrap_or_default();
    let mode = settings.token_join;
    let token = response::join_tokens(&accepted.token_part1, &part2, mode)
        .map_err(|e| Error::CaRefused(e.to_string()))?;
    let agree = if response::join_modes_agree(&accepted.token_part1) {
        "both join modes agree for this token"
    } else {
        "the join modes differ for this token"
    };
    ctx.out
        .info(&format!("token parts joined as {} ({agree})", mode.name()));
    let digest = response::response_digest(&response::key_authorization(
        &token,
        &ctx.key.jwk().thumbprint(),
    ));
    let mut random = [0u8; 12];
    jws::random_bytes(&mut random)?;
    let domain = mail::domain_of(&settings.email);
    let message_id = format!("{}.{}@{domain}", crate::clock::now(), jws::b64u(random));
    let date = crate::clock::rfc5322(crate::clock::now());
    let reply = Reply {
        from: &settings.email,
        to: &accepted.reply_to,
        token_part1: &accepted.token_part1,
        in_reply_to: &accepted.message_id,
        message_id: &message_id,
        date: &date,
        digest: &digest,
    };
    ctx.out.phase(&format!(
        "replying to {} through {}",
        accepted.reply_to, settings.smtp
    ));
    sender.send(&settings.email, &accepted.reply_to, &reply.to_bytes())?;
    pending.reply_sent = true;
    pending.reply_sent_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64);
    ctx.save(pending)?;
    ctx.out.info("reply accepted by the SMTP server");
    Ok(())
}

fn await_validation(ctx: &Ctx<'_>, acme: &mut AcmeClient, pending: &Pending) -> Result<(), Error> {
    let url = pending.authorization_url.clone().unwrap_or_default();
    ctx.out.phase("waiting for the CA to check the reply");
    let mut delay = Duration::from_millis(500);
    loop {
        let (authz, response) = acme.fetch::<Authorization>(ctx.key, &pending.account_url, &url)?;
        match authz.status {
            Status::Valid => return Ok(()),
            Status::Pending | Status::Processing => {}
            status => {
                let reason = authz
                    .email_reply()
                    .and_then(|c| c.error.as_ref())
                    .map(|p| p.to_string());
                return Err(Error::CaRefused(match reason {
                    Some(reason) => format!("the CA did not accept the reply: {reason}"),
                    None => format!("the authorization became {status} and the CA gave no reason"),
                }));
            }
        }
        ctx.timed_out("the CA did not finish checking the reply")?;
        ctx.sleep(response.retry_after.unwrap_or(delay));
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Makes the key (saved before finalize), finalizes, and downloads the chain.
fn finalize(
    ctx: &Ctx<'_>,
    acme: &mut AcmeClient,
    pending: &mut Pending,
    reuse: Option<&[u8]>,
) -> Result<(Vec<Vec<u8>>, Vec<u8>), Error> {
    let settings = ctx.settings;
    let key_path = ctx.pending_path.with_extension("key.pem");
    let pkcs8 = match store::read_optional(&key_path, 64 * 1024)?
        .and_then(|pem| bundle::pem_private_key_der(&pem))
    {
        Some(der) if pending.key_file.is_some() => der,
        _ => {
            let der = match reuse {
                Some(der) => der.to_vec(),
                None => {
                    ctx.out
                        .phase(&format!("generating a {} key", settings.key_type));
                    keys::generate(settings.key_type)?
                }
            };
            store::write_atomic(&key_path, bundle::pem_private_key(&der).as_bytes())?;
            pending.key_file = Some(key_path.clone());
            ctx.save(pending)?;
            der
        }
    };
    // A fresh key of its own: never the account key.
    let key_pair = keys::load(settings.key_type, &pkcs8)?;
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
    let mut delay = Duration::from_millis(500);
    loop {
        match order.status {
            Status::Valid => {
                let url = order.certificate.ok_or_else(|| {
                    Error::CaRefused("the valid order has no certificate URL".into())
                })?;
                ctx.out.phase("downloading the certificate");
                let response = acme.post(ctx.key, KeyRef::Kid(&account), &url, None)?;
                let chain = certificate::parse_pem_chain(&response.body)
                    .map_err(|e| Error::CaRefused(e.to_string()))?;
                return Ok((chain, pkcs8));
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
        ctx.sleep(retry_after.unwrap_or(delay));
        delay = (delay * 2).min(Duration::from_secs(10));
        let (next, response) = acme.fetch::<Order>(ctx.key, &account, &pending.order_url)?;
        (order, retry_after) = (next, response.retry_after);
    }
}

/// Checks the chain and saves key, certificates and the PKCS#12 in a new folder.
fn save(
    ctx: &Ctx<'_>,
    chain: &[Vec<u8>],
    pkcs8: &[u8],
    p12_password: &Option<String>,
) -> Result<Outcome, Error> {
    let settings = ctx.settings;
    let key_pair = keys::load(settings.key_type, pkcs8)?;
    let issued: CertInfo = certificate::check(chain, key_pair.der_bytes(), &settings.email)
        .map_err(|e| {
            Error::CaRefused(format!(
                "{e}; the key is kept in {}",
                ctx.pending_path.with_extension("key.pem").display()
            ))
        })?;
    let (password, generated) = match p12_password {
        Some(p) => (p.clone(), false),
        None => (bundle::generate_password(), true),
    };
    let p12 = bundle::pkcs12(
        &settings.email,
        pkcs8,
        chain,
        &password,
        settings.p12_format,
    )?;
    bundle::check_pkcs12(&p12, &password, &chain[0])?;

    let folder_name = format!("{}-{}", crate::clock::now(), issued.short_serial());
    let dir = ctx.store.certs_dir(&settings.email).join(&folder_name);
    let p12_name = format!("{}.p12", store::safe_name(&settings.email));
    let files = [
        (
            "key",
            "key.pem",
            bundle::pem_private_key(pkcs8).into_bytes(),
        ),
        (
            "certificate",
            "cert.pem",
            bundle::pem_chain(&chain[..1]).into_bytes(),
        ),
        (
            "chain",
            "chain.pem",
            bundle::pem_chain(&chain[1..]).into_bytes(),
        ),
        (
            "fullchain",
            "fullchain.pem",
            bundle::pem_chain(chain).into_bytes(),
        ),
        ("p12", p12_name.as_str(), p12.clone()),
    ];
    let mut paths = serde_json::Map::new();
    for (label, name, bytes) in &files {
        let path = dir.join(name);
        store::write_new(&path, bytes)?;
        paths.insert((*label).to_owned(), json!(path));
    }
    if generated {
        let path = dir.join("p12-password");
        store::write_new(&path, format!("{password}\n").as_bytes())?;
        paths.insert("p12_password".into(), json!(path));
    }
    store::write_atomic(
        &ctx.store.certs_dir(&settings.email).join("current"),
        format!("{folder_name}\n").as_bytes(),
    )?;
    store::write_json(
        &ctx.store.settings_file(&settings.email),
        &crate::settings::to_config(settings),
    )?;
    if let Some(out_path) = &settings.out {
        store::write_atomic(out_path, &p12)?;
        paths.insert("out".into(), json!(out_path));
    }
    let p12_path = dir.join(&p12_name);
    let mut human = format!(
        "Certificate for {} issued.\n  serial     {}\n  issuer     {}\n  valid to   {}\n  SHA-256    {}\n  PKCS#12    {} ({})\n",
        settings.email,
        issued.serial,
        issued.issuer,
        issued.not_after_rfc3339(),
        issued.sha256,
        p12_path.display(),
        settings.p12_format,
    );
    if generated {
        human.push_str(&format!(
            "  password   in {} (generated)\n",
            dir.join("p12-password").display()
        ));
    }
    if let Some(out_path) = &settings.out {
        human.push_str(&format!("  copy       {}\n", out_path.display()));
    }
    let json = json!({
        "status": "issued",
        "email": settings.email,
        "serial": issued.serial,
        "issuer": issued.issuer,
        "not_after": issued.not_after_rfc3339(),
        "sha256_fingerprint": issued.sha256,
        "key_type": settings.key_type.name(),
        "p12_format": settings.p12_format.to_string(),
        "folder": dir,
        "files": paths,
    });
    Ok(Outcome::one(human, json))
}
