//! The manifest of `provision`: the mailboxes to get certificates for, as TOML (`[defaults]` and
//! `[[mailbox]]` tables) or CSV (a header row naming the settings). Each entry becomes a
//! [`Request`] layered over the defaults; every problem names the file, the line and the field.
//! Pure, apart from reading the file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::settings::{MailboxConfig, Request, ServerConfig};

/// Manifests larger than this are refused.
const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// One mailbox of the manifest, the line its entry starts on, and the line of each setting (an
/// inherited one's in `[defaults]`).
#[derive(Debug, Clone)]
pub struct Entry {
    pub line: usize,
    pub request: Request,
    pub fields: BTreeMap<String, usize>,
}

impl Entry {
    /// The line where `field` is set for this mailbox, else the entry's first line.
    pub fn line_of(&self, field: &str) -> usize {
        self.fields.get(field).copied().unwrap_or(self.line)
    }
}

/// One entry as written: `email` and any obtain setting, in kebab-case.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    email: Option<String>,
    // The CA.
    server: Option<String>,
    ca_bundle: Option<std::path::PathBuf>,
    eab_kid: Option<String>,
    eab_hmac_key_file: Option<std::path::PathBuf>,
    token_join: Option<String>,
    challenge_timing: Option<String>,
    timeout: Option<String>,
    // The mailbox.
    imap: Option<String>,
    imap_security: Option<String>,
    imap_user: Option<String>,
    smtp: Option<String>,
    smtp_security: Option<String>,
    smtp_user: Option<String>,
    master_user: Option<String>,
    master_separator: Option<String>,
    password_file: Option<std::path::PathBuf>,
    password_command: Option<String>,
    oauth_mechanism: Option<String>,
    oauth_token_command: Option<String>,
    oauth_token_url: Option<String>,
    oauth_client_id: Option<String>,
    oauth_client_secret_file: Option<std::path::PathBuf>,
    oauth_refresh_token_file: Option<std::path::PathBuf>,
    #[serde(default)]
    watch_folder: Vec<String>,
    key_type: Option<String>,
    usage: Option<String>,
    p12_format: Option<String>,
    p12_password_file: Option<std::path::PathBuf>,
    challenge_auth: Option<String>,
    dns_server: Option<String>,
    out: Option<String>,
    deploy_hook: Option<String>,
    autoconfig_url: Option<String>,
}

impl Raw {
    /// This entry with what it leaves unset taken from `defaults`.
    fn over(self, defaults: &Raw) -> Raw {
        let d = defaults.clone();
        Raw {
            email: self.email.or(d.email),
            server: self.server.or(d.server),
            ca_bundle: self.ca_bundle.or(d.ca_bundle),
            eab_kid: self.eab_kid.or(d.eab_kid),
            eab_hmac_key_file: self.eab_hmac_key_file.or(d.eab_hmac_key_file),
            token_join: self.token_join.or(d.token_join),
            challenge_timing: self.challenge_timing.or(d.challenge_timing),
            timeout: self.timeout.or(d.timeout),
            imap: self.imap.or(d.imap),
            imap_security: self.imap_security.or(d.imap_security),
            imap_user: self.imap_user.or(d.imap_user),
            smtp: self.smtp.or(d.smtp),
            smtp_security: self.smtp_security.or(d.smtp_security),
            smtp_user: self.smtp_user.or(d.smtp_user),
            master_user: self.master_user.or(d.master_user),
            master_separator: self.master_separator.or(d.master_separator),
            password_file: self.password_file.or(d.password_file),
            password_command: self.password_command.or(d.password_command),
            oauth_mechanism: self.oauth_mechanism.or(d.oauth_mechanism),
            oauth_token_command: self.oauth_token_command.or(d.oauth_token_command),
            oauth_token_url: self.oauth_token_url.or(d.oauth_token_url),
            oauth_client_id: self.oauth_client_id.or(d.oauth_client_id),
            oauth_client_secret_file: self.oauth_client_secret_file.or(d.oauth_client_secret_file),
            oauth_refresh_token_file: self.oauth_refresh_token_file.or(d.oauth_refresh_token_file),
            watch_folder: if self.watch_folder.is_empty() {
                d.watch_folder
            } else {
                self.watch_folder
            },
            key_type: self.key_type.or(d.key_type),
            usage: self.usage.or(d.usage),
            p12_format: self.p12_format.or(d.p12_format),
            p12_password_file: self.p12_password_file.or(d.p12_password_file),
            challenge_auth: self.challenge_auth.or(d.challenge_auth),
            dns_server: self.dns_server.or(d.dns_server),
            out: self.out.or(d.out),
            deploy_hook: self.deploy_hook.or(d.deploy_hook),
            autoconfig_url: self.autoconfig_url.or(d.autoconfig_url),
        }
    }

