//! Reading secrets: the mail password, the PKCS#12 password and the EAB key, from a file, the
//! environment, a command, or a prompt on a terminal; and generating the PKCS#12 password when
//! none is given. Never from the command line, never logged. IO.

use std::io::IsTerminal;
use std::path::Path;
use std::process::{Command, Stdio};

use ring::rand::{SecureRandom as _, SystemRandom};

use crate::settings::PasswordSource;

/// Secret files larger than this are not secret files.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The environment variables that carry secrets. Commands run by smime-acme (the password
/// command, deploy hooks) start without them: see [`without_secrets`].
pub const SECRET_ENV: [&str; 3] = [
    "SMIME_ACME_PASSWORD",
    "SMIME_ACME_P12_PASSWORD",
    crate::mail::oauth::REFRESH_TOKEN_ENV,
];

/// `command` with every secret-bearing variable taken out of the environment it inherits.
pub fn without_secrets(command: &mut Command) -> &mut Command {
    for name in SECRET_ENV {
        command.env_remove(name);
    }
    command
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read {what} from {path}: {reason}")]
    File {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("{what}: the password command failed: {reason}")]
    Command { what: &'static str, reason: String },
    #[error(
        "no {what}: give --password-file or --password-command, set SMIME_ACME_PASSWORD, or run on a terminal to be asked"
    )]
    Missing { what: &'static str },
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("the two {what}s typed differ")]
    Mismatch { what: &'static str },
}

/// The PKCS#12 password: from `file`, else SMIME_ACME_P12_PASSWORD, else (with `ask`, on a
/// terminal) typed twice, where an empty answer asks for a generated one. None means "generate
/// one" (see [`generate_password`]).
pub fn p12_password(file: Option<&Path>, ask: bool) -> Result<Option<String>, SecretError> {
    const WHAT: &str = "PKCS#12 password";
    if let Some(path) = file {
        return Ok(Some(from_file(WHAT, path)?));
    }
    if let Some(value) = std::env::var("SMIME_ACME_P12_PASSWORD")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return Ok(Some(value));
    }
    if !ask || !interactive() {
        return Ok(None);
    }
    let read = |question: &str| {
        rpassword::prompt_password(question)
            .map(|answer| answer.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|_| SecretError::Missing { what: WHAT })
    };
    let first = read("Password for the PKCS#12 bundle (empty: generate one): ")?;
    if first.is_empty() {
        return Ok(None);
    }
    if read("The same password again: ")? != first {
        return Err(SecretError::Mismatch { what: WHAT });
    }
    Ok(Some(first))
}

/// Characters of generated passwords: letters and digits without the look-alikes 0 O o 1 l I.
const PASSWORD_ALPHABET: &[u8] = b"23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
const PASSWORD_GROUPS: usize = 4;
const PASSWORD_GROUP_LEN: usize = 6;

