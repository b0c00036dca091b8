//! `smime-acme obtain EMAIL`: the secrets and the CA account settled first (password prompts,
//! the terms question), then one job for the issuance engine, and its result in words or JSON.

use std::time::Instant;

use serde_json::{Value, json};

use crate::Error;
use crate::commands::{Ca, Outcome};
use crate::issuance::engine::{self, Issued, Job};
use crate::output::Output;
use crate::settings::ObtainSettings;
use crate::store::Store;

/// Runs `obtain`.
pub fn run(settings: &ObtainSettings, out: &Output) -> Result<Outcome, Error> {
    let store = Store::new(&settings.state_dir);
    let _lock = store.lock_wait(&settings.email, settings.wait_lock)?;
    let credentials = super::credentials(settings, true)?;
    let deadline = Instant::now()
        .checked_add(settings.timeout)
        .ok_or_else(|| Error::Usage("--timeout is too long".into()))?;
    out.phase(&format!("contacting the CA at {}", settings.server));
    let ca = Ca::open(
        &settings.ca(),
        vec![settings.email.clone()],
        &store,
        out,
        deadline,
        1,
    )?;
    let mut acme = ca.client.worker();
    let job = Job {
        settings,
        account: &ca.account,
        replaces: None,
        reuse_key: None,
    };
    let issued = engine::issue(&job, &credentials, &mut acme, &store, out)?;
    let (mut human, mut json) = describe(&issued);
    let mut outcome_exit = crate::exit::OK;
    if let Some(hook) = &settings.deploy_hook
        && let Err(reason) = super::deploy(hook, &issued, settings.p12_password_file.as_deref())
    {
        out.warn(&format!("the deploy hook failed: {reason}"));
        human.push_str(&format!("  the deploy hook failed: {reason}\n"));
        json["deploy_hook_error"] = json!(reason);
        outcome_exit = crate::exit::SOME_FAILED;
    }
    let mut outcome = Outcome::one(human, json);
    outcome.exit = outcome_exit;
    Ok(outcome)
}

/// An issued certificate in words and as JSON (obtain's schema, also used by renew and
/// provision).
pub fn describe(issued: &Issued) -> (String, Value) {
    let files = &issued.files;
    let mut human = format!(
        "Certificate for {} issued.\n  serial     {}\n  issuer     {}\n  valid to   {}\n  SHA-256    {}\n  PKCS#12    {} ({})\n",
        issued.email,
        issued.info.serial,
        issued.info.issuer,
        issued.info.not_after_rfc3339(),
        issued.info.sha256,
        files.p12.display(),
        issued.p12_format,
    );
    if let Some(path) = &files.p12_password {
        let how = if files.p12_password_kept {
            "the one kept for the address"
        } else {
            "generated"
        };
        human.push_str(&format!("  password   in {} ({how})\n", path.display()));
    }
    if let Some(path) = &files.out {
        human.push_str(&format!("  copy       {}\n", path.display()));
    }
    let mut paths = json!({
        "key": files.key,
        "certificate": files.certificate,
        "chain": files.chain,
        "fullchain": files.fullchain,
        "p12": files.p12,
    });
    if let Some(path) = &files.p12_password {
        paths["p12_password"] = json!(path);
    }
    if let Some(path) = &files.out {
        paths["out"] = json!(path);
    }
    let json = json!({
        "status": "issued",
        "email": issued.email,
        "serial": issued.info.serial,
        "issuer": issued.info.issuer,
        "not_after": issued.info.not_after_rfc3339(),
        "sha256_fingerprint": issued.info.sha256,
        "key_type": issued.key_type.name(),
        "p12_format": issued.p12_format.to_string(),
        "folder": issued.folder,
        "files": paths,
        "http_requests": issued.http_requests,
        "reply_sent_at_unix_ms": issued.reply_sent_at_unix_ms,
        "challenge_mails_answered": issued.challenge_mails_answered,
    });
    (human, json)
}
