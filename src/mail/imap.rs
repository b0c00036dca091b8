//! IMAP: log in, note where new mail starts, wait for new mail (IDLE when offered, polling
//! otherwise), fetch it (size-bounded), and mark a message seen. IO.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imap::extensions::idle::{SetReadTimeout, WaitOutcome};
use rustls::pki_types::ServerName;

use super::{MailError, Security, Server};
use crate::challenge::mail::MAX_MAIL_BYTES;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// The connection under an IMAP session: TLS or (loopback only) plain, with an optional
/// deadline for reads. IDLE sets the deadline; servers that send keep-alive lines more often than
/// the IDLE timeout (Dovecot's "* OK Still here") can then not hold a wait open past it.
#[derive(Debug)]
pub struct Stream {
    kind: StreamKind,
    deadline: Option<Instant>,
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
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            self.tcp().set_read_timeout(Some(left))?;
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

impl From<StreamKind> for Stream {
    fn from(kind: StreamKind) -> Stream {
        Stream {
            kind,
            deadline: None,
        }
    }
}

/// Opens a TCP connection, with a timeout, to the first address of `server` that answers.
pub fn tcp_connect(server: &Server) -> Result<TcpStream, MailError> {
    let err = |reason: String| MailError::Connect {
        server: server.to_string(),
        reason,
    };
    let addrs = (server.host.as_str(), server.port)
        .to_socket_addrs()
        .map_err(|e| err(e.to_string()))?;
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
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
    let err = |reason: String| MailError::Connect {
        server: server.to_string(),
        reason,
    };
    let tcp = tcp_connect(server)?;
    match security {
        Security::Tls => {
            let stream = tls_wrap(tcp, &server.host, tls).map_err(|e| err(e.to_string()))?;
            let mut client = imap::Client::new(Stream::from(StreamKind::Tls(Box::new(stream))));
            client.read_greeting().map_err(|e| err(e.to_string()))?;
            Ok(client)
        }
        Security::StartTls => {
            starttls(&tcp).map_err(err)?;
            let stream = tls_wrap(tcp, &server.host, tls).map_err(|e| err(e.to_string()))?;
            Ok(imap::Client::new(Stream::from(StreamKind::Tls(Box::new(
                stream,
            )))))
        }
        Security::Plain => {
            let mut client = imap::Client::new(Stream::from(StreamKind::Plain(tcp)));
            client.read_greeting().map_err(|e| err(e.to_string()))?;
            Ok(client)
        }
    }
}

/// Reads the greeting and negotiates STARTTLS on a fresh connection.
fn starttls(tcp: &TcpStream) -> Result<(), String> {
    // One byte at a time: nothing may be buffered past the tagged OK, where TLS begins.
    let mut reader = BufReader::with_capacity(1, tcp.try_clone().map_err(|e| e.to_string())?);
    let mut line = String::new();
    let mut read_line = |line: &mut String| -> Result<(), String> {
        line.clear();
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
}

/// Where new mail starts in a folder: mail with a UID at or above `uid_next` is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mark {
    pub uid_validity: u32,
    pub uid_next: u32,
}

impl Mailbox {
    /// Connects and logs in.
    pub fn open(
        server: &Server,
        security: Security,
        tls: Arc<rustls::ClientConfig>,
        user: &str,
        password: &str,
    ) -> Result<Mailbox, MailError> {
        let client = connect(server, security, tls)?;
        let mut session = client
            .login(user, password)
            .map_err(|(e, _)| MailError::Login {
                server: server.to_string(),
                user: user.to_owned(),
                reason: e.to_string(),
            })?;
        let idle = session
            .capabilities()
            .map(|c| c.has_str("IDLE"))
            .unwrap_or(false);
        Ok(Mailbox {
            session,
            server: server.to_string(),
            idle,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> MailError {
        MailError::Protocol {
            server: self.server.clone(),
            reason: e.to_string(),
        }
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

    /// The messages of `folder` at or after `since` (UID, raw bytes), skipping any larger than
    /// the challenge-mail bound. If the folder's UIDVALIDITY changed, every message counts.
    pub fn fetch_new(
        &mut self,
        folder: &str,
        since: Mark,
    ) -> Result<Vec<(u32, Vec<u8>)>, MailError> {
        let now = self.mark(folder)?;
        let first = if now.uid_validity == since.uid_validity {
            since.uid_next.max(1)
        } else {
            1
        };
        if now.uid_next <= first {
            return Ok(Vec::new());
        }
        let sizes = self
            .session
            .uid_fetch(format!("{first}:*"), "RFC822.SIZE")
            .map_err(|e| self.err(e))?;
        let wanted: Vec<u32> = sizes
            .iter()
            .filter_map(|f| Some((f.uid?, f.size?)))
            .filter(|&(uid, size)| uid >= first && (size as usize) <= MAX_MAIL_BYTES)
            .map(|(uid, _)| uid)
            .collect();
        let mut out = Vec::new();
        for uid in wanted {
            let fetched = self
                .session
                .uid_fetch(uid.to_string(), "BODY.PEEK[]")
                .map_err(|e| self.err(e))?;
            for f in fetched.iter() {
                if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                    out.push((uid, body[..body.len().min(MAX_MAIL_BYTES)].to_vec()));
                }
            }
        }
        Ok(out)
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

    pub fn logout(mut self) {
        let _ = self.session.logout();
    }
}
