//! `smime-acme obtain` end to end against the testbed: issued bundles as mail clients read
//! them, forged challenge mails left unanswered, a killed run resumed, and failures with their
//! exit codes. Runs that ask the CA to validate are serialized: acme2certifier reads its one
//! mailbox for every validation and marks what it reads as seen.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::testbed::{
    MailOnPostCa, TestResult, Testbed, fetch_all, headers, inject_mx, message, submit,
};
use smime_acme::mail::Security;

static CA: Mutex<()> = Mutex::new(());

/// Exclusive use of the plain acme2certifier.
pub fn ca_lock() -> MutexGuard<'static, ()> {
    CA.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fresh state folder under target/, named for the test.
pub fn state_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/it-state")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("state folder");
    dir
}

/// The arguments of `obtain` for `mailbox` on the testbed, then `extra`.
pub fn obtain_args(tb: &Testbed, mailbox: &str, state: &Path, extra: &[&str]) -> Vec<OsString> {
    let password = Path::new(tb.var("TESTBED_PASSWORDS")).join(format!("{mailbox}.password"));
    let mut args: Vec<OsString> = ["obtain", mailbox, "--agree-tos", "-v", "--json"]
        .map(OsString::from)
        .to_vec();
    for (flag, key) in [
        ("--server", "SMIME_ACME_SERVER"),
        ("--ca-bundle", "SMIME_ACME_CA_BUNDLE"),
        ("--imap", "TESTBED_IMAPS"),
        ("--smtp", "TESTBED_SUBMISSIONS"),
        ("--dns-server", "TESTBED_DNS"),
    ] {
        args.extend([flag.into(), tb.var(key).into()]);
    }
    args.extend([
        "--timeout".into(),
        "60s".into(),
        "--password-file".into(),
        password.into_os_string(),
    ]);
    args.extend(["--state-dir".into(), state.as_os_str().to_owned()]);
    args.extend(extra.iter().map(OsString::from));
    args
}

/// `args` without `flag` and its value.
pub fn without(args: Vec<OsString>, flag: &str) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        if arg == flag {
            iter.next();
        } else {
            out.push(arg);
        }
    }
    out
}

/// `args` with `flag` set to `value` instead.
pub fn with_flag(args: Vec<OsString>, flag: &str, value: impl Into<OsString>) -> Vec<OsString> {
    let mut args = without(args, flag);
    args.extend([flag.into(), value.into()]);
    args
}

/// The smime-acme binary with `args`, and none of the user's SMIME_ACME_* settings.
pub fn command(args: Vec<OsString>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smime-acme"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SMIME_ACME_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// The obtain command for `mailbox` on the testbed, with `extra` flags.
pub fn obtain_command(tb: &Testbed, mailbox: &str, state: &Path, extra: &[&str]) -> Command {
    command(obtain_args(tb, mailbox, state, extra))
}

pub fn run(mut cmd: Command) -> (Output, Value) {
    let out = cmd.output().expect("smime-acme runs");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, json)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a tool; panics naming the install step if it is missing.
pub fn tool(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}): install the testbed tools with `sudo tests/testbed/install`")
    })
}

pub fn ok(out: &Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed: {text}");
    text
}

/// Replies (subject "Re: ACME: <token>") in the CA's mailbox for `token`.
fn replies_for(tb: &Testbed, token: &str) -> TestResult<usize> {
    let ca = tb.var("TESTBED_CA_MAILBOX");
    let subject = format!("Re: ACME: {token}");
    Ok(fetch_all(tb, ca)?
        .iter()
        .filter(|raw| headers(raw, "Subject").contains(&subject))
        .count())
}

