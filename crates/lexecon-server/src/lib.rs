//! The Lexecon gRPC server.
//!
//! A thin adapter: converts `lexecon.v1` messages to engine types and back by hand
//! ([`convert`]), authenticates and authorizes every call, and serves health, reflection
//! and Prometheus metrics ([`metrics`]). It owns no decision logic; handlers delegate to
//! the engine.

pub mod convert;
pub mod metrics;
