//! Finding a mailbox's IMAP and submission servers when none is given: DNS SRV records (RFC 6186,
//! RFC 8314), then the autoconfig document (`autoconfig`), then the usual host names
//! (`candidates`). A candidate is used only once a TLS connection verified for its host name and
//! a login with the user's credentials succeeded; connections without TLS are never tried. A
//! host outside the address's domain named by an unauthenticated source (DNS without DNSSEC, a
//! guess) is used only when the user confirms it on a terminal. Every try, and the whole search,
//! is bounded in time. IO: DNS, HTTPS, IMAP and SMTP.

use std::net::SocketAddr;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;

use super::autoconfig;
use super::candidates::{self, Candidate, Protocol, Trust};
use super::imap::Mailbox;
use super::resolve::Dns;
use super::smtp::{Sender, Submission};
use super::{Login, MailError, Master, Security};

/// One connection and login try gives up after this long.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole search gives up after this long.
pub const BUDGET: Duration = Duration::from_secs(90);

/// What to look for, and the credentials to prove a candidate with. Its `Debug` leaves out the
/// password.
#[derive(Clone)]
pub struct Search<'a> {
    pub email: &'a str,
    /// Look for the IMAP server, the submission server, or both.
    pub imap: bool,
    pub smtp: bool,
    /// Only candidates with this security, when the user asked for one.
    pub imap_security: Option<Security>,
    pub smtp_security: Option<Security>,
    /// Login names the user gave (else the autoconfig's, else the address).
    pub imap_user: Option<&'a str>,
    pub smtp_user: Option<&'a str>,
    pub password: &'a str,
    /// Log in with OAuth2 tokens instead of the password.
    pub oauth: Option<Arc<super::tokens::Tokens>>,
    pub master: Option<&'a Master>,
    /// `autoconfig-url`: fetched instead of the domain's own places.
    pub autoconfig_url: Option<&'a str>,
    pub dns_server: Option<SocketAddr>,
    pub tls: Arc<rustls::ClientConfig>,
    pub extra_roots: &'a [CertificateDer<'static>],
    /// The search ends by then (and by [`BUDGET`]).
    pub deadline: Instant,
}

impl std::fmt::Debug for Search<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Search")
            .field("email", &self.email)
            .field("imap", &self.imap)
            .field("smtp", &self.smtp)
            .field("autoconfig_url", &self.autoconfig_url)
            .finish_non_exhaustive()
    }
}

/// Who hears about the search: notes, warnings, and the question about a host outside the
/// domain (None: nobody can be asked).
pub trait Listener {
    fn note(&self, text: &str);
    fn warn(&self, text: &str);
    fn confirm(&self, question: &str) -> Option<bool>;
}

/// A server found and proven, with the login name that worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub protocol: Protocol,
    pub candidate: Candidate,
    pub user: String,
}

impl Found {
    /// `IMAP: host:port, TLS (DNS SRV _imaps._tcp.example.com)`.
    pub fn describe(&self) -> String {
        candidates::describe_choice(self.protocol, &self.candidate)
    }

    /// For `--json`: `server`, `security`, `source`, `user`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "server": self.candidate.server.to_string(),
            "security": self.candidate.security.name(),
            "source": self.candidate.source.describe(),
            "user": self.user,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// Nothing usable was found: what was tried, and what to give instead.
    #[error(
        "no {what} server found for {email}: tried {tried}; give {hint}",
        tried = tried.join("; ")
    )]
    NotFound {
        what: &'static str,
        email: String,
        /// The flags (and configuration settings) that name the servers.
        hint: String,
        tried: Vec<String>,
    },
    /// A server reached over verified TLS refused the credentials: no other candidate is given
    /// them.
    #[error("{0}")]
    Login(MailError),
}

/// Finds the servers `search` asks for, IMAP first. `random(n)` gives a number in `0..=n`, for
/// the order of SRV records of equal priority.
pub fn discover(
    search: &Search<'_>,
    listener: &dyn Listener,
    mut random: impl FnMut(u32) -> u32,
) -> Result<Vec<Found>, DiscoverError> {
    let deadline = search.deadline.min(Instant::now() + BUDGET);
    let domain = search
        .email
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .to_ascii_lowercase();
    let mut state = State {
        search,
        listener,
        domain: &domain,
        deadline,
        dns: None,
        autoconfig: None,
    };
    let mut found = Vec::new();
    for (protocol, wanted) in [
        (Protocol::Imap, search.imap),
        (Protocol::Submission, search.smtp),
    ] {
        if !wanted {
            continue;
        }
        // The submission login defaults to the IMAP login found.
        let imap_user = found
            .iter()
            .find(|f: &&Found| f.protocol == Protocol::Imap)
            .map(|f| f.user.clone());
        found.push(state.find(protocol, imap_user, &mut random)?);
    }
    Ok(found)
}

