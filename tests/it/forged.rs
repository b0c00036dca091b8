//! A corpus of forged and malformed challenge mails that arrive while `obtain` waits: through the
//! MX (unauthenticated, as an outside sender sends them), through submission (signed by another
//! domain), and put into the mailbox by IMAP APPEND (headers stay exactly as written, in forms an
//! MTA would rewrite). None is answered: each is judged and logged as ignored with its reason, or,
//! when larger than a challenge mail can be, never read at all. The stranger a forged Reply-To
//! names gets nothing. The CA's own mail for the order, delivered twice, is answered once, and
//! the certificate is issued. Peak memory stays small with a 20 MB mail and a 5 000-header mail
//! waiting.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imap::Session;
use serde_json::Value;
use smime_acme::acme::jws;
use smime_acme::mail::Security;
use smime_acme::mail::imap::Stream;

use crate::obtain::{
    answers_from, ca_lock, obtain_args, state_dir, token, wait_for_file, with_flag,
};
use crate::testbed::{
    TestResult, Testbed, fetch_all, headers, imap_login, inject_mx, submit, verify_dkim,
};

/// The mailbox `obtain` runs for; no other test uses it.
const MAILBOX: &str = "staff14@example.test";
/// Someone else: forged mails name them, and genuine mails for them are re-addressed.
const STRANGER: &str = "staff15@example.test";
/// Another domain's sender; the testbed signs its mail with d=example.test.
const BOB: &str = "bob@example.test";
const AUTO: &str = "Auto-Submitted: auto-generated; type=acme";
/// Peak resident memory allowed for the run, in KiB.
const MAX_RSS_KIB: u64 = 64 * 1024;
/// The largest mail a challenge can be (`MAX_MAIL_BYTES`), in bytes.
const MAX_MAIL_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Handed to the MX as mail from the Internet.
    Mx,
    /// Submitted by bob@example.test, and so signed by example.test.
    Submission,
    /// IMAP APPEND into the INBOX, byte for byte.
    Append,
}

#[derive(Debug)]
enum Expect {
    /// Judged and ignored: its log line names this reason.
    Ignored(&'static str),
    /// Larger than a challenge mail: never judged, so no log line names it.
    Skipped,
}

#[derive(Debug)]
struct Case {
    name: &'static str,
    via: Via,
    /// Every token-part1 the mail carries; the first is in its (last) subject.
    tokens: Vec<String>,
    /// Envelope sender for the MX or submission.
    sender: String,
    raw: Vec<u8>,
    expect: Expect,
}

impl Case {
    fn new(name: &'static str, via: Via, token: &str, raw: Vec<u8>, expect: Expect) -> Case {
        Case {
            name,
            via,
            tokens: vec![token.to_owned()],
            sender: STRANGER.to_owned(),
            raw,
            expect,
        }
    }

    fn sender(mut self, sender: &str) -> Case {
        sender.clone_into(&mut self.sender);
        self
    }

    fn also(mut self, token: &str) -> Case {
        self.tokens.push(token.to_owned());
        self
    }
}

/// A token-part1 of `bytes` random bytes, base64url.
fn token_of(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    jws::random_bytes(&mut buf).expect("random bytes");
    jws::b64u(buf)
}

/// A unique Message-ID value (with brackets) at `domain`.
fn message_id(domain: &str) -> String {
    format!("<{}.{}@{domain}>", token_of(9), std::process::id())
}

/// The header lines of a challenge mail from `from` to `to` with `subject`: From, To, Subject,
/// Date, Message-ID, then `extra`, then the MIME lines.
fn challenge_lines(from: &str, to: &str, subject: &str, extra: &[&str]) -> Vec<String> {
    let domain = from.rsplit('@').next().unwrap_or("ca.test");
    let mut lines = vec![
        format!("From: {from}"),
        format!("To: {to}"),
        format!("Subject: {subject}"),
        format!(
            "Date: {}",
            smime_acme::clock::rfc5322(smime_acme::clock::now())
        ),
        format!("Message-ID: {}", message_id(domain)),
    ];
    lines.extend(extra.iter().map(|l| (*l).to_owned()));
    lines.extend(
        [
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=us-ascii",
        ]
        .map(String::from),
    );
    lines
}

fn compose(lines: &[String], body: &str) -> Vec<u8> {
    format!("{}\r\n\r\n{body}", lines.join("\r\n")).into_bytes()
}

/// A challenge mail to us as anyone can write it: never signed.
fn unsigned(from: &str, subject: &str, extra: &[&str]) -> Vec<u8> {
    compose(
        &challenge_lines(from, MAILBOX, subject, extra),
        "This is an ACME challenge.\r\n",
    )
}

/// `raw` with `line` as its first header.
fn prepend(raw: &[u8], line: &str) -> Vec<u8> {
    let mut out = format!("{line}\r\n").into_bytes();
    out.extend_from_slice(raw);
    out
}

/// `raw` with `line` as its last header.
fn append_header(raw: &[u8], line: &str) -> Vec<u8> {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block")
        + 2;
    let mut out = raw[..at].to_vec();
    out.extend_from_slice(format!("{line}\r\n").as_bytes());
    out.extend_from_slice(&raw[at..]);
    out
}

/// `raw` with the first `from` replaced by `to`.
fn replace(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).expect("an ASCII mail");
    assert!(text.contains(from), "{from:?} is not in the mail");
    text.replacen(from, to, 1).into_bytes()
}

