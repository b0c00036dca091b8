//! `smime-acme doctor EMAIL`: checks, in order, everything `obtain` needs for an address, one
//! line each: the settings, the CA, IMAP, SMTP submission, a test mail to the address itself
//! (is it DKIM-signed by the address's domain, as a CA validating the reply needs), the clock
//! against the CA's, and the state folder's permissions. Exit 0 when every check passes, else
//! the status of the first failing check's class.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::acme::client::AcmeClient;
use crate::challenge::authenticity::{self, AuthFailure};
use crate::commands::{Ca, Outcome};
use crate::issuance::engine::Reporter;
use crate::mail::imap::Mailbox;
use crate::mail::smtp::{self, Submission};
use crate::mail::{Login, Server, dkim};
use crate::output::Output;
use crate::settings::{self, ConfigFile, Request};
use crate::{Error, exit};

/// How long the test mail may take to arrive.
const MAIL_WAIT: Duration = Duration::from_secs(120);
/// A clock this far from the CA's is reported as a warning, and twice as far as a failure.
const CLOCK_WARN: Duration = Duration::from_secs(30);
const CLOCK_FAIL: Duration = Duration::from_secs(300);
/// Entries of the state folder looked at, at most.
const STATE_ENTRIES: usize = 20_000;

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    /// Works, but worth knowing; does not change the exit status.
    Warn,
    Fail,
    /// Not run: an earlier check it depends on failed.
    Skip,
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
        }
    }
}

/// One line of the report.
#[derive(Debug)]
struct Check {
    name: &'static str,
    verdict: Verdict,
    detail: String,
    /// What to do about a failure or warning.
    fix: Option<String>,
    /// The exit status this check's failure stands for.
    class: u8,
}

/// The checks so far.
#[derive(Debug, Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.add(name, Verdict::Pass, detail.into(), None, exit::OK);
    }

    fn warn(&mut self, name: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.add(
            name,
            Verdict::Warn,
            detail.into(),
            Some(fix.into()),
            exit::OK,
        );
    }

    fn fail(
        &mut self,
        name: &'static str,
        class: u8,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.add(name, Verdict::Fail, detail.into(), Some(fix.into()), class);
    }

    fn skip(&mut self, name: &'static str, because: &str) {
        self.add(
            name,
            Verdict::Skip,
            format!("not checked: {because}"),
            None,
            exit::OK,
        );
    }

    fn add(
        &mut self,
        name: &'static str,
        verdict: Verdict,
        detail: String,
        fix: Option<String>,
        class: u8,
    ) {
        self.checks.push(Check {
            name,
            verdict,
            detail,
            fix,
            class,
        });
    }

    /// An error as a failed check of the class it maps to.
    fn error(&mut self, name: &'static str, error: &Error, fix: impl Into<String>) {
        self.fail(name, error.exit_code(), error.to_string(), fix);
    }

    fn exit(&self) -> u8 {
        self.checks
            .iter()
            .find(|c| c.verdict == Verdict::Fail)
            .map_or(exit::OK, |c| c.class)
    }
}

/// Runs `doctor`.
pub fn run(
    common: &settings::Common,
    request: &Request,
    config: &ConfigFile,
    out: &Output,
) -> Result<Outcome, Error> {
    let mut report = Report::default();
    diagnose(common, request, config, out, &mut report);
    Ok(outcome(&request.email, &report))
}

