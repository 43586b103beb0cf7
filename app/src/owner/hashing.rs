//! argon2id, one hash at a time: the owner's password and set-up code are kept only as
//! hashes, and checking one costs the same memory however many logins arrive at once.

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};

use super::error::AuthError;

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

/// Hashes and checks secrets on the runtime's blocking thread, with one working memory,
/// allocated once: hashing takes turns with it, so a login flood neither holds more than
/// one hash's memory nor leaves freed copies behind.
pub(super) struct Hasher {
    memory: tokio::sync::Mutex<Vec<argon2::Block>>,
    random: SystemRandom,
}

impl Hasher {
    pub(super) fn new(random: SystemRandom) -> Self {
        Hasher { memory: tokio::sync::Mutex::new(Vec::new()), random }
    }

    pub(super) async fn hash(&self, secret: &str) -> Result<String, AuthError> {
        let (random, secret) = (self.random.clone(), secret.to_owned());
        self.with_memory(move |memory| hash_with(&random, memory, &secret)).await?
    }

    pub(super) async fn verify(&self, hash: &str, secret: &str) -> bool {
        let (hash, secret) = (hash.to_owned(), secret.to_owned());
        self.with_memory(move |memory| verify_with(memory, &hash, &secret)).await.unwrap_or(false)
    }

    /// A hash takes tens of milliseconds (hundreds on a small device), which would hold
    /// up every request on a runtime worker.
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
}

/// argon2id with a fresh salt, as a PHC string ($argon2id$v=19$m=...,t=...,p=1$salt$hash).
pub(super) fn hash_with(
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

/// Compares without stopping at the first difference.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