fn check_bundle(json: &Value, key_type: &str, format: &str, root: &str) {
    let files = &json["files"];
    let p12 = files["p12"].as_str().expect("a .p12 path");
    let password_file = files["p12_password"]
        .as_str()
        .expect("a generated password file");
    let dir = Path::new(p12).parent().unwrap();
    let text = ok(
        &tool(
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
        ),
        "openssl pkcs12",
    );
    let expected = if format == "compat" {
        "pbeWithSHA1And3-KeyTripleDES-CBC"
    } else {
        "PBES2, PBKDF2, AES-256-CBC"
    };
    assert!(text.contains(expected), "{format}: {text}");

    // The leaf chains to the testbed root through the returned intermediate and is for S/MIME.
    let cert = files["certificate"].as_str().unwrap();
    let chain = files["chain"].as_str().unwrap();
    ok(
        &tool(
            "openssl",
            &[
                "verify",
                "-CAfile",
                root,
                "-untrusted",
                chain,
                "-purpose",
                "smimesign",
                cert,
            ],
        ),
        "openssl verify",
    );

    // The key bag is named after the address, and the leaf's certificate bag carries the same
    // friendlyName (the leaf's subject is empty, so this is the name clients show).
    let password = std::fs::read_to_string(password_file).unwrap();
    let leaf_pem = std::fs::read_to_string(cert).unwrap();
    let leaf_der = &smime_acme::certificate::parse_pem_chain(leaf_pem.as_bytes()).unwrap()[0];
    let summary =
        smime_acme::bundle::check_pkcs12(&std::fs::read(p12).unwrap(), password.trim(), leaf_der)
            .unwrap();
    let name = summary.friendly_name.expect("a named key");
    let email = json["email"].as_str().unwrap();
    assert!(name.starts_with(&format!("{email} (")), "{name}");
    let leaf_at = text
        .find(&leaf_pem)
        .expect("openssl prints the leaf certificate");
    let bag_at = text[..leaf_at]
        .rfind("Bag Attributes")
        .expect("bag attributes");
    assert!(
        text[bag_at..leaf_at]
            .lines()
            .any(|l| l.trim() == format!("friendlyName: {name}")),
        "{format}: the leaf's bag is not named {name:?}:\n{text}"
    );

    // NSS (Thunderbird): import into a fresh database and check the certificate for signing.
    let nss = dir.join("nss");
    std::fs::create_dir_all(&nss).unwrap();
    let db = format!("sql:{}", nss.display());
    ok(
        &tool("certutil", &["-N", "-d", &db, "--empty-password"]),
        "certutil -N",
    );
    let import = tool("pk12util", &["-i", p12, "-d", &db, "-w", password_file]);
    if key_type == "ed25519" {
        // NSS 3.87 (Debian 12) cannot import Ed25519 private keys from any PKCS#12.
        assert!(
            import.status.success()
                || stderr_of(&import).contains("SEC_ERROR_PKCS12_UNABLE_TO_IMPORT_KEY"),
            "pk12util: {}",
            stderr_of(&import)
        );
    } else {
        ok(&import, "pk12util -i");
        ok(
            &tool(
                "certutil",
                &[
                    "-A",
                    "-d",
                    &db,
                    "-n",
                    "testbed-root",
                    "-t",
                    "C,C,C",
                    "-i",
                    root,
                ],
            ),
            "certutil -A root",
        );
        let listing = ok(&tool("certutil", &["-L", "-d", &db]), "certutil -L");
        let nick = listing
            .lines()
            .find(|l| l.trim_end().ends_with("u,u,u"))
            .map(|l| l.trim_end().trim_end_matches("u,u,u").trim().to_owned())
            .expect("the imported certificate with its key");
        assert_eq!(nick, name, "NSS names the certificate after its bag");
        let valid = ok(
            &tool("certutil", &["-V", "-u", "S", "-n", &nick, "-d", &db]),
            "certutil -V -u S",
        );
        assert!(valid.contains("certificate is valid"), "{valid}");
    }

    // GnuTLS.
    ok(
        &tool(
            "certtool",
            &[
                "--p12-info",
                "--inder",
                "--infile",
                p12,
                "--password",
                password.trim(),
            ],
        ),
        "certtool --p12-info",
    );

    // S/MIME with the issued key: sign and verify, encrypt and decrypt. OpenSSL 3.0 (Debian 12)
    // cannot CMS-sign with Ed25519 ("no default digest"), and Ed25519 keys cannot encrypt: for
    // them, a raw signature made with the key must verify with the certificate's public key.
    let key = files["key"].as_str().unwrap();
    let msg = dir.join("msg.txt");
    std::fs::write(&msg, "Hello from the testbed\r\n").unwrap();
    let msg = msg.to_str().unwrap();
    if key_type == "ed25519" {
        let sig = dir.join("msg.sig");
        let sig = sig.to_str().unwrap();
        ok(
            &tool(
                "openssl",
                &[
                    "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", msg, "-out", sig,
                ],
            ),
            "openssl pkeyutl -sign",
        );
        ok(
            &tool(
                "openssl",
                &[
                    "pkeyutl", "-verify", "-rawin", "-certin", "-inkey", cert, "-in", msg,
                    "-sigfile", sig,
                ],
            ),
            "openssl pkeyutl -verify",
        );
        return;
    }
    let signed = dir.join("signed.p7m");
    let signed = signed.to_str().unwrap();
    ok(
        &tool(
            "openssl",
            &[
                "cms",
                "-sign",
                "-signer",
                cert,
                "-inkey",
                key,
                "-certfile",
                chain,
                "-in",
                msg,
                "-out",
                signed,
                "-nodetach",
                "-outform",
                "DER",
            ],
        ),
        "openssl cms -sign",
    );
    ok(
        &tool(
            "openssl",
            &[
                "cms",
                "-verify",
                "-CAfile",
                root,
                "-purpose",
                "smimesign",
                "-in",
                signed,
                "-inform",
                "DER",
                "-out",
                "/dev/null",
            ],
        ),
        "openssl cms -verify",
    );
    {
        let enc = dir.join("enc.p7m");
        let dec = dir.join("dec.txt");
        ok(
            &tool(
                "openssl",
                &[
                    "cms",
                    "-encrypt",
                    "-aes-256-cbc",
                    "-in",
                    msg,
                    "-out",
                    enc.to_str().unwrap(),
                    "-outform",
                    "DER",
                    cert,
                ],
            ),
            "openssl cms -encrypt",
        );
        ok(
            &tool(
                "openssl",
                &[
                    "cms",
                    "-decrypt",
                    "-in",
                    enc.to_str().unwrap(),
                    "-inform",
                    "DER",
                    "-inkey",
                    key,
                    "-recip",
                    cert,
                    "-out",
                    dec.to_str().unwrap(),
                ],
            ),
            "openssl cms -decrypt",
        );
        assert_eq!(std::fs::read(&dec).unwrap(), std::fs::read(msg).unwrap());
    }
}
fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn obtain_issues_bundles_that_mail_clients_read() -> TestResult {
    let tb = Testbed::get();
    let root = tb.var("SMIME_ACME_CA_BUNDLE").to_owned();
    let cases = [
        ("staff01@example.test", "rsa2048", "both", "compat"),
        ("staff02@example.test", "rsa2048", "both", "modern"),
        ("staff03@example.test", "p256", "both", "compat"),
        ("staff04@example.test", "p256", "both", "modern"),
        ("staff05@example.test", "ed25519", "sign", "compat"),
        ("staff06@example.test", "ed25519", "sign", "modern"),
    ];
    for (mailbox, key_type, usage, format) in cases {
        let state = state_dir(&format!("bundle-{key_type}-{format}"));
        let copy = state.join("copy.p12");
        let flags = [
            "--key-type",
            key_type,
            "--usage",
            usage,
            "--p12-format",
            format,
            "--out",
        ];
        let mut cmd = obtain_command(&tb, mailbox, &state, &flags);
        cmd.arg(&copy);
        let (out, json) = {
            let _ca = ca_lock();
            run(cmd)
        };
        assert!(
            out.status.success(),
            "{mailbox} {key_type} {format}: {}",
            stderr(&out)
        );
        assert_eq!(json["status"], "issued");
        assert_eq!(json["email"], mailbox);
        check_bundle(&json, key_type, format, &root);
        let p12 = json["files"]["p12"].as_str().unwrap();
        assert_eq!(
            std::fs::read(&copy)?,
            std::fs::read(p12)?,
            "--out holds the same bundle"
        );
    }
    Ok(())
}

