//! The ACME account for a CA: its ES256 key (made on first use, kept 0600 in the state folder)
//! and its URL; registration with contact, terms agreement and external account binding.
//! Registration and key rollover hold the CA's account lock, so that runs started together
//! share one account. Questions (the CA's terms) and secrets (the EAB key) are settled by the
//! command before. IO: the state folder and the CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::Error;
use crate::acme::client::AcmeClient;
use crate::acme::jws::{self, AccountKey, KeyRef, Signer};
use crate::acme::types::{Account, Status};
use crate::issuance::engine::Reporter;
use crate::pem;
use crate::store::{self, Store};

/// What a new account is registered with. Its `Debug` leaves out the MAC key.
#[derive(Default)]
pub struct Registration {
    /// Contact addresses (without `mailto:`).
    pub contacts: Vec<String>,
    /// The user agreed to the CA's terms of service (asked by the command if need be).
    pub agree_tos: bool,
    /// External account binding: key identifier and MAC key.
    pub eab: Option<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("contacts", &self.contacts)
            .field("agree_tos", &self.agree_tos)
            .field("eab_kid", &self.eab.as_ref().map(|(kid, _)| kid))
            .finish()
    }
}

/// The files of the account kept for one server.
#[derive(Debug)]
pub struct Files {
    pub key: PathBuf,
    /// A new key during a rollover, until the CA confirmed it.
    pub next_key: PathBuf,
    pub info: PathBuf,
}

impl Files {
    pub fn new(store: &Store, server: &str) -> Files {
        let dir = store.account_dir(server);
        Files {
            key: dir.join("account.key"),
            next_key: dir.join("account.key.next"),
            info: dir.join("account.json"),
        }
    }
}

/// Reads an account key file; None when there is none.
pub fn read_key(path: &Path) -> Result<Option<AccountKey>, Error> {
    let Some(pem) = store::read_optional(path, 64 * 1024)? else {
        return Ok(None);
    };
    let der = pem::private_key_der(&pem)
        .ok_or_else(|| Error::Internal(format!("{} is not a PEM key", path.display())))?;
    Ok(Some(AccountKey::from_pkcs8(&der)?))
}

/// The account kept for `server`: its key and URL; None when it was never registered.
pub fn load(store: &Store, server: &str) -> Result<Option<(AccountKey, String)>, Error> {
    let files = Files::new(store, server);
    let info = store::read_json::<Value>(&files.info)?;
    let Some(url) = info.as_ref().and_then(|i| i["url"].as_str()) else {
        return Ok(None);
    };
    match read_key(&files.key)? {
        Some(key) => Ok(Some((key, url.to_owned()))),
        None => Err(Error::Internal(format!(
            "{} names an account but {} is missing",
            files.info.display(),
            files.key.display()
        ))),
    }
}

/// How long a run waits for another one registering an account or changing its key.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Takes the lock on the account kept for `server`, waiting up to [`LOCK_WAIT`] for another
/// run to release it (exit status 4 after that).
pub fn lock(store: &Store, server: &str) -> Result<store::Lock, Error> {
    Ok(store.account_lock(server, LOCK_WAIT)?)
}

/// The account kept for `server`, registered now if there is none. Two runs starting together
/// register one account: the second waits for the first and then takes its account.
pub fn load_or_register(
    acme: &mut AcmeClient,
    store: &Store,
    server: &str,
    registration: &Registration,
    out: Reporter<'_>,
) -> Result<(AccountKey, String), Error> {
    if let Some(account) = load(store, server)? {
        return Ok(account);
    }
    let _lock = lock(store, server)?;
    // Another run may have registered while this one waited.
    match load(store, server)? {
        Some(account) => Ok(account),
        None => {
            register_locked(acme, store, server, registration, out).map(|(key, url, _)| (key, url))
        }
    }
}

/// Registers a new account: the key is made (or taken from an earlier attempt) and kept first.
/// Returns the key, the account URL and the account as the CA has it. A usage error when an
/// account is kept for `server` already.
pub fn register(
    acme: &mut AcmeClient,
    store: &Store,
    server: &str,
    registration: &Registration,
    out: Reporter<'_>,
) -> Result<(AccountKey, String, Value), Error> {
    let _lock = lock(store, server)?;
    if let Some((_, url)) = load(store, server)? {
        return Err(already_kept(server, &url));
    }
    register_locked(acme, store, server, registration, out)
}

/// The error for registering where an account is kept already.
pub fn already_kept(server: &str, url: &str) -> Error {
    Error::Usage(format!("an account for {server} is kept already: {url}"))
}

