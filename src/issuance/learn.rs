//! What smime-acme learns about a CA from its answers, kept per CA in the state folder
//! (`accounts/<server-id>/learned.json`), and the pure decisions over it: which token join an
//! order answers with, whether a rejected reply is worth one more order with the other join,
//! what a validated order proves, and when to tell the CA the challenge is answered.
//!
//! Precedence, for both the join and the timing: an explicit setting, then what was learned
//! from this CA, then the built-in table (`known_cas`), then the default (string join, `auto`
//! timing). Learned values come before the table because they are what this CA did for this
//! client most recently, and a CA can change after the table was written; a learned join is
//! kept only on proof (a validated order whose token the two joins disagree on, or one that
//! validated after the other join was rejected), and a wrong one corrects itself: with `auto`,
//! a rejected reply leads to one more order with the other join, which is then learned.
//! Everything but [`load`] and [`save`] is pure.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Pending;
use crate::acme::types::Problem;
use crate::challenge::response::{JoinChoice, TokenJoin, join_modes_agree};
use crate::known_cas::{KnownCa, MailTiming};
use crate::settings::ChallengeTiming;
use crate::store::{self, Store, StoreError};

/// What was learned about one CA (`learned.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// The directory URL.
    #[serde(default)]
    pub server: String,
    /// How the CA joins the token parts.
    #[serde(default)]
    pub token_join: Option<TokenJoin>,
    /// When the CA sends the challenge mail.
    #[serde(default)]
    pub mail_timing: Option<MailTiming>,
}

/// Where a join or a timing came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The setting (--token-join, --challenge-timing, or the configuration file).
    Setting,
    /// Learned from this CA earlier.
    Learned,
    /// The built-in table of known CAs.
    Table,
    /// Nothing known: the default.
    Default,
    /// The one more order after the CA rejected the other join.
    Retry,
    /// Chosen when the order under way was made.
    Order,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::Setting => "as set by flag or configuration",
            Source::Learned => "learned from this CA",
            Source::Table => "from the built-in list of known CAs",
            Source::Default => "the default: nothing is known about this CA",
            Source::Retry => "the CA rejected the other join",
            Source::Order => "as chosen when this order was made",
        }
    }
}

/// The join a new order answers with.
pub fn first_join(
    choice: JoinChoice,
    learned: &Learned,
    table: Option<&KnownCa>,
) -> (TokenJoin, Source) {
    if let Some(join) = choice.fixed() {
        (join, Source::Setting)
    } else if let Some(join) = learned.token_join {
        (join, Source::Learned)
    } else if let Some(ca) = table {
        (ca.join, Source::Table)
    } else {
        (TokenJoin::default(), Source::Default)
    }
}

/// The join of one more order, when the CA rejected this order's reply as an incorrect
/// response and the other join would have given another digest: only with `auto`, and only
/// once (not after an order that was itself the retry).
pub fn reorder_join(
    choice: JoinChoice,
    pending: &Pending,
    problem: Option<&Problem>,
) -> Option<TokenJoin> {
    if choice != JoinChoice::Auto || pending.rejected_join.is_some() {
        return None;
    }
    if !problem.is_some_and(|p| p.is("incorrectResponse")) {
        return None;
    }
    let differs = pending
        .answers
        .iter()
        .any(|a| a.gone_out() && !join_modes_agree(&a.token_part1));
    differs.then_some(pending.token_join?.other())
}

/// The record of the one more order after `rejected`'s reply was refused: no order yet, the
/// other join, and the rejected join noted so that no further order follows.
pub fn retry_record(rejected: &Pending, join: TokenJoin) -> Pending {
    Pending {
        email: rejected.email.clone(),
        server: rejected.server.clone(),
        account_url: rejected.account_url.clone(),
        token_join: Some(join),
        rejected_join: Some(join.other()),
        ..Pending::default()
    }
}

/// A saved record without an order: when it is the one more order with the other join (a run
/// killed before that order was made), that order is still to be made, for `server` with the
/// account at `account_url`; else nothing is carried over.
pub fn retry_not_ordered(saved: &Pending, server: &str, account_url: &str) -> Option<Pending> {
    match (saved.token_join, saved.rejected_join) {
        (Some(join), Some(_)) if saved.order_url.is_empty() && saved.server == server => {
            Some(Pending {
                account_url: account_url.to_owned(),
                ..retry_record(saved, join)
            })
        }
        _ => None,
    }
}

