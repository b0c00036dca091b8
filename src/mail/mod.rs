//! Mail adapters: IMAP (watching for the challenge), SMTP submission (the reply), and DKIM
//! verification with DNS. These do IO; the decisions live in `challenge`.

pub mod dkim;
pub mod imap;
pub mod smtp;

use std::fmt;

/// How a mail connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, submissions 465).
    #[default]
    Tls,
    /// A plain connection upgraded with STARTTLS (IMAP 143, submission 587).
    StartTls,
    /// No TLS at all: allowed only to a loopback address.
    Plain,
}

named_values!(Security, "security", {
    Tls => "tls",
    StartTls => "starttls",
    Plain => "plain",
});

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

    /// Whether the host is a loopback address (or `localhost`).
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
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
}
