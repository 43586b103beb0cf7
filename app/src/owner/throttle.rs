//! What makes guessing slow and cannot be turned against the owner: growing delays per
//! client, a delay for everyone when failures pile up, and a bounded number of password
//! checks in progress, some of them kept for clients without recent failures.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

// tokio's clock, so the tests can stop and move it.
use tokio::time::Instant;

use super::error::AuthError;

/// Failed logins from one client before the delays start, the first delay, and its cap.
const FREE_FAILURES: u32 = 3;
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(2);
/// Failures from everyone within a minute beyond which every login waits a second.
const GLOBAL_FAILURES_PER_MINUTE: usize = 30;
/// Failures are forgotten after this long without another.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Clients remembered at most; clients beyond share one entry, so spraying addresses
/// neither grows the table nor wipes what it knows of the others.
const MAX_CLIENTS: usize = 4096;
/// Password checks waiting or running at once; beyond, a check is refused at once (503),
/// so a flood of logins holds a few connections, not all of max_connections.
const MAX_PENDING: usize = 16;
/// Checks one client (an address, an IPv6 /64) may have in progress at once.
const PER_CLIENT: u32 = 2;
/// Places only clients without recent failures may take: a flood from a few addresses
/// cannot keep the owner out.
const RESERVED: usize = 4;
/// The key of the clients that no longer fit in the table, and of Unix-socket clients.
const OVERFLOW: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

#[derive(Default)]
pub(super) struct Throttle(Mutex<Table>);

/// Failed logins and the checks in progress, per client and overall.
#[derive(Default)]
struct Table {
    /// Failures per client key: how many, and when the last was.
    failures: HashMap<IpAddr, (u32, Instant)>,
    /// Everyone's failures within the last minute.
    recent: VecDeque<Instant>,
    /// Checks in progress per client key, and in all.
    checking: HashMap<IpAddr, u32>,
    pending: usize,
}

impl Table {
    /// The key a client is counted under: its address (mapped IPv4 as IPv4), its /64 for
    /// IPv6, which one host can fill with addresses; the shared overflow entry once the
    /// table is full.
    fn key(&self, client: Option<IpAddr>) -> IpAddr {
        let key = match client.map(|c| c.to_canonical()) {
            None => LOCAL,
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            Some(v4) => v4,
        };
        match self.failures.len() >= MAX_CLIENTS && !self.failures.contains_key(&key) {
            true => OVERFLOW,
            false => key,
        }
    }

    /// Recent failures of `key`.
    fn failures_of(&self, key: &IpAddr, now: Instant) -> u32 {
        self.failures.get(key).filter(|(_, last)| now - *last < FORGET_AFTER).map_or(0, |(n, _)| *n)
    }
}

impl Throttle {
    /// Takes a place among the password checks in progress, or says Busy: one client
    /// takes at most `PER_CLIENT`, and clients with recent failures leave `RESERVED` for
    /// the others. Checks still in progress count as failures for the wait, so guesses
    /// sent side by side wait as if sent one after another.
    pub(super) fn attempt(&self, client: Option<IpAddr>) -> Result<Attempt<'_>, AuthError> {
        let now = Instant::now();
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        while table.recent.front().is_some_and(|t| now - *t >= Duration::from_secs(60)) {
            table.recent.pop_front();
        }
        let key = table.key(client);
        let failures = table.failures_of(&key, now);
        let checking = table.checking.get(&key).copied().unwrap_or(0);
        let places = match failures {
            0 => MAX_PENDING,
            _ => MAX_PENDING - RESERVED,
        };
        if checking >= PER_CLIENT || table.pending >= places {
            return Err(AuthError::Busy);
        }
        table.pending += 1;
        *table.checking.entry(key).or_default() += 1;
        let everyone = match table.recent.len() > GLOBAL_FAILURES_PER_MINUTE {
            true => Duration::from_secs(1),
            false => Duration::ZERO,
        };
        Ok(Attempt { throttle: self, client, key, delay: delay_after(failures + checking).max(everyone) })
    }
}

/// A password check's place, taken before its wait and given back when dropped.
pub(super) struct Attempt<'a> {
    throttle: &'a Throttle,
    client: Option<IpAddr>,
    key: IpAddr,
    delay: Duration,
}

