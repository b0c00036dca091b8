//! SMTP submission of the reply (lettre's SMTP client): implicit TLS or STARTTLS with AUTH, or
//! plain on loopback. The message bytes are built by `challenge::response` and sent unchanged. IO.

use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, SmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::CertificateDer;

use super::{MailError, Security, Server};

const TIMEOUT: Duration = Duration::from_secs(60);

/// How to reach the submission server.
#[derive(Clone)]
pub struct Submission<'a> {
    pub server: &'a Server,
    pub security: Security,
    pub user: &'a str,
    pub password: &'a str,
    /// Log in as this administrator on `user`'s behalf, with its password.
    pub master: Option<&'a super::Master>,
    /// Log in with an OAuth2 access token from here instead of the password.
    pub oauth: Option<&'a super::tokens::Tokens>,
    /// Roots to trust beyond the system's (`--ca-bundle`).
    pub extra_roots: &'a [CertificateDer<'static>],
}

impl std::fmt::Debug for Submission<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission")
            .field("server", &self.server)
            .field("security", &self.security)
            .field("user", &self.user)
            .field("master", &self.master)
            .field("oauth", &self.oauth.is_some())
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// An authenticated submission session, opened ahead of time so that a reply goes out with
/// nothing but the message transfer left to do.
pub struct Sender<'a> {
    submission: Submission<'a>,
    connection: Option<SmtpConnection>,
    deadline: Option<Instant>,
    dns_server: Option<std::net::SocketAddr>,
}

impl std::fmt::Debug for Sender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("server", &self.submission.server)
            .finish_non_exhaustive()
    }
}

impl<'a> Sender<'a> {
    /// A sender that logs in when first needed (or when told to, with [`Sender::login`]).
    pub fn new(submission: Submission<'a>) -> Sender<'a> {
        Sender {
            submission,
            connection: None,
            deadline: None,
            dns_server: None,
        }
    }

    /// The server's host name is resolved through `dns_server` when given (see
    /// `resolve::addresses`); TLS is verified for the name all the same.
    pub fn resolving_with(mut self, dns_server: Option<std::net::SocketAddr>) -> Sender<'a> {
        self.dns_server = dns_server;
        self
    }

    /// Ends the session politely, if one is open.
    pub fn quit(mut self) {
        if let Some(mut connection) = self.connection.take() {
            let _ = connection.quit();
        }
    }

    /// Every connection, login and answer waited for ends by `deadline`.
    pub fn until(mut self, deadline: Instant) -> Sender<'a> {
        self.deadline = Some(deadline);
        self
    }

    /// Connects, secures and logs in.
    pub fn connect(submission: Submission<'a>) -> Result<Sender<'a>, MailError> {
        let mut sender = Sender::new(submission);
        sender.login()?;
        Ok(sender)
    }

    /// Connects, secures and logs in now, ahead of the message.
    pub fn login(&mut self) -> Result<(), MailError> {
        self.connection = Some(open(&self.submission, self.deadline, self.dns_server)?);
        Ok(())
    }

    /// Sends `message` from `from` to `to`, once. A session that went stale while waiting is
    /// replaced first (checked with NOOP). `before_data` runs when the server is ready for the
    /// message, just before the first byte of it goes out; if it returns false, nothing is sent.
    /// The error says whether the message surely did not go out (safe to try again), was
    /// refused for good, or may have been delivered.
    pub fn send(
        &mut self,
        from: &str,
        to: &str,
        message: &[u8],
        before_data: impl FnOnce() -> bool,
    ) -> Result<(), SendError> {
        let server = self.submission.server.to_string();
        let send_err = |reason: String| {
            SendError::Refused(MailError::Send {
                server: server.clone(),
                reason,
            })
        };
        let envelope = Envelope::new(
            Some(
                from.parse()
                    .map_err(|e| send_err(format!("sender {from:?}: {e}")))?,
            ),
            vec![
                to.parse()
                    .map_err(|e| send_err(format!("recipient {to:?}: {e}")))?,
            ],
        )
        .map_err(|e| send_err(e.to_string()))?;
        let connection = self
            .connection
            .take()
            .and_then(|mut c| c.test_connected().then_some(c));
        let mut connection = match connection {
            Some(c) => c,
            None => {
                open(&self.submission, self.deadline, self.dns_server).map_err(|e| match e {
                    MailError::Login { .. } => SendError::Refused(e),
                    MailError::Token(_) if !e.is_transient_token_failure() => SendError::Refused(e),
                    e => SendError::NotSent(e),
                })?
            }
        };
        let result = transfer(&mut connection, &envelope, message, before_data)
            .map_err(|(stage, e)| classify(&self.submission, stage, e.as_ref()));
        let _ = connection.quit();
        result
    }
}

