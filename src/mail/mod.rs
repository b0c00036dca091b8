//! Mail adapters: IMAP (watching for the challenge), SMTP submission (the reply), DKIM
//! verification with DNS, OAuth2 logins (`oauth`: the SASL messages and settings, pure;
//! `tokens`: the access tokens), and finding a mailbox's servers (`discover`, over
//! `candidates` (pure), `autoconfig` and `resolve`). These do IO; the decisions about challenge
//! mails live in `challenge`.

pub mod autoconfig;
pub mod candidates;
pub mod discover;
pub mod dkim;
pub mod imap;
pub mod oauth;
pub mod resolve;
pub mod smtp;
pub mod tokens;

use std::fmt;

/// How a mail connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, submissions 465).
    #[default]
    Tls,
    /// A plain connection upgraded with STARTTLS (IMAP 143, submission 587).
    StartTls,
    /// No TLS at all: allowed only to a host that resolves to loopback addresses alone.
    Plain,
}

named_values!(Security, "security", {
    Tls => "tls",
    StartTls => "starttls",
    Plain => "plain",
});

/// An administrator who logs in on behalf of mailbox users (a Dovecot master user, a Cyrus or
/// Stalwart admin), so that no user's own password is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    /// The administrator's login name.
    pub user: String,
    /// When set, the login name is `USER<separator>ADMIN` with the administrator's password
    /// (Dovecot's `auth_master_user_separator`); otherwise SASL PLAIN carries the user as the
    /// authorization identity and the administrator as the authentication identity (RFC 4616).
    pub separator: Option<String>,
}

/// How to log in to a mail server: as `user` with its password, or as an administrator on
/// `user`'s behalf with the administrator's password. Its `Debug` leaves out the password.
#[derive(Clone, Copy)]
pub struct Login<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub master: Option<&'a Master>,
    /// Log in with an OAuth2 access token from here instead of the password.
    pub oauth: Option<&'a tokens::Tokens>,
}

impl Login<'_> {
    /// What the server is told in a plain LOGIN / AUTH (the separator form joins the names).
    pub fn login_name(&self) -> String {
        match self.master {
            Some(Master {
                user: admin,
                separator: Some(sep),
            }) => format!("{}{sep}{admin}", self.user),
            _ => self.user.to_owned(),
        }
    }

    /// The SASL PLAIN message (RFC 4616) when an administrator logs in with an authorization
    /// identity; None for the other forms.
    pub fn plain_with_authzid(&self) -> Option<Vec<u8>> {
        let master = self.master.filter(|m| m.separator.is_none())?;
        Some(
            [self.user, master.user.as_str(), self.password]
                .join("\0")
                .into_bytes(),
        )
    }

    /// Who is logging in, for messages: `user` or `user (as admin)`.
    pub fn describe(&self) -> String {
        match self.master {
            Some(master) => format!("{} (through {})", self.user, master.user),
            None if self.oauth.is_some() => format!("{} (OAuth2)", self.user),
            None => self.user.to_owned(),
        }
    }
}

impl fmt::Debug for Login<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("master", &self.master)
            .field("oauth", &self.oauth.is_some())
            .finish_non_exhaustive()
    }
}

/// An error with its causes, `outer: inner: innermost`, for messages.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Errors talking to the mail servers.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot connect to {server}: {reason}")]
    Connect { server: String, reason: String },
    #[error("{server} refused the login for {user}: {reason}")]
    Login {
        server: String,
        user: String,
        reason: String,
    },
    #[error("{server}: {reason}")]
    Protocol { server: String, reason: String },
    #[error("{server} did not accept the reply: {reason}")]
    Send { server: String, reason: String },
    /// No OAuth2 access token to log in with.
    #[error(transparent)]
    Token(#[from] tokens::TokenError),
}

impl MailError {
    /// Whether this is a token endpoint that could not be reached or answered garbage (worth
    /// trying again later), rather than a refused refresh token, client, or failed command.
    pub fn is_transient_token_failure(&self) -> bool {
        matches!(self, MailError::Token(tokens::TokenError::Endpoint { .. }))
    }
}

