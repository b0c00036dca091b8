//! OAuth2 mailboxes end to end: `obtain` logs in to Dovecot (IMAP) and Postfix (submission,
//! through Dovecot's SASL) with XOAUTH2 or OAUTHBEARER, the token checked on every login at the
//! testbed's token endpoint (`tests/fake/oauth_server.py`); tokens from a command or a
//! refresh-token grant, a token the server refuses replaced once, a refused refresh token ending
//! the run with status 6, and no secret in the output or the state folder but the token cache.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::obtain::{ca_lock, command, files_under, obtain_args, run, state_dir, stderr, without};
use crate::testbed::{TestResult, Testbed};

/// The testbed's token endpoint, for the test's own requests.
struct Provider {
    url: String,
    http: reqwest::blocking::Client,
}

impl Provider {
    fn new(tb: &Testbed) -> Provider {
        Provider {
            url: tb.var("TESTBED_OAUTH_URL").to_owned(),
            // Plain HTTP on loopback; the builder still wants a TLS configuration.
            http: reqwest::blocking::Client::builder()
                .tls_backend_preconfigured((*tb.tls(true)).clone())
                .build()
                .expect("an HTTP client"),
        }
    }

    fn control(&self, what: &str, body: Value) -> TestResult<Value> {
        let response = self
            .http
            .post(format!("{}/control/{what}", self.url))
            .body(body.to_string())
            .send()?;
        assert!(response.status().is_success(), "control/{what}");
        Ok(serde_json::from_slice(&response.bytes()?)?)
    }