/// Why a reply did not surely go out.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Nothing was delivered: the connection failed before the message went out, or the
    /// server answered 4xx (try again later).
    #[error("{0}")]
    NotSent(MailError),
    /// The server refused for good (5xx, or a bad address).
    #[error("{0}")]
    Refused(MailError),
    /// The connection was lost after the message went out: it may have been delivered.
    #[error("{0}")]
    Unknown(MailError),
}

impl From<SendError> for MailError {
    fn from(e: SendError) -> MailError {
        match e {
            SendError::NotSent(e) | SendError::Refused(e) | SendError::Unknown(e) => e,
        }
    }
}

/// How far a transfer got when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// MAIL, RCPT, DATA: no message bytes written yet.
    Envelope,
    /// The message and its end marker were being written or answered.
    Message,
    /// The caller stopped it before the message.
    Stopped,
}

/// MAIL, RCPT, DATA, then the message and its end marker in one write (as two writes, the end
/// marker would wait for the server to acknowledge the first one).
fn transfer(
    connection: &mut SmtpConnection,
    envelope: &Envelope,
    message: &[u8],
    before_data: impl FnOnce() -> bool,
) -> Result<(), (Stage, Option<lettre::transport::smtp::Error>)> {
    use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
    let envelope_stage = |e| (Stage::Envelope, Some(e));
    connection
        .command(Mail::new(envelope.from().cloned(), Vec::new()))
        .map_err(envelope_stage)?;
    for to in envelope.to() {
        connection
            .command(Rcpt::new(to.clone(), Vec::new()))
            .map_err(envelope_stage)?;
    }
    connection.command(Data).map_err(envelope_stage)?;
    if !before_data() {
        return Err((Stage::Stopped, None));
    }
    connection
        .command(data_block(message))
        .map_err(|e| (Stage::Message, Some(e)))?;
    Ok(())
}

/// The message as an SMTP data block: CRLF lines, a dot doubled at the start of a line, and
/// the end marker. The reply is 7-bit text, so the bytes are ASCII.
fn data_block(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    let mut block = String::with_capacity(text.len() + 8);
    for line in text.split_inclusive('\n') {
        if line.starts_with('.') {
            block.push('.');
        }
        block.push_str(line);
    }
    if !block.ends_with("\r\n") {
        block.push_str("\r\n");
    }
    block.push_str(".\r\n");
    block
}

/// Sends `message` from `from` to `to` in a session of its own.
pub fn send(
    submission: &Submission<'_>,
    from: &str,
    to: &str,
    message: &[u8],
) -> Result<(), MailError> {
    Ok(Sender::connect(submission.clone())?.send(from, to, message, || true)?)
}

