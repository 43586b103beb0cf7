//! Graceful shutdown: SIGTERM or SIGINT (or the idle timer) stops the accept loops; open
//! connections then get the drain timeout to finish what they are doing. SIGUSR2 does the
//! same, and then portico restarts in place (handover.rs).

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Why portico is shutting down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    Signal(&'static str),
    Idle,
    /// SIGUSR2: drain, then execute portico again with the same sockets.
    Restart,
}

/// A shared switch that turns once, from serving to shutting down.
#[derive(Clone)]
pub(crate) struct Shutdown(Arc<watch::Sender<Option<Reason>>>);

impl Shutdown {
    pub(crate) fn new() -> Self {
        Shutdown(Arc::new(watch::channel(None).0))
    }

    /// Starts the shutdown; later calls keep the first reason.
    pub(crate) fn begin(&self, reason: Reason) {
        self.0.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
    }

    pub(crate) fn is_started(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Resolves once the shutdown has started.
    pub(crate) async fn started(&self) -> Reason {
        let mut rx = self.0.subscribe();
        loop {
            if let Some(reason) = *rx.borrow_and_update() {
                return reason;
            }
            // Cannot fail: the sender lives as long as self.
            let _ = rx.changed().await;
        }
    }
}

/// Turns the first SIGTERM, SIGINT or SIGUSR2 into a shutdown. The returned future
/// resolves on the next one, which means "stop waiting for the drain".
pub(crate) fn listen(shutdown: Shutdown) -> std::io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    Ok(async move {
        let mut next = async || {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = usr2.recv() => "SIGUSR2",
            }
        };
        let first = next().await;
        shutdown.begin(match first {
            "SIGUSR2" => Reason::Restart,
            signal => Reason::Signal(signal),
        });
        let second = next().await;
        tracing::warn!("{second} during the drain: closing the remaining connections now");
    })
}
