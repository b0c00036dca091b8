//! `smime-acme install EMAIL --thunderbird | --nss-db DIR`: the current key and chain (with
//! --all-keys every kept key) put into an NSS database, Thunderbird's or another mail client's,
//! with NSS's own pk12util, refused while Thunderbird has the profile open. Also the short
//! per-client import instructions shown after `obtain` and by `show`.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::Outcome;
use crate::bundle::{self, P12Format};
use crate::cli::{GlobalArgs, InstallArgs};
use crate::mozilla::{self, ProfilesIni};
use crate::nss::{NssDb, PrivateDir, Probe};
use crate::output::Output;
use crate::settings;
use crate::store::{self, Store};
use crate::{Error, certificate, pem, secrets};

/// Where Thunderbird keeps `profiles.ini`, under the home folder: its own, the older shared
/// Mozilla one, the Snap's and the Flatpak's.
pub const THUNDERBIRD_HOMES: [&str; 4] = [
    ".thunderbird",
    ".mozilla/thunderbird",
    "snap/thunderbird/common/.thunderbird",
    ".var/app/org.mozilla.Thunderbird/.thunderbird",
];

pub fn run(global: &GlobalArgs, args: &InstallArgs, out: &Output) -> Result<Outcome, Error> {
    let store = Store::new(settings::state_dir(global.state_dir.as_deref())?);
    let email = args.email.trim();
    let entries = super::export::keys_and_chains(&store, email, args.all_keys, out)?;
    let root = match &args.trust_root {
        Some(path) => Some(read_root(path, &entries[0].1)?),
        None => None,
    };
    let (dir, profile, hint) = match &args.nss_db {
        Some(dir) => (
            dir.clone(),
            false,
            ": create one with certutil -N -d sql:DIR, or name the folder that holds it",
        ),
        None => (
            thunderbird_profile(args.profile.as_deref())?,
            true,
            ": start Thunderbird once with this profile, close it, then run this again",
        ),
    };
    // Thunderbird (or Firefox) must not have the profile open: it would not see the import,
    // and could write over it.
    check_not_in_use(&dir)?;

    let private = PrivateDir::new()?;
    let db = open_database(&dir, hint, args.nss_password_file.as_deref(), &private)?;

    // A one-time PKCS#12 of every key, for pk12util, with a random password.
    let password = secrets::generate_password();
    let refs: Vec<(&[u8], &[Vec<u8>])> = entries
        .iter()
        .map(|(key, chain)| (key.as_slice(), chain.as_slice()))
        .collect();
    let leaves: Vec<&[u8]> = entries.iter().map(|(_, c)| c[0].as_slice()).collect();
    let p12 = bundle::pkcs12_many(email, &refs, &password, P12Format::Compat)?;
    bundle::check_pkcs12_many(&p12, &password, &leaves)?;
    let names = bundle::friendly_names(email, &leaves)?;
    let p12_file = private.write("bundle.p12", &p12)?;
    let p12_password_file = private.write("bundle-password", format!("{password}\n").as_bytes())?;

    let wanted: Vec<(&[u8], &str)> = leaves
        .iter()
        .zip(&names)
        .map(|(leaf, name)| (*leaf, name.as_str()))
        .collect();
    let present = db.nicknames_of(&wanted)?;
    out.phase(&format!("importing into {}", dir.display()));
    db.import_pkcs12(&p12_file, &p12_password_file)
        .map_err(|e| explain_refused_key(e, &leaves))?;

    let mut certificates = Vec::new();
    let imported = db.nicknames_of(&wanted)?;
    for (((leaf, name), was_there), nickname) in
        leaves.iter().zip(&names).zip(present).zip(imported)
    {
        let nickname = nickname.ok_or_else(|| {
            Error::Internal(format!(
                "pk12util reported success, but {} does not hold the certificate {name:?}",
                dir.display()
            ))
        })?;
        if !db.has_key(&nickname)? {
            return Err(Error::Internal(format!(
                "pk12util reported success, but {} holds no key for {nickname:?}",
                dir.display()
            )));
        }
        let info = certificate::describe(leaf).map_err(|e| Error::Internal(e.to_string()))?;
        certificates.push(json!({
            "nickname": nickname,
            "serial": info.serial,
            "not_after": info.not_after_rfc3339(),
            "new": was_there.is_none(),
        }));
    }

    let mut trusted = Value::Null;
    if let Some((der, subject, nickname)) = root {
        let nickname = db.nickname_of(&der, &nickname)?.unwrap_or(nickname);
        let file = private.write("root.pem", pem::block("CERTIFICATE", &der).as_bytes())?;
        db.trust_for_email(&file, &nickname)?;
        trusted = json!({"nickname": nickname, "subject": subject});
    }
    drop(private);

    let mut ca_certificates: Vec<String> = Vec::new();
    for (_, chain) in &entries {
        for der in chain.iter().skip(1) {
            let subject = subject_of(der);
            if !ca_certificates.contains(&subject) {
                ca_certificates.push(subject);
            }
        }
    }
    let database = db.spec().to_string_lossy().into_owned();
    let human = describe(
        email,
        &dir,
        profile,
        &database,
        &certificates,
        &ca_certificates,
        &trusted,
    );
    Ok(Outcome::one(
        human,
        json!({
            "status": "installed",
            "email": email,
            "target": if profile { "thunderbird" } else { "nss-db" },
            "profile": if profile { Some(&dir) } else { None },
            "database": database,
            "certificates": certificates,
            "ca_certificates": ca_certificates,
            "trusted_root": trusted,
        }),
    ))
}

