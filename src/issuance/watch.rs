//! Validation of an order: watch the mailbox for challenge mails, answer every authentic one
//! once (at most [`MAX_ANSWERS`]), tell the CA when the timing says so, and keep watching and
//! answering until the CA says the authorization is valid. Which challenge mail is ours cannot
//! be told from the mail (a second order for the same address sends one too), and a reply is
//! bound to our account's key, so answering another order's mail gives nothing away. The POST
//! that tells the CA runs beside the mail watch, because a CA may check for the reply while
//! answering it. IO driver; reading and judging the mailbox is `inbox`, the decisions are in
//! `issuance` and `challenge`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::inbox::{Watcher, reconnect};
use super::{Answer, MAX_ANSWERS, Pending, ReplyState, learn};
use crate::Error;
use crate::acme::client::AcmeClient;
use crate::acme::jws::{self, AccountKey, KeyRef, Signer};
use crate::acme::types::{Authorization, Challenge, Problem, Status};
use crate::challenge::mail;
use crate::challenge::response::{self, Reply};
use crate::mail::Login;
use crate::mail::imap::Mailbox;
use crate::mail::smtp::{SendError, Sender};
use crate::settings::{ChallengeTiming, ObtainSettings};
use crate::store::{self, Store};

/// With `challenge-timing = auto`: how long to wait for the mail before POSTing the challenge
/// for servers that send the mail only then.
const FIRST_WAIT: Duration = Duration::from_secs(15);
/// How long one IDLE (or poll) lasts before the folders are checked again.
const WAIT_SLICE: Duration = Duration::from_secs(5);
/// Right after the order, when a CA's mail is expected, the folders are checked this often
/// rather than waiting for IDLE (Dovecot, for one, holds IDLE notices back for half a second).
/// Also while the CA is being told, or a reply waits to be sent again.
const FAST_POLL: Duration = Duration::from_millis(50);
const FAST_WINDOW: Duration = Duration::from_secs(10);
/// Answered Message-IDs remembered per mailbox, across orders.
const ANSWERED_KEPT: usize = 200;
/// What an issuance's steps share.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub settings: &'a ObtainSettings,
    pub out: super::engine::Reporter<'a>,
    pub key: &'a AccountKey,
    pub store: &'a Store,
    pub pending_path: &'a Path,
    pub deadline: Instant,
}

impl Ctx<'_> {
    pub fn save(&self, pending: &Pending) -> Result<(), Error> {
        Ok(store::write_json(self.pending_path, pending)?)
    }

    pub fn timed_out(&self, what: &str) -> Result<(), Error> {
        if Instant::now() >= self.deadline {
            return Err(Error::TimedOut(format!(
                "{what} (gave up after {}s; see --timeout)",
                self.settings.timeout.as_secs()
            )));
        }
        Ok(())
    }

    pub fn sleep(&self, wanted: Duration) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(wanted.min(left));
    }

    /// The Message-IDs answered for this address, across orders.
    fn answered_path(&self) -> PathBuf {
        self.store.answered_file(&self.settings.email)
    }
}

/// The mail side: the mailbox watched and the submission session replies go through.
pub struct MailSide<'a, 's> {
    pub mailbox: &'a mut Mailbox,
    pub sender: &'a mut Sender<'s>,
    pub login: Login<'a>,
    pub tls: &'a Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for MailSide<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSide")
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}

/// How the CA ended the validation.
#[derive(Debug)]
pub enum Verdict {
    /// The authorization is valid (and `pending.validated` saved).
    Valid,
    /// The authorization became `status`; the challenge's error, if the CA gave one.
    Refused {
        status: Status,
        problem: Option<Problem>,
    },
}

impl Verdict {
    /// A refusal as the error the run ends with.
    pub fn into_error(self) -> Error {
        match self {
            Verdict::Valid => Error::Internal("a valid authorization is no refusal".into()),
            Verdict::Refused {
                problem: Some(p), ..
            } => Error::CaRefused(format!("the CA did not accept the reply: {p}")),
            Verdict::Refused { status, .. } => Error::CaRefused(format!(
                "the authorization became {status} and the CA gave no reason"
            )),
        }
    }
}

