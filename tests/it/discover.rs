//! `smime-acme obtain ADDRESS` with only the CA known: the mail servers found by DNS SRV records
//! (example.test, in the testbed's DNS) or by an autoconfig document (other.test, which has no
//! SRV records, from a loopback HTTPS server), proven by a login, printed, kept, and used by
//! the renewal without looking again; and nothing found, said as such.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::obtain::{ca_lock, command, ok, run, state_dir, stderr};
use crate::testbed::{Fake, TestResult, Testbed};

/// `obtain` for `mailbox` with the CA, its bundle, the password file and the testbed's DNS
/// server, and no mail server: then `extra`.
fn bare_obtain(tb: &Testbed, mailbox: &str, state: &Path, extra: &[&str]) -> Vec<OsString> {
    let password = Path::new(tb.var("TESTBED_PASSWORDS")).join(format!("{mailbox}.password"));
    let mut args: Vec<OsString> = ["obtain", mailbox, "--agree-tos", "-v", "--json"]
        .map(OsString::from)
        .to_vec();
    args.extend([
        "--server".into(),
        tb.var("SMIME_ACME_SERVER").into(),
        "--ca-bundle".into(),
        tb.var("SMIME_ACME_CA_BUNDLE").into(),
        "--dns-server".into(),
        tb.var("TESTBED_DNS").into(),
        "--password-file".into(),
        password.into_os_string(),
        "--timeout".into(),
        "60s".into(),
        "--config".into(),
        "/dev/null".into(),
        "--state-dir".into(),
        state.as_os_str().to_owned(),
    ]);
    args.extend(extra.iter().map(OsString::from));
    args
}

/// `renew --force` of `mailbox` in `state`, with the kept settings alone.
fn renew_forced(mailbox: &str, state: &Path) -> Vec<OsString> {
    [
        "renew",
        mailbox,
        "--force",
        "-v",
        "--json",
        "--config",
        "/dev/null",
    ]
    .map(OsString::from)
    .into_iter()
    .chain(["--state-dir".into(), state.as_os_str().to_owned()])
    .collect()
}

fn port(tb: &Testbed, key: &str) -> String {
    tb.server(key).port.to_string()
}

/// The kept settings of `mailbox`.
fn kept(state: &Path, mailbox: &str) -> TestResult<Value> {
    let path: PathBuf = state.join("certs").join(mailbox).join("settings.json");
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}

#[test]
fn srv_records_name_the_servers_and_the_renewal_keeps_them() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff60@example.test";
    let domain = tb.var("TESTBED_SRV_DOMAIN");
    let host = tb.var("TESTBED_SRV_HOST");
    let imap = format!("{host}:{}", port(&tb, "TESTBED_IMAPS"));
    let smtp = format!("{host}:{}", port(&tb, "TESTBED_SUBMISSIONS"));
    let state = state_dir("discover-srv");

    let (out, json) = {
        let _ca = ca_lock();
        run(command(bare_obtain(&tb, mailbox, &state, &[])))
    };
    let log = ok(&out, "obtain with servers from DNS SRV");
    assert_eq!(json["status"], "issued", "{log}");
    assert!(
        log.contains(&format!("IMAP: {imap}, TLS (DNS SRV _imaps._tcp.{domain})")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "SMTP: {smtp}, TLS (DNS SRV _submissions._tcp.{domain})"
        )),
        "{log}"
    );
    let found = &json["discovered"];
    assert_eq!(found["imap"]["server"], imap.as_str(), "{json}");
    assert_eq!(found["imap"]["security"], "tls");
    assert_eq!(
        found["imap"]["source"],
        format!("DNS SRV _imaps._tcp.{domain}").as_str()
    );
    assert_eq!(found["smtp"]["server"], smtp.as_str());
    assert_eq!(found["imap"]["user"], mailbox);
    let settings = kept(&state, mailbox)?;
    let table = &settings["mailbox"][mailbox];
    assert_eq!(table["imap"], imap.as_str(), "{settings}");
    assert_eq!(table["smtp"], smtp.as_str(), "{settings}");
    assert_eq!(table["imap-security"], "tls");

    // The renewal uses what was kept: no lookup at all, the same servers logged in to.
    let (out, json) = {
        let _ca = ca_lock();
        run(command(renew_forced(mailbox, &state)))
    };
    let log = ok(&out, "renew --force with the kept servers");
    assert_eq!(json["status"], "renewed", "{log}");
    assert!(json.get("discovered").is_none(), "{json}");
    assert!(!log.contains("looking for the mail servers"), "{log}");
    assert!(!log.contains("DNS SRV"), "{log}");
    assert!(log.contains(&format!("logging in to {imap} as")), "{log}");
    assert!(log.contains(&format!("logging in to {smtp} as")), "{log}");
    Ok(())
}

