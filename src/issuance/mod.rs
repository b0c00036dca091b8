//! The issuance in progress, as saved in the state folder before every step with an effect
//! outside the process, and the pure decisions over it: what to do next, which challenge mails
//! may still be answered, and what a reply's outcome means. A rerun after a kill reads the
//! record and continues; it never answers a challenge mail twice. The mail-watching driver that
//! acts on these decisions is `watch`.

pub mod engine;
mod inbox;
pub mod learn;
mod reorder;
mod save;
pub mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::challenge::response::TokenJoin;
use crate::mail::imap::Mark;

/// At most this many challenge mails are answered for one order. Every authenticated challenge
/// mail that arrives after the order's mark is answered (a second order for the same address,
/// from another machine or by someone else, sends one too, and which one is ours cannot be
/// told), but a flood is not.
pub const MAX_ANSWERS: usize = 8;

/// Mails older than the order by more than this (their signed `Date`) are not ours. Applied
/// where arrival order says nothing: after a folder's UIDVALIDITY changed.
pub const DATE_SKEW_SECS: i64 = 300;

/// The saved state of one issuance (`pending/<email>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Pending {
    pub email: String,
    /// The directory URL.
    pub server: String,
    pub account_url: String,
    pub order_url: String,
    /// Unix time the order was created.
    pub created: i64,
    /// Where new mail started in each watched folder, noted before the order was created.
    pub marks: BTreeMap<String, Mark>,
    pub authorization_url: Option<String>,
    pub finalize_url: Option<String>,
    pub challenge_url: Option<String>,
    /// token-part2.
    pub token_part2: Option<String>,
    /// The challenge's `from`.
    pub challenge_from: Option<String>,
    /// Every challenge mail answered (or about to be) for this order, in order.
    #[serde(default)]
    pub answers: Vec<Answer>,
    /// The challenge was POSTed.
    pub challenge_posted: bool,
    /// The authorization is valid: no more mail to answer.
    #[serde(default)]
    pub validated: bool,
    /// The certificate key, written before finalize.
    pub key_file: Option<PathBuf>,
    /// The order is valid: its certificate is to be downloaded from here.
    #[serde(default)]
    pub certificate_url: Option<String>,
    /// The token join this order's replies use, decided when the order is made.
    #[serde(default)]
    pub token_join: Option<TokenJoin>,
    /// The join the CA rejected in the order before this one: this order is the one more try
    /// with the other join, and none follows it.
    #[serde(default)]
    pub rejected_join: Option<TokenJoin>,
}

/// One challenge mail and the reply to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The challenge mail's Message-ID.
    pub message_id: String,
    /// Its token-part1.
    pub token_part1: String,
    /// Where the reply goes.
    pub reply_to: String,
    pub state: ReplyState,
    /// Transfers tried.
    #[serde(default)]
    pub attempts: u32,
    /// When the SMTP server accepted the reply (Unix milliseconds).
    #[serde(default)]
    pub sent_at: Option<u64>,
}

/// Where a reply stands. Recorded as `Sending` before the transfer starts and as its outcome
/// after, so a kill in between leaves `Sending`, read back as [`ReplyState::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplyState {
    /// The transfer is under way (or was, when the run was killed).
    Sending,
    /// The server accepted the message (250 after the end of data).
    Sent,
    /// It surely did not go out (refused with 4xx, or the connection failed before the end of
    /// the data): to be tried again.
    NotSent,
    /// The connection was lost after the message went out: it may have been delivered, so it
    /// is never sent again.
    Unknown,
}

impl Answer {
    /// Whether the reply went out, or may have: never to be sent again.
    pub fn gone_out(&self) -> bool {
        matches!(
            self.state,
            ReplyState::Sent | ReplyState::Unknown | ReplyState::Sending
        )
    }
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Note where new mail starts, then order.
    Order,
    /// Fetch the authorization and note the challenge.
    FetchAuthorization,
    /// Watch the mailbox, answer challenge mails, tell the CA, until the authorization is
    /// valid.
    Validate,
    /// Make the certificate key (or take the one to certify again) and save it.
    Key,
    /// Send the CSR and wait until the order is valid.
    Finalize,
    /// Download the chain, check it and save the bundle.
    Download,
}

impl Pending {
    /// The next step.
    pub fn next_step(&self) -> Step {
        if self.order_url.is_empty() {
            Step::Order
        } else if self.challenge_url.is_none() {
            Step::FetchAuthorization
        } else if !self.validated {
            Step::Validate
        } else if self.key_file.is_none() {
            Step::Key
        } else if self.certificate_url.is_none() {
            Step::Finalize
        } else {
            Step::Download
        }
    }

    /// Reads a record back after a run ended: a transfer that was under way may have
    /// delivered the reply, so it counts as unknown and is never repeated.
    pub fn resumed(mut self) -> Pending {
        for answer in &mut self.answers {
            if answer.state == ReplyState::Sending {
                answer.state = ReplyState::Unknown;
            }
        }
        self
    }

