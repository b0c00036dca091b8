//! Saving an issued certificate: the chain checked against the key and the address, then key,
//! certificates and PKCS#12 written in a new folder (hidden until whole), the `out` copy and the
//! kept settings, and last `current`. A chain an earlier run saved is not saved twice. IO: the
//! state folder.

use std::path::{Path, PathBuf};

use rcgen::PublicKeyData;

use super::engine::{Credentials, Files, Issued, key_path};
use super::watch::Ctx;
use crate::Error;
use crate::bundle;
use crate::certificate::{self, CertInfo};
use crate::keys;
use crate::settings::ObtainSettings;
use crate::store;
use crate::{pem, secrets};

/// Checks the chain and saves key, certificates and the PKCS#12 in a new folder. A chain saved
/// already (a run killed before it removed its journal) is not saved twice.
pub(super) fn save(
    ctx: &Ctx<'_>,
    chain: &[Vec<u8>],
    pkcs8: &[u8],
    credentials: &Credentials,
) -> Result<Issued, Error> {
    let settings = ctx.settings;
    let key_pair = keys::load(settings.key_type, pkcs8)?;
    let info: CertInfo =
        certificate::check(chain, key_pair.der_bytes(), &settings.email).map_err(|e| {
            Error::CaRefused(format!(
                "{e}; the key is kept in {}",
                key_path(ctx).display()
            ))
        })?;
    let certs = ctx.store.certs_dir(&settings.email);
    let p12_name = format!("{}.p12", store::safe_name(&settings.email));
    // Saved by an earlier run that ended before it made the certificate current, or before it
    // removed its journal: not saved twice.
    let holds_it = |dir: &PathBuf| {
        store::read_optional(&dir.join("cert.pem"), 1024 * 1024)
            .ok()
            .flatten()
            .is_some_and(|pem| {
                certificate::parse_pem_chain(&pem).is_ok_and(|held| held.first() == chain.first())
            })
    };
    let earlier = ctx
        .store
        .history(&settings.email)?
        .into_iter()
        .rev()
        .find(holds_it);
    if let Some(dir) = earlier {
        ctx.out
            .info("this certificate was saved by an earlier run: not saved again");
        // What comes after the folder is written again, in case the run ended in between.
        let password = dir.join("p12-password");
        if let Some(out_path) = &settings.out {
            let p12 = store::read_optional(&dir.join(&p12_name), 1024 * 1024)?
                .ok_or_else(|| Error::Internal(format!("{} has no bundle", dir.display())))?;
            store::write_atomic(out_path, &p12)?;
            if let Some(text) = store::read_optional(&password, 4096)? {
                store::write_atomic(&store::password_path(out_path), &text)?;
            }
        }
        keep_settings(ctx)?;
        let folder_name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        store::write_atomic(
            &certs.join("current"),
            format!("{}\n", folder_name.unwrap_or_default()).as_bytes(),
        )?;
        return Ok(saved(
            settings,
            info,
            &dir,
            &p12_name,
            password.exists().then_some(password),
            credentials.p12_kept,
        ));
    }
    // A generated password is written beside the bundle (also when it is the kept one); one the
    // user chose is theirs to know and stays in the state folder's kept copy only.
    let (password, beside) = match &credentials.p12_password {
        Some(p) => (p.clone(), !credentials.p12_chosen),
        None => (secrets::generate_password(), true),
    };
    let p12 = bundle::pkcs12(
        &settings.email,
        pkcs8,
        chain,
        &password,
        settings.p12_format,
    )?;
    bundle::check_pkcs12(&p12, &password, &chain[0])?;

    let folder_name = format!("{}-{}", crate::clock::now(), info.short_serial());
    let dir = certs.join(&folder_name);
    // Written hidden, then renamed: a folder is there whole or not at all.
    store::remove_partial_folders(&certs);
    let partial = store::partial_folder(&dir);
    let files = [
        ("key.pem", pem::private_key(pkcs8).into_bytes()),
        ("cert.pem", pem::chain(&chain[..1]).into_bytes()),
        ("chain.pem", pem::chain(&chain[1..]).into_bytes()),
        ("fullchain.pem", pem::chain(chain).into_bytes()),
        (p12_name.as_str(), p12.clone()),
    ];
    for (name, bytes) in &files {
        store::write_new(&partial.join(name), bytes)?;
    }
    let password_line = format!("{password}\n");
    if beside {
        store::write_new(&partial.join("p12-password"), password_line.as_bytes())?;
    }
    store::publish_folder(&dir)?;
    let password_file = beside.then(|| dir.join("p12-password"));
    // The copy, the kept password and the kept settings before `current`: a certificate is
    // current only once everything that goes with it is in place.
    if let Some(out_path) = &settings.out {
        store::write_atomic(out_path, &p12)?;
        if beside {
            store::write_atomic(&store::password_path(out_path), password_line.as_bytes())?;
        }
    }
    let kept = ctx.store.p12_password_file(&settings.email);
    store::write_atomic(&kept, password_line.as_bytes())?;
    let chosen = store::chosen_marker(&kept);
    if credentials.p12_chosen {
        store::write_atomic(&chosen, b"")?;
    } else {
        store::remove(&chosen)?;
    }
    keep_settings(ctx)?;
    store::write_atomic(
        &certs.join("current"),
        format!("{folder_name}\n").as_bytes(),
    )?;
    // A forgotten address that gets a certificate again is renewed again.
    store::remove(&ctx.store.forgotten_file(&settings.email))?;
    Ok(saved(
        settings,
        info,
        &dir,
        &p12_name,
        password_file,
        credentials.p12_kept,
    ))
}

/// The settings `renew` goes on with.
fn keep_settings(ctx: &Ctx<'_>) -> Result<(), Error> {
    Ok(store::write_json(
        &ctx.store.settings_file(&ctx.settings.email),
        &crate::settings::to_config(ctx.settings),
    )?)
}

fn saved(
    settings: &ObtainSettings,
    info: CertInfo,
    dir: &Path,
    p12_name: &str,
    p12_password: Option<PathBuf>,
    p12_password_kept: bool,
) -> Issued {
    Issued {
        email: settings.email.clone(),
        info,
        key_type: settings.key_type,
        p12_format: settings.p12_format,
        folder: dir.to_owned(),
        files: Files {
            key: dir.join("key.pem"),
            certificate: dir.join("cert.pem"),
            chain: dir.join("chain.pem"),
            fullchain: dir.join("fullchain.pem"),
            p12: dir.join(p12_name),
            p12_password_kept: p12_password_kept && p12_password.is_some(),
            p12_password,
            out: settings.out.clone(),
        },
        http_requests: 0,
        token_join: None,
        challenge_mails_answered: 0,
        reply_sent_at_unix_ms: None,
    }
}
