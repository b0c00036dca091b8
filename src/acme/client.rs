//! RFC 8555 over HTTPS: the directory, nonces, signed POSTs and POST-as-GET, `Retry-After`,
//! problem documents, and one retry policy bounded by a deadline (`badNonce`, 429 and 503,
//! dropped or stalled connections, answers that are not what a CA sends). IO: HTTP through one
//! keep-alive client. Clients made with [`AcmeClient::worker`] share the connections, the nonces
//! and the pacing of one CA: at most so many requests in flight, and a `Retry-After` that one
//! of them is told holds back every one.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::jws::{self, JwsError, KeyRef, Signer};
use super::pace::{HandshakeCounter, NONCES_KEPT, Shared};
use super::types::{Directory, Problem};

/// Responses larger than this are refused (certificate chains are a few kilobytes).
const MAX_BODY: u64 = 1024 * 1024;
/// `badNonce` answers retried in a row, each time with the fresh nonce the error carried.
const BAD_NONCE_RETRIES: u32 = 10;
/// Failures to connect retried (a CA restarting is back within seconds; a wrong address never).
const CONNECT_RETRIES: u32 = 2;
/// How often a wait between tries looks whether the run gave up.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// How long one request may take, retries included, when no deadline was set.
const DEFAULT_BUDGET: Duration = Duration::from_secs(300);
/// The longest one try may take, and the least it is given even at the deadline.
const MAX_TRY: Duration = Duration::from_secs(30);
const MIN_TRY: Duration = Duration::from_secs(1);
/// Waits between tries when the CA names none: 1 s, 2 s, 4 s ... up to this.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The shortest wait a `Retry-After` can ask for.
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest `Retry-After` taken as given.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("the CA refused: {0}")]
    Problem(Problem),
    #[error("cannot reach the CA at {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("the CA answered {status} at {url}")]
    Status { url: String, status: u16 },
    #[error("unexpected answer from the CA at {url}: {reason}")]
    Protocol { url: String, reason: String },
    /// 429 until the deadline, or with a `Retry-After` that ends past it.
    #[error("the CA limits requests at {url}: {reason}{}", wait_note(*.retry_after))]
    RateLimited {
        url: String,
        reason: String,
        retry_after: Option<Duration>,
    },
    #[error(transparent)]
    Jws(#[from] JwsError),
}

fn wait_note(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!(" (it asks to wait {}s, past the deadline)", wait.as_secs()),
        None => String::new(),
    }
}

/// What came back from a request.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    pub retry_after: Option<Duration>,
    /// The server's clock, from its `Date` header.
    pub date: Option<SystemTime>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json<T: DeserializeOwned>(&self, url: &str) -> Result<T, AcmeError> {
        serde_json::from_slice(&self.body).map_err(|e| AcmeError::Protocol {
            url: url.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// One request retried: what went wrong and how long the client waited before the next try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub url: String,
    pub reason: String,
    pub wait: Duration,
}

impl std::fmt::Display for Retry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "retrying {} in {:.1}s: {}",
            self.url,
            self.wait.as_secs_f64(),
            self.reason
        )
    }
}

/// An ACME client bound to one directory.
#[derive(Debug)]
pub struct AcmeClient {
    http: reqwest::blocking::Client,
    pub directory: Directory,
    shared: Arc<Shared>,
    nonce: Option<String>,
    requests: u32,
    deadline: Option<Instant>,
    retries: Vec<Retry>,
    retried: u32,
    /// Set from another thread: no more tries or waits.
    stop: Arc<AtomicBool>,
}

/// A signed POST: who signs, how the key is named, and the payload (None: POST-as-GET).
#[derive(Clone, Copy)]
struct Post<'a> {
    signer: &'a dyn Signer,
    key_ref: KeyRef<'a>,
    payload: Option<&'a Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Post,
}