    /// A new refresh token for `user`, as a person's sign-in would give.
    fn refresh_token(&self, user: &str) -> TestResult<String> {
        let answer = self.control("refresh-token", json!({ "user": user }))?;
        Ok(answer["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    fn stats(&self, user: &str) -> TestResult<Value> {
        let response = self
            .http
            .get(format!("{}/control/stats?user={user}", self.url))
            .send()?;
        Ok(serde_json::from_slice(&response.bytes()?)?)
    }

    /// An access token for `user`, fetched by the test itself.
    fn access_token(&self, tb: &Testbed, user: &str) -> TestResult<String> {
        let secret = std::fs::read_to_string(tb.var("TESTBED_OAUTH_CLIENT_SECRET_FILE"))?;
        let body = format!(
            "grant_type=refresh_token&refresh_token={}&client_id={}&client_secret={}",
            self.refresh_token(user)?,
            tb.var("TESTBED_OAUTH_CLIENT_ID"),
            secret.trim()
        );
        let response = self
            .http
            .post(format!("{}/token", self.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()?;
        let answer: Value = serde_json::from_slice(&response.bytes()?)?;
        Ok(answer["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }
}

/// A 0600 file holding `text`, in a folder of the test's own beside its state folder.
fn secret_file(state: &Path, name: &str, text: &str) -> TestResult<PathBuf> {
    let dir = state.with_extension("secrets");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

/// `obtain` for `mailbox` with OAuth2 flags instead of the password, at -vv.
fn oauth_args(tb: &Testbed, mailbox: &str, state: &Path, oauth: &[&OsString]) -> Vec<OsString> {
    let mut args = without(obtain_args(tb, mailbox, state, &["-v"]), "--password-file");
    args.extend(oauth.iter().map(|a| (*a).clone()));
    args
}

/// The flags of a refresh-token grant at the testbed's endpoint.
fn grant_flags(tb: &Testbed, refresh_token_file: &Path) -> Vec<OsString> {
    [
        "--oauth-token-url",
        &format!("{}/token", tb.var("TESTBED_OAUTH_URL")),
        "--oauth-client-id",
        tb.var("TESTBED_OAUTH_CLIENT_ID"),
        "--oauth-client-secret-file",
        tb.var("TESTBED_OAUTH_CLIENT_SECRET_FILE"),
        "--oauth-refresh-token-file",
    ]
    .into_iter()
    .map(OsString::from)
    .chain([refresh_token_file.as_os_str().to_owned()])
    .collect()
}

fn log_len(tb: &Testbed, name: &str) -> u64 {
    std::fs::metadata(Path::new(tb.var("TESTBED_STATE")).join("logs").join(name))
        .map_or(0, |m| m.len())
}

/// What was written to the testbed log `name` from byte `from` on.
fn log_since(tb: &Testbed, name: &str, from: u64) -> String {
    let text = std::fs::read(Path::new(tb.var("TESTBED_STATE")).join("logs").join(name))
        .unwrap_or_default();
    String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).into_owned()
}

/// The cached access token of a state folder, checked to be 0600 in a 0700 folder.
fn cached_token(state: &Path) -> String {
    let dir = state.join("oauth");
    let files: Vec<PathBuf> = files_under(&dir);
    assert_eq!(files.len(), 1, "one cached token: {files:?}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&files[0]), 0o600, "{}", files[0].display());
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    let cached: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    cached["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// No secret in the output, nor in any file of the state folder but the token cache.
fn assert_no_secret(out: &Output, state: &Path, secrets: &[&str]) {
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for file in files_under(state) {
        if file.starts_with(state.join("oauth")) {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for secret in secrets {
            assert!(!text.contains(secret), "a secret in {}", file.display());
        }
    }
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(
            !printed.contains(secret),
            "a secret in the output:\n{printed}"
        );
    }
}

#[test]
fn obtain_with_xoauth2_and_oauthbearer_at_imap_and_submission() -> TestResult {
    let tb = Testbed::get();
    let provider = Provider::new(&tb);
    let client_secret = std::fs::read_to_string(tb.var("TESTBED_OAUTH_CLIENT_SECRET_FILE"))?;
    for (mailbox, mechanism, name) in [
        ("staff46@example.test", "xoauth2", "XOAUTH2"),
        ("staff47@example.test", "oauthbearer", "OAUTHBEARER"),
    ] {
        let state = state_dir(&format!("oauth-{mechanism}"));
        let refresh_token = provider.refresh_token(mailbox)?;
        let file = secret_file(&state, "refresh-token", &refresh_token)?;
        // Rotation: each grant also returns a new refresh token, to be written back.
        provider.control(
            "rotate",
            json!({ "user": mailbox, "on": mechanism == "xoauth2" }),
        )?;
        let mut flags = grant_flags(&tb, &file);
        flags.extend(["--oauth-mechanism".into(), mechanism.into()]);
        let before = provider.stats(mailbox)?;
        let (dovecot, postfix) = (log_len(&tb, "dovecot.log"), log_len(&tb, "postfix.log"));
        let (out, json) = {
            let _ca = ca_lock();
            run(command(oauth_args(
                &tb,
                mailbox,
                &state,
                &flags.iter().collect::<Vec<_>>(),
            )))
        };
        assert!(out.status.success(), "{mailbox}: {}", stderr(&out));
        assert_eq!(json["status"], "issued");

        // Both servers took this mechanism, and the endpoint saw its token checked at each.
        let imap = log_since(&tb, "dovecot.log", dovecot);
        assert!(
            imap.contains(&format!("Login: user=<{mailbox}>, method={name}")),
            "Dovecot's log:\n{imap}"
        );
        let submission = log_since(&tb, "postfix.log", postfix);
        assert!(
            submission.contains(&format!("sasl_method={name}, sasl_username={mailbox}")),
            "Postfix's log:\n{submission}"
        );
        assert!(
            stderr(&out).contains(&format!("IMAP login with an OAuth2 token by {name}")),
            "{}",
            stderr(&out)
        );
        let after = provider.stats(mailbox)?;
        let count = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
        assert_eq!(count(&after, "grants") - count(&before, "grants"), 1);
        assert!(
            count(&after, "active_introspections") - count(&before, "active_introspections") >= 2,
            "{after}"
        );

        let access_token = cached_token(&state);
        let mut secrets = vec![refresh_token.as_str(), client_secret.trim(), &access_token];
        let kept = std::fs::read_to_string(&file)?;
        let kept = kept.trim();
        if mechanism == "xoauth2" {
            // The rotated refresh token replaced the old one in its file, still 0600.
            assert_ne!(kept, refresh_token);
            assert!(!kept.is_empty());
            assert_eq!(
                std::fs::metadata(&file)?.permissions().mode() & 0o777,
                0o600
            );
            assert!(
                stderr(&out).contains(&format!("it replaces the old one in {}", file.display())),
                "{}",
                stderr(&out)
            );
            secrets.push(kept);
        } else {
            assert_eq!(kept, refresh_token);
        }
        assert_no_secret(&out, &state, &secrets);
        // Renewals know where the tokens come from.
        let settings = std::fs::read_to_string(
            files_under(&state.join("certs"))
                .into_iter()
                .find(|f| f.ends_with("settings.json"))
                .expect("settings.json"),
        )?;
        assert!(
            settings.contains("oauth-token-url") && settings.contains("refresh-token"),
            "{settings}"
        );
    }
    Ok(())
}

#[test]
fn obtain_with_a_token_command_run_again_when_its_token_is_refused() -> TestResult {
    let tb = Testbed::get();
    let provider = Provider::new(&tb);
    let mailbox = "staff48@example.test";
    let state = state_dir("oauth-command");
    let good = provider.access_token(&tb, mailbox)?;
    let good_file = secret_file(&state, "token", &good)?;
    let dir = good_file.parent().unwrap().to_owned();
    // The first run of the command prints a token that is not (or no longer) valid.
    let script = format!(
        "echo run >>{d}/runs; if [ $(wc -l <{d}/runs) -gt 1 ]; then cat {d}/token; \
         else echo stale-token-123; fi",
        d = dir.display()
    );
    let flags: Vec<OsString> = vec!["--oauth-token-command".into(), script.into()];
    let before = provider.stats(mailbox)?;
    let dovecot = log_len(&tb, "dovecot.log");
    let (out, json) = {
        let _ca = ca_lock();
        run(command(oauth_args(
            &tb,
            mailbox,
            &state,
            &flags.iter().collect::<Vec<_>>(),
        )))
    };
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json["status"], "issued");
    let imap = log_since(&tb, "dovecot.log", dovecot);
    // auto takes OAUTHBEARER, which Dovecot offers beside XOAUTH2.
    assert!(
        imap.contains(&format!("Login: user=<{mailbox}>, method=OAUTHBEARER")),
        "Dovecot's log:\n{imap}"
    );
    let after = provider.stats(mailbox)?;
    assert!(
        after["active_introspections"].as_u64() > before["active_introspections"].as_u64(),
        "{after}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("runs"))?.lines().count(),
        2,
        "the command ran again once its token was refused"
    );
    assert!(
        !state.join("oauth").exists(),
        "a command's tokens are not cached"
    );
    assert_no_secret(&out, &state, &[&good]);

    // A command whose tokens are always refused: a login error, status 6, after one more try.
    let state = state_dir("oauth-command-refused");
    let flags: Vec<OsString> = vec![
        "--oauth-token-command".into(),
        "echo run >>runs; echo stale-token-456".into(),
        "--oauth-mechanism".into(),
        "xoauth2".into(),
    ];
    let mut cmd = command(oauth_args(
        &tb,
        mailbox,
        &state,
        &flags.iter().collect::<Vec<_>>(),
    ));
    cmd.current_dir(&state);
    let (out, json) = run(cmd);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let message = json["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("refused the login for staff48@example.test (OAuth2)")
            && message.contains("XOAUTH2")
            && message.contains("the token was refused: 401"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(state.join("runs"))?.lines().count(),
        2
    );
    Ok(())
}

#[test]
fn an_access_token_the_server_no_longer_takes_is_replaced() -> TestResult {
    let tb = Testbed::get();
    let provider = Provider::new(&tb);
    let mailbox = "staff49@example.test";
    let state = state_dir("oauth-expired");
    let file = secret_file(&state, "refresh-token", &provider.refresh_token(mailbox)?)?;
    let flags = grant_flags(&tb, &file);
    let obtain = || {
        let _ca = ca_lock();
        run(command(oauth_args(
            &tb,
            mailbox,
            &state,
            &flags.iter().collect::<Vec<_>>(),
        )))
    };
    let (out, _) = obtain();
    assert!(out.status.success(), "{}", stderr(&out));
    let first = cached_token(&state);
    let grants = provider.stats(mailbox)?["grants"].as_u64();

    // Expired at the provider while the cache still holds it: refused at login, replaced once.
    provider.control("expire", json!({ "user": mailbox }))?;
    let (out, json) = obtain();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json["status"], "issued");
    let second = cached_token(&state);
    assert_ne!(first, second);
    assert_eq!(
        provider.stats(mailbox)?["grants"].as_u64(),
        grants.map(|g| g + 1)
    );
    Ok(())
}

#[test]
fn a_revoked_refresh_token_ends_the_run_with_status_6() -> TestResult {
    let tb = Testbed::get();
    let provider = Provider::new(&tb);
    let mailbox = "staff50@example.test";
    let state = state_dir("oauth-revoked");
    let refresh_token = provider.refresh_token(mailbox)?;
    provider.control("revoke", json!({ "refresh_token": refresh_token }))?;
    let file = secret_file(&state, "refresh-token", &refresh_token)?;
    let flags = grant_flags(&tb, &file);
    let before = provider.stats(mailbox)?;
    let (out, json) = run(command(oauth_args(
        &tb,
        mailbox,
        &state,
        &flags.iter().collect::<Vec<_>>(),
    )));
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{log}");
    assert_eq!(json["error"], "mail", "{json}");
    let message = json["message"].as_str().unwrap_or_default();
    let url = format!("{}/token", tb.var("TESTBED_OAUTH_URL"));
    for needed in [
        url.as_str(),
        "invalid_grant",
        "refresh token",
        &file.display().to_string(),
    ] {
        assert!(message.contains(needed), "{needed:?} in {message:?}");
    }
    assert!(
        log.lines()
            .last()
            .unwrap_or_default()
            .starts_with("smime-acme: error: ")
    );
    let refused = |stats: Value| stats["refused_grants"].as_u64().unwrap_or(0);
    assert_eq!(refused(provider.stats(mailbox)?) - refused(before), 1);
    let client_secret = std::fs::read_to_string(tb.var("TESTBED_OAUTH_CLIENT_SECRET_FILE"))?;
    assert_no_secret(&out, &state, &[&refresh_token, client_secret.trim()]);
    Ok(())
}

#[test]
fn an_imap_reconnection_logs_in_with_a_token_that_is_still_valid() -> TestResult {
    use crate::obtain::{tool, wait_for_file, with_flag};
    use std::process::Stdio;
    let tb = Testbed::get();
    let provider = Provider::new(&tb);
    let _ca = ca_lock();
    let ca = crate::testbed::MailOnPostCa::start();
    let mailbox = "staff52@example.test";
    let state = state_dir("oauth-reconnect");
    let file = secret_file(&state, "refresh-token", &provider.refresh_token(mailbox)?)?;
    let flags = grant_flags(&tb, &file);
    let args = with_flag(
        oauth_args(&tb, mailbox, &state, &flags.iter().collect::<Vec<_>>()),
        "--server",
        &ca.url,
    );
    let before = provider.stats(mailbox)?;
    let mut child = command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // The run waits some 15 s for a mail that comes only after its early POST; meanwhile its
    // access token expires at the provider and the IMAP server drops the connection.
    wait_for_file(
        &state.join("pending").join(format!("{mailbox}.json")),
        |t| t.contains("challenge_url\": \"https"),
        &mut child,
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    provider.control("expire", json!({ "user": mailbox }))?;
    let conf = crate::testbed::state_dir().join("dovecot/dovecot.conf");
    let kick = tool("doveadm", &["-c", conf.to_str().unwrap(), "kick", mailbox]);
    assert!(kick.status.success(), "doveadm kick: {}", stderr(&kick));
    let out = child.wait_with_output()?;
    let log = stderr(&out);
    assert!(out.status.success(), "obtain failed after the drop: {log}");
    assert!(
        log.contains("reconnecting"),
        "the mailbox was reopened: {log}"
    );
    let grants = |stats: Value| stats["grants"].as_u64().unwrap_or(0);
    assert_eq!(
        grants(provider.stats(mailbox)?) - grants(before),
        2,
        "a new token for the reconnection: {log}"
    );
    Ok(())
}
