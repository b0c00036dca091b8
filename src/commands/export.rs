//! `smime-acme export EMAIL --out PATH`: the current key and chain (or, with --all-keys, every
//! key and certificate kept for the address) written again as a PKCS#12 in either format, as
//! PEM, or as an Apple configuration profile holding compat PKCS#12 bundles. A PKCS#12 is decrypted again and each key matched to its certificate before the file
//! is written, atomically and 0600.

use std::path::PathBuf;

use serde_json::json;

use super::{Held, Outcome};
use crate::bundle::{self, P12Format};
use crate::cli::{ExportArgs, GlobalArgs};
use crate::output::Output;
use crate::settings;
use crate::store::{self, Store};
use crate::{Error, certificate, pem, plist, secrets};

pub fn run(global: &GlobalArgs, args: &ExportArgs, out: &Output) -> Result<Outcome, Error> {
    let store = Store::new(settings::state_dir(global.state_dir.as_deref())?);
    let email = args.email.trim();
    let entries = keys_and_chains(&store, email, args.all_keys, out)?;
    let format = args.format.as_deref().unwrap_or("compat");
    let mut files = json!({"out": args.out});
    let bytes = if format == "pem" {
        entries
            .iter()
            .map(|(key, chain)| pem::private_key(key) + &pem::chain(chain))
            .collect::<String>()
            .into_bytes()
    } else {
        // An Apple configuration profile holds compat bundles: Apple refuses the modern ones.
        let p12_format: P12Format = match format {
            "mobileconfig" => P12Format::Compat,
            _ => format.parse().map_err(Error::Usage)?,
        };
        let (password, generated) =
            match secrets::p12_password(args.p12_password_file.as_deref(), true)? {
                Some(password) => (password, false),
                None => (secrets::generate_password(), true),
            };
        let refs: Vec<(&[u8], &[Vec<u8>])> = entries
            .iter()
            .map(|(key, chain)| (key.as_slice(), chain.as_slice()))
            .collect();
        let leaves: Vec<&[u8]> = entries
            .iter()
            .map(|(_, chain)| chain[0].as_slice())
            .collect();
        let bytes = if format == "mobileconfig" {
            // One bundle per key: each a payload of its own, named as its certificate.
            let names = bundle::friendly_names(email, &leaves)?;
            let mut bundles = Vec::new();
            for (entry, leaf) in refs.iter().zip(&leaves) {
                let p12 = bundle::pkcs12(email, entry.0, entry.1, &password, p12_format)?;
                bundle::check_pkcs12(&p12, &password, leaf)?;
                bundles.push(p12);
            }
            let identities: Vec<plist::Identity> = names
                .into_iter()
                .zip(&bundles)
                .map(|(name, p12)| plist::Identity { name, p12 })
                .collect();
            plist::mobileconfig(email, &identities).into_bytes()
        } else {
            let p12 = bundle::pkcs12_many(email, &refs, &password, p12_format)?;
            bundle::check_pkcs12_many(&p12, &password, &leaves)?;
            p12
        };
        if generated {
            let path = store::password_path(&args.out);
            store::write_atomic(&path, format!("{password}\n").as_bytes())?;
            files["p12_password"] = json!(path);
        }
        bytes
    };
    store::write_atomic(&args.out, &bytes)?;
    let mut human = format!(
        "Wrote {} ({format}, {} key{}) for {email}.\n",
        args.out.display(),
        entries.len(),
        if entries.len() == 1 { "" } else { "s" }
    );
    if let Some(path) = files["p12_password"].as_str() {
        human.push_str(&format!("The password is in {path} (generated).\n"));
    }
    if format == "mobileconfig" {
        human.push_str(
            "Open it on the iPhone, iPad or Mac (AirDrop, Mail or Files), then install it in Settings; it asks for the password.\n",
        );
    }
    Ok(Outcome::one(
        human,
        json!({
            "status": "exported",
            "email": email,
            "format": format,
            "keys": entries.len(),
            "files": files,
        }),
    ))
}

/// A PKCS#8 key and its full chain (DER, leaf first).
pub type KeyAndChain = (Vec<u8>, Vec<Vec<u8>>);

/// Each kept key with its full chain (leaf first): the current certificate's, or with
/// `all_keys` every certificate folder's. A folder without a readable key or chain is left out
/// with a warning; none at all is an error.
pub fn keys_and_chains(
    store: &Store,
    email: &str,
    all_keys: bool,
    out: &Output,
) -> Result<Vec<KeyAndChain>, Error> {
    let current = Held::current(store, email)?;
    let dirs: Vec<PathBuf> = if all_keys {
        store.history(email)?
    } else {
        vec![current.dir.clone()]
    };
    let mut entries = Vec::new();
    for dir in &dirs {
        let key = store::read_optional(&dir.join("key.pem"), 64 * 1024)?
            .and_then(|pem| pem::private_key_der(&pem));
        let chain = store::read_optional(&dir.join("fullchain.pem"), 1024 * 1024)?
            .and_then(|pem| certificate::parse_pem_chain(&pem).ok());
        match (key, chain) {
            (Some(key), Some(chain)) => entries.push((key, chain)),
            _ => out.warn(&format!(
                "{} lacks a readable key.pem or fullchain.pem: left out",
                dir.display()
            )),
        }
    }
    if entries.is_empty() {
        return Err(Error::Internal(format!(
            "no key and certificate to export for {email}"
        )));
    }
    Ok(entries)
}
