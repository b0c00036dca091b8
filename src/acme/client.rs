//! RFC 8555 over HTTPS: the directory, nonces (with bounded `badNonce` retries), signed POSTs and
//! POST-as-GET, `Retry-After`, and problem documents. IO: HTTP through one keep-alive client.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::jws::{self, JwsError, KeyRef, Signer};
use super::types::{Directory, Problem};

/// Responses larger than this are refused (certificate chains are a few kilobytes).
const MAX_BODY: u64 = 1024 * 1024;
/// How often a request is retried with the fresh nonce of a `badNonce` error.
const BAD_NONCE_RETRIES: u32 = 3;

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
    #[error(transparent)]
    Jws(#[from] JwsError),
}

/// What came back from a request.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    pub retry_after: Option<Duration>,
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

/// An ACME client bound to one directory.
#[derive(Debug)]
pub struct AcmeClient {
    http: reqwest::blocking::Client,
    pub directory: Directory,
    nonce: Option<String>,
    requests: u32,
}

impl AcmeClient {
    /// Fetches the directory at `directory_url`.
    pub fn connect(
        directory_url: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<AcmeClient, AcmeError> {
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .user_agent(concat!("smime-acme/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(20))
            .https_only(true)
            .build()
            .map_err(|e| transport(directory_url, &e))?;
        let mut client = AcmeClient {
            http,
            directory: Directory::default(),
            nonce: None,
            requests: 0,
        };
        let response = client.send(client.http.get(directory_url), directory_url)?;
        if response.status != 200 {
            return Err(client.error(directory_url, &response));
        }
        client.directory = response.json(directory_url)?;
        Ok(client)
    }

    /// An unauthenticated GET (RFC 9773 renewal information); non-2xx answers are errors.
    pub fn get(&mut self, url: &str) -> Result<Response, AcmeError> {
        let response = self.send(self.http.get(url), url)?;
        if !(200..300).contains(&response.status) {
            return Err(self.error(url, &response));
        }
        Ok(response)
    }

    /// HTTP requests made so far.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// A JWS POST; `payload` None is POST-as-GET. Retries `badNonce` with the error's nonce.
    pub fn post(
        &mut self,
        signer: &dyn Signer,
        key_ref: KeyRef<'_>,
        url: &str,
        payload: Option<&Value>,
    ) -> Result<Response, AcmeError> {
        let mut attempt = 0;
        loop {
            let nonce = match self.nonce.take() {
                Some(nonce) => nonce,
                None => self.new_nonce()?,
            };
            let body = jws::sign(signer, key_ref, Some(&nonce), url, payload)?;
            let request = self
                .http
                .post(url)
                .header("Content-Type", "application/jose+json")
                .body(body.to_string());
            let response = self.send(request, url)?;
            if response.status < 400 {
                return Ok(response);
            }
            let error = self.error(url, &response);
            match error {
                AcmeError::Problem(ref p) if p.is("badNonce") && attempt < BAD_NONCE_RETRIES => {
                    attempt += 1
                }
                _ => return Err(error),
            }
        }
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
        let response = self.send(self.http.head(&url), &url)?;
        if !(200..300).contains(&response.status) {
            return Err(self.error(&url, &response));
        }
        self.nonce.take().ok_or_else(|| AcmeError::Protocol {
            url,
            reason: "no Replay-Nonce header".into(),
        })
    }

    fn send(
        &mut self,
        request: reqwest::blocking::RequestBuilder,
        url: &str,
    ) -> Result<Response, AcmeError> {
        self.requests += 1;
        let response = request.send().map_err(|e| transport(url, &e))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if let Some(nonce) = header("Replay-Nonce").filter(|n| is_base64url(n)) {
            self.nonce = Some(nonce);
        }
        let mut out = Response {
            status: response.status().as_u16(),
            location: header("Location"),
            retry_after: header("Retry-After")
                .and_then(|v| parse_retry_after(&v, SystemTime::now())),
            body: Vec::new(),
        };
        response
            .take(MAX_BODY + 1)
            .read_to_end(&mut out.body)
            .map_err(|e| AcmeError::Transport {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        if out.body.len() as u64 > MAX_BODY {
            return Err(AcmeError::Protocol {
                url: url.to_owned(),
                reason: "the answer is larger than 1 MiB".into(),
            });
        }
        Ok(out)
    }

    fn error(&self, url: &str, response: &Response) -> AcmeError {
        match serde_json::from_slice::<Problem>(&response.body) {
            Ok(problem) if !problem.kind.is_empty() => AcmeError::Problem(problem),
            _ => AcmeError::Status {
                url: url.to_owned(),
                status: response.status,
            },
        }
    }
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

fn is_base64url(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `Retry-After` as delay-seconds or an HTTP date, relative to `now`; capped at one day.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or_default(),
    };
    Some(delay.min(Duration::from_secs(86_400)))
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
            parse_retry_after("Sat, 28 Nov 2026 14:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("9999999", now),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn nonces_must_be_base64url() {
        assert!(is_base64url("2fc926942cd94ca48b3235a5973993d4"));
        assert!(!is_base64url("a b"));
        assert!(!is_base64url(""));
    }
}
