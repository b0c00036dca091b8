//! What the user sees: a spinner naming the current phase on a terminal, log lines at -v, a
//! result in words or as one JSON object (`--json`), nothing on success with -q. Errors always
//! go to stderr. IO: stdout and stderr.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug)]
pub struct Output {
    verbose: u8,
    quiet: bool,
    json: bool,
    /// Started by the first phase, so that it never draws over a password prompt.
    spinner: OnceLock<Option<ProgressBar>>,
}

impl Output {
    pub fn new(verbose: u8, quiet: bool, json: bool) -> Output {
        Output {
            verbose,
            quiet,
            json,
            spinner: OnceLock::new(),
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
            println!("{value}");
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
        if self.verbose >= 1 {
            self.line(text);
        }
    }

    /// A line at -vv.
    pub fn debug(&self, text: &str) {
        if self.verbose >= 2 {
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
        if !self.quiet {
            self.line(&format!("warning: {text}"));
        }
    }

    fn line(&self, text: &str) {
        match self.spinner.get().and_then(Option::as_ref) {
            Some(spinner) => spinner.suspend(|| eprintln!("smime-acme: {text}")),
            None => eprintln!("smime-acme: {text}"),
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
        if self.json {
            for value in &outcome.json {
                println!("{value}");
            }
        } else if self.quiet {
            print!("{}", outcome.quiet);
        } else {
            print!("{}", outcome.human);
        }
    }

    /// An error about one of several items: one line on stderr, always.
    pub fn item_error(&self, message: &str) {
        self.line(&format!("error: {message}"));
    }

    /// An error: one line on stderr (and a JSON object on stdout with --json).
    pub fn error(&self, message: &str, value: &serde_json::Value) {
        self.finish();
        if self.json {
            println!("{value}");
        }
        eprintln!("smime-acme: error: {message}");
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
