//! The Lexecon gRPC server.
//!
//! A thin adapter: converts `lexecon.v1` messages to engine types and back by hand,
//! authenticates and authorizes every call, and serves health, reflection and
//! Prometheus metrics. It owns no decision logic; handlers delegate to the engine.
