//! The owner's account: set-up with the one-time code, login, password change, the
//! owner's settings and `portico reset-owner`, each read and saved through the state file
//! (state.rs) under its lock. The parts it puts together are in their own modules:
//! password rules and codes, hashing, the throttle, sessions, and the extractors pages
//! take.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ring::rand::SystemRandom;

use super::error::AuthError;
use super::hashing::{Hasher, hash_with};
use super::password::{check_password, normalise_code, setup_code};
use super::sessions::LoggedIn;
use super::sessions::{Lifetimes, Sessions};
use super::state::{Loaded, Lock, Owner, Stamp, Store};
use super::throttle::Throttle;

/// The owner as last read, the stamp of the file read, and why it cannot be read now if so.
struct Cached {
    owner: Owner,
    stamp: Option<Stamp>,
    unreadable: Option<String>,
}

/// The owner's account: the state it is kept in, as last read, and the login's parts.
pub struct Auth {
    store: Store,
    owner: Mutex<Cached>,
    sessions: Sessions,
    throttle: Throttle,
    hasher: Hasher,
    random: SystemRandom,
}

/// What `open` found, for the start-up to announce.
pub(super) enum Opened {
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
pub(super) fn reset(store: &Store) -> Result<String, AuthError> {
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

impl Auth {
    /// Reads the owner's state; on a first start, or while set-up is pending, makes a
    /// set-up code: the provisioned one if the device has one, else a fresh random one.
    /// A damaged file is kept aside, and set-up then takes only a code from the journal:
    /// whoever damaged the file may have read the label. State that cannot be read or
    /// written (an I/O error, a read-only or unwritable directory) is left as it is: the
    /// owner's pages say what is wrong and each request tries again, while the rest of
    /// the device serves on.
    pub(super) fn open(store: Store, provisioned: Option<String>, lifetimes: Lifetimes) -> (Self, Opened) {
        let random = SystemRandom::new();
        let auth = Auth {
            owner: Mutex::new(Cached { owner: Owner::default(), stamp: None, unreadable: None }),
            store,
            sessions: Sessions::new(lifetimes, random.clone()),
            throttle: Throttle::default(),
            hasher: Hasher::new(random.clone()),
            random,
        };
        match auth.first_look(provisioned) {
            Ok(opened) => (auth, opened),
            Err(e) => {
                let why = match e {
                    AuthError::Storage(why) => why,
                    other => other.to_string(),
                };
                auth.owner.lock().unwrap_or_else(PoisonError::into_inner).unreadable = Some(why.clone());
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
                Owner { local_code_only: true, ..Owner::default() }
            }
            Loaded::Unreadable(why) => return Err(AuthError::Storage(why)),
        };
        *self.owner.lock().unwrap_or_else(PoisonError::into_inner) =
            Cached { owner: owner.clone(), stamp: self.store.stamp(), unreadable: None };
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

    fn save(&self, owner: Owner, lock: &Lock) -> Result<(), AuthError> {
        let stamp = self.store.save(&owner, lock).map_err(storage)?;
        *self.owner.lock().unwrap_or_else(PoisonError::into_inner) =
            Cached { owner, stamp: Some(stamp), unreadable: None };
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
        let mut cached = self.owner.lock().unwrap_or_else(PoisonError::into_inner);
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
    pub(crate) fn glance(&self) -> Glance {
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

    pub(super) fn setup_needed(&self) -> bool {
        self.glance().setup_needed
    }

    /// First set-up: the one-time code, then the owner's password. The code is spent.
    /// From then on visitors see the reduced status page until the owner opens it.
    pub(super) async fn set_up(
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
        let hash = self.hasher.hash(password).await?;
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
            Ok(())
        })
        .await?;
        tracing::info!("set-up done: the device has an owner; the set-up code is spent");
        Ok(())
    }

    /// Checks the password (after the delays this client and everyone have earned) and
    /// opens a session: its token.
    pub(super) async fn login(&self, client: Option<IpAddr>, password: &str) -> Result<String, AuthError> {
        let owner = self.owner()?;
        let Some(hash) = owner.password else {
            return Err(AuthError::NotSetUp);
        };
        self.check(client, &hash, password, "wrong-password", AuthError::WrongPassword).await?;
        Ok(self.sessions.open(owner.generation))
    }

    /// The session's form token, if `token` names a live session of the owner's
    /// `generation` (sessions.rs).
    pub(super) fn session(&self, token: &str, generation: u64, activity: bool) -> Option<String> {
        self.sessions.find(token, generation, activity)
    }

    pub(super) fn logout(&self, token: &str) {
        self.sessions.end(token);
    }

    /// A new password ends every session, this one included.
    pub(super) async fn change_password(
        self: &Arc<Self>,
        client: Option<IpAddr>,
        current: &str,
        new: &str,
    ) -> Result<(), AuthError> {
        let hash = self.owner()?.password.ok_or(AuthError::NotSetUp)?;
        self.check(client, &hash, current, "wrong-current-password", AuthError::WrongPassword).await?;
        check_password(new, None)?;
        let new_hash = self.hasher.hash(new).await?;
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
    pub(super) async fn update(
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
        let attempt = self.throttle.attempt(client)?;
        attempt.wait().await;
        if !self.hasher.verify(hash, secret).await {
            attempt.failed(reason);
            return Err(wrong);
        }
        attempt.succeeded();
        Ok(())
    }
}

/// The owner's settings a request may need, as `Auth::glance` saw them.
pub(crate) struct Glance {
    pub(crate) label: String,
    pub(crate) status_public: bool,
    pub(super) setup_needed: bool,
    pub(super) generation: u64,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
}