#[test]
fn external_account_binding_with_the_right_key_and_a_wrong_one() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff12@example.test";
    let eab = |state: &Path, key_file: &str| {
        let mut args = with_flag(
            obtain_args(&tb, mailbox, state, &["--key-type", "p256"]),
            "--server",
            tb.var("SMIME_ACME_EAB_SERVER"),
        );
        args.extend(
            [
                "--eab-kid",
                tb.var("TESTBED_EAB_KID"),
                "--eab-hmac-key-file",
                key_file,
            ]
            .map(OsString::from),
        );
        command(args)
    };
    // A wrong key: 32 other bytes.
    let state = state_dir("eab-wrong");
    let wrong = state.join("wrong.key");
    std::fs::write(
        &wrong,
        format!("{}\n", smime_acme::acme::jws::b64u([7u8; 32])),
    )?;
    let (out, _) = run(eab(&state, wrong.to_str().unwrap()));
    assert_failure(&out, 5, "the CA refused", &state);

    // Without any binding, the CA's demand is named.
    let state = state_dir("eab-missing");
    let args = with_flag(
        obtain_args(&tb, mailbox, &state, &[]),
        "--server",
        tb.var("SMIME_ACME_EAB_SERVER"),
    );
    let (out, _) = run(command(args));
    assert_failure(&out, 2, "external account binding", &state);

    let state = state_dir("eab-right");
    let (out, json) = run(eab(&state, tb.var("TESTBED_EAB_HMAC_KEY_FILE")));
    assert!(
        out.status.success(),
        "obtain with EAB failed: {}",
        stderr(&out)
    );
    assert_eq!(json["status"], "issued");
    Ok(())
}