/// A server address: host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Server {
    /// Parses `HOST`, `HOST:PORT` or `[V6]:PORT`, with `default_port` when none is given.
    pub fn parse(text: &str, default_port: u16) -> Result<Server, String> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: missing ']'"))?;
            (host, after.strip_prefix(':'))
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, Some(p)),
                _ => (text, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{text:?}: no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("{text:?}: bad port"))?,
            None => default_port,
        };
        Ok(Server {
            host: host.to_owned(),
            port,
        })
    }

    /// Whether every address the host resolves to is a loopback address. A host that does not
    /// resolve is not.
    pub fn is_loopback(&self) -> bool {
        self.check_loopback().is_ok()
    }

    /// Checks that the host resolves, and only to loopback addresses (an IP address is its own
    /// resolution); the error says why not. A name such as `localhost.example` that resolves
    /// elsewhere fails, whatever it looks like.
    pub fn check_loopback(&self) -> Result<(), String> {
        self.check_loopback_with(|host, port| {
            use std::net::ToSocketAddrs;
            Ok((host, port).to_socket_addrs()?.map(|a| a.ip()).collect())
        })
    }

    /// [`Server::check_loopback`] with the name resolution given.
    pub fn check_loopback_with(
        &self,
        resolve: impl FnOnce(&str, u16) -> std::io::Result<Vec<std::net::IpAddr>>,
    ) -> Result<(), String> {
        let host = self.host.as_str();
        let addresses = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                resolve(host, self.port).map_err(|e| format!("cannot resolve {host}: {e}"))?
            }
        };
        if addresses.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        match addresses.iter().find(|ip| !ip.to_canonical().is_loopback()) {
            Some(ip) if ip.to_string() == host => Err(format!("{host} is not a loopback address")),
            Some(ip) => Err(format!(
                "{host} resolves to {ip}, which is not a loopback address"
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_parse_with_and_without_ports() {
        assert_eq!(
            Server::parse("imap.example.com", 993),
            Ok(Server {
                host: "imap.example.com".into(),
                port: 993
            })
        );
        assert_eq!(
            Server::parse("127.0.0.1:10143", 993),
            Ok(Server {
                host: "127.0.0.1".into(),
                port: 10143
            })
        );
        assert_eq!(
            Server::parse("[::1]:25", 587),
            Ok(Server {
                host: "::1".into(),
                port: 25
            })
        );
        assert!(Server::parse(":25", 587).is_err());
        assert!(Server::parse("h:x", 587).is_err());
        assert!(Server::parse("127.0.0.1:1", 1).unwrap().is_loopback());
        assert!(Server::parse("[::1]:1", 1).unwrap().is_loopback());
        assert!(!Server::parse("mail.example.com", 1).unwrap().is_loopback());
    }

    #[test]
    fn loopback_means_every_resolved_address_is_loopback() {
        use std::net::IpAddr;
        let server = |host: &str| Server {
            host: host.into(),
            port: 143,
        };
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        // The system's resolver.
        for host in [
            "127.0.0.1",
            "::1",
            "localhost",
            "127.0.0.53",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(server(host).check_loopback(), Ok(()), "{host}");
        }
        for host in ["192.0.2.1", "::", "0.0.0.0", "localhost.attacker.example"] {
            assert!(!server(host).is_loopback(), "{host}");
        }
        // A name is judged by what it resolves to, not by how it looks.
        let resolved = |host: &str, addresses: Vec<IpAddr>| {
            server(host).check_loopback_with(move |_, _| Ok(addresses))
        };
        let err = resolved("localhost.attacker.example", vec![ip("203.0.113.7")]).unwrap_err();
        assert!(err.contains("203.0.113.7"), "{err}");
        assert!(resolved("localhost", vec![ip("127.0.0.1"), ip("203.0.113.7")]).is_err());
        assert!(resolved("localhost", vec![]).is_err());
        assert_eq!(
            resolved("mail.internal", vec![ip("127.0.0.1"), ip("::1")]),
            Ok(())
        );
        let failed = server("localhost")
            .check_loopback_with(|_, _| Err(std::io::Error::other("no such host")));
        assert!(failed.unwrap_err().contains("cannot resolve localhost"));
    }
}
