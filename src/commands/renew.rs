//! `smime-acme renew [EMAIL...]`: for each certificate, under its mailbox's lock: ask the CA for
//! its renewal window (RFC 9773, honouring Retry-After), decide (`renewal`), and if due obtain a
//! new certificate with the kept settings, as a replacement of the old one; then the deploy
//! hook. Continues past failures and reports each.

use serde_json::{Value, json};

use super::fleet::{self, CaPool, Progress};
use super::{Held, Outcome, RenewalInfo};
use crate::cli::{GlobalArgs, RenewArgs};
use crate::clock;
use crate::issuance::engine::{self, Events, Job};
use crate::output::Output;
use crate::renewal::{self, Decision, Window};
use crate::settings::{self, ConfigFile, Request, ServerConfig};
use crate::store::{self, Store};
use crate::{Error, exit};

/// Retry-After for renewal information is kept within these bounds (RFC 9773 §4.3).
const MIN_RECHECK: i64 = 60;
const MAX_RECHECK: i64 = 86_400;
/// When the CA gives no Retry-After.
const DEFAULT_RECHECK: i64 = 6 * 3600;

/// One certificate's result.
struct Report {
    line: String,
    json: Value,
    /// Something happened that -q still shows.
    loud: bool,
}

pub fn run(
    global: &GlobalArgs,
    args: &RenewArgs,
    config: &ConfigFile,
    out: &Output,
) -> Result<Outcome, Error> {
    let store = Store::new(settings::state_dir(global.state_dir.as_deref())?);
    let emails = if args.emails.is_empty() {
        let mut emails = Vec::new();
        for name in store.mailboxes()? {
            if store.forgotten_file(&name).exists() {
                out.info(&format!("{name}: forgotten, not renewed"));
                continue;
            }
            emails.push(Held::current(&store, &name)?.email());
        }
        emails
    } else {
        args.emails.iter().map(|e| e.trim().to_owned()).collect()
    };
    let mut outcome = Outcome::default();
    if emails.is_empty() {
        outcome.human = format!(
            "No certificates in {}: get one with smime-acme obtain EMAIL.\n",
            store.root().display()
        );
        return Ok(outcome);
    }
    let jobs = usize::from(args.jobs.max(1));
    let progress = Progress::new(out, emails.len(), "certificates", jobs > 1);
    // One mailbox at a time keeps the single spinner; several get the fleet's display.
    let events: &dyn Events = if jobs > 1 { &progress } else { out };
    let pool = CaPool::new(&store, events, 16, fleet::BUDGET);
    let mut failed = 0;
    let results = fleet::run(
        &emails,
        jobs,
        |email| renew_one(global, args, config, &store, email, &pool, events, out),
        |email, result| {
            if let Err(error) = result {
                failed += 1;
                progress.line(&format!("{email}: {error}"));
            }
            progress.finished(email, failed);
        },
    );
    progress.end();
    let mut codes = Vec::new();
    for (email, result) in emails.iter().zip(results) {
        let report = match result {
            Ok(report) => report,
            Err(error) => {
                codes.push(error.exit_code());
                Report {
                    line: format!("{email}: failed: {error}"),
                    json: json!({"status": "failed", "email": email, "error": error.kind(), "message": error.to_string()}),
                    loud: false,
                }
            }
        };
        if report.json["status"] == "renewed" && report.json.get("deploy_hook_error").is_some() {
            codes.push(exit::SOME_FAILED);
        }
        outcome.human.push_str(&report.line);
        outcome.human.push('\n');
        if report.loud {
            outcome.quiet.push_str(&report.line);
            outcome.quiet.push('\n');
        }
        outcome.json.push(report.json);
    }
    outcome.exit = match (emails.len(), codes.first()) {
        (_, None) => exit::OK,
        (1, Some(&code)) => code,
        _ => exit::SOME_FAILED,
    };
    Ok(outcome)
}

