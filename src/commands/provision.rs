//! `smime-acme provision MANIFEST`: certificates for every mailbox of a manifest, several at
//! once. The whole manifest is checked first (nothing is ordered when any entry is wrong);
//! mailboxes of other shards, and those holding a valid certificate not yet due, are left out;
//! the rest go to the issuance engine on `--jobs` workers sharing one account and connection
//! pool per CA. Each result is printed as it comes (a JSON line with --json), then a summary.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::fleet::{self, CaPool, Progress};
use super::{Held, Outcome};
use crate::cli::{GlobalArgs, ProvisionArgs};
use crate::issuance::engine::{self, Job};
use crate::manifest::{self, Problem};
use crate::output::Output;
use crate::renewal::{self, Decision};
use crate::settings::{self, ConfigFile, ObtainSettings, PasswordSource, Request};
use crate::store::Store;
use crate::{Error, clock, exit};

/// What becomes of one mailbox before any work.
enum Plan {
    Issue,
    /// Holds a valid certificate not yet due: its result line.
    Skip(Value),
}

pub fn run(
    global: &GlobalArgs,
    args: &ProvisionArgs,
    config: &ConfigFile,
    out: &Output,
) -> Result<Outcome, Error> {
    let started = Instant::now();
    let shard = args
        .shard
        .as_deref()
        .map(manifest::parse_shard)
        .transpose()
        .map_err(Error::Usage)?;
    let mailboxes = resolve(global, args, config)?;
    let store = Store::new(settings::state_dir(global.state_dir.as_deref())?);
    // The account's contact: --contact, else the manifest's first mailbox (the same in every
    // shard).
    let contacts = match (args.contact.is_empty(), mailboxes.first()) {
        (true, Some(first)) => vec![first.email.clone()],
        _ => args.contact.clone(),
    };
    let mailboxes: Vec<ObtainSettings> = mailboxes
        .into_iter()
        .filter(|m| shard.is_none_or(|(k, n)| manifest::shard_of(&m.email, n) == k))
        .collect();

    let mut lines = Vec::new();
    let mut to_issue = Vec::new();
    for settings in mailboxes {
        match plan(&store, &settings, args.force) {
            Plan::Issue if args.dry_run => {
                lines.push(
                    json!({"status": "would-issue", "skipped": false, "email": settings.email}),
                );
            }
            Plan::Issue => to_issue.push(settings),
            Plan::Skip(line) => lines.push(line),
        }
    }
    for line in &lines {
        out.json_line(line);
    }

    // Each CA is connected, and its account registered (the terms asked about), before any
    // worker starts. A CA that cannot be used fails its own mailboxes, not the others.
    let setup = Progress::new(out, 0, "", false);
    let pool = CaPool::new(&store, &setup, usize::from(args.ca_requests), fleet::BUDGET);
    let mut unusable: HashMap<String, Error> = HashMap::new();
    for settings in &to_issue {
        let ca = settings.ca();
        if !unusable.contains_key(&ca.server)
            && let Err(e) = pool.get(&ca, contacts.clone())
        {
            unusable.insert(ca.server.clone(), e);
        }
    }
    let (to_issue, cut_off): (Vec<ObtainSettings>, Vec<ObtainSettings>) = to_issue
        .into_iter()
        .partition(|s| !unusable.contains_key(&s.server));
    for settings in &cut_off {
        let error = &unusable[&settings.server];
        let line = json!({
            "status": "failed",
            "skipped": false,
            "email": settings.email,
            "error": error.kind(),
            "message": format!("{}: {error}", settings.server),
            "exit_code": error.exit_code(),
        });
        out.json_line(&line);
        lines.push(line);
    }
    let progress = Progress::new(out, to_issue.len(), "mailboxes", true);
    let mut failed = 0;
    let results = fleet::run(
        &to_issue,
        usize::from(args.jobs),
        |settings| issue_one(&store, settings, &pool, &contacts, &progress, args.force),
        |settings, result| {
            let line = match result {
                Ok(line) => line.clone(),
                Err(error) => {
                    failed += 1;
                    progress.line(&format!("{}: {error}", settings.email));
                    failure(&settings.email, error)
                }
            };
            out.json_line(&line);
            progress.finished(&settings.email, failed);
        },
    );
    progress.end();
    for (settings, result) in to_issue.iter().zip(results) {
        lines.push(result.unwrap_or_else(|e| failure(&settings.email, &e)));
    }

    let count = |status: &str| lines.iter().filter(|l| l["status"] == status).count();
    let (issued, skipped, failed) = (count("issued"), count("skipped"), count("failed"));
    let (requests, tls) = pool.totals();
    let summary = json!({
        "summary": true,
        "mailboxes": lines.len(),
        "issued": issued,
        "skipped": skipped,
        "failed": failed,
        "would_issue": args.dry_run.then(|| count("would-issue")),
        "shard": args.shard,
        "http_requests": requests,
        "tls_connections": tls,
        "elapsed_ms": started.elapsed().as_millis(),
    });
    let hook_failed = lines.iter().any(|l| l.get("deploy_hook_error").is_some());
    let mut outcome = Outcome {
        json: vec![summary],
        exit: if failed > 0 || hook_failed {
            exit::SOME_FAILED
        } else {
            exit::OK
        },
        ..Outcome::default()
    };
    for line in &lines {
        let email = line["email"].as_str().unwrap_or_default();
        let text = match line["status"].as_str().unwrap_or_default() {
            "issued" => format!(
                "issued   serial {}, valid to {}{}",
                line["serial"].as_str().unwrap_or_default(),
                line["not_after"].as_str().unwrap_or_default(),
                line["deploy_hook_error"]
                    .as_str()
                    .map(|e| format!("; the deploy hook failed: {e}"))
                    .unwrap_or_default()
            ),
            "skipped" => format!(
                "skipped  valid to {}, not due until {}",
                line["not_after"].as_str().unwrap_or_default(),
                line["next_renewal"].as_str().unwrap_or_default()
            ),
            "would-issue" => "would be issued".to_owned(),
            _ => format!("FAILED   {}", line["message"].as_str().unwrap_or_default()),
        };
        let row = format!("{email:<40} {text}\n");
        if line["status"] == "failed" {
            outcome.quiet.push_str(&row);
        }
        outcome.human.push_str(&row);
    }
    let totals = format!(
        "{} mailboxes: {issued} issued, {skipped} skipped, {failed} failed{}\n",
        lines.len(),
        match args.dry_run {
            true => format!(", {} would be issued", count("would-issue")),
            false => String::new(),
        }
    );
    outcome.human.push_str(&totals);
    if failed > 0 {
        outcome.quiet.push_str(&totals);
    }
    Ok(outcome)
}