/// Replies from `mailbox` in the CA's mailbox.
pub fn answers_from(tb: &Testbed, mailbox: &str) -> TestResult<usize> {
    let from = format!("<{mailbox}>");
    Ok(fetch_all(tb, tb.var("TESTBED_CA_MAILBOX"))?
        .iter()
        .filter(|raw| {
            headers(raw, "From").contains(&from)
                && headers(raw, "Subject")
                    .iter()
                    .any(|s| s.starts_with("Re: ACME: "))
        })
        .count())
}

/// 32 random base64url characters: a plausible token-part1.
pub fn token() -> String {
    let mut bytes = [0u8; 24];
    smime_acme::acme::jws::random_bytes(&mut bytes).unwrap();
    smime_acme::acme::jws::b64u(bytes)
}

/// Waits (up to 30 s) for `path` to exist and satisfy `ready`.
pub fn wait_for_file(path: &Path, ready: impl Fn(&str) -> bool, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && ready(&text)
        {
            return text;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "obtain ended ({status}) before {} was ready",
                path.display()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} never became ready",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn forged_mails_are_not_answered(mailbox: &str, extra: &[&str]) -> TestResult {
    let tb = Testbed::get();
    let ca = tb.var("TESTBED_CA_MAILBOX").to_owned();
    // A genuine mail signed by ca.test, to tamper with later.
    let genuine_subject = format!("ACME: {}", token());
    submit(
        &tb,
        Security::Tls,
        &ca,
        (&ca, mailbox),
        &message(&ca, mailbox, &genuine_subject, ""),
    )?;
    let genuine = crate::testbed::wait_for_message(&tb, mailbox, &genuine_subject)?;

    let state = state_dir(&format!("forged-{mailbox}"));
    let _ca = ca_lock();
    let answers_before = answers_from(&tb, mailbox)?;
    let mut child = obtain_command(&tb, mailbox, &state, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // The run has noted where new mail starts and is about to order: hold it there, deliver the
    // forgeries, and let it go on once they are all in the mailbox. Every new mail is judged
    // before one is answered, so each forgery is judged whenever the real mail arrives.
    wait_for_file(
        &state.join("pending").join(format!("{mailbox}.json")),
        |_| true,
        &mut child,
    );
    signal(&child, "STOP");
    let auto = "Auto-Submitted: auto-generated; type=acme\r\n";
    let (unsigned, no_auto, tampered, reply, other) = (token(), token(), token(), token(), token());
    inject_mx(
        &tb,
        (&ca, mailbox),
        &message(&ca, mailbox, &format!("ACME: {unsigned}"), auto),
    )?;
    inject_mx(
        &tb,
        (&ca, mailbox),
        &message(&ca, mailbox, &format!("ACME: {no_auto}"), ""),
    )?;
    let altered =
        String::from_utf8_lossy(&genuine).replace(&genuine_subject, &format!("ACME: {tampered}"));
    inject_mx(&tb, (&ca, mailbox), altered.as_bytes())?;
    inject_mx(
        &tb,
        (&ca, mailbox),
        &message(&ca, mailbox, &format!("Re: ACME: {reply}"), auto),
    )?;
    let bob = "bob@example.test";
    submit(
        &tb,
        Security::Tls,
        bob,
        (bob, mailbox),
        &message(bob, mailbox, &format!("ACME: {other}"), auto),
    )?;
    for token in [&unsigned, &no_auto, &tampered, &reply, &other] {
        crate::testbed::wait_for_message(&tb, mailbox, token)?;
    }
    signal(&child, "CONT");

    let out = child.wait_with_output()?;
    let log = stderr(&out);
    let answers_after = answers_from(&tb, mailbox)?;
    assert!(out.status.success(), "obtain failed: {log}");
    for (what, token) in [
        ("unsigned", &unsigned),
        ("no Auto-Submitted", &no_auto),
        ("tampered", &tampered),
        ("a reply", &reply),
        ("another sender", &other),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("ignored mail") && l.contains(token.as_str())),
            "the {what} challenge was not judged and ignored:\n{log}"
        );
        assert_eq!(
            replies_for(&tb, token)?,
            0,
            "the {what} challenge got an answer"
        );
    }
    assert_eq!(
        answers_after - answers_before,
        1,
        "the real challenge is answered exactly once"
    );
    Ok(())
}