#[allow(clippy::too_many_arguments)]
fn renew_one(
    global: &GlobalArgs,
    args: &RenewArgs,
    config: &ConfigFile,
    store: &Store,
    email: &str,
    pool: &CaPool<'_>,
    events: &dyn Events,
    out: &Output,
) -> Result<Report, Error> {
    Held::current(store, email)?;
    // The decision is made under the lock: a run that waited sees what the other one did.
    let _lock = match args.dry_run {
        true => None,
        false => Some(store.lock_wait(email, settings::wait_lock(global.wait_lock.as_deref())?)?),
    };
    let held = Held::current(store, email)?;
    let kept: ConfigFile = store::read_json(&store.settings_file(email))?.ok_or_else(|| {
        Error::Usage(format!(
            "no settings kept for {email}: run smime-acme obtain {email} once more"
        ))
    })?;
    let top = Request {
        email: email.to_owned(),
        server: ServerConfig {
            timeout: args.timeout.clone(),
            ..ServerConfig::default()
        },
        new_p12_password: args.new_p12_password,
        ..Request::default()
    };
    let mut settings = settings::for_renewal(&global.common(), &top, config, &kept)?;
    let options = renewal::Options {
        days: args.days,
        force: args.force,
    };
    let now = clock::now();
    let mut facts = held.facts();
    // The CA's window matters only when neither the user nor the dates decided already. A
    // connection opened to ask for it serves the renewal too.
    if now < held.info.not_after && !args.force && args.days.is_none() && !facts.revoked {
        facts.window = renewal_window(&settings, &held, now, args.dry_run, pool, out);
    }
    let serial = &held.info.serial;
    let base = json!({
        "email": email,
        "serial": serial,
        "not_after": held.info.not_after_rfc3339(),
    });
    let with = |mut value: Value, extra: Value| {
        if let (Some(v), Some(e)) = (value.as_object_mut(), extra.as_object()) {
            v.extend(e.clone());
        }
        value
    };
    let reason = match renewal::decide(&facts, options, now) {
        Decision::Revoked => {
            return Ok(Report {
                line: format!(
                    "{email}: revoked, not renewed (renew --force {email} to get a new one)"
                ),
                json: with(base, json!({"status": "revoked"})),
                loud: false,
            });
        }
        Decision::NotDue { at, reason } => {
            return Ok(Report {
                line: format!(
                    "{email}: not due until {} ({})",
                    clock::rfc3339(at),
                    reason.describe()
                ),
                json: with(
                    base,
                    json!({"status": "not-due", "next_renewal": clock::rfc3339(at), "reason": reason.name()}),
                ),
                loud: false,
            });
        }
        Decision::Due(reason) => reason,
    };
    if args.dry_run {
        return Ok(Report {
            line: format!("{email}: would renew ({})", reason.describe()),
            json: with(
                base,
                json!({"status": "would-renew", "reason": reason.name()}),
            ),
            loud: false,
        });
    }
    out.info(&format!("{email}: renewing ({})", reason.describe()));
    let mut reuse_key = None;
    if args.reuse_key {
        let pem = store::read_optional(&held.dir.join("key.pem"), 64 * 1024)?.ok_or_else(|| {
            Error::Usage(format!("{} has no key.pem to reuse", held.dir.display()))
        })?;
        reuse_key = Some(crate::pem::private_key_der(&pem).ok_or_else(|| {
            Error::Internal(format!(
                "{} is not a PEM key",
                held.dir.join("key.pem").display()
            ))
        })?);
        settings.key_type = held.info.key_type.parse().map_err(Error::Usage)?;
    }
    if args.jobs > 1
        && settings.password == settings::PasswordSource::Prompt
        && settings.oauth.is_none()
    {
        return Err(Error::Usage(format!(
            "no password source kept for {email}, and nothing is asked on a terminal with --jobs: \
             set password-file or password-command in its [mailbox] table"
        )));
    }
    let credentials = super::credentials(&settings, false)?;
    // Kept settings name the servers; only a mailbox table that unset them looks again.
    let reporter = engine::Reporter { events, email };
    let found = super::discover_mail(&mut settings, &credentials, reporter, false)?;
    for f in &found {
        reporter.info(&f.describe());
    }
    let ca = pool.get(&settings.ca(), vec![email.to_owned()])?;
    let job = Job {
        settings: &settings,
        account: &ca.account,
        replaces: held.info.ari_id.clone(),
        reuse_key,
    };
    let issued = engine::issue(&job, &credentials, &mut ca.client.worker(), store, events)?;
    let (_, issued_json) = super::obtain::describe(&issued);
    let mut json = with(
        issued_json,
        json!({"status": "renewed", "reason": reason.name(), "replaced_serial": serial}),
    );
    if !found.is_empty() {
        json["discovered"] = super::discovered_json(&found);
    }
    let mut line = format!(
        "{email}: renewed ({}): serial {}, valid to {}, in {}",
        reason.describe(),
        issued.info.serial,
        issued.info.not_after_rfc3339(),
        issued.folder.display()
    );
    let hook = args.deploy_hook.as_ref().or(settings.deploy_hook.as_ref());
    if let Some(hook) = hook
        && let Err(reason) = super::deploy(hook, &issued, settings.p12_password_file.as_deref())
    {
        out.item_error(&format!("{email}: the deploy hook failed: {reason}"));
        line.push_str(&format!("; the deploy hook failed: {reason}"));
        json["deploy_hook_error"] = json!(reason);
    }
    Ok(Report {
        line,
        json,
        loud: true,
    })
}