    fn request(self, email: String) -> Request {
        Request {
            server: ServerConfig {
                url: self.server,
                ca_bundle: self.ca_bundle,
                eab_kid: self.eab_kid,
                eab_hmac_key_file: self.eab_hmac_key_file,
                agree_tos: None,
                token_join: self.token_join,
                challenge_timing: self.challenge_timing,
                timeout: self.timeout,
            },
            mailbox: MailboxConfig {
                imap: self.imap,
                imap_security: self.imap_security,
                imap_user: self.imap_user,
                smtp: self.smtp,
                smtp_security: self.smtp_security,
                smtp_user: self.smtp_user,
                master_user: self.master_user,
                master_separator: self.master_separator,
                password_file: self.password_file,
                password_command: self.password_command,
                oauth_mechanism: self.oauth_mechanism,
                oauth_token_command: self.oauth_token_command,
                oauth_token_url: self.oauth_token_url,
                oauth_client_id: self.oauth_client_id,
                oauth_client_secret_file: self.oauth_client_secret_file,
                oauth_refresh_token_file: self.oauth_refresh_token_file,
                watch_folder: self.watch_folder,
                key_type: self.key_type,
                usage: self.usage,
                p12_format: self.p12_format,
                p12_password_file: self.p12_password_file,
                challenge_auth: self.challenge_auth,
                dns_server: self.dns_server,
                autoconfig_url: self.autoconfig_url,
                // The address as the state folder names it: no `/` or `..` from an address.
                out: self.out.map(|o| {
                    o.replace("{email}", &crate::store::safe_name(&email))
                        .into()
                }),
                deploy_hook: self.deploy_hook,
            },
            new_p12_password: false,
            email,
        }
    }
}

/// A problem in the manifest: where, which field, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub field: String,
    pub reason: String,
}

/// Reads the manifest at `path` (TOML for `.toml`, CSV for `.csv`): its entries in order, or
/// every problem found.
pub fn read(path: &Path) -> Result<Vec<Entry>, Vec<Problem>> {
    let whole = |reason: String| {
        vec![Problem {
            line: 0,
            field: String::new(),
            reason,
        }]
    };
    let size = std::fs::metadata(path)
        .map_err(|e| whole(format!("cannot read it: {e}")))?
        .len();
    if size > MAX_BYTES {
        return Err(whole(format!("larger than {} MiB", MAX_BYTES >> 20)));
    }
    let text = std::fs::read_to_string(path).map_err(|e| whole(format!("cannot read it: {e}")))?;
    // Spreadsheets start their CSV with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("toml") => parse_toml(text),
        Some(ext) if ext.eq_ignore_ascii_case("csv") => parse_csv(text),
        _ => Err(whole(
            "a manifest is a .toml or a .csv file (name it so)".into(),
        )),
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |before| before.matches('\n').count() + 1)
}

