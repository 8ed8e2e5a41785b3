//! The active policy: loaded from a file at start and on SIGHUP, or through LoadPolicy;
//! validated before it replaces the old one, swapped atomically, recorded in history.

use std::path::Path;
use std::sync::{Arc, RwLock};

use lexecon_core::Timestamp;
use lexecon_policy::{CompiledPolicy, Diagnostic, Policy, Severity};

/// A policy that failed to load: every problem found, with its location.
#[derive(Debug, thiserror::Error)]
#[error("policy {origin} is invalid:\n{}", render(.diagnostics))]
pub struct PolicyLoadError {
    /// Where the policy came from.
    pub origin: String,
    /// Every error and warning.
    pub diagnostics: Vec<Diagnostic>,
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The active policy version with what the engine records about it.
#[derive(Debug)]
pub struct ActivePolicy {
    /// The compiled evaluator.
    pub compiled: CompiledPolicy,
    /// The TOML source.
    pub source: String,
    /// When it became active.
    pub loaded_at: Timestamp,
    /// Who loaded it (a principal name, or `file` for the policy file).
    pub loaded_by: String,
    /// Warnings from validation.
    pub warnings: Vec<Diagnostic>,
}

/// Parses and compiles `source`; errors carry every diagnostic.
pub fn compile(
    source: &str,
    origin: &str,
) -> Result<(CompiledPolicy, Vec<Diagnostic>), PolicyLoadError> {
    match Policy::parse(source, origin) {
        Ok((policy, warnings)) => Ok((CompiledPolicy::new(&policy), warnings)),
        Err(diagnostics) => Err(PolicyLoadError {
            origin: origin.to_owned(),
            diagnostics,
        }),
    }
}

/// Reads and compiles a policy file.
pub fn compile_file(
    path: &Path,
) -> Result<(CompiledPolicy, String, Vec<Diagnostic>), PolicyLoadError> {
    let origin = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| PolicyLoadError {
        origin: origin.clone(),
        diagnostics: vec![Diagnostic {
            severity: Severity::Error,
            message: format!(
                "cannot read the policy file: {e}; set policy.file or run `lexecon init`"
            ),
            origin: origin.clone(),
            line: 0,
            column: 0,
        }],
    })?;
    let (compiled, warnings) = compile(&source, &origin)?;
    Ok((compiled, source, warnings))
}

/// The slot holding the active policy; readers take a cheap `Arc` snapshot, so a swap
/// never mixes two versions inside one decision.
#[derive(Debug)]
pub struct PolicySlot {
    current: RwLock<Arc<ActivePolicy>>,
}

impl PolicySlot {
    /// A slot holding `policy`.
    pub fn new(policy: ActivePolicy) -> Self {
        PolicySlot {
            current: RwLock::new(Arc::new(policy)),
        }
    }

    /// The active policy (a snapshot).
    pub fn current(&self) -> Arc<ActivePolicy> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            // A writer panicked mid-swap; the value inside is still a whole Arc.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Makes `policy` the active one.
    pub fn swap(&self, policy: ActivePolicy) -> Arc<ActivePolicy> {
        let new = Arc::new(policy);
        match self.current.write() {
            Ok(mut guard) => *guard = Arc::clone(&new),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&new),
        }
        new
    }
}
