//! `smime-acme forget EMAIL`: stop renewing an address. Its certificates and keys stay (old
//! mail stays readable) unless `--purge`, which removes everything kept for it. Asks first on a
//! terminal, or takes `--yes`. `obtain` for the address starts renewing it again.

use serde_json::json;

use super::Outcome;
use crate::cli::{ForgetArgs, GlobalArgs};
use crate::settings;
use crate::store::{self, Store};
use crate::{Error, clock, secrets};

pub fn run(global: &GlobalArgs, args: &ForgetArgs) -> Result<Outcome, Error> {
    let common = global.common();
    let store = Store::new(settings::state_dir(common.state_dir.as_deref())?);
    let email = args.email.trim();
    let certs = store.certs_dir(email);
    let pending = store.pending_file(email);
    if !certs.exists() && !pending.exists() {
        return Err(Error::Usage(format!(
            "nothing is kept for {email} in {}",
            store.root().display()
        )));
    }
    let _lock = store.lock_wait(email, settings::wait_lock(common.wait_lock.as_deref())?)?;
    if !args.yes {
        let question = if args.purge {
            format!(
                "Remove every certificate and key kept for {email}? Mail encrypted to them can no \
                 longer be read with smime-acme's copies."
            )
        } else {
            format!("Stop renewing the certificate of {email}?")
        };
        match secrets::ask_yes(&question) {
            Some(true) => {}
            Some(false) => return Err(Error::Usage(format!("{email}: nothing changed"))),
            None => {
                return Err(Error::Usage(format!(
                    "{email}: confirm with --yes (nothing is asked without a terminal)"
                )));
            }
        }
    }
    if args.purge {
        for file in [pending, store.answered_file(email)] {
            store::remove(&file)?;
        }
        if certs.exists() {
            // Renamed out of sight first: a run stopped halfway leaves no half address behind.
            let doomed = store::partial_folder(&certs);
            let fail = |e| store::StoreError::Write {
                path: certs.clone(),
                source: e,
            };
            let _ = std::fs::remove_dir_all(&doomed);
            std::fs::rename(&certs, &doomed).map_err(fail)?;
            std::fs::remove_dir_all(&doomed).map_err(fail)?;
        }
        return Ok(Outcome::one(
            format!(
                "Forgot {email}: its certificates, keys, settings and any issuance in progress are \
                 removed from the state folder (copies written with --out stay).\n"
            ),
            json!({"status": "forgotten", "email": email, "purged": true}),
        ));
    }
    store::write_json(&store.forgotten_file(email), &json!({"at": clock::now()}))?;
    Ok(Outcome::one(
        format!(
            "Forgot {email}: renew leaves it alone from now on (unless named); its certificates \
             stay in {}. smime-acme obtain {email} takes it up again.\n",
            certs.display()
        ),
        json!({"status": "forgotten", "email": email, "purged": false, "folder": certs}),
    ))
}
