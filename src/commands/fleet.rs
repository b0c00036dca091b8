//! Running the engine for many mailboxes at once (`provision`, `renew --jobs`): a fixed number
//! of worker threads taking mailboxes in turn, one CA connection and account per CA shared by
//! all of them, and the progress display: an overall bar and one line per mailbox at work on a
//! terminal, prefixed log lines otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Ca;
use crate::Error;
use crate::acme::client::AcmeClient;
use crate::issuance::engine::{Events, Level};
use crate::output::Output;
use crate::settings::CaSettings;
use crate::store::Store;

/// How long connecting to a CA and registering its account may take.
pub const BUDGET: Duration = Duration::from_secs(300);

/// Runs `work` on every item with `jobs` threads; `done` sees each result on the calling thread
/// as it comes (in the order they finish). Returns the results in the items' order.
pub fn run<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T) -> R + Sync,
    mut done: impl FnMut(&T, &R),
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            let tx = tx.clone();
            let (next, work) = (&next, &work);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if tx.send((i, work(item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, result) in rx {
            done(&items[i], &result);
            results[i] = Some(result);
        }
    });
    results.into_iter().flatten().collect()
}

/// The CAs of a run, each connected and its account loaded once, on first use.
pub struct CaPool<'a> {
    store: &'a Store,
    events: &'a dyn Events,
    in_flight: usize,
    budget: Duration,
    open: Mutex<Open>,
}

/// The CAs connected so far: with their account, or (for renewal information) without.
#[derive(Default)]
struct Open {
    with_account: HashMap<String, Arc<Ca>>,
    connected: HashMap<String, AcmeClient>,
}

impl std::fmt::Debug for CaPool<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaPool")
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl<'a> CaPool<'a> {
    /// `in_flight`: requests at once to one CA, at most; `budget`: how long connecting and
    /// registering may take.
    pub fn new(
        store: &'a Store,
        events: &'a dyn Events,
        in_flight: usize,
        budget: Duration,
    ) -> CaPool<'a> {
        CaPool {
            store,
            events,
            in_flight,
            budget,
            open: Mutex::new(Open::default()),
        }
    }

    /// A client of the CA of `ca` that needs no account (renewal information), connected if
    /// this is the first to need it.
    pub fn client(&self, ca: &CaSettings) -> Result<AcmeClient, Error> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = open.with_account.get(&ca.server) {
            return Ok(found.client.worker());
        }
        if let Some(found) = open.connected.get(&ca.server) {
            return Ok(found.worker());
        }
        let client = Ca::connect(ca, Instant::now() + self.budget, self.in_flight)?;
        let worker = client.worker();
        open.connected.insert(ca.server.clone(), client);
        Ok(worker)
    }

    /// The CA of `ca`, connected (and its account registered with `contacts`) if this is the
    /// first mailbox to need it. Workers wait for each other here, so that one account is made.
    pub fn get(&self, ca: &CaSettings, contacts: Vec<String>) -> Result<Arc<Ca>, Error> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = open.with_account.get(&ca.server) {
            return Ok(Arc::clone(found));
        }
        let client = match open.connected.remove(&ca.server) {
            Some(client) => client,
            None => Ca::connect(ca, Instant::now() + self.budget, self.in_flight)?,
        };
        let made = Arc::new(Ca::with_account(
            client,
            ca,
            contacts,
            self.store,
            self.events,
        )?);
        open.with_account
            .insert(ca.server.clone(), Arc::clone(&made));
        Ok(made)
    }

    /// HTTP requests made to all CAs so far, and TLS connections opened to them.
    pub fn totals(&self) -> (u32, u32) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let clients = open.with_account.values().map(|ca| &ca.client);
        clients
            .chain(open.connected.values())
            .fold((0, 0), |(r, t), client| {
                let (requests, tls) = client.totals();
                (r + requests, t + tls)
            })
    }
}

/// The progress of many mailboxes: on a terminal (and neither -q, -v nor --json) an overall bar
/// and a line per mailbox at work with its phase; otherwise log lines naming the mailbox.
pub struct Progress<'a> {
    out: &'a Output,
    bars: Option<(MultiProgress, ProgressBar)>,
    lines: Mutex<HashMap<String, ProgressBar>>,
}

impl std::fmt::Debug for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("drawn", &self.bars.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> Progress<'a> {
    /// `drawn`: bars are wanted (several mailboxes at once) where the output allows them.
    pub fn new(out: &'a Output, total: usize, what: &str, drawn: bool) -> Progress<'a> {
        let bars = (drawn && out.wants_progress()).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(total as u64));
            let style = ProgressStyle::with_template(&format!(
                "{{bar:30}} {{pos}}/{{len}} {what} ({{elapsed}}, {{msg}})"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            overall.set_style(style);
            overall.set_message("0 failed");
            (multi, overall)
        });
        Progress {
            out,
            bars,
            lines: Mutex::new(HashMap::new()),
        }
    }

    /// One mailbox is finished.
    pub fn finished(&self, email: &str, failed: usize) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(line) = lines.remove(email) {
            line.finish_and_clear();
        }
        if let Some((_, overall)) = &self.bars {
            overall.inc(1);
            overall.set_message(format!("{failed} failed"));
        }
    }

    /// Clears the display.
    pub fn end(&self) {
        if let Some((multi, overall)) = &self.bars {
            overall.finish_and_clear();
            let _ = multi.clear();
        }
    }

    /// A line that must be seen (an error about one mailbox), above the bars.
    pub fn line(&self, text: &str) {
        match &self.bars {
            Some((multi, _)) => {
                self.out.log(&format!("error: {text}"));
                multi.suspend(|| eprintln!("smime-acme: {text}"))
            }
            None => self.out.item_error(text),
        }
    }
}

impl Events for Progress<'_> {
    fn emit(&self, email: &str, level: Level, text: &str) {
        let prefixed = if email.is_empty() {
            text.to_owned()
        } else {
            format!("{email}: {text}")
        };
        match (level, &self.bars) {
            (Level::Phase, Some((multi, _))) => {
                let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
                let line = lines.entry(email.to_owned()).or_insert_with(|| {
                    let line = multi.add(ProgressBar::new_spinner());
                    let style = ProgressStyle::with_template("  {spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner());
                    line.set_style(style);
                    line.enable_steady_tick(Duration::from_millis(200));
                    line
                });
                self.out.log(&prefixed);
                line.set_message(prefixed);
            }
            (Level::Phase | Level::Info, _) => self.out.info(&prefixed),
            (Level::Debug, _) => self.out.debug(&prefixed),
            (Level::Warn, Some((multi, _))) if !self.out.is_quiet() => {
                self.out.log(&format!("warning: {prefixed}"));
                multi.suspend(|| eprintln!("smime-acme: warning: {prefixed}"))
            }
            (Level::Warn, _) => self.out.warn(&prefixed),
        }
    }
}
