//! The state folder: accounts, pending issuances, certificates and locks. Every file is written
//! atomically (a temporary file in the same folder, synced, then renamed), files 0600 in 0700
//! folders. IO.
//!
//! ```text
//! <state>/                              SMIME_ACME_HOME or --state-dir
//!   accounts/<server-id>/account.key    the ES256 account key (PKCS#8 PEM), one per ACME server
//!   accounts/<server-id>/account.json   {"server": directory URL, "url": account URL}
//!   accounts/<server-id>/learned.json   what was learned about that CA: {"server", "token_join":
//!                                       "string"|"bytes", "mail_timing": "on-authorization"|
//!                                       "after-post"} (see `issuance::learn`)
//!   pending/<name>.json                 the issuance in progress (resumed by the next run)
//!   answered/<name>.json                Message-IDs of the challenge mails answered for that address
//!   certs/<name>/<issued>-<serial>/     one folder per certificate, never overwritten:
//!       key.pem  cert.pem  chain.pem  fullchain.pem  <email>.p12  [p12-password]
//!       [revoked.json]                  {"reason", "revoked_at"} once revoked with smime-acme
//!       [renewal-info.json]             the CA's last renewal window (RFC 9773) and next check
//!   certs/<name>/current                the name of the newest certificate folder
//!   certs/<name>/settings.json          the settings of the last issuance, reused by `renew`
//!   certs/<name>/p12-password           the PKCS#12 password of the last bundle, reused by renewals
//!   certs/<name>/p12-password.chosen    present when the user chose it (never written elsewhere)
//!   certs/<name>/forgotten.json         {"at"}: `forget` was run; `renew` skips the address
//!   locks/<name>.lock                   held while a run works on that mailbox
//!   locks/account-<server-id>.lock      held while an account is registered or its key changed
//!   oauth/<hash>.json                   an OAuth2 access token and when to replace it, one per
//!                                       token endpoint, client and user (the hash of the three)
//! ```
//! `<name>` is the address escaped by [`state_name`]: two addresses never share a name, and an
//! ordinary lowercase address is its own name. State written under the older, lossy names
//! ([`safe_name`]) is still found. `<server-id>` is the directory URL's host and port plus a
//! short hash of the whole URL. A temporary file is named `.<file>.<n>.<pid>.tmp`; those left by
//! processes that died are removed when a later run writes into the same folder.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("another smime-acme run is working on {0}")]
    Locked(String),
}

