//! `smime-acme provision` end to end against the testbed: many mailboxes from one manifest,
//! through an administrator's logins, on one account; a second run skips what is current; a
//! manifest with a mistake is refused before anything is contacted; a run killed midway resumes
//! without answering a challenge twice; shards split a manifest and run side by side; a 429
//! from the CA pauses every worker; `renew --jobs` renews in parallel. Uses the mailboxes
//! staff101..staff160.
//!
//! What the CA did is read from its log (`logs/acme.out`: acme2certifier logs each order it
//! makes and each finalization with the order's address) and from its mailbox (the replies).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::faults::FaultProxy;
use crate::obtain::{ca_lock, command, files_under, state_dir, stderr, tool};
use crate::testbed::{TestResult, Testbed, fetch_all, headers};
use smime_acme::store::Store;

/// `staff<n>@example.test` for each n.
fn staff(numbers: std::ops::RangeInclusive<u32>) -> Vec<String> {
    numbers.map(|n| format!("staff{n}@example.test")).collect()
}

/// A TOML basic string.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `[defaults]` table for the testbed: the plain acme2certifier, the mail servers over
/// implicit TLS, its DNS, p256 keys; with `master`, the administrator's login and password
/// (otherwise each mailbox names its own password file).
fn defaults(tb: &Testbed, master: bool) -> String {
    let mut text = String::from("[defaults]\n");
    for (key, var) in [
        ("server", "SMIME_ACME_PLAIN_SERVER"),
        ("ca-bundle", "SMIME_ACME_CA_BUNDLE"),
        ("imap", "TESTBED_IMAPS"),
        ("smtp", "TESTBED_SUBMISSIONS"),
        ("dns-server", "TESTBED_DNS"),
    ] {
        text += &format!("{key} = {}\n", quoted(tb.var(var)));
    }
    text += "imap-security = \"tls\"\nsmtp-security = \"tls\"\nkey-type = \"p256\"\n";
    text += "timeout = \"180s\"\n";
    if master {
        text += &format!(
            "master-user = {}\npassword-file = {}\n",
            quoted(tb.var("TESTBED_MASTER_USER")),
            quoted(tb.var("TESTBED_MASTER_PASSWORD_FILE"))
        );
    }
    text
}

/// One `[[mailbox]]` entry.
fn entry(email: &str, extra: &[(&str, String)]) -> String {
    let mut text = format!("\n[[mailbox]]\nemail = {}\n", quoted(email));
    for (key, value) in extra {
        text += &format!("{key} = {}\n", quoted(value));
    }
    text
}

/// A manifest of `emails` logging in through the testbed's administrator: SASL PLAIN with the
/// mailbox as authorization identity, except for the mailboxes in `separator_form`, which log
/// in as `user*admin`.
fn master_manifest(tb: &Testbed, emails: &[String], separator_form: &[&str]) -> String {
    let mut text = defaults(tb, true);
    for email in emails {
        let extra = if separator_form.contains(&email.as_str()) {
            vec![("master-separator", "*".to_owned())]
        } else {
            Vec::new()
        };
        text += &entry(email, &extra);
    }
    text
}

/// Writes `text` as `name` in the test's state folder; its path.
fn write_manifest(state: &Path, name: &str, text: &str) -> PathBuf {
    let path = state.join(name);
    std::fs::write(&path, text).expect("the manifest is written");
    path
}

/// `smime-acme provision MANIFEST --agree-tos --json -v --state-dir STATE`, then `extra`.
fn provision(state: &Path, manifest: &Path, extra: &[&str]) -> Command {
    let mut args: Vec<OsString> = vec![
        "provision".into(),
        manifest.as_os_str().to_owned(),
        "--agree-tos".into(),
        "--json".into(),
        "-v".into(),
        "--state-dir".into(),
        state.as_os_str().to_owned(),
    ];
    args.extend(extra.iter().map(OsString::from));
    command(args)
}

/// A finished run of provision: its output, one JSON line per mailbox, and the summary.
struct Run {
    out: Output,
    lines: Vec<Value>,
    summary: Value,
}

impl Run {
    fn of(out: Output) -> Run {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines: Vec<Value> = text
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("not a JSON line ({e}): {line:?}\nstderr:\n{}", stderr(&out))
                })
            })
            .collect();
        let summary = match lines.pop() {
            Some(last) if last["summary"] == true => last,
            last => panic!(
                "the last line is not the summary: {last:?}\nstdout:\n{text}\nstderr:\n{}",
                stderr(&out)
            ),
        };
        assert!(
            lines.iter().all(|l| l.get("summary").is_none()),
            "one summary line, at the end:\n{text}"
        );
        Run {
            out,
            lines,
            summary,
        }
    }

    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    fn log(&self) -> String {
        stderr(&self.out)
    }

    /// Exit 0, or a panic with the log.
    fn assert_ok(&self, what: &str) {
        assert_eq!(
            self.code(),
            Some(0),
            "{what}: exit status; stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&self.out.stdout),
            self.log()
        );
    }

    /// The line of each address, every address of the run exactly once.
    fn by_email(&self) -> BTreeMap<String, Value> {
        let mut map = BTreeMap::new();
        for line in &self.lines {
            let email = line["email"]
                .as_str()
                .unwrap_or_else(|| panic!("a line without email: {line}"))
                .to_owned();
            assert!(
                map.insert(email.clone(), line.clone()).is_none(),
                "{email} reported twice"
            );
        }
        map
    }

    /// The addresses whose line has `status`.
    fn with_status(&self, status: &str) -> BTreeSet<String> {
        self.lines
            .iter()
            .filter(|l| l["status"] == status)
            .filter_map(|l| l["email"].as_str().map(str::to_owned))
            .collect()
    }
}

