//! An NSS certificate database (Thunderbird's and Firefox's profiles, Evolution's and
//! Chromium's `~/.pki/nssdb`), changed with NSS's own tools, `pk12util` and `certutil`. Secrets
//! reach the tools only as files in a [`PrivateDir`] (0700, files 0600, removed when done, also
//! on failure), never on their command line. IO.

use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ring::rand::{SecureRandom as _, SystemRandom};

use crate::certificate;

#[derive(Debug, thiserror::Error)]
pub enum NssError {
    #[error(
        "{tool} (from the NSS tools) is not installed: install libnss3-tools (Debian, Ubuntu), nss-tools (Fedora, RHEL), mozilla-nss-tools (openSUSE) or nss (Arch)"
    )]
    ToolMissing { tool: &'static str },
    #[error("{} holds no NSS certificate database (cert9.db){hint}", .dir.display())]
    NoDatabase { dir: PathBuf, hint: &'static str },
    #[error(
        "the NSS database in {} is protected by a primary password: give --nss-password-file FILE, or run on a terminal to be asked",
        .0.display()
    )]
    PasswordNeeded(PathBuf),
    #[error("the primary password of the NSS database in {} is wrong", .0.display())]
    WrongPassword(PathBuf),
    #[error("{tool} failed on the NSS database in {}: {message}", .dir.display())]
    Tool {
        tool: &'static str,
        dir: PathBuf,
        message: String,
    },
    #[error("cannot make a private temporary folder in {}: {source}", .dir.display())]
    TempDir {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// A folder only this user can enter (0700), for files holding secrets (each 0600); removed
/// with everything in it when dropped. Made under `$XDG_RUNTIME_DIR` (memory, private to the
/// user) when set, else the system's temporary folder.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    pub fn new() -> Result<PrivateDir, NssError> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute() && dir.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let err = |source| NssError::TempDir {
            dir: base.clone(),
            source,
        };
        let rng = SystemRandom::new();
        let mut last = std::io::Error::other("no name left");
        for _ in 0..16 {
            let mut bytes = [0u8; 12];
            rng.fill(&mut bytes)
                .map_err(|_| err(std::io::Error::other("no random numbers")))?;
            let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let path = base.join(format!("smime-acme-{name}"));
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(PrivateDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = e,
                Err(e) => return Err(err(e)),
            }
        }
        Err(err(last))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a new file `name` (0600) holding `bytes`.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, NssError> {
        let path = self.path.join(name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| file.write_all(bytes).map(|()| file))
            .map_err(|source| NssError::TempDir {
                dir: self.path.clone(),
                source,
            })?;
        file.flush().map_err(|source| NssError::TempDir {
            dir: self.path.clone(),
            source,
        })?;
        Ok(path)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// An NSS database in SQL format (`cert9.db`, `key4.db`), opened with a file holding its
/// primary password (empty when it has none).
#[derive(Debug)]
pub struct NssDb {
    dir: PathBuf,
    password_file: PathBuf,
}

/// What [`NssDb::probe`] found out about the primary password.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// The database opens with the password file given (or needs no password).
    Open,
    /// It has a primary password, and the file does not hold it.
    BadPassword,
}