/// The join a validated order proves: every reply went out for a token the two joins disagree
/// on, or the order is the retry after the other join was rejected.
pub fn proven_join(pending: &Pending) -> Option<TokenJoin> {
    let join = pending.token_join?;
    let answered: Vec<_> = pending.answers.iter().filter(|a| a.gone_out()).collect();
    if !pending.validated || answered.is_empty() {
        return None;
    }
    let all_differ = answered.iter().all(|a| !join_modes_agree(&a.token_part1));
    (all_differ || pending.rejected_join == Some(join.other())).then_some(join)
}

/// The timing to use: a set `reply-first` or `post-first` as is; with `auto`, POST at once for
/// a CA known to mail only after the POST, else reply first with the short first wait.
pub fn timing(
    setting: ChallengeTiming,
    learned: &Learned,
    table: Option<&KnownCa>,
) -> (ChallengeTiming, Source, Option<MailTiming>) {
    if setting != ChallengeTiming::Auto {
        return (setting, Source::Setting, None);
    }
    let (known, source) = match (learned.mail_timing, table) {
        (Some(t), _) => (Some(t), Source::Learned),
        (None, Some(ca)) => (Some(ca.timing), Source::Table),
        (None, None) => (None, Source::Default),
    };
    let timing = match known {
        Some(MailTiming::AfterPost) => ChallengeTiming::PostFirst,
        _ => ChallengeTiming::Auto,
    };
    (timing, source, known)
}

/// How much earlier than the POST a mail sent in answer to it may be dated (clocks differ).
pub const DATE_SLACK_SECS: i64 = 5;

/// What the first challenge mail of an order says about the CA, with `auto` timing: it came
/// before any POST (the CA mails on the authorization), or after the POST made at
/// `posted_after_wait` because no mail came within the first wait, and is dated (signed Date,
/// Unix seconds) no earlier than that POST (the CA mails only then, rather than late). Nothing
/// when the POST was made at once or by an earlier run.
pub fn timing_seen(
    setting: ChallengeTiming,
    posted: bool,
    posted_after_wait: Option<i64>,
    date: Option<i64>,
) -> Option<MailTiming> {
    if setting != ChallengeTiming::Auto {
        return None;
    }
    if !posted {
        return Some(MailTiming::OnAuthorization);
    }
    let (posted_at, date) = (posted_after_wait?, date?);
    (date >= posted_at - DATE_SLACK_SECS).then_some(MailTiming::AfterPost)
}

/// The learned-state file of the CA at `server`.
pub fn path(store: &Store, server: &str) -> PathBuf {
    store.learned_file(server)
}

/// What was learned about the CA at `server`; nothing when the file is missing, damaged, or
/// kept for another URL.
pub fn load(store: &Store, server: &str) -> Learned {
    match store::read_json::<Learned>(&path(store, server)) {
        Ok(Some(learned)) if learned.server == server => learned,
        _ => Learned {
            server: server.to_owned(),
            ..Learned::default()
        },
    }
}