fn diagnose(
    common: &settings::Common,
    request: &Request,
    config: &ConfigFile,
    out: &Output,
    report: &mut Report,
) {
    let mut settings = match settings::obtain(common, request, config) {
        Ok(settings) => settings,
        Err(e) => {
            report.fail(
                "configuration",
                exit::USAGE,
                e.to_string(),
                "see smime-acme obtain --help for the settings, and the configuration file",
            );
            for name in [
                "ca",
                "mail servers",
                "imap",
                "smtp",
                "test mail",
                "clock",
                "state folder",
            ] {
                report.skip(name, "the settings are incomplete");
            }
            return;
        }
    };
    let credentials = super::credentials(&settings, false);
    let server = |server: &Option<crate::mail::Server>, security, user: &str| match server {
        Some(server) => format!("{server} ({security}) as {user}"),
        None => "to be found".to_owned(),
    };
    match &credentials {
        Ok(_) => report.pass(
            "configuration",
            format!(
                "CA {}; IMAP {}; SMTP {}",
                settings.server,
                server(&settings.imap, settings.imap_security, &settings.imap_user),
                server(&settings.smtp, settings.smtp_security, &settings.smtp_user),
            ),
        ),
        Err(e) => report.error(
            "configuration",
            e,
            "give the mail password with --password-file, SMIME_ACME_PASSWORD or --password-command",
        ),
    }

    // Before any progress display: finding the servers may ask a question on the terminal.
    if let Ok(credentials) = &credentials
        && settings.needs_discovery()
    {
        let email = settings.email.clone();
        let reporter = Reporter {
            events: out,
            email: &email,
        };
        let ask = std::io::stdin().is_terminal();
        match super::discover_mail(&mut settings, credentials, reporter, ask) {
            Ok(found) => {
                let found: Vec<String> = found.iter().map(|f| f.describe()).collect();
                report.pass("mail servers", found.join("; "));
            }
            Err(e) => report.error(
                "mail servers",
                &e,
                "give --imap HOST[:PORT] and --smtp HOST[:PORT]",
            ),
        }
    }

    let deadline = Instant::now() + settings.timeout.min(Duration::from_secs(600));
    out.phase(&format!("contacting the CA at {}", settings.server));
    let store = crate::store::Store::new(&settings.state_dir);
    let ca = check_ca(&settings, &store, deadline, report);

    let extra_roots = match &settings.ca_bundle {
        Some(path) => crate::tls::load_bundle(path).unwrap_or_default(),
        None => Vec::new(),
    };
    let tls = crate::tls::client_config(&extra_roots);
    match &credentials {
        Ok(credentials) => {
            let login = Login {
                user: &settings.imap_user,
                password: &credentials.mail_password,
                master: settings.master.as_ref(),
                oauth: credentials.oauth.as_deref(),
            };
            match (&settings.imap, &settings.smtp) {
                (Some(imap), Some(smtp)) => {
                    let servers = (imap, smtp);
                    check_mail(
                        &settings,
                        servers,
                        login,
                        &tls,
                        &extra_roots,
                        deadline,
                        out,
                        report,
                    );
                }
                _ => {
                    for name in ["imap", "smtp", "test mail"] {
                        report.skip(name, "no mail servers");
                    }
                }
            }
        }
        Err(_) => {
            for name in ["imap", "smtp", "test mail"] {
                report.skip(name, "no mail password");
            }
        }
    }
    match ca {
        Some(mut client) => check_clock(&mut client, &settings.server, report),
        None => report.skip("clock", "the CA was not reached"),
    }
    check_state_folder(store.root(), report);
}

/// The CA's directory: reachable, its terms, external account binding, renewal information.
fn check_ca(
    settings: &settings::ObtainSettings,
    store: &crate::store::Store,
    deadline: Instant,
    report: &mut Report,
) -> Option<AcmeClient> {
    let ca = settings.ca();
    let client = match Ca::connect(&ca, deadline, 1) {
        Ok(client) => client,
        Err(e) => {
            report.error(
                "ca",
                &e,
                "check the --server URL, the network, and --ca-bundle for a CA with a private root",
            );
            return None;
        }
    };
    let meta = &client.directory.meta;
    let registered = matches!(crate::account::load(store, &ca.server), Ok(Some(_)));
    let terms = match (&meta.terms_of_service, ca.agree_tos || registered) {
        (None, _) => "no terms of service".to_owned(),
        (Some(url), true) => format!("terms {url} (agreed)"),
        (Some(url), false) => format!("terms {url} (to be agreed: --agree-tos, or asked)"),
    };
    let terms = if registered {
        format!("{terms}; account registered")
    } else {
        terms
    };
    let ari = if client.directory.renewal_info.is_some() {
        "renewal information (ARI) offered"
    } else {
        "no renewal information (ARI)"
    };
    let eab = match (meta.external_account_required, &ca.eab) {
        (false, _) => "no external account binding needed",
        (true, Some(_)) => "external account binding required (configured)",
        (true, None) => {
            report.fail(
                "ca",
                exit::USAGE,
                format!("{} requires external account binding; {terms}", ca.server),
                "give --eab-kid and --eab-hmac-key-file with the key the CA gave you",
            );
            return Some(client);
        }
    };
    report.pass(
        "ca",
        format!("{} reachable; {terms}; {eab}; {ari}", ca.server),
    );
    Some(client)
}

