//! `smime-acme account register|show|update|rollover|deactivate`: the ACME account kept for a
//! CA (`account` holds the protocol steps; this file the command's choices and words).

use serde_json::{Value, json};

use super::Outcome;
use crate::cli::{AccountAction, AccountArgs, GlobalArgs};
use crate::output::Output;
use crate::settings::{self, ConfigFile};
use crate::store::Store;
use crate::{Error, account, secrets};

pub fn run(
    global: &GlobalArgs,
    args: &AccountArgs,
    config: &ConfigFile,
    out: &Output,
) -> Result<Outcome, Error> {
    let store = Store::new(settings::state_dir(global)?);
    let server = args
        .server
        .clone()
        .or_else(|| config.server.url.clone())
        .ok_or_else(|| {
            Error::Usage(
                "no ACME server: give --server URL, set SMIME_ACME_SERVER, or url in [server]"
                    .into(),
            )
        })?;
    let ca_bundle = args
        .ca_bundle
        .clone()
        .or_else(|| config.server.ca_bundle.clone());
    let mut acme = super::connect(&server, ca_bundle.as_ref())?;
    let loaded = || account::load(&store, &server)?.ok_or_else(|| account::no_account(&server));

    let (what, key, url, object) = match &args.action {
        AccountAction::Register {
            contact,
            eab_kid,
            eab_hmac_key_file,
            agree_tos,
        } => {
            if let Some((_, url)) = account::load(&store, &server)? {
                return Err(account::already_kept(&server, &url));
            }
            let registration = account::Registration {
                contacts: contact.clone(),
                agree_tos: *agree_tos || config.server.agree_tos.unwrap_or(false),
                eab: match (eab_kid, eab_hmac_key_file) {
                    (Some(kid), Some(file)) => Some((kid.clone(), file.clone())),
                    _ => match (&config.server.eab_kid, &config.server.eab_hmac_key_file) {
                        (Some(kid), Some(file)) => Some((kid.clone(), file.clone())),
                        _ => None,
                    },
                },
            };
            let (key, url, object) =
                account::register(&mut acme, &store, &server, &registration, out)?;
            ("registered", key, url, object)
        }
        AccountAction::Show => {
            let (key, url) = loaded()?;
            let object = account::fetch(&mut acme, &key, &url)?;
            ("shown", key, url, object)
        }
        AccountAction::Update { contact } => {
            let (key, url) = loaded()?;
            let contacts: Vec<String> = contact
                .iter()
                .map(|c| format!("mailto:{}", c.trim_start_matches("mailto:")))
                .collect();
            let object = account::update(&mut acme, &key, &url, &json!({"contact": contacts}))?;
            ("updated", key, url, object)
        }
        AccountAction::Rollover => {
            let (key, url) = account::rollover(&mut acme, &store, &server, out)?;
            let object = account::fetch(&mut acme, &key, &url)?;
            ("rolled over to a new key", key, url, object)
        }
        AccountAction::Deactivate { yes } => {
            let (key, url) = loaded()?;
            if !yes {
                let question =
                    format!("Deactivate the account at {server} for good? It cannot be undone.");
                match secrets::ask_yes(&question) {
                    Some(true) => {}
                    Some(false) => return Err(Error::Usage("not deactivated".into())),
                    None => {
                        return Err(Error::Usage(
                            "deactivating an account cannot be undone: confirm with --yes".into(),
                        ));
                    }
                }
            }
            let object = account::update(&mut acme, &key, &url, &json!({"status": "deactivated"}))?;
            ("deactivated", key, url, object)
        }
    };
    let status = object["status"].as_str().unwrap_or("unknown").to_owned();
    let contacts: Vec<&str> = object["contact"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let thumbprint = crate::acme::jws::Signer::jwk(&key).thumbprint();
    let human = format!(
        "Account {what}.\n  server      {server}\n  url         {url}\n  status      {status}\n  contact     {}\n  key         {} (thumbprint {thumbprint})\n",
        if contacts.is_empty() {
            "(none)".to_owned()
        } else {
            contacts.join(", ")
        },
        account::Files::new(&store, &server).key.display(),
    );
    Ok(Outcome::one(
        human,
        json!({
            "status": status,
            "server": server,
            "url": url,
            "contact": contacts,
            "key_thumbprint": thumbprint,
        }),
    ))
}
