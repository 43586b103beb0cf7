//! The owner's login, all of it: the one-time set-up code, the password rules, argon2id
//! hashing one at a time, sessions, the growing delays that make guessing slow, and
//! `LoggedIn`, the extractor that every page needing a login takes (the one place that
//! says so).
//!
//! Password rules follow NIST SP 800-63B-4 for a password used alone: at least 15
//! characters, at most 256, no composition rules, and none of a list of common passwords
//! or of repeats and runs; the set-up code cannot be kept as the password.

// Handlers and extractors answer with a whole Response, as axum has them do.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use ring::rand::{SecureRandom, SystemRandom};
// tokio's clock, so the tests can stop and move it.
use tokio::time::Instant;

use crate::peer::Peer;
use crate::state::{Loaded, Owner, Stamp, Store};

pub const MIN_PASSWORD: usize = 15;
pub const MAX_PASSWORD: usize = 256;
/// The cookie; `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const COOKIE: &str = "__Host-portico";

/// argon2id as OWASP's minimum: 19 MiB, 2 passes, 1 lane. One hash at a time, so a login
/// flood costs 19 MiB at most, well inside the unit's MemoryMax=64M.
#[cfg(not(test))]
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
#[cfg(not(test))]
const ARGON2_PASSES: u32 = 2;
// The router tests hash hundreds of times (and cargo mutants runs them for every mutant):
// the smallest argon2id there is. The binary's tests check the real figures.
#[cfg(test)]
const ARGON2_MEMORY_KIB: u32 = 8;
#[cfg(test)]
const ARGON2_PASSES: u32 = 1;

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

/// Why a set-up, login or change was refused; what the page tells the user.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    WrongCode,
    WrongPassword,
    WeakPassword(String),
    NotSetUp,
    AlreadySetUp,
    Busy,
    /// A setting the device cannot take, and why (a certificate that does not parse).
    Refused(String),
    Storage(String),
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::WrongCode => f.write_str("That set-up code is not this device's."),
            AuthError::WrongPassword => f.write_str("Wrong password."),
            AuthError::WeakPassword(why) => f.write_str(why),
            AuthError::NotSetUp => f.write_str("This device has no owner yet: set it up first."),
            AuthError::AlreadySetUp => f.write_str("This device is set up already: log in."),
            AuthError::Busy => f.write_str("Too many logins at once: try again in a moment."),
            AuthError::Refused(why) => f.write_str(why),
            AuthError::Storage(why) => write!(f, "The device could not read or save its settings: {why}"),
        }
    }
}

impl std::error::Error for AuthError {}

struct Session {
    created: Instant,
    last_seen: Instant,
    csrf: String,
    generation: u64,
}

/// Failed logins and the checks in progress, per client and overall.
#[derive(Default)]
struct Throttle {
    /// Failures per client key: how many, and when the last was.
    failures: HashMap<IpAddr, (u32, Instant)>,
    /// Everyone's failures within the last minute.
    recent: VecDeque<Instant>,
    /// Checks in progress per client key, and in all.
    checking: HashMap<IpAddr, u32>,
    pending: usize,
}

impl Throttle {
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

/// How long sessions last: without a request, and in any case.
#[derive(Clone, Copy)]
pub struct Lifetimes {
    pub idle: Duration,
    pub absolute: Duration,
}

/// The owner as last read, the stamp of the file read, and why it cannot be read now if so.
struct Cached {
    owner: Owner,
    stamp: Option<Stamp>,
    unreadable: Option<String>,
}

pub struct Auth {
    store: Store,
    lifetimes: Lifetimes,
    owner: Mutex<Cached>,
    sessions: Mutex<HashMap<String, Session>>,
    throttle: Mutex<Throttle>,
    /// argon2's working memory, allocated once: hashing takes turns with it, so a login
    /// flood neither holds more than one hash's memory nor leaves freed copies behind.
    memory: tokio::sync::Mutex<Vec<argon2::Block>>,
    random: SystemRandom,
}

/// A password check's place, taken before its wait and given back when dropped.
struct Attempt<'a> {
    auth: &'a Auth,
    client: Option<IpAddr>,
    key: IpAddr,
    delay: Duration,
}

