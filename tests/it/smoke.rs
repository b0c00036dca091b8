//! Smoke tests of the testbed itself: every server is up, reachable only with the test root,
//! and mail is signed, verified and delivered the way the other tests rely on.

use smime_acme::mail::Security;
use smime_acme::mail::imap;

use crate::testbed::{
    TestResult, Testbed, headers, inject_mx, marker, message, submit, verify_dkim, wait_for_message,
};

const ALICE: &str = "alice@example.test";
use smime_acme::challenge::authenticity::REQUIRED_SIGNED;

#[test]
fn imap_login_as_alice_over_starttls_and_imaps() -> TestResult {
    let tb = Testbed::get();
    for (key, security) in [
        ("TESTBED_IMAP", Security::StartTls),
        ("TESTBED_IMAPS", Security::Tls),
    ] {
        let client = imap::connect(&tb.server(key), security, tb.tls(true))?;
        let mut session = client
            .login(ALICE, tb.password(ALICE))
            .map_err(|(err, _)| format!("{key}: login as {ALICE} failed: {err}"))?;
        let inbox = session.select("INBOX")?;
        assert!(
            inbox.uid_validity.is_some(),
            "{key}: SELECT INBOX gave no UIDVALIDITY"
        );
        session.logout()?;
    }
    Ok(())
}

#[test]
fn imap_refuses_a_wrong_password() -> TestResult {
    let tb = Testbed::get();
    let client = imap::connect(&tb.server("TESTBED_IMAPS"), Security::Tls, tb.tls(true))?;
    let result = client.login(ALICE, "not-the-password");
    assert!(result.is_err(), "login with a wrong password succeeded");
    Ok(())
}

#[test]
fn a_client_without_the_test_root_is_refused() -> TestResult {
    let tb = Testbed::get();
    for (key, security) in [
        ("TESTBED_IMAP", Security::StartTls),
        ("TESTBED_IMAPS", Security::Tls),
    ] {
        let Err(err) = imap::connect(&tb.server(key), security, tb.tls(false)) else {
            panic!("{key}: TLS handshake succeeded without the test root");
        };
        assert!(
            err.to_string().contains("UnknownIssuer"),
            "{key}: unexpected error: {err}"
        );
    }
    let https = reqwest::blocking::Client::builder()
        .tls_backend_preconfigured((*tb.tls(false)).clone())
        .build()?;
    let err = https
        .get(tb.var("SMIME_ACME_SERVER"))
        .send()
        .expect_err("HTTPS to the ACME server succeeded without the test root");
    let chain = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    assert!(
        chain.contains("UnknownIssuer"),
        "unexpected HTTPS error: {chain}"
    );
    Ok(())
}

#[test]
fn submission_on_both_ports_delivers_dkim_signed_mail_to_the_ca() -> TestResult {
    let tb = Testbed::get();
    let ca = tb.var("TESTBED_CA_MAILBOX");
    let authserv_id = tb.var("TESTBED_AUTHSERV_ID");
    for (security, label) in [(Security::StartTls, "starttls"), (Security::Tls, "tls")] {
        let subject = marker(&format!("submission-{label}"));
        submit(
            &tb,
            security,
            ALICE,
            (ALICE, ca),
            &message(ALICE, ca, &subject, ""),
        )?;
        let got = wait_for_message(&tb, ca, &subject)?;

        let signatures = headers(&got, "DKIM-Signature");
        assert!(
            signatures.iter().any(|s| s.contains("d=example.test;")),
            "{label}: no DKIM-Signature with d=example.test: {signatures:#?}"
        );
        let checks = verify_dkim(&tb, &got)?;
        let mut algorithms: Vec<&str> = checks
            .iter()
            .filter(|v| v.pass && v.domain == "example.test")
            .map(|v| v.algorithm.as_str())
            .collect();
        algorithms.sort_unstable();
        assert_eq!(
            algorithms,
            ["Ed25519Sha256", "RsaSha256"],
            "{label}: signatures that verify with keys from the testbed DNS (checks: {checks:?})"
        );

        let results = headers(&got, "Authentication-Results");
        assert!(
            results
                .iter()
                .any(|r| r.starts_with(&format!("{authserv_id};"))
                    && r.contains("dkim=pass")
                    && r.contains("header.d=example.test")),
            "{label}: no Authentication-Results from {authserv_id} with dkim=pass: {results:#?}"
        );
    }
    Ok(())
}