/// Runs until the authorization is valid (then `pending.validated` is saved), the CA refuses,
/// or the deadline passes.
pub fn validate(
    ctx: &Ctx<'_>,
    acme: &mut AcmeClient,
    mail: MailSide<'_, '_>,
    pending: &mut Pending,
) -> Result<Verdict, Error> {
    let MailSide {
        mailbox,
        sender,
        login,
        tls,
    } = mail;
    let settings = ctx.settings;
    let learned = learn::load(ctx.store, &settings.server);
    let table = crate::known_cas::by_url(&settings.server);
    let (timing, source, known) = learn::timing(settings.challenge_timing, &learned, table);
    ctx.out.info(&format!(
        "challenge timing {timing} ({}{})",
        source.describe(),
        known
            .map(|k| format!(": the CA {}", k.describe()))
            .unwrap_or_default()
    ));
    // When this run POSTed because no mail came within the first wait (Unix seconds).
    let mut posted_after_wait = None;
    let mut timing_noted = false;
    let from = pending.challenge_from.clone().unwrap_or_default();
    let mut answered: Vec<String> = store::read_json(&ctx.answered_path())?.unwrap_or_default();
    // A folder watched for the first time is marked now: its older mail is not for this order.
    for folder in &settings.folders {
        if !pending.marks.contains_key(folder) {
            let mark = mailbox.mark(folder)?;
            pending.marks.insert(folder.clone(), mark);
            ctx.save(pending)?;
        }
    }
    let mut watcher = Watcher::new(ctx, &from, pending.marks.clone())?;
    let started = Instant::now();
    let mut warned_bound = false;
    let mut send_retry = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut poll = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    ctx.out
        .phase(&format!("waiting for the challenge mail from {from}"));

    // A POST saved as made by an earlier run may never have reached the CA (a kill, or a CA
    // that could not be reached): if the challenge is still pending, it is made once more.
    let mut posted_here = false;
    let mut challenge_pending = false;
    // A POST under way when the run gives up is stopped at its next retry, not waited out.
    let stop = acme.stopper();
    std::thread::scope(|scope| {
        let mut acme = Some(acme);
        let mut posting = None;
        let result = (|| loop {
            // Every new mail is judged (and a rejection logged) before any is answered; with
            // post-first, only once the CA is being told.
            let post_first_due = timing == ChallengeTiming::PostFirst && !pending.challenge_posted;
            let found = if post_first_due {
                Vec::new()
            } else {
                watcher.look(mailbox, pending, login, tls)?
            };
            for found in found {
                let id = &found.accepted.message_id;
                if pending.has_answer(id) || answered.contains(id) {
                    ctx.out.info(&format!(
                        "ignored mail {} in {}: already answered",
                        found.uid, found.folder
                    ));
                    continue;
                }
                if !pending.may_answer_more() {
                    if !warned_bound {
                        ctx.out.warn(&format!(
                            "{MAX_ANSWERS} challenge mails answered for this order; further ones \
                             are not answered (someone else may be ordering certificates for {})",
                            settings.email
                        ));
                        warned_bound = true;
                    }
                    continue;
                }
                ctx.out.info(&format!(
                    "challenge mail {} in {} accepted after {} ms: token-part1 {}, Message-ID <{id}>",
                    found.uid,
                    found.folder,
                    started.elapsed().as_millis(),
                    found.accepted.token_part1
                ));
                if !timing_noted {
                    timing_noted = true;
                    note_timing(ctx, pending.challenge_posted, posted_after_wait, found.date);
                }
                pending.answers.push(Answer {
                    message_id: id.clone(),
                    token_part1: found.accepted.token_part1.clone(),
                    reply_to: found.accepted.reply_to.clone(),
                    state: ReplyState::NotSent,
                    attempts: 0,
                    sent_at: None,
                });
                // Remembered before the reply goes out: never answered twice, even after a
                // kill, nor by a later order.
                ctx.save(pending)?;
                answered.push(id.clone());
                let excess = answered.len().saturating_sub(ANSWERED_KEPT);
                answered.drain(..excess);
                store::write_json(&ctx.answered_path(), &answered)?;
                send(ctx, sender, pending, pending.answers.len() - 1)?;
                if let Err(e) = mailbox.mark_seen(&found.folder, found.uid) {
                    ctx.out
                        .warn(&format!("could not mark the challenge mail seen: {e}"));
                }
            }
            if send_retry.due() {
                let unsent: Vec<usize> = pending.unsent().collect();
                for i in &unsent {
                    send(ctx, sender, pending, *i)?;
                }
                if pending.unsent().next().is_some() {
                    send_retry.wait_longer();
                } else {
                    send_retry.reset();
                }
            }

            // Tell the CA, beside the watch.
            let post_now = match timing {
                _ if posting.is_some() || posted_here && pending.challenge_posted => false,
                _ if pending.challenge_posted => challenge_pending,
                ChallengeTiming::PostFirst => {
                    ctx.out.info(
                        "challenge timing post-first: telling the CA before the mail arrives",
                    );
                    true
                }
                ChallengeTiming::Auto if started.elapsed() >= FIRST_WAIT && !pending.replied() => {
                    ctx.out.info(&format!(
                        "no challenge mail after {}s: telling the CA now, for servers that send \
                         the mail only then",
                        FIRST_WAIT.as_secs()
                    ));
                    posted_after_wait = Some(crate::clock::now());
                    true
                }
                _ => pending.replied(),
            };
            if post_now && let Some(client) = acme.take() {
                if pending.challenge_posted {
                    ctx.out
                        .info("the CA still waits for the challenge: telling it again");
                } else if pending.replied() {
                    ctx.out
                        .info("challenge timing: the reply went out first, now the CA is told");
                }
                ctx.out.phase("telling the CA the challenge is answered");
                posted_here = true;
                pending.challenge_posted = true;
                ctx.save(pending)?;
                let (key, account, url) = (
                    ctx.key,
                    pending.account_url.clone(),
                    pending_challenge(pending).to_owned(),
                );
                posting = Some(scope.spawn(move || {
                    let status = post_challenge(client, key, &account, &url);
                    (status, client)
                }));
            }
            if posting.as_ref().is_some_and(|h| h.is_finished())
                && let Some(handle) = posting.take()
            {
                let (status, client) = handle
                    .join()
                    .map_err(|_| Error::Internal("the challenge POST failed".into()))?;
                acme = Some(client);
                // Servers that validate at once say so in the answer: no need to poll.
                if status? == Status::Valid {
                    return validated(ctx, pending);
                }
                poll.reset();
            }

            // The CA's verdict, while mail is still watched.
            if pending.challenge_posted
                && poll.due()
                && let Some(client) = acme.as_deref_mut()
            {
                let url = pending.authorization_url.clone().unwrap_or_default();
                let (authz, response) =
                    client.fetch::<Authorization>(ctx.key, &pending.account_url, &url)?;
                challenge_pending = authz.email_reply().map(|c| c.status) == Some(Status::Pending);
                match authz.status {
                    Status::Valid => return validated(ctx, pending),
                    Status::Pending | Status::Processing => {
                        poll.wait_at_least(response.retry_after)
                    }
                    status => {
                        return Ok(Verdict::Refused {
                            status,
                            problem: authz.email_reply().and_then(|c| c.error.clone()),
                        });
                    }
                }
            }

            ctx.timed_out(&if pending.answers.is_empty() {
                format!("no challenge mail from {from} reached {}", settings.email)
            } else if pending.replied() {
                "the CA did not finish checking the reply".to_owned()
            } else {
                "the reply could not be sent".to_owned()
            })?;
            let fast = started.elapsed() < FAST_WINDOW
                || posting.is_some()
                || watcher.busy_within(WAIT_SLICE);
            if fast {
                ctx.sleep(FAST_POLL);
                continue;
            }
            let mut slice = WAIT_SLICE.min(ctx.deadline.saturating_duration_since(Instant::now()));
            if pending.challenge_posted {
                slice = slice.min(poll.left());
            }
            if pending.unsent().next().is_some() {
                slice = slice.min(send_retry.left());
            }
            if let Err(e) = mailbox.wait("INBOX", slice) {
                ctx.out.warn(&format!("IMAP: {e}; reconnecting"));
                *mailbox = reconnect(ctx, tls, login)?;
            }
        })();
        if result.is_err() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        result
    })
}