/// The database in `dir`, opened with its primary password: from `password_file`, else asked
/// on a terminal when it has one. The password reaches NSS's tools only as a file in `private`.
fn open_database(
    dir: &Path,
    hint: &'static str,
    password_file: Option<&Path>,
    private: &PrivateDir,
) -> Result<NssDb, Error> {
    use crate::nss::NssError;
    let given = match password_file {
        Some(path) => Some(secrets::from_file("NSS database password", path)?),
        None => None,
    };
    // An empty password file opens a database without a primary password (the file is then
    // not read); a database not yet set up gets an empty password, as Thunderbird gives it.
    let secret = given
        .as_deref()
        .map(|p| format!("{p}\n"))
        .unwrap_or_default();
    let mut db = NssDb::open(dir, private.write("db-password", secret.as_bytes())?, hint)?;
    if db.probe()? == Probe::Open {
        return Ok(db);
    }
    if given.is_some() {
        return Err(NssError::WrongPassword(dir.to_owned()).into());
    }
    if !secrets::interactive() {
        return Err(NssError::PasswordNeeded(dir.to_owned()).into());
    }
    let typed = secrets::prompt(
        "NSS database password",
        &format!(
            "Primary password of the NSS database in {}: ",
            dir.display()
        ),
    )?;
    db.set_password_file(private.write("db-password-typed", format!("{typed}\n").as_bytes())?);
    match db.probe()? {
        Probe::Open => Ok(db),
        Probe::BadPassword => Err(NssError::WrongPassword(dir.to_owned()).into()),
    }
}

fn describe(
    email: &str,
    dir: &Path,
    profile: bool,
    database: &str,
    certificates: &[Value],
    ca_certificates: &[String],
    trusted: &Value,
) -> String {
    let mut human = if profile {
        format!(
            "Installed for {email} into the Thunderbird profile {}:\n",
            dir.display()
        )
    } else {
        format!("Installed for {email} into the NSS database {database}:\n")
    };
    for cert in certificates {
        human.push_str(&format!(
            "  {}  {}\n      serial {}, valid to {}\n",
            if cert["new"] == true {
                "added  "
            } else {
                "present"
            },
            cert["nickname"].as_str().unwrap_or(""),
            cert["serial"].as_str().unwrap_or(""),
            cert["not_after"].as_str().unwrap_or(""),
        ));
    }
    for subject in ca_certificates {
        human.push_str(&format!("  CA       {subject}\n"));
    }
    if let Some(nickname) = trusted["nickname"].as_str() {
        human.push_str(&format!(
            "  trusted  {nickname}, to issue email certificates\n"
        ));
    }
    if profile {
        human.push_str(
            "Choose it in Thunderbird: Account Settings > End-To-End Encryption > S/MIME.\n",
        );
    }
    human
}

/// pk12util's refusal of a key, explained when the key is Ed25519 (which NSS 3.87, as in
/// Debian 12, cannot import from a PKCS#12, and Thunderbird cannot use for S/MIME).
fn explain_refused_key(error: crate::nss::NssError, leaves: &[&[u8]]) -> Error {
    let ed25519 = leaves
        .iter()
        .any(|leaf| certificate::describe(leaf).is_ok_and(|info| info.key_type == "ed25519"));
    match error {
        crate::nss::NssError::Tool { message, .. }
            if ed25519 && message.contains("SEC_ERROR_PKCS12_UNABLE_TO_IMPORT_KEY") =>
        {
            Error::Usage(format!(
                "NSS refused the Ed25519 key ({message}): for Thunderbird, get an RSA or ECDSA certificate (obtain --key-type rsa3072 or p256)"
            ))
        }
        other => other.into(),
    }
}