fn open(
    submission: &Submission<'_>,
    deadline: Option<Instant>,
    dns_server: Option<std::net::SocketAddr>,
) -> Result<SmtpConnection, MailError> {
    let server = submission.server.to_string();
    let connect_err = |reason: String| MailError::Connect {
        server: server.clone(),
        reason,
    };
    let mut params = TlsParameters::builder(submission.server.host.clone());
    for root in submission.extra_roots {
        let cert = Certificate::from_der(root.to_vec()).map_err(|e| connect_err(e.to_string()))?;
        params = params.add_root_certificate(cert);
    }
    let params = params
        .build_rustls()
        .map_err(|e| connect_err(e.to_string()))?;
    let helo = ClientId::Domain(
        submission
            .user
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d)
            .to_owned(),
    );
    let addresses = super::resolve::addresses(submission.server, dns_server)
        .map_err(|e| connect_err(e.to_string()))?;
    let wrapper = (submission.security == Security::Tls).then_some(&params);
    let timeout = deadline.map_or(TIMEOUT, |d| {
        d.saturating_duration_since(Instant::now())
            .clamp(Duration::from_secs(1), TIMEOUT)
    });
    let mut connection =
        SmtpConnection::connect(&addresses[..], Some(timeout), &helo, wrapper, None)
            .map_err(|e| connect_err(super::error_chain(&e)))?;
    if submission.security == Security::StartTls {
        connection
            .starttls(&params, &helo)
            .map_err(|e| connect_err(super::error_chain(&e)))?;
    }
    let login = super::Login {
        user: submission.user,
        password: submission.password,
        master: submission.master,
        oauth: submission.oauth,
    };
    let refused = |e: lettre::transport::smtp::Error| {
        // 454 and other 4xx: the server cannot check the password now; try again later.
        if e.is_transient() {
            connect_err(super::error_chain(&e))
        } else {
            MailError::Login {
                server: server.clone(),
                user: login.describe(),
                reason: super::error_chain(&e),
            }
        }
    };
    match (submission.oauth, login.plain_with_authzid()) {
        (Some(tokens), _) => {
            let refused_for = |reason: String| MailError::Login {
                server: server.clone(),
                user: login.describe(),
                reason,
            };
            let offered = connection
                .command(lettre::transport::smtp::commands::Ehlo::new(helo.clone()))
                .map(|ehlo| offered_mechanisms(ehlo.message()))
                .map_err(|e| connect_err(super::error_chain(&e)))?;
            // A server offering neither mechanism refused nothing: another server may take them.
            let sasl =
                tokens
                    .mechanism()
                    .choose(&offered)
                    .map_err(|reason| MailError::Protocol {
                        server: server.clone(),
                        reason,
                    })?;
            let mut token = tokens.token()?;
            let mut tried = false;
            loop {
                let message = sasl.initial_response(submission.user, &token, submission.server);
                match oauth_exchange(&mut connection, sasl, message) {
                    Ok(()) => break,
                    Err((e, _)) if e.is_permanent() && !tried => {
                        tried = true;
                        token = tokens.renew(&token)?;
                    }
                    Err((e, said)) if e.is_permanent() => {
                        let said = said.map(|s| format!(" ({s})")).unwrap_or_default();
                        return Err(refused_for(format!(
                            "{} {}{said}",
                            sasl.name(),
                            super::error_chain(&e)
                        )));
                    }
                    Err((e, _)) => return Err(refused(e)),
                }
            }
        }
        (None, Some(message)) => {
            connection.command(AuthPlain(message)).map_err(refused)?;
        }
        (None, None) => {
            let credentials = Credentials::new(login.login_name(), submission.password.to_owned());
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .map_err(refused)?;
        }
    }
    Ok(connection)
}

/// `AUTH PLAIN` with the whole response on the command line (RFC 4954), for a message that
/// carries an authorization identity (lettre's own PLAIN leaves it empty).
struct AuthPlain(Vec<u8>);

impl std::fmt::Display for AuthPlain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&self.0);
        write!(f, "AUTH PLAIN {encoded}\r\n")
    }
}

/// `AUTH XOAUTH2` or `AUTH OAUTHBEARER` with the token message on the command line; an error
/// challenge (334) is answered as the mechanism requires, and the server's final refusal
/// returned with what the challenge said.
fn oauth_exchange(
    connection: &mut SmtpConnection,
    sasl: super::oauth::Sasl,
    message: Vec<u8>,
) -> Result<(), (lettre::transport::smtp::Error, Option<String>)> {
    let response = connection
        .command(SaslCommand {
            mechanism: Some(sasl.name()),
            data: message,
        })
        .map_err(|e| (e, None))?;
    if response.has_code(334) {
        use base64::Engine;
        let challenge = response.message().next().unwrap_or_default();
        let said = base64::engine::general_purpose::STANDARD
            .decode(challenge.trim())
            .map(|c| super::oauth::describe_challenge(&c))
            .ok();
        connection
            .command(SaslCommand {
                mechanism: None,
                data: sasl.error_response().to_vec(),
            })
            .map_err(|e| (e, said))?;
    }
    Ok(())
}