/// The state folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A held lock (on a mailbox, or on an account); released when dropped (or by the OS when the
/// process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// A held per-mailbox lock.
pub type MailboxLock = Lock;

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder for an ACME server's account.
    pub fn account_dir(&self, directory_url: &str) -> PathBuf {
        self.root.join("accounts").join(server_id(directory_url))
    }

    /// What was learned about the CA at `directory_url`.
    pub fn learned_file(&self, directory_url: &str) -> PathBuf {
        self.account_dir(directory_url).join("learned.json")
    }

    pub fn pending_file(&self, email: &str) -> PathBuf {
        let pending = self.root.join("pending");
        let new = pending.join(format!("{}.json", state_name(email)));
        let old = pending.join(format!("{}.json", safe_name(email)));
        if prefer_old(&new, &old) && !json_names_other(&old, email, |v| v["email"].as_str()) {
            old
        } else {
            new
        }
    }

    /// The Message-IDs of the challenge mails answered for the issuance of `email`.
    pub fn answered_file(&self, email: &str) -> PathBuf {
        let new = self
            .root
            .join("answered")
            .join(format!("{}.json", state_name(email)));
        // Earlier versions kept the list beside the pending file, as `<name>.answered.json`.
        let pending = self.root.join("pending");
        let old = pending.join(format!("{}.answered.json", safe_name(email)));
        let old_pending = pending.join(format!("{}.json", safe_name(email)));
        let is_list =
            || matches!(read_json::<serde_json::Value>(&old), Ok(Some(v)) if v.is_array());
        if prefer_old(&new, &old)
            && is_list()
            && !json_names_other(&old_pending, email, |v| v["email"].as_str())
        {
            old
        } else {
            new
        }
    }

    pub fn certs_dir(&self, email: &str) -> PathBuf {
        let certs = self.root.join("certs");
        let new = certs.join(state_name(email));
        let old = certs.join(safe_name(email));
        if prefer_old(&new, &old) && !kept_for_other(&old, email) {
            old
        } else {
            new
        }
    }

    /// The settings `renew` reuses for `email`.
    pub fn settings_file(&self, email: &str) -> PathBuf {
        self.certs_dir(email).join("settings.json")
    }

    /// The PKCS#12 password kept for `email`: renewals protect their bundles with it too.
    pub fn p12_password_file(&self, email: &str) -> PathBuf {
        self.certs_dir(email).join("p12-password")
    }

    /// Present when `email` was forgotten: `renew` leaves it alone unless named.
    pub fn forgotten_file(&self, email: &str) -> PathBuf {
        self.certs_dir(email).join("forgotten.json")
    }

    /// The newest certificate folder of `email`, if any.
    pub fn current(&self, email: &str) -> Result<Option<PathBuf>, StoreError> {
        let dir = self.certs_dir(email);
        let Some(name) = read_optional(&dir.join("current"), 4096)? else {
            return Ok(None);
        };
        let name = String::from_utf8_lossy(&name).trim().to_owned();
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(StoreError::Damaged {
                path: dir.join("current"),
                reason: "not a folder name".into(),
            });
        }
        Ok(Some(dir.join(name)))
    }

    /// Every certificate folder of `email`, oldest first.
    pub fn history(&self, email: &str) -> Result<Vec<PathBuf>, StoreError> {
        let mut dirs = subfolders(&self.certs_dir(email))?;
        dirs.sort();
        Ok(dirs)
    }

    /// The addresses whose folder under `certs/` holds a current certificate, sorted. Each
    /// leads back to its folder through [`Store::certs_dir`].
    pub fn mailboxes(&self) -> Result<Vec<String>, StoreError> {
        let mut addresses: Vec<String> = subfolders(&self.root.join("certs"))?
            .into_iter()
            .filter(|dir| dir.join("current").is_file())
            .filter_map(|dir| {
                let name = dir.file_name()?.to_str()?;
                address_of_folder(&dir, name)
            })
            .collect();
        addresses.sort();
        addresses.dedup();
        Ok(addresses)
    }

    /// Takes the lock for `email`, waiting up to `wait` for another run to release it.
    pub fn lock_wait(&self, email: &str, wait: Duration) -> Result<Lock, StoreError> {
        wait_for(wait, || self.lock(email))
    }

    /// Takes the lock for `email` without waiting.
    pub fn lock(&self, email: &str) -> Result<Lock, StoreError> {
        let locks = self.root.join("locks");
        let new = locks.join(format!("{}.lock", state_name(email)));
        let old = locks.join(format!("{}.lock", safe_name(email)));
        // A run of an earlier version may still hold the lock under the old name.
        let path = if prefer_old(&new, &old) { old } else { new };
        try_lock(&path, email)
    }

    /// Takes the lock on the account kept for `directory_url` (held while it is registered or
    /// its key changed), waiting up to `wait` for another run to release it.
    pub fn account_lock(&self, directory_url: &str, wait: Duration) -> Result<Lock, StoreError> {
        let path = self
            .root
            .join("locks")
            .join(format!("account-{}.lock", server_id(directory_url)));
        wait_for(wait, || {
            try_lock(&path, &format!("the account for {directory_url}"))
        })
    }
}

/// Retries `attempt` every 200 ms while it finds the lock held, for up to `wait`.
fn wait_for(
    wait: Duration,
    mut attempt: impl FnMut() -> Result<Lock, StoreError>,
) -> Result<Lock, StoreError> {
    // A wait too long to represent is a wait without end.
    let deadline = Instant::now().checked_add(wait);
    loop {
        match attempt() {
            Err(StoreError::Locked(_)) if deadline.is_none_or(|d| Instant::now() < d) => {
                std::thread::sleep(Duration::from_millis(200))
            }
            other => return other,
        }
    }
}