/// A random password: 4 groups of 6 characters from a 56-character alphabet joined by `-`
/// (24 × log2(56) ≈ 139 bits). Only letters, digits and inner hyphens: nothing a shell or a
/// mail client's password box treats specially.
///
/// # Panics
/// If the operating system's random generator fails (a weaker password would be worse).
pub fn generate_password() -> String {
    let rng = SystemRandom::new();
    let n = PASSWORD_ALPHABET.len();
    // Largest multiple of n that fits a byte: bytes above it would bias the draw.
    let limit = 256 - 256 % n;
    let mut chars = Vec::with_capacity(PASSWORD_GROUPS * PASSWORD_GROUP_LEN);
    let mut buf = [0u8; 64];
    while chars.len() < PASSWORD_GROUPS * PASSWORD_GROUP_LEN {
        rng.fill(&mut buf)
            .expect("the system random number generator failed");
        chars.extend(
            buf.iter()
                .filter(|&&b| usize::from(b) < limit)
                .map(|&b| PASSWORD_ALPHABET[usize::from(b) % n] as char),
        );
    }
    chars.truncate(PASSWORD_GROUPS * PASSWORD_GROUP_LEN);
    chars
        .chunks(PASSWORD_GROUP_LEN)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// The first line of a small file.
pub fn from_file(what: &'static str, path: &Path) -> Result<String, SecretError> {
    let err = |reason: String| SecretError::File {
        what,
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.len() > MAX_SECRET_BYTES {
        return Err(err("the file is larger than 64 KiB".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    first_line(what, &text)
}

fn first_line(what: &'static str, text: &str) -> Result<String, SecretError> {
    let line = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r')
        .to_owned();
    if line.is_empty() {
        Err(SecretError::Empty { what })
    } else {
        Ok(line)
    }
}

/// The mail password from its source.
pub fn mail_password(source: &PasswordSource, user: &str) -> Result<String, SecretError> {
    const WHAT: &str = "mail password";
    match source {
        PasswordSource::File(path) => from_file(WHAT, path),
        PasswordSource::Env => first_line(
            WHAT,
            &std::env::var("SMIME_ACME_PASSWORD").unwrap_or_default(),
        ),
        PasswordSource::Command(cmd) => {
            let output = without_secrets(&mut Command::new("sh"))
                .arg("-c")
                .arg(cmd)
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| SecretError::Command {
                    what: WHAT,
                    reason: e.to_string(),
                })?;
            if !output.status.success() {
                return Err(SecretError::Command {
                    what: WHAT,
                    reason: output.status.to_string(),
                });
            }
            first_line(WHAT, &String::from_utf8_lossy(&output.stdout))
        }
        PasswordSource::Prompt => prompt(WHAT, &format!("Mail password for {user}: ")),
    }
}

/// Whether questions can be asked: stdin and stderr are a terminal.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// A yes/no question on the terminal (default no); None when there is no terminal to ask on.
pub fn ask_yes(question: &str) -> Option<bool> {
    use std::io::{BufRead, Write};
    if !interactive() {
        return None;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    Some(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Asks on the terminal, without echo.
pub fn prompt(what: &'static str, question: &str) -> Result<String, SecretError> {
    if !std::io::stdin().is_terminal() {
        return Err(SecretError::Missing { what });
    }
    let answer = rpassword::prompt_password(question).map_err(|_| SecretError::Missing { what })?;
    first_line(what, &answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle;
    use crate::testing::{EMAIL, fixtures};

    #[test]
    fn commands_start_without_the_secrets() {
        let mut command = Command::new("sh");
        for name in SECRET_ENV {
            command.env(name, "secret");
        }
        command.env("SMIME_ACME_SERVER", "https://ca.test/dir").arg("-c").arg(
            "echo \"${SMIME_ACME_PASSWORD:-none} ${SMIME_ACME_P12_PASSWORD:-none} $SMIME_ACME_SERVER\"",
        );
        let output = without_secrets(&mut command).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "none none https://ca.test/dir\n"
        );
    }

    #[test]
    fn generated_passwords_are_strong_distinct_and_usable() {
        let a = generate_password();
        let b = generate_password();
        assert_ne!(a, b);
        for pw in [&a, &b] {
            let letters: Vec<char> = pw.chars().filter(|&c| c != '-').collect();
            let bits = letters.len() as f64 * (PASSWORD_ALPHABET.len() as f64).log2();
            assert!(bits >= 128.0, "{bits} bits");
            assert!(
                letters
                    .iter()
                    .all(|c| PASSWORD_ALPHABET.contains(&(*c as u8))),
                "{pw}"
            );
            assert!(!pw.starts_with('-') && !pw.ends_with('-'), "{pw}");
            assert_eq!(pw.len(), 27, "{pw}");
        }
        let f = &fixtures()[1];
        let p12 = bundle::pkcs12(EMAIL, &f.key, &f.chain, &a, bundle::P12Format::Compat).unwrap();
        bundle::check_pkcs12(&p12, &a, &f.chain[0]).unwrap();
    }
}