/// Why one try failed, and whether another may help.
#[derive(Debug)]
struct Failure {
    error: AcmeError,
    retry: Retryable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retryable {
    /// Retrying cannot help: the CA decided, or the certificate is not trusted.
    Never,
    /// A fresh nonce and another try, at once.
    BadNonce,
    /// No connection was made: retried a few times only.
    Connect,
    /// After the CA's `Retry-After` when it gave one, else after a growing backoff.
    Later(Option<Duration>),
}

impl AcmeClient {
    /// Fetches the directory at `directory_url`. Each request may take up to five minutes,
    /// retries included, until `set_deadline` says otherwise.
    pub fn connect(
        directory_url: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<AcmeClient, AcmeError> {
        AcmeClient::open(directory_url, tls, None)
    }

    /// `connect` with every request (the directory's included) bounded by `deadline`, for
    /// clients that [`AcmeClient::worker`] makes: at most `in_flight` requests at once to this CA.
    pub fn connect_shared(
        directory_url: &str,
        tls: Arc<rustls::ClientConfig>,
        deadline: Instant,
        in_flight: usize,
    ) -> Result<AcmeClient, AcmeError> {
        AcmeClient::open_limited(directory_url, tls, Some(deadline), in_flight)
    }

    fn open(
        directory_url: &str,
        tls: Arc<rustls::ClientConfig>,
        deadline: Option<Instant>,
    ) -> Result<AcmeClient, AcmeError> {
        AcmeClient::open_limited(directory_url, tls, deadline, usize::MAX)
    }

    fn open_limited(
        directory_url: &str,
        tls: Arc<rustls::ClientConfig>,
        deadline: Option<Instant>,
        in_flight: usize,
    ) -> Result<AcmeClient, AcmeError> {
        let shared = Arc::new(Shared::new(in_flight));
        let mut tls = (*tls).clone();
        tls.key_log = Arc::new(HandshakeCounter(Arc::clone(&shared.handshakes)));
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("smime-acme/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            .https_only(true)
            .build()
            .map_err(|e| transport(directory_url, &e))?;
        let mut client = AcmeClient {
            http,
            directory: Directory::default(),
            shared,
            nonce: None,
            requests: 0,
            deadline,
            retries: Vec::new(),
            retried: 0,
            stop: Arc::new(AtomicBool::new(false)),
        };
        let response = client.get(directory_url)?;
        client.directory = response.json(directory_url)?;
        Ok(client)
    }

    /// Another client of the same CA, for another worker: it shares this one's connections,
    /// nonces, in-flight limit and pauses, and has its own deadline (none until set) and
    /// counts.
    pub fn worker(&self) -> AcmeClient {
        AcmeClient {
            http: self.http.clone(),
            directory: self.directory.clone(),
            shared: Arc::clone(&self.shared),
            nonce: None,
            requests: 0,
            deadline: None,
            retries: Vec::new(),
            retried: 0,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// HTTP requests made by every client of this CA, and TLS connections opened.
    pub fn totals(&self) -> (u32, u32) {
        (
            self.shared.requests.load(Ordering::Relaxed),
            self.shared.handshakes.load(Ordering::Relaxed),
        )
    }

    /// From now on no request is tried again, nor waited for, past `deadline`: the last
    /// error is returned instead.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.stop.store(false, Ordering::Relaxed);
        self.deadline = Some(deadline);
    }

    /// An unauthenticated GET (RFC 9773 renewal information); non-2xx answers are errors.
    pub fn get(&mut self, url: &str) -> Result<Response, AcmeError> {
        let response = self.request(Method::Get, url, None)?;
        if !(200..300).contains(&response.status) {
            return Err(problem_or_status(url, &response));
        }
        Ok(response)
    }

    /// HTTP requests made so far, tries that failed included.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// Tries made again so far.
    pub fn retries(&self) -> u32 {
        self.retried
    }

    /// The retries since the last call (at most 100 are kept), oldest first, to report.
    pub fn take_retries(&mut self) -> Vec<Retry> {
        std::mem::take(&mut self.retries)
    }

    /// A JWS POST; `payload` None is POST-as-GET. Each try is signed with a fresh nonce, so a
    /// resent request is never taken for a replay.
    pub fn post(
        &mut self,
        signer: &dyn Signer,
        key_ref: KeyRef<'_>,
        url: &str,
        payload: Option<&Value>,
    ) -> Result<Response, AcmeError> {
        let post = Post {
            signer,
            key_ref,
            payload,
        };
        self.request(Method::Post, url, Some(post))
    }

    /// POST-as-GET, parsed as JSON.
    pub fn fetch<T: DeserializeOwned>(
        &mut self,
        signer: &dyn Signer,
        kid: &str,
        url: &str,
    ) -> Result<(T, Response), AcmeError> {
        let response = self.post(signer, KeyRef::Kid(kid), url, None)?;
        Ok((response.json(url)?, response))
    }

    fn new_nonce(&mut self) -> Result<String, AcmeError> {
        let url = self.directory.new_nonce.clone();
        let response = self.request(Method::Head, &url, None)?;
        if !(200..300).contains(&response.status) {
            return Err(problem_or_status(&url, &response));
        }
        self.nonce.take().ok_or_else(|| AcmeError::Protocol {
            url,
            reason: "no Replay-Nonce header".into(),
        })
    }

    /// One request under the retry policy: answers below 400 are returned, the rest are errors.
    fn request(
        &mut self,
        method: Method,
        url: &str,
        post: Option<Post<'_>>,
    ) -> Result<Response, AcmeError> {
        let deadline = self
            .deadline
            .unwrap_or_else(|| Instant::now() + DEFAULT_BUDGET);
        let mut bad_nonces = 0;
        let mut connect_failures = 0;
        let mut backoff = FIRST_BACKOFF;
        loop {
            // Another worker was told to wait: so is this one.
            if let Some(until) = self.shared.paused_until() {
                let paused = || AcmeError::RateLimited {
                    url: url.to_owned(),
                    reason: "the CA asked every request to wait".into(),
                    retry_after: Some(until.saturating_duration_since(Instant::now())),
                };
                if until >= deadline || !self.sleep_until(until) {
                    return Err(paused());
                }
            }
            let failure = match self.try_once(method, url, post, deadline) {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            let wait = match failure.retry {
                Retryable::Never => return Err(failure.error),
                Retryable::BadNonce => {
                    bad_nonces += 1;
                    if bad_nonces > BAD_NONCE_RETRIES {
                        return Err(failure.error);
                    }
                    Duration::ZERO
                }
                Retryable::Connect => {
                    connect_failures += 1;
                    if connect_failures > CONNECT_RETRIES {
                        return Err(failure.error);
                    }
                    next_backoff(&mut backoff)
                }
                Retryable::Later(retry_after) => {
                    // The CA's own word holds for every worker talking to it.
                    if let Some(wait) = retry_after {
                        self.shared.pause(wait);
                    }
                    retry_after.unwrap_or_else(|| next_backoff(&mut backoff))
                }
            };
            if Instant::now() + wait >= deadline || self.stop.load(Ordering::Relaxed) {
                return Err(failure.error);
            }
            self.retried += 1;
            if self.retries.len() < 100 {
                self.retries.push(Retry {
                    url: url.to_owned(),
                    reason: failure.error.to_string(),
                    wait,
                });
            }
            if !self.sleep_until(Instant::now() + wait) {
                return Err(failure.error);
            }
        }
    }

    /// Sleeps until `until`; false when the run gave up meanwhile.
    fn sleep_until(&self, until: Instant) -> bool {
        while Instant::now() < until {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(STOP_CHECK),
            );
        }
        true
    }

    /// A switch that, once set (from any thread), ends the request under way at its next
    /// retry and keeps it from waiting longer: for a run that is giving up.
    pub fn stopper(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    fn try_once(
        &mut self,
        method: Method,
        url: &str,
        post: Option<Post<'_>>,
        deadline: Instant,
    ) -> Result<Response, Failure> {
        let request = match (method, post) {
            (Method::Post, Some(post)) => {
                // The nonce request has retried on its own, up to the same deadline.
                let pooled = || {
                    let mut pool = self.shared.nonces.lock().unwrap_or_else(|e| e.into_inner());
                    pool.pop()
                };
                let nonce = match self.nonce.take().or_else(pooled) {
                    Some(nonce) => nonce,
                    None => self.new_nonce().map_err(Failure::never)?,
                };
                let body = jws::sign(post.signer, post.key_ref, Some(&nonce), url, post.payload)
                    .map_err(|e| Failure::never(e.into()))?;
                self.http
                    .post(url)
                    .header("Content-Type", "application/jose+json")
                    .body(body.to_string())
            }
            (Method::Head, _) => self.http.head(url),
            _ => self.http.get(url),
        };
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .clamp(MIN_TRY, MAX_TRY);
        let (response, content_type) =
            self.send(request.timeout(budget), url, Instant::now() + budget)?;
        match verdict(url, &response, content_type.as_deref()) {
            Some(failure) => Err(failure),
            None => Ok(response),
        }
    }

    fn send(
        &mut self,
        request: reqwest::blocking::RequestBuilder,
        url: &str,
        until: Instant,
    ) -> Result<(Response, Option<String>), Failure> {
        let _slot = self.shared.slot();
        self.requests += 1;
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.send().map_err(|e| Failure {
            retry: retryable(&e),
            error: transport(url, &e),
        })?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if let Some(nonce) = header("Replay-Nonce").filter(|n| is_base64url(n))
            && let Some(old) = self.nonce.replace(nonce)
        {
            let mut pool = self.shared.nonces.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < NONCES_KEPT {
                pool.push(old);
            }
        }
        let content_type = header("Content-Type");
        let mut out = Response {
            status: response.status().as_u16(),
            location: header("Location"),
            retry_after: header("Retry-After")
                .and_then(|v| parse_retry_after(&v, SystemTime::now())),
            date: header("Date").and_then(|v| httpdate::parse_http_date(&v).ok()),
            body: Vec::new(),
        };
        out.body = read_body(response, until).map_err(|e| match e {
            BodyError::TooLarge => Failure::never(AcmeError::Protocol {
                url: url.to_owned(),
                reason: format!("the answer is larger than {} MiB", MAX_BODY >> 20),
            }),
            BodyError::TimedOut => Failure::later(AcmeError::Transport {
                url: url.to_owned(),
                reason: "the answer did not arrive in time".into(),
            }),
            BodyError::Io(e) => Failure::later(AcmeError::Transport {
                url: url.to_owned(),
                reason: io_chain(&e),
            }),
        })?;
        Ok((out, content_type))
    }
}

impl Drop for AcmeClient {
    /// A nonce not used is left for the other workers.
    fn drop(&mut self) {
        if let Some(nonce) = self.nonce.take() {
            let mut pool = self.shared.nonces.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < NONCES_KEPT {
                pool.push(nonce);
            }
        }
    }
}

impl Failure {
    fn never(error: AcmeError) -> Failure {
        Failure {
            error,
            retry: Retryable::Never,
        }
    }

    fn later(error: AcmeError) -> Failure {
        Failure {
            error,
            retry: Retryable::Later(None),
        }
    }
}

/// The wait before the next try, doubling each time up to `MAX_BACKOFF`.
fn next_backoff(backoff: &mut Duration) -> Duration {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    wait
}

/// What is wrong with an answer, and whether another try may help; None when it is fine.
fn verdict(url: &str, response: &Response, content_type: Option<&str>) -> Option<Failure> {
    let status = response.status;
    match status {
        200..=299 => body_problem(content_type, &response.body).map(|reason| {
            Failure::later(AcmeError::Protocol {
                url: url.to_owned(),
                reason,
            })
        }),
        0..=399 => None,
        429 => Some(Failure {
            error: AcmeError::RateLimited {
                url: url.to_owned(),
                reason: match problem(response) {
                    Some(problem) => problem.to_string(),
                    None => status_text(status),
                },
                retry_after: response.retry_after,
            },
            retry: Retryable::Later(response.retry_after),
        }),
        // The CA's front is up but its service is not (overloaded, restarting, maintenance).
        502..=504 => Some(Failure {
            error: match problem(response) {
                Some(problem) => AcmeError::Problem(problem),
                None => AcmeError::Transport {
                    url: url.to_owned(),
                    reason: format!("it answered {}", status_text(status)),
                },
            },
            retry: Retryable::Later(response.retry_after),
        }),
        _ => {
            let error = problem_or_status(url, response);
            let retry = match &error {
                AcmeError::Problem(p) if p.is("badNonce") => Retryable::BadNonce,
                _ => Retryable::Never,
            };
            Some(Failure { error, retry })
        }
    }
}

/// Why a 2xx body cannot be a CA's answer, if it cannot: JSON that does not parse, or a web
/// page (a proxy's or a captive portal's).
fn body_problem(content_type: Option<&str>, body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let media = content_type
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if media == "application/json" || media.ends_with("+json") {
        return serde_json::from_slice::<serde::de::IgnoredAny>(body)
            .err()
            .map(|e| format!("the JSON answer does not parse ({e})"));
    }
    (media == "text/html").then(|| "a web page (text/html) instead of an ACME answer".to_owned())
}

fn problem(response: &Response) -> Option<Problem> {
    serde_json::from_slice::<Problem>(&response.body)
        .ok()
        .filter(|p| !p.kind.is_empty())
}

fn problem_or_status(url: &str, response: &Response) -> AcmeError {
    match problem(response) {
        Some(problem) => AcmeError::Problem(problem),
        None => AcmeError::Status {
            url: url.to_owned(),
            status: response.status,
        },
    }
}

fn status_text(status: u16) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason());
    match reason {
        Some(reason) => format!("HTTP {status} {reason}"),
        None => format!("HTTP {status}"),
    }
}

enum BodyError {
    TooLarge,
    TimedOut,
    Io(std::io::Error),
}

/// The body, at most `MAX_BODY` bytes, read by `until`.
fn read_body(mut reader: impl Read, until: Instant) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(body),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BodyError::Io(e)),
        };
        if (body.len() + n) as u64 > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk[..n]);
        if Instant::now() > until {
            return Err(BodyError::TimedOut);
        }
    }
}