#[test]
fn mail_from_the_ca_is_auto_submitted_and_signed_by_ca_test() -> TestResult {
    let tb = Testbed::get();
    let ca = tb.var("TESTBED_CA_MAILBOX");
    let subject = format!("ACME: {}", marker("from-ca"));
    submit(
        &tb,
        Security::StartTls,
        ca,
        (ca, ALICE),
        &message(ca, ALICE, &subject, ""),
    )?;
    let got = wait_for_message(&tb, ALICE, &subject)?;

    assert_eq!(
        headers(&got, "Auto-Submitted"),
        ["auto-generated; type=acme"]
    );
    let checks = verify_dkim(&tb, &got)?;
    let ca_signatures: Vec<_> = checks
        .iter()
        .filter(|v| v.pass && v.domain == "ca.test")
        .collect();
    assert_eq!(
        ca_signatures.len(),
        2,
        "valid d=ca.test signatures (checks: {checks:?})"
    );
    for signature in ca_signatures {
        for header in REQUIRED_SIGNED {
            assert!(
                signature.signed_headers.iter().any(|h| h == header),
                "{} signature does not cover {header}: {:?}",
                signature.algorithm,
                signature.signed_headers
            );
        }
    }
    Ok(())
}

#[test]
fn mail_injected_at_the_mx_is_unsigned_and_forged_results_are_dropped() -> TestResult {
    let tb = Testbed::get();
    let ca = tb.var("TESTBED_CA_MAILBOX");
    let authserv_id = tb.var("TESTBED_AUTHSERV_ID");
    let subject = format!("ACME: {}", marker("forged"));
    let forged = format!(
        "Authentication-Results: {authserv_id}; dkim=pass header.d=ca.test\r\n\
         Auto-Submitted: auto-generated; type=acme\r\n"
    );
    inject_mx(&tb, (ca, ALICE), &message(ca, ALICE, &subject, &forged))?;
    let got = wait_for_message(&tb, ALICE, &subject)?;

    assert!(
        headers(&got, "DKIM-Signature").is_empty(),
        "mail from the MX got signed"
    );
    let ours: Vec<String> = headers(&got, "Authentication-Results")
        .into_iter()
        .filter(|r| r.starts_with(&format!("{authserv_id};")))
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "Authentication-Results from {authserv_id}: {ours:#?}"
    );
    assert!(
        ours[0].contains("dkim=none") && !ours[0].contains("dkim=pass"),
        "expected dkim=none: {}",
        ours[0]
    );
    Ok(())
}

#[test]
fn acme_directory_over_https_lists_the_resources_and_gives_nonces() -> TestResult {
    let tb = Testbed::get();
    let https = reqwest::blocking::Client::builder()
        .tls_backend_preconfigured((*tb.tls(true)).clone())
        .build()?;
    for server in ["SMIME_ACME_SERVER", "SMIME_ACME_EAB_SERVER"] {
        let body = https
            .get(tb.var(server))
            .send()?
            .error_for_status()?
            .bytes()?;
        let directory: serde_json::Value = serde_json::from_slice(&body)?;
        for resource in [
            "newNonce",
            "newAccount",
            "newOrder",
            "revokeCert",
            "keyChange",
            "renewalInfo",
        ] {
            let url = directory[resource].as_str().unwrap_or_default();
            assert!(
                url.starts_with("https://"),
                "{server}: directory lacks {resource}: {directory}"
            );
        }
        let response = https
            .head(directory["newNonce"].as_str().unwrap_or_default())
            .send()?;
        assert!(
            response.status().is_success(),
            "{server}: HEAD newNonce gave {}",
            response.status()
        );
        let nonce = response
            .headers()
            .get("Replay-Nonce")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            !nonce.is_empty()
                && nonce
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{server}: Replay-Nonce is not base64url: {nonce:?}"
        );
        let eab_required = directory["meta"]["externalAccountRequired"]
            .as_bool()
            .unwrap_or(false);
        assert_eq!(
            eab_required,
            server == "SMIME_ACME_EAB_SERVER",
            "{server}: externalAccountRequired"
        );
    }
    Ok(())
}