fn run(mut cmd: Command) -> Run {
    Run::of(cmd.output().expect("smime-acme runs"))
}

fn count(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count: {value}"))
}

/// The summary line's counts and shard, and its run-wide figures present.
fn assert_summary(
    summary: &Value,
    (mailboxes, issued, skipped, failed): (u64, u64, u64, u64),
    shard: Option<&str>,
) {
    assert_eq!(count(summary, "mailboxes"), mailboxes, "{summary}");
    assert_eq!(count(summary, "issued"), issued, "{summary}");
    assert_eq!(count(summary, "skipped"), skipped, "{summary}");
    assert_eq!(count(summary, "failed"), failed, "{summary}");
    match shard {
        Some(shard) => assert_eq!(summary["shard"], shard, "{summary}"),
        None => assert!(summary["shard"].is_null(), "{summary}"),
    }
    for key in ["http_requests", "tls_connections", "elapsed_ms"] {
        count(summary, key);
    }
}

/// The lines of an issuing run: every address issued, with its figures.
fn assert_all_issued(run: &Run, emails: &[String]) {
    let lines = run.by_email();
    assert_eq!(
        lines.keys().cloned().collect::<Vec<_>>(),
        sorted(emails),
        "one line per mailbox"
    );
    for (email, line) in &lines {
        assert_eq!(line["status"], "issued", "{email}: {line}\n{}", run.log());
        assert_eq!(line["skipped"], false, "{line}");
        for key in ["serial", "not_after", "sha256_fingerprint", "folder"] {
            assert!(line[key].is_string(), "{email}: no {key}: {line}");
        }
        count(line, "http_requests");
        count(line, "challenge_mails_answered");
    }
}

fn sorted(emails: &[String]) -> Vec<String> {
    let mut v = emails.to_vec();
    v.sort();
    v
}

/// The bundle of an issued line opens with its password (OpenSSL reads it, the product's own
/// reader finds the one key belongs to the leaf), and the leaf is for exactly `email`, with the
/// line's serial and key type.
fn check_bundle(line: &Value, email: &str) {
    let files = &line["files"];
    let p12 = files["p12"]
        .as_str()
        .unwrap_or_else(|| panic!("no .p12: {line}"));
    let password_file = files["p12_password"]
        .as_str()
        .unwrap_or_else(|| panic!("no generated password file: {line}"));
    let out = tool(
        "openssl",
        &[
            "pkcs12",
            "-in",
            p12,
            "-passin",
            &format!("file:{password_file}"),
            "-nokeys",
            "-clcerts",
        ],
    );
    assert!(
        out.status.success(),
        "openssl cannot open {p12} with its password: {}",
        stderr(&out)
    );
    let leaf = smime_acme::certificate::parse_pem_chain(&out.stdout)
        .expect("the bundle holds the leaf")
        .remove(0);
    let info = smime_acme::certificate::describe(&leaf).expect("the leaf parses");
    assert_eq!(
        info.names
            .iter()
            .map(|n| n.to_lowercase())
            .collect::<Vec<_>>(),
        vec![email.to_lowercase()],
        "{p12}: the leaf's addresses"
    );
    assert!(info.email_protection, "{p12}: for email protection");
    assert_eq!(line["serial"], info.serial.as_str(), "{p12}: the serial");
    assert_eq!(
        line["key_type"],
        info.key_type.as_str(),
        "{p12}: the key type"
    );
    assert_eq!(info.key_type, "p256");
    let cert = files["certificate"].as_str().expect("the certificate file");
    let pem = std::fs::read(cert).expect("the certificate file reads");
    assert_eq!(
        smime_acme::certificate::parse_pem_chain(&pem).expect("PEM")[0],
        leaf,
        "the .p12 holds the certificate of {cert}"
    );
    let password = std::fs::read_to_string(password_file).expect("the password file reads");
    smime_acme::bundle::check_pkcs12(
        &std::fs::read(p12).expect("the .p12 reads"),
        password.trim(),
        &leaf,
    )
    .unwrap_or_else(|e| panic!("{p12}: {e}"));
}

