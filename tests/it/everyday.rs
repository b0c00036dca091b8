//! Renewals users need not notice, against the testbed: the PKCS#12 password kept and reused,
//! a new one on request, the password beside `--out`, a deploy hook given to obtain and run
//! again by renew, and `forget`.

use std::path::Path;

use serde_json::Value;

use crate::lifecycle::{cli, code, obtain};
use crate::obtain::{ca_lock, ok, state_dir, stderr, tool};
use crate::testbed::{TestResult, Testbed};

/// Whether the bundle at `p12` opens with the password in `password_file`.
fn opens(p12: &str, password_file: &str) -> bool {
    tool(
        "openssl",
        &[
            "pkcs12",
            "-info",
            "-nokeys",
            "-in",
            p12,
            "-passin",
            &format!("file:{password_file}"),
        ],
    )
    .status
    .success()
}

fn text(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn renew(state: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["renew", "--force", "--json"];
    args.extend(extra);
    let (out, lines) = {
        let _ca = ca_lock();
        cli(state, &args)
    };
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["status"], "renewed", "{}", lines[0]);
    lines[0].clone()
}

#[test]
fn renewals_keep_the_bundle_password_until_a_new_one_is_asked_for() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff87@example.test";
    let state = state_dir("p12-password-kept");
    let out = state.join("exported").join("me.p12");
    std::fs::create_dir_all(out.parent().unwrap())?;
    let first = obtain(&tb, mailbox, &state, &["--out", out.to_str().unwrap()]);
    let generated = first["files"]["p12_password"]
        .as_str()
        .expect("generated")
        .to_owned();
    let password = text(&generated);
    // --out gets its password beside it.
    let beside = format!("{}.password", out.display());
    assert_eq!(text(&beside), password);
    assert!(opens(out.to_str().unwrap(), &beside));

    // A renewal protects the new bundle with the same password, and says so.
    let renewed = renew(&state, &[]);
    let p12 = renewed["files"]["p12"].as_str().unwrap();
    let file = renewed["files"]["p12_password"]
        .as_str()
        .expect("the kept password beside it");
    assert_ne!(file, generated, "a file in the new folder");
    assert_eq!(text(file), password, "the same password");
    assert!(
        opens(p12, &generated),
        "the old password opens the renewed bundle"
    );
    assert!(
        opens(out.to_str().unwrap(), &beside),
        "--out was renewed too, same password"
    );

    // --new-p12-password: a new one, kept from then on.
    let changed = renew(&state, &["--new-p12-password"]);
    let new_file = changed["files"]["p12_password"].as_str().unwrap();
    let new_password = text(new_file);
    assert_ne!(new_password, password);
    assert!(opens(changed["files"]["p12"].as_str().unwrap(), new_file));
    assert!(!opens(
        changed["files"]["p12"].as_str().unwrap(),
        &generated
    ));
    assert_eq!(text(&beside), new_password, "the copy's password follows");
    let kept = state.join("certs").join(mailbox).join("p12-password");
    assert_eq!(std::fs::read_to_string(&kept)?, new_password);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&kept)?.permissions());
    assert_eq!(mode & 0o777, 0o600);
    let again = renew(&state, &[]);
    assert_eq!(
        text(again["files"]["p12_password"].as_str().unwrap()),
        new_password
    );
    Ok(())
}

#[test]
fn a_deploy_hook_given_to_obtain_runs_again_on_renewal() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff88@example.test";
    let state = state_dir("deploy-hook-kept");
    let record = state.join("hook.env");
    let hook = format!("env | grep '^SMIME_ACME_' | sort >> {}", record.display());
    let first = obtain(&tb, mailbox, &state, &["--deploy-hook", &hook]);
    let env = std::fs::read_to_string(&record)?;
    let password_file = first["files"]["p12_password"].as_str().unwrap();
    assert!(
        env.contains(&format!("SMIME_ACME_P12_PASSWORD_FILE={password_file}\n")),
        "{env}"
    );
    assert!(
        env.contains(&format!("SMIME_ACME_EMAIL={mailbox}\n")),
        "{env}"
    );
    assert!(
        !env.contains("SMIME_ACME_PASSWORD="),
        "no secret in the hook's environment: {env}"
    );

    // renew without flags runs the kept hook, with the new files.
    let renewed = renew(&state, &[]);
    let env = std::fs::read_to_string(&record)?;
    let p12 = renewed["files"]["p12"].as_str().unwrap();
    assert!(env.contains(&format!("SMIME_ACME_P12={p12}\n")), "{env}");
    assert_eq!(env.matches("SMIME_ACME_EMAIL=").count(), 2, "{env}");

    // A failing hook: the certificate is kept, the status says 3.
    let failing = {
        let _ca = ca_lock();
        let mut args =
            crate::obtain::obtain_args(&tb, mailbox, &state, &["--deploy-hook", "exit 9"]);
        args.retain(|a| a != "-v");
        crate::obtain::command(args).output()?
    };
    assert_eq!(failing.status.code(), Some(3), "{}", stderr(&failing));
    let json: Value = serde_json::from_slice(&failing.stdout)?;
    assert_eq!(json["status"], "issued");
    assert!(
        json["deploy_hook_error"]
            .as_str()
            .unwrap()
            .contains("exit status: 9"),
        "{json}"
    );
    Ok(())
}

