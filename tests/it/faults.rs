//! `smime-acme obtain` against a CA that misbehaves: the testbed's acme2certifier behind the
//! fault-injecting proxy of `tests/fake/fault_proxy.py`. Each run either ends issued after
//! retrying within `--timeout`, or ends with exit 5 or 8 and one clear line; after a failed run
//! the saved issuance is intact and a rerun without faults completes it, on the same order.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::obtain::{ca_lock, command, obtain_args, run, state_dir, stderr, with_flag};
use crate::testbed::{Fake, TestResult, Testbed};
use smime_acme::store::Store;

/// The fault proxy, stopped when dropped. The runs reach the CA through it as their HTTPS
/// proxy, so they keep the CA's own URLs (acme2certifier checks the URL inside each signed
/// request against its own).
pub struct FaultProxy {
    _fake: Fake,
    port: u16,
}

impl FaultProxy {
    pub fn start() -> FaultProxy {
        let fake = Fake::start("fault_proxy.py");
        let port = fake.port;
        FaultProxy { _fake: fake, port }
    }

    /// A plain GET on the proxy's control port; the body.
    fn control(&self, path_and_query: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("the fault proxy");
        write!(
            stream,
            "GET {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .expect("a control request");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .expect("a control answer");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(head.starts_with("HTTP/1.1 200"), "{path_and_query}: {head}");
        body.to_owned()
    }

    /// Arms a fault (`kind=...&count=...`, see the proxy's doc comment).
    pub fn arm(&self, query: &str) {
        self.control(&format!("/fault?{query}"));
    }

    /// The requests seen so far (method, path, status, fault) and the faults fired by kind.
    pub fn stats(&self) -> Value {
        serde_json::from_str(&self.control("/stats")).expect("JSON stats")
    }

    fn fired(&self, kind: &str) -> u64 {
        self.stats()["fired"][kind].as_u64().unwrap_or(0)
    }

    /// How many requests went through so far.
    fn seen(&self) -> usize {
        self.stats()["requests"].as_array().map_or(0, Vec::len)
    }

    /// The requests after the first `from`, as "METHOD path".
    fn requests_since(&self, from: usize) -> Vec<String> {
        let stats = self.stats();
        stats["requests"]
            .as_array()
            .map(|all| {
                all.iter()
                    .skip(from)
                    .map(|r| format!("{} {}", r["method"], r["path"]).replace('"', ""))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `obtain` for `mailbox`, its HTTPS going through the proxy, with `extra` flags.
    fn obtain(&self, tb: &Testbed, mailbox: &str, state: &Path, extra: &[&str]) -> Command {
        let mut args = obtain_args(tb, mailbox, state, &["--key-type", "p256"]);
        let mut rest = extra.iter();
        while let Some(flag) = rest.next() {
            args = with_flag(args, flag, rest.next().copied().unwrap_or_default());
        }
        self.through(command(args))
    }

    /// `cmd` with its HTTPS going through the proxy (and no other proxy).
    pub fn through(&self, mut cmd: Command) -> Command {
        let proxy = format!("http://127.0.0.1:{}", self.port);
        for key in [
            "NO_PROXY",
            "no_proxy",
            "ALL_PROXY",
            "all_proxy",
            "HTTP_PROXY",
            "http_proxy",
        ] {
            cmd.env_remove(key);
        }
        cmd.env("HTTPS_PROXY", &proxy).env("https_proxy", &proxy);
        cmd
    }
}

/// Runs `cmd`; the output, its JSON, and how long it took.
fn timed(cmd: Command) -> (Output, Value, Duration) {
    let started = Instant::now();
    let (out, json) = run(cmd);
    (out, json, started.elapsed())
}

fn assert_issued(out: &Output, json: &Value, what: &str) {
    assert!(out.status.success(), "{what}: {}", stderr(out));
    assert_eq!(json["status"], "issued", "{what}: {json}");
}

/// Exit `code`, and the last line of stderr is the one error line, naming `needle`.
fn assert_failed(out: &Output, code: i32, needle: &str) {
    let log = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit status; stderr:\n{log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("smime-acme: error: ") && last.contains(needle),
        "one line naming {needle:?}, got {last:?}; stderr:\n{log}"
    );
    let errors = log
        .lines()
        .filter(|l| l.starts_with("smime-acme: error: "))
        .count();
    assert_eq!(errors, 1, "one error line: {log}");
}

/// After a failed run: the saved issuance is there, for this address, with its order; a rerun
/// without faults issues on that order (no new order is made).
fn assert_rerun_completes(tb: &Testbed, proxy: &FaultProxy, mailbox: &str, state: &Path) {
    let pending_path = Store::new(state).pending_file(mailbox);
    let text = std::fs::read_to_string(&pending_path)
        .unwrap_or_else(|e| panic!("the saved issuance {} is kept: {e}", pending_path.display()));
    let pending: Value = serde_json::from_str(&text).expect("the saved issuance is JSON");
    assert_eq!(pending["email"], mailbox, "{text}");
    let order = pending["order_url"].as_str().unwrap_or_default();
    assert!(order.starts_with("https://"), "an order is saved: {text}");

    let before = proxy.seen();
    let (out, json, _) = timed(proxy.obtain(tb, mailbox, state, &[]));
    assert_issued(&out, &json, "the rerun without faults");
    let requests = proxy.requests_since(before);
    assert!(
        !requests.iter().any(|r| r.contains("neworders")),
        "the rerun went on with the saved order: {requests:?}"
    );
    assert!(
        requests.iter().any(|r| r
            .strip_prefix("POST ")
            .is_some_and(|path| order.ends_with(path))),
        "the rerun asked for the saved order {order}: {requests:?}"
    );
    assert!(!pending_path.exists(), "the saved issuance is done with");
}

#[test]
fn bad_nonce_answers_are_retried_with_fresh_nonces() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let proxy = FaultProxy::start();
    let mailbox = "staff32@example.test";
    let state = state_dir("fault-bad-nonce");

    // Four in a row, on the first POSTs (the account's registration): each try gets a fresh
    // nonce, the fifth goes through.
    proxy.arm("kind=badnonce&count=4");
    let (out, json, _) = timed(proxy.obtain(&tb, mailbox, &state, &[]));
    assert_issued(&out, &json, "after four badNonce answers");
    assert_eq!(proxy.fired("badnonce"), 4);

    // More in a row than the client retries: the CA's problem, exit 5; the order is kept.
    proxy.arm("kind=badnonce&count=50&match=/acme/authz");
    let (out, _, _) = timed(proxy.obtain(&tb, mailbox, &state, &[]));
    assert_failed(&out, 5, "badNonce");
    let fired = proxy.fired("badnonce") - 4;
    assert_eq!(fired, 11, "one try and ten retries");
    proxy.arm("kind=none&count=0");
    assert_rerun_completes(&tb, &proxy, mailbox, &state);
    Ok(())
}

#[test]
fn rate_limits_are_waited_out_as_retry_after_says() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let proxy = FaultProxy::start();
    let mailbox = "staff33@example.test";
    let state = state_dir("fault-429-seconds");

    proxy.arm("kind=429&count=2&seconds=2&match=/acme/neworders");
    let (out, json, took) = timed(proxy.obtain(&tb, mailbox, &state, &[]));
    assert_issued(&out, &json, "after two 429 answers");
    assert_eq!(proxy.fired("429"), 2);
    assert!(
        took >= Duration::from_secs(4),
        "Retry-After: 2 was waited twice ({took:?})"
    );

    // A wait the run cannot afford: it stops at once with the CA's reason.
    proxy.arm("kind=429&count=1&seconds=3600&match=/acme/authz");
    let (out, _, took) = timed(proxy.obtain(&tb, mailbox, &state, &[]));
    assert_failed(&out, 5, "asks to wait 3600s");
    assert!(
        took < Duration::from_secs(30),
        "no hour-long wait ({took:?})"
    );
    assert_rerun_completes(&tb, &proxy, mailbox, &state);
    Ok(())
}

#[test]
fn rate_limits_with_an_http_date_are_waited_out() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let proxy = FaultProxy::start();
    let mailbox = "staff34@example.test";
    let state = state_dir("fault-429-date");

    // The authorization is fetched again and again, a second or two apart.
    proxy.arm("kind=429date&count=3&seconds=2&match=/acme/authz");
    let (out, json, took) = timed(proxy.obtain(&tb, mailbox, &state, &[]));
    assert_issued(&out, &json, "after three 429 answers with a date");
    assert_eq!(proxy.fired("429date"), 3);
    assert!(
        took >= Duration::from_secs(3),
        "each date was at least a second ahead ({took:?})"
    );
    Ok(())
}

#[test]
fn service_unavailable_is_retried_with_backoff_until_the_deadline() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let proxy = FaultProxy::start();
    let mailbox = "staff35@example.test";
    let state = state_dir("fault-503");