/// Replies ("Re: ACME: ...") in the CA's mailbox, by sender address (lowercase). One IMAP
/// session for all the mailboxes of a test.
fn replies_by_sender(tb: &Testbed) -> TestResult<HashMap<String, usize>> {
    let mut counts = HashMap::new();
    for raw in fetch_all(tb, tb.var("TESTBED_CA_MAILBOX"))? {
        if !headers(&raw, "Subject")
            .iter()
            .any(|s| s.starts_with("Re: ACME: "))
        {
            continue;
        }
        for from in headers(&raw, "From") {
            let address = from
                .rsplit_once('<')
                .map_or(from.as_str(), |(_, a)| a.trim_end_matches('>'));
            *counts.entry(address.trim().to_lowercase()).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// Exactly one new reply from each of `emails` between the two counts.
fn assert_one_reply_each(
    before: &HashMap<String, usize>,
    after: &HashMap<String, usize>,
    emails: &[String],
) {
    let n = |counts: &HashMap<String, usize>, email: &String| {
        counts.get(&email.to_lowercase()).copied().unwrap_or(0)
    };
    let wrong: Vec<String> = emails
        .iter()
        .filter(|e| n(after, e) != n(before, e) + 1)
        .map(|e| format!("{e}: {} new", n(after, e) as i64 - n(before, e) as i64))
        .collect();
    assert!(
        wrong.is_empty(),
        "not exactly one reply per mailbox: {wrong:?}"
    );
}

/// The plain acme2certifier's log from a mark on.
struct CaLog {
    path: PathBuf,
    from: u64,
}

/// What the CA logged about orders: one made for an address, one finalized.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OrderEvent {
    Made(String),
    Finalized(String),
}

impl CaLog {
    fn mark(tb: &Testbed) -> CaLog {
        let path = Path::new(tb.var("TESTBED_STATE")).join("logs/acme.out");
        let from = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        CaLog { path, from }
    }

    /// A mark set once the log has not grown for `quiet` (within 30 s).
    fn quiet(tb: &Testbed, quiet: Duration) -> CaLog {
        let give_up = Instant::now() + Duration::from_secs(30);
        let mut mark = CaLog::mark(tb);
        loop {
            std::thread::sleep(quiet);
            let now = CaLog::mark(tb);
            if now.from == mark.from || Instant::now() > give_up {
                return now;
            }
            mark = now;
        }
    }

    fn text(&self) -> String {
        let bytes = std::fs::read(&self.path).expect("the CA's log reads");
        String::from_utf8_lossy(&bytes[(self.from as usize).min(bytes.len())..]).into_owned()
    }

    /// The orders made and finalized since the mark, in the CA's order. acme2certifier logs
    /// each answer as `<client> <path> {... 'identifiers': [{'type': 'email', 'value': ...}]
    /// ... 'code': ...}`.
    fn orders(&self) -> Vec<OrderEvent> {
        let mut events = Vec::new();
        for line in self.text().lines() {
            let mut words = line.split_whitespace();
            let (Some(_), Some(path), Some(rest)) = (words.next(), words.next(), words.next())
            else {
                continue;
            };
            if !rest.starts_with('{') {
                continue;
            }
            let Some(email) = line
                .split("'value': '")
                .nth(1)
                .and_then(|v| v.split('\'').next())
            else {
                continue;
            };
            let email = email.to_lowercase();
            if path == "/acme/neworders" && line.contains("'code': 201") {
                events.push(OrderEvent::Made(email));
            } else if path.starts_with("/acme/order/") && path.ends_with("/finalize") {
                events.push(OrderEvent::Finalized(email));
            }
        }
        events
    }

    /// Orders made since the mark, by address.
    fn orders_made(&self) -> HashMap<String, usize> {
        let mut made = HashMap::new();
        for event in self.orders() {
            if let OrderEvent::Made(email) = event {
                *made.entry(email).or_insert(0) += 1;
            }
        }
        made
    }

    /// The most orders open at once since the mark (made and not yet finalized): how many
    /// mailboxes were worked on in parallel.
    fn most_open_orders(&self) -> usize {
        let mut open = HashSet::new();
        let mut most = 0;
        for event in self.orders() {
            match event {
                OrderEvent::Made(email) => {
                    open.insert(email);
                }
                OrderEvent::Finalized(email) => {
                    open.remove(&email);
                }
            }
            most = most.max(open.len());
        }
        most
    }
}

fn made(orders: &HashMap<String, usize>, email: &str) -> usize {
    orders.get(&email.to_lowercase()).copied().unwrap_or(0)
}

/// The account folders in the state folder.
fn accounts(state: &Path) -> usize {
    std::fs::read_dir(state.join("accounts"))
        .map(|entries| entries.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0)
}

/// The certificate folders kept for `email`.
fn certificate_folders(state: &Path, email: &str) -> usize {
    Store::new(state)
        .history(email)
        .unwrap_or_else(|e| panic!("{email}: {e}"))
        .len()
}

/// Whether `email` has a current certificate (certs/<name>/current written).
fn finished(store: &Store, email: &str) -> bool {
    matches!(store.current(email), Ok(Some(_)))
}

/// The manifest's shard of `email` out of `n`, as the contract defines it: the first 8 bytes of
/// SHA-256 of the lowercased address, big-endian, mod n, plus 1.
fn shard_of(email: &str, n: u64) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, email.to_lowercase().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first) % n + 1
}

/// A loopback port that accepts nothing by itself: given as the CA (or a mail server) to a run
/// that must contact nothing, it tells afterwards whether anything connected.
struct Tripwire {
    listener: TcpListener,
}