/// The field named in a serde error ("unknown field `x`", "missing field `x`", "... for key
/// `x`"), if any.
fn field_of(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .filter(|_| message.contains('`'))
        .unwrap_or_default()
        .to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlManifest {
    defaults: Option<toml::Spanned<Raw>>,
    #[serde(default)]
    mailbox: Vec<toml::Spanned<Raw>>,
}

pub fn parse_toml(text: &str) -> Result<Vec<Entry>, Vec<Problem>> {
    let manifest: TomlManifest = toml::from_str(text).map_err(|e| {
        let message = e.message().to_owned();
        vec![Problem {
            line: e.span().map_or(0, |s| line_at(text, s.start)),
            field: field_of(&message),
            reason: message.replace('\n', " "),
        }]
    })?;
    let (defaults, default_fields) = match manifest.defaults {
        Some(spanned) => {
            let fields = keys_in(text, spanned.span());
            (spanned.into_inner(), fields)
        }
        None => Default::default(),
    };
    if defaults.email.is_some() {
        return Err(vec![Problem {
            line: default_fields.get("email").copied().unwrap_or(1),
            field: "email".into(),
            reason: "an address belongs in a [[mailbox]] entry, not in [defaults]".into(),
        }]);
    }
    let entries = manifest.mailbox.into_iter().map(|spanned| {
        let span = spanned.span();
        let mut fields = default_fields.clone();
        fields.extend(keys_in(text, span.clone()));
        (line_at(text, span.start), fields, spanned.into_inner())
    });
    resolve(entries.collect(), &defaults)
}

/// The keys set (`key = value` lines) in the table whose header starts at `span`, up to the
/// next table header, and their lines.
fn keys_in(text: &str, span: std::ops::Range<usize>) -> BTreeMap<String, usize> {
    let mut keys = BTreeMap::new();
    let mut offset = span.start;
    let body = text.get(span.start..).unwrap_or_default();
    for (i, line) in body.split_inclusive('\n').enumerate() {
        if i > 0 && line.trim_start().starts_with('[') {
            break;
        }
        if let Some((key, _)) = line.split_once('=') {
            let key = key.trim().trim_matches('"').trim_matches('\'');
            if !key.is_empty() && !key.starts_with('#') {
                keys.entry(key.to_owned())
                    .or_insert_with(|| line_at(text, offset));
            }
        }
        offset += line.len();
    }
    keys
}

pub fn parse_csv(text: &str) -> Result<Vec<Entry>, Vec<Problem>> {
    let rows = csv_rows(text).map_err(|(line, reason)| {
        vec![Problem {
            line,
            field: String::new(),
            reason,
        }]
    })?;
    let mut rows = rows.into_iter();
    let Some((header_line, header)) = rows.next() else {
        return Err(vec![Problem {
            line: 1,
            field: String::new(),
            reason: "no header row".into(),
        }]);
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
    let mut problems = Vec::new();
    for (i, name) in header.iter().enumerate() {
        let empty = match name.as_str() {
            "watch-folder" => serde_json::json!([]),
            _ => serde_json::Value::Null,
        };
        let known = serde_json::from_value::<Raw>(serde_json::json!({ name.as_str(): empty }));
        if let Err(e) = known {
            problems.push(Problem {
                line: header_line,
                field: name.clone(),
                reason: format!("column {}: {}", i + 1, e.to_string().replace('\n', " ")),
            });
        } else if header[..i].contains(name) {
            problems.push(Problem {
                line: header_line,
                field: name.clone(),
                reason: format!("column {} repeats an earlier column", i + 1),
            });
        }
    }
    if !header.iter().any(|h| h == "email") {
        problems.push(Problem {
            line: header_line,
            field: "email".into(),
            reason: "the header row has no email column".into(),
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut entries = Vec::new();
    for (line, cells) in rows {
        if cells.len() != header.len() {
            problems.push(Problem {
                line,
                field: String::new(),
                reason: format!(
                    "{} cells where the header has {}",
                    cells.len(),
                    header.len()
                ),
            });
            continue;
        }
        let mut object = serde_json::Map::new();
        for (name, cell) in header.iter().zip(cells) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            let value = match name.as_str() {
                "watch-folder" => serde_json::json!(
                    cell.split(';')
                        .map(str::trim)
                        .filter(|f| !f.is_empty())
                        .collect::<Vec<_>>()
                ),
                _ => serde_json::json!(cell),
            };
            object.insert(name.clone(), value);
        }
        let fields = object.keys().map(|k| (k.clone(), line)).collect();
        match serde_json::from_value::<Raw>(serde_json::Value::Object(object)) {
            Ok(raw) => entries.push((line, fields, raw)),
            Err(e) => problems.push(Problem {
                line,
                field: field_of(&e.to_string()),
                reason: e.to_string(),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    resolve(entries, &Raw::default())
}

/// A CSV record: the line it starts on, and its cells.
type Row = (usize, Vec<String>);

/// CSV records (RFC 4180: commas, double quotes, "" inside quotes, line breaks inside quotes),
/// each with the line it starts on; blank lines and lines starting with `#` are skipped.
fn csv_rows(text: &str) -> Result<Vec<Row>, (usize, String)> {
    let mut rows = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start = line;
        if matches!(chars.peek(), Some('#')) {
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            line += 1;
            continue;
        }
        let mut cells = vec![String::new()];
        let mut quoted = false;
        let mut at_start = true;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    return Err((start, "a quoted cell is not closed".into()));
                }
                break;
            };
            let cell = cells.last_mut().expect("one cell at least");
            match c {
                '"' if quoted => {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        cell.push('"');
                    } else {
                        quoted = false;
                    }
                }
                '"' if at_start => quoted = true,
                '\n' if !quoted => {
                    line += 1;
                    break;
                }
                '\r' if !quoted && chars.peek() == Some(&'\n') => {}
                ',' if !quoted => {
                    cells.push(String::new());
                    at_start = true;
                    continue;
                }
                '\n' => {
                    line += 1;
                    cell.push(c);
                }
                _ => cell.push(c),
            }
            at_start = false;
        }
        if !(cells.len() == 1 && cells[0].trim().is_empty()) {
            rows.push((start, cells));
        }
    }
    Ok(rows)
}

/// An entry as read: its first line, the line of each key, its settings.
type Parsed = (usize, BTreeMap<String, usize>, Raw);

/// Entries over the defaults, each with an address; a repeated address names both lines.
fn resolve(entries: Vec<Parsed>, defaults: &Raw) -> Result<Vec<Entry>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut out = Vec::new();
    for (line, fields, raw) in entries {
        let Some(email) = raw.email.clone().map(|e| e.trim().to_owned()) else {
            problems.push(Problem {
                line,
                field: "email".into(),
                reason: "missing: every mailbox needs its address".into(),
            });
            continue;
        };
        if !crate::challenge::mail::is_plain_address(&email) || !email.contains('.') {
            problems.push(Problem {
                line: fields.get("email").copied().unwrap_or(line),
                field: "email".into(),
                reason: format!("{email:?} is not an email address"),
            });
            continue;
        }
        if let Some((_, first)) = seen
            .iter()
            .find(|(e, _)| crate::challenge::mail::same_address(e, &email))
        {
            problems.push(Problem {
                line: fields.get("email").copied().unwrap_or(line),
                field: "email".into(),
                reason: format!("{email} is listed already, on line {first}"),
            });
            continue;
        }
        seen.push((email.clone(), fields.get("email").copied().unwrap_or(line)));
        out.push(Entry {
            line,
            request: raw.over(defaults).request(email),
            fields,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Which of `n` shards (1-based) an address falls in: the first 8 bytes of the SHA-256 of the
/// lowercased address, as a big-endian number, modulo `n`, plus 1. Stable across runs, hosts
/// and versions.
pub fn shard_of(email: &str, n: u64) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(email.trim().to_lowercase().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % n.max(1) + 1
}

/// `K/N` with 1 ≤ K ≤ N.
pub fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("--shard {text:?}: expected K/N with 1 <= K <= N, e.g. 2/3");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (u64, u64) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_entries_take_the_defaults() {
        let text = "[defaults]\nimap = \"127.0.0.1:993\"\nmaster-user = \"admin\"\nout = \"/p12/{email}.p12\"\n\n[[mailbox]]\nemail = \"a@example.test\"\n\n[[mailbox]]\nemail = \"b@example.test\"\nimap = \"other:993\"\n";
        let entries = parse_toml(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].line, 6);
        assert_eq!(entries[1].line, 9);
        assert_eq!(
            entries[0].request.mailbox.imap.as_deref(),
            Some("127.0.0.1:993")
        );
        assert_eq!(
            entries[1].request.mailbox.imap.as_deref(),
            Some("other:993")
        );
        assert_eq!(
            entries[1].request.mailbox.master_user.as_deref(),
            Some("admin")
        );
        assert_eq!(
            entries[1].request.mailbox.out.as_deref(),
            Some(Path::new("/p12/b@example.test.p12"))
        );
    }

    #[test]
    fn toml_problems_name_line_and_field() {
        let text = "[[mailbox]]\nemail = \"a@example.test\"\n\n[[mailbox]]\nemail = \"b@example.test\"\nkey-typ = \"p256\"\n";
        let problems = parse_toml(text).unwrap_err();
        assert_eq!(problems[0].field, "key-typ", "{problems:?}");
        assert!(problems[0].line >= 4, "{problems:?}");
        let bad = "[defaults]\nimap = \"x:1\"\n\n[[mailbox]]\nemail = \"a@example.test\"\nkey-type = \"p1\"\n";
        let entries = parse_toml(bad).unwrap();
        assert_eq!(entries[0].line, 4);
        assert_eq!(entries[0].line_of("key-type"), 6);
        assert_eq!(entries[0].line_of("imap"), 2);
        assert_eq!(entries[0].line_of("usage"), 4);
        let dup =
            "[[mailbox]]\nemail = \"a@example.test\"\n[[mailbox]]\nemail = \"a@EXAMPLE.test\"\n";
        let problems = parse_toml(dup).unwrap_err();
        assert_eq!(problems[0].line, 4);
        assert!(problems[0].reason.contains("line 2"), "{problems:?}");
        let missing = "[[mailbox]]\nimap = \"x:1\"\n";
        assert_eq!(parse_toml(missing).unwrap_err()[0].field, "email");
    }

    #[test]
    fn csv_rows_and_quotes() {
        let text = "# staff\nemail,imap,watch-folder\na@example.test,\"h:993\",Junk;Spam\n\n\"b@example.test\",,\n";
        let entries = parse_csv(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].line, 3);
        assert_eq!(entries[1].line, 5);
        assert_eq!(entries[0].request.mailbox.watch_folder, ["Junk", "Spam"]);
        assert_eq!(entries[1].request.mailbox.imap, None);
        let quoted = "email,password-command\na@example.test,\"echo \"\"x,y\"\"\"\n";
        let entries = parse_csv(quoted).unwrap();
        assert_eq!(
            entries[0].request.mailbox.password_command.as_deref(),
            Some("echo \"x,y\"")
        );
    }

    #[test]
    fn csv_problems_name_line_and_field() {
        let bad_header = "email,imap-server\na@example.test,x\n";
        let problems = parse_csv(bad_header).unwrap_err();
        assert_eq!(
            (problems[0].line, problems[0].field.as_str()),
            (1, "imap-server")
        );
        let short = "email,imap\na@example.test\n";
        assert_eq!(parse_csv(short).unwrap_err()[0].line, 2);
        let unclosed = "email\n\"a@example.test\n";
        assert!(parse_csv(unclosed).is_err());
        assert!(parse_csv("imap\nx\n").is_err());
    }

    #[test]
    fn oauth_settings_in_toml_defaults_and_csv_columns() {
        let text = "[defaults]\noauth-token-url = \"https://idp.test/token\"\noauth-client-id = \"c\"\n\
                    oauth-mechanism = \"xoauth2\"\n\n[[mailbox]]\nemail = \"a@example.test\"\n\
                    oauth-refresh-token-file = \"/rt/a\"\n";
        let entries = parse_toml(text).unwrap();
        let m = &entries[0].request.mailbox;
        assert_eq!(m.oauth_token_url.as_deref(), Some("https://idp.test/token"));
        assert_eq!(m.oauth_client_id.as_deref(), Some("c"));
        assert_eq!(m.oauth_mechanism.as_deref(), Some("xoauth2"));
        assert_eq!(m.oauth_refresh_token_file, Some("/rt/a".into()));
        assert_eq!(entries[0].line_of("oauth-refresh-token-file"), 8);
        let csv = "email,oauth-token-command,oauth-client-secret-file\na@example.test,oama access a@example.test,/s\n";
        let m = &parse_csv(csv).unwrap()[0].request.mailbox;
        assert_eq!(
            m.oauth_token_command.as_deref(),
            Some("oama access a@example.test")
        );
        assert_eq!(m.oauth_client_secret_file, Some("/s".into()));
    }

    #[test]
    fn shards_split_without_overlap() {
        assert_eq!(parse_shard("2/3"), Ok((2, 3)));
        for bad in ["0/2", "3/2", "1/0", "x", "1/", "/2"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        let emails: Vec<String> = (0..200).map(|i| format!("u{i}@example.test")).collect();
        let counts = (1..=4).map(|k| emails.iter().filter(|e| shard_of(e, 4) == k).count());
        let counts: Vec<usize> = counts.collect();
        assert_eq!(counts.iter().sum::<usize>(), 200);
        assert!(counts.iter().all(|&c| c > 20), "{counts:?}");
        assert_eq!(shard_of("A@Example.test", 7), shard_of("a@example.test", 7));
        assert_eq!(shard_of("x@example.test", 1), 1);
    }
}
