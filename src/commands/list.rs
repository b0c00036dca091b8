//! `smime-acme list` and `smime-acme show EMAIL`: what the state folder holds, with each
//! certificate's status and next renewal (from the CA's last renewal window, else the lifetime
//! rule). Reads the state folder only; contacts nobody.

use serde_json::{Value, json};

use super::{Held, Outcome};
use crate::cli::GlobalArgs;
use crate::output::Output;
use crate::renewal::{self, Decision};
use crate::settings;
use crate::store::Store;
use crate::{Error, clock, exit};

/// One certificate as `list` and `show` describe it, and why it renews when it does.
fn describe(held: &Held, now: i64) -> (Value, Option<renewal::Reason>) {
    let info = &held.info;
    let (status, next, reason) =
        match renewal::decide(&held.facts(), renewal::Options::default(), now) {
            Decision::Revoked => ("revoked", None, None),
            Decision::Due(renewal::Reason::Expired) => {
                ("expired", None, Some(renewal::Reason::Expired))
            }
            Decision::Due(reason) => ("due", Some(now), Some(reason)),
            Decision::NotDue { at, reason } => ("valid", Some(at), Some(reason)),
        };
    let files: serde_json::Map<String, Value> = std::fs::read_dir(&held.dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.') && !name.ends_with(".json"))
        .map(|name| (name.clone(), json!(held.dir.join(name))))
        .collect();
    let value = json!({
        "email": held.email(),
        "status": status,
        "serial": info.serial,
        "issuer": info.issuer,
        "not_before": clock::rfc3339(info.not_before),
        "not_after": info.not_after_rfc3339(),
        "days_left": (info.not_after - now).max(0) / 86_400,
        "next_renewal": next.map(clock::rfc3339),
        "renewal_reason": reason.map(renewal::Reason::name),
        "key_type": info.key_type,
        "sha256_fingerprint": info.sha256,
        "revoked": held.revoked,
        "renewed": !held.forgotten,
        "folder": held.dir,
        "files": files,
    });
    (value, reason)
}

pub fn list(global: &GlobalArgs, out: &Output) -> Result<Outcome, Error> {
    let store = Store::new(settings::state_dir(global.state_dir.as_deref())?);
    let now = clock::now();
    let mut outcome = Outcome::default();
    let mut rows = Vec::new();
    for name in store.mailboxes()? {
        match Held::current(&store, &name) {
            Ok(held) => {
                let (value, _) = describe(&held, now);
                rows.push([
                    value["email"].as_str().unwrap_or("").to_owned(),
                    match value["renewed"].as_bool() {
                        Some(false) => {
                            format!("{} (forgotten)", value["status"].as_str().unwrap_or(""))
                        }
                        _ => value["status"].as_str().unwrap_or("").to_owned(),
                    },
                    value["not_after"].as_str().unwrap_or("").to_owned(),
                    value["days_left"].to_string(),
                    match (
                        value["next_renewal"].as_str(),
                        value["renewal_reason"].as_str(),
                    ) {
                        (Some(at), Some(why)) => format!("{at} ({why})"),
                        _ => "-".into(),
                    },
                    value["serial"].as_str().unwrap_or("").to_owned(),
                ]);
                outcome.json.push(value);
            }
            Err(e) => {
                out.item_error(&format!("{name}: {e}"));
                outcome.exit = exit::SOME_FAILED;
            }
        }
    }
    if rows.is_empty() {
        outcome.human = format!("No certificates in {}.\n", store.root().display());
        return Ok(outcome);
    }
    let header = [
        "EMAIL",
        "STATUS",
        "EXPIRES",
        "DAYS",
        "NEXT RENEWAL",
        "SERIAL",
    ]
    .map(str::to_owned);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        outcome.human.push_str(cells.join("  ").trim_end());
        outcome.human.push('\n');
    }
    Ok(outcome)
}

pub fn show(global: &GlobalArgs, email: &str) -> Result<Outcome, Error> {
    let store = Store::new(settings::state_dir(global.state_dir.as_deref())?);
    let email = email.trim();
    let now = clock::now();
    let held = Held::current(&store, email)?;
    let (mut value, reason) = describe(&held, now);
    let mut history = Vec::new();
    for dir in store.history(email)? {
        if let Ok(old) = Held::read(&dir) {
            history.push(json!({
                "serial": old.info.serial,
                "not_after": old.info.not_after_rfc3339(),
                "revoked": old.revoked.is_some(),
                "folder": dir,
            }));
        }
    }
    let mut human = format!(
        "{}\n  status        {}\n  serial        {}\n  issuer        {}\n  valid         {} to {} ({} days left)\n  key type      {}\n  next renewal  {}\n  folder        {}\n",
        email,
        value["status"].as_str().unwrap_or(""),
        held.info.serial,
        held.info.issuer,
        clock::rfc3339(held.info.not_before),
        held.info.not_after_rfc3339(),
        value["days_left"],
        held.info.key_type,
        match (value["next_renewal"].as_str(), reason) {
            (Some(at), Some(why)) => format!("{at} ({})", why.describe()),
            _ => "-".into(),
        },
        held.dir.display(),
    );
    if let Some(files) = value["files"].as_object() {
        for path in files.values().filter_map(Value::as_str) {
            human.push_str(&format!("                {path}\n"));
        }
    }
    human.push_str(&format!(
        "  history       {} certificate(s)\n",
        history.len()
    ));
    for old in &history {
        human.push_str(&format!(
            "    {}  to {}{}\n",
            old["serial"].as_str().unwrap_or(""),
            old["not_after"].as_str().unwrap_or(""),
            if old["revoked"] == true {
                "  revoked"
            } else {
                ""
            }
        ));
    }
    value["history"] = json!(history);
    Ok(Outcome::one(human, value))
}