impl Tripwire {
    fn new() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        Tripwire { listener }
    }

    fn addr(&self) -> String {
        self.listener.local_addr().expect("its address").to_string()
    }

    fn url(&self) -> String {
        format!("https://{}/directory", self.addr())
    }

    fn assert_untouched(&self, what: &str) {
        match self.listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("{what}: something connected to {} from {peer}", self.addr()),
            Err(e) => panic!("{what}: accept: {e}"),
        }
    }
}

/// Nothing was made in the state folder for any mailbox or account.
fn assert_no_state(state: &Path, what: &str) {
    for sub in ["accounts", "certs", "pending", "answered"] {
        let files = files_under(&state.join(sub));
        assert!(files.is_empty(), "{what}: files under {sub}/: {files:?}");
    }
    let locks: Vec<PathBuf> = files_under(&state.join("locks"))
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("staff"))
        .collect();
    assert!(locks.is_empty(), "{what}: mailbox locks: {locks:?}");
}

#[test]
fn thirty_mailboxes_through_administrator_logins_are_issued_once_then_skipped() -> TestResult {
    let tb = Testbed::get();
    let emails = staff(101..=130);
    // Every tenth mailbox logs in as `user*admin`, the others with SASL PLAIN and an
    // authorization identity.
    let separator_form = [
        "staff101@example.test",
        "staff111@example.test",
        "staff121@example.test",
        "staff130@example.test",
    ];
    let state = state_dir("provision-thirty");
    let manifest = write_manifest(
        &state,
        "fleet.toml",
        &master_manifest(&tb, &emails, &separator_form),
    );

    let _ca = ca_lock();
    let replies_before = replies_by_sender(&tb)?;
    let log = CaLog::mark(&tb);
    let first = run(provision(&state, &manifest, &["--jobs", "8"]));
    first.assert_ok("the first run");
    assert_all_issued(&first, &emails);
    assert_summary(&first.summary, (30, 30, 0, 0), None);
    let per_mailbox: u64 = first.lines.iter().map(|l| count(l, "http_requests")).sum();
    let total = count(&first.summary, "http_requests");
    assert!(
        total >= per_mailbox && total > 0,
        "the run's requests ({total}) include every mailbox's ({per_mailbox})"
    );
    let tls = count(&first.summary, "tls_connections");
    assert!(
        (1..=total).contains(&tls),
        "{tls} TLS connections for {total} requests"
    );
    for (email, line) in first.by_email() {
        check_bundle(&line, &email);
        assert_eq!(certificate_folders(&state, &email), 1, "{email}");
    }
    assert_eq!(accounts(&state), 1, "one account shared by all");
    let orders = log.orders_made();
    for email in &emails {
        assert_eq!(made(&orders, email), 1, "one order for {email}");
    }
    let open = log.most_open_orders();
    assert!(
        (4..=8).contains(&open),
        "--jobs 8: up to 8 mailboxes at once, and more than a few ({open} seen)"
    );
    let replies_after = replies_by_sender(&tb)?;
    assert_one_reply_each(&replies_before, &replies_after, &emails);

    // Again: every certificate is current, so nothing is ordered and nothing answered.
    let log = CaLog::mark(&tb);
    let second = run(provision(&state, &manifest, &["--jobs", "8"]));
    second.assert_ok("the second run");
    assert_summary(&second.summary, (30, 0, 30, 0), None);
    let issued = first.by_email();
    for (email, line) in second.by_email() {
        assert_eq!(line["status"], "skipped", "{line}");
        assert_eq!(line["skipped"], true, "{line}");
        assert_eq!(line["serial"], issued[&email]["serial"], "{line}");
        assert_eq!(line["not_after"], issued[&email]["not_after"], "{line}");
        assert!(
            line["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{line}"
        );
    }
    assert_eq!(second.lines.len(), 30);
    let orders = log.orders();
    assert!(orders.is_empty(), "the second run ordered: {orders:?}");
    // No issuing at all; at most a look at the directory and at each certificate's renewal
    // information (RFC 9773) may be needed to tell that nothing is due. One issuance alone
    // takes more requests than that allowance leaves over.
    let requests = count(&second.summary, "http_requests");
    assert!(
        requests <= 2 * 30 + 2,
        "{requests} requests to skip 30 current certificates"
    );
    for email in &emails {
        assert_eq!(certificate_folders(&state, email), 1, "{email}");
    }
    assert_one_reply_each(&replies_before, &replies_by_sender(&tb)?, &emails);
    Ok(())
}

/// One bad manifest: its file name, its text, the lines the error may name (the bad line; for
/// a missing field, any line of its entry), the field named (None where there is none, as for
/// a syntax error), and for a duplicate the earlier line the message must name as well.
struct BadManifest {
    name: &'static str,
    text: String,
    lines: Vec<usize>,
    field: Option<&'static str>,
    earlier: Option<usize>,
}

/// The 1-based number of the `nth` (from 1) line of `text` containing `needle`.
fn line_of(text: &str, needle: &str, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(nth - 1)
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("no line {nth} with {needle:?} in:\n{text}"))
}