#[test]
fn forged_challenge_mails_are_not_answered_with_dkim() -> TestResult {
    forged_mails_are_not_answered("staff07@example.test", &[])
}

#[test]
fn forged_challenge_mails_are_not_answered_with_authentication_results() -> TestResult {
    let tb = Testbed::get();
    let mode = format!("authentication-results:{}", tb.var("TESTBED_AUTHSERV_ID"));
    forged_mails_are_not_answered("staff08@example.test", &["--challenge-auth", &mode])
}

#[test]
fn a_killed_run_resumes_and_never_answers_twice() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff09@example.test";
    let state = state_dir("killed");
    let _ca = ca_lock();
    let mut child = obtain_command(&tb, mailbox, &state, &["--key-type", "p256"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pending = state.join("pending").join(format!("{mailbox}.json"));
    let text = wait_for_file(&pending, |t| t.contains("\"state\": \"sent\""), &mut child);
    child.kill()?;
    child.wait()?;
    let saved: Value = serde_json::from_str(&text)?;
    let token = saved["answers"][0]["token_part1"]
        .as_str()
        .expect("token-part1 saved")
        .to_owned();

    // The reply went out, so the rerun needs no SMTP server: give it one that is not there.
    let (out, json) = run(command(with_flag(
        obtain_args(&tb, mailbox, &state, &["--key-type", "p256"]),
        "--smtp",
        "127.0.0.1:9",
    )));
    assert!(out.status.success(), "the rerun failed: {}", stderr(&out));
    assert_eq!(json["status"], "issued");
    assert_eq!(
        replies_for(&tb, &token)?,
        1,
        "exactly one reply for the challenge"
    );
    assert!(
        !pending.exists(),
        "the finished issuance is no longer pending"
    );
    Ok(())
}

/// The tokens of the challenge mails in `mailbox` (subjects "ACME: <token>").
fn challenge_tokens(tb: &Testbed, mailbox: &str) -> TestResult<Vec<String>> {
    Ok(fetch_all(tb, mailbox)?
        .iter()
        .flat_map(|raw| headers(raw, "Subject"))
        .filter_map(|s| s.strip_prefix("ACME: ").map(str::to_owned))
        .collect())
}

/// Someone else orders a certificate for the same address at the same CA (another state
/// folder, so another account) while our run waits: the CA's genuine, signed challenge mail of
/// that order arrives before ours. Both are answered, each once; ours validates.
#[test]
fn a_challenge_mail_of_another_order_does_not_stop_ours() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff11@example.test";
    let ours = state_dir("two-orders-ours");
    let theirs = state_dir("two-orders-theirs");
    let _ca = ca_lock();
    let before = challenge_tokens(&tb, mailbox)?;
    let mut child = obtain_command(&tb, mailbox, &ours, &["--key-type", "p256"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Held once it has noted where new mail starts, before it orders.
    let pending = |state: &Path| state.join("pending").join(format!("{mailbox}.json"));
    wait_for_file(&pending(&ours), |_| true, &mut child);
    signal(&child, "STOP");
    // The other order runs until the CA has handed out its challenge (and mails it), then dies.
    let mut rival = obtain_command(&tb, mailbox, &theirs, &["--key-type", "p256"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_for_file(
        &pending(&theirs),
        |t| t.contains("\"challenge_url\": \"https"),
        &mut rival,
    );
    rival.kill()?;
    rival.wait()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let rival_token = loop {
        let now = challenge_tokens(&tb, mailbox)?;
        if let Some(new) = now.iter().find(|t| !before.contains(t)) {
            break new.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the other order's mail never came"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    signal(&child, "CONT");

    let out = child.wait_with_output()?;
    let log = stderr(&out);
    assert!(out.status.success(), "obtain failed: {log}");
    let json: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["status"], "issued", "{log}");
    assert_eq!(json["challenge_mails_answered"], 2, "{log}");
    let tokens: Vec<String> = challenge_tokens(&tb, mailbox)?
        .into_iter()
        .filter(|t| !before.contains(t))
        .collect();
    assert_eq!(tokens.len(), 2, "two challenge mails: {tokens:?}");
    for token in &tokens {
        assert!(
            log.lines()
                .any(|l| l.contains("accepted") && l.contains(&format!("token-part1 {token}"))),
            "the log names the mail answered with token-part1 {token}:\n{log}"
        );
        assert_eq!(replies_for(&tb, token)?, 1, "one reply for {token}");
    }
    assert!(tokens.contains(&rival_token));
    Ok(())
}

/// A TCP relay from a loopback port to `target`, started when asked: until then nothing
/// listens on the port, as when a submission server is down.
struct LateRelay {
    port: u16,
}

impl LateRelay {
    fn new() -> LateRelay {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = probe.local_addr().expect("its address").port();
        LateRelay { port }
    }

    /// Listens from now on, relaying each connection to `target` (for the rest of the tests).
    fn start(&self, target: std::net::SocketAddr) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).expect("the port");
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                let pipe = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    })
                };
                if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                    pipe(client, s2);
                    pipe(server, c2);
                }
            }
        });
    }
}