/// An AUTH command with its initial response (`mechanism`), or a response to a challenge.
struct SaslCommand {
    mechanism: Option<&'static str>,
    data: Vec<u8>,
}

impl std::fmt::Display for SaslCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&self.data);
        match self.mechanism {
            Some(name) => write!(f, "AUTH {name} {encoded}\r\n"),
            None => write!(f, "{encoded}\r\n"),
        }
    }
}

/// The SASL mechanisms an EHLO answer offers (its `AUTH` lines, also the old `AUTH=` form).
fn offered_mechanisms<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    lines
        .filter_map(|line| {
            // `get`: a server's line may have a multi-byte character anywhere.
            let (keyword, rest) = (line.get(..5)?, line.get(5..)?);
            (keyword.eq_ignore_ascii_case("AUTH ") || keyword.eq_ignore_ascii_case("AUTH="))
                .then_some(rest)
        })
        .flat_map(str::split_whitespace)
        .map(str::to_ascii_uppercase)
        .collect()
}

/// A server's 4xx means "not now": nothing was accepted. A 5xx is final. A connection lost
/// before any message byte was written delivered nothing; after, it may have.
fn classify(
    submission: &Submission<'_>,
    stage: Stage,
    e: Option<&lettre::transport::smtp::Error>,
) -> SendError {
    let server = submission.server.to_string();
    let Some(e) = e else {
        return SendError::NotSent(MailError::Send {
            server,
            reason: "stopped before the message went out".into(),
        });
    };
    let reason = super::error_chain(e);
    if e.is_permanent() {
        SendError::Refused(MailError::Send { server, reason })
    } else if e.is_transient() {
        SendError::NotSent(MailError::Send { server, reason })
    } else if stage == Stage::Envelope {
        SendError::NotSent(MailError::Connect { server, reason })
    } else {
        SendError::Unknown(MailError::Send { server, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::{SaslCommand, data_block, offered_mechanisms};

    #[test]
    fn ehlo_answers_name_their_mechanisms() {
        let lines = [
            "mail.example.test",
            "PIPELINING",
            "AUTH PLAIN LOGIN XOAUTH2 oauthbearer",
            "AUTH=LOGIN",
            "AUTHX FOO",
            "8BITMIME",
        ];
        assert_eq!(
            offered_mechanisms(lines.into_iter()),
            ["PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER", "LOGIN"]
        );
        assert!(offered_mechanisms(["AUTH", "A"].into_iter()).is_empty());
    }

    #[test]
    fn sasl_commands_carry_base64() {
        let auth = SaslCommand {
            mechanism: Some("XOAUTH2"),
            data: b"user=a\x01auth=Bearer t\x01\x01".to_vec(),
        };
        assert_eq!(
            auth.to_string(),
            "AUTH XOAUTH2 dXNlcj1hAWF1dGg9QmVhcmVyIHQBAQ==\r\n"
        );
        let error_reply = |data: &[u8]| {
            SaslCommand {
                mechanism: None,
                data: data.to_vec(),
            }
            .to_string()
        };
        assert_eq!(error_reply(b""), "\r\n");
        assert_eq!(error_reply(b"\x01"), "AQ==\r\n");
    }

    #[test]
    fn data_blocks_double_leading_dots_and_end_once() {
        assert_eq!(
            data_block(b"a\r\n.b\r\n..\r\nc"),
            "a\r\n..b\r\n...\r\nc\r\n.\r\n"
        );
        assert_eq!(data_block(b".x\r\n"), "..x\r\n.\r\n");
    }
}