#[test]
fn forget_stops_renewals_and_purge_removes_everything() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff89@example.test";
    let state = state_dir("forget");
    obtain(&tb, mailbox, &state, &[]);

    // No terminal and no --yes: nothing changes.
    let (out, _) = cli(&state, &["forget", mailbox]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));

    let (out, lines) = cli(&state, &["forget", mailbox, "--yes", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0]["purged"], false);
    let (out, lines) = cli(&state, &["renew", "--force", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        lines.is_empty() || lines.iter().all(|l| l["email"] != mailbox),
        "{lines:?}"
    );
    let (_, lines) = cli(&state, &["list", "--json"]);
    assert_eq!(
        lines[0]["renewed"], false,
        "list says it is not renewed: {}",
        lines[0]
    );
    let (out, _) = cli(&state, &["list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("(forgotten)"));
    // Its files stay.
    let certs = state.join("certs").join(mailbox);
    assert!(certs.join("current").is_file());

    // Obtaining again takes it up again.
    obtain(&tb, mailbox, &state, &[]);
    assert!(!certs.join("forgotten.json").exists());

    let (out, lines) = cli(&state, &["forget", mailbox, "--purge", "--yes", "--json"]);
    ok(&out, "forget --purge");
    assert_eq!(lines[0]["purged"], true);
    assert!(!certs.exists(), "everything kept for it is gone");
    let leftovers: Vec<_> = std::fs::read_dir(state.join("certs"))?
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "no hidden leftovers: {leftovers:?}");
    let (out, _) = cli(&state, &["forget", mailbox, "--yes"]);
    assert_eq!(code(&out), 2, "nothing left to forget");
    Ok(())
}

#[test]
fn a_password_the_user_chose_is_reused_but_never_written_beside_the_bundle() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff95@example.test";
    let state = state_dir("p12-password-chosen");
    let out = state.join("me.p12");
    let mut args =
        crate::obtain::obtain_args(&tb, mailbox, &state, &["--out", out.to_str().unwrap()]);
    args.retain(|a| a != "-v");
    let obtained = {
        let _ca = ca_lock();
        let mut cmd = crate::obtain::command(args);
        cmd.env("SMIME_ACME_P12_PASSWORD", "chosen by the user 42");
        cmd.output()?
    };
    ok(&obtained, "obtain with a chosen password");
    let json: Value = serde_json::from_slice(&obtained.stdout)?;
    assert!(json["files"].get("p12_password").is_none(), "{json}");
    let beside = format!("{}.password", out.display());
    assert!(
        !Path::new(&beside).exists(),
        "a chosen password is not written beside --out"
    );
    let chosen_file = state.join("chosen");
    std::fs::write(&chosen_file, "chosen by the user 42")?;
    // The renewal, without the variable, protects the bundle with the same password, and
    // still writes it nowhere else.
    let renewed = renew(&state, &[]);
    let p12 = renewed["files"]["p12"].as_str().unwrap();
    assert!(opens(p12, chosen_file.to_str().unwrap()));
    assert!(opens(out.to_str().unwrap(), chosen_file.to_str().unwrap()));
    assert!(renewed["files"].get("p12_password").is_none(), "{renewed}");
    assert!(!Path::new(&beside).exists());
    assert!(
        !Path::new(renewed["folder"].as_str().unwrap())
            .join("p12-password")
            .exists()
    );
    Ok(())
}