#[test]
fn an_autoconfig_document_names_the_servers_of_a_domain_without_srv_records() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "carol@other.test";
    let state = state_dir("discover-autoconfig");
    let requests = state.join("autoconfig-requests");
    let server = Fake::start_with("autoconfig.py", &[requests.as_os_str()]);
    let base = format!("https://localhost:{}/mail/config-v1.1.xml", server.port);
    let url = format!("{base}?emailaddress=carol%40other.test");
    let imap = format!("localhost:{}", port(&tb, "TESTBED_IMAPS"));
    let smtp = format!("localhost:{}", port(&tb, "TESTBED_SUBMISSIONS"));

    let (out, json) = {
        let _ca = ca_lock();
        run(command(bare_obtain(
            &tb,
            mailbox,
            &state,
            &["--autoconfig-url", &base],
        )))
    };
    let log = ok(&out, "obtain with servers from autoconfig");
    assert_eq!(json["status"], "issued", "{log}");
    assert!(
        log.contains(&format!("IMAP: {imap}, TLS (autoconfig {url})")),
        "{log}"
    );
    assert!(
        log.contains(&format!("SMTP: {smtp}, TLS (autoconfig {url})")),
        "{log}"
    );
    assert_eq!(
        json["discovered"]["imap"]["server"],
        imap.as_str(),
        "{json}"
    );
    assert_eq!(
        json["discovered"]["smtp"]["source"],
        format!("autoconfig {url}").as_str()
    );
    // The document's login names, placeholders filled in.
    assert_eq!(json["discovered"]["smtp"]["user"], mailbox);
    assert!(
        !log.contains("warning"),
        "an https document is trusted: {log}"
    );
    let asked = std::fs::read_to_string(&requests)?;
    assert_eq!(
        asked.lines().collect::<Vec<_>>(),
        ["/mail/config-v1.1.xml?emailaddress=carol%40other.test"]
    );
    assert_eq!(
        kept(&state, mailbox)?["mailbox"][mailbox]["imap"],
        imap.as_str()
    );

    // With the autoconfig server gone, the renewal still gets there: it does not ask again.
    drop(server);
    let (out, json) = {
        let _ca = ca_lock();
        run(command(renew_forced(mailbox, &state)))
    };
    let log = ok(&out, "renew --force without the autoconfig server");
    assert_eq!(json["status"], "renewed", "{log}");
    assert!(!log.contains("looking for the mail servers"), "{log}");
    assert!(!log.contains("(autoconfig "), "{log}");
    assert!(log.contains(&format!("logging in to {imap} as")), "{log}");
    assert_eq!(std::fs::read_to_string(&requests)?.lines().count(), 1);
    Ok(())
}

#[test]
fn nothing_found_says_what_was_tried_and_what_to_give() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "erin@other.test";
    let state = state_dir("discover-nothing");
    let started = Instant::now();
    let (out, json) = run(command(bare_obtain(&tb, mailbox, &state, &[])));
    let took = started.elapsed();
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert_eq!(json["status"], "error", "{json}");
    assert_eq!(json["error"], "usage");
    let message = json["message"].as_str().unwrap_or_default();
    for tried in [
        "no IMAP server found for erin@other.test",
        "DNS SRV _imaps._tcp.other.test: none",
        "DNS SRV _imap._tcp.other.test: none",
        "autoconfig https://autoconfig.other.test/mail/config-v1.1.xml",
        "autoconfig https://other.test/.well-known/autoconfig/mail/config-v1.1.xml",
        "imap.other.test:993 tls (guess)",
        "mail.other.test:143 starttls (guess)",
        "give --imap HOST[:PORT] and --smtp HOST[:PORT]",
    ] {
        assert!(message.contains(tried), "{tried:?} in {message}");
    }
    assert!(log.contains(message), "{log}");
    assert!(
        took < Duration::from_secs(45),
        "unreachable guesses end in time: {took:?}"
    );
    // Nothing was ordered: the CA was not contacted.
    assert!(!state.join("accounts").exists());
    Ok(())
}

