//! Reading a watched mailbox for challenge mails: each new mail's headers once, the whole mail
//! only for a candidate, every mail judged (a rejection logged with its reason), mails whose
//! DKIM keys could not be fetched judged again with a growing time budget, and the mailbox
//! reopened when the connection breaks. IO driver over `challenge`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::watch::Ctx;
use super::{Pending, dated_for_order};
use crate::Error;
use crate::challenge::authenticity::{AuthFailure, ChallengeAuth};
use crate::challenge::mail::{self, ChallengeMail, Expected, Rejection};
use crate::mail::dkim::Verifier;
use crate::mail::imap::{Mailbox, Mark};
use crate::mail::{Login, MailError};

/// How long the DKIM keys of one mail may take to fetch at first; a mail whose lookups ran out
/// is judged again later with twice the time, after twice the wait, so that a mail naming DNS
/// that never answers cannot hold up the next one for long.
pub const DKIM_BUDGET: Duration = Duration::from_secs(1);

/// A challenge mail that passed every check, and where it lies.
pub struct Found {
    pub folder: String,
    pub uid: u32,
    pub accepted: mail::Accepted,
    /// Its signed Date (Unix seconds).
    pub date: Option<i64>,
}

/// When to judge a mail again, how many times it was tried, and the mail (unless too many are
/// kept already).
#[derive(Debug, Clone)]
struct Retry {
    at: Instant,
    tries: u32,
    raw: Option<Vec<u8>>,
}

/// Mails kept in memory for another DKIM try, at most.
const DNS_RETRY_KEPT: usize = 16;

/// Reads new mail and judges it.
pub struct Watcher<'c> {
    ctx: &'c Ctx<'c>,
    verifier: Option<Verifier>,
    from: String,
    /// Where the next look starts, per folder.
    cursors: BTreeMap<String, Mark>,
    /// Mails whose DKIM keys could not be fetched, to judge again.
    dns_retry: BTreeMap<(String, u32), Retry>,
    /// The last look stopped at its bound with more new mail left.
    more: bool,
}