/// The submission server is down when the challenge mail comes: the reply is recorded as not
/// sent, a rerun after a kill tries again (and the server is still down), and once the server
/// is back the reply goes out, exactly once, and the certificate is issued.
#[test]
fn a_reply_that_could_not_be_sent_is_sent_when_the_server_is_back() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff13@example.test";
    let state = state_dir("smtp-down");
    let relay = LateRelay::new();
    let smtp = format!("127.0.0.1:{}", relay.port);
    let args = || {
        with_flag(
            obtain_args(&tb, mailbox, &state, &["--key-type", "p256"]),
            "--smtp",
            smtp.as_str(),
        )
    };
    let _ca = ca_lock();
    let pending = state.join("pending").join(format!("{mailbox}.json"));
    let not_sent = |t: &str| t.contains("\"state\": \"not-sent\"");
    let mut first = command(args())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let text = wait_for_file(&pending, not_sent, &mut first);
    first.kill()?;
    first.wait()?;
    let saved: Value = serde_json::from_str(&text)?;
    let token = saved["answers"][0]["token_part1"]
        .as_str()
        .expect("token-part1 saved")
        .to_owned();
    assert_eq!(saved["challenge_posted"], false, "not told before a reply");

    let mut rerun = command(args())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    wait_for_file(
        &pending,
        |t| {
            serde_json::from_str::<Value>(t)
                .is_ok_and(|v| v["answers"][0]["attempts"].as_u64() >= Some(2))
                && not_sent(t)
        },
        &mut rerun,
    );
    relay.start(tb.addr("TESTBED_SUBMISSIONS"));
    let out = rerun.wait_with_output()?;
    let log = stderr(&out);
    assert!(out.status.success(), "the rerun failed: {log}");
    let json: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["status"], "issued");
    assert!(log.contains("the reply was not sent"), "{log}");
    assert_eq!(replies_for(&tb, &token)?, 1, "exactly one reply");
    assert_eq!(
        json["challenge_mails_answered"], 1,
        "the same mail, not a new one"
    );
    Ok(())
}

/// The Postfix access policy service the testbed's policy-checked submissions listener asks
/// (at TESTBED_POLICY), started once for the test process. Each test (holding `ca_lock`) says
/// with [`Policy::refuse`] what the next answers are; after them every recipient passes.
pub struct Policy {
    answers: std::sync::Mutex<std::collections::VecDeque<String>>,
    seen: std::sync::atomic::AtomicUsize,
}

