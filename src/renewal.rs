//! When a certificate is due for renewal: the CA's RFC 9773 renewal window when it gives one,
//! else when a third of the lifetime remains; `--days N` and `--force` override; revoked
//! certificates are left alone. Pure: `now` and the certificate's facts are passed in.

use serde::{Deserialize, Serialize};

/// The CA's suggested window (Unix times), as `renewalInfo` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    /// RFC 9773 §4.2: a window whose end is not after its start is treated as no answer.
    pub fn is_valid(&self) -> bool {
        self.end > self.start
    }
}

/// What the user asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Due when fewer than this many days remain (instead of the window or the lifetime rule).
    pub days: Option<u32>,
    /// Due now, whatever the dates say.
    pub force: bool,
}

/// The facts the decision needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Facts {
    pub not_before: i64,
    pub not_after: i64,
    pub revoked: bool,
    /// The CA's window, if it gave a valid one.
    pub window: Option<Window>,
    /// Where in the window this certificate renews, 0.0..1.0 (see [`jitter`]).
    pub jitter: f64,
}

/// Why a certificate is (or will be) due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Forced,
    Expired,
    /// The CA's renewal window (ARI).
    Window,
    /// A third of the lifetime remains.
    Lifetime,
    /// Fewer than `--days` days remain.
    Days(u32),
}

impl Reason {
    pub fn describe(self) -> String {
        match self {
            Reason::Forced => "renewal forced".into(),
            Reason::Expired => "the certificate has expired".into(),
            Reason::Window => "the CA's renewal window (ARI)".into(),
            Reason::Lifetime => "a third of its lifetime left".into(),
            Reason::Days(n) => format!("fewer than {n} days left"),
        }
    }

    /// A short name for the JSON `reason` field.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Forced => "forced",
            Reason::Expired => "expired",
            Reason::Window => "ari",
            Reason::Lifetime => "lifetime",
            Reason::Days(_) => "days",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Renew now.
    Due(Reason),
    /// Not yet: due at this Unix time.
    NotDue { at: i64, reason: Reason },
    /// Revoked: not renewed (unless forced).
    Revoked,
}

/// Decides whether a certificate is due at `now`.
pub fn decide(facts: &Facts, options: Options, now: i64) -> Decision {
    if options.force {
        return Decision::Due(Reason::Forced);
    }
    if facts.revoked {
        return Decision::Revoked;
    }
    if now >= facts.not_after {
        return Decision::Due(Reason::Expired);
    }
    let (at, reason) = match (options.days, facts.window.filter(Window::is_valid)) {
        (Some(days), _) => (
            facts.not_after.saturating_sub(i64::from(days) * 86_400),
            Reason::Days(days),
        ),
        (None, Some(window)) => {
            let span = (window.end - window.start) as f64;
            let offset = (span * facts.jitter.clamp(0.0, 1.0)) as i64;
            (window.start.saturating_add(offset), Reason::Window)
        }
        (None, None) => {
            let lifetime = facts.not_after.saturating_sub(facts.not_before).max(0);
            (facts.not_after - lifetime / 3, Reason::Lifetime)
        }
    };
    if now >= at {
        Decision::Due(reason)
    } else {
        Decision::NotDue { at, reason }
    }
}

