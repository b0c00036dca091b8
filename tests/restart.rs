//! The IMAP server restarted (the Dovecot master and every session with it) while `obtain` waits in
//! IDLE for a challenge mail: the run reconnects and issues. A test binary of its own: cargo
//! runs test binaries one after another, so restarting the testbed's mail server here disturbs
//! no other test.

#[allow(dead_code)]
#[path = "it/testbed.rs"]
mod testbed;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testbed::{MailOnPostCa, Testbed};

/// Runs a Dovecot command on the testbed's configuration, its output appended to the testbed's
/// Dovecot start log (the master keeps it open once started).
fn dovecot(args: &[&str]) -> std::process::ExitStatus {
    let conf = testbed::state_dir().join("dovecot/dovecot.conf");
    let log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(testbed::state_dir().join("logs/dovecot-start.log"))
            .expect("the testbed's log folder")
    };
    let (program, rest) = args.split_first().expect("a program");
    Command::new(program)
        .arg("-c")
        .arg(conf)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(log())
        .stderr(log())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): run `sudo tests/testbed/install`"))
}

#[test]
fn a_restart_of_the_imap_server_during_idle_is_survived() {
    let tb = Testbed::get();
    let ca = MailOnPostCa::start();
    let mailbox = "staff43@example.test";
    let state = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/it-state/imap-restart");
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).expect("state folder");
    let password = Path::new(tb.var("TESTBED_PASSWORDS")).join(format!("{mailbox}.password"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smime-acme"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SMIME_ACME_") {
            cmd.env_remove(key);
        }
    }
    cmd.args([
        "obtain",
        mailbox,
        "--agree-tos",
        "-v",
        "--json",
        "--key-type",
        "p256",
    ])
    .args(["--server", &ca.url])
    .args(["--ca-bundle", tb.var("SMIME_ACME_CA_BUNDLE")])
    .args(["--imap", tb.var("TESTBED_IMAPS")])
    .args(["--smtp", tb.var("TESTBED_SUBMISSIONS")])
    .args(["--dns-server", tb.var("TESTBED_DNS")])
    .args(["--timeout", "90s"])
    .arg("--password-file")
    .arg(&password)
    .arg("--state-dir")
    .arg(&state)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("smime-acme runs");

    // The CA mails only after the POST, some 15 s after the challenge is known; past the first
    // 10 s of quick checks the run waits in IDLE. Then the whole IMAP server goes away.
    let pending = state.join("pending").join(format!("{mailbox}.json"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&pending).is_ok_and(|t| t.contains("challenge_url\": \"https")) {
        assert!(Instant::now() < deadline, "the run never got its challenge");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the run ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(11));
    // Stopped as a service manager stops it: the master, and every session process with it.
    assert!(
        dovecot(&["doveadm", "stop"]).success(),
        "doveadm stop failed"
    );
    let base = tb.addr("TESTBED_DNS").port() - 53;
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("pkill")
        .args([
            "-KILL",
            "-f",
            &format!("^dovecot-smime-acme-testbed-{base}/"),
        ])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if dovecot(&["dovecot"]).success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dovecot did not start again (see target/testbed/logs/dovecot-start.log)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let out = child.wait_with_output().expect("the run ends");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "obtain failed after the restart: {log}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["status"], "issued");
    assert!(
        log.contains("reconnecting"),
        "the restart was noticed: {log}"
    );
}
