//! OAuth2 access tokens for mail logins, from where the settings say: a command that prints one
//! (oama, oauth2l, mutt_oauth2.py), or a refresh-token grant (RFC 6749 §6) at the provider's
//! token endpoint, cached in the state folder (0600) until shortly before it expires. Reading the
//! endpoint's answers, the cache's expiry and its key are pure; [`Tokens`] does the IO (the HTTP
//! request, the command, the cache file).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::oauth::{
    Grant, Mechanism, OAuthSettings, REFRESH_TOKEN_ENV, RefreshTokenSource, TokenSource, printable,
};
use crate::secrets::{self, SecretError};

/// Token endpoint answers and token command output larger than this are refused.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;
/// A cached access token is replaced this long before it expires (at most half its lifetime).
const MARGIN_SECONDS: u64 = 60;
/// The longest lifetime believed, whatever the endpoint says.
const MAX_LIFETIME_SECONDS: u64 = 366 * 86_400;
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Getting an access token failed. All end the run with the mail error status.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the token endpoint {url} refused the refresh token from {from} ({reason}): get a new \
         refresh token from your provider (sign in again) and put it in {from}"
    )]
    GrantRefused {
        url: String,
        from: String,
        reason: String,
    },
    #[error(
        "the token endpoint {url} refused the client {client_id} ({reason}): check \
         oauth-client-id and oauth-client-secret-file"
    )]
    ClientRefused {
        url: String,
        client_id: String,
        reason: String,
    },
    /// The endpoint could not be reached, failed (5xx), or answered garbage.
    #[error("cannot get an access token from {url}: {reason}")]
    Endpoint { url: String, reason: String },
    #[error("the token endpoint {url} refused the request: {reason}")]
    Refused { url: String, reason: String },
    #[error("the OAuth token command failed: {0}")]
    Command(String),
}

/// A token endpoint's answer, read.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Granted(Granted),
    /// `invalid_grant`: the refresh token is expired, revoked or replaced.
    GrantRefused(String),
    /// `invalid_client`, `unauthorized_client`, or 401: the client ID or secret.
    ClientRefused(String),
    Failed(String),
}

/// A new access token. Its `Debug` leaves out the tokens.
#[derive(PartialEq, Eq)]
pub struct Granted {
    pub access_token: String,
    /// Seconds, when the endpoint says.
    pub expires_in: Option<u64>,
    /// A new refresh token, when the endpoint rotates them.
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Granted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Granted")
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<new>"),
            )
            .finish_non_exhaustive()
    }
}

/// Reads a token endpoint's answer (RFC 6749 §5.1, §5.2). Secrets the endpoint echoes in an
/// error description are not repeated: only the error code and a short description are kept.
pub fn read_answer(status: u16, body: &[u8]) -> Answer {
    #[derive(Deserialize)]
    struct Wire {
        access_token: Option<String>,
        token_type: Option<String>,
        expires_in: Option<serde_json::Value>,
        refresh_token: Option<String>,
        error: Option<String>,
        error_description: Option<String>,
    }
    let wire: Option<Wire> = serde_json::from_slice(body).ok();
    let Some(wire) = wire else {
        return match status {
            401 => Answer::ClientRefused("HTTP 401".into()),
            200..=299 => Answer::Failed("the answer is not a JSON token response".into()),
            _ => Answer::Failed(format!("HTTP {status}")),
        };
    };
    if let Some(error) = &wire.error {
        let mut reason = printable(error, 60);
        if let Some(description) = &wire.error_description {
            reason = format!("{reason}: {}", printable(description, 160));
        }
        return match error.as_str() {
            "invalid_grant" => Answer::GrantRefused(reason),
            "invalid_client" | "unauthorized_client" => Answer::ClientRefused(reason),
            _ => Answer::Failed(reason),
        };
    }
    if status == 401 {
        return Answer::ClientRefused("HTTP 401".into());
    }
    if !(200..=299).contains(&status) {
        return Answer::Failed(format!("HTTP {status}"));
    }
    let Some(access_token) = wire.access_token.filter(|t| is_token(t)) else {
        return Answer::Failed("the answer holds no usable access_token".into());
    };
    if let Some(kind) = &wire.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Answer::Failed(format!(
            "the token type is {:?}, not Bearer",
            printable(kind, 30)
        ));
    }
    let expires_in = match wire.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        // Some providers send the number as a string.
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .map(|s| s.min(MAX_LIFETIME_SECONDS));
    Answer::Granted(Granted {
        access_token,
        expires_in,
        refresh_token: wire.refresh_token.filter(|t| is_token(t)),
    })
}