/// IMAP login, IDLE and the folders; SMTP login; a test mail to the address itself.
#[allow(clippy::too_many_arguments)]
fn check_mail(
    settings: &settings::ObtainSettings,
    (imap, smtp): (&Server, &Server),
    login: Login<'_>,
    tls: &Arc<rustls::ClientConfig>,
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
    deadline: Instant,
    out: &Output,
    report: &mut Report,
) {
    out.phase(&format!("logging in to {imap} as {}", login.describe()));
    let mailbox = Mailbox::open_via(
        imap,
        settings.imap_security,
        Arc::clone(tls),
        login,
        Some(deadline),
        settings.dns_server,
    );
    let mut mailbox = match mailbox {
        Ok(mailbox) => mailbox,
        Err(e) => {
            report.error(
                "imap",
                &Error::from(e),
                "check --imap, --imap-security, --imap-user and the password",
            );
            report.skip("test mail", "no IMAP session");
            check_smtp(settings, smtp, login, extra_roots, deadline, report);
            return;
        }
    };
    let mut marks = Vec::new();
    let mut missing = Vec::new();
    for folder in &settings.folders {
        match mailbox.mark(folder) {
            Ok(mark) => marks.push((folder.clone(), mark)),
            Err(e) => missing.push(format!("{folder} ({e})")),
        }
    }
    let watched = settings.folders.join(", ");
    let idle = if mailbox.has_idle() {
        "IDLE offered"
    } else {
        "no IDLE (new mail is looked for every few seconds)"
    };
    if missing.is_empty() {
        report.pass(
            "imap",
            format!(
                "logged in to {imap} as {}; {idle}; watching {watched}",
                login.describe()
            ),
        );
    } else {
        report.fail(
            "imap",
            exit::MAIL,
            format!("cannot open {}", missing.join(", ")),
            "name existing folders with --watch-folder",
        );
    }
    let sender = check_smtp(settings, smtp, login, extra_roots, deadline, report);
    match sender {
        Some(sender) => test_mail(settings, sender, &mut mailbox, &marks, out, report),
        None => report.skip("test mail", "no SMTP session"),
    }
    mailbox.logout();
}

fn check_smtp<'a>(
    settings: &'a settings::ObtainSettings,
    smtp: &'a Server,
    login: Login<'a>,
    extra_roots: &'a [rustls::pki_types::CertificateDer<'static>],
    deadline: Instant,
    report: &mut Report,
) -> Option<smtp::Sender<'a>> {
    let submission = Submission {
        server: smtp,
        security: settings.smtp_security,
        user: &settings.smtp_user,
        password: login.password,
        master: settings.master.as_ref(),
        oauth: login.oauth,
        extra_roots,
    };
    let mut sender = smtp::Sender::new(submission)
        .until(deadline)
        .resolving_with(settings.dns_server);
    match sender.login() {
        Ok(()) => {
            report.pass(
                "smtp",
                format!(
                    "logged in to {smtp} ({}) as {}",
                    settings.smtp_security,
                    Login {
                        user: &settings.smtp_user,
                        ..login
                    }
                    .describe()
                ),
            );
            Some(sender)
        }
        Err(e) => {
            report.error(
                "smtp",
                &Error::from(e),
                "check --smtp, --smtp-security, --smtp-user and the password",
            );
            None
        }
    }
}

