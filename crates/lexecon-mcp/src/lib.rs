//! The MCP gateway (contract §11): a Lexecon decision in front of every Model Context
//! Protocol tool call, without changing the agent or the MCP server.
//!
//! A thin adapter, like the server and the CLI: it converts MCP to engine operations
//! and back, and never decides itself. [`jsonrpc`] classifies each message only as far
//! as needed and keeps its bytes; `gateway` turns each `tools/call` into one decision
//! (`mapping`) through a `decider::Decider` (the embedded engine or a server,
//! `deciders`), forwards it only when an APPROVED decision names it, adds the decision
//! to the result's `_meta` and records the completion; everything else is relayed
//! unchanged, in order. `stdio` is `lexecon mcp proxy`'s relay (`run` starts it), `http`
//! is `lexecon mcp serve`.
//!
//! Without the default `gateway` feature only [`jsonrpc`] and [`canonical`] are built
//! (for the fuzz targets).

pub mod canonical;
pub mod jsonrpc;

#[cfg(feature = "gateway")]
pub mod decider;
#[cfg(feature = "gateway")]
pub mod deciders;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "gateway")]
pub mod http;
#[cfg(feature = "gateway")]
pub mod mapping;
#[cfg(feature = "gateway")]
pub mod run;
#[cfg(feature = "gateway")]
pub mod stdio;

#[cfg(test)]
#[cfg(feature = "gateway")]
mod relay_tests;

#[cfg(feature = "gateway")]
pub use decider::{Decider, DeciderError};
#[cfg(feature = "gateway")]
pub use gateway::{Gateway, Session, Step};
#[cfg(feature = "gateway")]
pub use http::{ServeBackend, ServeOptions, run_serve};
#[cfg(feature = "gateway")]
pub use mapping::Settings;
#[cfg(feature = "gateway")]
pub use run::{Backend, ProxyOptions, StartError, run_proxy};