/// The subject of a DER certificate as text (its hex when it does not parse).
fn subject_of(der: &[u8]) -> String {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert.subject().to_string(),
        Err(_) => String::from("(unreadable certificate)"),
    }
}

/// The root certificate in `path` (PEM, its first certificate): its DER, subject and the
/// nickname to give it. It must be the last certificate of `chain` or have issued it (name and
/// signature), so that no other CA is trusted by mistake.
fn read_root(path: &Path, chain: &[Vec<u8>]) -> Result<(Vec<u8>, String, String), Error> {
    let usage = |why: String| Error::Usage(format!("--trust-root {}: {why}", path.display()));
    let pem =
        store::read_optional(path, 1024 * 1024)?.ok_or_else(|| usage("no such file".into()))?;
    let der = certificate::parse_pem_chain(&pem)
        .map_err(|e| usage(e.to_string()))?
        .swap_remove(0);
    let (_, root) =
        X509Certificate::from_der(&der).map_err(|e| usage(format!("unreadable: {e}")))?;
    let top_der = chain.last().ok_or_else(|| usage("empty chain".into()))?;
    let (_, top) = X509Certificate::from_der(top_der)
        .map_err(|e| Error::Internal(format!("the kept chain does not parse: {e}")))?;
    let issued = top_der == &der
        || (top.issuer() == root.subject()
            && top.verify_signature(Some(root.public_key())).is_ok());
    if !issued {
        return Err(usage(format!(
            "{} did not issue the certificate chain of this address (it ends at {}, issued by {})",
            root.subject(),
            top.subject(),
            top.issuer()
        )));
    }
    let nickname = root
        .subject()
        .iter_common_name()
        .chain(root.subject().iter_organization())
        .find_map(|a| a.as_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| root.subject().to_string());
    Ok((der.clone(), root.subject().to_string(), nickname))
}

