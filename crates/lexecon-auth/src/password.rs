//! Password hashing with Argon2id.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::CryptoRngCore;

use crate::AuthError;

/// Argon2id cost parameters for new password hashes.
///
/// The defaults are OWASP's first recommendation for Argon2id (19 MiB, 2 passes, one
/// lane). Existing hashes keep the parameters they were made with (they are part of the
/// stored PHC string), so raising these affects new and changed passwords only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        PasswordParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordParams {
    /// The smallest parameters Argon2 accepts: for tests only, never for real users.
    pub const INSECURE_FOR_TESTS: PasswordParams = PasswordParams {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };

    fn argon2(self) -> Result<Argon2<'static>, AuthError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| AuthError::Config(format!("invalid argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Minimum password length in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Maximum password length in bytes (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Hashes `password` into a PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
pub(crate) fn hash_password(
    password: &str,
    params: PasswordParams,
    rng: &mut dyn CryptoRngCore,
) -> Result<String, AuthError> {
    let mut salt_bytes = [0u8; 16];
    rng.fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| AuthError::Config(format!("cannot encode salt: {e}")))?;
    let hash = params
        .argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Config(format!("cannot hash password: {e}")))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored` (constant-time inside argon2).
pub(crate) fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}