fn pending_challenge(pending: &Pending) -> &str {
    pending.challenge_url.as_deref().unwrap_or_default()
}

fn validated(ctx: &Ctx<'_>, pending: &mut Pending) -> Result<Verdict, Error> {
    pending.validated = true;
    ctx.save(pending)?;
    Ok(Verdict::Valid)
}

/// Keeps what the first challenge mail of this order says about when the CA sends it.
fn note_timing(ctx: &Ctx<'_>, posted: bool, posted_after_wait: Option<i64>, date: Option<i64>) {
    let settings = ctx.settings;
    let setting = settings.challenge_timing;
    let Some(seen) = learn::timing_seen(setting, posted, posted_after_wait, date) else {
        return;
    };
    let mut learned = learn::load(ctx.store, &settings.server);
    learned.mail_timing = Some(seen);
    match learn::save(ctx.store, &learned) {
        Ok(true) => ctx.out.info(&format!(
            "learned: {} {} (kept in {})",
            settings.server,
            seen.describe(),
            learn::path(ctx.store, &settings.server).display()
        )),
        Ok(false) => {}
        Err(e) => ctx
            .out
            .warn(&format!("could not keep what was learned: {e}")),
    }
}

/// POSTs the challenge. The caller saved `challenge_posted` first, so a rerun does not POST
/// again unless the CA still shows the challenge pending.
fn post_challenge(
    acme: &mut AcmeClient,
    key: &AccountKey,
    account: &str,
    url: &str,
) -> Result<Status, Error> {
    let response = acme.post(key, KeyRef::Kid(account), url, Some(&json!({})))?;
    let challenge: Challenge = response.json(url)?;
    Ok(challenge.status)
}

