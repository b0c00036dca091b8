//! The certificate lifecycle against the testbed: renew (nothing due, forced, by --days, with a
//! deploy hook, past a failure, under locks), revoke (by account key and by certificate key),
//! account key rollover and deactivation, external account binding, list, show and export.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::obtain::{
    answers_from, ca_lock, command, obtain_args, obtain_command, ok, state_dir, stderr, tool,
    with_flag,
};
use crate::testbed::{MailOnPostCa, TestResult, Testbed};

/// Runs smime-acme with `args` on the state folder `state`: its output, and with --json its
/// JSON lines (every line of stdout must be one).
pub fn cli(state: &Path, args: &[&str]) -> (Output, Vec<Value>) {
    let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    all.extend(["--state-dir".into(), state.as_os_str().to_owned()]);
    let out = command(all).output().expect("smime-acme runs");
    let lines = if args.contains(&"--json") {
        json_lines(&out)
    } else {
        Vec::new()
    };
    (out, lines)
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect()
}

fn spawn(state: &Path, args: &[&str]) -> Child {
    let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    all.extend(["--state-dir".into(), state.as_os_str().to_owned()]);
    command(all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("smime-acme starts")
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Obtains a certificate for `mailbox` on the plain acme2certifier; its JSON result.
pub fn obtain(tb: &Testbed, mailbox: &str, state: &Path, extra: &[&str]) -> Value {
    obtain_with(mailbox, obtain_args(tb, mailbox, state, extra))
}

fn obtain_with(mailbox: &str, args: Vec<OsString>) -> Value {
    let out = {
        let _ca = ca_lock();
        command(args).output().expect("obtain runs")
    };
    ok(&out, &format!("obtain for {mailbox}"));
    serde_json::from_slice(&out.stdout).expect("obtain prints JSON")
}

/// The certificate folders kept for `mailbox`.
fn folders(state: &Path, mailbox: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(state.join("certs").join(mailbox))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn hex_serial(serial: &Value) -> String {
    serial
        .as_str()
        .expect("a serial")
        .replace(':', "")
        .trim_start_matches('0')
        .to_uppercase()
}

#[test]
fn renew_only_when_due_keeps_every_key_and_exports_them_all() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff21@example.test";
    let state = state_dir("renew-lifecycle");
    let first = obtain(&tb, mailbox, &state, &["--key-type", "p256"]);
    let answered = answers_from(&tb, mailbox)?;

    // Nothing due: exit 0, nothing sent, the next time and why.
    let (out, lines) = cli(&state, &["renew", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], "not-due", "{lines:?}");
    assert_eq!(lines[0]["email"], mailbox);
    assert_eq!(
        lines[0]["reason"], "ari",
        "acme2certifier gives a renewal window"
    );
    let next = lines[0]["next_renewal"].as_str().expect("next_renewal");
    let now = smime_acme::clock::rfc3339(smime_acme::clock::now());
    assert!(
        now.as_str() < next && next < first["not_after"].as_str().unwrap(),
        "{next} is after now ({now}) and before the end of validity"
    );
    assert_eq!(answers_from(&tb, mailbox)?, answered, "nothing was sent");
    // -q: silent when nothing happened; --dry-run: says, changes nothing.
    let (out, _) = cli(&state, &["renew", "-q"]);
    assert_eq!(code(&out), 0);
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    let (out, lines) = cli(&state, &["renew", "--dry-run", "--force", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["status"], "would-renew");
    assert_eq!(
        folders(&state, mailbox).len(),
        1,
        "a dry run changes nothing"
    );

    // Forced, with a deploy hook that records its environment.
    let hook_out = state.join("hook.env");
    let hook = format!("env | grep '^SMIME_ACME_' | sort > {}", hook_out.display());
    let (out, lines) = {
        let _ca = ca_lock();
        cli(
            &state,
            &["renew", "--force", "-q", "--json", "--deploy-hook", &hook],
        )
    };
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let renewed = &lines[0];
    assert_eq!(renewed["status"], "renewed", "{renewed}");
    assert_eq!(renewed["replaced_serial"], first["serial"]);
    assert_ne!(renewed["serial"], first["serial"]);
    let env = std::fs::read_to_string(&hook_out)?;
    assert!(
        env.contains(&format!("SMIME_ACME_EMAIL={mailbox}\n")),
        "{env}"
    );
    let p12 = renewed["files"]["p12"].as_str().expect("p12 path");
    assert!(env.contains(&format!("SMIME_ACME_P12={p12}\n")), "{env}");
    assert!(Path::new(p12).is_file());
    // A fresh key; the old key and certificate stay.
    assert_eq!(folders(&state, mailbox).len(), 2);
    let (old, new) = (
        Path::new(first["folder"].as_str().expect("folder")),
        Path::new(renewed["folder"].as_str().expect("folder")),
    );
    let old_key = std::fs::read(old.join("key.pem"))?;
    assert_ne!(old_key, std::fs::read(new.join("key.pem"))?);
    assert!(old.join("cert.pem").is_file());

    // --days longer than the 30-day lifetime makes it due.
    let (out, lines) = {
        let _ca = ca_lock();
        cli(&state, &["renew", "--days", "400", "--json"])
    };
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["status"], "renewed");
    assert_eq!(lines[0]["reason"], "days");
    assert_eq!(folders(&state, mailbox).len(), 3);

    // list and show.
    let (out, lines) = cli(&state, &["list", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines.len(), 1);
    let newest = lines[0]["serial"].clone();
    assert_ne!(
        newest, renewed["serial"],
        "the newest certificate is listed"
    );
    assert_eq!(lines[0]["status"], "valid");
    assert_eq!(lines[0]["key_type"], "p256");
    assert!(
        lines[0]["days_left"]
            .as_i64()
            .is_some_and(|d| (28..=30).contains(&d))
    );
    let (out, lines) = cli(&state, &["show", mailbox, "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["history"].as_array().map(Vec::len), Some(3));
    let (out, _) = cli(&state, &["list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("EMAIL") && table.contains(mailbox),
        "{table}"
    );

    // Every key in one PKCS#12, as OpenSSL reads it.
    let export = state.join("all.p12");
    let (out, lines) = cli(
        &state,
        &[
            "export",
            mailbox,
            "--all-keys",
            "--json",
            "--out",
            export.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["keys"], 3);
    let password = state.join("all.p12.password");
    let text = ok(
        &tool(
            "openssl",
            &[
                "pkcs12",
                "-info",
                "-nodes",
                "-in",
                export.to_str().unwrap(),
                "-passin",
                &format!("file:{}", password.display()),
            ],
        ),
        "openssl pkcs12",
    );
    assert_eq!(
        text.matches("-----BEGIN PRIVATE KEY-----").count(),
        3,
        "{text}"
    );
    // Three leaves and the one intermediate.
    assert_eq!(
        text.matches("-----BEGIN CERTIFICATE-----").count(),
        4,
        "{text}"
    );
    assert_eq!(
        text.matches(&format!("friendlyName: {mailbox} (")).count(),
        6,
        "each key and its leaf are named: {text}"
    );
    // PEM export of the current certificate.
    let pem = state.join("current.pem");
    let (out, _) = cli(
        &state,
        &[
            "export",
            mailbox,
            "--format",
            "pem",
            "--out",
            pem.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = std::fs::read_to_string(&pem)?;
    assert_eq!(text.matches("-----BEGIN PRIVATE KEY-----").count(), 1);
    assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 2);

    // --reuse-key certifies the current key again.
    let (_, shown) = cli(&state, &["show", mailbox, "--json"]);
    let before = PathBuf::from(shown[0]["folder"].as_str().expect("folder"));
    let (out, lines) = {
        let _ca = ca_lock();
        cli(&state, &["renew", "--force", "--reuse-key", "--json"])
    };
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["status"], "renewed");
    let after = PathBuf::from(lines[0]["folder"].as_str().expect("folder"));
    assert_ne!(after, before);
    assert_eq!(
        std::fs::read(after.join("key.pem"))?,
        std::fs::read(before.join("key.pem"))?
    );
    assert_eq!(folders(&state, mailbox).len(), 4);
    Ok(())
}

#[test]
fn renew_goes_on_past_a_failure_and_says_which() -> TestResult {
    let tb = Testbed::get();
    let state = state_dir("renew-some-fail");
    let mailboxes = [
        "staff22@example.test",
        "staff23@example.test",
        "staff24@example.test",
    ];
    // staff23's password comes from a file that later holds a wrong one.
    let password_file = state.join("staff23.password");
    std::fs::write(&password_file, tb.password(mailboxes[1]))?;
    for mailbox in mailboxes {
        let mut args = obtain_args(&tb, mailbox, &state, &[]);
        if mailbox == mailboxes[1] {
            args = with_flag(args, "--password-file", password_file.as_os_str());
        }
        obtain_with(mailbox, args);
    }
    std::fs::write(&password_file, "not-the-password\n")?;
    let (out, lines) = {
        let _ca = ca_lock();
        cli(&state, &["renew", "--force", "--json"])
    };
    assert_eq!(code(&out), 3, "some failed: {}", stderr(&out));
    let status: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["email"].as_str().unwrap(), l["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        status,
        [
            (mailboxes[0], "renewed"),
            (mailboxes[1], "failed"),
            (mailboxes[2], "renewed")
        ]
    );
    assert_eq!(lines[1]["error"], "mail", "{}", lines[1]);
    assert!(
        lines[1]["message"].as_str().unwrap().contains("login"),
        "{}",
        lines[1]
    );
    let log = stderr(&out);
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(errors[0].contains(mailboxes[1]), "{log}");
    Ok(())
}

/// Holds the lock file of `mailbox` in `state`, as a running smime-acme would.
fn hold_lock(state: &Path, mailbox: &str) -> File {
    let file = OpenOptions::new()
        .write(true)
        .open(state.join("locks").join(format!("{mailbox}.lock")))
        .expect("the lock file exists");
    file.try_lock().expect("the lock is free");
    file
}

#[test]
fn one_renewal_per_mailbox_at_a_time_and_different_mailboxes_in_parallel() -> TestResult {
    let tb = Testbed::get();
    let state = state_dir("renew-locks");
    let (a, b) = ("staff25@example.test", "staff26@example.test");
    obtain(&tb, a, &state, &["--key-type", "p256"]);
    obtain(&tb, b, &state, &["--key-type", "p256"]);

    // Two forced runs for the same mailbox at once: one renews, the other has the lock code.
    let (first, second) = {
        let _ca = ca_lock();
        let one = spawn(&state, &["renew", "--force", "--json", a]);
        let two = spawn(&state, &["renew", "--force", "--json", a]);
        (one.wait_with_output(), two.wait_with_output())
    };
    let (first, second) = (first?, second?);
    let mut codes = [code(&first), code(&second)];
    codes.sort_unstable();
    assert_eq!(codes, [0, 4], "{}\n{}", stderr(&first), stderr(&second));
    let loser = if code(&first) == 4 { &first } else { &second };
    assert!(
        stderr(loser).contains(&format!("another smime-acme run is working on {a}")),
        "{}",
        stderr(loser)
    );
    assert_eq!(json_lines(loser)[0]["error"], "locked");
    assert_eq!(folders(&state, a).len(), 2, "exactly one renewal");

    // While a's lock is held, b renews; a run for a without --wait-lock gives up at once, one
    // with it waits, then finds nothing due.
    let held = hold_lock(&state, a);
    let (out, lines) = {
        let _ca = ca_lock();
        cli(&state, &["renew", "--force", "--json", b])
    };
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["status"], "renewed");
    let (out, _) = cli(&state, &["renew", a]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let mut waiting = spawn(&state, &["renew", "--json", "--wait-lock", "60s", a]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(waiting.try_wait()?.is_none(), "it waits for the lock");
    drop(held);
    let out = waiting.wait_with_output()?;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json_lines(&out)[0]["status"], "not-due");
    Ok(())
}

/// The serial numbers on acme2certifier's revocation list (upper-case hex, no leading zeros).
fn revoked_on_crl() -> Vec<String> {
    let crl = crate::testbed::state_dir().join("acme/acme/issuing.crl");
    ok(
        &tool(
            "openssl",
            &["crl", "-noout", "-text", "-in", crl.to_str().unwrap()],
        ),
        "openssl crl",
    )
    .lines()
    .filter_map(|line| line.trim().strip_prefix("Serial Number: "))
    .map(|serial| serial.trim_start_matches('0').to_uppercase())
    .collect()
}

#[test]
fn revoke_with_the_account_key_and_renew_leaves_it_alone() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff27@example.test";
    let state = state_dir("revoke-account-key");
    let issued = obtain(&tb, mailbox, &state, &["--key-type", "p256"]);
    let (out, lines) = cli(
        &state,
        &["revoke", mailbox, "--reason", "key-compromise", "--json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["status"], "revoked");
    let crl = revoked_on_crl();
    assert!(
        crl.contains(&hex_serial(&issued["serial"])),
        "the CA lists {} as revoked: {crl:?}",
        issued["serial"]
    );
    // Again: the CA's alreadyRevoked, said clearly.
    let (out, _) = cli(&state, &["revoke", mailbox]);
    assert_eq!(code(&out), 5);
    assert!(stderr(&out).contains("already revoked"), "{}", stderr(&out));
    // renew skips it; list says so.
    let (out, lines) = cli(&state, &["renew", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["status"], "revoked");
    let (_, lines) = cli(&state, &["list", "--json"]);
    assert_eq!(lines[0]["status"], "revoked");
    Ok(())
}

/// GET on the fake CA (test root trusted).
fn fake_get(tb: &Testbed, ca: &MailOnPostCa, path: &str) -> TestResult<Value> {
    let https = reqwest::blocking::Client::builder()
        .tls_backend_preconfigured((*tb.tls(true)).clone())
        .build()?;
    let url = ca.url.replace("/directory", path);
    Ok(serde_json::from_slice(&https.get(url).send()?.bytes()?)?)
}

#[test]
fn replacements_and_revocation_by_the_certificate_key() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let ca = MailOnPostCa::start();
    let mailbox = "staff28@example.test";
    let state = state_dir("fake-ca-lifecycle");
    let args = with_flag(
        obtain_args(
            &tb,
            mailbox,
            &state,
            &[
                "--key-type",
                "ed25519",
                "--usage",
                "sign",
                "--challenge-timing",
                "post-first",
            ],
        ),
        "--server",
        &ca.url,
    );
    let out = command(args).output()?;
    ok(&out, "obtain from the fake CA");
    let first: Value = serde_json::from_slice(&out.stdout)?;

    // Nothing due while the CA's window lies ahead; once it has passed, renewed, through the
    // connection opened to ask (one directory fetch), with an order naming the certificate it
    // replaces (RFC 9773 identifier).
    let (out, lines) = cli(&state, &["renew", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["status"], "not-due");
    std::fs::remove_file(
        Path::new(first["folder"].as_str().expect("folder")).join("renewal-info.json"),
    )?;
    fake_get(&tb, &ca, "/renewal-due")?;
    let directory_gets = |stats: Value| stats["directory"].as_u64().expect("count");
    let before = directory_gets(fake_get(&tb, &ca, "/stats")?);
    let (out, lines) = cli(&state, &["renew", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["status"], "renewed");
    assert_eq!(lines[0]["reason"], "ari");
    assert_eq!(directory_gets(fake_get(&tb, &ca, "/stats")?), before + 1);
    let orders = fake_get(&tb, &ca, "/orders")?;
    let last = &orders.as_array().unwrap()[orders.as_array().unwrap().len() - 1];
    assert_eq!(
        last["replaces_serial"].as_str().map(str::to_uppercase),
        Some(hex_serial(&first["serial"])),
        "replaces names the first certificate: {orders}"
    );

    // A CA that refuses the replacement: ordered again without it.
    fake_get(&tb, &ca, "/refuse-replaces")?;
    let (out, lines) = cli(&state, &["renew", "--force", "--json", "-v"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["status"], "renewed");
    let orders = fake_get(&tb, &ca, "/orders")?;
    let orders = orders.as_array().unwrap();
    let n = orders.len();
    assert!(orders[n - 2]["replaces"].is_string(), "{orders:?}");
    assert!(orders[n - 1]["replaces"].is_null(), "{orders:?}");
    assert!(
        stderr(&out).contains("ordering without \"replaces\""),
        "{}",
        stderr(&out)
    );

    // Revocation signed by the (Ed25519) certificate key, then again.
    let current = lines[0]["serial"].clone();
    let (out, _) = cli(&state, &["revoke", mailbox, "--sign-with-cert-key"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let revoked = fake_get(&tb, &ca, "/revoked")?;
    assert_eq!(
        revoked.as_array().map(|r| r
            .iter()
            .map(|s| s.as_str().unwrap().to_uppercase())
            .collect::<Vec<_>>()),
        Some(vec![hex_serial(&current)])
    );
    let (out, _) = cli(&state, &["revoke", mailbox, "--sign-with-cert-key"]);
    assert_eq!(code(&out), 5);
    assert!(stderr(&out).contains("already revoked"), "{}", stderr(&out));
    // The first certificate, by file and its key, with the account lost.
    let oldest = Path::new(first["folder"].as_str().expect("folder")).join("cert.pem");
    std::fs::remove_dir_all(state.join("accounts"))?;
    let (out, _) = cli(
        &state,
        &[
            "revoke",
            "--cert",
            oldest.to_str().unwrap(),
            "--sign-with-cert-key",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let revoked = fake_get(&tb, &ca, "/revoked")?;
    assert_eq!(revoked.as_array().map(Vec::len), Some(2), "{revoked}");
    Ok(())
}

/// Two first runs against one CA at once, sharing a state folder: one registers, the other
/// waits for it and finds the account kept (a second `register` is refused), so one account.
#[test]
fn two_first_registrations_at_once_make_one_account() -> TestResult {
    let tb = Testbed::get();
    let state = state_dir("account-race");
    let server = tb.var("SMIME_ACME_SERVER");
    let bundle = tb.var("SMIME_ACME_CA_BUNDLE");
    let args: Vec<&str> = vec![
        "account",
        "register",
        "--contact",
        "staff45@example.test",
        "--agree-tos",
        "--server",
        server,
        "--ca-bundle",
        bundle,
        "--json",
    ];
    let (first, second) = std::thread::scope(|s| {
        let a = s.spawn(|| cli(&state, &args));
        let b = s.spawn(|| cli(&state, &args));
        (a.join(), b.join())
    });
    let (first, second) = (first.expect("first run").0, second.expect("second run").0);
    let mut codes = [code(&first), code(&second)];
    codes.sort();
    assert_eq!(
        codes,
        [0, 2],
        "one registers, the other finds it kept: {} / {}",
        stderr(&first),
        stderr(&second)
    );
    let accounts = std::fs::read_dir(state.join("accounts"))?.count();
    assert_eq!(accounts, 1, "one account folder");
    Ok(())
}

#[test]
fn account_key_rollover_then_deactivation() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff29@example.test";
    let state = state_dir("account-rollover");
    let server = tb.var("SMIME_ACME_SERVER");
    let bundle = tb.var("SMIME_ACME_CA_BUNDLE");
    let account = |args: &[&str]| {
        let mut all = vec!["account"];
        all.extend_from_slice(args);
        all.extend(["--server", server, "--ca-bundle", bundle, "--json"]);
        cli(&state, &all)
    };
    let (out, lines) = account(&["register", "--contact", mailbox, "--agree-tos"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["status"], "valid");
    let url = lines[0]["url"].clone();
    let (out, _) = account(&["register", "--agree-tos"]);
    assert_eq!(
        code(&out),
        2,
        "an account is kept already: {}",
        stderr(&out)
    );

    let key_file = std::fs::read_dir(state.join("accounts"))?
        .next()
        .expect("an account folder")?
        .path()
        .join("account.key");
    let old_key = std::fs::read(&key_file)?;
    let (out, lines) = account(&["rollover"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["url"], url, "the same account");
    assert_ne!(std::fs::read(&key_file)?, old_key, "a new key is kept");
    let other = "staff31@example.test";
    let (out, lines) = account(&["update", "--contact", other]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        lines[0]["contact"],
        serde_json::json!([format!("mailto:{other}")])
    );
    let (out, lines) = account(&["show"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["url"], url);
    assert_eq!(lines[0]["status"], "valid");
    assert_eq!(
        lines[0]["contact"],
        serde_json::json!([format!("mailto:{other}")])
    );
    // The new key works for an issuance…
    obtain(&tb, mailbox, &state, &["--key-type", "p256"]);
    // …and the old one is refused.
    let old_state = state_dir("account-rollover-old-key");
    let copy = old_state.join(key_file.strip_prefix(&state)?);
    std::fs::create_dir_all(copy.parent().unwrap())?;
    std::fs::copy(
        key_file.with_file_name("account.json"),
        copy.with_file_name("account.json"),
    )?;
    std::fs::write(&copy, &old_key)?;
    let (out, _) = {
        let mut all = vec!["account", "show", "--server", server, "--ca-bundle", bundle];
        all.extend(["--state-dir", old_state.to_str().unwrap()]);
        (command(all.iter().map(Into::into).collect()).output()?, ())
    };
    assert_eq!(code(&out), 5, "the old key is refused: {}", stderr(&out));

    // Deactivation needs --yes without a terminal; afterwards orders are refused.
    let (out, _) = account(&["deactivate"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    let (out, lines) = account(&["deactivate", "--yes"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["status"], "deactivated");
    let out = {
        let _ca = ca_lock();
        obtain_command(&tb, mailbox, &state, &[]).output()?
    };
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let log = stderr(&out);
    let error = log.lines().last().unwrap_or("");
    assert!(
        error.contains("the CA refused") && error.contains("deactivated"),
        "{log}"
    );
    Ok(())
}

#[test]
fn register_with_external_account_binding() -> TestResult {
    let tb = Testbed::get();
    let server = tb.var("SMIME_ACME_EAB_SERVER");
    let bundle = tb.var("SMIME_ACME_CA_BUNDLE");
    let kid = tb.var("TESTBED_EAB_KID");
    let register = |state: &Path, key_file: &str| {
        cli(
            state,
            &[
                "account",
                "register",
                "--server",
                server,
                "--ca-bundle",
                bundle,
                "--agree-tos",
                "--contact",
                "staff30@example.test",
                "--eab-kid",
                kid,
                "--eab-hmac-key-file",
                key_file,
                "--json",
            ],
        )
    };
    let state = state_dir("eab-register-wrong");
    let wrong = state.join("wrong.key");
    std::fs::write(&wrong, "c2VjcmV0LWJ1dC1ub3QtdGhlLW9uZQ\n")?;
    let (out, _) = register(&state, wrong.to_str().unwrap());
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("the CA refused: ") && log.contains("unauthorized"),
        "{log}"
    );
    assert!(!log.contains("c2VjcmV0"), "the key is not shown");

    let state = state_dir("eab-register");
    let (out, lines) = register(&state, tb.var("TESTBED_EAB_HMAC_KEY_FILE"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["status"], "valid");
    Ok(())
}