/// Every mailbox of the manifest, resolved; all problems at once, before anything is done.
fn resolve(
    global: &GlobalArgs,
    args: &ProvisionArgs,
    config: &ConfigFile,
) -> Result<Vec<ObtainSettings>, Error> {
    let file = args.manifest.display().to_string();
    let report = |problems: Vec<Problem>| {
        let lines: Vec<String> = problems
            .iter()
            .take(20)
            .map(|p| match (p.line, p.field.as_str()) {
                (0, _) => format!("{file}: {}", p.reason),
                (line, "") => format!("{file}:{line}: {}", p.reason),
                (line, field) => format!("{file}:{line}: {field}: {}", p.reason),
            })
            .collect();
        let more = problems.len().saturating_sub(20);
        let mut text = lines.join("\n");
        if more > 0 {
            text.push_str(&format!("\n... and {more} more"));
        }
        Error::Settings(settings::SettingsError(text))
    };
    let entries = manifest::read(&args.manifest).map_err(report)?;
    let flags = args.server_layer();
    let mut problems = Vec::new();
    let mut resolved = Vec::new();
    let mut lines = Vec::new();
    for entry in entries {
        let problem = |field: &str, reason: String| Problem {
            line: entry.line_of(field),
            field: field.to_owned(),
            reason,
        };
        if let Err((field, reason)) = settings::check_fields(&entry.request) {
            problems.push(problem(field, reason));
            continue;
        }
        // Files named are there now, not found missing halfway through the fleet.
        let (m, c) = (&entry.request.mailbox, &entry.request.server);
        let files = [
            ("password-file", &m.password_file),
            ("oauth-client-secret-file", &m.oauth_client_secret_file),
            ("oauth-refresh-token-file", &m.oauth_refresh_token_file),
            ("p12-password-file", &m.p12_password_file),
            ("ca-bundle", &c.ca_bundle),
            ("eab-hmac-key-file", &c.eab_hmac_key_file),
        ];
        if let Some((field, reason)) = files.iter().find_map(|(field, path)| {
            let path = path.as_ref()?;
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => None,
                Ok(_) => Some((*field, format!("{} is not a file", path.display()))),
                Err(e) => Some((*field, format!("cannot read {}: {e}", path.display()))),
            }
        }) {
            problems.push(problem(field, reason));
            continue;
        }
        let server = settings::layer(&flags, &entry.request.server)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let request = Request {
            server,
            ..entry.request.clone()
        };
        match settings::obtain(&global.common(), &request, config) {
            Ok(s) if s.password == PasswordSource::Prompt && s.oauth.is_none() => problems.push(problem(
                "password-file",
                format!(
                    "no password for {}: give password-file or password-command (nothing is asked \
                     on a terminal while many mailboxes are worked)",
                    s.email
                ),
            )),
            Ok(s) => {
                lines.push(entry.line_of("out"));
                resolved.push(s);
            }
            Err(e) => problems.push(problem("", format!("{}: {e}", entry.request.email))),
        }
    }
    // Two mailboxes writing one bundle would overwrite each other.
    let mut outs: HashMap<&std::path::Path, &str> = HashMap::new();
    for (s, line) in resolved.iter().zip(&lines) {
        if let Some(path) = &s.out
            && let Some(first) = outs.insert(path, &s.email)
        {
            problems.push(Problem {
                line: *line,
                field: "out".into(),
                reason: format!("{} is the bundle of {first} already", path.display()),
            });
        }
    }
    if problems.is_empty() {
        Ok(resolved)
    } else {
        Err(report(problems))
    }
}