    // On the challenge POST, after the reply went out: 1 s, 2 s, 4 s, then through.
    proxy.arm("kind=503&count=3&match=/acme/chall");
    let (out, json, took) = timed(proxy.obtain(&tb, mailbox, &state, &[]));
    assert_issued(&out, &json, "after three 503 answers");
    assert_eq!(proxy.fired("503"), 3);
    assert!(took >= Duration::from_secs(7), "backed off ({took:?})");

    // Unavailable for good: the run gives up by its deadline, CA unreachable.
    proxy.arm("kind=503&count=1000&match=/acme/authz");
    let (out, _, took) = timed(proxy.obtain(&tb, mailbox, &state, &["--timeout", "12s"]));
    assert_failed(&out, 8, "503 Service Unavailable");
    assert!(
        took < Duration::from_secs(12 + 5),
        "gave up by the deadline ({took:?})"
    );
    proxy.arm("kind=none&count=0");
    assert_rerun_completes(&tb, &proxy, mailbox, &state);
    Ok(())
}

#[test]
fn a_connection_reset_mid_answer_is_retried() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let proxy = FaultProxy::start();
    let mailbox = "staff36@example.test";
    let state = state_dir("fault-reset");

    // Each cut answer was acted on by the CA before it was cut. A resent newAccount finds the
    // account made the first time (an answer without its state: it is read from its URL); a
    // resent newOrder makes a second order (the first is left to expire); a resent finalize
    // finds the order done.
    let mut fired = 0;
    for (target, count) in [
        ("/acme/newaccount", 1),
        ("/acme/neworders", 1),
        ("/finalize", 2),
        ("/acme/cert", 2),
    ] {
        proxy.arm(&format!("kind=reset&count={count}&match={target}"));
        let (out, json, _) = timed(proxy.obtain(&tb, mailbox, &state, &[]));
        assert_issued(&out, &json, &format!("after resets of {target}"));
        fired += count;
        assert_eq!(proxy.fired("reset"), fired, "{target}");
    }
    Ok(())
}

