//! Access to the loopback testbed started by `tests/testbed/up`: its settings (read from
//! `target/testbed/testbed.env`), and small IMAP, SMTP, DNS and DKIM helpers, built on the
//! product's own adapters, that tests use to see what really happened on the servers.

use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::Transport;
use lettre::address::Envelope;
use lettre::transport::smtp::SmtpTransport;
use smime_acme::challenge::authenticity::DkimCheck;
use smime_acme::mail::dkim::Verifier;
use smime_acme::mail::imap::{self, Stream};
use smime_acme::mail::{Security, Server, smtp};

pub type TestResult<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

/// The settings `tests/testbed/up` wrote, as `KEY=value` lines.
#[derive(Debug, Clone)]
pub struct Testbed {
    vars: HashMap<String, String>,
}

/// The folder holding the testbed's state, by default `target/testbed` of this repository.
pub fn state_dir() -> PathBuf {
    std::env::var_os("TESTBED_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/testbed"))
}

impl Testbed {
    /// Reads `testbed.env`; panics with the command to run when the testbed is not up.
    pub fn get() -> Testbed {
        let path = state_dir().join("testbed.env");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
            panic!(
                "cannot read {} ({err}): the testbed is not up. Start it with \
                 `sudo tests/testbed/install && sudo tests/testbed/up`, or run everything with `tests/run`",
                path.display()
            )
        });
        let vars = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('\'').to_owned()))
            .collect();
        Testbed { vars }
    }

    /// One setting; panics naming it when `testbed.env` lacks it.
    pub fn var(&self, key: &str) -> &str {
        self.vars
            .get(key)
            .unwrap_or_else(|| panic!("testbed.env has no {key}: rerun tests/testbed/up"))
    }

    pub fn addr(&self, key: &str) -> SocketAddr {
        self.var(key)
            .parse()
            .unwrap_or_else(|err| panic!("{key} in testbed.env is not host:port: {err}"))
    }

    pub fn password(&self, address: &str) -> String {
        let path = Path::new(self.var("TESTBED_PASSWORDS")).join(format!("{address}.password"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
    }

    /// The product's TLS configuration: the system's roots plus the test root (`with_root`), or
    /// the system's roots alone, as a client that was not given the bundle would have.
    pub fn tls(&self, with_root: bool) -> Arc<rustls::ClientConfig> {
        let bundle = Path::new(self.var("SMIME_ACME_CA_BUNDLE"));
        let roots = if with_root {
            smime_acme::tls::load_bundle(bundle).expect("the test root loads")
        } else {
            Vec::new()
        };
        smime_acme::tls::client_config(&roots)
    }

    pub fn server(&self, key: &str) -> Server {
        Server::parse(self.var(key), 0).unwrap_or_else(|e| panic!("{key} in testbed.env: {e}"))
    }
}

/// Logs in to `address`'s mailbox over IMAPS, trusting the test root.
pub fn imap_login(tb: &Testbed, address: &str) -> TestResult<::imap::Session<Stream>> {
    let client = imap::connect(&tb.server("TESTBED_IMAPS"), Security::Tls, tb.tls(true))?;
    client
        .login(address, tb.password(address))
        .map_err(|(err, _)| err.into())
}

/// Every message in `address`'s INBOX, raw.
pub fn fetch_all(tb: &Testbed, address: &str) -> TestResult<Vec<Vec<u8>>> {
    let mut session = imap_login(tb, address)?;
    let mailbox = session.select("INBOX")?;
    let mut messages = Vec::new();
    if mailbox.exists > 0 {
        for fetch in session.fetch("1:*", "BODY.PEEK[]")?.iter() {
            messages.extend(fetch.body().map(<[u8]>::to_vec));
        }
    }
    session.logout()?;
    Ok(messages)
}

/// Waits (up to 15 s) for a message in `address`'s INBOX whose raw bytes contain `marker`.
pub fn wait_for_message(tb: &Testbed, address: &str, marker: &str) -> TestResult<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = fetch_all(tb, address)?
            .into_iter()
            .find(|raw| contains(raw, marker.as_bytes()));
        if let Some(raw) = found {
            return Ok(raw);
        }
        if Instant::now() > deadline {
            return Err(
                format!("no message containing {marker:?} reached {address} in 15 s").into(),
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A marker unique to one test run, for subjects.
pub fn marker(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{label}-{}-{nanos}", std::process::id())
}

/// The unfolded values of every header named `name` (case-insensitive), top to bottom, with
/// runs of whitespace collapsed to one space.
pub fn headers(raw: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        match fields.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
            _ => fields.push(line.to_owned()),
        }
    }
    fields
        .iter()
        .filter_map(|field| field.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Submits `raw` over SMTP submission as `user`, with the product's SMTP adapter.
pub fn submit(
    tb: &Testbed,
    security: Security,
    user: &str,
    envelope: (&str, &str),
    raw: &[u8],
) -> TestResult {
    let key = if security == Security::Tls {
        "TESTBED_SUBMISSIONS"
    } else {
        "TESTBED_SUBMISSION"
    };
    let server = tb.server(key);
    let password = tb.password(user);
    let roots = smime_acme::tls::load_bundle(Path::new(tb.var("SMIME_ACME_CA_BUNDLE")))?;
    let submission = smtp::Submission {
        server: &server,
        security,
        user,
        password: &password,
        master: None,
        oauth: None,
        extra_roots: &roots,
    };
    smtp::send(&submission, envelope.0, envelope.1, raw)?;
    Ok(())
}

/// Hands `raw` to the testbed's MX listener: mail from the Internet, never signed.
pub fn inject_mx(tb: &Testbed, envelope: (&str, &str), raw: &[u8]) -> TestResult {
    let addr = tb.addr("TESTBED_MX");
    let transport = SmtpTransport::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .timeout(Some(Duration::from_secs(10)))
        .build();
    transport.send_raw(&envelope_of(envelope)?, raw)?;
    Ok(())
}

fn envelope_of((from, to): (&str, &str)) -> TestResult<Envelope> {
    Ok(Envelope::new(Some(from.parse()?), vec![to.parse()?])?)
}

/// A small plain-text message with CRLF line endings.
pub fn message(from: &str, to: &str, subject: &str, extra_headers: &str) -> Vec<u8> {
    let id = marker("msg");
    let domain = from.rsplit('@').next().unwrap_or("example.test");
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}@{domain}>\r\n\
         {extra_headers}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\
         Content-Transfer-Encoding: 7bit\r\n\r\nA testbed message.\r\n"
    )
    .into_bytes()
}

/// The DKIM checks of `raw`, with keys from the testbed DNS (the product's verifier).
pub fn verify_dkim(tb: &Testbed, raw: &[u8]) -> TestResult<Vec<DkimCheck>> {
    Ok(Verifier::new(Some(tb.addr("TESTBED_DNS")))?.verify(raw))
}

/// A server of `tests/fake/` (Python, in the testbed's venv), given `testbed.env`; the port it
/// prints first. Stopped when dropped.
pub struct Fake {
    pub child: std::process::Child,
    pub port: u16,
}

impl Fake {
    pub fn start(script: &str) -> Fake {
        Fake::start_with(script, &[])
    }

    /// [`Fake::start`], with more arguments after `testbed.env`.
    pub fn start_with(script: &str, args: &[&std::ffi::OsStr]) -> Fake {
        use std::io::BufRead;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let python = root.join("target/testbed-venv/bin/python");
        let mut child = std::process::Command::new(&python)
            .arg(root.join("tests/fake").join(script))
            .arg(state_dir().join("testbed.env"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): run `sudo tests/testbed/install`",
                    python.display()
                )
            });
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("{script} printed no port: {e}"));
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{script} printed {line:?}, not a port"));
        Fake { child, port }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fault-injecting CA of `tests/fake/mail_on_post_ca.py`: sends the challenge mail only
/// when the challenge is POSTed, as some CAs do. Its directory URL; stopped when dropped.
pub struct MailOnPostCa {
    _server: Fake,
    pub url: String,
}

impl MailOnPostCa {
    pub fn start() -> MailOnPostCa {
        let fake = Fake::start("mail_on_post_ca.py");
        let url = format!("https://127.0.0.1:{}/directory", fake.port);
        MailOnPostCa { _server: fake, url }
    }
}