/// A mail signed on submission by the testbed's signer, which signs for the From domain (d=ca.test
/// for From: acme@ca.test, d=example.test for bob), delivered to the stranger's mailbox and read
/// back as it arrived: the raw material for forgeries made from genuine signed mail.
#[derive(Debug)]
struct Signed {
    token: String,
    /// The domain whose valid signature it carries.
    domain: String,
    raw: Vec<u8>,
}

/// Submits a mail with subject `ACME: <new token>` as `user`, delivered to the stranger;
/// [`collect`] reads it back.
fn signed(
    tb: &Testbed,
    user: &str,
    from: &str,
    to: &str,
    extra: &[&str],
    body: &str,
) -> TestResult<Signed> {
    let token = token();
    let raw = compose(
        &challenge_lines(from, to, &format!("ACME: {token}"), extra),
        body,
    );
    submit(tb, Security::Tls, user, (user, STRANGER), &raw)?;
    Ok(Signed {
        token,
        domain: from.rsplit('@').next().unwrap_or_default().to_owned(),
        raw: Vec::new(),
    })
}

/// Reads back (and removes from the stranger's mailbox) every mail of `pending`.
fn collect(tb: &Testbed, pending: &mut [&mut Signed]) -> TestResult {
    let mut session = imap_login(tb, STRANGER)?;
    session.select("INBOX")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    for mail in pending.iter_mut() {
        loop {
            let uids = session.uid_search(format!("SUBJECT \"{}\"", mail.token))?;
            if let Some(uid) = uids.iter().next() {
                let fetched = session.uid_fetch(uid.to_string(), "BODY.PEEK[]")?;
                mail.raw = fetched
                    .iter()
                    .find_map(|f| f.body())
                    .ok_or("no body")?
                    .to_vec();
                session.uid_store(uid.to_string(), "+FLAGS (\\Deleted)")?;
                session.uid_expunge(uid.to_string())?;
                break;
            }
            if Instant::now() > deadline {
                return Err(
                    format!("the signed mail {} never reached {STRANGER}", mail.token).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let checks = verify_dkim(tb, &mail.raw)?;
        assert!(
            checks.iter().any(|c| c.pass && c.domain == mail.domain),
            "the mail {} carries a valid signature of {}: {checks:?}",
            mail.token,
            mail.domain
        );
    }
    session.logout()?;
    Ok(())
}

/// The forged and malformed mails, each with its own token-part1.
fn corpus(tb: &Testbed, ca: &str) -> TestResult<Vec<Case>> {
    use Expect::{Ignored, Skipped};
    use Via::{Append, Mx, Submission};
    const NOT_SENDER: &str = "not from the challenge's sender acme@ca.test";
    const UNSIGNED: &str = "it is not authentic: it has no DKIM signature";
    const BROKEN: &str = "it is not authentic: no DKIM signature verifies (d=ca.test";
    const NOT_AUTO: &str = "it lacks \"Auto-Submitted: auto-generated\"";
    const REPLY: &str = "its subject is a reply, not a challenge";
    const BAD_ID: &str = "is not a plain msg-id";

    // Genuine signed mail, made first.
    let body = "This is an ACME challenge.\r\n";
    let mut body_base = signed(tb, ca, ca, MAILBOX, &[], body)?;
    let mut subject_base = signed(tb, ca, ca, MAILBOX, &[], body)?;
    let mut two_from_base = signed(tb, ca, ca, MAILBOX, &[], body)?;
    let mut second_subject_base = signed(tb, ca, ca, MAILBOX, &[], body)?;
    let mut reply_to_base = signed(tb, ca, ca, MAILBOX, &[], body)?;
    let mut bare_line_base = signed(tb, ca, ca, MAILBOX, &[], body)?;
    let mut auto_twice_base = signed(tb, ca, ca, MAILBOX, &[], body)?;
    let mut obsolete_to_base = signed(tb, ca, ca, STRANGER, &[], body)?;
    let mut theirs_base = signed(tb, ca, ca, STRANGER, &[], body)?;
    let big_body = format!("{body}{}", format!("{}\r\n", "x".repeat(76)).repeat(4000));
    let mut big_base = signed(tb, ca, ca, MAILBOX, &[], &big_body)?;
    // Signed by ca.test, but without a proper Auto-Submitted: submission adds one to what the
    // CA's own mailbox sends, not to bob's mail written From: acme@ca.test.
    let mut no_auto_base = signed(tb, BOB, ca, MAILBOX, &[], body)?;
    let mut auto_no_base = signed(tb, BOB, ca, MAILBOX, &["Auto-Submitted: no"], body)?;
    // Signed by example.test for bob.
    let mut foreign_base = signed(tb, BOB, BOB, MAILBOX, &[AUTO], body)?;
    collect(
        tb,
        &mut [
            &mut body_base,
            &mut subject_base,
            &mut two_from_base,
            &mut second_subject_base,
            &mut reply_to_base,
            &mut bare_line_base,
            &mut auto_twice_base,
            &mut obsolete_to_base,
            &mut theirs_base,
            &mut big_base,
            &mut no_auto_base,
            &mut auto_no_base,
            &mut foreign_base,
        ],
    )?;
    assert!(
        big_base.raw.len() > MAX_MAIL_BYTES,
        "the large mail is large"
    );

    let mut cases = Vec::new();

    let tk = token();
    cases.push(Case::new(
        "stranger From with a real-looking token",
        Mx,
        &tk,
        unsigned(STRANGER, &format!("ACME: {tk}"), &[AUTO]),
        Ignored(NOT_SENDER),
    ));
    let tk = token();
    cases.push(Case::new(
        "the CA's address as display name of a stranger",
        Mx,
        &tk,
        unsigned(
            &format!("\"{ca}\" <{STRANGER}>"),
            &format!("ACME: {tk}"),
            &[AUTO],
        ),
        Ignored(NOT_SENDER),
    ));
    let tk = token();
    cases.push(
        Case::new(
            "From spoofed as the CA, unsigned",
            Mx,
            &tk,
            unsigned(ca, &format!("ACME: {tk}"), &[AUTO]),
            Ignored(UNSIGNED),
        )
        .sender(ca),
    );
    let tk = token();
    cases.push(
        Case::new(
            "signed by example.test, From bob",
            Submission,
            &tk,
            compose(
                &challenge_lines(BOB, MAILBOX, &format!("ACME: {tk}"), &[AUTO]),
                body,
            ),
            Ignored(NOT_SENDER),
        )
        .sender(BOB),
    );
    cases.push(
        Case::new(
            "signed by example.test, From rewritten to the CA",
            Mx,
            &foreign_base.token,
            replace(
                &foreign_base.raw,
                &format!("From: {BOB}"),
                &format!("From: {ca}"),
            ),
            Ignored("it is not authentic"),
        )
        .sender(BOB),
    );
    cases.push(
        Case::new(
            "genuine CA mail, body altered",
            Mx,
            &body_base.token,
            replace(
                &body_base.raw,
                "an ACME challenge",
                "an ACME challenge, altered",
            ),
            Ignored(BROKEN),
        )
        .sender(ca),
    );
    let tk = token();
    cases.push(
        Case::new(
            "genuine CA mail, subject altered",
            Append,
            &tk,
            replace(
                &subject_base.raw,
                &format!("Subject: ACME: {}", subject_base.token),
                &format!("Subject: ACME: {tk}"),
            ),
            Ignored(BROKEN),
        )
        .also(&subject_base.token),
    );
    cases.push(
        Case::new(
            "CA-signed, Auto-Submitted missing",
            Mx,
            &no_auto_base.token,
            no_auto_base.raw.clone(),
            Ignored(NOT_AUTO),
        )
        .sender(ca),
    );
    cases.push(Case::new(
        "CA-signed, Auto-Submitted: no",
        Append,
        &auto_no_base.token,
        auto_no_base.raw.clone(),
        Ignored(NOT_AUTO),
    ));
    let tk = token();
    cases.push(
        Case::new(
            "Re: ACME: subject",
            Mx,
            &tk,
            unsigned(ca, &format!("Re: ACME: {tk}"), &[AUTO]),
            Ignored(REPLY),
        )
        .sender(ca),
    );
    let tk = token();
    cases.push(Case::new(
        "Fwd: ACME: subject",
        Append,
        &tk,
        unsigned(ca, &format!("Fwd: ACME: {tk}"), &[AUTO]),
        Ignored(REPLY),
    ));
    let tk = token_of(15);
    cases.push(
        Case::new(
            "token-part1 of 15 bytes",
            Mx,
            &tk,
            unsigned(ca, &format!("ACME: {tk}"), &[AUTO]),
            Ignored("its token-part1 has 15 bytes, fewer than 16"),
        )
        .sender(ca),
    );
    let tk = token();
    let not_b64 = format!("{}+{}/", &tk[..10], &tk[10..]);
    cases.push(Case::new(
        "token-part1 not base64url",
        Append,
        &not_b64,
        unsigned(ca, &format!("ACME: {not_b64}"), &[AUTO]),
        Ignored("its token-part1 is not base64url"),
    ));
    let tk = token();
    let mut html = challenge_lines(ca, MAILBOX, &format!("ACME: {tk}"), &[AUTO]);
    html.pop();
    html.push("Content-Type: text/html; charset=us-ascii".into());
    cases.push(
        Case::new(
            "HTML only, From the CA, unsigned",
            Mx,
            &tk,
            compose(
                &html,
                &format!("<html><body><p>ACME: {tk}</p></body></html>\r\n"),
            ),
            Ignored(UNSIGNED),
        )
        .sender(ca),
    );
    cases.push(Case::new(
        "genuine CA mail with a second From prepended",
        Append,
        &two_from_base.token,
        prepend(&two_from_base.raw, &format!("From: {STRANGER}")),
        Ignored("its From header appears more than once"),
    ));
    cases.push(Case::new(
        "genuine CA mail for someone else re-addressed with `To :`",
        Append,
        &obsolete_to_base.token,
        append_header(&obsolete_to_base.raw, &format!("To : {MAILBOX}")),
        Ignored("its To header is in an obsolete or malformed form"),
    ));
    let tk = token();
    cases.push(
        Case::new(
            "genuine CA mail with a second Subject prepended",
            Append,
            &second_subject_base.token,
            prepend(&second_subject_base.raw, &format!("Subject: ACME: {tk}")),
            Ignored("its Subject header appears more than once"),
        )
        .also(&tk),
    );
    cases.push(
        Case::new(
            "genuine CA mail with an unsigned Reply-To to a stranger prepended",
            Mx,
            &reply_to_base.token,
            prepend(&reply_to_base.raw, &format!("Reply-To: {STRANGER}")),
            Ignored(BROKEN),
        )
        .sender(ca),
    );
    cases.push(Case::new(
        "genuine CA mail with a Reply-To below a line without a colon",
        Append,
        &bare_line_base.token,
        append_header(
            &append_header(&bare_line_base.raw, "this line has no colon"),
            &format!("Reply-To: {STRANGER}"),
        ),
        Ignored("its Reply-To header is in an obsolete or malformed form"),
    ));
    cases.push(
        Case::new(
            "genuine CA mail with a second Auto-Submitted prepended",
            Mx,
            &auto_twice_base.token,
            prepend(&auto_twice_base.raw, "Auto-Submitted: auto-generated"),
            Ignored("its Auto-Submitted header appears more than once"),
        )
        .sender(ca),
    );
    let tk = token();
    let mut lines = challenge_lines(ca, MAILBOX, &format!("ACME: {tk}"), &[AUTO]);
    lines[4] = format!("Message-ID: <{} x@ca.test>", token_of(6));
    cases.push(
        Case::new(
            "Message-ID with a space",
            Mx,
            &tk,
            compose(&lines, body),
            Ignored(BAD_ID),
        )
        .sender(ca),
    );
    let tk = token();
    let mut lines = challenge_lines(ca, MAILBOX, &format!("ACME: {tk}"), &[AUTO]);
    lines[4] = format!("Message-ID: <{}\u{1}x@ca.test>", token_of(6));
    cases.push(Case::new(
        "Message-ID with a control character",
        Append,
        &tk,
        compose(&lines, body),
        Ignored(BAD_ID),
    ));
    let tk = token();
    let mut lines = challenge_lines(ca, MAILBOX, &format!("ACME: {tk}"), &[AUTO]);
    lines[4] = format!("Message-ID: <{}\rBcc: {STRANGER}@ca.test>", token_of(6));
    cases.push(Case::new(
        "Message-ID with a CR",
        Append,
        &tk,
        compose(&lines, body),
        Ignored(BAD_ID),
    ));
    cases.push(
        Case::new(
            "genuine CA mail To another address",
            Mx,
            &theirs_base.token,
            theirs_base.raw.clone(),
            Ignored("it is not addressed to staff14@example.test"),
        )
        .sender(ca),
    );
    let tk = token();
    let mut lines = challenge_lines(ca, MAILBOX, &format!("ACME: {tk}"), &[AUTO]);
    lines.remove(4);
    cases.push(Case::new(
        "no Message-ID",
        Append,
        &tk,
        compose(&lines, body),
        Ignored("it has no Message-ID"),
    ));
    let tk = token();
    let mut lines = challenge_lines(ca, MAILBOX, &format!("ACME: {tk}"), &[AUTO]);
    lines.extend((0..5000).map(|i| format!("X-Filler: {i:04}")));
    let many = compose(&lines, body);
    assert!(many.len() < MAX_MAIL_BYTES, "small enough to be judged");
    cases.push(Case::new(
        "5 000 headers, From the CA, unsigned",
        Append,
        &tk,
        many,
        Ignored(UNSIGNED),
    ));
    cases.push(
        Case::new(
            "genuine CA mail over 256 KiB",
            Mx,
            &big_base.token,
            big_base.raw.clone(),
            Skipped,
        )
        .sender(ca),
    );
    let tk = token();
    let mut huge = unsigned(ca, &format!("ACME: {tk}"), &[AUTO]);
    let line = format!("{}\r\n", "y".repeat(1022));
    huge.extend(line.repeat(20 * 1024).as_bytes());
    cases.push(Case::new(
        "20 MB, From the CA, unsigned",
        Append,
        &tk,
        huge,
        Skipped,
    ));
    Ok(cases)
}

/// Sends `signal` (a name such as STOP) to process `pid`.
fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// The process that `/usr/bin/time` (process `parent`) started.
fn child_of(parent: u32) -> u32 {
    let path = format!("/proc/{parent}/task/{parent}/children");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(pid) = text.split_whitespace().next().and_then(|p| p.parse().ok()) {
            return pid;
        }
        assert!(Instant::now() < deadline, "{path} names no process");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The UID and header of each mail of the INBOX from UID `first` on.
fn new_mails(session: &mut Session<Stream>, first: u32) -> TestResult<Vec<(u32, Vec<u8>)>> {
    session.select("INBOX")?;
    let fetched = session.uid_fetch(format!("{first}:*"), "BODY.PEEK[HEADER]")?;
    Ok(fetched
        .iter()
        .filter_map(|f| Some((f.uid?, f.header()?.to_vec())))
        .filter(|(uid, _)| *uid >= first)
        .collect())
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Replies from us to the stranger.
fn stranger_replies(tb: &Testbed) -> TestResult<usize> {
    let from = format!("<{MAILBOX}>");
    Ok(fetch_all(tb, STRANGER)?
        .iter()
        .filter(|raw| {
            headers(raw, "From")
                .iter()
                .any(|f| f.contains(&from) || f == MAILBOX)
        })
        .count())
}

/// Replies in the CA's mailbox with subject `Re: ACME: <token>`, per token.
fn replies(ca_mail: &[Vec<u8>], token: &str) -> usize {
    let subject = format!("Re: ACME: {token}");
    ca_mail
        .iter()
        .filter(|raw| headers(raw, "Subject").contains(&subject))
        .count()
}

fn rss_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/it-state/forged-corpus.peak-rss")
}

#[test]
fn a_corpus_of_forged_and_malformed_challenge_mails_is_never_answered() -> TestResult {
    let tb = Testbed::get();
    let ca = tb.var("TESTBED_CA_MAILBOX").to_owned();
    let _ca = ca_lock();
    let cases = corpus(&tb, &ca)?;
    assert!(cases.len() >= 25, "{} cases", cases.len());

    let mut session = imap_login(&tb, MAILBOX)?;
    let first = session.select("INBOX")?.uid_next.unwrap_or(1);
    let stranger_before = stranger_replies(&tb)?;
    let answers_before = answers_from(&tb, MAILBOX)?;
    let state = state_dir("forged-corpus");
    let rss = rss_file();
    let _ = std::fs::remove_file(&rss);
    let args = with_flag(obtain_args(&tb, MAILBOX, &state, &[]), "--timeout", "120s");
    let mut timer = Command::new("/usr/bin/time");
    timer
        .args(["-f", "%M", "-o"])
        .arg(&rss)
        .arg(env!("CARGO_BIN_EXE_smime-acme"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("SMIME_ACME_") {
            timer.env_remove(key);
        }
    }
    let mut timer: Child = timer.spawn().map_err(|e| {
        format!("cannot run /usr/bin/time ({e}): install the testbed tools with `sudo tests/testbed/install`")
    })?;
    let pid = child_of(timer.id());

    // Hold the run once it has the challenge: every new mail is judged before one is answered,
    // so each forgery is judged together with the CA's mail.
    wait_for_file(
        &state.join("pending").join(format!("{MAILBOX}.json")),
        |text| serde_json::from_str::<Value>(text).is_ok_and(|v| v["challenge_from"].is_string()),
        &mut timer,
    );
    kill(pid, "STOP");
    let delivered = deliver(&tb, &mut session, &cases);
    // The CA's own mail for the order, delivered a second time.
    let copy = delivered.and_then(|()| duplicate_ours(&mut session, &ca, first, &cases));
    kill(pid, "CONT");
    let (ours, uids, copy_uid) = copy?;

    let out = timer.wait_with_output()?;
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(out.status.success(), "obtain failed: {log}");
    assert_eq!(json["status"], "issued", "{log}");

    let mut failures = Vec::new();
    for (case, uid) in cases.iter().zip(&uids) {
        let named = format!("mail {uid} in INBOX");
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(&named)).collect();
        let ok = match case.expect {
            Expect::Ignored(reason) => lines.iter().any(|l| {
                l.contains(&format!("ignored {named} ("))
                    && case.tokens.iter().any(|t| l.contains(t.as_str()))
                    && l.contains(reason)
            }),
            Expect::Skipped => lines.is_empty(),
        };
        if !ok {
            failures.push(format!(
                "{} (uid {uid}, {:?}): expected {:?}, logged {lines:?}",
                case.name, case.via, case.expect
            ));
        }
        for t in &case.tokens {
            if log.contains(&format!("token-part1 {t}")) {
                failures.push(format!("{} (uid {uid}) was accepted", case.name));
            }
        }
    }
    let accepted: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("challenge mail ") && l.contains(" accepted after "))
        .collect();
    assert_eq!(
        accepted.len(),
        1,
        "one challenge mail accepted: {accepted:?}"
    );
    assert!(
        accepted[0].contains(&format!("token-part1 {ours}")),
        "the CA's mail for the order is the one accepted: {accepted:?}"
    );
    assert!(
        log.lines().any(|l| l.contains(&format!(
            "ignored mail {copy_uid} in INBOX: already answered"
        ))),
        "the second copy of the CA's mail is not answered again:\n{log}"
    );
    assert_eq!(
        log.matches("accepted by the SMTP server").count(),
        1,
        "one reply sent:\n{log}"
    );

    // The reply has reached the CA (it validated); give any other reply time to arrive too.
    let deadline = Instant::now() + Duration::from_secs(15);
    while answers_from(&tb, MAILBOX)? <= answers_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let ca_mail = fetch_all(&tb, &ca)?;
    for case in &cases {
        for t in &case.tokens {
            let n = replies(&ca_mail, t);
            if n != 0 {
                failures.push(format!("{}: {n} replies in the CA's mailbox", case.name));
            }
        }
    }
    assert_eq!(replies(&ca_mail, &ours), 1, "one reply to the CA's mail");
    assert_eq!(
        answers_from(&tb, MAILBOX)? - answers_before,
        1,
        "exactly one reply from {MAILBOX}"
    );
    assert_eq!(
        stranger_replies(&tb)? - stranger_before,
        0,
        "no reply reached the stranger"
    );

    let peak: u64 = std::fs::read_to_string(&rss)?
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .parse()?;
    eprintln!("peak RSS of obtain with the corpus waiting: {peak} KiB");
    assert!(
        peak < MAX_RSS_KIB,
        "peak RSS {peak} KiB, not under {MAX_RSS_KIB} KiB"
    );

    // The 20 MB mail goes: the mailbox stays small from run to run.
    for (case, uid) in cases.iter().zip(&uids) {
        if matches!(case.expect, Expect::Skipped) {
            session.uid_store(uid.to_string(), "+FLAGS (\\Deleted)")?;
            session.uid_expunge(uid.to_string())?;
        }
    }
    session.logout()?;
    assert!(failures.is_empty(), "{}\n{log}", failures.join("\n"));
    Ok(())
}

/// Delivers every case and waits until all are in the INBOX.
fn deliver(tb: &Testbed, session: &mut Session<Stream>, cases: &[Case]) -> TestResult {
    for case in cases {
        let result = match case.via {
            Via::Mx => inject_mx(tb, (&case.sender, MAILBOX), &case.raw),
            Via::Submission => submit(
                tb,
                Security::Tls,
                &case.sender,
                (&case.sender, MAILBOX),
                &case.raw,
            ),
            Via::Append => session
                .append("INBOX", &case.raw)
                .finish()
                .map(|_| ())
                .map_err(Into::into),
        };
        result.map_err(|e| format!("{} ({:?}) was not delivered: {e}", case.name, case.via))?;
    }
    Ok(())
}

/// Waits until every case and the CA's mail for the order are in the INBOX, delivers the CA's
/// mail a second time, and returns its token-part1, each case's UID and the copy's UID.
fn duplicate_ours(
    session: &mut Session<Stream>,
    ca: &str,
    first: u32,
    cases: &[Case],
) -> TestResult<(String, Vec<u32>, u32)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mails = new_mails(session, first)?;
        let uids: Vec<Option<u32>> = cases
            .iter()
            .map(|case| {
                let found: Vec<u32> = mails
                    .iter()
                    .filter(|(_, h)| contains(h, &case.tokens[0]))
                    .map(|(uid, _)| *uid)
                    .collect();
                match found[..] {
                    [uid] => Some(uid),
                    _ => None,
                }
            })
            .collect();
        let ours = mails.iter().find_map(|(uid, h)| {
            let subject = headers(h, "Subject").into_iter().next()?;
            let token = subject.strip_prefix("ACME: ")?;
            let mine = cases
                .iter()
                .any(|c| c.tokens.iter().any(|t| contains(h, t)));
            (!mine && headers(h, "From").iter().any(|f| f.contains(ca)))
                .then(|| (*uid, token.to_owned()))
        });
        let all: Option<Vec<u32>> = uids.iter().copied().collect();
        if let (Some(all), Some((uid, token))) = (all, &ours) {
            let fetched = session.uid_fetch(uid.to_string(), "BODY.PEEK[]")?;
            let raw = fetched
                .iter()
                .find_map(|f| f.body())
                .ok_or("no body")?
                .to_vec();
            session.append("INBOX", &raw).finish()?;
            // The copy is the later of the two mails with that token.
            let copy = new_mails(session, first)?
                .iter()
                .filter(|(_, h)| contains(h, &format!("ACME: {token}")))
                .map(|(uid, _)| *uid)
                .max()
                .filter(|copy| copy > uid)
                .ok_or("the copy of the CA's mail is not in the INBOX")?;
            return Ok((token.clone(), all, copy));
        }
        if Instant::now() > deadline {
            let missing: Vec<&str> = cases
                .iter()
                .zip(&uids)
                .filter(|(_, uid)| uid.is_none())
                .map(|(c, _)| c.name)
                .collect();
            let theirs = if ours.is_some() {
                ""
            } else {
                " and the CA's mail"
            };
            return Err(format!("not in {MAILBOX} once after 30 s: {missing:?}{theirs}").into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
