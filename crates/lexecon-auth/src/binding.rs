//! Which actors an API key may speak for: full-match globs with exactly the rules of
//! policy patterns, compiled once when the key is read.

use std::fmt;

use lexecon_core::Actor;
use lexecon_core::glob::{Alphabet, Glob};

use crate::{AuthError, Role};

/// The actors an API key may speak for: a list of full-match glob patterns
/// ([`lexecon_core::Glob`], the rules of policy `actor` terms).
///
/// An empty binding permits no actor. Bindings compare equal when their patterns are
/// equal, in order.
#[derive(Clone)]
pub struct ActorBinding {
    patterns: Box<[String]>,
    globs: Box<[Glob]>,
}

/// At most this many patterns per key: more is a sign that wildcards would serve better.
pub const MAX_ACTOR_PATTERNS: usize = 64;
/// The longest pattern, in bytes: the longest actor name.
pub const MAX_ACTOR_PATTERN_LEN: usize = Actor::MAX_LEN;
/// At most this many LLM roles per key.
pub const MAX_LLM_ROLES: usize = 32;
/// The longest LLM role, in bytes.
pub const MAX_LLM_ROLE_LEN: usize = 64;

/// How much of a refused value an error message quotes.
const QUOTE_CHARS: usize = 64;

impl ActorBinding {
    /// Compiles `patterns`. Each must be a valid actor pattern of 1 to
    /// [`MAX_ACTOR_PATTERN_LEN`] bytes (actor characters plus the wildcards `*` and
    /// `?`), and there may be at most [`MAX_ACTOR_PATTERNS`]. The error is
    /// `InvalidArgument` on the field `actors`, naming the index and pattern at fault.
    pub fn new(patterns: &[String]) -> Result<ActorBinding, AuthError> {
        if patterns.len() > MAX_ACTOR_PATTERNS {
            return Err(invalid_actors(format!(
                "{} patterns given, at most {MAX_ACTOR_PATTERNS} are allowed: use wildcards \
                 (for example 'ai_agent:support_*') to cover several actors",
                patterns.len()
            )));
        }
        let mut globs = Vec::with_capacity(patterns.len());
        for (i, pattern) in patterns.iter().enumerate() {
            if pattern.len() > MAX_ACTOR_PATTERN_LEN {
                return Err(invalid_actors(format!(
                    "pattern {i} ({}) is {} bytes long; at most {MAX_ACTOR_PATTERN_LEN} are \
                     allowed",
                    quote(pattern),
                    pattern.len()
                )));
            }
            let glob = Glob::for_field(pattern, Alphabet::Name("actor")).map_err(|e| {
                invalid_actors(format!("pattern {i} ({}) is invalid: {e}", quote(pattern)))
            })?;
            globs.push(glob);
        }
        Ok(ActorBinding {
            patterns: patterns.into(),
            globs: globs.into_boxed_slice(),
        })
    }

    /// A binding that permits no actor: what a key whose stored binding cannot be
    /// compiled is treated as (fail closed).
    pub(crate) fn nothing() -> ActorBinding {
        ActorBinding {
            patterns: Box::default(),
            globs: Box::default(),
        }
    }

    /// Whether some pattern matches the whole of `actor`.
    pub fn permits(&self, actor: &str) -> bool {
        self.globs.iter().any(|g| g.matches(actor))
    }

    /// The one actor this binding names, when it is exactly one pattern without a
    /// wildcard: a request from such a key that leaves `actor` empty means this actor.
    pub fn sole_literal(&self) -> Option<&str> {
        match &*self.globs {
            [only] if only.is_literal() => Some(only.as_str()),
            _ => None,
        }
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether the binding has no pattern (and so permits no actor).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

impl PartialEq for ActorBinding {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

impl Eq for ActorBinding {}

impl fmt::Debug for ActorBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ActorBinding").field(&self.patterns).finish()
    }
}

fn invalid_actors(reason: String) -> AuthError {
    AuthError::InvalidArgument {
        field: "actors",
        reason,
    }
}

/// `value` quoted for an error message, cut to [`QUOTE_CHARS`] characters.
fn quote(value: &str) -> String {
    let cut: String = value.chars().take(QUOTE_CHARS).collect();
    if cut.len() < value.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

/// Checks the actors of a key of `role`: an `agent` key must be bound to at least one
/// pattern; every pattern must compile. Returns the binding to store (`None` when
/// `actors` is empty).
pub(crate) fn validate_actors(
    role: Role,
    actors: &[String],
) -> Result<Option<ActorBinding>, AuthError> {
    if actors.is_empty() {
        if role == Role::Agent {
            return Err(invalid_actors(
                "an agent key must be bound to the actors it speaks for: pass --actor GLOB \
                 (for example --actor 'ai_agent:support_bot')"
                    .to_owned(),
            ));
        }
        return Ok(None);
    }
    ActorBinding::new(actors).map(Some)
}

/// Checks the LLM roles of a key: at most [`MAX_LLM_ROLES`], each 1 to
/// [`MAX_LLM_ROLE_LEN`] bytes without control characters.
pub(crate) fn validate_llm_roles(llm_roles: &[String]) -> Result<(), AuthError> {
    let invalid = |reason: String| AuthError::InvalidArgument {
        field: "llm_roles",
        reason,
    };
    if llm_roles.len() > MAX_LLM_ROLES {
        return Err(invalid(format!(
            "{} roles given, at most {MAX_LLM_ROLES} are allowed",
            llm_roles.len()
        )));
    }
    for (i, r) in llm_roles.iter().enumerate() {
        if r.is_empty() || r.len() > MAX_LLM_ROLE_LEN || r.chars().any(char::is_control) {
            return Err(invalid(format!(
                "role {i} ({}) must be 1-{MAX_LLM_ROLE_LEN} bytes without control characters",
                quote(r)
            )));
        }
    }
    Ok(())
}