/// Takes the lock file at `path` without waiting; `what` names it in the error.
fn try_lock(path: &Path, what: &str) -> Result<Lock, StoreError> {
    if let Some(parent) = path.parent() {
        create_dirs(parent)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| StoreError::Write {
            path: path.to_owned(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Lock { _file: file }),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked(what.to_owned())),
        Err(fs::TryLockError::Error(source)) => Err(StoreError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Whether to keep using `old`, the name an earlier version gave a file or folder that is now
/// called `new`: only `old` exists.
fn prefer_old(new: &Path, old: &Path) -> bool {
    new != old && fs::symlink_metadata(new).is_err() && fs::symlink_metadata(old).is_ok()
}

/// Whether the JSON file at `path` names, through `field`, an address other than `email` (so
/// that an old, shared name is not taken over by the wrong address).
fn json_names_other(
    path: &Path,
    email: &str,
    field: impl Fn(&serde_json::Value) -> Option<&str>,
) -> bool {
    match read_json::<serde_json::Value>(path) {
        Ok(Some(value)) => {
            field(&value).is_some_and(|other| state_name(other) != state_name(email))
        }
        _ => false,
    }
}

/// The addresses named in the settings kept in a certificate folder.
fn kept_addresses(dir: &Path) -> Vec<String> {
    match read_json::<serde_json::Value>(&dir.join("settings.json")) {
        Ok(Some(value)) => value["mailbox"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Whether an old-named certificate folder was kept for an address other than `email`.
fn kept_for_other(dir: &Path, email: &str) -> bool {
    let kept = kept_addresses(dir);
    !kept.is_empty() && !kept.iter().any(|k| state_name(k) == state_name(email))
}

/// The address a folder under `certs/` is for: an escaped name unescaped; an old, lossy name
/// resolved through the settings kept in it.
fn address_of_folder(dir: &Path, name: &str) -> Option<String> {
    if name.contains('%') {
        return unescape_name(name).filter(|address| state_name(address) == name);
    }
    Some(
        kept_addresses(dir)
            .into_iter()
            .find(|k| state_name(k) == name || safe_name(k) == name)
            .unwrap_or_else(|| name.to_owned()),
    )
}

/// The folders directly in `dir` (none if it does not exist), leaving out those whose name
/// starts with a dot: folders being written (see [`publish_folder`]).
fn subfolders(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(|source| StoreError::Read {
            path: dir.to_owned(),
            source,
        })?,
    };
    Ok(entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect())
}

/// Where a folder is written before it is published under `final_path`'s name: beside it,
/// hidden (`.<name>.partial`), so that a folder is seen whole or not at all.
pub fn partial_folder(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(".{name}.partial"))
}

/// Renames the folder written at `partial_folder(final_path)` to `final_path`, durably.
pub fn publish_folder(final_path: &Path) -> Result<(), StoreError> {
    let err = |source| StoreError::Write {
        path: final_path.to_owned(),
        source,
    };
    fs::rename(partial_folder(final_path), final_path).map_err(err)?;
    if let Some(parent) = final_path.parent() {
        File::open(parent).and_then(|d| d.sync_all()).map_err(err)?;
    }
    Ok(())
}

/// Removes the folders in `dir` that a run killed while writing them left (`.<name>.partial`);
/// the caller holds the lock that such runs held.
pub fn remove_partial_folders(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".partial") {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Creates `dir` and its parents, each new one 0700.
pub fn create_dirs(dir: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// Beside a kept password file: present when the user chose that password (it is then never
/// written anywhere else).
pub fn chosen_marker(password_file: &Path) -> PathBuf {
    let mut name = password_file.file_name().unwrap_or_default().to_os_string();
    name.push(".chosen");
    password_file.with_file_name(name)
}

/// `PATH.password`: where the password of a bundle written to PATH goes.
pub fn password_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".password");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically, 0600, creating the folder (0700) if needed. A reader sees
/// the old content or the new, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let err = |source| StoreError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        // A bare file name is in the current folder.
        Some(dir) if dir.as_os_str().is_empty() => Path::new("."),
        Some(dir) => dir,
        None => return Err(err(std::io::Error::other("no parent folder"))),
    };
    create_dirs(dir)?;
    sweep_once(dir);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique within the process too: worker threads may write the same file at once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{n}.{}.tmp", std::process::id()));
    // A file under this process's own temporary name is a leftover of a dead process that had
    // the same pid (as in a container, where it is always the same).
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// How old a dead process's temporary file must be before it is removed: a write takes far
/// less, and a process in another PID namespace may look dead from here.
const STALE_AFTER: Duration = Duration::from_secs(300);

/// Removes, once per process and folder, the temporary files that processes which died while
/// writing left in `dir`. Only `.<file>.<pid>.tmp` files are touched, and only when no process
/// `<pid>` runs and the file is older than [`STALE_AFTER`]; without `/proc` nothing is removed.
fn sweep_once(dir: &Path) {
    static SWEPT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    {
        let mut swept = SWEPT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if swept.iter().any(|d| d == dir) {
            return;
        }
        swept.push(dir.to_owned());
    }
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let own = std::process::id();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temporary_file_pid) else {
            continue;
        };
        let stale = pid != own
            && !Path::new("/proc").join(pid.to_string()).exists()
            && entry.metadata().is_ok_and(|meta| {
                meta.is_file()
                    && meta
                        .modified()
                        .ok()
                        .and_then(|at| at.elapsed().ok())
                        .is_some_and(|age| age >= STALE_AFTER)
            });
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The process id in a temporary file name `.<file>.<pid>.tmp`.
fn temporary_file_pid(name: &str) -> Option<u32> {
    let (file, pid) = name
        .strip_prefix('.')?
        .strip_suffix(".tmp")?
        .rsplit_once('.')?;
    if file.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|&pid| pid > 0)
}

/// Like [`write_atomic`], but refuses to replace an existing file.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if path.exists() {
        return Err(StoreError::Write {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already exists"),
        });
    }
    write_atomic(path, bytes)
}

/// Reads a file of at most `limit` bytes; None when it does not exist.
pub fn read_optional(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let err = |source| StoreError::Read {
        path: path.to_owned(),
        source,
    };
    match fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e)),
        Ok(meta) if meta.len() > limit => {
            return Err(StoreError::Damaged {
                path: path.to_owned(),
                reason: format!("larger than {limit} bytes"),
            });
        }
        Ok(_) => {}
    }
    fs::read(path).map(Some).map_err(err)
}