impl<'c> Watcher<'c> {
    /// A watcher of the folders from `cursors` on, for challenge mails from `from`.
    pub fn new(
        ctx: &'c Ctx<'c>,
        from: &str,
        cursors: BTreeMap<String, Mark>,
    ) -> Result<Watcher<'c>, Error> {
        let verifier = match ctx.settings.challenge_auth {
            ChallengeAuth::Dkim => Some(
                Verifier::new(ctx.settings.dns_server).map_err(|e| Error::Usage(e.to_string()))?,
            ),
            _ => None,
        };
        Ok(Watcher {
            ctx,
            verifier,
            from: from.to_owned(),
            cursors,
            dns_retry: BTreeMap::new(),
            more: false,
        })
    }

    /// Whether there is more to look at within `soon`: new mail past the last look's bound,
    /// or a mail due to be judged again.
    pub fn busy_within(&self, soon: Duration) -> bool {
        self.more
            || self
                .dns_retry
                .values()
                .any(|r| r.at < Instant::now() + soon)
    }

    /// The mails that arrived since the last look (and those whose DNS lookup is due again)
    /// that pass every check, oldest first; every other one is logged with its reason.
    pub fn look(
        &mut self,
        mailbox: &mut Mailbox,
        pending: &Pending,
        login: Login<'_>,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<Vec<Found>, Error> {
        let ctx = self.ctx;
        let mut found = Vec::new();
        self.more = false;
        for folder in &ctx.settings.folders {
            let Some(cursor) = self.cursors.get(folder).copied() else {
                continue;
            };
            let batch = match mailbox.new_headers(folder, cursor) {
                Ok(batch) => batch,
                Err(e) => {
                    ctx.out.warn(&format!("IMAP: {e}; reconnecting"));
                    *mailbox = reconnect(ctx, tls, login)?;
                    continue;
                }
            };
            if batch.validity_changed {
                ctx.out.warn(&format!(
                    "{folder} was renumbered (UIDVALIDITY changed): only mail dated after the \
                     order counts"
                ));
            }
            self.cursors.insert(folder.clone(), batch.next);
            self.more |= batch.more;
            for (uid, header) in batch.mails {
                let parsed = ChallengeMail::parse(&header);
                let subject = parsed
                    .subject
                    .clone()
                    .unwrap_or_else(|| "(no subject)".into());
                let expected = self.expected();
                let policy = &ctx.settings.challenge_auth;
                if let Err(reason) = mail::judge_header_block(&parsed, expected, policy) {
                    ignored(ctx.out, uid, folder, &subject, &reason);
                    continue;
                }
                if batch.validity_changed && !dated_for_order(parsed.date, pending.created) {
                    ctx.out.info(&format!(
                        "ignored mail {uid} in {folder} ({subject:?}): dated before this order"
                    ));
                    continue;
                }
                let raw = match mailbox.message(folder, uid) {
                    Ok(Some(raw)) => raw,
                    Ok(None) => {
                        ctx.out.info(&format!(
                            "ignored mail {uid} in {folder}: gone or too large"
                        ));
                        continue;
                    }
                    Err(e) => {
                        // Looked at again from this mail on, over a new connection.
                        ctx.out.warn(&format!("IMAP: {e}; reconnecting"));
                        self.cursors.insert(
                            folder.clone(),
                            Mark {
                                uid_validity: batch.next.uid_validity,
                                uid_next: uid,
                            },
                        );
                        *mailbox = reconnect(ctx, tls, login)?;
                        break;
                    }
                };
                self.judge_whole(folder, uid, Some(raw), 0, &mut found);
            }
        }
        // New mail first: mail whose DNS did not answer is judged again after it.
        let due: Vec<(String, u32)> = self
            .dns_retry
            .iter()
            .filter(|(_, r)| Instant::now() >= r.at)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(retry) = self.dns_retry.remove(&key) {
                let raw = match retry.raw {
                    Some(raw) => Some(raw),
                    None => mailbox.message(&key.0, key.1).ok().flatten(),
                };
                self.judge_whole(&key.0, key.1, raw, retry.tries, &mut found);
            }
        }
        Ok(found)
    }

    fn expected(&self) -> Expected<'_> {
        Expected {
            email: &self.ctx.settings.email,
            from: &self.from,
        }
    }

    /// Judges a candidate whole, with its authenticity evidence.
    fn judge_whole(
        &mut self,
        folder: &str,
        uid: u32,
        raw: Option<Vec<u8>>,
        tries: u32,
        found: &mut Vec<Found>,
    ) {
        let ctx = self.ctx;
        let Some(raw) = raw else {
            ctx.out.info(&format!(
                "ignored mail {uid} in {folder}: gone or too large"
            ));
            return;
        };
        let parsed = ChallengeMail::parse(&raw);
        let subject = parsed
            .subject
            .clone()
            .unwrap_or_else(|| "(no subject)".into());
        let dkim = self
            .verifier
            .as_ref()
            .map(|v| {
                let budget = DKIM_BUDGET.saturating_mul(1 << tries.min(6));
                let until = ctx.deadline.min(Instant::now() + budget);
                v.verify_from(&raw, mail::domain_of(&self.from), until)
            })
            .unwrap_or_default();
        match mail::judge(
            &parsed,
            self.expected(),
            &ctx.settings.challenge_auth,
            &dkim,
        ) {
            Ok(accepted) => found.push(Found {
                folder: folder.to_owned(),
                uid,
                accepted,
                date: parsed.date,
            }),
            Err(Rejection::NotAuthentic(AuthFailure::DkimTemporary(reason))) => {
                ctx.out.warn(&format!(
                    "mail {uid} in {folder}: DKIM key lookup failed ({reason}); will retry"
                ));
                let wait = DKIM_BUDGET.saturating_mul(1 << tries.min(6));
                // Kept in memory up to a bound; beyond it, downloaded again when due.
                let kept = self.dns_retry.values().filter(|r| r.raw.is_some()).count();
                self.dns_retry.insert(
                    (folder.to_owned(), uid),
                    Retry {
                        at: Instant::now() + wait,
                        tries: tries + 1,
                        raw: (kept < DNS_RETRY_KEPT).then_some(raw),
                    },
                );
            }
            Err(reason) => ignored(ctx.out, uid, folder, &subject, &reason),
        }
    }
}

fn ignored(
    out: super::engine::Reporter<'_>,
    uid: u32,
    folder: &str,
    subject: &str,
    reason: &Rejection,
) {
    out.info(&format!(
        "ignored mail {uid} in {folder} ({subject:?}): {reason}"
    ));
}

pub fn reconnect(
    ctx: &Ctx<'_>,
    tls: &Arc<rustls::ClientConfig>,
    login: Login<'_>,
) -> Result<Mailbox, Error> {
    let s = ctx.settings;
    let imap = s
        .imap
        .as_ref()
        .ok_or_else(|| Error::Internal("no IMAP server to reconnect to".into()))?;
    let mut delay = Duration::from_secs(1);
    loop {
        match Mailbox::open_via(
            imap,
            s.imap_security,
            Arc::clone(tls),
            login,
            Some(ctx.deadline),
            s.dns_server,
        ) {
            Ok(mailbox) => return Ok(mailbox),
            // A server starting up refuses logins for a moment ("[UNAVAILABLE]").
            Err(e @ MailError::Login { .. }) if !e.to_string().contains("UNAVAILABLE") => {
                return Err(e.into());
            }
            // No access token: only a token endpoint that cannot be reached is waited for.
            Err(e @ MailError::Token(_)) if !e.is_transient_token_failure() => {
                return Err(e.into());
            }
            Err(e) => {
                ctx.timed_out(&format!("the IMAP server stayed unreachable ({e})"))?;
                ctx.out
                    .warn(&format!("{e}; retrying in {}s", delay.as_secs()));
                ctx.sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}
