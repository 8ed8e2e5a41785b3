//! Who performs an operation, as authentication (or the local process) established it,
//! and how the ledger names them. Identity never comes from a field the caller typed.

use lexecon_auth::{Principal, PrincipalKind, Role};

/// The author of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A principal authenticated by an API key or a session.
    Principal(Principal),
    /// A command working on the database directly (`init`, `user add`, `apikey create`,
    /// `keys rotate`, an embedded engine): the operating-system user running it.
    Local(String),
    /// The engine itself (sweepers, reloads): the task's name.
    System(&'static str),
}

impl Caller {
    /// The local operating-system user, from `$USER` (or `$LOGNAME`), else `unknown`.
    pub fn local() -> Caller {
        let user = ["USER", "LOGNAME", "USERNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "unknown".to_owned());
        Caller::Local(user)
    }

    /// How ledger entries name this caller: `key:<name>`, `user:<name>`,
    /// `local:<os user>` or `system:<task>`.
    pub fn ledger_name(&self) -> String {
        match self {
            Caller::Principal(p) => match p.kind {
                PrincipalKind::ApiKey => format!("key:{}", p.name),
                PrincipalKind::User => format!("user:{}", p.name),
            },
            Caller::Local(user) => format!("local:{user}"),
            Caller::System(task) => format!("system:{task}"),
        }
    }

    /// The key under which this caller's idempotent requests are remembered: stable
    /// across renames (the principal's id, not its name).
    pub(crate) fn idempotency_key(&self) -> String {
        match self {
            Caller::Principal(p) => format!("{}:{}", p.kind.as_str(), p.id),
            Caller::Local(user) => format!("local:{user}"),
            Caller::System(task) => format!("system:{task}"),
        }
    }

    /// The authenticated principal, when there is one.
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::Principal(p) => Some(p),
            Caller::Local(_) | Caller::System(_) => None,
        }
    }

    /// The API key's name, when an API key is calling (budgets count under `key:<name>`).
    pub fn key_name(&self) -> Option<&str> {
        match self {
            Caller::Principal(p) if p.kind == PrincipalKind::ApiKey => Some(&p.name),
            Caller::Principal(_) | Caller::Local(_) | Caller::System(_) => None,
        }
    }

    /// Whether this caller may speak for any actor: admins and local or system callers.
    pub(crate) fn speaks_for_anyone(&self) -> bool {
        match self {
            Caller::Principal(p) => p.role == Role::Admin,
            Caller::Local(_) | Caller::System(_) => true,
        }
    }
}