#[test]
fn a_stalled_answer_times_out_and_is_retried() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let proxy = FaultProxy::start();
    let mailbox = "staff37@example.test";
    let state = state_dir("fault-stall");

    // One answer never comes: the try is abandoned after 30 s and made again.
    proxy.arm("kind=stall&count=1&seconds=40&match=/acme/authz");
    let (out, json, took) = timed(proxy.obtain(&tb, mailbox, &state, &["--timeout", "120s"]));
    assert_issued(&out, &json, "after a stalled answer");
    assert_eq!(proxy.fired("stall"), 1);
    assert!(
        took >= Duration::from_secs(29),
        "waited for the try ({took:?})"
    );

    // Stalled past the deadline: the run stops by it, CA unreachable.
    proxy.arm("kind=stall&count=5&seconds=40&match=/acme/authz");
    let (out, _, took) = timed(proxy.obtain(&tb, mailbox, &state, &["--timeout", "10s"]));
    assert_failed(&out, 8, "cannot reach the CA");
    assert!(
        took < Duration::from_secs(10 + 5),
        "stopped by the deadline ({took:?})"
    );
    proxy.arm("kind=none&count=0");
    assert_rerun_completes(&tb, &proxy, mailbox, &state);
    Ok(())
}

#[test]
fn a_malformed_json_answer_is_retried() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let proxy = FaultProxy::start();
    let mailbox = "staff38@example.test";
    let state = state_dir("fault-bad-json");

    proxy.arm("kind=badjson&count=2&match=/acme/authz");
    let (out, json, _) = timed(proxy.obtain(&tb, mailbox, &state, &[]));
    assert_issued(&out, &json, "after two cut JSON answers");
    assert_eq!(proxy.fired("badjson"), 2);
    Ok(())
}

