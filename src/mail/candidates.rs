//! Where a mailbox's IMAP and submission servers may be, when none is given: the candidates of
//! each source (DNS SRV records by RFC 6186 and RFC 8314, an autoconfig document, the usual host
//! names) in the order they are tried, and the trust policy that decides which of them may be
//! sent the password without asking. Pure; `discover` does the lookups and the logins.

use std::fmt;

use super::resolve::SrvRecord;
use super::{Security, Server};

/// Which server is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Imap,
    Submission,
}

impl Protocol {
    /// As printed: `IMAP` or `SMTP`.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Imap => "IMAP",
            Protocol::Submission => "SMTP",
        }
    }

    /// The SRV service names, implicit TLS first (RFC 8314 section 5.1), with the security
    /// each means.
    pub fn srv_services(self) -> [(&'static str, Security); 2] {
        match self {
            Protocol::Imap => [
                ("_imaps._tcp", Security::Tls),
                ("_imap._tcp", Security::StartTls),
            ],
            Protocol::Submission => [
                ("_submissions._tcp", Security::Tls),
                ("_submission._tcp", Security::StartTls),
            ],
        }
    }

    /// The usual host names' prefixes, and the ports by security.
    fn guesses(self) -> ([&'static str; 3], [(u16, Security); 2]) {
        match self {
            Protocol::Imap => (
                ["imap.", "mail.", ""],
                [(993, Security::Tls), (143, Security::StartTls)],
            ),
            Protocol::Submission => (
                ["smtp.", "mail.", ""],
                [(465, Security::Tls), (587, Security::StartTls)],
            ),
        }
    }
}

/// Where a candidate was learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A DNS SRV record, by its name (`_imaps._tcp.example.com`). DNS answers are not
    /// authenticated here (DNSSEC is not validated).
    Srv(String),
    /// An autoconfig document fetched over HTTPS, by its URL; `configured` when the user named
    /// the URL (`autoconfig-url`), else one of the address's domain's own places.
    Autoconfig { url: String, configured: bool },
    /// A usual host name of the domain, tried without any record naming it.
    Guess,
}

impl Source {
    /// Whether the source is authenticated: an HTTPS document from the domain itself or from
    /// where the user said. A DNS answer (no DNSSEC checked) and a guess are not.
    pub fn authenticated(&self) -> bool {
        matches!(self, Source::Autoconfig { .. })
    }

    /// For messages and `--json`: `DNS SRV _imaps._tcp.example.com`, `autoconfig URL`,
    /// `guess`.
    pub fn describe(&self) -> String {
        match self {
            Source::Srv(name) => format!("DNS SRV {name}"),
            Source::Autoconfig { url, .. } => format!("autoconfig {url}"),
            Source::Guess => "guess".to_owned(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// One place to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub server: Server,
    pub security: Security,
    /// The login name the source says (autoconfig), placeholders filled in.
    pub user: Option<String>,
    pub source: Source,
}

/// Whether a candidate may be sent the password without asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The host is the address's domain or under it.
    InDomain,
    /// Elsewhere, but named by an authenticated source (HTTPS autoconfig).
    Authenticated,
    /// Elsewhere, named by an unauthenticated source: a DNS spoofer could have put it there.
    Unverified,
}

/// Whether `host` is `domain` or a name under it (ASCII case-insensitive, trailing dots
/// ignored).
pub fn in_domain(host: &str, domain: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    !domain.is_empty()
        && (host == domain
            || host
                .strip_suffix(&domain)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1))
}

/// Whether `host` is the domain itself or one of the usual mail host names under it (`imap.`,
/// `smtp.`, `mail.`): the names a guess would try anyway.
fn usual_host(host: &str, domain: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    ["", "imap.", "smtp.", "mail."]
        .iter()
        .any(|prefix| host == format!("{prefix}{domain}"))
}

/// The trust policy: the password goes without asking to a host an authenticated source names
/// (then [`Trust::InDomain`] or [`Trust::Authenticated`]), and to a host in the address's domain
/// found by a guess. A DNS SRV answer (unauthenticated: a spoofer could name any host of the
/// domain that has a certificate, a student's web server for one) is trusted without asking
/// only for the domain itself and its usual mail host names; any other host is
/// [`Trust::Unverified`].
pub fn trust(candidate: &Candidate, domain: &str) -> Trust {
    let host = &candidate.server.host;
    let in_domain = match candidate.source {
        Source::Srv(_) => usual_host(host, domain),
        Source::Autoconfig { .. } | Source::Guess => in_domain(host, domain),
    };
    if in_domain {
        Trust::InDomain
    } else if candidate.source.authenticated() {
        Trust::Authenticated
    } else {
        Trust::Unverified
    }
}

/// The records of one SRV answer in the order to try them (RFC 2782): by priority, lowest
/// first; within a priority, a weighted random order, where `random(n)` gives a number in
/// `0..=n`. A target of "." (the service is not offered there) and port 0 are left out.
pub fn order_srv(records: &[SrvRecord], mut random: impl FnMut(u32) -> u32) -> Vec<SrvRecord> {
    let mut usable: Vec<SrvRecord> = records
        .iter()
        .filter(|r| !r.target.is_empty() && r.target != "." && r.port != 0)
        .cloned()
        .collect();
    usable.sort_by_key(|r| r.priority);
    let mut ordered = Vec::with_capacity(usable.len());
    while let Some(first) = usable.first() {
        let priority = first.priority;
        let end = usable
            .iter()
            .position(|r| r.priority != priority)
            .unwrap_or(usable.len());
        let mut group: Vec<SrvRecord> = usable.drain(..end).collect();
        // Weight 0 first within the group, as RFC 2782 asks, so they are chosen only rarely.
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = random(total).min(total);
            let mut running = 0;
            let index = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            ordered.push(group.remove(index));
        }
    }
    ordered
}