impl Attempt<'_> {
    /// Waits as long as this client's failures and everyone's call for. Not a lockout:
    /// the right password still works after the wait.
    async fn wait(&self) {
        tokio::time::sleep(self.delay).await;
    }

    fn failed(&self, reason: &str) {
        let address = self.client.map_or_else(|| "unix".to_owned(), |c| c.to_canonical().to_string());
        // One line a fail2ban filter can match: ^login failed: address=<HOST> user=\S+ reason=
        tracing::warn!("login failed: address={address} user=owner reason={reason}");
        let now = Instant::now();
        let mut throttle = lock(&self.auth.throttle);
        throttle.recent.push_back(now);
        if throttle.failures.len() >= MAX_CLIENTS {
            throttle.failures.retain(|_, (_, last)| now - *last < FORGET_AFTER);
        }
        let key = match throttle.key(self.client) {
            // The table filled while this check ran: the entry it was counted under stays.
            OVERFLOW if throttle.failures.contains_key(&self.key) => self.key,
            key => key,
        };
        let count = throttle.failures_of(&key, now);
        throttle.failures.insert(key, (count + 1, now));
    }

    fn succeeded(&self) {
        lock(&self.auth.throttle).failures.remove(&self.key);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut throttle = lock(&self.auth.throttle);
        throttle.pending -= 1;
        if let Some(n) = throttle.checking.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                throttle.checking.remove(&self.key);
            }
        }
    }
}

/// What `open` found, for main to announce.
pub enum Opened {
    Owned,
    /// Set-up is pending with this freshly generated code.
    Code(String),
    /// Set-up is pending with the code provisioned for this device (on its label).
    Provisioned,
    /// Set-up is pending with the code `portico reset-owner` printed.
    Reset,
    /// The owner's file is there but cannot be read, and why: it is left as it is, the
    /// owner's pages say so, and each request tries again.
    Unreadable(String),
}

/// `portico reset-owner`: clears the password, keeps the label and the status page's
/// access, and returns a new set-up code, kept until used. A running portico sees the file
/// change: every session ends, and /setup takes the new code.
pub fn reset(store: &Store) -> Result<String, AuthError> {
    let lock = store.lock().map_err(storage)?;
    let owner = match store.load() {
        Loaded::Owner(owner) => owner,
        Loaded::Missing => Owner { status_public: true, ..Owner::default() },
        Loaded::Damaged(why) => {
            let aside = store.set_aside(&lock).map_err(storage)?;
            eprintln!("portico: {why}; kept as {}", aside.display());
            Owner { generation: unknown_generation(), ..Owner::default() }
        }
        Loaded::Unreadable(why) => return Err(AuthError::Storage(why)),
    };
    let random = SystemRandom::new();
    let code = setup_code(&random);
    let hash = hash_with(&random, &mut Vec::new(), &normalise_code(&code))?;
    let reset = Owner {
        password: None,
        setup_code: Some(hash),
        keep_code: true,
        local_code_only: false,
        generation: owner.generation + 1,
        ..owner
    };
    store.save(&reset, &lock).map_err(storage)?;
    Ok(code)
}

fn storage(e: std::io::Error) -> AuthError {
    AuthError::Storage(e.to_string())
}