/// A delay that grows while something keeps failing (or pending), and a due time.
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    delay: Duration,
    at: Instant,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            delay: first,
            at: Instant::now(),
        }
    }

    pub(crate) fn due(&self) -> bool {
        Instant::now() >= self.at
    }

    pub(crate) fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    pub(crate) fn reset(&mut self) {
        self.delay = self.first;
        self.at = Instant::now();
    }

    pub(crate) fn wait_longer(&mut self) {
        self.at = Instant::now() + self.delay;
        self.delay = (self.delay * 2).min(self.max);
    }

    /// Waits the next delay, or what the server asks for (at least a second).
    pub(crate) fn wait_at_least(&mut self, asked: Option<Duration>) {
        let wait = asked.map_or(self.delay, |d| d.max(Duration::from_secs(1)));
        self.at = Instant::now() + wait;
        self.delay = (self.delay * 2).min(self.max);
    }
}

/// Sends (or sends again) the reply to answer `i`, recording intent and outcome. Refusal for
/// good (5xx) ends the run; a reply that surely did not go out waits for the next try.
fn send(
    ctx: &Ctx<'_>,
    sender: &mut Sender<'_>,
    pending: &mut Pending,
    i: usize,
) -> Result<(), Error> {
    let settings = ctx.settings;
    let answer = pending.answers[i].clone();
    let part2 = pending.token_part2.clone().unwrap_or_default();
    let mode = pending.token_join.unwrap_or_default();
    let token = response::join_tokens(&answer.token_part1, &part2, mode)
        .map_err(|e| Error::CaRefused(e.to_string()))?;
    let agree = if response::join_modes_agree(&answer.token_part1) {
        "both join modes agree for this token"
    } else {
        "the join modes differ for this token"
    };
    ctx.out
        .info(&format!("token parts joined as {} ({agree})", mode.name()));
    let digest = response::response_digest(&response::key_authorization(
        &token,
        &ctx.key.jwk().thumbprint(),
    ));
    let mut random = [0u8; 12];
    jws::random_bytes(&mut random)?;
    let domain = mail::domain_of(&settings.email);
    let message_id = format!("{}.{}@{domain}", crate::clock::now(), jws::b64u(random));
    let date = crate::clock::rfc5322(crate::clock::now());
    let reply = Reply {
        from: &settings.email,
        to: &answer.reply_to,
        token_part1: &answer.token_part1,
        in_reply_to: &answer.message_id,
        message_id: &message_id,
        date: &date,
        digest: &digest,
    };
    ctx.out.phase(&format!(
        "replying to {} through {}",
        answer.reply_to,
        settings
            .smtp
            .as_ref()
            .map_or_else(String::new, ToString::to_string)
    ));
    pending.answers[i].attempts += 1;
    ctx.save(pending)?;
    // Recorded as being sent only once the server is ready for the message: a kill before that
    // leaves it not sent, to be sent by the rerun; a kill after, unknown, never sent again.
    let mut saved = Ok(());
    let result = sender.send(&settings.email, &answer.reply_to, &reply.to_bytes(), || {
        pending.answers[i].state = ReplyState::Sending;
        saved = ctx.save(pending);
        saved.is_ok()
    });
    saved?;
    let entry = &mut pending.answers[i];
    let outcome = match result {
        Ok(()) => {
            entry.state = ReplyState::Sent;
            entry.sent_at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis() as u64);
            ctx.out.info(&format!(
                "reply to <{}> (token-part1 {}) accepted by the SMTP server",
                answer.message_id, answer.token_part1
            ));
            Ok(())
        }
        Err(SendError::NotSent(e)) => {
            entry.state = ReplyState::NotSent;
            ctx.out
                .warn(&format!("the reply was not sent ({e}); trying again"));
            Ok(())
        }
        Err(SendError::Refused(e)) => {
            entry.state = ReplyState::NotSent;
            Err(Error::Mail(e))
        }
        Err(SendError::Unknown(e)) => {
            entry.state = ReplyState::Unknown;
            ctx.out.warn(&format!(
                "the connection was lost after the reply went out ({e}); it may have arrived, \
                 so it is not sent again"
            ));
            Ok(())
        }
    };
    ctx.save(pending)?;
    outcome
}