/// Whether another try may help after `error`: never when the CA's certificate is refused or
/// the request cannot be built, a few times when no connection was made, else until the deadline.
fn retryable(error: &reqwest::Error) -> Retryable {
    if error.is_builder() || error.is_redirect() || is_tls_error(error) {
        Retryable::Never
    } else if error.is_connect() {
        Retryable::Connect
    } else {
        Retryable::Later(None)
    }
}

/// Whether TLS failed (an untrusted certificate, a handshake the peer refused).
fn is_tls_error(error: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        // io::Error's `source` skips the error it wraps, which may be another io::Error.
        let mut inner: &(dyn std::error::Error + 'static) = current;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = wrapped;
        }
        if inner.is::<rustls::Error>() {
            return true;
        }
        cause = current.source();
    }
    false
}

fn transport(url: &str, error: &reqwest::Error) -> AcmeError {
    // The whole chain: "error sending request" alone hides the TLS or connection cause.
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    AcmeError::Transport {
        url: url.to_owned(),
        reason,
    }
}

fn io_chain(error: &std::io::Error) -> String {
    let mut reason = error.to_string();
    let mut source = error.get_ref().and_then(|inner| inner.source());
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason
}

fn is_base64url(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `Retry-After` as delay-seconds or an HTTP date, relative to `now`: at least one second (a
/// zero or a date in the past included), at most one day.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or_default(),
    };
    Some(delay.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sat, 28 Nov 2026 15:00:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 15:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("9999999", now),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn retry_after_zero_or_past_waits_a_second() {
        let now = httpdate::parse_http_date("Sat, 28 Nov 2026 15:00:00 GMT").unwrap();
        for value in [
            "0",
            " 0 ",
            "Sat, 28 Nov 2026 14:00:00 GMT",
            "Sat, 28 Nov 2026 15:00:00 GMT",
        ] {
            assert_eq!(
                parse_retry_after(value, now),
                Some(Duration::from_secs(1)),
                "{value}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let mut backoff = FIRST_BACKOFF;
        let waits: Vec<u64> = (0..8)
            .map(|_| next_backoff(&mut backoff).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    fn answer(status: u16, body: &str, retry_after: Option<u64>) -> Response {
        Response {
            status,
            location: None,
            retry_after: retry_after.map(Duration::from_secs),
            date: None,
            body: body.as_bytes().to_vec(),
        }
    }

    const URL: &str = "https://ca.test/acme/order/1";

    #[test]
    fn good_answers_pass() {
        let json = Some("application/json");
        assert!(verdict(URL, &answer(200, r#"{"status":"valid"}"#, None), json).is_none());
        assert!(verdict(URL, &answer(201, "", None), None).is_none());
        assert!(verdict(URL, &answer(200, "", None), Some("text/html")).is_none());
        let pem = "-----BEGIN CERTIFICATE-----\n";
        let chain = Some("application/pem-certificate-chain");
        assert!(verdict(URL, &answer(200, pem, None), chain).is_none());
        let problem_json = Some("application/problem+json; charset=utf-8");
        assert!(verdict(URL, &answer(200, "{}", None), problem_json).is_none());
    }

    #[test]
    fn broken_answers_are_retried() {
        let truncated = answer(200, r#"{"status": "pend"#, None);
        let failure = verdict(URL, &truncated, Some("application/json; charset=utf-8")).unwrap();
        assert_eq!(failure.retry, Retryable::Later(None));
        assert!(
            failure.error.to_string().contains("does not parse"),
            "{}",
            failure.error
        );
        let page = answer(200, "<html><body>Maintenance</body></html>", None);
        let failure = verdict(URL, &page, Some("text/html; charset=UTF-8")).unwrap();
        assert_eq!(failure.retry, Retryable::Later(None));
        assert!(failure.error.to_string().contains("text/html"));
    }

    #[test]
    fn bad_nonce_rate_limits_and_unavailable_are_retried() {
        let bad_nonce = answer(
            400,
            r#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"stale"}"#,
            None,
        );
        assert_eq!(
            verdict(URL, &bad_nonce, None).unwrap().retry,
            Retryable::BadNonce
        );

        let limited = answer(
            429,
            r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"slow down"}"#,
            Some(7),
        );
        let failure = verdict(URL, &limited, None).unwrap();
        assert_eq!(
            failure.retry,
            Retryable::Later(Some(Duration::from_secs(7)))
        );
        assert_eq!(
            failure.error.to_string(),
            "the CA limits requests at https://ca.test/acme/order/1: slow down (rateLimited) \
             (it asks to wait 7s, past the deadline)"
        );
        let bare = verdict(URL, &answer(429, "", None), None).unwrap();
        assert_eq!(
            bare.error.to_string(),
            "the CA limits requests at https://ca.test/acme/order/1: HTTP 429 Too Many Requests"
        );

        let unavailable = verdict(URL, &answer(503, "<html/>", None), None).unwrap();
        assert_eq!(unavailable.retry, Retryable::Later(None));
        assert!(matches!(unavailable.error, AcmeError::Transport { .. }));
        assert!(
            unavailable
                .error
                .to_string()
                .contains("it answered HTTP 503 Service Unavailable")
        );
    }

    #[test]
    fn refusals_are_final() {
        let refused = answer(
            403,
            r#"{"type":"urn:ietf:params:acme:error:unauthorized","detail":"no"}"#,
            None,
        );
        let failure = verdict(URL, &refused, None).unwrap();
        assert_eq!(failure.retry, Retryable::Never);
        assert!(matches!(failure.error, AcmeError::Problem(_)));
        let failure = verdict(URL, &answer(404, "", None), None).unwrap();
        assert_eq!(failure.retry, Retryable::Never);
        assert!(matches!(
            failure.error,
            AcmeError::Status { status: 404, .. }
        ));
    }

    #[test]
    fn bodies_are_limited_to_one_mebibyte() {
        let until = Instant::now() + Duration::from_secs(60);
        let exact = vec![b'x'; MAX_BODY as usize];
        assert_eq!(
            read_body(&exact[..], until).ok().map(|b| b.len()),
            Some(exact.len())
        );
        let big = std::io::repeat(b'x').take(10 * 1024 * 1024);
        assert!(matches!(read_body(big, until), Err(BodyError::TooLarge)));
    }

    #[test]
    fn nonces_must_be_base64url() {
        assert!(is_base64url("2fc926942cd94ca48b3235a5973993d4"));
        assert!(!is_base64url("a b"));
        assert!(!is_base64url(""));
    }
}