/// A generation no session of an earlier state can have: the time, which only grows.
fn unknown_generation() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Auth {
    /// Reads the owner's state; on a first start, or while set-up is pending, makes a
    /// set-up code: the provisioned one if the device has one, else a fresh random one.
    /// A damaged file is kept aside, and set-up then takes only a code from the journal:
    /// whoever damaged the file may have read the label. State that cannot be read or
    /// written (an I/O error, a read-only or unwritable directory) is left as it is: the
    /// owner's pages say what is wrong and each request tries again, while the rest of
    /// the device serves on.
    pub fn open(store: Store, provisioned: Option<String>, lifetimes: Lifetimes) -> (Self, Opened) {
        let auth = Auth {
            owner: Mutex::new(Cached { owner: Owner::default(), stamp: None, unreadable: None }),
            store,
            lifetimes,
            sessions: Mutex::new(HashMap::new()),
            throttle: Mutex::new(Throttle::default()),
            memory: tokio::sync::Mutex::new(Vec::new()),
            random: SystemRandom::new(),
        };
        match auth.first_look(provisioned) {
            Ok(opened) => (auth, opened),
            Err(e) => {
                let why = match e {
                    AuthError::Storage(why) => why,
                    other => other.to_string(),
                };
                lock(&auth.owner).unreadable = Some(why.clone());
                (auth, Opened::Unreadable(why))
            }
        }
    }

    fn first_look(&self, provisioned: Option<String>) -> Result<Opened, AuthError> {
        let held = self.store.lock().map_err(storage)?;
        let owner = match self.store.load() {
            Loaded::Owner(owner) => owner,
            Loaded::Missing => Owner { status_public: true, ..Owner::default() },
            Loaded::Damaged(why) => {
                let aside = self.store.set_aside(&held).map_err(storage)?;
                tracing::warn!(
                    "the owner's state is damaged ({why}); kept as {}: the device needs setting up \
                     again, with the new code this log gives (the label's code is not taken), and \
                     its status page is private until then",
                    aside.display()
                );
                Owner { generation: unknown_generation(), local_code_only: true, ..Owner::default() }
            }
            Loaded::Unreadable(why) => return Err(AuthError::Storage(why)),
        };
        *lock(&self.owner) = Cached { owner: owner.clone(), stamp: self.store.stamp(), unreadable: None };
        if owner.password.is_some() {
            return Ok(Opened::Owned);
        }
        if owner.keep_code && owner.setup_code.is_some() {
            return Ok(Opened::Reset);
        }
        // Only a code's hash is kept, so a generated one is made anew at each start until
        // it is used: the newest journal entry always has the code that works.
        let (code, opened) = match provisioned.filter(|_| !owner.local_code_only) {
            Some(code) => (code, Opened::Provisioned),
            None => {
                let code = setup_code(&self.random);
                (code.clone(), Opened::Code(code))
            }
        };
        let hash = hash_with(&self.random, &mut Vec::new(), &normalise_code(&code))?;
        self.save(Owner { setup_code: Some(hash), keep_code: false, ..owner }, &held)?;
        Ok(opened)
    }

    fn save(&self, owner: Owner, lock: &crate::state::Lock) -> Result<(), AuthError> {
        let stamp = self.store.save(&owner, lock).map_err(storage)?;
        *self::lock(&self.owner) = Cached { owner, stamp: Some(stamp), unreadable: None };
        Ok(())
    }

    /// Reads the owner afresh and saves what `change` makes of it, under the state
    /// directory's lock, so no save undoes another (portico's or `reset-owner`'s). On the
    /// runtime's blocking thread: the fsyncs may take a while on a small device's flash.
    async fn modify<T: Send + 'static>(
        self: &Arc<Self>,
        change: impl FnOnce(&mut Owner) -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let auth = self.clone();
        tokio::task::spawn_blocking(move || {
            let lock = auth.store.lock().map_err(storage)?;
            let mut owner = match auth.store.load() {
                Loaded::Owner(owner) => owner,
                Loaded::Unreadable(why) => return Err(AuthError::Storage(why)),
                // Gone or damaged since it was read: what portico last read is the truth.
                Loaded::Missing | Loaded::Damaged(_) => auth.owner()?,
            };
            let result = change(&mut owner)?;
            auth.save(owner, &lock)?;
            Ok(result)
        })
        .await
        .map_err(|e| AuthError::Storage(e.to_string()))?
    }

    /// The owner as last read, read again first if the file changed under portico
    /// (`portico reset-owner`), or while it cannot be read: one stat of the file, under
    /// the lock.
    fn current(&self) -> MutexGuard<'_, Cached> {
        let mut cached = lock(&self.owner);
        let stamp = self.store.stamp();
        if stamp != cached.stamp || cached.unreadable.is_some() {
            match self.store.load() {
                Loaded::Owner(owner) => *cached = Cached { owner, stamp, unreadable: None },
                Loaded::Unreadable(why) if cached.unreadable.is_some() => cached.unreadable = Some(why),
                _ => {}
            }
        }
        cached
    }

    /// The whole owner, hashes included: for set-up, logins and changes.
    fn owner(&self) -> Result<Owner, AuthError> {
        let current = self.current();
        match &current.unreadable {
            Some(why) => Err(AuthError::Storage(why.clone())),
            None => Ok(current.owner.clone()),
        }
    }

    /// What a request needs of the owner, without the hashes: one look per request, so
    /// the status page pays one stat of the owner's file, not one per question.
    pub fn glance(&self) -> Glance {
        let current = self.current();
        let readable = current.unreadable.is_none();
        let owner = &current.owner;
        Glance {
            label: owner.label.clone(),
            status_public: owner.status_public && readable,
            setup_needed: owner.password.is_none() && readable,
            generation: owner.generation,
        }
    }

    pub fn setup_needed(&self) -> bool {
        self.glance().setup_needed
    }

    /// First set-up: the one-time code, then the owner's password. The code is spent.
    /// From then on visitors see the reduced status page until the owner opens it.
    pub async fn set_up(
        self: &Arc<Self>,
        client: Option<IpAddr>,
        code: &str,
        password: &str,
    ) -> Result<(), AuthError> {
        let owner = self.owner()?;
        let Some(code_hash) = owner.setup_code.filter(|_| owner.password.is_none()) else {
            return Err(AuthError::AlreadySetUp);
        };
        self.check(client, &code_hash, &normalise_code(code), "wrong-setup-code", AuthError::WrongCode)
            .await?;
        check_password(password, Some(code))?;
        let hash = self.hash(password).await?;
        self.modify(move |owner| {
            // Set up by someone else, or given a new code by reset-owner, meanwhile.
            if owner.password.is_some() {
                return Err(AuthError::AlreadySetUp);
            }
            if owner.setup_code.as_ref() != Some(&code_hash) {
                return Err(AuthError::WrongCode);
            }
            owner.password = Some(hash);
            owner.setup_code = None;
            owner.keep_code = false;
            owner.local_code_only = false;
            owner.status_public = false;
            owner.generation += 1;
            Ok(())
        })
        .await?;
        tracing::info!("set-up done: the device has an owner; the set-up code is spent");
        Ok(())
    }

    /// Checks the password (after the delays this client and everyone have earned) and
    /// opens a session: its token.
    pub async fn login(&self, client: Option<IpAddr>, password: &str) -> Result<String, AuthError> {
        let owner = self.owner()?;
        let Some(hash) = owner.password else {
            return Err(AuthError::NotSetUp);
        };
        self.check(client, &hash, password, "wrong-password", AuthError::WrongPassword).await?;
        let token = self.token(32);
        let now = Instant::now();
        let session =
            Session { created: now, last_seen: now, csrf: self.token(16), generation: owner.generation };
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| live(s, now, owner.generation, self.lifetimes));
        sessions.insert(token.clone(), session);
        Ok(token)
    }

    /// The session's form token, if `token` names a live session of the owner's
    /// `generation`. A request that counts as `activity` keeps it alive; the status
    /// page's background refresh does not.
    fn session(&self, token: &str, generation: u64, activity: bool) -> Option<String> {
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        let session = sessions.get_mut(token).filter(|s| live(s, now, generation, self.lifetimes))?;
        if activity {
            session.last_seen = now;
        }
        Some(session.csrf.clone())
    }

    pub fn logout(&self, token: &str) {
        lock(&self.sessions).remove(token);
    }

    /// A new password ends every session, this one included.
    pub async fn change_password(
        self: &Arc<Self>,
        client: Option<IpAddr>,
        current: &str,
        new: &str,
    ) -> Result<(), AuthError> {
        let hash = self.owner()?.password.ok_or(AuthError::NotSetUp)?;
        self.check(client, &hash, current, "wrong-current-password", AuthError::WrongPassword).await?;
        check_password(new, None)?;
        let new_hash = self.hash(new).await?;
        self.modify(move |owner| {
            if owner.password.as_ref() != Some(&hash) {
                return Err(AuthError::Refused("The password was changed meanwhile: log in again.".into()));
            }
            owner.password = Some(new_hash);
            owner.generation += 1;
            Ok(())
        })
        .await?;
        tracing::info!("the owner's password was changed: every session has ended");
        Ok(())
    }

    /// Changes a setting of the owner's and keeps it, unless the session ended meanwhile
    /// (a new password, `reset-owner`).
    pub async fn update(
        self: &Arc<Self>,
        session: &LoggedIn,
        change: impl FnOnce(&mut Owner) + Send + 'static,
    ) -> Result<(), AuthError> {
        let generation = session.generation;
        self.modify(move |owner| {
            if owner.generation != generation {
                return Err(AuthError::Refused("Your session has ended: log in again.".into()));
            }
            change(owner);
            Ok(())
        })
        .await
    }

    /// Checks `secret` against `hash` in a place of its own, after the waits this client
    /// and everyone have earned. A wrong one is counted and logged as `reason`, and answered
    /// with `wrong`; a right one wipes the client's slate.
    async fn check(
        &self,
        client: Option<IpAddr>,
        hash: &str,
        secret: &str,
        reason: &str,
        wrong: AuthError,
    ) -> Result<(), AuthError> {
        let attempt = self.attempt(client)?;
        attempt.wait().await;
        if !self.verify(hash, secret).await {
            attempt.failed(reason);
            return Err(wrong);
        }
        attempt.succeeded();
        Ok(())
    }

    /// Takes a place among the password checks in progress, or says Busy: one client
    /// takes at most `PER_CLIENT`, and clients with recent failures leave `RESERVED` for
    /// the others. Checks still in progress count as failures for the wait, so guesses
    /// sent side by side wait as if sent one after another.
    fn attempt(&self, client: Option<IpAddr>) -> Result<Attempt<'_>, AuthError> {
        let now = Instant::now();
        let mut throttle = lock(&self.throttle);
        while throttle.recent.front().is_some_and(|t| now - *t >= Duration::from_secs(60)) {
            throttle.recent.pop_front();
        }
        let key = throttle.key(client);
        let failures = throttle.failures_of(&key, now);
        let checking = throttle.checking.get(&key).copied().unwrap_or(0);
        let places = match failures {
            0 => MAX_PENDING,
            _ => MAX_PENDING - RESERVED,
        };
        if checking >= PER_CLIENT || throttle.pending >= places {
            return Err(AuthError::Busy);
        }
        throttle.pending += 1;
        *throttle.checking.entry(key).or_default() += 1;
        let everyone = match throttle.recent.len() > GLOBAL_FAILURES_PER_MINUTE {
            true => Duration::from_secs(1),
            false => Duration::ZERO,
        };
        Ok(Attempt { auth: self, client, key, delay: delay_after(failures + checking).max(everyone) })
    }

    async fn hash(&self, secret: &str) -> Result<String, AuthError> {
        let (random, secret) = (self.random.clone(), secret.to_owned());
        self.with_memory(move |memory| hash_with(&random, memory, &secret)).await?
    }

    async fn verify(&self, hash: &str, secret: &str) -> bool {
        let (hash, secret) = (hash.to_owned(), secret.to_owned());
        self.with_memory(move |memory| verify_with(memory, &hash, &secret)).await.unwrap_or(false)
    }

    /// Runs argon2 on the runtime's blocking thread, one hash at a time with the one
    /// working memory: a hash takes tens of milliseconds (hundreds on a small device),
    /// which would hold up every request on a runtime worker.
    async fn with_memory<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<argon2::Block>) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let mut memory = self.memory.lock().await;
        let mut taken = std::mem::take(&mut *memory);
        let (result, taken) = tokio::task::spawn_blocking(move || (work(&mut taken), taken))
            .await
            .map_err(|e| AuthError::Storage(e.to_string()))?;
        *memory = taken;
        Ok(result)
    }

    fn token(&self, bytes: usize) -> String {
        let mut raw = vec![0u8; bytes];
        self.random.fill(&mut raw).expect("the kernel's random numbers");
        raw.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// argon2id with a fresh salt, as a PHC string ($argon2id$v=19$m=...,t=...,p=1$salt$hash).
fn hash_with(
    random: &SystemRandom,
    memory: &mut Vec<argon2::Block>,
    secret: &str,
) -> Result<String, AuthError> {
    let failed = |e: &dyn std::fmt::Display| AuthError::Storage(e.to_string());
    let mut salt = [0u8; 16];
    random.fill(&mut salt).map_err(|_| AuthError::Storage("no randomness".into()))?;
    let mut out = [0u8; 32];
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, None).map_err(|e| failed(&e))?;
    run_argon2(params, memory, secret.as_bytes(), &salt, &mut out).map_err(|e| failed(&e))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| failed(&e))?;
    let out = argon2::password_hash::Output::new(&out).map_err(|e| failed(&e))?;
    Ok(format!("$argon2id$v=19$m={ARGON2_MEMORY_KIB},t={ARGON2_PASSES},p=1${}${out}", salt.as_str()))
}