/// The candidates of the SRV answers of `protocol` at `domain`: each service's records in
/// [`order_srv`]'s order, implicit TLS services first. `answers` holds the records of each
/// service of [`Protocol::srv_services`], in that order.
pub fn from_srv(
    protocol: Protocol,
    domain: &str,
    answers: &[Vec<SrvRecord>; 2],
    mut random: impl FnMut(u32) -> u32,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for ((service, security), records) in protocol.srv_services().into_iter().zip(answers) {
        for record in order_srv(records, &mut random) {
            out.push(Candidate {
                server: Server {
                    host: record.target,
                    port: record.port,
                },
                security,
                user: None,
                source: Source::Srv(format!("{service}.{domain}")),
            });
        }
    }
    out
}

/// The usual host names of `domain` for `protocol`: `imap.`, `mail.` and the domain itself
/// (`smtp.` for submission), each with implicit TLS, then STARTTLS.
pub fn guesses(protocol: Protocol, domain: &str) -> Vec<Candidate> {
    let (prefixes, ports) = protocol.guesses();
    let mut out = Vec::new();
    for prefix in prefixes {
        for (port, security) in ports {
            out.push(Candidate {
                server: Server {
                    host: format!("{prefix}{domain}"),
                    port,
                },
                security,
                user: None,
                source: Source::Guess,
            });
        }
    }
    out
}

/// `candidates` without the ones of another security than `wanted` (when the user asked for
/// one), and without repeats of a server and security seen earlier.
pub fn narrow(candidates: Vec<Candidate>, wanted: Option<Security>) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for candidate in candidates {
        if wanted.is_some_and(|w| w != candidate.security) || candidate.security == Security::Plain
        {
            continue;
        }
        let seen = out.iter().any(|c| {
            c.server.port == candidate.server.port
                && c.security == candidate.security
                && c.server.host.eq_ignore_ascii_case(&candidate.server.host)
        });
        if !seen {
            out.push(candidate);
        }
    }
    out
}