/// Whether the mailbox needs a certificate: not when it holds one that is valid (for this
/// address, not revoked) and not yet due; `force` issues anyway. A certificate that cannot be
/// read is replaced.
fn plan(store: &Store, settings: &ObtainSettings, force: bool) -> Plan {
    let Some(dir) = store.current(&settings.email).ok().flatten() else {
        return Plan::Issue;
    };
    let Ok(held) = Held::read(&dir) else {
        return Plan::Issue;
    };
    let options = renewal::Options { days: None, force };
    match renewal::decide(&held.facts(), options, clock::now()) {
        Decision::NotDue { at, reason } => Plan::Skip(json!({
            "status": "skipped",
            "skipped": true,
            "email": settings.email,
            "serial": held.info.serial,
            "not_after": held.info.not_after_rfc3339(),
            "next_renewal": clock::rfc3339(at),
            "reason": reason.name(),
            "folder": held.dir,
        })),
        Decision::Due(_) | Decision::Revoked => Plan::Issue,
    }
}

/// One mailbox through the engine, under its lock; the JSON line of its result.
fn issue_one(
    store: &Store,
    settings: &ObtainSettings,
    pool: &CaPool<'_>,
    contacts: &[String],
    progress: &Progress<'_>,
    force: bool,
) -> Result<Value, Error> {
    let _lock = store.lock_wait(&settings.email, settings.wait_lock)?;
    // Another run (a shard started twice, a cron overlap) may have finished it meanwhile.
    if let Plan::Skip(line) = plan(store, settings, force) {
        return Ok(line);
    }
    let credentials = super::credentials(settings, false)?;
    // A mailbox whose servers are not named gets them discovered, here in its worker.
    let mut settings = settings.clone();
    let email = settings.email.clone();
    let reporter = engine::Reporter {
        events: progress,
        email: &email,
    };
    let found = super::discover_mail(&mut settings, &credentials, reporter, false)?;
    for f in &found {
        reporter.info(&f.describe());
    }
    let settings = &settings;
    let ca = pool.get(&settings.ca(), contacts.to_vec())?;
    let job = Job {
        settings,
        account: &ca.account,
        replaces: None,
        reuse_key: None,
    };
    let issued = engine::issue(&job, &credentials, &mut ca.client.worker(), store, progress)?;
    let (_, mut line) = super::obtain::describe(&issued);
    line["skipped"] = json!(false);
    if let Some(hook) = &settings.deploy_hook
        && let Err(reason) = super::deploy(hook, &issued, settings.p12_password_file.as_deref())
    {
        progress.line(&format!(
            "{}: the deploy hook failed: {reason}",
            settings.email
        ));
        line["deploy_hook_error"] = json!(reason);
    }
    if !found.is_empty() {
        line["discovered"] = super::discovered_json(&found);
    }
    Ok(line)
}

fn failure(email: &str, error: &Error) -> Value {
    json!({
        "status": "failed",
        "skipped": false,
        "email": email,
        "error": error.kind(),
        "message": error.to_string(),
        "exit_code": error.exit_code(),
    })
}