/// Sends a mail to the address itself, reads it back, and judges its DKIM signature and the
/// receiving server's Authentication-Results; the mail is removed afterwards.
fn test_mail(
    settings: &settings::ObtainSettings,
    mut sender: smtp::Sender<'_>,
    mailbox: &mut Mailbox,
    marks: &[(String, crate::mail::imap::Mark)],
    out: &Output,
    report: &mut Report,
) {
    let email = &settings.email;
    let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
    let tag = crate::secrets::generate_password()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect::<String>();
    let message = format!(
        "From: {email}\r\nTo: {email}\r\nSubject: smime-acme doctor {tag}\r\nDate: {}\r\n\
         Message-ID: <doctor.{tag}@{domain}>\r\nAuto-Submitted: auto-generated\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n\
         A test mail from smime-acme doctor: is mail from this address signed (DKIM) by its\r\n\
         domain? It is removed once read back.\r\n",
        httpdate::fmt_http_date(SystemTime::now()).replace("GMT", "+0000"),
    );
    out.phase(&format!("sending a test mail to {email}"));
    let sent = Instant::now();
    if let Err(e) = sender.send(email, email, message.as_bytes(), || true) {
        let error: Error = crate::mail::MailError::from(e).into();
        report.error(
            "test mail",
            &error,
            "check that the submission server lets this login send as the address",
        );
        return;
    }
    out.phase("waiting for the test mail to come back");
    let Some((folder, uid, raw)) = wait_for(mailbox, marks, &tag, sent + MAIL_WAIT) else {
        report.fail(
            "test mail",
            exit::MAIL,
            format!(
                "sent, but it did not arrive in {} within {} s",
                settings.folders.join(", "),
                MAIL_WAIT.as_secs()
            ),
            "check the spam folder (and watch it with --watch-folder) and the mail server's logs",
        );
        return;
    };
    let took = sent.elapsed();
    if let Err(e) = mailbox.remove(&folder, uid) {
        out.warn(&format!("the test mail stays in {folder}: {e}"));
    }
    report.pass(
        "test mail",
        format!("arrived in {folder} after {:.1} s", took.as_secs_f64()),
    );
    judge_signature(settings, domain, &raw, report);
}

