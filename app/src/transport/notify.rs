//! systemd's notification protocol (`Type=notify`): READY=1 once every socket is served,
//! STATUS= with a live summary, STOPPING=1 at shutdown (with the time the drain needs),
//! and WATCHDOG=1 pings.
//!
//! Without NOTIFY_SOCKET (started by hand) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

pub(crate) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// RELOADING=1 with the time, as systemd 253's Type=notify-reload wants; READY=1 ends it.
pub(crate) fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

pub(crate) fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Says portico is stopping and asks for `drain` plus a margin to exit in, so a
/// drain_timeout longer than the unit's TimeoutStopSec= is not cut short by SIGKILL.
/// systemd never shortens its own timeout for this.
pub(crate) fn stopping(status: &str, drain: Duration) {
    let needed = drain + EXIT_MARGIN;
    let usec = u32::try_from(needed.as_micros()).unwrap_or(u32::MAX);
    send(&[NotifyState::Stopping, NotifyState::Status(status), NotifyState::ExtendTimeoutUsec(usec)]);
}

/// What exiting takes beyond the drain: closing connections, flushing the log.
const EXIT_MARGIN: Duration = Duration::from_secs(5);

/// Pings the watchdog at half the interval systemd asked for (WatchdogSec=), forever.
///
/// It runs as a task on the runtime that serves requests: if that runtime stops making
/// progress, the pings stop and systemd restarts the service.
pub(crate) async fn watchdog() {
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return;
    };
    // sd_watchdog_enabled(3) treats 0 as invalid, not as "ping constantly".
    if timeout.is_zero() {
        tracing::warn!("WATCHDOG_USEC=0 is not a valid interval: sending no watchdog pings");
        return;
    }
    let mut tick = tokio::time::interval(timeout / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::debug!("watchdog pings every {:?}", timeout / 2);
    loop {
        tick.tick().await;
        send(&[NotifyState::Watchdog]);
    }
}

/// How often the STATUS= summary is refreshed.
pub(crate) const STATUS_INTERVAL: Duration = Duration::from_secs(5);