struct State<'s, 'a> {
    search: &'s Search<'a>,
    listener: &'s dyn Listener,
    domain: &'s str,
    deadline: Instant,
    dns: Option<Result<Dns, String>>,
    /// The autoconfig candidates (IMAP, SMTP) and what was tried, fetched once.
    autoconfig: Option<(Vec<Candidate>, Vec<Candidate>, Vec<String>)>,
}

impl State<'_, '_> {
    fn find(
        &mut self,
        protocol: Protocol,
        imap_user: Option<String>,
        random: &mut impl FnMut(u32) -> u32,
    ) -> Result<Found, DiscoverError> {
        let (wanted, given_user) = match protocol {
            Protocol::Imap => (self.search.imap_security, self.search.imap_user),
            Protocol::Submission => (self.search.smtp_security, self.search.smtp_user),
        };
        let mut tried = Vec::new();
        for source in 0..3 {
            let list = match source {
                0 => self.srv(protocol, &mut tried, random),
                1 => self.autoconfig(protocol, &mut tried),
                _ => candidates::guesses(protocol, self.domain),
            };
            for candidate in candidates::narrow(list, wanted) {
                if Instant::now() >= self.deadline {
                    tried.push(format!(
                        "out of time (the search takes at most {} s)",
                        BUDGET.as_secs()
                    ));
                    return Err(self.not_found(protocol, tried));
                }
                if !self.allowed(&candidate, &mut tried) {
                    continue;
                }
                let user = given_user
                    .map(str::to_owned)
                    .or_else(|| candidate.user.clone())
                    .or_else(|| imap_user.clone())
                    .unwrap_or_else(|| self.search.email.to_owned());
                match self.prove(protocol, &candidate, &user) {
                    Ok(()) => {
                        return Ok(Found {
                            protocol,
                            candidate,
                            user,
                        });
                    }
                    Err(e @ MailError::Login { .. }) => return Err(DiscoverError::Login(e)),
                    Err(e) => tried.push(format!(
                        "{} {} ({}): {}",
                        candidate.server,
                        candidate.security,
                        candidate.source,
                        short(&e)
                    )),
                }
            }
        }
        Err(self.not_found(protocol, tried))
    }

    fn not_found(&self, protocol: Protocol, tried: Vec<String>) -> DiscoverError {
        let email = self.search.email;
        let hint = if protocol == Protocol::Imap && self.search.smtp {
            format!(
                "--imap HOST[:PORT] and --smtp HOST[:PORT] (or imap and smtp in [mailbox.\"{email}\"])"
            )
        } else {
            let (flag, setting) = match protocol {
                Protocol::Imap => ("--imap", "imap"),
                Protocol::Submission => ("--smtp", "smtp"),
            };
            format!("{flag} HOST[:PORT] (or {setting} in [mailbox.\"{email}\"])")
        };
        DiscoverError::NotFound {
            what: protocol.label(),
            email: email.to_owned(),
            hint,
            tried,
        }
    }

    /// The trust policy at work: a host outside the domain from an unauthenticated source is
    /// tried only when the user says so on a terminal.
    fn allowed(&self, candidate: &Candidate, tried: &mut Vec<String>) -> bool {
        if candidates::trust(candidate, self.domain) != Trust::Unverified {
            return true;
        }
        let warning = format!(
            "{} names {}, which is outside {}, and that answer is not authenticated (a forged \
             DNS answer could send your password elsewhere)",
            candidate.source, candidate.server.host, self.domain
        );
        self.listener.warn(&warning);
        let question = format!(
            "Send the password for {} to {} ({})?",
            self.search.email, candidate.server, candidate.source
        );
        match self.listener.confirm(&question) {
            Some(true) => true,
            Some(false) => {
                tried.push(format!(
                    "{} ({}): declined",
                    candidate.server, candidate.source
                ));
                false
            }
            None => {
                tried.push(format!(
                    "{} ({}): outside {} from an unauthenticated source, not used without \
                     confirmation on a terminal (name it to use it)",
                    candidate.server, candidate.source, self.domain
                ));
                false
            }
        }
    }

