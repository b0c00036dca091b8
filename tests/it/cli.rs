//! The binary's command-line surface: help, version and usage errors. Needs no testbed.

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
