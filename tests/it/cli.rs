//! The binary's command-line surface: help, version and usage errors. Needs no testbed.

use std::path::PathBuf;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smime-acme"))
        .args(args)
        .output()
        .expect("the smime-acme binary runs")
}

#[test]
fn version_prints_name_and_version() {
    let out = run(&["--version"]);
    assert!(out.status.success(), "--version failed: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("smime-acme {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_describes_the_tool() {
    let out = run(&["--help"]);
    assert!(out.status.success(), "--help failed: {out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("RFC 8823"), "help lacks the protocol: {help}");
    assert!(
        help.contains("Usage: smime-acme"),
        "help lacks usage: {help}"
    );
}

#[test]
fn unknown_flag_is_a_usage_error_with_status_2() {
    let out = run(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "usage errors print nothing on stdout"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smime-acme-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `obtain` with everything it needs on the command line, against servers that do not answer,
/// with no configuration file and no secrets from the caller's environment.
fn obtain(dir: &std::path::Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smime-acme"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .args([
            "obtain",
            "alice@example.test",
            "--server",
            "https://127.0.0.1:1/dir",
        ])
        .args(["--imap", "127.0.0.1:1"])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--config")
        .arg("/dev/null")
        .args(extra);
    command
}

#[test]
fn durations_beyond_30_days_are_usage_errors() {
    let dir = scratch("durations");
    for extra in [
        &["--timeout", "9999d"][..],
        &["--timeout", "18446744073709551615"],
        &["--timeout", "99999999999999999999999d"],
        &["--wait-lock", "31d"],
        &["--wait-lock", "18446744073709551615"],
    ] {
        let out = obtain(&dir, extra)
            .args(["--password-command", "echo pw"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains("at most 30 days"), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{extra:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_password_command_runs_without_the_secrets_in_its_environment() {
    let dir = scratch("password-command");
    let seen = dir.join("seen");
    let command = format!(
        "printf '%s %s\\n' \"${{SMIME_ACME_PASSWORD:-none}}\" \"${{SMIME_ACME_P12_PASSWORD:-none}}\" > '{}'; echo mail-password",
        seen.display()
    );
    let out = obtain(&dir, &["--password-command", &command, "--timeout", "5s"])
        .env("SMIME_ACME_PASSWORD", "mail-secret")
        .env("SMIME_ACME_P12_PASSWORD", "p12-secret")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "there is no CA to talk to");
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap_or_default(),
        "none none\n",
        "the command ran and saw no secret: {out:?}"
    );
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(
            !text.contains("secret") && !text.contains("mail-password"),
            "{text}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn plain_mail_connections_only_to_loopback() {
    let dir = scratch("plain");
    for host in ["192.0.2.1", "localhost.attacker.example"] {
        let out = obtain(
            &dir,
            &["--smtp", &format!("{host}:25"), "--smtp-security", "plain"],
        )
        .args(["--password-command", "echo pw"])
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{host}: {stderr}");
        assert!(
            stderr.contains("loopback") && stderr.contains(host),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
