//! Access to the loopback testbed started by `tests/testbed/up`: its settings (read from
//! `target/testbed/testbed.env`), TLS that trusts only the test root, and small IMAP, SMTP,
//! DNS and DKIM helpers that tests use to see what really happened on the servers.

use std::collections::HashMap;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::Transport;
use lettre::address::Envelope;
use lettre::transport::smtp::SmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

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

    /// The test root, DER.
    pub fn root(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(self.var("SMIME_ACME_CA_BUNDLE"))
            .expect("SMIME_ACME_CA_BUNDLE holds a PEM certificate")
    }

    /// A rustls client configuration trusting only the test root (`with_root`), or only the
    /// system's roots (`!with_root`), as a client that was not given the bundle would.
    pub fn tls(&self, with_root: bool) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        if with_root {
            roots
                .add(self.root())
                .expect("the test root is a valid CA certificate");
        } else {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// IMAP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Implicit TLS from the first byte (IMAPS, submissions).
    Tls,
    /// A plain connection upgraded with STARTTLS.
    StartTls,
}

fn tls_stream(tcp: TcpStream, config: Arc<rustls::ClientConfig>) -> TestResult<TlsStream> {
    let ip = tcp.peer_addr()?.ip();
    let conn = rustls::ClientConnection::new(config, ServerName::IpAddress(ip.into()))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    // Finish the handshake now, so that certificate errors surface here.
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// Opens a TLS connection to the testbed's IMAP server, before login.
pub fn imap_connect(
    addr: SocketAddr,
    security: Security,
    config: Arc<rustls::ClientConfig>,
) -> TestResult<imap::Client<TlsStream>> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    match security {
        Security::Tls => {
            let mut client = imap::Client::new(tls_stream(tcp, config)?);
            client.read_greeting()?;
            Ok(client)
        }
        Security::StartTls => {
            let mut reader = BufReader::new(tcp.try_clone()?);
            let mut line = String::new();
            reader.read_line(&mut line)?;
            if !line.starts_with("* OK") {
                return Err(format!("unexpected IMAP greeting: {line:?}").into());
            }
            (&tcp).write_all(b"t1 STARTTLS\r\n")?;
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Err("IMAP server closed the connection during STARTTLS".into());
                }
                if line.starts_with("t1 ") {
                    break;
                }
            }
            if !line.starts_with("t1 OK") {
                return Err(format!("STARTTLS refused: {line:?}").into());
            }
            Ok(imap::Client::new(tls_stream(tcp, config)?))
        }
    }
}

/// Logs in to `address`'s mailbox over IMAPS, trusting the test root.
pub fn imap_login(tb: &Testbed, address: &str) -> TestResult<imap::Session<TlsStream>> {
    let client = imap_connect(tb.addr("TESTBED_IMAPS"), Security::Tls, tb.tls(true))?;
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

/// Submits `raw` over SMTP submission as `user`, trusting only the test root.
pub fn submit(
    tb: &Testbed,
    security: Security,
    user: &str,
    envelope: (&str, &str),
    raw: &[u8],
) -> TestResult {
    let key = match security {
        Security::Tls => "TESTBED_SUBMISSIONS",
        Security::StartTls => "TESTBED_SUBMISSION",
    };
    let addr = tb.addr(key);
    let params = TlsParameters::builder(addr.ip().to_string())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(Certificate::from_der(tb.root().to_vec())?)
        .build_rustls()?;
    let tls = match security {
        Security::Tls => Tls::Wrapper(params),
        Security::StartTls => Tls::Required(params),
    };
    let transport = SmtpTransport::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .tls(tls)
        .credentials(Credentials::new(user.to_owned(), tb.password(user)))
        .timeout(Some(Duration::from_secs(10)))
        .build();
    transport.send_raw(&envelope_of(envelope)?, raw)?;
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

/// One verified DKIM signature: its domain, algorithm and signed header names (lowercase).
#[derive(Debug)]
pub struct Verified {
    pub domain: String,
    pub algorithm: String,
    pub signed_headers: Vec<String>,
}

/// Verifies every DKIM signature of `raw` with keys from the testbed DNS. Returns the ones that
/// pass, and the failures as text.
pub fn verify_dkim(tb: &Testbed, raw: &[u8]) -> TestResult<(Vec<Verified>, Vec<String>)> {
    let dns = tb.addr("TESTBED_DNS");
    let mut server = NameServerConfig::udp_and_tcp(dns.ip());
    for connection in &mut server.connections {
        connection.port = dns.port();
    }
    let authenticator = MessageAuthenticator::new(
        ResolverConfig::from_name_servers(vec![server]),
        ResolverOpts::default(),
    )?;
    let message = AuthenticatedMessage::parse(raw).ok_or("unparsable message")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outputs = runtime.block_on(authenticator.verify_dkim(&message));
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    for output in outputs {
        let signature = output.signature();
        match (output.result(), signature) {
            (DkimResult::Pass, Some(sig)) => passed.push(Verified {
                domain: sig.d.to_ascii_lowercase(),
                algorithm: format!("{:?}", sig.a),
                signed_headers: sig.h.iter().map(|h| h.to_ascii_lowercase()).collect(),
            }),
            (result, sig) => failed.push(format!("{result:?} for d={:?}", sig.map(|s| &s.d))),
        }
    }
    Ok((passed, failed))
}