/// Checks `secret` against a PHC string made by `hash_with` (with its own parameters).
fn verify_with(memory: &mut Vec<argon2::Block>, phc: &str, secret: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let number = |name| parsed.params.get_decimal(name);
    let (Some(m), Some(t), Some(p), Some(salt), Some(expected)) =
        (number("m"), number("t"), number("p"), parsed.salt, parsed.hash)
    else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let Ok(params) = Params::new(m, t, p, Some(expected.len())) else { return false };
    let mut out = vec![0u8; expected.len()];
    run_argon2(params, memory, secret.as_bytes(), salt, &mut out).is_ok()
        && same_bytes(&out, expected.as_bytes())
}

fn run_argon2(
    params: Params,
    memory: &mut Vec<argon2::Block>,
    secret: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = params.block_count();
    memory.resize(blocks, argon2::Block::default());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into_with_memory(
        secret,
        salt,
        out,
        &mut memory[..blocks],
    )
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn live(session: &Session, now: Instant, generation: u64, lifetimes: Lifetimes) -> bool {
    session.generation == generation
        && now - session.last_seen < lifetimes.idle
        && now - session.created < lifetimes.absolute
}

fn delay_after(failures: u32) -> Duration {
    match failures.checked_sub(FREE_FAILURES) {
        None => Duration::ZERO,
        Some(n) => FIRST_DELAY.saturating_mul(1 << n.min(16)).min(MAX_DELAY),
    }
}

/// 16 characters from Crockford's base 32 (no I, L, O, U), in groups of four: 80 bits,
/// typeable from a label or a console.
fn setup_code(random: &SystemRandom) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut raw = [0u8; 16];
    random.fill(&mut raw).expect("the kernel's random numbers");
    let chars: Vec<char> = raw.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// How a code is compared: case, dashes and spaces do not matter, nor the letters people
/// confuse with digits.
fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

/// The rules; `code` is the set-up code, which must not become the password.
pub fn check_password(password: &str, code: Option<&str>) -> Result<(), AuthError> {
    let weak = |why: &str| Err(AuthError::WeakPassword(why.to_owned()));
    let length = password.chars().count();
    if length < MIN_PASSWORD {
        return weak(&format!("Use at least {MIN_PASSWORD} characters: a few words make a strong password."));
    }
    if length > MAX_PASSWORD {
        return weak(&format!("Use at most {MAX_PASSWORD} characters."));
    }
    if crate::common_passwords::is_common(password) {
        return weak("That password is on lists of common passwords, or one dressed up: choose another.");
    }
    let chars: Vec<char> = password.to_lowercase().chars().collect();
    let distinct = chars.iter().collect::<std::collections::HashSet<_>>().len();
    let run = chars.windows(2).all(|w| (w[1] as i32 - w[0] as i32).abs() == 1);
    if distinct <= 3 || run {
        return weak("That password is a repeat or a run of characters: choose another.");
    }
    if code.is_some_and(|code| normalise_code(code) == normalise_code(password)) {
        return weak("The set-up code cannot be the password.");
    }
    Ok(())
}

/// A request from a logged-in owner, over HTTPS. A page that needs a login takes it as
/// an argument; that is all it takes. Over plain HTTP the request is redirected to HTTPS;
/// without a live session, a page load goes to the login and anything else gets 403. A
/// state-changing request must also come from the device's own pages (Origin or
/// Sec-Fetch-Site), and its form must carry `csrf` (checked by `CsrfForm`).
pub struct LoggedIn {
    pub token: String,
    pub csrf: String,
    /// The owner's state the session belongs to: a change is refused once it is another.
    generation: u64,
}

/// The owner's settings a request may need, as `Auth::glance` saw them.
pub struct Glance {
    pub label: String,
    pub status_public: bool,
    setup_needed: bool,
    generation: u64,
}

impl<S: HasAuth + Send + Sync> FromRequestParts<S> for LoggedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Some(auth) = state.auth() else {
            return Err(no_login());
        };
        require_https(parts)?;
        logged_in(parts, auth, &auth.glance())
    }
}