#[test]
fn provision_finds_the_servers_of_each_mailbox_in_its_worker() -> TestResult {
    let tb = Testbed::get();
    let state = state_dir("discover-provision");
    let passwords = Path::new(tb.var("TESTBED_PASSWORDS"));
    let host = tb.var("TESTBED_SRV_HOST");
    let imap = format!("{host}:{}", port(&tb, "TESTBED_IMAPS"));
    let quoted = |value: &str| format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
    let mut manifest = format!(
        "[defaults]\nserver = {}\nca-bundle = {}\ndns-server = {}\nkey-type = \"p256\"\ntimeout = \"120s\"\n",
        quoted(tb.var("SMIME_ACME_SERVER")),
        quoted(tb.var("SMIME_ACME_CA_BUNDLE")),
        quoted(tb.var("TESTBED_DNS")),
    );
    let mailboxes = ["staff61@example.test", "staff62@example.test"];
    for email in mailboxes {
        let password = passwords.join(format!("{email}.password"));
        manifest += &format!(
            "\n[[mailbox]]\nemail = {}\npassword-file = {}\n",
            quoted(email),
            quoted(&password.to_string_lossy())
        );
    }
    let file = state.join("staff.toml");
    std::fs::write(&file, manifest)?;
    let args: Vec<OsString> = vec![
        "provision".into(),
        file.into_os_string(),
        "--agree-tos".into(),
        "--json".into(),
        "--jobs".into(),
        "2".into(),
        "--config".into(),
        "/dev/null".into(),
        "--state-dir".into(),
        state.as_os_str().to_owned(),
    ];
    let (out, _) = {
        let _ca = ca_lock();
        run(command(args))
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for email in mailboxes {
        let line = lines
            .iter()
            .find(|l| l["email"] == email)
            .unwrap_or_else(|| panic!("no line for {email}: {text}"));
        assert_eq!(line["status"], "issued", "{line}");
        assert_eq!(
            line["discovered"]["imap"]["server"],
            imap.as_str(),
            "{line}"
        );
        assert_eq!(
            line["discovered"]["smtp"]["source"],
            format!("DNS SRV _submissions._tcp.{}", tb.var("TESTBED_SRV_DOMAIN")).as_str()
        );
        assert_eq!(
            kept(&state, email)?["mailbox"][email]["imap"],
            imap.as_str()
        );
    }
    Ok(())
}

#[test]
fn a_server_whose_certificate_does_not_verify_is_never_sent_the_password() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff64@example.test";
    let state = state_dir("discover-untrusted");
    // Without the test root the testbed's certificates do not verify: every candidate is left
    // before any login, and the password (a wrong one, so that a login would be logged as a
    // failure naming the user) reaches no server.
    let wrong = state.join("wrong.password");
    std::fs::write(&wrong, "not-the-password\n")?;
    let args = crate::obtain::with_flag(
        crate::obtain::without(bare_obtain(&tb, mailbox, &state, &[]), "--ca-bundle"),
        "--password-file",
        wrong.into_os_string(),
    );
    let (out, json) = run(command(args));
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    let message = json["message"].as_str().unwrap_or_default();
    let imaps = format!(
        "{}:{} tls (DNS SRV _imaps._tcp.{}): invalid peer certificate: UnknownIssuer",
        tb.var("TESTBED_SRV_HOST"),
        port(&tb, "TESTBED_IMAPS"),
        tb.var("TESTBED_SRV_DOMAIN")
    );
    assert!(message.contains(&imaps), "{message}");
    let dovecot =
        std::fs::read_to_string(Path::new(tb.var("TESTBED_STATE")).join("logs/dovecot.log"))?;
    assert!(
        !dovecot.contains(&format!("user=<{mailbox}>")),
        "no login reached Dovecot"
    );
    Ok(())
}
