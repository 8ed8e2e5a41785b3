//! Authentication and authorization.
//!
//! Owns principals (people and service API keys), roles and the permission table of
//! every RPC, Argon2id password hashing with lockout, sessions stored only as hashes,
//! TOTP MFA with backup codes, API keys, OIDC ID-token validation, and the store trait
//! they persist through.