/// The one line that says what was chosen: `IMAP: host:port, TLS (source)`.
pub fn describe_choice(protocol: Protocol, candidate: &Candidate) -> String {
    let security = match candidate.security {
        Security::Tls => "TLS",
        Security::StartTls => "STARTTLS",
        Security::Plain => "plain",
    };
    format!(
        "{}: {}, {security} ({})",
        protocol.label(),
        candidate.server,
        candidate.source
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    #[test]
    fn srv_records_go_by_priority_then_weight_and_dot_means_none() {
        let records = [
            srv(20, 0, 993, "backup.example.com"),
            srv(10, 60, 993, "a.example.com"),
            srv(10, 40, 993, "b.example.com"),
            srv(5, 0, 993, ""),
            srv(5, 0, 0, "zero-port.example.com"),
        ];
        let hosts = |ordered: Vec<SrvRecord>| {
            ordered
                .into_iter()
                .map(|r| r.target)
                .collect::<Vec<String>>()
        };
        // A draw of 0..=60 lands on a (running sum 60), above on b.
        assert_eq!(
            hosts(order_srv(&records, |_| 10)),
            ["a.example.com", "b.example.com", "backup.example.com"]
        );
        assert_eq!(
            hosts(order_srv(&records, |total| total)),
            ["b.example.com", "a.example.com", "backup.example.com"]
        );
        // A random source that answers out of range is kept in range.
        assert_eq!(order_srv(&records, |_| u32::MAX).len(), 3);
        // Only "." answered: nothing to try.
        assert!(order_srv(&[srv(0, 0, 0, "")], |_| 0).is_empty());
        assert!(order_srv(&[], |_| 0).is_empty());
    }

    #[test]
    fn srv_candidates_put_implicit_tls_first() {
        let answers = [
            vec![srv(10, 1, 993, "imap.example.com")],
            vec![srv(0, 1, 143, "imap.example.com")],
        ];
        let found = from_srv(Protocol::Imap, "example.com", &answers, |_| 0);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].security, Security::Tls);
        assert_eq!(found[0].server.port, 993);
        assert_eq!(
            found[0].source,
            Source::Srv("_imaps._tcp.example.com".into())
        );
        assert_eq!(found[1].security, Security::StartTls);
        assert_eq!(found[1].source.describe(), "DNS SRV _imap._tcp.example.com");
        assert_eq!(
            describe_choice(Protocol::Imap, &found[0]),
            "IMAP: imap.example.com:993, TLS (DNS SRV _imaps._tcp.example.com)"
        );
    }

    #[test]
    fn guesses_cover_the_usual_names_and_both_securities() {
        let found = guesses(Protocol::Submission, "example.com");
        let names: Vec<String> = found
            .iter()
            .map(|c| format!("{} {}", c.server, c.security))
            .collect();
        assert_eq!(
            names,
            [
                "smtp.example.com:465 tls",
                "smtp.example.com:587 starttls",
                "mail.example.com:465 tls",
                "mail.example.com:587 starttls",
                "example.com:465 tls",
                "example.com:587 starttls",
            ]
        );
        assert!(found.iter().all(|c| c.source == Source::Guess));
        assert_eq!(guesses(Protocol::Imap, "example.com")[1].server.port, 143);
    }

    #[test]
    fn narrowing_keeps_the_security_asked_for_and_drops_repeats_and_plain() {
        let mut list = guesses(Protocol::Imap, "example.com");
        list.push(list[0].clone());
        let mut plain = list[0].clone();
        plain.security = Security::Plain;
        list.push(plain);
        let all = narrow(list.clone(), None);
        assert_eq!(all.len(), 6);
        let tls = narrow(list, Some(Security::Tls));
        assert_eq!(tls.len(), 3);
        assert!(tls.iter().all(|c| c.security == Security::Tls));
    }

    #[test]
    fn the_trust_policy() {
        assert!(in_domain("example.com", "example.com"));
        assert!(in_domain("Mail.Example.COM.", "example.com"));
        assert!(in_domain("a.b.example.com", "EXAMPLE.com."));
        assert!(!in_domain("badexample.com", "example.com"));
        assert!(!in_domain("example.com.evil.net", "example.com"));
        assert!(!in_domain(".example.com", "example.com"));
        assert!(!in_domain("example.com", ""));
        let candidate = |host: &str, source: Source| Candidate {
            server: Server {
                host: host.into(),
                port: 993,
            },
            security: Security::Tls,
            user: None,
            source,
        };
        let srv = Source::Srv("_imaps._tcp.example.com".into());
        let https = Source::Autoconfig {
            url: "https://autoconfig.example.com/mail/config-v1.1.xml".into(),
            configured: false,
        };
        assert_eq!(
            trust(&candidate("imap.example.com", srv.clone()), "example.com"),
            Trust::InDomain
        );
        assert_eq!(
            trust(&candidate("imap.gmail.com", srv.clone()), "example.com"),
            Trust::Unverified
        );
        // Under the domain but not a usual mail host: a spoofed SRV answer could name any
        // host of the domain with a certificate.
        assert_eq!(
            trust(
                &candidate("student.example.com", srv.clone()),
                "example.com"
            ),
            Trust::Unverified
        );
        assert_eq!(
            trust(&candidate("example.com", srv), "example.com"),
            Trust::InDomain
        );
        assert_eq!(
            trust(
                &candidate("imap4.example.com", Source::Guess),
                "example.com"
            ),
            Trust::InDomain
        );
        assert_eq!(
            trust(&candidate("imap.gmail.com", Source::Guess), "example.com"),
            Trust::Unverified
        );
        assert_eq!(
            trust(&candidate("imap.gmail.com", https), "example.com"),
            Trust::Authenticated
        );
    }
}