/// [`register`], for a caller that holds the account lock and found no account.
fn register_locked(
    acme: &mut AcmeClient,
    store: &Store,
    server: &str,
    registration: &Registration,
    out: Reporter<'_>,
) -> Result<(AccountKey, String, Value), Error> {
    let files = Files::new(store, server);
    let key = match read_key(&files.key)? {
        Some(key) => key,
        None => {
            let (key, der) = AccountKey::generate()?;
            store::write_atomic(&files.key, pem::private_key(&der).as_bytes())?;
            out.info(&format!(
                "created an account key in {}",
                files.key.display()
            ));
            key
        }
    };
    let meta = acme.directory.meta.clone();
    let contacts: Vec<String> = registration
        .contacts
        .iter()
        .map(|c| format!("mailto:{}", c.trim_start_matches("mailto:")))
        .collect();
    let mut payload = json!({});
    if !contacts.is_empty() {
        payload["contact"] = json!(contacts);
    }
    if let Some(terms) = &meta.terms_of_service {
        if !registration.agree_tos {
            return Err(Error::Usage(format!(
                "the CA asks you to agree to its terms of service ({terms}): rerun with --agree-tos"
            )));
        }
        payload["termsOfServiceAgreed"] = json!(true);
    }
    let new_account = acme.directory.new_account.clone();
    match &registration.eab {
        Some((kid, mac)) => {
            payload["externalAccountBinding"] =
                jws::external_account_binding(kid, mac, &key.jwk(), &new_account)?;
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
    let url = response
        .location
        .clone()
        .ok_or_else(|| Error::Internal("newAccount gave no account URL".into()))?;
    // A newAccount sent again (its first answer lost) finds the account made the first time;
    // RFC 8555 section 7.3.1 asks only for its URL then, so the account is read from there.
    let mut value: Value = response.json(&new_account)?;
    if value.get("status").is_none() {
        value = fetch(acme, &key, &url)?;
    }
    let account: Account = serde_json::from_value(value.clone()).map_err(|e| {
        Error::CaRefused(format!("the account at {url} is not an ACME account: {e}"))
    })?;
    if account.status != Status::Valid {
        return Err(Error::Internal(format!(
            "the new account is {}",
            account.status
        )));
    }
    store::write_json(&files.info, &json!({"server": server, "url": url}))?;
    out.info(&format!("account {url}"));
    Ok((key, url, value))
}

/// The account as the CA has it (POST-as-GET to its URL).
pub fn fetch(acme: &mut AcmeClient, key: &AccountKey, url: &str) -> Result<Value, Error> {
    Ok(acme.post(key, KeyRef::Kid(url), url, None)?.json(url)?)
}

/// Updates the account (new contacts, or deactivation) and returns it as the CA now has it.
pub fn update(
    acme: &mut AcmeClient,
    key: &AccountKey,
    url: &str,
    payload: &Value,
) -> Result<Value, Error> {
    Ok(acme
        .post(key, KeyRef::Kid(url), url, Some(payload))?
        .json(url)?)
}

/// Replaces the account key (RFC 8555 §7.3.5). The new key is kept beside the old one until
/// the CA confirmed the change, then takes its place; a run stopped in between finishes the
/// change next time. Holds the account lock throughout.
pub fn rollover(
    acme: &mut AcmeClient,
    store: &Store,
    server: &str,
    out: Reporter<'_>,
) -> Result<(AccountKey, String), Error> {
    let _lock = lock(store, server)?;
    let files = Files::new(store, server);
    let (old, url) = load(store, server)?.ok_or_else(|| no_account(server))?;
    let key_change = acme
        .directory
        .key_change
        .clone()
        .ok_or_else(|| Error::CaRefused("the CA offers no key change".into()))?;
    // A new key left by a stopped rollover: the CA may have switched to it already.
    if let Some(next) = read_key(&files.next_key)?
        && fetch(acme, &next, &url).is_ok()
    {
        out.info("finishing an earlier key rollover the CA had confirmed");
        return install_next(&files, next, url);
    }
    let (new, der) = AccountKey::generate()?;
    store::write_atomic(&files.next_key, pem::private_key(&der).as_bytes())?;
    let inner_payload = json!({"account": url, "oldKey": old.jwk().to_json()});
    let inner = jws::sign(&new, KeyRef::Jwk, None, &key_change, Some(&inner_payload))?;
    out.phase("changing the account key");
    acme.post(&old, KeyRef::Kid(&url), &key_change, Some(&inner))?;
    install_next(&files, new, url)
}

fn install_next(
    files: &Files,
    key: AccountKey,
    url: String,
) -> Result<(AccountKey, String), Error> {
    std::fs::rename(&files.next_key, &files.key).map_err(|source| store::StoreError::Write {
        path: files.key.clone(),
        source,
    })?;
    Ok((key, url))
}

pub fn no_account(server: &str) -> Error {
    Error::Usage(format!(
        "no account for {server} in the state folder: run smime-acme account register"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_second_registration_waits_for_the_first() {
        let root = std::env::temp_dir().join(format!("smime-acme-account-{}", std::process::id()));
        let store = Store::new(&root);
        let server = "https://ca.test/dir";
        let first = lock(&store, server).unwrap();
        let started = Instant::now();
        let second = {
            let store = store.clone();
            std::thread::spawn(move || lock(&store, server).map(|_| started.elapsed()))
        };
        std::thread::sleep(Duration::from_millis(500));
        assert!(!second.is_finished(), "the second run waits");
        drop(first);
        let waited = second.join().unwrap().unwrap();
        assert!(waited >= Duration::from_millis(500), "{waited:?}");
        let _ = std::fs::remove_dir_all(root);
    }
}