/// The Thunderbird profile to install into: `profile` (a folder, or a name in profiles.ini),
/// else the one Thunderbird starts with.
fn thunderbird_profile(profile: Option<&Path>) -> Result<PathBuf, Error> {
    let home =
        dirs::home_dir().ok_or_else(|| Error::Usage("no home folder (HOME is not set)".into()))?;
    let mut found: Vec<ProfilesIni> = Vec::new();
    for relative in THUNDERBIRD_HOMES {
        let base = home.join(relative);
        let Ok(Some(bytes)) =
            store::read_optional(&base.join("profiles.ini"), mozilla::MAX_PROFILES_INI)
        else {
            continue;
        };
        found.push(ProfilesIni::parse(&base, &String::from_utf8_lossy(&bytes)));
    }
    let all: Vec<&mozilla::Profile> = found.iter().flat_map(|ini| &ini.profiles).collect();
    let listing = || {
        all.iter()
            .map(|p| format!("{} ({})", p.name, p.path.display()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(wanted) = profile {
        if wanted.is_dir() {
            return Ok(wanted.to_owned());
        }
        let matches: Vec<&&mozilla::Profile> = all
            .iter()
            .filter(|p| p.name.as_str() == wanted.as_os_str())
            .collect();
        return match matches.as_slice() {
            [one] => Ok(one.path.clone()),
            [] => Err(Error::Usage(format!(
                "--profile {}: no such folder, and no Thunderbird profile of that name (profiles: {})",
                wanted.display(),
                if all.is_empty() {
                    "none".into()
                } else {
                    listing()
                }
            ))),
            _ => Err(Error::Usage(format!(
                "--profile {}: several Thunderbird profiles have that name: give the folder ({})",
                wanted.display(),
                listing()
            ))),
        };
    }
    if all.is_empty() {
        return Err(Error::Usage(format!(
            "no Thunderbird profile found (no profiles.ini in ~/{}): start Thunderbird once, or give --profile DIR or --nss-db DIR",
            THUNDERBIRD_HOMES.join(", ~/")
        )));
    }
    let chosen = match (found.as_slice(), all.as_slice()) {
        (_, [only]) => Some(*only),
        ([one], _) => one.default_profile(),
        _ => None,
    };
    chosen.map(|p| p.path.clone()).ok_or_else(|| {
        Error::Usage(format!(
            "several Thunderbird profiles and no single default: give --profile with a name or folder of one of {}",
            listing()
        ))
    })
}

/// Fails with exit status 4 while Thunderbird (or Firefox) has the profile in `dir` open: its
/// `lock` symlink names a live process of this computer ("IP:+PID") or a process on another
/// computer, or a process holds a lock on `.parentlock` (which also covers a Flatpak or Snap
/// Thunderbird, whose PIDs are not this system's). A `lock` left by a process that is gone
/// is stale and ignored, as Thunderbird itself does.
fn check_not_in_use(dir: &Path) -> Result<(), Error> {
    let in_use = |why: String| {
        Error::ProfileInUse(format!(
            "{why}: close Thunderbird (or whatever uses the profile {}), then run this again",
            dir.display()
        ))
    };
    let lock = dir.join("lock");
    if let Ok(target) = std::fs::read_link(&lock) {
        let target = target.to_string_lossy();
        match mozilla::parse_lock_target(&target) {
            Some(owner) if is_this_computer(owner.address) => {
                if process_alive(owner.pid) {
                    return Err(in_use(format!(
                        "Thunderbird is running (process {} holds {})",
                        owner.pid,
                        lock.display()
                    )));
                }
            }
            Some(owner) => {
                return Err(in_use(format!(
                    "the profile is in use on another computer ({} holds {})",
                    owner.address,
                    lock.display()
                )));
            }
            None => {
                return Err(in_use(format!(
                    "{} is held ({target:?}); if Thunderbird is not running, remove it",
                    lock.display()
                )));
            }
        }
    }
    let parent_lock = dir.join(".parentlock");
    if let Ok(meta) = std::fs::metadata(&parent_lock)
        && let Ok(locks) = std::fs::read_to_string("/proc/locks")
        && mozilla::proc_locks_hold(&locks, meta.ino())
    {
        return Err(in_use(format!(
            "Thunderbird is running (a process holds a lock on {})",
            parent_lock.display()
        )));
    }
    Ok(())
}

/// Whether process `pid` exists; when that cannot be told (no /proc), it is assumed to.
fn process_alive(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new("/proc").join(pid.to_string()).exists()
}

/// Whether `address` is one of this computer's, as Thunderbird writes it into the lock: a
/// loopback address, or one the host name resolves to.
fn is_this_computer(address: std::net::Ipv4Addr) -> bool {
    use std::net::ToSocketAddrs as _;
    if address.is_loopback() || address.is_unspecified() {
        return true;
    }
    let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") else {
        return false;
    };
    (name.trim(), 0)
        .to_socket_addrs()
        .map(|mut addrs| addrs.any(|a| a.ip() == std::net::IpAddr::V4(address)))
        .unwrap_or(false)
}

/// A few lines on importing the bundle `p12` of `email` into each mail client: the command
/// where there is one.
pub fn hints(email: &str, p12: &Path) -> String {
    let file = p12
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "Into your mail client:\n  \
         Thunderbird      smime-acme install {email} --thunderbird\n  \
         KMail (gpgsm)    gpgsm --import {path}\n  \
         Apple Mail       security import {file} -k ~/Library/Keychains/login.keychain-db -f pkcs12   (on the Mac)\n  \
         iPhone, iPad     smime-acme export {email} --format mobileconfig --out {email}.mobileconfig, then open it there\n  \
         Outlook          certutil -user -importpfx {file}   (on Windows)\n",
        email = shell_word(email),
        path = shell_word(&p12.to_string_lossy()),
        file = shell_word(&file),
    )
}

/// `word` quoted for a POSIX shell when it needs to be.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_quote_what_a_shell_would_split() {
        let text = hints(
            "a@example.test",
            Path::new("/s/certs/a@example.test/1-ab/a@example.test.p12"),
        );
        assert!(text.contains("gpgsm --import /s/certs/a@example.test/1-ab/a@example.test.p12\n"));
        assert!(text.contains("certutil -user -importpfx a@example.test.p12 "));
        assert!(text.contains("smime-acme install a@example.test --thunderbird\n"));
        assert!(text.lines().count() <= 6, "{text}");
        assert_eq!(shell_word("my dir/it's"), "'my dir/it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn a_stale_lock_is_not_in_use_and_a_live_one_is() {
        let dir = crate::testing::TempDir::new();
        let path = &dir.0;
        assert!(check_not_in_use(path).is_ok(), "no lock at all");
        std::os::unix::fs::symlink("127.0.0.1:+4194305", path.join("lock")).unwrap();
        assert!(
            check_not_in_use(path).is_ok(),
            "a PID above any pid_max is dead"
        );
        std::fs::remove_file(path.join("lock")).unwrap();
        std::os::unix::fs::symlink(
            format!("127.0.1.1:+{}", std::process::id()),
            path.join("lock"),
        )
        .unwrap();
        let err = check_not_in_use(path).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::LOCKED);
        assert!(err.to_string().contains("close Thunderbird"), "{err}");
    }
}
