//! The counts the transport keeps and the pages, the STATUS= line and /metrics read:
//! connections open, accepted and evicted, responses by status class, TLS handshakes. Its
//! own module so that both sides can use it without knowing each other.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

#[derive(Default)]
pub(crate) struct Counters {
    /// A watch rather than an atomic: the drain and the idle exit wait on it.
    open: watch::Sender<usize>,
    accepted: AtomicU64,
    served: AtomicU64,
    evicted: AtomicU64,
    /// Responses by status class: 1xx at 0 ... 5xx at 4.
    by_class: [AtomicU64; 5],
    tls_handshakes: AtomicU64,
    tls_handshake_failures: AtomicU64,
}

/// What /metrics adds to the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Totals {
    pub connections_evicted: u64,
    /// Responses by status class: 1xx at 0 ... 5xx at 4.
    pub responses_by_class: [u64; 5],
    pub tls_handshakes: u64,
    pub tls_handshake_failures: u64,
}

/// The counts at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stats {
    pub open_connections: usize,
    pub connections_accepted: u64,
    pub requests_served: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            open_connections: *self.open.borrow(),
            connections_accepted: self.accepted.load(Ordering::Relaxed),
            requests_served: self.served.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn totals(&self) -> Totals {
        Totals {
            connections_evicted: self.evicted.load(Ordering::Relaxed),
            responses_by_class: std::array::from_fn(|i| self.by_class[i].load(Ordering::Relaxed)),
            tls_handshakes: self.tls_handshakes.load(Ordering::Relaxed),
            tls_handshake_failures: self.tls_handshake_failures.load(Ordering::Relaxed),
        }
    }

    /// A response with this status code went out.
    pub(crate) fn served(&self, status: u16) {
        self.served.fetch_add(1, Ordering::Relaxed);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn evicted(&self) {
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tls_handshake(&self, succeeded: bool) {
        let counter = if succeeded { &self.tls_handshakes } else { &self.tls_handshake_failures };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_open(&self, open: usize) {
        self.open.send_replace(open);
    }

    /// Follows the number of open connections.
    pub(crate) fn watch_open(&self) -> watch::Receiver<usize> {
        self.open.subscribe()
    }
}