/// A fixed point in 0.0..1.0 for a certificate (from its SHA-256 fingerprint), so that many
/// certificates spread over the CA's window and every run picks the same time for each.
pub fn jitter(fingerprint: &str) -> f64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, fingerprint.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const ISSUED: i64 = 1_800_000_000;

    fn facts(lifetime_days: i64) -> Facts {
        Facts {
            not_before: ISSUED,
            not_after: ISSUED + lifetime_days * DAY,
            revoked: false,
            window: None,
            jitter: 0.5,
        }
    }

    #[test]
    fn lifetime_thirds() {
        let f = facts(90);
        let due_at = ISSUED + 60 * DAY;
        let cases = [
            (
                ISSUED,
                Decision::NotDue {
                    at: due_at,
                    reason: Reason::Lifetime,
                },
            ),
            (
                due_at - 1,
                Decision::NotDue {
                    at: due_at,
                    reason: Reason::Lifetime,
                },
            ),
            (due_at, Decision::Due(Reason::Lifetime)),
            (ISSUED + 89 * DAY, Decision::Due(Reason::Lifetime)),
            (ISSUED + 90 * DAY, Decision::Due(Reason::Expired)),
            (ISSUED + 400 * DAY, Decision::Due(Reason::Expired)),
        ];
        for (now, want) in cases {
            assert_eq!(decide(&f, Options::default(), now), want, "now = {now}");
        }
    }

    #[test]
    fn ari_windows() {
        let base = facts(365);
        let in_days = |d: i64| ISSUED + d * DAY;
        let with = |start: i64, end: i64, jitter: f64| Facts {
            window: Some(Window { start, end }),
            jitter,
            ..base
        };
        let opts = Options::default();
        // A window in the past: due now.
        assert_eq!(
            decide(&with(in_days(1), in_days(2), 0.9), opts, in_days(10)),
            Decision::Due(Reason::Window)
        );
        // A future window: the chosen point inside it.
        assert_eq!(
            decide(&with(in_days(300), in_days(310), 0.5), opts, in_days(10)),
            Decision::NotDue {
                at: in_days(305),
                reason: Reason::Window
            }
        );
        assert_eq!(
            decide(&with(in_days(300), in_days(310), 0.0), opts, in_days(300)),
            Decision::Due(Reason::Window)
        );
        // Inside the window but before this certificate's point.
        assert_eq!(
            decide(&with(in_days(300), in_days(310), 1.0), opts, in_days(305)),
            Decision::NotDue {
                at: in_days(310),
                reason: Reason::Window
            }
        );
        // An invalid window (end not after start) counts as none: the lifetime rule.
        for (start, end) in [(in_days(300), in_days(300)), (in_days(310), in_days(300))] {
            assert_eq!(
                decide(&with(start, end, 0.5), opts, in_days(10)),
                Decision::NotDue {
                    at: ISSUED + 365 * DAY - 365 * DAY / 3,
                    reason: Reason::Lifetime
                }
            );
        }
        // An expired certificate renews whatever the window says.
        assert_eq!(
            decide(&with(in_days(400), in_days(500), 0.5), opts, in_days(366)),
            Decision::Due(Reason::Expired)
        );
    }

    #[test]
    fn days_and_force_override_and_revoked_is_left_alone() {
        let f = Facts {
            window: Some(Window {
                start: ISSUED + 300 * DAY,
                end: ISSUED + 310 * DAY,
            }),
            ..facts(365)
        };
        let now = ISSUED + DAY;
        let days = |n| Options {
            days: Some(n),
            force: false,
        };
        assert_eq!(decide(&f, days(400), now), Decision::Due(Reason::Days(400)));
        assert_eq!(
            decide(&f, days(30), now),
            Decision::NotDue {
                at: ISSUED + 335 * DAY,
                reason: Reason::Days(30)
            }
        );
        let force = Options {
            days: None,
            force: true,
        };
        assert_eq!(decide(&f, force, now), Decision::Due(Reason::Forced));
        let revoked = Facts { revoked: true, ..f };
        assert_eq!(decide(&revoked, Options::default(), now), Decision::Revoked);
        assert_eq!(decide(&revoked, days(400), now), Decision::Revoked);
        assert_eq!(decide(&revoked, force, now), Decision::Due(Reason::Forced));
        let expired_and_revoked = Facts {
            revoked: true,
            ..facts(1)
        };
        assert_eq!(
            decide(&expired_and_revoked, Options::default(), ISSUED + 5 * DAY),
            Decision::Revoked
        );
    }

    #[test]
    fn jitter_is_stable_and_spread() {
        assert_eq!(jitter("AA:BB"), jitter("AA:BB"));
        let points: Vec<f64> = (0..200).map(|i| jitter(&format!("{i}"))).collect();
        assert!(points.iter().all(|p| (0.0..1.0).contains(p)));
        let low = points.iter().filter(|p| **p < 0.5).count();
        assert!((70..130).contains(&low), "{low} of 200 below one half");
    }
}
