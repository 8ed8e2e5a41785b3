//! Lexecon capability tokens.
//!
//! Owns the token format, minting with the node's Ed25519 key, offline verification with
//! only the public key (signature, key id, validity window and scope always checked),
//! key rings with rotation, revocation checks, and node key files.