/// Reads and parses a JSON file; None when it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match read_optional(path, 1024 * 1024)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Damaged {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
    }
}

/// Removes a file; one that is not there is no error.
pub fn remove(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Write {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Write {
        path: path.to_owned(),
        source: e.into(),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// The name of an address's files and folders in the state folder. Letters `a-z`, digits and
/// `@._+-` stay as they are; every other byte (capitals, `%`, `/`, bytes of non-ASCII
/// characters, ...) becomes `%XX`, as does a leading `.`. The domain is lowercased first, as
/// it names the same mailbox in any case. Two addresses that differ in anything but the case
/// of their domain never get the same name; [`unescape_name`] turns a name back.
pub fn state_name(email: &str) -> String {
    if email.is_empty() {
        // Not a name `unescape_name` accepts, and no address escapes to it.
        return "%".to_owned();
    }
    let (local, domain) = match email.rsplit_once('@') {
        Some((local, domain)) => (local, Some(domain.to_ascii_lowercase())),
        None => (email, None),
    };
    let mut name = String::with_capacity(email.len());
    let mut escape = |text: &str| {
        for byte in text.bytes() {
            let keep = byte.is_ascii_lowercase()
                || byte.is_ascii_digit()
                || (b"@._+-".contains(&byte) && !(byte == b'.' && name.is_empty()));
            if keep {
                name.push(char::from(byte));
            } else {
                name.push_str(&format!("%{byte:02X}"));
            }
        }
    };
    escape(local);
    if let Some(domain) = domain {
        escape("@");
        escape(&domain);
    }
    name
}

/// The address a [`state_name`] stands for; None for a name that is not one.
pub fn unescape_name(name: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(name.len());
    let mut rest = name.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(after.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &after[2..];
        } else {
            bytes.push(byte);
            rest = after;
        }
    }
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

/// A readable file name for an address or host: keeps letters, digits and `@._+-`, lowercased,
/// and replaces everything else with `_`. Lossy: different addresses can get the same name, so
/// it names only files that sit in a folder of their own (the PKCS#12 bundle) or carry a hash
/// (the account folder). The state folder of earlier versions used it for every name.
pub fn safe_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@._+-".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

/// `host_port-hash8` for a directory URL.
fn server_id(directory_url: &str) -> String {
    let host = directory_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("server");
    let digest = ring::digest::digest(&ring::digest::SHA256, directory_url.as_bytes());
    let hash: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // The hash keeps ids apart; the lossy readable part keeps existing account folders' names.
    format!("{}-{hash}", safe_name(&host.replace(':', "_")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "smime-acme-store-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn atomic_writes_are_private_and_replace_whole() {
        let root = temp();
        let path = root.join("a/b/key.pem");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(root.join("a/b")).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let leftovers: Vec<_> = fs::read_dir(root.join("a/b"))
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, ["key.pem"], "no temporary files stay behind");
        assert!(write_new(&path, b"three").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"two");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn json_round_trip_and_damage() {
        let root = temp();
        let path = root.join("x.json");
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), None);
        write_json(&path, &vec![1u32, 2]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), Some(vec![1, 2]));
        fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            read_json::<Vec<u32>>(&path),
            Err(StoreError::Damaged { .. })
        ));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn one_lock_per_mailbox() {
        let store = Store::new(temp());
        let held = store.lock("alice@example.test").unwrap();
        assert!(matches!(
            store.lock("alice@example.test"),
            Err(StoreError::Locked(_))
        ));
        let _other = store
            .lock("bob@example.test")
            .expect("another mailbox is free");
        let started = Instant::now();
        assert!(matches!(
            store.lock_wait("alice@example.test", Duration::from_millis(500)),
            Err(StoreError::Locked(_))
        ));
        assert!(started.elapsed() >= Duration::from_millis(500));
        let waiter = {
            let store = store.clone();
            std::thread::spawn(move || {
                store.lock_wait("alice@example.test", Duration::from_secs(20))
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
        waiter
            .join()
            .unwrap()
            .expect("a waiting run gets the lock once it is released");
        store.lock("alice@example.test").expect("released on drop");
        fs::remove_dir_all(store.root()).unwrap();
    }

    #[test]
    fn names_are_safe() {
        assert_eq!(safe_name("Alice@Example.test"), "alice@example.test");
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(
            server_id("https://127.0.0.1:10443/directory").len(),
            "127.0.0.1_10443-".len() + 8
        );
        assert_ne!(
            server_id("https://a/directory"),
            server_id("https://a/other")
        );
        for hostile in [
            "../../etc/passwd",
            ".hidden@x",
            "..",
            ".",
            "",
            "a/b@x",
            "\0@x",
        ] {
            let name = state_name(hostile);
            assert!(!name.is_empty() && !name.contains('/') && !name.starts_with('.'));
            assert_ne!(name, "..");
        }
    }

    #[test]
    fn state_names_escape_and_never_collide() {
        // Ordinary addresses keep the names earlier versions gave them.
        for ordinary in ["alice@example.test", "a.b+tag-1@mail.example.test"] {
            assert_eq!(state_name(ordinary), ordinary);
            assert_eq!(state_name(ordinary), safe_name(ordinary));
        }
        assert_eq!(state_name("Alice@x.test"), "%41lice@x.test");
        assert_eq!(state_name("a/b@x.test"), "a%2Fb@x.test");
        assert_eq!(state_name("a_b@x.test"), "a_b@x.test");
        assert_eq!(state_name(".a@x.test"), "%2Ea@x.test");
        assert_eq!(state_name("a%41@x.test"), "a%2541@x.test");
        assert_eq!(state_name("é@x.test"), "%C3%A9@x.test");
        // The domain names the same mailbox in any case.
        assert_eq!(state_name("alice@Example.TEST"), "alice@example.test");
        let pairs = [
            ("Alice@x.test", "alice@x.test"),
            ("a/b@x.test", "a_b@x.test"),
            ("a%41@x.test", "aA@x.test"),
            ("x@y.test.answered", "x@y.test"),
        ];
        for (a, b) in pairs {
            assert_ne!(state_name(a), state_name(b), "{a} and {b}");
        }
        for address in [
            "Alice@x.test",
            "a/b@x.test",
            "é@x.test",
            ".a@x.test",
            "a%41@x.test",
        ] {
            assert_eq!(
                unescape_name(&state_name(address)).as_deref(),
                Some(address)
            );
        }
        assert_eq!(unescape_name("%"), None);
        assert_eq!(unescape_name("%4"), None);
        assert_eq!(unescape_name("%zz@x"), None);
        assert_eq!(unescape_name("%FF@x"), None, "not UTF-8");

        let store = Store::new("/state");
        let (a, b) = ("x@y.test", "x@y.test.answered");
        assert_ne!(store.answered_file(a), store.pending_file(b));
        assert_eq!(
            store.answered_file(a),
            Path::new("/state/answered/x@y.test.json")
        );
        assert_ne!(
            store.pending_file("Alice@x.test"),
            store.pending_file("alice@x.test")
        );
        assert_ne!(store.certs_dir("a/b@x.test"), store.certs_dir("a_b@x.test"));
    }

    #[test]
    fn state_under_old_names_is_still_found() {
        let store = Store::new(temp());
        let root = store.root().to_owned();
        // Kept by an earlier version for Alice@x.test under its lossy name.
        write_json(
            &root.join("certs/alice@x.test/settings.json"),
            &serde_json::json!({"mailbox": {"Alice@x.test": {}}}),
        )
        .unwrap();
        fs::write(root.join("certs/alice@x.test/current"), "1-aa\n").unwrap();
        write_json(
            &root.join("pending/alice@x.test.json"),
            &serde_json::json!({"email": "Alice@x.test"}),
        )
        .unwrap();
        write_json(
            &root.join("pending/alice@x.test.answered.json"),
            &serde_json::json!(["m1@ca.test"]),
        )
        .unwrap();
        assert_eq!(
            store.certs_dir("Alice@x.test"),
            root.join("certs/alice@x.test")
        );
        assert_eq!(
            store.pending_file("Alice@x.test"),
            root.join("pending/alice@x.test.json")
        );
        assert_eq!(
            store.answered_file("Alice@x.test"),
            root.join("pending/alice@x.test.answered.json")
        );
        assert_eq!(store.mailboxes().unwrap(), ["Alice@x.test"]);
        // Another address with the same old name does not take it over.
        assert_eq!(
            store.certs_dir("ALICE@x.test"),
            root.join("certs/%41%4C%49%43%45@x.test")
        );
        assert_eq!(
            store.pending_file("ALICE@x.test"),
            root.join("pending/%41%4C%49%43%45@x.test.json")
        );
        // The old lock name is used while only it exists.
        let held = store.lock("Alice@x.test").unwrap();
        assert!(root.join("locks/%41lice@x.test.lock").exists());
        drop(held);
        fs::remove_file(root.join("locks/%41lice@x.test.lock")).unwrap();
        fs::create_dir_all(root.join("locks")).unwrap();
        fs::write(root.join("locks/alice@x.test.lock"), "").unwrap();
        let held = store.lock("Alice@x.test").unwrap();
        assert!(matches!(
            store.lock("Alice@x.test"),
            Err(StoreError::Locked(_))
        ));
        assert!(!root.join("locks/%41lice@x.test.lock").exists());
        drop(held);

        // Once the new name exists, it wins.
        write_json(
            &root.join("certs/%41lice@x.test/settings.json"),
            &serde_json::json!({"mailbox": {"Alice@x.test": {}}}),
        )
        .unwrap();
        assert_eq!(
            store.certs_dir("Alice@x.test"),
            root.join("certs/%41lice@x.test")
        );

        // An old lossy name is turned back into its address through the kept settings.
        write_json(
            &root.join("certs/a_b@x.test/settings.json"),
            &serde_json::json!({"mailbox": {"a/b@x.test": {}}}),
        )
        .unwrap();
        fs::write(root.join("certs/a_b@x.test/current"), "1-bb\n").unwrap();
        fs::write(root.join("certs/%41lice@x.test/current"), "2-aa\n").unwrap();
        fs::create_dir_all(root.join("certs/bob@x.test")).unwrap();
        fs::write(root.join("certs/bob@x.test/current"), "1-cc\n").unwrap();
        assert_eq!(
            store.mailboxes().unwrap(),
            ["Alice@x.test", "a/b@x.test", "bob@x.test"]
        );
        assert_eq!(store.certs_dir("a/b@x.test"), root.join("certs/a_b@x.test"));
        // Once that folder is a_b@x.test's own, a/b@x.test no longer reads it.
        write_json(
            &root.join("certs/a_b@x.test/settings.json"),
            &serde_json::json!({"mailbox": {"a_b@x.test": {}}}),
        )
        .unwrap();
        assert_eq!(
            store.certs_dir("a/b@x.test"),
            root.join("certs/a%2Fb@x.test")
        );
        assert_eq!(store.certs_dir("a_b@x.test"), root.join("certs/a_b@x.test"));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn stale_temporary_files_of_dead_processes_are_removed() {
        let root = temp();
        let dir = root.join("pending");
        fs::create_dir_all(&dir).unwrap();
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        let make = |name: &str, old: bool| {
            let file = File::create(dir.join(name)).unwrap();
            if old {
                file.set_modified(long_ago).unwrap();
            }
        };
        // No process has an id above the kernel's limit (at most 2^22).
        make(".a.json.99999999.tmp", true);
        make(".b.json.99999998.tmp", false);
        make(".c.json.1.tmp", true);
        make("notes.tmp", true);
        make(".d.json.tmp", true);
        write_atomic(&dir.join("e.json"), b"{}").unwrap();
        let mut left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".b.json.99999998.tmp",
                ".c.json.1.tmp",
                ".d.json.tmp",
                "e.json",
                "notes.tmp"
            ],
            "only the old file of a dead process goes"
        );
        assert_eq!(temporary_file_pid(".key.pem.123.tmp"), Some(123));
        assert_eq!(temporary_file_pid(".123.tmp"), None);
        assert_eq!(temporary_file_pid("key.pem.123.tmp"), None);
        assert_eq!(temporary_file_pid(".key.pem.12a.tmp"), None);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn waits_too_long_to_represent_do_not_panic() {
        let store = Store::new(temp());
        let held = store
            .lock_wait("alice@example.test", Duration::MAX)
            .unwrap();
        drop(held);
        let held = store
            .account_lock("https://ca.test/dir", Duration::MAX)
            .unwrap();
        drop(held);
        fs::remove_dir_all(store.root()).unwrap();
    }

    #[test]
    fn one_account_lock_per_server() {
        let store = Store::new(temp());
        let server = "https://ca.test/dir";
        let held = store.account_lock(server, Duration::ZERO).unwrap();
        assert!(
            store
                .root()
                .join(format!("locks/account-{}.lock", server_id(server)))
                .is_file()
        );
        let started = Instant::now();
        let err = store
            .account_lock(server, Duration::from_millis(400))
            .unwrap_err();
        assert!(matches!(&err, StoreError::Locked(what) if what.contains(server)));
        assert!(started.elapsed() >= Duration::from_millis(400));
        let _other = store
            .account_lock("https://other.test/dir", Duration::ZERO)
            .expect("another CA's account is free");
        let waiter = {
            let store = store.clone();
            std::thread::spawn(move || store.account_lock(server, Duration::from_secs(20)))
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(!waiter.is_finished(), "the second taker waits");
        drop(held);
        waiter
            .join()
            .unwrap()
            .expect("a waiting run gets the lock once it is released");
        fs::remove_dir_all(store.root()).unwrap();
    }
}