impl NssDb {
    /// The database in `dir`, which must hold `cert9.db`; `hint` ends the error otherwise.
    pub fn open(dir: &Path, password_file: PathBuf, hint: &'static str) -> Result<NssDb, NssError> {
        if !dir.join("cert9.db").is_file() {
            return Err(NssError::NoDatabase {
                dir: dir.to_owned(),
                hint,
            });
        }
        Ok(NssDb {
            dir: dir.to_owned(),
            password_file,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `sql:DIR`, as NSS's tools name a database.
    pub fn spec(&self) -> OsString {
        let mut spec = OsString::from("sql:");
        spec.push(&self.dir);
        spec
    }

    /// Another password file (after the user was asked).
    pub fn set_password_file(&mut self, path: PathBuf) {
        self.password_file = path;
    }

    /// Lists the keys, which needs the primary password: tells whether the password file opens
    /// the database.
    pub fn probe(&self) -> Result<Probe, NssError> {
        let out = self.certutil(&["-K".as_ref(), "-f".as_ref(), self.password_file.as_os_str()])?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains("SEC_ERROR_BAD_PASSWORD") {
            return Ok(Probe::BadPassword);
        }
        // An empty key store makes certutil -K fail with "no keys found": that is fine.
        if out.status.success() || text.contains("no keys found") {
            Ok(Probe::Open)
        } else {
            Err(self.failed("certutil", &out))
        }
    }

    /// Imports a PKCS#12 (its keys, their certificates and the CA certificates in it; CA
    /// certificates get no trust) with the password in `p12_password_file`. Importing what is
    /// already there changes nothing.
    pub fn import_pkcs12(&self, p12: &Path, p12_password_file: &Path) -> Result<(), NssError> {
        let args: [&OsStr; 8] = [
            "-i".as_ref(),
            p12.as_os_str(),
            "-d".as_ref(),
            &self.spec(),
            "-w".as_ref(),
            p12_password_file.as_os_str(),
            "-k".as_ref(),
            self.password_file.as_os_str(),
        ];
        let out = run("pk12util", &args)?;
        if out.status.success() {
            Ok(())
        } else if String::from_utf8_lossy(&out.stderr).contains("SEC_ERROR_BAD_PASSWORD") {
            Err(NssError::WrongPassword(self.dir.clone()))
        } else {
            Err(self.failed("pk12util", &out))
        }
    }

    /// Adds the certificate in `pem_file` as `nickname`, trusted to issue email certificates
    /// (trust ",C,": not for TLS, not for code signing).
    pub fn trust_for_email(&self, pem_file: &Path, nickname: &str) -> Result<(), NssError> {
        let out = self.certutil(&[
            "-A".as_ref(),
            "-n".as_ref(),
            nickname.as_ref(),
            "-t".as_ref(),
            ",C,".as_ref(),
            "-i".as_ref(),
            pem_file.as_os_str(),
            "-f".as_ref(),
            self.password_file.as_os_str(),
        ])?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failed("certutil", &out))
        }
    }

    /// The certificates (DER) under `nickname`; empty when there is none.
    pub fn certificates(&self, nickname: &str) -> Result<Vec<Vec<u8>>, NssError> {
        let out = self.certutil(&[
            "-L".as_ref(),
            "-n".as_ref(),
            nickname.as_ref(),
            "-a".as_ref(),
        ])?;
        if !out.status.success() {
            return Ok(Vec::new());
        }
        Ok(certificate::parse_pem_chain(&out.stdout).unwrap_or_default())
    }

    /// Every certificate nickname in the database (`certutil -L`).
    pub fn nicknames(&self) -> Result<Vec<String>, NssError> {
        let out = self.certutil(&["-L".as_ref()])?;
        if !out.status.success() {
            return Err(self.failed("certutil", &out));
        }
        Ok(parse_listing(&String::from_utf8_lossy(&out.stdout)))
    }

    /// The nickname under which the database holds `der`: `expected` when it is there, else
    /// any nickname holding it (NSS keeps the nickname a certificate was first imported with).
    pub fn nickname_of(&self, der: &[u8], expected: &str) -> Result<Option<String>, NssError> {
        Ok(self.nicknames_of(&[(der, expected)])?.swap_remove(0))
    }

    /// [`NssDb::nickname_of`] for several certificates, looking through the database's other
    /// nicknames at most once.
    pub fn nicknames_of(&self, wanted: &[(&[u8], &str)]) -> Result<Vec<Option<String>>, NssError> {
        let mut found = Vec::with_capacity(wanted.len());
        for (der, expected) in wanted {
            let here = self.certificates(expected)?.iter().any(|c| c == der);
            found.push(here.then(|| (*expected).to_owned()));
        }
        if found.iter().all(Option::is_some) {
            return Ok(found);
        }
        for nickname in self.nicknames()? {
            let certs = self.certificates(&nickname)?;
            for ((der, _), slot) in wanted.iter().zip(found.iter_mut()) {
                if slot.is_none() && certs.iter().any(|c| c == der) {
                    *slot = Some(nickname.clone());
                }
            }
            if found.iter().all(Option::is_some) {
                break;
            }
        }
        Ok(found)
    }

    /// Whether the database holds a private key listed under `nickname` (`certutil -K`).
    pub fn has_key(&self, nickname: &str) -> Result<bool, NssError> {
        let out = self.certutil(&["-K".as_ref(), "-f".as_ref(), self.password_file.as_os_str()])?;
        let text = String::from_utf8_lossy(&out.stdout);
        // certutil -L may name the token before the nickname; certutil -K does not.
        let nickname = nickname
            .strip_prefix("NSS Certificate DB:")
            .unwrap_or(nickname);
        Ok(text
            .lines()
            .any(|line| line.trim_end().ends_with(nickname.trim())))
    }

    fn certutil(&self, args: &[&OsStr]) -> Result<Output, NssError> {
        let spec = self.spec();
        let mut all: Vec<&OsStr> = vec!["-d".as_ref(), &spec];
        all.extend_from_slice(args);
        run("certutil", &all)
    }

    fn failed(&self, tool: &'static str, out: &Output) -> NssError {
        let text = String::from_utf8_lossy(&out.stderr);
        let mut message: String = text.trim().chars().take(1000).collect();
        if message.is_empty() {
            message = out.status.to_string();
        }
        NssError::Tool {
            tool,
            dir: self.dir.clone(),
            message: message.replace('\n', "; "),
        }
    }
}

/// Runs an NSS tool without a terminal to ask on (stdin closed) and without smime-acme's
/// secret environment variables.
fn run(tool: &'static str, args: &[&OsStr]) -> Result<Output, NssError> {
    crate::secrets::without_secrets(&mut Command::new(tool))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => NssError::ToolMissing { tool },
            _ => NssError::Tool {
                tool,
                dir: PathBuf::new(),
                message: e.to_string(),
            },
        })
}

