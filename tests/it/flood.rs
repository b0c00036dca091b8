//! Forged mail stays cheap: a flood of large unsigned "challenge" mails and a mail whose 30 DKIM
//! signatures name a DNS zone that never answers, all delivered after the run noted where new
//! mail starts, hold the genuine challenge up by little, each header block is read once, and
//! only candidates are downloaded whole (counted by Dovecot, which logs the bytes it served).

use std::net::UdpSocket;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::obtain::{ca_lock, obtain_command, signal, state_dir, stderr, token, wait_for_file};
use crate::testbed::{TestResult, Testbed, imap_login, marker};

const FLOOD: usize = 300;
const FLOOD_BYTES: usize = 250 * 1024;

/// Dovecot's logout lines of `user`'s IMAP sessions (fields `in=`, `out=`, `hdr_count=`,
/// `hdr_bytes=`, `body_count=`, `body_bytes=`), after the first `skip` lines of the log.
fn imap_sessions(
    tb: &Testbed,
    user: &str,
    skip: usize,
) -> Vec<std::collections::HashMap<String, u64>> {
    let log = std::path::Path::new(tb.var("TESTBED_STATE")).join("logs/dovecot.log");
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .skip(skip)
        .filter(|l| l.contains(&format!("imap({user})")) && l.contains("Logged out in="))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| {
                    let (k, v) = w.split_once('=')?;
                    Some((k.to_owned(), v.parse().ok()?))
                })
                .collect()
        })
        .collect()
}

fn log_lines(tb: &Testbed) -> usize {
    let log = std::path::Path::new(tb.var("TESTBED_STATE")).join("logs/dovecot.log");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .count()
}

/// When a challenge mail holding `needle` arrived in `mailbox` (Unix ms, from its Maildir name).
fn arrival_ms(tb: &Testbed, mailbox: &str, needle: &str) -> Option<u64> {
    let root = std::path::Path::new(tb.var("TESTBED_STATE"))
        .join("mail")
        .join(mailbox)
        .join("Maildir");
    for sub in ["new", "cur"] {
        for entry in std::fs::read_dir(root.join(sub)).ok()?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(text) = std::fs::read(entry.path()) else {
                continue;
            };
            if !String::from_utf8_lossy(&text[..text.len().min(8192)]).contains(needle) {
                continue;
            }
            let (secs, rest) = name.split_once(".M")?;
            let micros: String = rest.chars().take_while(char::is_ascii_digit).collect();
            return Some(secs.parse::<u64>().ok()? * 1000 + micros.parse::<u64>().ok()? / 1000);
        }
    }
    None
}

