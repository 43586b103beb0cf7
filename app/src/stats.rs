//! The counts the transport keeps and the pages and the STATUS= line read: connections
//! open and accepted, requests served. Its own module so that both sides can use it
//! without knowing each other.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

#[derive(Default)]
pub struct Counters {
    /// A watch rather than an atomic: the drain and the idle exit wait on it.
    open: watch::Sender<usize>,
    accepted: AtomicU64,
    served: AtomicU64,
}

/// The counts at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    pub open_connections: usize,
    pub connections_accepted: u64,
    pub requests_served: u64,
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        Stats {
            open_connections: *self.open.borrow(),
            connections_accepted: self.accepted.load(Ordering::Relaxed),
            requests_served: self.served.load(Ordering::Relaxed),
        }
    }

    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_open(&self, open: usize) {
        self.open.send_replace(open);
    }

    /// Follows the number of open connections.
    pub fn watch_open(&self) -> watch::Receiver<usize> {
        self.open.subscribe()
    }
}
