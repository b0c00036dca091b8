//! `smime-acme doctor` against the testbed: every check passing, a submission server that does
//! not sign, a refused login, an unreachable CA, a CA that requires external account binding,
//! and a state folder open to others; each with its exit status and the failing line.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::obtain::{command, obtain_args, run, state_dir, stderr, with_flag};
use crate::testbed::{Testbed, fetch_all};

/// `doctor` with obtain's testbed arguments for `mailbox`, changed by `change`.
fn doctor(
    tb: &Testbed,
    mailbox: &str,
    state: &std::path::Path,
    change: impl FnOnce(Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString>,
) -> (std::process::Output, Value) {
    let mut args = obtain_args(tb, mailbox, state, &[]);
    args[0] = "doctor".into();
    run(command(change(args)))
}

/// The result of each check, by name.
fn results(json: &Value) -> Vec<(String, String)> {
    json["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in {json}"))
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap_or_default().to_owned(),
                c["result"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn result_of<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["check"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {json}"))
}

fn test_mails_left(tb: &Testbed, mailbox: &str) -> usize {
    fetch_all(tb, mailbox)
        .expect("read the mailbox")
        .iter()
        .filter(|raw| String::from_utf8_lossy(raw).contains("smime-acme doctor"))
        .count()
}

#[test]
fn everything_passes_on_a_signing_mail_server() {
    let tb = Testbed::get();
    let mailbox = "staff80@example.test";
    let state = state_dir("doctor-pass");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (out, json) = doctor(&tb, mailbox, &state, |a| a);
    assert_eq!(out.status.code(), Some(0), "{json}\n{}", stderr(&out));
    assert_eq!(json["status"], "ok");
    let names: Vec<String> = results(&json).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "configuration",
            "ca",
            "imap",
            "smtp",
            "test mail",
            "dkim",
            "authentication-results",
            "clock",
            "state folder"
        ]
    );
    for (name, result) in results(&json) {
        assert_eq!(result, "pass", "{name}: {json}");
    }
    assert!(
        result_of(&json, "dkim")["detail"]
            .as_str()
            .unwrap()
            .contains("d=example.test")
    );
    assert!(
        result_of(&json, "authentication-results")["detail"]
            .as_str()
            .unwrap()
            .contains("dkim=pass")
    );
    assert!(
        result_of(&json, "ca")["detail"]
            .as_str()
            .unwrap()
            .contains("(ARI) offered")
    );
    assert_eq!(test_mails_left(&tb, mailbox), 0, "the test mail is removed");
}

#[test]
fn a_submission_server_that_does_not_sign_fails_with_status_6() {
    let tb = Testbed::get();
    let mailbox = "staff81@example.test";
    let state = state_dir("doctor-unsigned");
    let unsigned = tb.var("TESTBED_SUBMISSIONS_UNSIGNED").to_owned();
    let (out, json) = doctor(&tb, mailbox, &state, |a| with_flag(a, "--smtp", unsigned));
    assert_eq!(out.status.code(), Some(6), "{json}\n{}", stderr(&out));
    assert_eq!(json["status"], "failed");
    assert_eq!(json["exit_code"], 6);
    let dkim = result_of(&json, "dkim");
    assert_eq!(dkim["result"], "fail", "{json}");
    assert!(dkim["detail"].as_str().unwrap().contains("not DKIM-signed"));
    assert!(dkim["fix"].as_str().unwrap().contains("RFC 8823"));
    assert_eq!(result_of(&json, "test mail")["result"], "pass");
    assert_eq!(result_of(&json, "authentication-results")["result"], "warn");
    // The words say the same, with what to do.
    let mut args = obtain_args(&tb, mailbox, &state, &[]);
    args[0] = "doctor".into();
    args.retain(|a| a != "--json");
    let args = with_flag(args, "--smtp", tb.var("TESTBED_SUBMISSIONS_UNSIGNED"));
    let (out, _) = run(command(args));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("fail") && l.contains("dkim")),
        "{text}"
    );
    assert!(text.contains("→ a CA checks"), "{text}");
    assert_eq!(test_mails_left(&tb, mailbox), 0);
}

#[test]
fn a_refused_login_fails_imap_and_smtp_and_skips_the_test_mail() {
    let tb = Testbed::get();
    let state = state_dir("doctor-login");
    let wrong =
        std::path::Path::new(tb.var("TESTBED_PASSWORDS")).join("staff83@example.test.password");
    let (out, json) = doctor(&tb, "staff82@example.test", &state, |a| {
        with_flag(a, "--password-file", wrong)
    });
    assert_eq!(out.status.code(), Some(6), "{json}\n{}", stderr(&out));
    assert_eq!(result_of(&json, "imap")["result"], "fail");
    assert_eq!(result_of(&json, "smtp")["result"], "fail");
    assert_eq!(result_of(&json, "test mail")["result"], "skip");
    assert_eq!(result_of(&json, "ca")["result"], "pass");
    let text = json.to_string();
    assert!(
        !text.contains(&tb.password("staff83@example.test")),
        "no password in the report"
    );
}

#[test]
fn an_unreachable_ca_fails_with_status_8_and_a_bad_setting_with_2() {
    let tb = Testbed::get();
    let state = state_dir("doctor-ca");
    let (out, json) = doctor(&tb, "staff84@example.test", &state, |a| {
        with_flag(a, "--server", "https://127.0.0.1:9/directory")
    });
    assert_eq!(out.status.code(), Some(8), "{json}\n{}", stderr(&out));
    assert_eq!(result_of(&json, "ca")["result"], "fail");
    assert_eq!(result_of(&json, "clock")["result"], "skip");
    // The mail checks still run, and pass.
    assert_eq!(result_of(&json, "imap")["result"], "pass");

    let (out, json) = doctor(&tb, "staff84@example.test", &state, |a| {
        with_flag(a, "--server", "http://127.0.0.1:9/directory")
    });
    assert_eq!(out.status.code(), Some(2), "{json}\n{}", stderr(&out));
    assert_eq!(result_of(&json, "configuration")["result"], "fail");
    assert_eq!(result_of(&json, "imap")["result"], "skip");
}

#[test]
fn a_ca_requiring_account_binding_without_it_fails_with_status_2() {
    let tb = Testbed::get();
    let state = state_dir("doctor-eab");
    let eab = tb.var("SMIME_ACME_EAB_SERVER").to_owned();
    let (out, json) = doctor(&tb, "staff84@example.test", &state, |a| {
        with_flag(a, "--server", eab)
    });
    assert_eq!(out.status.code(), Some(2), "{json}\n{}", stderr(&out));
    let ca = result_of(&json, "ca");
    assert!(
        ca["detail"]
            .as_str()
            .unwrap()
            .contains("requires external account binding")
    );
    assert!(ca["fix"].as_str().unwrap().contains("--eab-kid"));
}

#[test]
fn a_state_folder_open_to_others_fails_with_status_1() {
    let tb = Testbed::get();
    let state = state_dir("doctor-state");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (out, json) = doctor(&tb, "staff85@example.test", &state, |a| a);
    assert_eq!(out.status.code(), Some(1), "{json}\n{}", stderr(&out));
    let check = result_of(&json, "state folder");
    assert_eq!(check["result"], "fail");
    assert!(check["fix"].as_str().unwrap().contains("chmod -R go-rwx"));
    assert_eq!(result_of(&json, "dkim")["result"], "pass");
}