impl Attempt<'_> {
    /// Waits as long as this client's failures and everyone's call for. Not a lockout:
    /// the right password still works after the wait.
    pub(super) async fn wait(&self) {
        tokio::time::sleep(self.delay).await;
    }

    pub(super) fn failed(&self, reason: &str) {
        let address = self.client.map_or_else(|| "unix".to_owned(), |c| c.to_canonical().to_string());
        // One line a fail2ban filter can match: ^login failed: address=<HOST> user=\S+ reason=
        tracing::warn!("login failed: address={address} user=owner reason={reason}");
        let now = Instant::now();
        let mut table = self.throttle.0.lock().unwrap_or_else(PoisonError::into_inner);
        table.recent.push_back(now);
        if table.failures.len() >= MAX_CLIENTS {
            table.failures.retain(|_, (_, last)| now - *last < FORGET_AFTER);
        }
        let key = table.key(self.client);
        let count = table.failures_of(&key, now);
        table.failures.insert(key, (count + 1, now));
    }

    pub(super) fn succeeded(&self) {
        self.throttle.0.lock().unwrap_or_else(PoisonError::into_inner).failures.remove(&self.key);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut table = self.throttle.0.lock().unwrap_or_else(PoisonError::into_inner);
        table.pending -= 1;
        if let Some(n) = table.checking.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                table.checking.remove(&self.key);
            }
        }
    }
}

fn delay_after(failures: u32) -> Duration {
    match failures.checked_sub(FREE_FAILURES) {
        None => Duration::ZERO,
        Some(n) => FIRST_DELAY.saturating_mul(1 << n.min(16)).min(MAX_DELAY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spraying addresses until the table is full neither grows it nor wipes what it knows:
    /// newcomers share one entry, and those already in it keep their count.
    #[test]
    fn a_full_client_table_puts_newcomers_in_one_entry_and_forgets_no_one() {
        let now = Instant::now();
        let mut table = Table::default();
        assert_eq!(table.key(None), LOCAL, "Unix-socket clients are one client");
        for n in 0..MAX_CLIENTS as u32 {
            table.failures.insert(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n)), (5, now));
        }
        let known: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(table.key(Some(known)), known);
        assert_eq!(table.key(Some("192.0.2.1".parse().unwrap())), OVERFLOW);
        assert_eq!(table.key(Some("2001:db8::1".parse().unwrap())), OVERFLOW);
        assert_eq!(table.failures_of(&known, now), 5);
        assert_eq!(table.failures_of(&known, now + FORGET_AFTER), 0, "forgotten in time");
    }

    fn address(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    /// A failure when the table is full makes room from those forgotten (15 minutes
    /// without another failure, to the tick), and never from those still remembered.
    #[tokio::test(start_paused = true)]
    async fn a_full_table_makes_room_only_from_the_forgotten() {
        let throttle = Throttle::default();
        let start = Instant::now();
        {
            let mut table = throttle.0.lock().unwrap();
            table.failures.insert(address(0), (1, start));
            for n in 1..MAX_CLIENTS as u32 {
                table.failures.insert(address(n), (4, start + Duration::from_secs(1)));
            }
        }
        tokio::time::advance(Duration::from_secs(15 * 60)).await;
        throttle.attempt(Some(address(5000))).unwrap().failed("test");
        let table = throttle.0.lock().unwrap();
        assert!(!table.failures.contains_key(&address(0)), "forgotten at 15 minutes, and dropped");
        assert_eq!(
            table.failures.get(&address(5000)).map(|(n, _)| *n),
            Some(1),
            "the newcomer took its place"
        );
        assert_eq!(table.failures_of(&address(1), Instant::now()), 4, "the others are all remembered");
        assert_eq!(table.failures.len(), MAX_CLIENTS);
    }

    /// With nobody to forget, a newcomer's failure is counted in the shared entry.
    #[tokio::test(start_paused = true)]
    async fn a_full_table_of_the_remembered_counts_a_newcomer_in_the_shared_entry() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for n in 0..MAX_CLIENTS as u32 {
            throttle.0.lock().unwrap().failures.insert(address(n), (4, now));
        }
        tokio::time::advance(Duration::from_secs(15 * 60 - 1)).await;
        throttle.attempt(Some(address(5000))).unwrap().failed("test");
        let table = throttle.0.lock().unwrap();
        assert_eq!(table.failures.len(), MAX_CLIENTS + 1, "the table plus the shared entry");
        assert_eq!(table.failures.get(&OVERFLOW).map(|(n, _)| *n), Some(1));
        assert_eq!(table.failures_of(&address(0), Instant::now()), 4);
    }

    #[test]
    fn delays_grow_and_stop_growing() {
        assert_eq!(delay_after(2), Duration::ZERO);
        assert_eq!(delay_after(3), FIRST_DELAY);
        assert_eq!(delay_after(4), FIRST_DELAY * 2);
        assert!(delay_after(5) > delay_after(4));
        assert_eq!(delay_after(40), MAX_DELAY);
    }
}