#[test]
fn a_flood_of_forged_mail_does_not_hold_up_the_genuine_one() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff41@example.test";
    let ca = tb.var("TESTBED_CA_MAILBOX").to_owned();
    let state = state_dir("flood");
    // The server for silent._domainkey.ca.test: reads every query, never answers.
    let silent = UdpSocket::bind(tb.var("TESTBED_DNS_SILENT"))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while silent.recv_from(&mut buf).is_ok() {}
    });

    let _ca = ca_lock();
    let log_start = log_lines(&tb);
    let mut child = obtain_command(&tb, mailbox, &state, &["--key-type", "p256"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    wait_for_file(
        &state.join("pending").join(format!("{mailbox}.json")),
        |_| true,
        &mut child,
    );
    signal(&child, "STOP");
    let mut session = imap_login(&tb, mailbox)?;
    let line = format!("{}\r\n", "x".repeat(78));
    let body = line.repeat(FLOOD_BYTES / line.len());
    for _ in 0..FLOOD {
        let raw = format!(
            "From: {ca}\r\nTo: {mailbox}\r\nSubject: ACME: {}\r\nDate: Wed, 2 Dec 2026 06:00:00 +0000\r\n\
             Message-ID: <{}@ca.test>\r\nAuto-Submitted: auto-generated; type=acme\r\n\r\n{body}",
            token(),
            marker("flood")
        );
        session.append("INBOX", raw.as_bytes()).finish()?;
    }
    let many_token = token();
    let many_body = "A mail with many signatures.\r\n";
    let bh = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        ring::digest::digest(&ring::digest::SHA256, many_body.as_bytes()),
    );
    let signatures: String = (0..30)
        .map(|i| {
            format!(
                "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=ca.test; s=k{i}.silent;\r\n\
                 \th=from:to:subject:date:message-id:auto-submitted; bh={bh}; b=dGVzdA==\r\n"
            )
        })
        .collect();
    let many = format!(
        "{signatures}From: {ca}\r\nTo: {mailbox}\r\nSubject: ACME: {many_token}\r\n\
         Date: Wed, 2 Dec 2026 06:00:00 +0000\r\nMessage-ID: <{}@ca.test>\r\n\
         Auto-Submitted: auto-generated; type=acme\r\n\r\n{many_body}",
        marker("many")
    );
    session.append("INBOX", many.as_bytes()).finish()?;
    session.logout()?;
    signal(&child, "CONT");
    let started = Instant::now();

    let out = child.wait_with_output()?;
    let log = stderr(&out);
    assert!(out.status.success(), "obtain failed: {log}");
    let json: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["status"], "issued");
    assert_eq!(json["challenge_mails_answered"], 1, "{log}");
    let ignored = log.lines().filter(|l| l.contains("ignored mail")).count();
    assert!(ignored >= FLOOD, "every forged mail judged: {ignored}");
    assert!(
        log.lines()
            .any(|l| l.contains(&many_token) || (l.contains("DKIM") && l.contains("retry"))),
        "the mail with 30 signatures was judged: {log}"
    );
    let accepted = log
        .lines()
        .find(|l| l.contains("accepted after"))
        .expect("the genuine mail accepted");
    let genuine = accepted
        .split("token-part1 ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .expect("its token");
    let arrived = arrival_ms(&tb, mailbox, &format!("ACME: {genuine}")).expect("its arrival");
    let replied = json["reply_sent_at_unix_ms"].as_u64().expect("reply time");
    let latency = replied.saturating_sub(arrived);
    println!(
        "flood: genuine mail answered {latency} ms after arrival; run {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        latency < 2000,
        "answered {latency} ms after it arrived (with {FLOOD} forged mails and 30 signatures on hanging DNS)"
    );

    // The run's IMAP sessions (the appending one uploaded the flood: in= is large).
    std::thread::sleep(Duration::from_millis(300));
    let runs: Vec<_> = imap_sessions(&tb, mailbox, log_start)
        .into_iter()
        .filter(|s| s.get("in").copied().unwrap_or(0) < 1 << 20)
        .collect();
    assert!(!runs.is_empty(), "the run's IMAP session was logged");
    let sum = |k: &str| {
        runs.iter()
            .map(|s| s.get(k).copied().unwrap_or(0))
            .sum::<u64>()
    };
    let (out_bytes, hdr_count, body_count, body_bytes) = (
        sum("out"),
        sum("hdr_count"),
        sum("body_count"),
        sum("body_bytes"),
    );
    println!(
        "flood: IMAP out={out_bytes} bytes, {hdr_count} header blocks, {body_count} whole mails \
         ({body_bytes} bytes of bodies) for {FLOOD} forged mails of {FLOOD_BYTES} bytes"
    );
    assert!(
        hdr_count <= FLOOD as u64 + 4,
        "each header block read once: {hdr_count}"
    );
    let candidates = (many.len() + 8192) as u64;
    assert!(
        body_bytes <= candidates * 6 / 5,
        "only candidates downloaded whole: {body_bytes} bytes"
    );
    assert!(
        out_bytes < (FLOOD * FLOOD_BYTES / 50) as u64,
        "a fraction of the flood crossed the wire: {out_bytes}"
    );
    Ok(())
}
