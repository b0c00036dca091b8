//! The ACME account for a CA: its ES256 key (made on first use, kept 0600 in the state folder)
//! and its URL; registration with contact, terms agreement and external account binding. IO:
//! the state folder, the CA, and the terminal for the terms question.

use serde_json::{Value, json};

use crate::Error;
use crate::acme::client::AcmeClient;
use crate::acme::jws::{self, AccountKey, KeyRef, Signer};
use crate::acme::types::{Account, Status};
use crate::bundle;
use crate::challenge::response;
use crate::output::Output;
use crate::secrets;
use crate::settings::ObtainSettings;
use crate::store::{self, Store};

/// Loads or creates the account key for this server, and the account.
pub fn load_or_register(
    acme: &mut AcmeClient,
    store: &Store,
    settings: &ObtainSettings,
    out: &Output,
) -> Result<(AccountKey, String), Error> {
    let dir = store.account_dir(&settings.server);
    let key_path = dir.join("account.key");
    let info_path = dir.join("account.json");
    let key = match store::read_optional(&key_path, 64 * 1024)? {
        Some(pem) => {
            let der = bundle::pem_private_key_der(&pem).ok_or_else(|| {
                Error::Internal(format!("{} is not a PEM key", key_path.display()))
            })?;
            AccountKey::from_pkcs8(&der)?
        }
        None => {
            let (key, der) = AccountKey::generate()?;
            store::write_atomic(&key_path, bundle::pem_private_key(&der).as_bytes())?;
            out.info(&format!("created an account key in {}", key_path.display()));
            key
        }
    };
    if let Some(info) = store::read_json::<Value>(&info_path)?
        && let Some(url) = info["url"].as_str()
    {
        return Ok((key, url.to_owned()));
    }
    let meta = acme.directory.meta.clone();
    let mut payload = json!({"contact": [format!("mailto:{}", settings.email)]});
    if let Some(terms) = &meta.terms_of_service {
        if !settings.agree_tos && !ask_terms(terms) {
            return Err(Error::Usage(format!(
                "the CA asks you to agree to its terms of service ({terms}): rerun with --agree-tos"
            )));
        }
        payload["termsOfServiceAgreed"] = json!(true);
    }
    let new_account = acme.directory.new_account.clone();
    match &settings.eab {
        Some((kid, file)) => {
            let text = secrets::from_file("external account binding key", file)?;
            let mac = response::decode_lenient(text.trim()).ok_or_else(|| {
                Error::Usage(format!(
                    "{} does not hold a base64url MAC key",
                    file.display()
                ))
            })?;
            payload["externalAccountBinding"] =
                jws::external_account_binding(kid, &mac, &key.jwk(), &new_account)?;
        }
        None if meta.external_account_required => {
            return Err(Error::Usage(
                "the CA requires external account binding: give --eab-kid and --eab-hmac-key-file"
                    .into(),
            ));
        }
        None => {}
    }
    out.phase("registering the ACME account");
    let response = acme.post(&key, KeyRef::Jwk, &new_account, Some(&payload))?;
    let account: Account = response.json(&new_account)?;
    let url = response
        .location
        .clone()
        .ok_or_else(|| Error::Internal("newAccount gave no account URL".into()))?;
    if account.status != Status::Valid {
        return Err(Error::Internal(format!(
            "the new account is {}",
            account.status
        )));
    }
    store::write_json(&info_path, &json!({"server": settings.server, "url": url}))?;
    out.info(&format!("account {url}"));
    Ok((key, url))
}

fn ask_terms(terms: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("Do you agree to the CA's terms of service at {terms}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}