/// `LoggedIn`'s checks after `require_https`, against the owner as `glance` saw them.
fn logged_in(parts: &Parts, auth: &Auth, glance: &Glance) -> Result<LoggedIn, Response> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        same_origin(&parts.headers)?;
    }
    let generation = glance.generation;
    let session = cookie(&parts.headers).and_then(|token| {
        auth.session(&token, generation, true).map(|csrf| LoggedIn { token, csrf, generation })
    });
    match session {
        Some(session) => Ok(session),
        None if parts.method == Method::GET => {
            let target = if glance.setup_needed { "/setup" } else { "/login" };
            Err(Redirect::to(target).into_response())
        }
        None => Err((StatusCode::FORBIDDEN, "log in first\n").into_response()),
    }
}

/// Over plain HTTP, a redirect to the same path over HTTPS (same host, port 443).
pub fn require_https(parts: &Parts) -> Result<(), Response> {
    if parts.extensions.get::<Peer>().is_some_and(|peer| peer.https) {
        return Ok(());
    }
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    // The host without its port (kept for an IPv6 literal's brackets).
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() => name,
        _ => host,
    };
    if host.is_empty() || host.bytes().any(|b| matches!(b, b'/' | b'\\' | b'@' | b' ')) {
        return Err((StatusCode::FORBIDDEN, "this page is served over HTTPS only\n").into_response());
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    Err(Redirect::permanent(&format!("https://{host}{path}")).into_response())
}

