//! What the clients of one CA share (see [`super::client::AcmeClient::worker`]): requests in
//! flight up to a limit, a pause that one `Retry-After` sets for all, unused nonces, and counts
//! of requests and TLS handshakes. No IO.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Unused nonces kept for other workers, at most.
pub(super) const NONCES_KEPT: usize = 64;

/// What the clients of one CA share.
#[derive(Debug)]
pub(super) struct Shared {
    /// Requests in flight now, and the most allowed.
    pub(super) in_flight: Mutex<usize>,
    pub(super) slot_freed: Condvar,
    pub(super) limit: usize,
    /// No request starts before this (the CA's last `Retry-After`).
    pub(super) paused_until: Mutex<Option<Instant>>,
    pub(super) nonces: Mutex<Vec<String>>,
    pub(super) requests: AtomicU32,
    pub(super) handshakes: Arc<AtomicU32>,
}

/// Counts TLS handshakes: rustls hands each handshake's secrets to the key log, which keeps
/// nothing but the count.
#[derive(Debug)]
pub(super) struct HandshakeCounter(pub(super) Arc<AtomicU32>);

impl rustls::KeyLog for HandshakeCounter {
    fn log(&self, _label: &str, _client_random: &[u8], _secret: &[u8]) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// One label per handshake: TLS 1.3's first secret, or TLS 1.2's master secret.
    fn will_log(&self, label: &str) -> bool {
        matches!(label, "CLIENT_HANDSHAKE_TRAFFIC_SECRET" | "CLIENT_RANDOM")
    }
}

/// A slot among the requests in flight to one CA, given back when dropped.
pub(super) struct Slot<'a>(&'a Shared);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut n = self.0.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        self.0.slot_freed.notify_one();
    }
}

impl Shared {
    /// For clients that send at most `limit` requests at once (at least one).
    pub(super) fn new(limit: usize) -> Shared {
        Shared {
            in_flight: Mutex::new(0),
            slot_freed: Condvar::new(),
            limit: limit.max(1),
            paused_until: Mutex::new(None),
            nonces: Mutex::new(Vec::new()),
            requests: AtomicU32::new(0),
            handshakes: Arc::new(AtomicU32::new(0)),
        }
    }

    pub(super) fn slot(&self) -> Slot<'_> {
        let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= self.limit {
            n = self.slot_freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot(self)
    }

    pub(super) fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    pub(super) fn paused_until(&self) -> Option<Instant> {
        let paused = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        paused.filter(|p| *p > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_in_flight_never_pass_the_limit() {
        let shared = Shared::new(3);
        let now = AtomicU32::new(0);
        let most = AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..12 {
                scope.spawn(|| {
                    for _ in 0..5 {
                        let _slot = shared.slot();
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        now.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 3, "all slots used, never more");
        assert_eq!(
            *shared.in_flight.lock().unwrap(),
            0,
            "every slot given back"
        );
    }

    #[test]
    fn a_pause_is_only_ever_lengthened() {
        let shared = Shared::new(1);
        assert_eq!(shared.paused_until(), None);
        shared.pause(Duration::from_secs(60));
        let long = shared.paused_until().expect("paused");
        shared.pause(Duration::from_secs(1));
        assert_eq!(
            shared.paused_until(),
            Some(long),
            "a shorter wait does not shorten it"
        );
        shared.pause(Duration::ZERO);
        assert_eq!(shared.paused_until(), Some(long));
        let short = Shared::new(1);
        short.pause(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            short.paused_until(),
            None,
            "a pause in the past holds nothing back"
        );
    }
}
