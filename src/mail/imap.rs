//! IMAP: log in, note where new mail starts, wait for new mail (IDLE when offered, polling
//! otherwise), fetch the headers of what is new (each message once, size-bounded) and a whole
//! message when its headers make it a candidate, and mark a message seen. Every read is bounded
//! by the run's deadline. IO.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imap::extensions::idle::{SetReadTimeout, WaitOutcome};
use rustls::pki_types::ServerName;

use super::{Login, MailError, Security, Server};
use crate::challenge::mail::MAX_MAIL_BYTES;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// The connection under an IMAP session: TLS or (loopback only) plain, with deadlines for
/// reads: the run's (`limit`), and one IDLE sets, so that servers that send keep-alive lines
/// more often than the IDLE timeout (Dovecot's "* OK Still here") cannot hold a wait open past
/// it.
#[derive(Debug)]
pub struct Stream {
    kind: StreamKind,
    deadline: Option<Instant>,
    limit: Option<Instant>,
}

#[derive(Debug)]
enum StreamKind {
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Plain(TcpStream),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match &self.kind {
            StreamKind::Tls(s) => &s.sock,
            StreamKind::Plain(s) => s,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let deadline = match (self.deadline, self.limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            self.tcp().set_read_timeout(Some(left.min(IO_TIMEOUT)))?;
        }
        match &mut self.kind {
            StreamKind::Tls(s) => s.read(buf),
            StreamKind::Plain(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.kind {
            StreamKind::Tls(s) => s.write(buf),
            StreamKind::Plain(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.kind {
            StreamKind::Tls(s) => s.flush(),
            StreamKind::Plain(s) => s.flush(),
        }
    }
}

impl SetReadTimeout for Stream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> imap::Result<()> {
        // IDLE sets a timeout and restores "none" afterwards; keep a bound on every other read.
        self.deadline = timeout.map(|t| Instant::now() + t);
        self.tcp()
            .set_read_timeout(Some(timeout.unwrap_or(IO_TIMEOUT)))
            .map_err(imap::Error::Io)
    }
}

impl Stream {
    fn new(kind: StreamKind, limit: Option<Instant>) -> Stream {
        Stream {
            kind,
            deadline: None,
            limit,
        }
    }
}

/// Opens a TCP connection, with a timeout, to the first address of `server` that answers.
pub fn tcp_connect(server: &Server) -> Result<TcpStream, MailError> {
    tcp_connect_via(server, None, None)
}

/// [`tcp_connect`], the host's addresses asked of `dns_server` when given (see
/// `resolve::addresses`), each try ending by `limit` too.
pub fn tcp_connect_via(
    server: &Server,
    dns_server: Option<SocketAddr>,
    limit: Option<Instant>,
) -> Result<TcpStream, MailError> {
    let err = |reason: String| MailError::Connect {
        server: server.to_string(),
        reason,
    };
    let addrs = super::resolve::addresses(server, dns_server).map_err(|e| err(e.to_string()))?;
    let mut last = String::from("no address");
    for addr in addrs {
        let timeout = limit.map_or(CONNECT_TIMEOUT, |limit| {
            limit
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(100), CONNECT_TIMEOUT)
        });
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(tcp) => {
                tcp.set_read_timeout(Some(IO_TIMEOUT))
                    .map_err(|e| err(e.to_string()))?;
                tcp.set_write_timeout(Some(IO_TIMEOUT))
                    .map_err(|e| err(e.to_string()))?;
                return Ok(tcp);
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(err(last))
}

/// Wraps `tcp` in TLS for `host`, finishing the handshake so certificate errors show here.
pub fn tls_wrap(
    tcp: TcpStream,
    host: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// An IMAP client before login: connected and, unless plain, under TLS.
pub fn connect(
    server: &Server,
    security: Security,
    tls: Arc<rustls::ClientConfig>,
) -> Result<imap::Client<Stream>, MailError> {
    connect_until(server, security, tls, None)
}

/// [`connect`], with every read of the session bounded by `limit`.
pub fn connect_until(
    server: &Server,
    security: Security,
    tls: Arc<rustls::ClientConfig>,
    limit: Option<Instant>,
) -> Result<imap::Client<Stream>, MailError> {
    connect_via(server, security, tls, limit, None)
}

/// [`connect_until`], the host's addresses asked of `dns_server` when given.
pub fn connect_via(
    server: &Server,
    security: Security,
    tls: Arc<rustls::ClientConfig>,
    limit: Option<Instant>,
    dns_server: Option<SocketAddr>,
) -> Result<imap::Client<Stream>, MailError> {
    let err = |reason: String| MailError::Connect {
        server: server.to_string(),
        reason,
    };
    let tcp = tcp_connect_via(server, dns_server, limit)?;
    match security {
        Security::Tls => {
            let stream = tls_wrap(tcp, &server.host, tls).map_err(|e| err(e.to_string()))?;
            let mut client =
                imap::Client::new(Stream::new(StreamKind::Tls(Box::new(stream)), limit));
            client.read_greeting().map_err(|e| err(e.to_string()))?;
            Ok(client)
        }
        Security::StartTls => {
            starttls(&tcp, limit).map_err(err)?;
            let stream = tls_wrap(tcp, &server.host, tls).map_err(|e| err(e.to_string()))?;
            Ok(imap::Client::new(Stream::new(
                StreamKind::Tls(Box::new(stream)),
                limit,
            )))
        }
        Security::Plain => {
            let mut client = imap::Client::new(Stream::new(StreamKind::Plain(tcp), limit));
            client.read_greeting().map_err(|e| err(e.to_string()))?;
            Ok(client)
        }
    }
}

/// Reads the greeting and negotiates STARTTLS on a fresh connection, within 100 lines and by
/// `limit`.
fn starttls(tcp: &TcpStream, limit: Option<Instant>) -> Result<(), String> {
    // One byte at a time: nothing may be buffered past the tagged OK, where TLS begins.
    let mut reader = BufReader::with_capacity(1, tcp.try_clone().map_err(|e| e.to_string())?);
    let mut line = String::new();
    let mut lines = 0;
    let mut read_line = |line: &mut String| -> Result<(), String> {
        line.clear();
        lines += 1;
        if lines > 100 {
            return Err("the server sent too many lines before STARTTLS".to_owned());
        }
        if let Some(limit) = limit {
            let left = limit.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out waiting for the server".to_owned());
            }
            tcp.set_read_timeout(Some(left.min(IO_TIMEOUT)))
                .map_err(|e| e.to_string())?;
        }
        let n = reader
            .by_ref()
            .take(8192)
            .read_line(line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            Err("the server closed the connection".to_owned())
        } else {
            Ok(())
        }
    };
    read_line(&mut line)?;
    if !line.starts_with("* OK") {
        return Err(format!("unexpected greeting {:?}", line.trim_end()));
    }
    let mut writer = tcp;
    writer
        .write_all(b"s1 STARTTLS\r\n")
        .map_err(|e| e.to_string())?;
    loop {
        read_line(&mut line)?;
        if line.starts_with("s1 ") {
            break;
        }
    }
    if line.starts_with("s1 OK") {
        Ok(())
    } else {
        Err(format!("STARTTLS refused: {}", line.trim_end()))
    }
}

/// A logged-in mailbox.
#[derive(Debug)]
pub struct Mailbox {
    session: imap::Session<Stream>,
    server: String,
    idle: bool,
    /// The SASL mechanism of an OAuth2 login.
    oauth_mechanism: Option<&'static str>,
}

/// What [`Mailbox::new_headers`] found: (UID, header block) of each new message, oldest
/// first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub mails: Vec<(u32, Vec<u8>)>,
    /// Where the next look starts.
    pub next: Mark,
    /// The folder's UIDVALIDITY changed: arrival order says nothing about these mails.
    pub validity_changed: bool,
    /// More new mail is waiting beyond this batch's bound.
    pub more: bool,
}

/// New messages looked at in one batch, at most.
const BATCH: u32 = 200;

/// Where new mail starts in a folder: mail with a UID at or above `uid_next` is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mark {
    pub uid_validity: u32,
    pub uid_next: u32,
}

impl Mailbox {
    /// Connects and logs in; every read of the session ends by `limit`.
    pub fn open(
        server: &Server,
        security: Security,
        tls: Arc<rustls::ClientConfig>,
        user: &str,
        password: &str,
        limit: Option<Instant>,
    ) -> Result<Mailbox, MailError> {
        let login = Login {
            user,
            password,
            master: None,
            oauth: None,
        };
        Mailbox::open_as(server, security, tls, login, limit)
    }

    /// [`Mailbox::open`] with any form of login: the user's own, or an administrator's on the
    /// user's behalf (SASL PLAIN with an authorization identity, or `user*admin`).
    pub fn open_as(
        server: &Server,
        security: Security,
        tls: Arc<rustls::ClientConfig>,
        login: Login<'_>,
        limit: Option<Instant>,
    ) -> Result<Mailbox, MailError> {
        Mailbox::open_via(server, security, tls, login, limit, None)
    }

    /// [`Mailbox::open_as`], the host's addresses asked of `dns_server` when given.
    pub fn open_via(
        server: &Server,
        security: Security,
        tls: Arc<rustls::ClientConfig>,
        login: Login<'_>,
        limit: Option<Instant>,
        dns_server: Option<SocketAddr>,
    ) -> Result<Mailbox, MailError> {
        let client = connect_via(server, security, tls, limit, dns_server)?;
        let refused = |e: imap::Error| MailError::Login {
            server: server.to_string(),
            user: login.describe(),
            reason: e.to_string(),
        };
        let mut oauth_mechanism = None;
        let mut session = match (login.oauth, login.plain_with_authzid()) {
            (Some(tokens), _) => {
                let (session, sasl) = oauth_login(client, server, login.user, tokens)
                    .map_err(|e| e.into_mail_error(server, &login))?;
                oauth_mechanism = Some(sasl.name());
                session
            }
            (None, Some(message)) => client
                .authenticate("PLAIN", &Plain(message))
                .map_err(|(e, _)| refused(e))?,
            (None, None) => client
                .login(login.login_name(), login.password)
                .map_err(|(e, _)| refused(e))?,
        };
        let idle = session
            .capabilities()
            .map(|c| c.has_str("IDLE"))
            .unwrap_or(false);
        Ok(Mailbox {
            session,
            server: server.to_string(),
            idle,
            oauth_mechanism,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> MailError {
        MailError::Protocol {
            server: self.server.clone(),
            reason: e.to_string(),
        }
    }

    /// The SASL mechanism that carried the OAuth2 token, for an OAuth2 login.
    pub fn oauth_mechanism(&self) -> Option<&'static str> {
        self.oauth_mechanism
    }

    /// Whether the server offers IDLE.
    pub fn has_idle(&self) -> bool {
        self.idle
    }

    /// Selects `folder` and returns where new mail starts.
    pub fn mark(&mut self, folder: &str) -> Result<Mark, MailError> {
        let mailbox = self
            .session
            .select(folder)
            .map_err(|e| self.err(format!("cannot open folder {folder}: {e}")))?;
        Ok(Mark {
            uid_validity: mailbox.uid_validity.unwrap_or(0),
            uid_next: mailbox.uid_next.unwrap_or(1),
        })
    }

    /// The headers of the messages of `folder` from `cursor` on, each at most
    /// [`MAX_MAIL_BYTES`] long (larger messages are skipped), and where the next look starts.
    /// If the folder's UIDVALIDITY is not the cursor's, every message counts and the batch
    /// says so.
    pub fn new_headers(&mut self, folder: &str, cursor: Mark) -> Result<Batch, MailError> {
        let selected = self
            .session
            .select(folder)
            .map_err(|e| self.err(format!("cannot open folder {folder}: {e}")))?;
        let now = Mark {
            uid_validity: selected.uid_validity.unwrap_or(0),
            uid_next: selected.uid_next.unwrap_or(u32::MAX),
        };
        let validity_changed = now.uid_validity != cursor.uid_validity;
        let first = if validity_changed {
            1
        } else {
            cursor.uid_next.max(1)
        };
        let mut batch = Batch {
            mails: Vec::new(),
            next: Mark {
                uid_validity: now.uid_validity,
                uid_next: first,
            },
            validity_changed,
            more: false,
        };
        // A server that gives no UIDNEXT is asked every time.
        if now.uid_next <= first || selected.exists == 0 {
            return Ok(batch);
        }
        let last = first.saturating_add(BATCH - 1);
        batch.more = now.uid_next != u32::MAX && now.uid_next > last.saturating_add(1);
        let range = if batch.more {
            format!("{first}:{last}")
        } else {
            format!("{first}:*")
        };
        let sizes = self
            .session
            .uid_fetch(range, "RFC822.SIZE")
            .map_err(|e| self.err(e))?;
        let mut wanted = Vec::new();
        for (uid, size) in sizes.iter().filter_map(|f| Some((f.uid?, f.size?))) {
            if uid < first || uid > last {
                continue;
            }
            batch.next.uid_next = batch.next.uid_next.max(uid.saturating_add(1));
            if (size as usize) <= MAX_MAIL_BYTES {
                wanted.push(uid);
            }
        }
        if batch.more {
            batch.next.uid_next = batch.next.uid_next.max(last.saturating_add(1));
        }
        for chunk in wanted.chunks(50) {
            let set: Vec<String> = chunk.iter().map(u32::to_string).collect();
            let fetched = self
                .session
                .uid_fetch(set.join(","), "BODY.PEEK[HEADER]")
                .map_err(|e| self.err(e))?;
            for f in fetched.iter() {
                if let (Some(uid), Some(header)) = (f.uid, f.header())
                    && chunk.contains(&uid)
                {
                    batch
                        .mails
                        .push((uid, header[..header.len().min(MAX_MAIL_BYTES)].to_vec()));
                }
            }
        }
        batch.mails.sort_by_key(|(uid, _)| *uid);
        Ok(batch)
    }

    /// The whole message `uid` of `folder`, if it is there and at most [`MAX_MAIL_BYTES`].
    pub fn message(&mut self, folder: &str, uid: u32) -> Result<Option<Vec<u8>>, MailError> {
        self.session.select(folder).map_err(|e| self.err(e))?;
        let fetched = self
            .session
            .uid_fetch(uid.to_string(), "(RFC822.SIZE BODY.PEEK[])")
            .map_err(|e| self.err(e))?;
        Ok(fetched
            .iter()
            .filter(|f| f.uid == Some(uid) && f.size.is_some_and(|s| s as usize <= MAX_MAIL_BYTES))
            .find_map(|f| f.body())
            .map(|body| body[..body.len().min(MAX_MAIL_BYTES)].to_vec()))
    }

    /// Waits up to `timeout` for a change in `folder`: IDLE when offered, else sleeps.
    pub fn wait(&mut self, folder: &str, timeout: Duration) -> Result<(), MailError> {
        if !self.idle {
            std::thread::sleep(timeout);
            return Ok(());
        }
        self.session.select(folder).map_err(|e| self.err(e))?;
        let outcome = self
            .session
            .idle()
            .timeout(timeout)
            .keepalive(false)
            .wait_while(imap::extensions::idle::stop_on_any);
        match outcome {
            Ok(WaitOutcome::TimedOut | WaitOutcome::MailboxChanged) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Flags a message `\Seen`.
    pub fn mark_seen(&mut self, folder: &str, uid: u32) -> Result<(), MailError> {
        self.session.select(folder).map_err(|e| self.err(e))?;
        self.session
            .uid_store(uid.to_string(), "+FLAGS (\\Seen)")
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Removes message `uid` of `folder`: flagged `\Deleted` and, when the server offers
    /// UIDPLUS, expunged on its own (a plain EXPUNGE would also remove other messages the user
    /// flagged); without UIDPLUS it stays flagged for the user's client to expunge.
    pub fn remove(&mut self, folder: &str, uid: u32) -> Result<(), MailError> {
        self.session.select(folder).map_err(|e| self.err(e))?;
        self.session
            .uid_store(uid.to_string(), "+FLAGS (\\Seen \\Deleted)")
            .map_err(|e| self.err(e))?;
        let uidplus = self
            .session
            .capabilities()
            .map(|c| c.has_str("UIDPLUS"))
            .unwrap_or(false);
        if uidplus {
            self.session
                .uid_expunge(uid.to_string())
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    pub fn logout(mut self) {
        let _ = self.session.logout();
    }
}

/// The SASL PLAIN response, sent whole to the server's first (empty) challenge.
struct Plain(Vec<u8>);

impl imap::Authenticator for Plain {
    type Response = Vec<u8>;

    fn process(&self, _challenge: &[u8]) -> Vec<u8> {
        self.0.clone()
    }
}

/// An OAuth2 login that failed.
enum OAuthFailure {
    Refused(String),
    /// The server offers neither OAuth2 mechanism: it refused nothing.
    NotOffered(String),
    Token(super::tokens::TokenError),
}

impl OAuthFailure {
    fn into_mail_error(self, server: &Server, login: &Login<'_>) -> MailError {
        match self {
            OAuthFailure::Refused(reason) => MailError::Login {
                server: server.to_string(),
                user: login.describe(),
                reason,
            },
            OAuthFailure::NotOffered(reason) => MailError::Protocol {
                server: server.to_string(),
                reason,
            },
            OAuthFailure::Token(e) => e.into(),
        }
    }
}

/// AUTHENTICATE with an access token, by the mechanism the settings and the server's
/// capabilities pick; a refused token is replaced once and tried again.
fn oauth_login(
    mut client: imap::Client<Stream>,
    server: &Server,
    user: &str,
    tokens: &super::tokens::Tokens,
) -> Result<(imap::Session<Stream>, super::oauth::Sasl), OAuthFailure> {
    let offered: Vec<String> = match client.capabilities() {
        Ok(caps) => ["OAUTHBEARER", "XOAUTH2"]
            .into_iter()
            .filter(|m| caps.has_str(format!("AUTH={m}")))
            .map(str::to_owned)
            .collect(),
        Err(_) => Vec::new(),
    };
    let sasl = tokens
        .mechanism()
        .choose(&offered)
        .map_err(OAuthFailure::NotOffered)?;
    let mut token = tokens.token().map_err(OAuthFailure::Token)?;
    let mut tried = false;
    loop {
        let exchange = OAuthExchange {
            initial: sasl.initial_response(user, &token, server),
            error_response: sasl.error_response(),
            started: std::cell::Cell::new(false),
            challenge: std::cell::RefCell::new(None),
        };
        match client.authenticate(sasl.name(), &exchange) {
            Ok(session) => return Ok((session, sasl)),
            Err((imap::Error::No(_), back)) if !tried => {
                tried = true;
                client = back;
                token = tokens.renew(&token).map_err(OAuthFailure::Token)?;
            }
            Err((e, _)) => {
                let said = exchange
                    .challenge
                    .take()
                    .map(|c| format!(" ({})", super::oauth::describe_challenge(&c)))
                    .unwrap_or_default();
                return Err(OAuthFailure::Refused(format!("{} {e}{said}", sasl.name())));
            }
        }
    }
}

/// One XOAUTH2 or OAUTHBEARER exchange: the token message to the first (empty) challenge; a
/// second challenge is the server's error report, answered as the mechanism requires so that
/// the server ends with a failure.
struct OAuthExchange {
    initial: Vec<u8>,
    error_response: &'static [u8],
    started: std::cell::Cell<bool>,
    challenge: std::cell::RefCell<Option<Vec<u8>>>,
}

impl imap::Authenticator for OAuthExchange {
    type Response = Vec<u8>;

    fn process(&self, challenge: &[u8]) -> Vec<u8> {
        if !self.started.replace(true) {
            return self.initial.clone();
        }
        *self.challenge.borrow_mut() = Some(challenge[..challenge.len().min(1024)].to_vec());
        self.error_response.to_vec()
    }
}