#[test]
fn manifest_errors_name_file_line_and_field_and_contact_nothing() -> TestResult {
    let state = state_dir("provision-bad-manifests");
    // Everything the runs could contact is a port that only records connections.
    let ca = Tripwire::new();
    let mail = Tripwire::new();
    let password = state.join("password");
    std::fs::write(&password, "not-used\n")?;
    let missing = state.join("no-such-password");
    let head = format!(
        "[defaults]\nserver = {}\nimap = {}\nsmtp = {}\npassword-file = {}\nkey-type = \"p256\"\n{}{}",
        quoted(&ca.url()),
        quoted(&mail.addr()),
        quoted(&mail.addr()),
        quoted(&password.to_string_lossy()),
        entry("staff101@example.test", &[]),
        entry("staff102@example.test", &[]),
    );
    let toml = |name: &'static str, tail: &str, needle: &str, field: Option<&'static str>| {
        let text = format!("{head}{tail}");
        let line = line_of(&text, needle, 1);
        BadManifest {
            name,
            text,
            lines: vec![line],
            field,
            earlier: None,
        }
    };
    let mut cases = vec![
        toml(
            "unknown-key.toml",
            "\n[[mailbox]]\nemail = \"staff103@example.test\"\ncolour = \"blue\"\n",
            "colour",
            Some("colour"),
        ),
        toml(
            "bad-key-type.toml",
            "\n[[mailbox]]\nemail = \"staff103@example.test\"\nkey-type = \"p999\"\n",
            "p999",
            Some("key-type"),
        ),
        toml(
            "bad-security.toml",
            "\n[[mailbox]]\nemail = \"staff103@example.test\"\nimap-security = \"ssl\"\n",
            "ssl",
            Some("imap-security"),
        ),
        toml(
            "bad-timeout.toml",
            "\n[[mailbox]]\nemail = \"staff103@example.test\"\ntimeout = \"soon\"\n",
            "soon",
            Some("timeout"),
        ),
        toml(
            "not-an-address.toml",
            "\n[[mailbox]]\nemail = \"staff103\"\n",
            "\"staff103\"",
            Some("email"),
        ),
        toml(
            "unreadable-file.toml",
            &format!(
                "\n[[mailbox]]\nemail = \"staff103@example.test\"\npassword-file = {}\n",
                quoted(&missing.to_string_lossy())
            ),
            "no-such-password",
            Some("password-file"),
        ),
    ];
    // A string left open: the error may be placed where it opens or where the line ends.
    let text =
        format!("{head}\n[[mailbox]]\nemail = \"staff103@example.test\nkey-type = \"p256\"\n");
    let at = line_of(&text, "staff103", 1);
    cases.push(BadManifest {
        name: "syntax.toml",
        text,
        lines: vec![at, at + 1],
        field: None,
        earlier: None,
    });
    // An unknown key in [defaults].
    let text = head.replacen(
        "key-type = \"p256\"\n",
        "key-type = \"p256\"\ncolor = 1\n",
        1,
    );
    cases.push(BadManifest {
        name: "unknown-default.toml",
        lines: vec![line_of(&text, "color", 1)],
        text,
        field: Some("color"),
        earlier: None,
    });
    // An entry without an address: any line of the entry may be named.
    let text = format!("{head}\n[[mailbox]]\nkey-type = \"p256\"\nusage = \"sign\"\n");
    let at = line_of(&text, "[[mailbox]]", 3);
    cases.push(BadManifest {
        name: "missing-email.toml",
        text,
        lines: vec![at, at + 1, at + 2],
        field: Some("email"),
        earlier: None,
    });
    // The same address twice.
    let text = format!("{head}{}", entry("staff101@example.test", &[]));
    cases.push(BadManifest {
        name: "duplicate.toml",
        lines: vec![line_of(&text, "staff101", 2)],
        earlier: Some(line_of(&text, "staff101", 1)),
        text,
        field: Some("email"),
    });

    // CSV: the same settings in columns; a comment line counts as a line.
    let pw = password.to_string_lossy();
    let mail_addr = mail.addr();
    let row =
        |email: &str, key_type: &str| format!("{email},{mail_addr},{mail_addr},{pw},{key_type}\n");
    let csv_head = format!(
        "email,imap,smtp,password-file,key-type\n# the first two\n{}{}",
        row("staff101@example.test", "p256"),
        row("staff102@example.test", "")
    );
    // Each with the bad row last.
    let csv = |name: &'static str, tail: String, field: Option<&'static str>| {
        let text = format!("{csv_head}{tail}");
        BadManifest {
            name,
            lines: vec![text.lines().count()],
            text,
            field,
            earlier: None,
        }
    };
    cases.extend([
        csv(
            "bad-key-type.csv",
            row("staff103@example.test", "p999"),
            Some("key-type"),
        ),
        csv("empty-email.csv", row("", "p256"), Some("email")),
        csv("not-an-address.csv", row("staff103", "p256"), Some("email")),
        csv(
            "extra-cell.csv",
            format!("staff103@example.test,{mail_addr},{mail_addr},{pw},p256,surplus\n"),
            None,
        ),
    ]);
    let text = format!(
        "{csv_head}# again\n{}",
        row("staff101@example.test", "p256")
    );
    cases.push(BadManifest {
        name: "duplicate.csv",
        lines: vec![line_of(&text, "staff101", 2)],
        earlier: Some(line_of(&text, "staff101", 1)),
        text,
        field: Some("email"),
    });
    for (name, header, field) in [
        ("unknown-column.csv", "email,colour", "colour"),
        ("no-email-column.csv", "imap,key-type", "email"),
    ] {
        cases.push(BadManifest {
            name,
            text: format!("{header}\nstaff103@example.test,p256\n"),
            lines: vec![1],
            field: Some(field),
            earlier: None,
        });
    }

    for case in &cases {
        let path = write_manifest(&state, case.name, &case.text);
        let out = provision(&state, &path, &["--server", &ca.url()])
            .output()
            .expect("smime-acme runs");
        let log = stderr(&out);
        let what = format!("{}:\n{}\nstderr:\n{log}", case.name, case.text);
        assert_eq!(out.status.code(), Some(2), "exit status for {what}");
        let named = log.lines().find_map(|l| {
            case.lines.iter().find_map(|n| {
                let at = format!("{}:{n}: ", case.name);
                let rest = &l[l.find(&at)? + at.len()..];
                match case.field {
                    Some(field) => rest.strip_prefix(&format!("{field}: ")),
                    None => Some(rest),
                }
            })
        });
        let Some(reason) = named else {
            panic!(
                "stderr does not say `{}:{:?}: {}: reason` for {what}",
                case.name,
                case.lines,
                case.field.unwrap_or("...")
            );
        };
        assert!(!reason.trim().is_empty(), "a reason for {what}");
        if let Some(earlier) = case.earlier {
            let numbers: Vec<&str> = reason
                .split(|c: char| !c.is_ascii_digit())
                .filter(|w| !w.is_empty())
                .collect();
            assert!(
                numbers.contains(&earlier.to_string().as_str()),
                "the duplicate's message names the earlier line {earlier}: {what}"
            );
        }
        assert_no_state(&state, case.name);
        ca.assert_untouched(case.name);
        mail.assert_untouched(case.name);
    }

    // A manifest that is not there.
    let nowhere = state.join("no-such-manifest.toml");
    let out = provision(&state, &nowhere, &["--server", &ca.url()])
        .output()
        .expect("smime-acme runs");
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "a missing manifest: {log}");
    assert!(
        log.contains("no-such-manifest.toml"),
        "names the file: {log}"
    );
    assert_no_state(&state, "a missing manifest");
    ca.assert_untouched("a missing manifest");
    Ok(())
}