/// Looks in each watched folder for the mail tagged `tag` until `until`.
fn wait_for(
    mailbox: &mut Mailbox,
    marks: &[(String, crate::mail::imap::Mark)],
    tag: &str,
    until: Instant,
) -> Option<(String, u32, Vec<u8>)> {
    let needle = format!("smime-acme doctor {tag}");
    let mut cursors = marks.to_vec();
    loop {
        for (folder, cursor) in &mut cursors {
            let batch = mailbox.new_headers(folder, *cursor).ok()?;
            *cursor = batch.next;
            let found = batch
                .mails
                .iter()
                .find(|(_, header)| header.windows(needle.len()).any(|w| w == needle.as_bytes()));
            if let Some((uid, _)) = found {
                let raw = mailbox.message(folder, *uid).ok()??;
                return Some((folder.clone(), *uid, raw));
            }
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let folder = &cursors.first()?.0;
        mailbox
            .wait(folder, left.min(Duration::from_secs(5)))
            .ok()?;
    }
}

/// DKIM: a signature that verifies with d= the address's domain (RFC 8823 section 3.2); and
/// what the receiving server's Authentication-Results say.
fn judge_signature(
    settings: &settings::ObtainSettings,
    domain: &str,
    raw: &[u8],
    report: &mut Report,
) {
    let checks = match dkim::Verifier::new(settings.dns_server) {
        Ok(verifier) => verifier.verify_from(raw, domain, Instant::now() + Duration::from_secs(20)),
        Err(e) => {
            report.fail(
                "dkim",
                exit::MAIL,
                e.to_string(),
                "check --dns-server and the system's DNS settings",
            );
            return;
        }
    };
    let others = signing_domains(raw);
    match authenticity::judge_dkim(&checks, domain, &[]) {
        Ok(()) => report.pass("dkim", format!("signed by {domain} (d={domain}), verified")),
        Err(AuthFailure::DkimTemporary(reason)) => report.fail(
            "dkim",
            exit::MAIL,
            format!("the DKIM key of {domain} could not be fetched: {reason}"),
            "check the DNS (or --dns-server) and try again",
        ),
        Err(failure) => {
            let detail = match (&failure, others.is_empty()) {
                (AuthFailure::NoDkimSignature, true) => {
                    "mail from this address is not DKIM-signed".to_owned()
                }
                (AuthFailure::NoDkimSignature, false) => format!(
                    "mail from this address is DKIM-signed only by {}, not by {domain}",
                    others.join(", ")
                ),
                _ => format!("mail from this address: {failure}"),
            };
            report.fail(
                "dkim",
                exit::MAIL,
                detail,
                format!(
                    "a CA checks that the reply is signed with d={domain} (RFC 8823 section 3.2): \
                     have the submission server sign mail of {domain} with DKIM, or send through \
                     one that does"
                ),
            );
        }
    }
    let results = header_values(raw, "Authentication-Results");
    match results.first() {
        None => report.warn(
            "authentication-results",
            "the receiving server added no Authentication-Results",
            "nothing to do; --challenge-auth authentication-results:ID needs them",
        ),
        Some(first) => {
            let verdict = first.split_whitespace().collect::<Vec<_>>().join(" ");
            let pass = results.iter().any(|r| {
                let id = r.split(';').next().unwrap_or_default().trim();
                authenticity::judge_authentication_results(&[r.as_str()], id, domain).is_ok()
            });
            if pass {
                report.pass("authentication-results", verdict);
            } else {
                report.warn(
                    "authentication-results",
                    verdict,
                    format!("the receiving server does not report dkim=pass for {domain}"),
                );
            }
        }
    }
}

/// The `d=` domains of the DKIM-Signature headers of `raw`.
fn signing_domains(raw: &[u8]) -> Vec<String> {
    header_values(raw, "DKIM-Signature")
        .iter()
        .filter_map(|v| {
            v.split(';')
                .map(str::trim)
                .find_map(|tag| tag.strip_prefix("d="))
                .map(|d| d.trim().to_ascii_lowercase())
        })
        .collect()
}

/// The values of header `name` in `raw`, unfolded, top to bottom.
fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    let Some(message) = mail_parser::MessageParser::default().parse_headers(raw) else {
        return Vec::new();
    };
    message
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .filter_map(|h| {
            let start = h.offset_start() as usize;
            let end = (h.offset_end() as usize).min(raw.len());
            raw.get(start..end)
                .map(|v| String::from_utf8_lossy(v).replace(['\r', '\n'], " "))
        })
        .map(|v| v.trim().to_owned())
        .collect()
}

/// The CA's clock (its `Date` header) against ours.
fn check_clock(client: &mut AcmeClient, directory_url: &str, report: &mut Report) {
    let asked = SystemTime::now();
    let date = match client.get(directory_url) {
        Ok(response) => response.date,
        Err(e) => {
            report.error("clock", &Error::from(e), "check the network");
            return;
        }
    };
    let Some(date) = date else {
        report.warn(
            "clock",
            "the CA's answer has no Date header",
            "nothing to do; the clock was not compared",
        );
        return;
    };
    // The Date header has whole seconds: a second either way is no offset.
    let (offset, ahead) = match date.duration_since(asked) {
        Ok(ca_ahead) => (ca_ahead, false),
        Err(e) => (e.duration(), true),
    };
    let offset = offset.saturating_sub(Duration::from_secs(1));
    let detail = if offset.is_zero() {
        "within a second of the CA's".to_owned()
    } else {
        format!(
            "{} s {} the CA's",
            offset.as_secs(),
            if ahead { "ahead of" } else { "behind" }
        )
    };
    let fix = "set the clock right (e.g. enable NTP: timedatectl set-ntp true)";
    if offset >= CLOCK_FAIL {
        report.fail("clock", exit::INTERNAL, detail, fix);
    } else if offset >= CLOCK_WARN {
        report.warn("clock", detail, fix);
    } else {
        report.pass("clock", detail);
    }
}