    /// Whether a challenge mail with `message_id` was already taken up for this order.
    pub fn has_answer(&self, message_id: &str) -> bool {
        self.answers.iter().any(|a| a.message_id == message_id)
    }

    /// Whether one more challenge mail may be answered for this order.
    pub fn may_answer_more(&self) -> bool {
        self.answers.len() < MAX_ANSWERS
    }

    /// The answers whose transfer is to be tried (again).
    pub fn unsent(&self) -> impl Iterator<Item = usize> + '_ {
        self.answers
            .iter()
            .enumerate()
            .filter(|(_, a)| a.state == ReplyState::NotSent)
            .map(|(i, _)| i)
    }

    /// Whether some reply went out (or may have): the CA may be told.
    pub fn replied(&self) -> bool {
        self.answers.iter().any(Answer::gone_out)
    }

    /// When the first reply was accepted (Unix milliseconds).
    pub fn first_sent_at(&self) -> Option<u64> {
        self.answers.iter().filter_map(|a| a.sent_at).min()
    }

    /// Whether a record holds work that a new order must not throw away: a reply under way or
    /// sent, or a POSTed challenge.
    pub fn has_effects(&self) -> bool {
        self.challenge_posted || !self.answers.is_empty()
    }
}

/// Whether a mail dated `date` (Unix seconds, from its signed Date header) may belong to an
/// order created at `created`.
pub fn dated_for_order(date: Option<i64>, created: i64) -> bool {
    date.is_some_and(|d| d >= created - DATE_SKEW_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: &str, state: ReplyState) -> Answer {
        Answer {
            message_id: id.into(),
            token_part1: "t".into(),
            reply_to: "acme@ca.test".into(),
            state,
            attempts: 1,
            sent_at: None,
        }
    }

    #[test]
    fn steps_follow_what_was_saved() {
        let mut p = Pending::default();
        assert_eq!(p.next_step(), Step::Order);
        p.order_url = "https://ca/order/1".into();
        assert_eq!(p.next_step(), Step::FetchAuthorization);
        p.challenge_url = Some("https://ca/chall/1".into());
        assert_eq!(p.next_step(), Step::Validate);
        // The early POST of servers that send the mail only then does not end the watch.
        p.challenge_posted = true;
        assert_eq!(p.next_step(), Step::Validate);
        p.answers.push(answer("m1@ca.test", ReplyState::Sent));
        assert_eq!(p.next_step(), Step::Validate);
        p.validated = true;
        assert_eq!(p.next_step(), Step::Key);
        p.key_file = Some("pending/a.key.pem".into());
        assert_eq!(p.next_step(), Step::Finalize);
        p.certificate_url = Some("https://ca/cert/1".into());
        assert_eq!(p.next_step(), Step::Download);
    }

    #[test]
    fn a_transfer_cut_by_a_kill_is_never_repeated() {
        let mut p = Pending::default();
        p.answers.push(answer("a@ca.test", ReplyState::Sending));
        p.answers.push(answer("b@ca.test", ReplyState::NotSent));
        p.answers.push(answer("c@ca.test", ReplyState::Sent));
        let p = p.resumed();
        assert_eq!(p.answers[0].state, ReplyState::Unknown);
        assert!(p.answers[0].gone_out());
        assert_eq!(
            p.unsent().collect::<Vec<_>>(),
            vec![1],
            "only the unsent one"
        );
        assert!(p.replied());
        assert!(p.has_answer("b@ca.test") && !p.has_answer("d@ca.test"));
    }

    #[test]
    fn answers_are_bounded_per_order() {
        let mut p = Pending::default();
        for i in 0..MAX_ANSWERS {
            assert!(p.may_answer_more());
            p.answers
                .push(answer(&format!("{i}@ca.test"), ReplyState::Sent));
        }
        assert!(!p.may_answer_more());
    }

    #[test]
    fn records_with_replies_or_posts_are_not_to_be_replaced() {
        let mut p = Pending::default();
        assert!(!p.has_effects());
        p.challenge_posted = true;
        assert!(p.has_effects());
        p.challenge_posted = false;
        p.answers.push(answer("a@ca.test", ReplyState::NotSent));
        assert!(p.has_effects());
    }

    #[test]
    fn old_mail_is_not_for_a_new_order() {
        let created = 1_800_000_000;
        assert!(dated_for_order(Some(created), created));
        assert!(dated_for_order(Some(created - 60), created), "clock skew");
        assert!(!dated_for_order(Some(created - 3600), created));
        assert!(!dated_for_order(None, created), "undated mail is not ours");
    }

    #[test]
    fn survives_a_round_trip_through_json() {
        let mut p = Pending {
            email: "alice@example.test".into(),
            ..Pending::default()
        };
        p.marks.insert(
            "INBOX".into(),
            Mark {
                uid_validity: 7,
                uid_next: 42,
            },
        );
        p.answers.push(answer("a@ca.test", ReplyState::Unknown));
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains("\"state\":\"unknown\""), "{text}");
        assert_eq!(serde_json::from_str::<Pending>(&text).unwrap(), p);
    }
}