/// The nicknames in `certutil -L` output: each line after the header, without the trust
/// attributes column at its end.
fn parse_listing(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .filter(|line| {
            let t = line.trim();
            !t.starts_with("Certificate Nickname") && t != "SSL,S/MIME,JAR/XPI"
        })
        .filter_map(|line| {
            let line = line.trim_end();
            let (nickname, trust) = line.rsplit_once(char::is_whitespace)?;
            (trust.matches(',').count() == 2).then(|| nickname.trim().to_owned())
        })
        .filter(|nickname| !nickname.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_from_a_listing() {
        let text = "\nCertificate Nickname                                         Trust Attributes\n                                                             SSL,S/MIME,JAR/XPI\n\nstaff99@example.test (smime-acme Testbed Email Issuing CA, 2027-01-01) u,u,u\nsmime-acme Testbed Email Issuing CA - smime-acme testbed     ,,   \nRoot CA                                                      CT,C,C\n";
        assert_eq!(
            parse_listing(text),
            [
                "staff99@example.test (smime-acme Testbed Email Issuing CA, 2027-01-01)",
                "smime-acme Testbed Email Issuing CA - smime-acme testbed",
                "Root CA"
            ]
        );
    }

    #[test]
    fn a_private_dir_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = PrivateDir::new().unwrap();
        let path = dir.path().to_owned();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let file = dir.write("secret", b"x").unwrap();
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(dir.write("secret", b"y").is_err(), "never overwrites");
        drop(dir);
        assert!(!path.exists());
    }
}