/// The state folder and everything in it readable by its owner only.
fn check_state_folder(root: &Path, report: &mut Report) {
    use std::os::unix::fs::PermissionsExt;
    let fix = format!("chmod -R go-rwx {}", root.display());
    if !root.exists() {
        report.pass(
            "state folder",
            format!(
                "{} does not exist yet (made private when needed)",
                root.display()
            ),
        );
        return;
    }
    let mut open = Vec::new();
    let mut seen = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        seen += 1;
        if seen > STATE_ENTRIES {
            break;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.permissions().mode() & 0o077 != 0 {
            open.push(path.clone());
        }
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
    match open.as_slice() {
        [] => report.pass(
            "state folder",
            format!("{}: readable by its owner only", root.display()),
        ),
        [first, rest @ ..] => {
            let more = if rest.is_empty() {
                String::new()
            } else {
                format!(" and {} more", rest.len())
            };
            report.fail(
                "state folder",
                exit::INTERNAL,
                format!("{} is open to others{more}", first.display()),
                fix,
            );
        }
    }
}

/// The report in words (one line per check) and as JSON.
fn outcome(email: &str, report: &Report) -> Outcome {
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    let mut human = String::new();
    let mut quiet = String::new();
    for check in &report.checks {
        let mut line = format!(
            "{:<4}  {:<width$}  {}",
            check.verdict.name(),
            check.name,
            check.detail
        );
        if let Some(fix) = check
            .fix
            .as_ref()
            .filter(|_| check.verdict != Verdict::Pass)
        {
            line.push_str(&format!("\n      {:<width$}  → {fix}", ""));
        }
        line.push('\n');
        if check.verdict == Verdict::Fail {
            quiet.push_str(&line);
        }
        human.push_str(&line);
    }
    let code = report.exit();
    let checks: Vec<Value> = report
        .checks
        .iter()
        .map(|c| {
            let mut value =
                json!({"check": c.name, "result": c.verdict.name(), "detail": c.detail});
            if let Some(fix) = c.fix.as_ref().filter(|_| c.verdict != Verdict::Pass) {
                value["fix"] = json!(fix);
            }
            value
        })
        .collect();
    Outcome {
        human,
        quiet,
        json: vec![json!({
            "status": if code == exit::OK { "ok" } else { "failed" },
            "email": email,
            "checks": checks,
            "exit_code": code,
        })],
        exit: code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_decides_the_exit_status() {
        let mut report = Report::default();
        report.pass("configuration", "fine");
        report.warn("clock", "31 s behind", "set the clock");
        assert_eq!(report.exit(), exit::OK);
        report.fail("imap", exit::MAIL, "refused", "check the password");
        report.fail("state folder", exit::INTERNAL, "open", "chmod");
        assert_eq!(report.exit(), exit::MAIL);
        let outcome = outcome("a@example.test", &report);
        assert_eq!(outcome.exit, exit::MAIL);
        assert_eq!(outcome.json[0]["status"], "failed");
        assert_eq!(outcome.json[0]["checks"][2]["fix"], "check the password");
        assert!(outcome.json[0]["checks"][0].get("fix").is_none());
        assert!(outcome.quiet.contains("refused") && !outcome.quiet.contains("fine"));
        assert_eq!(outcome.human.lines().filter(|l| l.contains('→')).count(), 3);
    }

    #[test]
    fn signing_domains_and_header_values_are_read_unfolded() {
        let raw = b"DKIM-Signature: v=1; a=rsa-sha256;\r\n d=Other.Example; s=x; b=abc\r\n\
            Authentication-Results: mx.example.test;\r\n dkim=pass header.d=example.test\r\n\
            From: a@example.test\r\n\r\nbody\r\n";
        assert_eq!(signing_domains(raw), ["other.example"]);
        let results = header_values(raw, "authentication-results");
        assert_eq!(
            results,
            ["mx.example.test;   dkim=pass header.d=example.test"]
        );
        assert!(header_values(b"\xff\xfe", "From").is_empty());
    }

    #[test]
    fn a_state_folder_open_to_others_fails() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("smime-acme-doctor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("accounts")).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(
            root.join("accounts"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let key = root.join("accounts").join("account.key");
        std::fs::write(&key, "k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut report = Report::default();
        check_state_folder(&root, &mut report);
        assert_eq!(report.checks[0].verdict, Verdict::Pass);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut report = Report::default();
        check_state_folder(&root, &mut report);
        assert_eq!(report.checks[0].verdict, Verdict::Fail);
        assert!(report.checks[0].detail.contains("account.key"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
