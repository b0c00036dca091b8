//! `smime-acme account register|show|update|rollover|deactivate`: the ACME account kept for a
//! CA (`account` holds the protocol steps; this file the command's choices and words).

use serde_json::{Value, json};

use super::Outcome;
use crate::cli::{AccountAction, AccountArgs, GlobalArgs};
use crate::output::Output;
use crate::settings::{self, ConfigFile, ServerConfig};
use crate::store::Store;
use crate::{Error, account, secrets};

pub fn run(
    global: &GlobalArgs,
    args: &AccountArgs,
    config: &ConfigFile,
    out: &Output,
) -> Result<Outcome, Error> {
    let store = Store::new(settings::state_dir(global.state_dir.as_deref())?);
    let flags = match &args.action {
        AccountAction::Register {
            eab_kid,
            eab_hmac_key_file,
            agree_tos,
            ..
        } => ServerConfig {
            eab_kid: eab_kid.clone(),
            eab_hmac_key_file: eab_hmac_key_file.clone(),
            agree_tos: agree_tos.then_some(true),
            ..ServerConfig::default()
        },
        _ => ServerConfig::default(),
    };
    let flags = ServerConfig {
        url: args.server.clone(),
        ca_bundle: args.ca_bundle.clone(),
        ..flags
    };
    let ca = settings::ca(&[&flags, &config.server])?;
    let server = ca.server.clone();
    let mut acme = super::Ca::connect(&ca, std::time::Instant::now() + super::fleet::BUDGET, 1)?;
    let reporter = crate::issuance::engine::Reporter {
        events: out,
        email: "",
    };
    let loaded = || account::load(&store, &server)?.ok_or_else(|| account::no_account(&server));

    let (what, key, url, object) = match &args.action {
        AccountAction::Register { contact, .. } => {
            if let Some((_, url)) = account::load(&store, &server)? {
                return Err(account::already_kept(&server, &url));
            }
            let registration = super::registration(&acme, &ca, contact.clone())?;
            let (key, url, object) =
                account::register(&mut acme, &store, &server, &registration, reporter)?;
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
            let (key, url) = account::rollover(&mut acme, &store, &server, reporter)?;
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