/// A state-changing request must come from a page of this device: browsers say where a
/// request comes from in Origin or Sec-Fetch-Site, and another site cannot forge either.
pub fn same_origin(headers: &HeaderMap) -> Result<(), Response> {
    let forbidden = || (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response();
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err(forbidden()),
        };
    }
    let host = headers.get(header::HOST).map(|h| h.as_bytes());
    match (headers.get(header::ORIGIN), host) {
        (Some(origin), Some(host)) if origin.as_bytes().strip_prefix(b"https://") == Some(host) => Ok(()),
        _ => Err(forbidden()),
    }
}

/// The session token from the Cookie header.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|cookies| {
        cookies.split(';').find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('=').map(str::to_owned))
    })
}

/// Set-Cookie for a session token, or to clear it (`None`).
pub fn set_cookie(token: Option<&str>) -> String {
    match token {
        Some(token) => format!("{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict"),
        None => format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

/// Compares without stopping at the first difference.
pub fn same_secret(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_rules() {
        assert!(check_password("three words only", None).is_ok());
        assert!(matches!(check_password("short", None), Err(AuthError::WeakPassword(_))));
        assert!(matches!(check_password("PasswordPassword", None), Err(AuthError::WeakPassword(_))));
        assert!(matches!(check_password("aaaaaaaaaaaaaaaaaaa", None), Err(AuthError::WeakPassword(_))));
        assert!(matches!(check_password("abcdefghijklmnopq", None), Err(AuthError::WeakPassword(_))));
        let code = "ABCD-EFGH-JKMN-PQRS";
        assert!(matches!(check_password("abcdefghjkmnpqrs", Some(code)), Err(AuthError::WeakPassword(_))));
        assert!(check_password(&"x y ".repeat(100), None).is_err());
        // A common password dressed up to pass the length rule (the list: common_passwords.rs).
        assert!(matches!(check_password("password1234567", None), Err(AuthError::WeakPassword(_))));
        assert!(matches!(check_password("P@ssw0rd12345678", None), Err(AuthError::WeakPassword(_))));
    }

    #[test]
    fn set_up_codes_have_80_bits_and_forgive_how_they_are_typed() {
        let code = setup_code(&SystemRandom::new());
        assert_eq!(code.len(), 19, "{code}");
        assert_ne!(code, setup_code(&SystemRandom::new()));
        assert_eq!(normalise_code("abc0-i1l "), normalise_code("ABCO-111"));
    }

    /// Spraying addresses until the table is full neither grows it nor wipes what it knows:
    /// newcomers share one entry, and those already in it keep their count.
    #[test]
    fn a_full_client_table_puts_newcomers_in_one_entry_and_forgets_no_one() {
        let now = Instant::now();
        let mut throttle = Throttle::default();
        assert_eq!(throttle.key(None), LOCAL, "Unix-socket clients are one client");
        for n in 0..MAX_CLIENTS as u32 {
            throttle.failures.insert(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n)), (5, now));
        }
        let known: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(throttle.key(Some(known)), known);
        assert_eq!(throttle.key(Some("192.0.2.1".parse().unwrap())), OVERFLOW);
        assert_eq!(throttle.key(Some("2001:db8::1".parse().unwrap())), OVERFLOW);
        assert_eq!(throttle.failures_of(&known, now), 5);
        assert_eq!(throttle.failures_of(&known, now + FORGET_AFTER), 0, "forgotten in time");
    }

    /// A change made with a session whose owner's state has moved on since the session was
    /// checked (a new password or `reset-owner` in between) is refused, not saved.
    #[tokio::test]
    async fn a_change_from_a_session_of_an_earlier_state_is_refused() {
        let dir = std::env::temp_dir().join(format!("portico-stale-{}", std::process::id()));
        let lifetimes = Lifetimes { idle: Duration::from_secs(60), absolute: Duration::from_secs(600) };
        let (auth, _) = Auth::open(Store::new(&dir), None, lifetimes);
        let auth = Arc::new(auth);
        let generation = auth.glance().generation;
        let session = LoggedIn { token: String::new(), csrf: String::new(), generation };
        auth.update(&session, |o| o.label = "fresh".into()).await.unwrap();
        auth.modify(|o| {
            o.generation += 1;
            Ok(())
        })
        .await
        .unwrap();
        let stale = auth.update(&session, |o| o.label = "stale".into()).await;
        assert!(matches!(stale, Err(AuthError::Refused(_))), "{stale:?}");
        assert_eq!(auth.glance().label, "fresh");
        std::fs::remove_dir_all(&dir).unwrap();
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

/// Where the pages keep the login: none on a device without an HTTPS socket, since the
/// login never travels in clear.
pub trait HasAuth {
    fn auth(&self) -> Option<&Arc<Auth>>;
}

fn no_login() -> Response {
    (StatusCode::NOT_FOUND, "this device has no owner login: it has no HTTPS socket\n").into_response()
}

/// How much of the status page and /api/status a request may see: all of it if the owner
/// made them public (as they are before the device has an owner), or for the logged-in
/// owner over HTTPS; otherwise what a monitor needs (`full` is false). It brings the
/// device's label, from the same look at the owner's state, so the page needs no second
/// one. Looking does not keep a session alive: the page refreshes itself every few
/// seconds, and an open tab must not hold a login open.
pub struct MayView {
    pub label: String,
    pub full: bool,
}

impl<S: HasAuth + Send + Sync> FromRequestParts<S> for MayView {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(auth) = state.auth() else {
            return Ok(MayView { label: String::new(), full: true });
        };
        let glance = auth.glance();
        let https = parts.extensions.get::<Peer>().is_some_and(|peer| peer.https);
        let full = glance.status_public
            || https
                && cookie(&parts.headers)
                    .is_some_and(|token| auth.session(&token, glance.generation, false).is_some());
        Ok(MayView { label: glance.label, full })
    }
}

/// A form posted by the logged-in owner from one of the device's pages: `LoggedIn`'s
/// checks, then the session's form token, which another site cannot know.
pub struct CsrfForm<T>(pub LoggedIn, pub T);

#[derive(serde::Deserialize)]
struct WithCsrf<T> {
    csrf: String,
    #[serde(flatten)]
    form: T,
}

impl<S, T> axum::extract::FromRequest<S> for CsrfForm<T>
where
    S: HasAuth + Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let owner = LoggedIn::from_request_parts(&mut parts, state).await?;
        let request = axum::extract::Request::from_parts(parts, body);
        let axum::Form(with) = axum::Form::<WithCsrf<T>>::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if !same_secret(&with.csrf, &owner.csrf) {
            return Err((StatusCode::FORBIDDEN, "the form's token is not this session's: reload the page\n")
                .into_response());
        }
        Ok(CsrfForm(owner, with.form))
    }
}