    fn srv(
        &mut self,
        protocol: Protocol,
        tried: &mut Vec<String>,
        random: &mut impl FnMut(u32) -> u32,
    ) -> Vec<Candidate> {
        let dns = self
            .dns
            .get_or_insert_with(|| Dns::new(self.search.dns_server));
        let dns = match dns {
            Ok(dns) => dns,
            Err(e) => {
                tried.push(format!("DNS SRV: cannot set up DNS: {e}"));
                return Vec::new();
            }
        };
        let mut answers: [Vec<_>; 2] = [Vec::new(), Vec::new()];
        for ((service, _), answer) in protocol.srv_services().into_iter().zip(&mut answers) {
            let name = format!("{service}.{}", self.domain);
            match dns.srv(&name) {
                Ok(records) if records.is_empty() => tried.push(format!("DNS SRV {name}: none")),
                Ok(records) => *answer = records,
                Err(e) => tried.push(format!("DNS SRV {name}: {e}")),
            }
        }
        let found = candidates::from_srv(protocol, self.domain, &answers, random);
        if found.is_empty() && answers.iter().any(|a| !a.is_empty()) {
            tried.push(format!(
                "DNS SRV for {}: the service is not offered (target \".\")",
                self.domain
            ));
        }
        found
    }

    fn autoconfig(&mut self, protocol: Protocol, tried: &mut Vec<String>) -> Vec<Candidate> {
        if self.autoconfig.is_none() {
            let mut notes = Vec::new();
            let mut imap = Vec::new();
            let mut smtp = Vec::new();
            for (url, configured) in
                autoconfig::urls(self.search.autoconfig_url, self.search.email, self.domain)
            {
                if Instant::now() >= self.deadline {
                    break;
                }
                let fetched = run_bounded(self.deadline, {
                    let (url, tls, dns) = (
                        url.clone(),
                        Arc::clone(&self.search.tls),
                        self.search.dns_server,
                    );
                    move || autoconfig::fetch(&url, tls, dns)
                });
                match fetched {
                    Ok(Ok(xml)) => {
                        let (i, s) = autoconfig::parse(&xml, self.search.email, &url, configured);
                        if i.is_empty() && s.is_empty() {
                            notes.push(format!("autoconfig {url}: no usable server"));
                        }
                        imap.extend(i);
                        smtp.extend(s);
                        if !imap.is_empty() || !smtp.is_empty() {
                            break;
                        }
                    }
                    Ok(Err(e)) => notes.push(format!("autoconfig {url}: {e}")),
                    Err(()) => notes.push(format!("autoconfig {url}: no answer in time")),
                }
            }
            self.autoconfig = Some((imap, smtp, notes));
        }
        let Some((imap, smtp, notes)) = &self.autoconfig else {
            return Vec::new();
        };
        tried.extend(notes.iter().cloned());
        match protocol {
            Protocol::Imap => imap.clone(),
            Protocol::Submission => smtp.clone(),
        }
    }

    /// Connects over TLS verified for the candidate's host name and logs in, within
    /// [`ATTEMPT_TIMEOUT`] (a try that does not end in time is left behind).
    fn prove(
        &self,
        protocol: Protocol,
        candidate: &Candidate,
        user: &str,
    ) -> Result<(), MailError> {
        let limit = self.deadline.min(Instant::now() + ATTEMPT_TIMEOUT);
        self.listener.note(&format!(
            "trying {} {} {} ({})",
            protocol.label(),
            candidate.server,
            candidate.security,
            candidate.source
        ));
        let server = candidate.server.clone();
        let security = candidate.security;
        let (user, password) = (user.to_owned(), self.search.password.to_owned());
        let master = self.search.master.cloned();
        let oauth = self.search.oauth.clone();
        let (tls, dns) = (Arc::clone(&self.search.tls), self.search.dns_server);
        let roots = self.search.extra_roots.to_vec();
        let timed_out = || MailError::Connect {
            server: candidate.server.to_string(),
            reason: format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
        };
        let outcome = run_bounded(limit, move || {
            let login = Login {
                user: &user,
                password: &password,
                master: master.as_ref(),
                oauth: oauth.as_deref(),
            };
            match protocol {
                Protocol::Imap => {
                    Mailbox::open_via(&server, security, tls, login, Some(limit), dns)
                        .map(Mailbox::logout)
                }
                Protocol::Submission => {
                    let mut sender = Sender::new(Submission {
                        server: &server,
                        security,
                        user: &user,
                        password: &password,
                        master: master.as_ref(),
                        oauth: oauth.as_deref(),
                        extra_roots: &roots,
                    })
                    .until(limit)
                    .resolving_with(dns);
                    sender.login()?;
                    sender.quit();
                    Ok(())
                }
            }
        });
        outcome.map_err(|()| timed_out())?
    }
}