impl Policy {
    pub fn get(tb: &Testbed) -> &'static Policy {
        static POLICY: std::sync::OnceLock<&'static Policy> = std::sync::OnceLock::new();
        POLICY.get_or_init(|| {
            let policy: &'static Policy = Box::leak(Box::new(Policy {
                answers: std::sync::Mutex::new(std::collections::VecDeque::new()),
                seen: std::sync::atomic::AtomicUsize::new(0),
            }));
            let listener =
                std::net::TcpListener::bind(tb.addr("TESTBED_POLICY")).expect("the policy port");
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    std::thread::spawn(move || policy.serve(stream));
                }
            });
            policy
        })
    }

    /// The next `count` requests get `action` (e.g. `451 4.7.1 Try again later`); the count of
    /// requests starts again from 0.
    pub fn refuse(&self, count: usize, action: &str) {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        answers.clear();
        answers.extend(std::iter::repeat_n(action.to_owned(), count));
        self.seen.store(0, std::sync::atomic::Ordering::SeqCst);
    }

    /// Requests since the last [`Policy::refuse`].
    pub fn seen(&self) -> usize {
        self.seen.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// One connection: requests of attribute lines, each ended by an empty line.
    fn serve(&self, stream: std::net::TcpStream) {
        use std::io::{BufRead, BufReader, Write};
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line.trim().is_empty() => {
                    self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let next = self
                        .answers
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .pop_front();
                    let action = next.unwrap_or_else(|| "DUNNO".to_owned());
                    if writer
                        .write_all(format!("action={action}\n\n").as_bytes())
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {}
            }
        }
    }
}

/// The submission server answers RCPT with 451 the first time (as a greylisting server does):
/// the reply is not sent, it is tried again after a pause, accepted, and the certificate issued.
#[test]
fn a_451_to_rcpt_is_tried_again() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff42@example.test";
    let state = state_dir("smtp-451");
    let _ca = ca_lock();
    let policy = Policy::get(&tb);
    policy.refuse(1, "451 4.7.1 Try again later");
    let (out, json) = run(command(with_flag(
        obtain_args(&tb, mailbox, &state, &["--key-type", "p256"]),
        "--smtp",
        tb.var("TESTBED_SUBMISSIONS_POLICY"),
    )));
    let log = stderr(&out);
    assert!(out.status.success(), "obtain failed: {log}");
    assert_eq!(json["status"], "issued");
    assert!(
        log.lines()
            .any(|l| l.contains("the reply was not sent") && l.contains("451")),
        "the 451 was seen and the reply tried again:\n{log}"
    );
    assert!(policy.seen() >= 2, "asked again after the refusal");
    let token = log
        .lines()
        .find_map(|l| l.split("token-part1 ").nth(1))
        .and_then(|t| t.split([',', ')']).next())
        .expect("the answered token in the log")
        .to_owned();
    assert_eq!(replies_for(&tb, &token)?, 1, "exactly one reply");
    Ok(())
}

/// The files under `dir` (recursively).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path))
            } else {
                out.push(path)
            }
        }
    }
    out
}

fn assert_failure(out: &Output, code: i32, needle: &str, state: &Path) {
    let log = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit status; stderr:\n{log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("smime-acme: error: ") && last.contains(needle),
        "one-line cause with {needle:?}: {log}"
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(json["status"], "error", "JSON on stdout: {json}");
    let files = files_under(state);
    assert!(
        files.iter().all(|f| !f.starts_with(state.join("certs"))),
        "no certificate files: {files:?}"
    );
    assert!(
        files.iter().all(|f| !f.to_string_lossy().ends_with(".tmp")),
        "no half-written files: {files:?}"
    );
}

#[test]
fn failures_have_their_exit_codes_and_leave_no_partial_files() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff10@example.test";
    let wrong = state_dir("wrong-password").join("wrong.password");
    std::fs::write(&wrong, "not-the-password\n")?;

    let state = state_dir("wrong-imap-password");
    let args = with_flag(
        obtain_args(&tb, mailbox, &state, &[]),
        "--password-file",
        wrong.into_os_string(),
    );
    let cmd = command(args);
    let (out, _) = {
        let _ca = ca_lock();
        run(cmd)
    };
    assert_failure(&out, 6, "refused the login", &state);

    let state = state_dir("smtp-refuses-auth");
    let (out, _) = {
        let _ca = ca_lock();
        run(obtain_command(
            &tb,
            mailbox,
            &state,
            &["--smtp-user", "bob@example.test"],
        ))
    };
    assert_failure(&out, 6, "bob@example.test", &state);

    let state = state_dir("ca-unreachable");
    let args = with_flag(
        obtain_args(&tb, mailbox, &state, &[]),
        "--server",
        "https://127.0.0.1:9/directory",
    );
    let (out, _) = run(command(args));
    assert_failure(&out, 8, "cannot reach the CA", &state);

    // Without the test root the CA's certificate is not trusted.
    let state = state_dir("ca-untrusted");
    let plain = command(without(
        obtain_args(&tb, mailbox, &state, &[]),
        "--ca-bundle",
    ));
    let (out, _) = run(plain);
    assert_failure(&out, 8, "UnknownIssuer", &state);
    Ok(())
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} failed");
}

