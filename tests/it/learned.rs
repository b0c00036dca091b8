//! What smime-acme learns about a CA: the token join (ordering once more with the other join
//! when the CA rejects the reply) and when the CA sends its challenge mail, kept per CA in the
//! state folder; and the CAs known by name. Against the fault-injecting CA switched to joining
//! the token parts as octets with a 22-character token-part1, as CASTLE does.

use std::path::Path;

use serde_json::Value;

use crate::obtain::{ca_lock, command, obtain_args, run, state_dir, stderr, with_flag};
use crate::testbed::{MailOnPostCa, TestResult, Testbed};

/// GET on the fake CA (test root trusted).
fn fake_get(tb: &Testbed, ca: &MailOnPostCa, path: &str) -> TestResult<Value> {
    let https = reqwest::blocking::Client::builder()
        .tls_backend_preconfigured((*tb.tls(true)).clone())
        .build()?;
    let url = ca.url.replace("/directory", path);
    Ok(serde_json::from_slice(&https.get(url).send()?.bytes()?)?)
}

/// The orders the fake CA saw.
fn orders(tb: &Testbed, ca: &MailOnPostCa) -> TestResult<Vec<Value>> {
    Ok(fake_get(tb, ca, "/orders")?
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// Seconds between the order's first authorization fetch and its challenge POST, as the CA saw
/// them.
fn post_delay(order: &Value) -> f64 {
    let at = |key: &str| {
        order[key]
            .as_f64()
            .unwrap_or_else(|| panic!("no {key}: {order}"))
    };
    at("posted_at") - at("authz_fetched_at")
}

/// The obtain command for `mailbox` at the fake CA.
fn obtain_at(
    tb: &Testbed,
    ca: &MailOnPostCa,
    mailbox: &str,
    state: &Path,
    extra: &[&str],
) -> std::process::Command {
    let mut flags = vec!["--key-type", "p256"];
    flags.extend(extra);
    command(with_flag(
        obtain_args(tb, mailbox, state, &flags),
        "--server",
        &ca.url,
    ))
}

/// The single `learned.json` of the state folder.
fn learned_file(state: &Path) -> TestResult<Value> {
    let accounts = std::fs::read_dir(state.join("accounts"))?;
    let files: Vec<_> = accounts
        .filter_map(Result::ok)
        .map(|e| e.path().join("learned.json"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(files.len(), 1, "one CA learned about: {files:?}");
    Ok(serde_json::from_slice(&std::fs::read(&files[0])?)?)
}

#[test]
fn the_join_and_the_timing_are_learned_once_and_used_at_once_next_time() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let ca = MailOnPostCa::start();
    fake_get(&tb, &ca, "/byte-join")?;
    let state = state_dir("learned-bytes");

    // Nothing known: the string join, the first wait; the CA rejects the reply, one more order
    // with the octet join validates, and both facts are kept.
    let (out, json) = run(obtain_at(&tb, &ca, "staff70@example.test", &state, &[]));
    let log = stderr(&out);
    assert!(out.status.success(), "first obtain failed: {log}");
    assert_eq!(json["status"], "issued", "{json}");
    assert_eq!(json["token_join"], "bytes", "{json}");
    assert!(log.contains("token join string (the default"), "{log}");
    assert!(log.contains("no challenge mail after 15s"), "{log}");
    assert!(
        log.contains("ordering once more, answered with the bytes join"),
        "{log}"
    );
    assert!(
        log.contains("joins the token parts as bytes (kept in"),
        "{log}"
    );
    assert!(
        log.contains("mails only after the challenge POST (kept in"),
        "{log}"
    );
    let seen = orders(&tb, &ca)?;
    assert_eq!(seen.len(), 2, "two orders: {seen:?}");
    assert_eq!(seen[0]["result"], "invalid", "the first reply was wrong");
    assert_eq!(seen[1]["result"], "valid", "the second reply was right");
    assert!(
        post_delay(&seen[0]) >= 14.0,
        "the first order waited for a mail: {}",
        seen[0]
    );
    assert!(
        post_delay(&seen[1]) < 5.0,
        "once learned, the CA is told at once: {}",
        seen[1]
    );
    let learned = learned_file(&state)?;
    assert_eq!(learned["token_join"], "bytes", "{learned}");
    assert_eq!(learned["mail_timing"], "after-post", "{learned}");
    assert_eq!(learned["server"], ca.url.as_str(), "{learned}");

    // Another mailbox, the same state folder: one order, answered right, the CA told at once.
    let (out, json) = run(obtain_at(&tb, &ca, "staff71@example.test", &state, &[]));
    let log = stderr(&out);
    assert!(out.status.success(), "second obtain failed: {log}");
    assert_eq!(json["token_join"], "bytes", "{json}");
    assert!(
        log.contains("token join bytes (learned from this CA)"),
        "{log}"
    );
    assert!(
        log.contains(
            "challenge timing post-first (learned from this CA: the CA mails only after the challenge POST)"
        ),
        "{log}"
    );
    assert!(!log.contains("ordering once more"), "{log}");
    assert!(!log.contains("no challenge mail after 15s"), "{log}");
    let seen = orders(&tb, &ca)?;
    assert_eq!(seen.len(), 3, "one more order only: {seen:?}");
    assert_eq!(seen[2]["result"], "valid");
    assert!(post_delay(&seen[2]) < 5.0, "no first wait: {}", seen[2]);
    Ok(())
}

#[test]
fn a_set_join_is_never_retried_and_a_rerun_orders_once_more_after_the_refusal() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let ca = MailOnPostCa::start();
    fake_get(&tb, &ca, "/byte-join")?;
    let state = state_dir("learned-set-join");
    let mailbox = "staff72@example.test";
    let timing = ["--challenge-timing", "post-first"];

    let mut set = timing.to_vec();
    set.extend(["--token-join", "string"]);
    let (out, json) = run(obtain_at(&tb, &ca, mailbox, &state, &set));
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{log}");
    assert_eq!(json["error"], "ca_refused", "{json}");
    assert!(log.contains("incorrectResponse"), "{log}");
    assert!(!log.contains("ordering once more"), "{log}");
    assert!(log.contains("token join string (as set"), "{log}");
    let seen = orders(&tb, &ca)?;
    assert_eq!(seen.len(), 1, "a set join is not retried: {seen:?}");
    assert_eq!(seen[0]["result"], "invalid");
    assert!(
        !state.join("accounts").read_dir()?.any(|e| e
            .map(|e| e.path().join("learned.json").exists())
            .unwrap_or(false)),
        "nothing learned from a refusal"
    );

    // The journal still holds the refused order, as a run killed right after the refusal would
    // leave it: with `auto`, the rerun finds the order invalid for the join and makes the one
    // more order (a new one), and answers no mail twice.
    let (out, json) = run(obtain_at(&tb, &ca, mailbox, &state, &timing));
    let log = stderr(&out);
    assert!(out.status.success(), "rerun failed: {log}");
    assert_eq!(json["token_join"], "bytes", "{json}");
    assert_eq!(json["challenge_mails_answered"], 1, "{json}");
    assert!(log.contains("the saved order is invalid"), "{log}");
    assert!(
        log.contains("ordering once more, answered with the bytes join"),
        "{log}"
    );
    assert!(
        log.contains("token join bytes (the CA rejected the other join)"),
        "{log}"
    );
    let seen = orders(&tb, &ca)?;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1]["result"], "valid");
    assert_eq!(learned_file(&state)?["token_join"], "bytes");
    Ok(())
}

