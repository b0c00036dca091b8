//! `smime-acme export EMAIL --out PATH`: the current key and chain (or, with --all-keys, every
//! key and certificate kept for the address) written again as a PKCS#12 in either format, or
//! as PEM. A PKCS#12 is decrypted again and each key matched to its certificate before the file
//! is written, atomically and 0600.

use std::path::PathBuf;

use serde_json::json;

use super::{Held, Outcome};
use crate::bundle::{self, P12Format};
use crate::cli::{ExportArgs, GlobalArgs};
use crate::output::Output;
use crate::settings;
use crate::store::{self, Store};
use crate::{Error, certificate, pem, secrets};

pub fn run(global: &GlobalArgs, args: &ExportArgs, out: &Output) -> Result<Outcome, Error> {
    let store = Store::new(settings::state_dir(global.state_dir.as_deref())?);
    let email = args.email.trim();
    let current = Held::current(&store, email)?;
    let dirs: Vec<PathBuf> = if args.all_keys {
        store.history(email)?
    } else {
        vec![current.dir.clone()]
    };
    // Each folder's key and full chain.
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
    let format = args.format.as_deref().unwrap_or("compat");
    let mut files = json!({"out": args.out});
    let bytes = if format == "pem" {
        entries
            .iter()
            .map(|(key, chain)| pem::private_key(key) + &pem::chain(chain))
            .collect::<String>()
            .into_bytes()
    } else {
        let p12_format: P12Format = format.parse().map_err(Error::Usage)?;
        let (password, generated) =
            match secrets::p12_password(args.p12_password_file.as_deref(), true)? {
                Some(password) => (password, false),
                None => (secrets::generate_password(), true),
            };
        let refs: Vec<(&[u8], &[Vec<u8>])> = entries
            .iter()
            .map(|(key, chain)| (key.as_slice(), chain.as_slice()))
            .collect();
        let p12 = bundle::pkcs12_many(email, &refs, &password, p12_format)?;
        let leaves: Vec<&[u8]> = entries
            .iter()
            .map(|(_, chain)| chain[0].as_slice())
            .collect();
        bundle::check_pkcs12_many(&p12, &password, &leaves)?;
        if generated {
            let path = store::password_path(&args.out);
            store::write_atomic(&path, format!("{password}\n").as_bytes())?;
            files["p12_password"] = json!(path);
        }
        p12
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
