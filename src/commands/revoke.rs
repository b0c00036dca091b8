//! `smime-acme revoke <EMAIL | --cert FILE>`: revokeCert (RFC 8555 §7.6) signed by the account
//! key or by the certificate's own key, with a reason only when one is given (the S/MIME BR
//! forbid "unspecified"); then the certificate is marked revoked in the state folder.

use serde_json::json;

use super::{Held, Outcome};
use crate::acme::client::AcmeError;
use crate::acme::jws::{self, CertKey, KeyRef};
use crate::acme::types::RevocationReason;
use crate::cli::{GlobalArgs, RevokeArgs};
use crate::output::Output;
use crate::settings::{self, ConfigFile, ServerConfig};
use crate::store::{self, Store};
use crate::{Error, account, certificate, clock, pem};

pub fn run(
    global: &GlobalArgs,
    args: &RevokeArgs,
    config: &ConfigFile,
    out: &Output,
) -> Result<Outcome, Error> {
    let store = Store::new(settings::state_dir(global.state_dir.as_deref())?);
    // The certificate, and its folder when the state folder holds it.
    let (der, held) = match (&args.email, &args.cert) {
        (Some(email), _) => {
            let held = Held::current(&store, email.trim())?;
            (held.der.clone(), Some(held))
        }
        (None, Some(file)) => {
            let pem = store::read_optional(file, 1024 * 1024)?
                .ok_or_else(|| Error::Usage(format!("{} does not exist", file.display())))?;
            let der = certificate::parse_pem_chain(&pem)
                .map_err(|e| Error::Usage(format!("{}: {e}", file.display())))?
                .swap_remove(0);
            let held = find(&store, &der)?;
            (der, held)
        }
        (None, None) => return Err(Error::Usage("give an address or --cert FILE".into())),
    };
    let info = certificate::describe(&der).map_err(|e| Error::Usage(e.to_string()))?;
    let email = held.as_ref().map(Held::email);
    let _lock = match &email {
        Some(email) => {
            Some(store.lock_wait(email, settings::wait_lock(global.wait_lock.as_deref())?)?)
        }
        None => None,
    };
    // Where it was issued: the flag, else the kept settings, else the configuration file.
    let kept: Option<ConfigFile> = match &email {
        Some(email) => store::read_json(&store.settings_file(email))?,
        None => None,
    };
    let kept_server = kept.map(|k| k.server).unwrap_or_default();
    let flags = ServerConfig {
        url: args.server.clone(),
        ca_bundle: args.ca_bundle.clone(),
        ..ServerConfig::default()
    };
    let ca = settings::ca(&[&flags, &kept_server, &config.server])?;
    let server = ca.server.clone();

    let mut acme = super::Ca::connect(&ca, std::time::Instant::now() + super::fleet::BUDGET, 1)?;
    let url = acme
        .directory
        .revoke_cert
        .clone()
        .ok_or_else(|| Error::CaRefused("the CA offers no revocation".into()))?;
    let mut payload = json!({"certificate": jws::b64u(&der)});
    if let Some(reason) = args.reason.as_deref() {
        let reason: RevocationReason = reason.parse().map_err(Error::Usage)?;
        payload["reason"] = json!(reason.code());
    }
    out.phase(&format!("revoking certificate {}", info.serial));
    let result = if args.sign_with_cert_key {
        let key_file = match (&args.key, &held) {
            (Some(file), _) => file.clone(),
            (None, Some(held)) => held.dir.join("key.pem"),
            (None, None) => {
                return Err(Error::Usage(
                    "the certificate is not in the state folder: give its key with --key FILE"
                        .into(),
                ));
            }
        };
        let pem = store::read_optional(&key_file, 64 * 1024)?
            .ok_or_else(|| Error::Usage(format!("{} does not exist", key_file.display())))?;
        let key = pem::private_key_der(&pem)
            .ok_or_else(|| Error::Usage(format!("{} is not a PEM key", key_file.display())))
            .and_then(|der| Ok(CertKey::from_pkcs8(&der)?))?;
        acme.post(&key, KeyRef::Jwk, &url, Some(&payload))
    } else {
        let (key, account_url) =
            account::load(&store, &server)?.ok_or_else(|| account::no_account(&server))?;
        acme.post(&key, KeyRef::Kid(&account_url), &url, Some(&payload))
    };
    let already = match result {
        Ok(_) => false,
        Err(AcmeError::Problem(p)) if p.is("alreadyRevoked") => true,
        Err(e) => return Err(e.into()),
    };
    let mut human = format!(
        "Certificate {} {}revoked.\n",
        info.serial,
        if already { "was already " } else { "" }
    );
    if let Some(held) = &held
        && held.revoked.is_none()
    {
        let record = json!({
            "serial": info.serial,
            "reason": args.reason,
            "revoked_at": clock::rfc3339(clock::now()),
        });
        store::write_json(&held.dir.join("revoked.json"), &record)?;
        human.push_str(&format!(
            "Marked revoked in {}; renew skips it.\n",
            held.dir.display()
        ));
    }
    if already {
        return Err(Error::CaRefused(format!(
            "certificate {} is already revoked (the CA says alreadyRevoked)",
            info.serial
        )));
    }
    Ok(Outcome::one(
        human,
        json!({"status": "revoked", "email": email, "serial": info.serial, "reason": args.reason}),
    ))
}

/// The state folder's copy of the certificate `der`, if it has one.
fn find(store: &Store, der: &[u8]) -> Result<Option<Held>, Error> {
    for name in store.mailboxes()? {
        for dir in store.history(&name)? {
            if let Ok(held) = Held::read(&dir)
                && held.der == der
            {
                return Ok(Some(held));
            }
        }
    }
    Ok(None)
}
