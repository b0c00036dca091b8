//! The issuance in progress, as saved in the state folder before every step with an effect
//! outside the process, and the pure decision of what to do next. A rerun after a kill reads
//! the record and continues; it never answers a challenge mail twice.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::mail::imap::Mark;

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
    /// token-part1, once a challenge mail was accepted.
    pub token_part1: Option<String>,
    /// The Message-ID of the challenge mail being answered: saved before the reply is sent.
    pub answered_message_id: Option<String>,
    /// The reply was accepted by the SMTP server.
    pub reply_sent: bool,
    /// When it was accepted (Unix milliseconds).
    #[serde(default)]
    pub reply_sent_at: Option<u64>,
    /// The challenge was POSTed.
    pub challenge_posted: bool,
    /// The certificate key, written before finalize.
    pub key_file: Option<PathBuf>,
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Fetch the authorization and note the challenge.
    FetchAuthorization,
    /// Watch the mailbox for the challenge mail and answer it.
    AnswerMail,
    /// Tell the CA the challenge is answered.
    PostChallenge,
    /// Wait for the authorization to become valid.
    AwaitValidation,
}

impl Pending {
    /// The next step. A challenge mail whose answer was recorded but maybe not sent (a kill in
    /// between) is never answered again: the run goes on to POST and lets the CA judge.
    pub fn next_step(&self) -> Step {
        if self.challenge_url.is_none() {
            Step::FetchAuthorization
        } else if self.answered_message_id.is_none() {
            Step::AnswerMail
        } else if !self.challenge_posted {
            Step::PostChallenge
        } else {
            Step::AwaitValidation
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_what_was_saved() {
        let mut p = Pending::default();
        assert_eq!(p.next_step(), Step::FetchAuthorization);
        p.challenge_url = Some("https://ca/chall/1".into());
        assert_eq!(p.next_step(), Step::AnswerMail);
        // The early POST of servers that send the mail only then does not skip the answer.
        p.challenge_posted = true;
        assert_eq!(p.next_step(), Step::AnswerMail);
        p.challenge_posted = false;
        p.answered_message_id = Some("m1@ca.test".into());
        assert_eq!(
            p.next_step(),
            Step::PostChallenge,
            "recorded but unsent: never answered again"
        );
        p.reply_sent = true;
        assert_eq!(p.next_step(), Step::PostChallenge);
        p.challenge_posted = true;
        assert_eq!(p.next_step(), Step::AwaitValidation);
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
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Pending>(&text).unwrap(), p);
    }
}