#[test]
fn known_cas_are_named_and_unknown_names_listed() -> TestResult {
    let state = state_dir("learned-names");
    let missing = state.join("no-such-password");
    let base = |server: &str| {
        command(
            [
                "obtain",
                "staff73@example.test",
                "-v",
                "--server",
                server,
                "--imap",
                "127.0.0.1:9",
                "--password-file",
                missing.to_str().unwrap(),
                "--state-dir",
                state.to_str().unwrap(),
            ]
            .map(std::ffi::OsString::from)
            .to_vec(),
        )
    };
    // Resolved, and said at -v, before anything is contacted (the password file is missing).
    let (out, _) = run(base("castle"));
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains(
            "known CA castle (https://acme.castle.cloud/acme/directory): joins the token parts as bytes"
        ),
        "{log}"
    );
    assert!(log.contains("no-such-password"), "{log}");

    let (out, _) = run(base("castel"));
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("castle, castle-staging"), "{log}");
    assert!(!log.contains("no-such-password"), "refused first: {log}");

    // In a manifest: the name is taken; an unknown one is reported with its line.
    let password = state.join("password");
    std::fs::write(&password, "x\n")?;
    let manifest = state.join("staff.toml");
    let write = |server: &str| {
        std::fs::write(
            &manifest,
            format!(
                "[defaults]\nserver = \"{server}\"\nimap = \"127.0.0.1:9\"\npassword-file = \"{}\"\n\n[[mailbox]]\nemail = \"staff74@example.test\"\n",
                password.display()
            ),
        )
    };
    let provision = || {
        command(
            [
                "provision",
                manifest.to_str().unwrap(),
                "--dry-run",
                "--json",
                "--state-dir",
                state.to_str().unwrap(),
            ]
            .map(std::ffi::OsString::from)
            .to_vec(),
        )
    };
    write("castle-staging")?;
    let out = provision().output()?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("would-issue"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    write("kastle")?;
    let out = provision().output()?;
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("staff.toml")
            && log.contains("server:")
            && log.contains("castle, castle-staging"),
        "{log}"
    );
    Ok(())
}
