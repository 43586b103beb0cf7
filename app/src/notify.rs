//! systemd's notification protocol (`Type=notify`): READY=1 once every socket is served,
//! STATUS= with a live summary, STOPPING=1 at shutdown, and WATCHDOG=1 pings.
//!
//! Without NOTIFY_SOCKET (started by hand) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// Pings the watchdog at half the interval systemd asked for (WatchdogSec=), forever.
///
/// It runs as a task on the runtime that serves requests: if that runtime stops making
/// progress, the pings stop and systemd restarts the service.
pub async fn watchdog() {
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(timeout / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::debug!("watchdog pings every {:?}", timeout / 2);
    loop {
        tick.tick().await;
        send(&[NotifyState::Watchdog]);
    }
}

/// How often the STATUS= summary is refreshed.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(5);