/// Whether `text` can be a token in a SASL message or a file's line: printable ASCII, no spaces.
fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
}

/// Unix seconds after which a token granted at `now` for `expires_in` seconds is replaced: a
/// minute before it expires, or halfway for a token that lives two minutes or less. None: the
/// lifetime is unknown (the token is used until a server refuses it).
pub fn refresh_after(now: i64, expires_in: Option<u64>) -> Option<i64> {
    let lifetime = expires_in?;
    let margin = MARGIN_SECONDS.min(lifetime / 2);
    Some(now.saturating_add(i64::try_from(lifetime - margin).unwrap_or(i64::MAX)))
}

/// The cache file's name for a user, client and endpoint: a hash, so that no two of them share
/// a token and the name says nothing.
pub fn cache_name(token_url: &str, client_id: &str, user: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{token_url}\0{client_id}\0{}", user.to_lowercase()));
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.json")
}

/// `application/x-www-form-urlencoded` (RFC 6749 Appendix B).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The cache file: the token, when to replace it, and whose it is.
#[derive(Serialize, Deserialize)]
struct Cached {
    access_token: String,
    refresh_after: i64,
    token_url: String,
    client_id: String,
    user: String,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The access tokens of one mailbox for one run: a current token for every login, and a new one
/// when a server refuses it. Its `Debug` shows no secret.
pub struct Tokens {
    settings: OAuthSettings,
    user: String,
    cache: Option<PathBuf>,
    client_secret: Option<String>,
    refresh_token: Mutex<String>,
    /// The token in use and when to replace it.
    current: Mutex<Option<(String, Option<i64>)>>,
    tls: Arc<rustls::ClientConfig>,
    notes: Mutex<Vec<(bool, String)>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("settings", &self.settings)
            .field("user", &self.user)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// The tokens of `user` from `settings`, cached under `state_dir` (for a grant). Reads the
    /// client secret and the refresh token now.
    pub fn new(
        settings: &OAuthSettings,
        user: &str,
        state_dir: &Path,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Tokens, SecretError> {
        let (mut cache, mut client_secret, mut refresh_token) = (None, None, String::new());
        if let TokenSource::Grant(grant) = &settings.source {
            cache = Some(state_dir.join("oauth").join(cache_name(
                &grant.token_url,
                &grant.client_id,
                user,
            )));
            if let Some(file) = &grant.client_secret_file {
                client_secret = Some(secrets::from_file("OAuth client secret", file)?);
            }
            const WHAT: &str = "OAuth refresh token";
            refresh_token = match &grant.refresh_token {
                RefreshTokenSource::File(path) => secrets::from_file(WHAT, path)?,
                RefreshTokenSource::Env => std::env::var(REFRESH_TOKEN_ENV)
                    .ok()
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .ok_or(SecretError::Empty { what: WHAT })?,
            };
        }
        Ok(Tokens {
            settings: settings.clone(),
            user: user.to_owned(),
            cache,
            client_secret,
            refresh_token: Mutex::new(refresh_token.trim().to_owned()),
            current: Mutex::new(None),
            tls,
            notes: Mutex::new(Vec::new()),
        })
    }

    pub fn mechanism(&self) -> Mechanism {
        self.settings.mechanism
    }

    /// What happened that the user should hear of (a rotated refresh token), each once:
    /// (whether it is a warning, the text).
    pub fn take_notes(&self) -> Vec<(bool, String)> {
        std::mem::take(&mut *lock(&self.notes))
    }

    fn note(&self, warning: bool, text: String) {
        lock(&self.notes).push((warning, text));
    }

    /// A token to log in with now: the one in use while it is good, else the cached one, else a
    /// new one.
    pub fn token(&self) -> Result<String, TokenError> {
        if let Some((token, until)) = lock(&self.current).clone()
            && until.is_none_or(|t| now() < t)
        {
            return Ok(token);
        }
        if let Some(cached) = self.read_cache() {
            *lock(&self.current) = Some((cached.access_token.clone(), Some(cached.refresh_after)));
            return Ok(cached.access_token);
        }
        self.fetch()
    }

    /// A new token after a server refused `refused` (unless another login got one meanwhile).
    pub fn renew(&self, refused: &str) -> Result<String, TokenError> {
        {
            let mut current = lock(&self.current);
            match current.as_ref() {
                Some((token, _)) if token != refused => return Ok(token.clone()),
                _ => *current = None,
            }
        }
        if let Some(path) = &self.cache {
            let _ = std::fs::remove_file(path);
        }
        self.fetch()
    }

    fn read_cache(&self) -> Option<Cached> {
        let TokenSource::Grant(grant) = &self.settings.source else {
            return None;
        };
        let bytes = crate::store::read_optional(self.cache.as_ref()?, MAX_ANSWER_BYTES)
            .ok()
            .flatten()?;
        let cached: Cached = serde_json::from_slice(&bytes).ok()?;
        let ours = cached.token_url == grant.token_url
            && cached.client_id == grant.client_id
            && cached.user.eq_ignore_ascii_case(&self.user);
        (ours && now() < cached.refresh_after && is_token(&cached.access_token)).then_some(cached)
    }

    fn fetch(&self) -> Result<String, TokenError> {
        let (token, until) = match &self.settings.source {
            TokenSource::Command(command) => (run_command(command)?, None),
            TokenSource::Grant(grant) => self.grant(grant)?,
        };
        *lock(&self.current) = Some((token.clone(), until));
        Ok(token)
    }

    /// The refresh-token grant; the new token is cached when its lifetime is known.
    fn grant(&self, grant: &Grant) -> Result<(String, Option<i64>), TokenError> {
        let url = grant.token_url.clone();
        let failed = |reason: String| TokenError::Endpoint {
            url: url.clone(),
            reason,
        };
        let refresh_token = lock(&self.refresh_token).clone();
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("client_id", grant.client_id.as_str()),
        ];
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.as_str()));
        }
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured((*self.tls).clone())
            .user_agent(concat!("smime-acme/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(20))
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| failed(super::error_chain(&e)))?;
        let response = http
            .post(&grant.token_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(form_encode(&form))
            .send()
            .map_err(|e| failed(super::error_chain(&e)))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        response
            .take(MAX_ANSWER_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| failed(e.to_string()))?;
        if body.len() as u64 > MAX_ANSWER_BYTES {
            return Err(failed(format!(
                "the answer is larger than {} KiB",
                MAX_ANSWER_BYTES / 1024
            )));
        }
        let scrub = |text: String| {
            let mut text = text.replace(&refresh_token, "<refresh token>");
            if let Some(secret) = &self.client_secret {
                text = text.replace(secret.as_str(), "<client secret>");
            }
            text
        };
        let granted = match read_answer(status, &body) {
            Answer::Granted(granted) => granted,
            Answer::GrantRefused(reason) => {
                return Err(TokenError::GrantRefused {
                    url,
                    from: grant.refresh_token.to_string(),
                    reason: scrub(reason),
                });
            }
            Answer::ClientRefused(reason) => {
                return Err(TokenError::ClientRefused {
                    url,
                    client_id: grant.client_id.clone(),
                    reason: scrub(reason),
                });
            }
            // Another 4xx: the request itself is refused, and will be again.
            Answer::Failed(reason) if (400..500).contains(&status) => {
                return Err(TokenError::Refused {
                    url,
                    reason: scrub(reason),
                });
            }
            Answer::Failed(reason) => return Err(failed(scrub(reason))),
        };
        if let Some(new) = granted
            .refresh_token
            .as_ref()
            .filter(|t| **t != refresh_token)
        {
            self.keep_refresh_token(&grant.refresh_token, new);
        }
        let until = refresh_after(now(), granted.expires_in);
        if let (Some(path), Some(until)) = (&self.cache, until) {
            let cached = Cached {
                access_token: granted.access_token.clone(),
                refresh_after: until,
                token_url: grant.token_url.clone(),
                client_id: grant.client_id.clone(),
                user: self.user.clone(),
            };
            // A cache that cannot be written costs a grant next time, nothing more.
            if let Ok(bytes) = serde_json::to_vec(&cached)
                && let Err(e) = crate::store::write_atomic(path, &bytes)
            {
                self.note(true, format!("cannot cache the OAuth access token: {e}"));
            }
        }
        Ok((granted.access_token, until))
    }

    /// The endpoint replaced the refresh token (rotation): the new one is used from now on, and
    /// written back to its file; one from the environment cannot be, so the user is told.
    fn keep_refresh_token(&self, source: &RefreshTokenSource, new: &str) {
        *lock(&self.refresh_token) = new.to_owned();
        match source {
            RefreshTokenSource::File(path) => {
                match crate::store::write_atomic(path, format!("{new}\n").as_bytes()) {
                    Ok(()) => self.note(
                        false,
                        format!(
                            "the token endpoint issued a new refresh token; it replaces the old \
                             one in {}",
                            path.display()
                        ),
                    ),
                    Err(e) => self.note(
                        true,
                        format!(
                            "the token endpoint issued a new refresh token, but {e}: the old one \
                             in {} may no longer be accepted",
                            path.display()
                        ),
                    ),
                }
            }
            RefreshTokenSource::Env => self.note(
                true,
                format!(
                    "the token endpoint issued a new refresh token, used for the rest of this run \
                     only: the one in {REFRESH_TOKEN_ENV} may no longer be accepted; use \
                     --oauth-refresh-token-file to have new ones kept"
                ),
            ),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the token command (`sh -c`, without the secrets of the environment) and takes the
/// first line of its output, at most [`MAX_ANSWER_BYTES`] of it.
fn run_command(command: &str) -> Result<String, TokenError> {
    let failed = |reason: String| TokenError::Command(reason);
    let mut child = secrets::without_secrets(&mut Command::new("sh"))
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let mut output = Vec::new();
    let read = match child.stdout.take() {
        Some(stdout) => stdout
            .take(MAX_ANSWER_BYTES + 1)
            .read_to_end(&mut output)
            .map_err(|e| e.to_string()),
        None => Err("no output".to_owned()),
    };
    if read.is_err() || output.len() as u64 > MAX_ANSWER_BYTES {
        let _ = child.kill();
        let _ = child.wait();
        return Err(failed(read.err().unwrap_or_else(|| {
            format!("it printed more than {} KiB", MAX_ANSWER_BYTES / 1024)
        })));
    }
    let status = child.wait().map_err(|e| failed(e.to_string()))?;
    if !status.success() {
        return Err(failed(status.to_string()));
    }
    let text = String::from_utf8_lossy(&output);
    let token = text.lines().next().unwrap_or_default().trim();
    if token.is_empty() {
        return Err(failed("it printed no token".into()));
    }
    if !is_token(token) {
        return Err(failed(
            "its first line is not a token (spaces or control characters)".into(),
        ));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::oauth::{Mechanism, OAuthSettings, TokenSource};

    #[test]
    fn token_endpoint_answers_are_read_and_refusals_classified() {
        let granted = read_answer(
            200,
            br#"{"access_token":"at-1","token_type":"bearer","expires_in":3599,"refresh_token":"rt-2"}"#,
        );
        assert_eq!(
            granted,
            Answer::Granted(Granted {
                access_token: "at-1".into(),
                expires_in: Some(3599),
                refresh_token: Some("rt-2".into()),
            })
        );
        let Answer::Granted(g) = read_answer(
            200,
            br#"{"access_token":"tok-xyz","token_type":"Bearer","expires_in":"60"}"#,
        ) else {
            panic!()
        };
        assert_eq!((g.expires_in, g.refresh_token.clone()), (Some(60), None));
        assert!(!format!("{g:?}").contains("tok-xyz"), "{g:?}");
        assert!(matches!(
            read_answer(400, br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#),
            Answer::GrantRefused(r) if r == "invalid_grant: Token has been expired or revoked."
        ));
        assert!(matches!(
            read_answer(401, br#"{"error":"invalid_client"}"#),
            Answer::ClientRefused(_)
        ));
        assert!(matches!(
            read_answer(400, br#"{"error":"unauthorized_client"}"#),
            Answer::ClientRefused(_)
        ));
        assert!(matches!(
            read_answer(401, b"nope"),
            Answer::ClientRefused(_)
        ));
        assert!(matches!(
            read_answer(503, b"<html>busy</html>"),
            Answer::Failed(r) if r == "HTTP 503"
        ));
        for bad in [
            &br#"{"access_token":"a b","token_type":"Bearer"}"#[..],
            br#"{"access_token":"","token_type":"Bearer"}"#,
            br#"{"access_token":"at","token_type":"mac"}"#,
            br#"{"token_type":"Bearer"}"#,
            br#"[1,2]"#,
            b"\xff\xfe",
        ] {
            assert!(
                matches!(read_answer(200, bad), Answer::Failed(_)),
                "{bad:?}"
            );
        }
        let Answer::Granted(g) = read_answer(200, br#"{"access_token":"at","expires_in":1e30}"#)
        else {
            panic!()
        };
        assert_eq!(
            g.expires_in, None,
            "a lifetime that is not a whole number is unknown"
        );
        let Answer::Granted(g) =
            read_answer(200, br#"{"access_token":"at","expires_in":99999999999}"#)
        else {
            panic!()
        };
        assert_eq!(g.expires_in, Some(MAX_LIFETIME_SECONDS));
    }

    #[test]
    fn cached_tokens_are_replaced_before_they_expire() {
        assert_eq!(refresh_after(1000, Some(3600)), Some(1000 + 3600 - 60));
        assert_eq!(refresh_after(1000, Some(60)), Some(1000 + 30));
        assert_eq!(refresh_after(1000, Some(1)), Some(1001));
        assert_eq!(refresh_after(1000, Some(0)), Some(1000));
        assert_eq!(refresh_after(1000, None), None);
        assert_eq!(refresh_after(i64::MAX - 5, Some(3600)), Some(i64::MAX));
    }

    #[test]
    fn cache_names_keep_users_clients_and_endpoints_apart() {
        let a = cache_name("https://idp.test/token", "client", "a@example.com");
        assert_eq!(
            a,
            cache_name("https://idp.test/token", "client", "A@Example.com")
        );
        for other in [
            cache_name("https://idp.test/token", "client", "b@example.com"),
            cache_name("https://idp.test/token", "client2", "a@example.com"),
            cache_name("https://idp2.test/token", "client", "a@example.com"),
            cache_name("https://idp.test/token", "client\0a@example.com", ""),
        ] {
            assert_ne!(a, other);
        }
        assert!(a.ends_with(".json") && !a.contains("example"));
    }

    #[test]
    fn forms_are_url_encoded() {
        assert_eq!(
            form_encode(&[("grant_type", "refresh_token"), ("x", "a b&c=d/é")]),
            "grant_type=refresh_token&x=a+b%26c%3Dd%2F%C3%A9"
        );
    }

    #[test]
    fn token_commands_are_bounded_and_checked() {
        assert_eq!(run_command("printf 'tok-1\\nmore\\n'").unwrap(), "tok-1");
        let err = |cmd: &str| run_command(cmd).unwrap_err().to_string();
        assert!(
            err("exit 3").contains("exit status: 3"),
            "{}",
            err("exit 3")
        );
        assert!(err("true").contains("no token"));
        assert!(err("echo 'a token'").contains("not a token"));
        assert!(err("head -c 200000 /dev/zero | tr '\\0' a").contains("more than 64 KiB"));
        // A command that never stops printing is stopped.
        assert!(err("yes").contains("more than 64 KiB"));
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let command = TokenSource::Command("oama access secret-account".into());
        assert_eq!(format!("{command:?}"), "Command(<redacted>)");
        let settings = OAuthSettings {
            mechanism: Mechanism::Auto,
            source: command,
        };
        let tokens = Tokens::new(
            &settings,
            "a@example.com",
            Path::new("/nonexistent"),
            crate::tls::client_config(&[]),
        )
        .unwrap();
        *lock(&tokens.current) = Some(("access-secret".into(), None));
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(tokens.token().unwrap(), "access-secret");
    }
}