/// Keeps `learned` (atomically); false when it was known already.
pub fn save(store: &Store, learned: &Learned) -> Result<bool, StoreError> {
    if load(store, &learned.server) == *learned {
        return Ok(false);
    }
    store::write_json(&path(store, &learned.server), learned)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuance::{Answer, ReplyState};
    use crate::known_cas::KNOWN;

    /// 22 characters: the joins disagree. 32: they agree.
    const DIFFER: &str = "jpgHkpwS7AaZVlsOOTrh4A";
    const AGREE: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";

    fn answered(part1: &str, state: ReplyState) -> Answer {
        Answer {
            message_id: format!("{part1}@ca.test"),
            token_part1: part1.into(),
            reply_to: "acme@ca.test".into(),
            state,
            attempts: 1,
            sent_at: None,
        }
    }

    fn order(join: TokenJoin, part1: &str) -> Pending {
        Pending {
            email: "staff70@example.test".into(),
            server: "https://ca.test/dir".into(),
            account_url: "https://ca.test/acct/1".into(),
            order_url: "https://ca.test/order/1".into(),
            token_join: Some(join),
            answers: vec![answered(part1, ReplyState::Sent)],
            challenge_posted: true,
            ..Pending::default()
        }
    }

    fn problem(name: &str) -> Problem {
        Problem {
            kind: format!("urn:ietf:params:acme:error:{name}"),
            ..Problem::default()
        }
    }

    fn learned(join: Option<TokenJoin>, timing: Option<MailTiming>) -> Learned {
        Learned {
            server: "https://ca.test/dir".into(),
            token_join: join,
            mail_timing: timing,
        }
    }

    #[test]
    fn the_first_join_is_set_then_learned_then_table_then_string() {
        let castle = Some(&KNOWN[0]);
        let none = learned(None, None);
        let bytes = learned(Some(TokenJoin::Bytes), None);
        let string = learned(Some(TokenJoin::String), None);
        assert_eq!(
            first_join(JoinChoice::String, &bytes, castle),
            (TokenJoin::String, Source::Setting)
        );
        assert_eq!(
            first_join(JoinChoice::Bytes, &none, None),
            (TokenJoin::Bytes, Source::Setting)
        );
        assert_eq!(
            first_join(JoinChoice::Auto, &string, castle),
            (TokenJoin::String, Source::Learned),
            "learned beats the table"
        );
        assert_eq!(
            first_join(JoinChoice::Auto, &none, castle),
            (TokenJoin::Bytes, Source::Table)
        );
        assert_eq!(
            first_join(JoinChoice::Auto, &none, None),
            (TokenJoin::String, Source::Default)
        );
    }

    #[test]
    fn an_incorrect_response_for_a_token_the_joins_disagree_on_is_ordered_once_more() {
        let wrong = problem("incorrectResponse");
        let p = order(TokenJoin::String, DIFFER);
        assert_eq!(
            reorder_join(JoinChoice::Auto, &p, Some(&wrong)),
            Some(TokenJoin::Bytes)
        );
        // Never with a set join, for another refusal, without a problem, or for a token both
        // joins agree on.
        assert_eq!(reorder_join(JoinChoice::String, &p, Some(&wrong)), None);
        assert_eq!(
            reorder_join(JoinChoice::Auto, &p, Some(&problem("unauthorized"))),
            None
        );
        assert_eq!(reorder_join(JoinChoice::Auto, &p, None), None);
        let agree = order(TokenJoin::String, AGREE);
        assert_eq!(reorder_join(JoinChoice::Auto, &agree, Some(&wrong)), None);
        // A reply that surely did not go out proves nothing.
        let mut unsent = order(TokenJoin::String, DIFFER);
        unsent.answers[0].state = ReplyState::NotSent;
        assert_eq!(reorder_join(JoinChoice::Auto, &unsent, Some(&wrong)), None);

        // The retry itself is never retried.
        let retry = retry_record(&p, TokenJoin::Bytes);
        assert!(retry.order_url.is_empty() && retry.answers.is_empty());
        assert_eq!(retry.token_join, Some(TokenJoin::Bytes));
        assert_eq!(retry.rejected_join, Some(TokenJoin::String));
        assert_eq!(retry.account_url, p.account_url);
        // Killed after the retry was saved, before its order: it is still made, and only then.
        let carried = retry_not_ordered(&retry, &p.server, "https://ca.test/acct/2").unwrap();
        assert_eq!(carried.token_join, Some(TokenJoin::Bytes));
        assert_eq!(carried.rejected_join, Some(TokenJoin::String));
        assert_eq!(carried.account_url, "https://ca.test/acct/2");
        assert_eq!(
            retry_not_ordered(&retry, "https://other.test/dir", "a"),
            None
        );
        let fresh = Pending {
            order_url: String::new(),
            ..order(TokenJoin::String, DIFFER)
        };
        assert_eq!(retry_not_ordered(&fresh, &p.server, "a"), None);
        let mut answered_retry = order(TokenJoin::Bytes, DIFFER);
        answered_retry.rejected_join = Some(TokenJoin::String);
        assert_eq!(
            reorder_join(JoinChoice::Auto, &answered_retry, Some(&wrong)),
            None
        );
    }

    #[test]
    fn a_validated_order_proves_its_join_only_when_the_joins_differ() {
        let mut p = order(TokenJoin::Bytes, DIFFER);
        assert_eq!(proven_join(&p), None, "not validated yet");
        p.validated = true;
        assert_eq!(proven_join(&p), Some(TokenJoin::Bytes));
        // Another answered mail whose token both joins agree on: which one validated is unknown.
        p.answers.push(answered(AGREE, ReplyState::Sent));
        assert_eq!(proven_join(&p), None);
        // ... unless this is the retry after the other join was rejected.
        p.rejected_join = Some(TokenJoin::String);
        assert_eq!(proven_join(&p), Some(TokenJoin::Bytes));
        // An authorization that was valid already: nothing answered, nothing proven.
        let reused = Pending {
            validated: true,
            token_join: Some(TokenJoin::String),
            ..Pending::default()
        };
        assert_eq!(proven_join(&reused), None);
    }

    #[test]
    fn timing_is_set_then_learned_then_table() {
        let castle = Some(&KNOWN[0]);
        let after = learned(None, Some(MailTiming::AfterPost));
        let none = learned(None, None);
        assert_eq!(
            timing(ChallengeTiming::ReplyFirst, &after, castle),
            (ChallengeTiming::ReplyFirst, Source::Setting, None)
        );
        assert_eq!(
            timing(ChallengeTiming::Auto, &after, castle),
            (
                ChallengeTiming::PostFirst,
                Source::Learned,
                Some(MailTiming::AfterPost)
            )
        );
        assert_eq!(
            timing(ChallengeTiming::Auto, &none, castle),
            (
                ChallengeTiming::Auto,
                Source::Table,
                Some(MailTiming::OnAuthorization)
            )
        );
        assert_eq!(
            timing(ChallengeTiming::Auto, &none, None),
            (ChallengeTiming::Auto, Source::Default, None)
        );
    }

    #[test]
    fn when_the_mail_came_tells_the_timing_only_with_auto() {
        use ChallengeTiming::*;
        let post = Some(1_800_000_000);
        assert_eq!(
            timing_seen(Auto, false, None, None),
            Some(MailTiming::OnAuthorization)
        );
        assert_eq!(
            timing_seen(Auto, true, post, Some(1_800_000_001)),
            Some(MailTiming::AfterPost)
        );
        assert_eq!(
            timing_seen(Auto, true, post, Some(1_800_000_000 - DATE_SLACK_SECS)),
            Some(MailTiming::AfterPost),
            "clocks differ a little"
        );
        // A mail written at the authorization that arrived late, or an undated one.
        assert_eq!(
            timing_seen(Auto, true, post, Some(1_800_000_000 - 15)),
            None
        );
        assert_eq!(timing_seen(Auto, true, post, None), None);
        // POSTed at once, or by an earlier run: the mail may have been sent before.
        assert_eq!(timing_seen(Auto, true, None, Some(1_800_000_001)), None);
        assert_eq!(timing_seen(ReplyFirst, false, None, None), None);
        assert_eq!(timing_seen(PostFirst, true, None, post), None);
    }

    #[test]
    fn kept_per_ca_and_damage_is_forgotten() {
        let dir = crate::testing::TempDir::new();
        let store = Store::new(&dir.0);
        let url = "https://ca.test/dir";
        assert_eq!(load(&store, url), learned(None, None));
        let mut l = learned(Some(TokenJoin::Bytes), Some(MailTiming::AfterPost));
        assert!(save(&store, &l).unwrap());
        assert!(!save(&store, &l).unwrap(), "nothing new");
        assert_eq!(load(&store, url), l);
        assert_eq!(load(&store, "https://other.test/dir").token_join, None);
        l.token_join = Some(TokenJoin::String);
        assert!(save(&store, &l).unwrap());
        assert_eq!(load(&store, url).token_join, Some(TokenJoin::String));
        std::fs::write(path(&store, url), b"{not json").unwrap();
        assert_eq!(load(&store, url), learned(None, None));
    }
}
