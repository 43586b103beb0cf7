//! The owner's sessions: a random token in a cookie, a form token against cross-site
//! posts, and their ends (idle, absolute, logout, a new password or owner).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
// tokio's clock, so the tests can stop and move it.
use tokio::time::Instant;

/// How long sessions last: without a request, and in any case.
#[derive(Clone, Copy)]
pub(super) struct Lifetimes {
    pub(crate) idle: Duration,
    pub(crate) absolute: Duration,
}

struct Session {
    created: Instant,
    last_seen: Instant,
    csrf: String,
    /// The owner's state it was opened in: a new password or owner makes another.
    generation: u64,
}

/// A request from the logged-in owner, over HTTPS. A handler that needs a login takes it
/// as an argument; that is all it takes. Over plain HTTP the request is redirected to
/// HTTPS; without a live session, a page load goes to the login and anything else gets
/// 403. A state-changing request must also come from the device's own pages (`Origin` or
/// `Sec-Fetch-Site`); a form that changes something takes [`CsrfForm`](crate::CsrfForm) instead.
pub struct LoggedIn {
    pub(crate) token: String,
    /// The session's form token: a form of the owner's carries it in a field named
    /// `csrf`, which [`CsrfForm`](crate::CsrfForm) checks.
    pub csrf: String,
    /// The owner's state the session belongs to: a change is refused once it is another.
    pub(super) generation: u64,
}

pub(super) struct Sessions {
    lifetimes: Lifetimes,
    table: Mutex<HashMap<String, Session>>,
    random: SystemRandom,
}

impl Sessions {
    pub(super) fn new(lifetimes: Lifetimes, random: SystemRandom) -> Self {
        Sessions { lifetimes, table: Mutex::new(HashMap::new()), random }
    }

    /// Opens a session of the owner's `generation`: its token. Sessions of an earlier
    /// one, and those that ran out, go.
    pub(super) fn open(&self, generation: u64) -> String {
        let token = self.token(32);
        let now = Instant::now();
        let session = Session { created: now, last_seen: now, csrf: self.token(16), generation };
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.retain(|_, s| self.live(s, now, generation));
        table.insert(token.clone(), session);
        token
    }

    /// The session's form token, if `token` names a live session of the owner's
    /// `generation`. A request that counts as `activity` keeps it alive; the status
    /// page's background refresh does not.
    pub(super) fn find(&self, token: &str, generation: u64, activity: bool) -> Option<String> {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let session = table.get_mut(token).filter(|s| self.live(s, now, generation))?;
        if activity {
            session.last_seen = now;
        }
        Some(session.csrf.clone())
    }

    pub(super) fn end(&self, token: &str) {
        self.table.lock().unwrap_or_else(PoisonError::into_inner).remove(token);
    }

    fn live(&self, session: &Session, now: Instant, generation: u64) -> bool {
        session.generation == generation
            && now - session.last_seen < self.lifetimes.idle
            && now - session.created < self.lifetimes.absolute
    }

    fn token(&self, bytes: usize) -> String {
        let mut raw = vec![0u8; bytes];
        self.random.fill(&mut raw).expect("the kernel's random numbers");
        raw.iter().map(|b| format!("{b:02x}")).collect()
    }
}
