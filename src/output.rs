//! What the user sees: a spinner naming the current phase on a terminal, log lines at -v, a
//! result in words or as one JSON object (`--json`), nothing on success with -q. Errors always
//! go to stderr. With `--log-file`, what -v shows (and -vv's detail with -vv) is also appended
//! there with a timestamp, whatever -q says. A reader that goes away (`smime-acme list | head
//! -1`) ends the output quietly. IO: stdout, stderr and the log file.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug)]
pub struct Output {
    verbose: u8,
    quiet: bool,
    json: bool,
    /// Started by the first phase, so that it never draws over a password prompt.
    spinner: OnceLock<Option<ProgressBar>>,
    /// `--log-file`, opened for appending.
    log: Option<Mutex<File>>,
}

/// Set once stdout's reader has gone away: nothing more is written there.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to stdout; a closed pipe ends stdout output without a word (no panic, as
/// `print!` would), other errors are ignored too: there is nowhere left to report them.
pub fn stdout(text: &str) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Writes a line to stderr, ignoring a closed stderr.
fn stderr_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

impl Output {
    pub fn new(verbose: u8, quiet: bool, json: bool) -> Output {
        Output {
            verbose,
            quiet,
            json,
            spinner: OnceLock::new(),
            log: None,
        }
    }

    /// Also appends each log line, timestamped, to `path` (created 0600 when new, made 0600 when
    /// not). A symbolic link is refused: the log goes to the file named, not where a link set by
    /// someone else points.
    pub fn with_log_file(mut self, path: &Path) -> std::io::Result<Output> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(std::io::Error::other("it is a symbolic link"));
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::other("it is not a regular file"));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        self.log = Some(Mutex::new(file));
        Ok(self)
    }

    /// Appends `text` to the log file, if any, after the time (RFC 3339, UTC).
    pub fn log(&self, text: &str) {
        if let Some(file) = &self.log {
            let stamp = crate::clock::rfc3339(crate::clock::now());
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(file, "{stamp} {text}");
        }
    }

    fn spinner(&self) -> Option<&ProgressBar> {
        self.spinner
            .get_or_init(|| {
                self.wants_progress().then(|| {
                    let bar = ProgressBar::new_spinner();
                    let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner());
                    bar.set_style(style);
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                })
            })
            .as_ref()
    }

    /// Whether a progress display may be drawn: a terminal, and neither -q, -v nor --json.
    pub fn wants_progress(&self) -> bool {
        !self.quiet && !self.json && self.verbose == 0 && std::io::stderr().is_terminal()
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// With --json, one JSON line on stdout now (for results that come one by one).
    pub fn json_line(&self, value: &serde_json::Value) {
        if self.json {
            stdout(&format!("{value}\n"));
        }
    }

    /// The current phase: the spinner's text on a terminal, a log line at -v.
    pub fn phase(&self, text: &str) {
        if let Some(spinner) = self.spinner() {
            spinner.set_message(text.to_owned());
        }
        self.info(text);
    }

    /// A line at -v.
    pub fn info(&self, text: &str) {
        self.log(text);
        if self.verbose >= 1 {
            self.line(text);
        }
    }

    /// A line at -vv.
    pub fn debug(&self, text: &str) {
        if self.verbose >= 2 {
            self.log(text);
            self.line(text);
        }
    }

    /// A line worth seeing on every run, shown unless -q.
    pub fn note(&self, text: &str) {
        if !self.quiet {
            self.line(text);
        }
    }

    /// A warning, shown unless -q.
    pub fn warn(&self, text: &str) {
        let text = format!("warning: {text}");
        self.log(&text);
        if !self.quiet {
            self.line(&text);
        }
    }

    fn line(&self, text: &str) {
        let line = format!("smime-acme: {text}");
        match self.spinner.get().and_then(Option::as_ref) {
            Some(spinner) => spinner.suspend(|| stderr_line(&line)),
            None => stderr_line(&line),
        }
    }

    /// Ends the spinner.
    pub fn finish(&self) {
        if let Some(spinner) = self.spinner.get().and_then(Option::as_ref) {
            spinner.finish_and_clear();
        }
    }

    /// The result: its JSON lines with --json, else its words (with -q only what must be seen).
    pub fn result(&self, outcome: &crate::commands::Outcome) {
        self.finish();
        if self.log.is_some() {
            let text = if outcome.human.is_empty() {
                &outcome.quiet
            } else {
                &outcome.human
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                self.log(line);
            }
        }
        if self.json {
            for value in &outcome.json {
                stdout(&format!("{value}\n"));
            }
        } else if self.quiet {
            stdout(&outcome.quiet);
        } else {
            stdout(&outcome.human);
        }
    }

    /// An error about one of several items: one line on stderr, always.
    pub fn item_error(&self, message: &str) {
        let text = format!("error: {message}");
        self.log(&text);
        self.line(&text);
    }

    /// An error: one line on stderr (and a JSON object on stdout with --json).
    pub fn error(&self, message: &str, value: &serde_json::Value) {
        self.finish();
        self.log(&format!("error: {message}"));
        if self.json {
            stdout(&format!("{value}\n"));
        }
        stderr_line(&format!("smime-acme: error: {message}"));
    }
}

/// A single mailbox's events: its phase on the spinner, the rest as log lines.
impl crate::issuance::engine::Events for Output {
    fn emit(&self, _email: &str, level: crate::issuance::engine::Level, text: &str) {
        use crate::issuance::engine::Level;
        match level {
            Level::Phase => self.phase(text),
            Level::Info => self.info(text),
            Level::Debug => self.debug(text),
            Level::Warn => self.warn(text),
        }
    }
}