#[test]
fn an_oversized_answer_is_one_clear_error_and_a_rerun_completes() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let proxy = FaultProxy::start();
    let mailbox = "staff39@example.test";
    let state = state_dir("fault-big");

    proxy.arm("kind=big&count=1&match=/acme/authz");
    let (out, _, _) = timed(proxy.obtain(&tb, mailbox, &state, &[]));
    assert_failed(&out, 5, "larger than 1 MiB");
    assert_eq!(proxy.fired("big"), 1);
    assert_rerun_completes(&tb, &proxy, mailbox, &state);
    Ok(())
}

#[test]
fn a_web_page_instead_of_json_is_retried() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let proxy = FaultProxy::start();
    let mailbox = "staff40@example.test";
    let state = state_dir("fault-html");

    proxy.arm("kind=html&count=2&match=/acme/neworders");
    let (out, json, took) = timed(proxy.obtain(&tb, mailbox, &state, &[]));
    assert_issued(&out, &json, "after two web pages");
    assert_eq!(proxy.fired("html"), 2);
    assert!(
        took >= Duration::from_secs(3),
        "backed off 1 s, 2 s ({took:?})"
    );
    Ok(())
}

#[test]
fn a_refused_connection_is_retried_briefly_and_an_untrusted_ca_not_at_all() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff40@example.test";

    // Nothing listens: two more tries, 1 s and 2 s later, then exit 8.
    let state = state_dir("fault-refused");
    let args = with_flag(
        obtain_args(&tb, mailbox, &state, &[]),
        "--server",
        "https://127.0.0.1:9/directory",
    );
    let (out, _, took) = timed(command(args));
    assert_failed(&out, 8, "Connection refused");
    assert!(
        (Duration::from_secs(3)..Duration::from_secs(10)).contains(&took),
        "two retries, 1 s and 2 s apart ({took:?})"
    );

    // The CA's certificate is not trusted: retrying cannot help.
    let state = state_dir("fault-untrusted");
    let args = crate::obtain::without(obtain_args(&tb, mailbox, &state, &[]), "--ca-bundle");
    let (out, _, took) = timed(command(args));
    assert_failed(&out, 8, "UnknownIssuer");
    assert!(took < Duration::from_secs(2), "no retry ({took:?})");
    Ok(())
}

/// The run gives up (the submission server refuses the reply for good) while its challenge
/// POST waits out the CA's 503 with a long Retry-After: it ends at once with status 6, instead
/// of waiting for the CA first.
#[test]
fn giving_up_stops_a_post_that_waits_for_the_ca() -> TestResult {
    let tb = Testbed::get();
    let _ca = ca_lock();
    let proxy = FaultProxy::start();
    let policy = crate::obtain::Policy::get(&tb);
    policy.refuse(100, "554 5.7.1 Not accepted here");
    let mailbox = "staff44@example.test";
    let state = state_dir("fault-give-up");
    proxy.arm("kind=503&count=50&seconds=60&match=/acme/chall");
    let (out, _, took) = timed(proxy.obtain(
        &tb,
        mailbox,
        &state,
        &[
            "--smtp",
            tb.var("TESTBED_SUBMISSIONS_POLICY"),
            "--challenge-timing",
            "post-first",
            "--timeout",
            "120s",
        ],
    ));
    policy.refuse(0, "");
    assert_failed(&out, 6, "Not accepted here");
    assert!(proxy.fired("503") >= 1, "the POST met the 503");
    assert!(
        took < Duration::from_secs(30),
        "ended without waiting out the CA ({took:?})"
    );
    Ok(())
}