/// The CA's renewal window: the kept one while its Retry-After lasts, else asked anew. Any
/// failure falls back to the kept window, or to none (the lifetime rule).
fn renewal_window(
    settings: &settings::ObtainSettings,
    held: &Held,
    now: i64,
    dry_run: bool,
    pool: &CaPool<'_>,
    out: &Output,
) -> Option<Window> {
    let kept = held.renewal_info.clone();
    if let Some(info) = &kept
        && now < info.next_check
    {
        return Some(info.window);
    }
    let id = held.info.ari_id.as_ref()?;
    let fetched = (|| -> Result<Option<RenewalInfo>, Error> {
        let mut acme = pool.client(&settings.ca())?;
        let Some(base) = acme.directory.renewal_info.clone() else {
            return Ok(None);
        };
        let url = format!("{}/{id}", base.trim_end_matches('/'));
        let response = acme.get(&url)?;
        let body: Value = response.json(&url)?;
        let window = &body["suggestedWindow"];
        let parse = |field: &str| window[field].as_str().and_then(clock::parse_rfc3339);
        let (Some(start), Some(end)) = (parse("start"), parse("end")) else {
            return Ok(None);
        };
        let wait = response
            .retry_after
            .map_or(DEFAULT_RECHECK, |d| {
                i64::try_from(d.as_secs()).unwrap_or(MAX_RECHECK)
            })
            .clamp(MIN_RECHECK, MAX_RECHECK);
        Ok(Some(RenewalInfo {
            window: Window { start, end },
            next_check: now + wait,
            explanation_url: body["explanationURL"].as_str().map(str::to_owned),
        }))
    })();
    match fetched {
        Ok(Some(info)) if info.window.is_valid() => {
            out.debug(&format!(
                "renewal window {} to {}",
                clock::rfc3339(info.window.start),
                clock::rfc3339(info.window.end)
            ));
            if !dry_run
                && let Err(e) = store::write_json(&held.dir.join("renewal-info.json"), &info)
            {
                out.warn(&e.to_string());
            }
            Some(info.window)
        }
        Ok(_) => kept.map(|k| k.window),
        Err(e) => {
            out.info(&format!("no renewal information from the CA ({e})"));
            kept.map(|k| k.window)
        }
    }
}