#[test]
fn a_ca_that_mails_only_after_the_challenge_post() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let ca = MailOnPostCa::start();
    let mailbox = "staff20@example.test";
    let with_server = |state: &Path, timing: &str| {
        let args = with_flag(
            obtain_args(
                &tb,
                mailbox,
                state,
                &["--key-type", "p256", "--challenge-timing", timing],
            ),
            "--server",
            &ca.url,
        );
        command(args)
    };

    // The per-server setting: tell the CA first.
    let state = state_dir("mail-on-post-first");
    let (out, json) = run(with_server(&state, "post-first"));
    let log = stderr(&out);
    assert!(out.status.success(), "post-first failed: {log}");
    assert_eq!(json["status"], "issued");
    assert!(
        log.contains("post-first: telling the CA before the mail arrives"),
        "{log}"
    );

    // The automatic default: no mail comes, so after the first wait the CA is told, and the
    // mail that follows is answered.
    let state = state_dir("mail-on-post-auto");
    let (out, json) = run(with_server(&state, "auto"));
    let log = stderr(&out);
    assert!(out.status.success(), "auto failed: {log}");
    assert_eq!(json["status"], "issued");
    assert!(
        log.contains("no challenge mail after 15s: telling the CA now"),
        "{log}"
    );
    Ok(())
}

#[test]
fn the_mailbox_is_reconnected_after_the_server_drops_the_connection() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let ca = MailOnPostCa::start();
    let mailbox = "staff19@example.test";
    let state = state_dir("imap-dropped");
    let args = with_flag(
        obtain_args(&tb, mailbox, &state, &["--key-type", "p256"]),
        "--server",
        &ca.url,
    );
    let mut child = command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // The run waits for a mail that comes only after its early POST, some 15 s on; meanwhile the
    // IMAP server drops every connection of the mailbox.
    wait_for_file(
        &state.join("pending").join(format!("{mailbox}.json")),
        |t| t.contains("challenge_url\": \"https"),
        &mut child,
    );
    std::thread::sleep(Duration::from_secs(2));
    let conf = crate::testbed::state_dir().join("dovecot/dovecot.conf");
    let kick = tool("doveadm", &["-c", conf.to_str().unwrap(), "kick", mailbox]);
    assert!(kick.status.success(), "doveadm kick: {}", stderr_of(&kick));
    let out = child.wait_with_output()?;
    let log = stderr(&out);
    assert!(out.status.success(), "obtain failed after the drop: {log}");
    assert!(
        log.contains("reconnecting"),
        "the drop was noticed and the mailbox reopened: {log}"
    );
    Ok(())
}

#[test]
fn a_server_without_idle_is_polled() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let ca = MailOnPostCa::start();
    let mailbox = "staff18@example.test";
    let state = state_dir("no-idle");
    // The mail comes only after the early POST, so the run waits past its fast first checks.
    let args = obtain_args(&tb, mailbox, &state, &["-v", "--key-type", "p256"]);
    let args = with_flag(
        with_flag(args, "--server", &ca.url),
        "--imap",
        tb.var("TESTBED_IMAPS_NO_IDLE"),
    );
    let (out, json) = run(command(args));
    let log = stderr(&out);
    assert!(out.status.success(), "obtain without IDLE failed: {log}");
    assert_eq!(json["status"], "issued");
    assert!(log.contains("IMAP server does not offer IDLE"), "{log}");
    Ok(())
}
