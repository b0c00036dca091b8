//! `smime-acme obtain EMAIL`: account, order, challenge mail, reply, validation, key and CSR,
//! finalize, download, checks, and the saved bundle. Drives the IO adapters; every step with an
//! effect outside the process is saved first (`issuance::Pending`), so a rerun resumes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::acme::client::{AcmeClient, AcmeError};
use crate::acme::jws::{self, AccountKey, KeyRef};
use crate::acme::types::{Authorization, Identifier, Order, Status};
use crate::bundle;
use crate::certificate::{self, CertInfo};
use crate::challenge::authenticity::ChallengeAuth;
use crate::commands::Outcome;
use crate::issuance::watch::{self, Ctx, MailSide};
use crate::issuance::{Pending, Step};
use crate::keys;
use crate::mail::MailError;
use crate::mail::imap::Mailbox;
use crate::mail::smtp::{self, Submission};
use crate::output::Output;
use crate::secrets;
use crate::settings::ObtainSettings;
use crate::store::{self, Store};
use crate::{Error, account};
use rcgen::PublicKeyData;

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
    let deadline = Instant::now()
        .checked_add(settings.timeout)
        .ok_or_else(|| Error::Usage("--timeout is too long".into()))?;
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
    acme.set_deadline(deadline);
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
        Some(deadline),
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
        Resumed::Order(pending) => *pending,
        Resumed::Fresh => new_order(
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
    })
    .until(deadline);
    if !pending.validated && !pending.replied() {
        out.phase(&format!(
            "logging in to {} as {} for the reply",
            settings.smtp, settings.smtp_user
        ));
        match sender.login() {
            // Not reachable now: the reply is sent (and retried) when the mail comes.
            Err(e @ MailError::Connect { .. }) => out.warn(&format!("{e}; trying again later")),
            other => other?,
        }
    }
    let ctx = Ctx {
        settings,
        out,
        key: &key,
        store,
        pending_path: &pending_path,
        deadline,
    };

    loop {
        match pending.next_step() {
            Step::FetchAuthorization => fetch_authorization(&ctx, &mut acme, &mut pending)?,
            Step::Validate => {
                let mail = MailSide {
                    mailbox: &mut mailbox,
                    sender: &mut sender,
                    password: &password,
                    tls: &tls,
                };
                watch::validate(&ctx, &mut acme, mail, &mut pending)?;
            }
            Step::Finalize => break,
        }
    }
    mailbox.logout();
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
    outcome.json[0]["reply_sent_at_unix_ms"] = json!(pending.first_sent_at());
    outcome.json[0]["challenge_mails_answered"] = json!(pending.answers.len());
    Ok(outcome)
}

/// What the saved issuance allows.
enum Resumed {
    /// Its order goes on.
    Order(Box<Pending>),
    /// A new order is to be made.
    Fresh,
}

/// The saved issuance, if its order can still be used. A CA that cannot be reached now ends
/// the run with the record kept; a record holding replies or a POST is never thrown away
/// unless its order is over.
fn resume(
    acme: &mut AcmeClient,
    key: &AccountKey,
    path: &std::path::Path,
    settings: &ObtainSettings,
    out: &Output,
) -> Result<Resumed, Error> {
    let Some(pending) = store::read_json::<Pending>(path)? else {
        return Ok(Resumed::Fresh);
    };
    let pending = pending.resumed();
    if !crate::challenge::mail::same_address(&pending.email, &settings.email)
        || pending.order_url.is_empty()
    {
        return Ok(Resumed::Fresh);
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
        return Ok(Resumed::Fresh);
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
            Ok(Resumed::Order(Box::new(pending)))
        }
        Ok((order, _)) => {
            out.info(&format!(
                "the saved order is {}: starting a new one",
                order.status
            ));
            store::remove(path)?;
            Ok(Resumed::Fresh)
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
            out.info(&format!(
                "the saved order cannot be used ({e}): starting a new one"
            ));
            Ok(Resumed::Fresh)
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
    // A record holding replies or a POST is never replaced: `resume` removes it once its order
    // is over (the Message-IDs it answered stay in the answered list).
    if store::read_json::<Pending>(path)?.is_some_and(|old| old.has_effects()) {
        return Err(Error::Internal(format!(
            "{} holds an issuance under way; it is not replaced",
            path.display()
        )));
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