#[test]
fn a_provision_killed_midway_resumes_and_answers_each_challenge_once() -> TestResult {
    let tb = Testbed::get();
    let emails = staff(131..=140);
    let state = state_dir("provision-killed");
    let manifest = write_manifest(&state, "ten.toml", &master_manifest(&tb, &emails, &[]));
    let store = Store::new(&state);

    let _ca = ca_lock();
    let replies_before = replies_by_sender(&tb)?;
    let mut child = provision(&state, &manifest, &["--jobs", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = emails.iter().filter(|e| finished(&store, e)).count();
        if done >= 2 {
            break;
        }
        if let Some(status) = child.try_wait()? {
            panic!("provision ended ({status}) before two mailboxes were done");
        }
        assert!(Instant::now() < deadline, "two mailboxes not done in 300 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    let done: BTreeSet<String> = emails
        .iter()
        .filter(|e| finished(&store, e))
        .cloned()
        .collect();
    assert!(
        (2..emails.len()).contains(&done.len()),
        "killed after some but not all were done: {done:?}"
    );
    // The mailboxes killed in the middle of an order: the rerun goes on with it.
    let resumed: BTreeSet<String> = emails
        .iter()
        .filter(|e| !done.contains(*e))
        .filter(|e| {
            std::fs::read_to_string(store.pending_file(e))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|p| {
                    p["order_url"]
                        .as_str()
                        .is_some_and(|u| u.starts_with("https://"))
                })
        })
        .cloned()
        .collect();

    // A request of the killed run may still be under way in the CA, and it logs its answer
    // when done: the rerun's log starts once the CA has been quiet for a second.
    let log = CaLog::quiet(&tb, Duration::from_secs(1));
    let rerun = run(provision(&state, &manifest, &["--jobs", "3"]));
    rerun.assert_ok("the rerun");
    let lines = rerun.by_email();
    assert_eq!(
        lines.keys().cloned().collect::<Vec<_>>(),
        sorted(&emails),
        "one line per mailbox"
    );
    let rest = emails.len() - done.len();
    assert_summary(
        &rerun.summary,
        (10, rest as u64, done.len() as u64, 0),
        None,
    );
    assert_eq!(
        rerun.with_status("skipped"),
        done,
        "the finished ones are skipped"
    );
    let orders = log.orders_made();
    for email in &emails {
        let line = &lines[email];
        if done.contains(email) {
            assert_eq!(line["skipped"], true, "{line}");
        } else {
            assert_eq!(line["status"], "issued", "{line}\n{}", rerun.log());
            check_bundle(line, email);
        }
        let expected = usize::from(!done.contains(email) && !resumed.contains(email));
        assert_eq!(
            made(&orders, email),
            expected,
            "{email}: orders made by the rerun (done: {}, order saved: {})",
            done.contains(email),
            resumed.contains(email)
        );
        assert_eq!(certificate_folders(&state, email), 1, "{email}");
        // (A mailbox killed between saving its certificate and dropping its record may keep
        // the record: only the ones issued now are checked.)
        if !done.contains(email) {
            assert!(
                !store.pending_file(email).exists(),
                "{email} is no longer pending"
            );
        }
    }
    assert_one_reply_each(&replies_before, &replies_by_sender(&tb)?, &emails);
    Ok(())
}

#[test]
fn shards_split_the_manifest_and_run_side_by_side() -> TestResult {
    let tb = Testbed::get();
    let emails = staff(141..=152);
    let state = state_dir("provision-shards");
    let manifest = write_manifest(&state, "twelve.toml", &master_manifest(&tb, &emails, &[]));
    let expected = |k: u64| -> BTreeSet<String> {
        emails
            .iter()
            .filter(|e| shard_of(e, 2) == k)
            .cloned()
            .collect()
    };

    // Dry runs, with the CA replaced by a port that records connections: nothing is contacted.
    let nowhere = Tripwire::new();
    let mut dry = Vec::new();
    for k in [1, 2] {
        let shard = format!("{k}/2");
        let run = run(provision(
            &state,
            &manifest,
            &["--dry-run", "--shard", &shard, "--server", &nowhere.url()],
        ));
        run.assert_ok(&format!("--dry-run --shard {shard}"));
        let listed: BTreeSet<String> = run.by_email().into_keys().collect();
        assert_eq!(
            run.with_status("would-issue"),
            listed,
            "every mailbox of the shard would be issued"
        );
        assert_eq!(listed, expected(k), "shard {shard} by the address's hash");
        assert_eq!(count(&run.summary, "mailboxes"), listed.len() as u64);
        assert_eq!(run.summary["shard"], shard.as_str());
        dry.push(listed);
    }
    assert!(dry[0].is_disjoint(&dry[1]), "the shards overlap: {dry:?}");
    let union: BTreeSet<String> = dry[0].union(&dry[1]).cloned().collect();
    assert_eq!(
        union,
        emails.iter().cloned().collect::<BTreeSet<String>>(),
        "the shards cover the manifest"
    );
    nowhere.assert_untouched("the dry runs");
    assert_no_state(&state, "the dry runs");

    for bad in ["3/2", "0/2"] {
        let out = provision(
            &state,
            &manifest,
            &["--dry-run", "--shard", bad, "--server", &nowhere.url()],
        )
        .output()?;
        assert_eq!(
            out.status.code(),
            Some(2),
            "--shard {bad}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).to_lowercase().contains("shard"),
            "--shard {bad} is named: {}",
            stderr(&out)
        );
    }
    nowhere.assert_untouched("the bad shards");

    // Both shards at once, in the same state folder.
    let _ca = ca_lock();
    let replies_before = replies_by_sender(&tb)?;
    let log = CaLog::mark(&tb);
    let children: Vec<_> = ["1/2", "2/2"]
        .iter()
        .map(|shard| {
            provision(&state, &manifest, &["--jobs", "4", "--shard", shard])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("smime-acme starts")
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| Run::of(c.wait_with_output().expect("smime-acme ends")))
        .collect();
    let mut issued = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let k = i as u64 + 1;
        run.assert_ok(&format!("shard {k}/2"));
        let shard_emails: Vec<String> = expected(k).into_iter().collect();
        assert_all_issued(run, &shard_emails);
        let n = shard_emails.len() as u64;
        assert_summary(&run.summary, (n, n, 0, 0), Some(&format!("{k}/2")));
        issued.extend(run.with_status("issued"));
    }
    issued.sort();
    assert_eq!(issued, sorted(&emails), "every mailbox issued exactly once");
    let orders = log.orders_made();
    for email in &emails {
        assert_eq!(made(&orders, email), 1, "one order for {email}");
        assert_eq!(certificate_folders(&state, email), 1, "{email}");
    }
    assert_eq!(accounts(&state), 1, "the two runs share one account");
    assert_one_reply_each(&replies_before, &replies_by_sender(&tb)?, &emails);
    Ok(())
}

#[test]
fn a_429_from_the_ca_pauses_every_worker() -> TestResult {
    let tb = Testbed::get();
    let emails = staff(153..=158);
    let state = state_dir("provision-429");
    let manifest = write_manifest(&state, "six.toml", &master_manifest(&tb, &emails, &[]));
    let _ca = ca_lock();
    let proxy = FaultProxy::start();
    proxy.arm("kind=none&count=0");

    let mut child = proxy
        .through(provision(&state, &manifest, &["--jobs", "3"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // The 429s are armed once the first three orders are made, so that they fall on the
    // orders of the fourth to sixth mailboxes, made while the other workers are in the middle of
    // theirs (an order takes a mail's round trip, so no fourth order comes before the arming).
    // Three in a row on one worker's newOrder: about six seconds in which the other workers
    // have requests to make. (Should a fourth order have come already, the 429s fall on the
    // rest: a newOrder retried after a 429 meets the next one.)
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stats = proxy.stats();
        let orders = stats["requests"].as_array().map_or(0, |all| {
            all.iter()
                .filter(|r| {
                    r["path"]
                        .as_str()
                        .is_some_and(|p| p.contains("/acme/neworders"))
                        && r["status"] == 201
                })
                .count()
        });
        if orders >= 3 {
            assert!(orders < emails.len(), "every order made before the arming");
            break;
        }
        if let Some(status) = child.try_wait()? {
            panic!("provision ended ({status}) before three orders were made");
        }
        assert!(
            Instant::now() < deadline,
            "three orders not made in 120 s: {stats}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    proxy.arm("kind=429&count=3&seconds=2&match=/acme/neworders");
    let run = Run::of(child.wait_with_output()?);
    run.assert_ok("provision through 429s");
    assert_all_issued(&run, &emails);
    assert_summary(&run.summary, (6, 6, 0, 0), None);

    let stats = proxy.stats();
    assert_eq!(
        stats["fired"]["429"], 3,
        "the three 429s were answered: {stats}"
    );
    let requests = stats["requests"].as_array().expect("the requests");
    let time = |r: &Value, key: &str| {
        r[key]
            .as_f64()
            .unwrap_or_else(|| panic!("no {key} in the proxy's record {r}"))
    };
    let rate_limited: Vec<f64> = requests
        .iter()
        .filter(|r| r["fault"] == "429")
        .map(|r| time(r, "answered_at"))
        .collect();
    assert_eq!(rate_limited.len(), 3);
    // Each 429 says Retry-After: 2, and the pause is for every worker, not only the one that
    // was answered: nothing may reach the proxy from GRACE to QUIET seconds after a 429 was
    // answered. A request the client had already sent (or was sending) when the 429 reached it
    // arrives within a few milliseconds of the answer, so GRACE covers requests in flight with
    // a wide margin for a loaded machine; QUIET leaves half a second of the 2 s wait for a
    // client that counts the wait from when it read the answer. Timestamps are the proxy's
    // monotonic clock: when it had read each request, when it had written each 429.
    const GRACE: f64 = 0.5;
    const QUIET: f64 = 1.5;
    for answered in &rate_limited {
        let early: Vec<String> = requests
            .iter()
            .filter(|r| (answered + GRACE..answered + QUIET).contains(&time(r, "at")))
            .map(|r| {
                format!(
                    "{} {} {:.3} s after the 429",
                    r["method"].as_str().unwrap_or_default(),
                    r["path"].as_str().unwrap_or_default(),
                    time(r, "at") - answered
                )
            })
            .collect();
        assert!(
            early.is_empty(),
            "requests during the pause after a 429: {early:?}"
        );
        assert!(
            requests.iter().any(|r| time(r, "at") >= answered + QUIET),
            "the run went on after the 429"
        );
    }
    Ok(())
}

#[test]
fn renew_with_jobs_renews_in_parallel() -> TestResult {
    let tb = Testbed::get();
    // Four certificates, the mailboxes logging in with their own passwords.
    let emails = staff(101..=104);
    let state = state_dir("provision-renew-jobs");
    let mut text = defaults(&tb, false);
    for email in &emails {
        let password = Path::new(tb.var("TESTBED_PASSWORDS")).join(format!("{email}.password"));
        text += &entry(
            email,
            &[("password-file", password.to_string_lossy().into_owned())],
        );
    }
    let manifest = write_manifest(&state, "four.toml", &text);

    let _ca = ca_lock();
    let provisioned = run(provision(&state, &manifest, &["--jobs", "4"]));
    provisioned.assert_ok("provision");
    assert_all_issued(&provisioned, &emails);
    let issued = provisioned.by_email();

    let replies_before = replies_by_sender(&tb)?;
    let log = CaLog::mark(&tb);
    let mut args: Vec<OsString> = ["renew", "--jobs", "4", "--force", "--json", "-v"]
        .map(OsString::from)
        .to_vec();
    args.extend(["--state-dir".into(), state.as_os_str().to_owned()]);
    let out = command(args).output()?;
    let log_text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "renew --jobs 4: {log_text}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert_eq!(lines.len(), 4, "one line per certificate: {lines:?}");
    let mut renewed = Vec::new();
    for line in &lines {
        let email = line["email"].as_str().expect("an address").to_owned();
        assert_eq!(line["status"], "renewed", "{line}\n{log_text}");
        assert_eq!(line["replaced_serial"], issued[&email]["serial"], "{line}");
        assert_ne!(line["serial"], issued[&email]["serial"], "{line}");
        assert_eq!(certificate_folders(&state, &email), 2, "{email}");
        renewed.push(email);
    }
    renewed.sort();
    assert_eq!(renewed, emails, "each certificate renewed once");
    let open = log.most_open_orders();
    assert!(
        (2..=4).contains(&open),
        "--jobs 4: renewals side by side, at most 4 ({open} orders open at once)"
    );
    assert_one_reply_each(&replies_before, &replies_by_sender(&tb)?, &emails);
    Ok(())
}