/// Runs `work` on a thread of its own and waits for it until `limit`; Err(()) when it did not
/// end in time (it is left to end on its own).
fn run_bounded<T: Send + 'static>(
    limit: Instant,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    let wait = limit.saturating_duration_since(Instant::now());
    rx.recv_timeout(wait).map_err(|_| ())
}

/// A mail error, shortened for the list of what was tried.
fn short(e: &MailError) -> String {
    let text = match e {
        MailError::Connect { reason, .. } | MailError::Protocol { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    let mut text: String = text.chars().take(160).collect();
    if text.len() >= 160 {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::mail::Server;
    use crate::mail::candidates::Source;

    /// Answers every question with `answer` and records what it was told.
    struct Asked {
        answer: Option<bool>,
        questions: RefCell<Vec<String>>,
        warnings: RefCell<Vec<String>>,
    }

    impl Listener for Asked {
        fn note(&self, _text: &str) {}

        fn warn(&self, text: &str) {
            self.warnings.borrow_mut().push(text.to_owned());
        }

        fn confirm(&self, question: &str) -> Option<bool> {
            self.questions.borrow_mut().push(question.to_owned());
            self.answer
        }
    }

    fn candidate(host: &str, source: Source) -> Candidate {
        Candidate {
            server: Server {
                host: host.into(),
                port: 993,
            },
            security: Security::Tls,
            user: None,
            source,
        }
    }

    #[test]
    fn a_host_outside_the_domain_from_dns_needs_a_yes_on_a_terminal() {
        let search = Search {
            email: "jo@example.com",
            imap: true,
            smtp: true,
            imap_security: None,
            smtp_security: None,
            imap_user: None,
            smtp_user: None,
            password: "secret-password",
            oauth: None,
            master: None,
            autoconfig_url: None,
            dns_server: None,
            tls: crate::tls::client_config(&[]),
            extra_roots: &[],
            deadline: Instant::now() + BUDGET,
        };
        let srv = Source::Srv("_imaps._tcp.example.com".into());
        let https = Source::Autoconfig {
            url: "https://autoconfig.example.com/mail/config-v1.1.xml".into(),
            configured: false,
        };
        for (answer, used) in [(Some(true), true), (Some(false), false), (None, false)] {
            let asked = Asked {
                answer,
                questions: RefCell::default(),
                warnings: RefCell::default(),
            };
            let state = State {
                search: &search,
                listener: &asked,
                domain: "example.com",
                deadline: search.deadline,
                dns: None,
                autoconfig: None,
            };
            let mut tried = Vec::new();
            // In the domain, or named over HTTPS: no question.
            assert!(state.allowed(&candidate("imap.example.com", srv.clone()), &mut tried));
            assert!(state.allowed(&candidate("imap.gmail.com", https.clone()), &mut tried));
            assert!(asked.questions.borrow().is_empty() && tried.is_empty());
            // Elsewhere, named by DNS: a warning naming the record and the host, a question.
            let outside = candidate("imap.gmail.com", srv.clone());
            assert_eq!(state.allowed(&outside, &mut tried), used, "{answer:?}");
            let warnings = asked.warnings.borrow();
            assert!(
                warnings[0].contains("DNS SRV _imaps._tcp.example.com")
                    && warnings[0].contains("imap.gmail.com")
                    && warnings[0].contains("outside example.com"),
                "{warnings:?}"
            );
            assert_eq!(asked.questions.borrow().len(), 1);
            assert_eq!(tried.len(), usize::from(!used), "{tried:?}");
            if answer.is_none() {
                assert!(
                    tried[0].contains("not used without confirmation"),
                    "{tried:?}"
                );
            }
            let shown = format!("{warnings:?}{tried:?}{:?}{search:?}", asked.questions);
            assert!(!shown.contains("secret-password"), "{shown}");
        }
    }

    #[test]
    fn a_try_that_does_not_end_is_left_behind_in_time() {
        let started = Instant::now();
        let outcome = run_bounded(started + Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(5));
        });
        assert!(outcome.is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(run_bounded(Instant::now() + ATTEMPT_TIMEOUT, || 7), Ok(7));
    }
}
