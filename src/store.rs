//! The state folder: accounts, pending issuances, certificates and locks. Every file is written
//! atomically (a temporary file in the same folder, synced, then renamed), files 0600 in 0700
//! folders. IO.
//!
//! ```text
//! <state>/                              SMIME_ACME_HOME or --state-dir
//!   accounts/<server-id>/account.key    the ES256 account key (PKCS#8 PEM), one per ACME server
//!   accounts/<server-id>/account.json   {"server": directory URL, "url": account URL}
//!   pending/<email>.json                the issuance in progress (resumed by the next run)
//!   certs/<email>/<issued>-<serial>/    one folder per certificate, never overwritten:
//!       key.pem  cert.pem  chain.pem  fullchain.pem  <email>.p12  [p12-password]
//!       [revoked.json]                  {"reason", "revoked_at"} once revoked with smime-acme
//!       [renewal-info.json]             the CA's last renewal window (RFC 9773) and next check
//!   certs/<email>/current               the name of the newest certificate folder
//!   certs/<email>/settings.json         the settings of the last issuance, reused by `renew`
//!   locks/<email>.lock                  held while a run works on that mailbox
//! ```
//! `<server-id>` is the directory URL's host and port plus a short hash of the whole URL.

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

/// A held per-mailbox lock; released when dropped (or by the OS when the process dies).
#[derive(Debug)]
pub struct MailboxLock {
    _file: File,
}

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

    pub fn pending_file(&self, email: &str) -> PathBuf {
        self.root
            .join("pending")
            .join(format!("{}.json", safe_name(email)))
    }

    pub fn certs_dir(&self, email: &str) -> PathBuf {
        self.root.join("certs").join(safe_name(email))
    }

    /// The settings `renew` reuses for `email`.
    pub fn settings_file(&self, email: &str) -> PathBuf {
        self.certs_dir(email).join("settings.json")
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

    /// The folder names under `certs/` that hold a current certificate, sorted.
    pub fn mailboxes(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = subfolders(&self.root.join("certs"))?
            .into_iter()
            .filter(|dir| dir.join("current").is_file())
            .filter_map(|dir| dir.file_name()?.to_str().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Takes the lock for `email`, waiting up to `wait` for another run to release it.
    pub fn lock_wait(&self, email: &str, wait: Duration) -> Result<MailboxLock, StoreError> {
        let deadline = Instant::now() + wait;
        loop {
            match self.lock(email) {
                Err(StoreError::Locked(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                other => return other,
            }
        }
    }

    /// Takes the lock for `email` without waiting.
    pub fn lock(&self, email: &str) -> Result<MailboxLock, StoreError> {
        let path = self
            .root
            .join("locks")
            .join(format!("{}.lock", safe_name(email)));
        create_dirs(path.parent().unwrap_or(&self.root))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StoreError::Write {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(MailboxLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked(email.to_owned())),
            Err(fs::TryLockError::Error(source)) => Err(StoreError::Write { path, source }),
        }
    }
}

/// The folders directly in `dir` (none if it does not exist).
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
        .map(|e| e.path())
        .collect())
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

/// Writes `bytes` to `path` atomically, 0600, creating the folder (0700) if needed. A reader sees
/// the old content or the new, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let err = |source| StoreError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .ok_or_else(|| err(std::io::Error::other("no parent folder")))?;
    create_dirs(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
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

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Write {
        path: path.to_owned(),
        source: e.into(),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// A file-name-safe form of an address or host: keeps letters, digits and `@._+-`.
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
    }
}
