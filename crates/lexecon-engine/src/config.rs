//! Configuration: built-in defaults < `DIR/lexecon.toml` (or `--config FILE`) <
//! `LEXECON_<SECTION>__<KEY>` environment variables, merged with figment.
//!
//! Every struct refuses unknown keys, so a typo is an error at start that names the key
//! and the source it came from, never a silently ignored setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::layout::DataDir;
pub use crate::layout::{CONFIG_FILE, DEFAULT_DATA_DIR};

/// The environment variable prefix; keys are `LEXECON_<SECTION>__<KEY>`.
pub const ENV_PREFIX: &str = "LEXECON_";

/// A configuration that could not be read or does not validate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key is unknown, has the wrong type, or could not be parsed; figment's message
    /// names the key and its source (file or environment variable).
    #[error("invalid configuration: {0}")]
    Figment(Box<figment::Error>),
    /// A value parsed but is out of range.
    #[error("invalid configuration: {key} {problem} (from {source_name})")]
    OutOfRange {
        /// The dotted key, e.g. `tokens.ttl_secs`.
        key: &'static str,
        /// What is wrong and the allowed range.
        problem: String,
        /// Where the value came from.
        source_name: String,
    },
    /// The file given with `--config` does not exist.
    #[error(
        "configuration file {0} does not exist; create it with `lexecon init` or drop --config"
    )]
    MissingFile(PathBuf),
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        ConfigError::Figment(Box::new(err))
    }
}

/// `[server]`: the gRPC and metrics listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// gRPC address.
    pub listen: SocketAddr,
    /// Prometheus `/metrics` address.
    pub metrics_listen: SocketAddr,
    /// Largest request accepted, in bytes.
    pub max_request_bytes: usize,
    /// Calls in flight at once; beyond it a call is refused at once with
    /// `RESOURCE_EXHAUSTED` (HTTP 429), and one principal may hold at most half of it.
    pub max_concurrent_requests: u32,
    /// `[server.rate_limit]`: per-principal request rate.
    pub rate_limit: RateLimitConfig,
    /// How long shutdown waits for in-flight calls before it stops them, in seconds.
    pub shutdown_grace_secs: u64,
    /// PEM certificate chain of the API port; with `tls_key_file` the port (gRPC and
    /// HTTP/JSON) speaks TLS only. Reloaded on SIGHUP.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`. Reloaded on SIGHUP.
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates; when set, clients must present a certificate signed by one
    /// of them (mutual TLS). Needs `tls_cert_file` and `tls_key_file`. Reloaded on SIGHUP.
    pub tls_client_ca_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            max_request_bytes: 256 * 1024,
            max_concurrent_requests: 1024,
            rate_limit: RateLimitConfig::default(),
            shutdown_grace_secs: 10,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
        }
    }
}

/// `[server.rate_limit]`: a token bucket per authenticated principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests per second each principal may make on average; unset: no rate limit.
    pub per_principal_rps: Option<u32>,
    /// How many requests a principal may make at once after being idle; unset: equal
    /// to `per_principal_rps`.
    pub burst: Option<u32>,
}

impl RateLimitConfig {
    /// The bucket size in force: `burst`, or else `per_principal_rps`.
    pub fn effective_burst(&self) -> Option<u32> {
        self.per_principal_rps
            .map(|rps| self.burst.unwrap_or(rps).max(1))
    }
}

/// `[database]`: where the ledger, users, keys, policies and budgets live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://...`; default `sqlite://DIR/lexecon.db`.
    pub url: Option<String>,
    /// Connection pool size; 0 picks a default for the backend.
    pub max_connections: u32,
}

/// `[secrets]`: the master key that encrypts reversible secrets at rest (TOTP seeds).
///
/// The environment variable `LEXECON_MASTER_KEY` (base64 of 32 bytes) overrides
/// `master_key_file`. Files must be readable by their owner only (mode 0600).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// 32 random bytes (raw, or base64 text); default `DIR/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// Keys from before a rotation: they decrypt, never encrypt.
    pub previous_master_key_files: Vec<PathBuf>,
}

/// `[redis]`: when `url` is set, budget and rate counters live in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/`; unset keeps counters in the database.
    pub url: Option<String>,
    /// Prefix of every key Lexecon writes.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            key_prefix: "lexecon:".to_owned(),
        }
    }
}

/// `[policy]`: the policy loaded at start and on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The policy file; default `DIR/policy.toml`.
    pub file: Option<PathBuf>,
}

/// `[tokens]`: capability tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// Token lifetime in seconds (1..=86400).
    pub ttl_secs: u32,
    /// Allowance for clock skew when checking not-before and expiry (0..=300).
    pub clock_skew_secs: u32,
    /// The audience written into tokens; empty for none.
    pub audience: String,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            ttl_secs: 300,
            clock_skew_secs: 5,
            audience: String::new(),
        }
    }
}

/// `[ledger]`: when checkpoints are signed and how appends are batched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// Sign a checkpoint after this many entries (1..).
    pub checkpoint_every_entries: u64,
    /// ... or after this many milliseconds with new entries (1..).
    pub checkpoint_interval_ms: u64,
    /// The most entries committed in one transaction (1..=65536).
    pub max_batch: usize,
    /// The origin line of checkpoints; default `lexecon/<node_id>`.
    pub origin: Option<String>,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            checkpoint_every_entries: 10_000,
            checkpoint_interval_ms: 1_000,
            max_batch: 4_096,
            origin: None,
        }
    }
}

/// `[oversight]`: escalations, approvals and overrides (contract §6, docs/oversight.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OversightConfig {
    /// Escalate every decision whose risk score reaches `risk.escalation_threshold`, in
    /// every mode, unless something denied it.
    pub auto_escalate: bool,
    /// Critical escalations need two distinct approvers; one denial ends them.
    pub two_person_rule: bool,
    /// Who may resolve escalations: `any` officer or admin principal, or only `people`
    /// (MFA-verified user sessions).
    pub approvers: Approvers,
    /// The warning event comes this many seconds before an escalation's deadline.
    pub warn_before_secs: u64,
    /// An approval's grant may be used for this many seconds (1..=604800).
    pub approval_ttl_secs: u64,
    /// The furthest ahead an override may expire, in seconds (60..=31536000).
    pub max_override_secs: u64,
    /// The SLA of each priority, in seconds.
    pub sla_secs: SlaSecs,
}

impl Default for OversightConfig {
    fn default() -> Self {
        OversightConfig {
            auto_escalate: true,
            two_person_rule: true,
            approvers: Approvers::Any,
            warn_before_secs: 3_600,
            approval_ttl_secs: 3_600,
            max_override_secs: 86_400,
            sla_secs: SlaSecs::default(),
        }
    }
}

/// Who may resolve escalations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approvers {
    /// Any compliance officer or admin principal, API keys included.
    Any,
    /// Only user sessions that completed MFA.
    People,
}

/// `[oversight.sla_secs]`: how long each priority may stay pending, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaSecs {
    /// Critical escalations.
    pub critical: u64,
    /// High.
    pub high: u64,
    /// Medium.
    pub medium: u64,
    /// Low.
    pub low: u64,
}

impl Default for SlaSecs {
    fn default() -> Self {
        SlaSecs {
            critical: 7_200,
            high: 28_800,
            medium: 86_400,
            low: 259_200,
        }
    }
}

/// `[evidence]`: the evidence store (contract §7, docs/evidence.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// The largest artifact, in bytes (1..=268435456).
    pub max_bytes: usize,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

/// `[compliance]`: the windows and facts compliance statuses are computed with
/// (contract §8, docs/compliance.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComplianceConfig {
    /// The period, in days, the deployment commits to keep records (183..=36500).
    pub log_retention_days: u32,
    /// A full ledger verification older than this no longer counts (60..=31536000).
    pub verification_max_age_secs: u64,
    /// Controls that ask for recent activity (oversight acts, reviews) look this far
    /// back (3600..=63072000).
    pub activity_window_secs: u64,
    /// Registered evidence older than this no longer supports a control
    /// (3600..=157680000).
    pub evidence_max_age_secs: u64,
    /// A signing key older than this asks for rotation (86400..=157680000).
    pub key_max_age_secs: u64,
    /// Annex IV 1(a): the AI system's name, as the technical documentation shows it.
    pub system_name: String,
    /// Annex IV 1(a): the system's intended purpose; empty is a gap.
    pub intended_purpose: String,
    /// Annex IV 1(a): the provider's name; empty is a gap.
    pub provider: String,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        ComplianceConfig {
            log_retention_days: 3650,
            verification_max_age_secs: 86_400,
            activity_window_secs: 90 * 86_400,
            evidence_max_age_secs: 365 * 86_400,
            key_max_age_secs: 365 * 86_400,
            system_name: "AI agents governed by Lexecon".to_owned(),
            intended_purpose: String::new(),
            provider: String::new(),
        }
    }
}

/// `[mcp]`: the MCP gateway (contract §11, docs/mcp.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// Leave out of `tools/list` the tools the policy denies whatever the arguments.
    pub hide_denied: bool,
    /// How long a call whose decision escalated waits for a person, in seconds (0..=3600).
    pub escalation_wait_secs: u64,
    /// Record each forwarded call's arguments and result in its completion entry.
    pub record_payloads: bool,
    /// How calls map to decisions: the first row whose `match` fits `NAME/TOOL` applies.
    pub tools: Vec<McpToolRule>,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            hide_denied: true,
            escalation_wait_secs: 0,
            record_payloads: false,
            tools: Vec::new(),
        }
    }
}

/// One `[[mcp.tools]]` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpToolRule {
    /// A full-match glob over `NAME/TOOL`, e.g. `files/*` or `files/write_file`.
    #[serde(rename = "match")]
    pub pattern: String,
    /// The proposed action; unset = `call:TOOL`.
    #[serde(default)]
    pub action: Option<String>,
    /// Data classes the calls touch.
    #[serde(default)]
    pub data_classes: Vec<String>,
    /// Arguments copied into the decision's context, by name.
    #[serde(default)]
    pub context_args: Vec<String>,
    /// The risk level sent as the caller's estimate (1..=5); unset = none.
    #[serde(default)]
    pub risk_level: Option<u8>,
    /// A policy mode to ask for (`permissive`, `strict`, `paranoid`); it can only make
    /// the decision stricter.
    #[serde(default)]
    pub mode: Option<String>,
}

/// `[node]`: this server's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// A name for this node, used in checkpoint origins and logs.
    pub id: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: "lexecon-1".to_owned(),
        }
    }
}

/// `[auth]`: who must use MFA, and the OIDC providers people may log in with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Roles whose sessions must complete TOTP MFA.
    pub mfa_required_roles: Vec<lexecon_auth::Role>,
    /// OIDC providers (`[[auth.oidc]]`).
    pub oidc: Vec<OidcSection>,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            mfa_required_roles: vec![
                lexecon_auth::Role::Admin,
                lexecon_auth::Role::ComplianceOfficer,
            ],
            oidc: Vec::new(),
        }
    }
}

/// One `[[auth.oidc]]` provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// The name clients pass as `provider` to ExchangeOidcToken.
    pub name: String,
    /// The exact `iss` of its ID tokens.
    pub issuer: String,
    /// Our client id: the audience its tokens must carry.
    pub client_id: String,
    /// The claim holding the role (a string or a list); unset gives everyone `default_role`.
    #[serde(default)]
    pub role_claim: Option<String>,
    /// Claim values to roles, e.g. `{ "lexecon-admins" = "admin" }`.
    #[serde(default)]
    pub role_map: std::collections::BTreeMap<String, lexecon_auth::Role>,
    /// The role when the claim is absent or maps to nothing.
    #[serde(default = "default_oidc_role")]
    pub default_role: lexecon_auth::Role,
    /// A file holding the provider's JWKS. Give this or `jwks_url`, not both.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The provider's JWKS URL (`jwks_uri` in its discovery document): `https://`, or
    /// `http://` to a loopback address. Give this or `jwks_file`, not both.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Seconds a fetched (or read) key set is used before it is fetched again; an
    /// unknown key id refetches sooner, at most every 30 s.
    #[serde(default = "default_jwks_cache_secs")]
    pub jwks_cache_secs: i64,
}

fn default_jwks_cache_secs() -> i64 {
    600
}

fn default_oidc_role() -> lexecon_auth::Role {
    lexecon_auth::Role::Viewer
}

/// `[log]`: structured logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `lexecon_engine=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[node]`.
    pub node: NodeConfig,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[database]`.
    pub database: DatabaseConfig,
    /// `[redis]`.
    pub redis: RedisConfig,
    /// `[policy]`.
    pub policy: PolicyConfig,
    /// `[tokens]`.
    pub tokens: TokensConfig,
    /// `[ledger]`.
    pub ledger: LedgerConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[risk]`: weights, thresholds and rules (see docs/risk.md).
    pub risk: lexecon_risk::RiskConfig,
    /// `[budget]`: LLM budgets, rates and model access (see docs/budget.md).
    pub budget: lexecon_budget::BudgetConfig,
    /// `[auth]`: MFA and OIDC.
    pub auth: AuthSection,
    /// `[secrets]`: the master key for secrets at rest.
    pub secrets: SecretsConfig,
    /// `[oversight]`: escalations, approvals and overrides.
    pub oversight: OversightConfig,
    /// `[evidence]`: the evidence store.
    pub evidence: EvidenceConfig,
    /// `[compliance]`: compliance windows and the system's description.
    pub compliance: ComplianceConfig,
    /// `[mcp]`: the MCP gateway.
    pub mcp: McpConfig,
    /// The data directory the configuration was loaded for (not a key).
    #[serde(skip)]
    pub data_dir: PathBuf,
    /// The `--config` file it was loaded from, if one was given (not a key).
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

/// Where to read the configuration from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The data directory; default `./.lexecon`.
    pub data_dir: Option<PathBuf>,
    /// A configuration file instead of `DIR/lexecon.toml`; it must exist.
    pub config_file: Option<PathBuf>,
}

impl Config {
    /// Loads defaults < file < environment, then validates ranges.
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        let data_dir = sources
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let file = match &sources.config_file {
            Some(file) if !file.exists() => return Err(ConfigError::MissingFile(file.clone())),
            Some(file) => file.clone(),
            None => DataDir::new(&data_dir).config_file(),
        };
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(&file))
            .merge(env_provider());
        let mut config: Config = figment.extract()?;
        config.data_dir = data_dir;
        config.config_file = sources.config_file.clone();
        config.validate(&figment)?;
        Ok(config)
    }

    fn validate(&self, figment: &Figment) -> Result<(), ConfigError> {
        let source = |key: &str| {
            figment.find_metadata(key).map_or_else(
                || "defaults".to_owned(),
                |m| {
                    m.source
                        .as_ref()
                        .map_or_else(|| m.name.to_string(), |s| format!("{} {s}", m.name))
                },
            )
        };
        let range = |key: &'static str, ok: bool, problem: String| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange {
                    key,
                    problem,
                    source_name: source(key),
                })
            }
        };
        range(
            "tokens.ttl_secs",
            (1..=86_400).contains(&self.tokens.ttl_secs),
            format!("must be between 1 and 86400, got {}", self.tokens.ttl_secs),
        )?;
        range(
            "tokens.clock_skew_secs",
            self.tokens.clock_skew_secs <= 300,
            format!("must be at most 300, got {}", self.tokens.clock_skew_secs),
        )?;
        range(
            "ledger.checkpoint_every_entries",
            self.ledger.checkpoint_every_entries >= 1,
            "must be at least 1".to_owned(),
        )?;
        range(
            "ledger.checkpoint_interval_ms",
            self.ledger.checkpoint_interval_ms >= 1,
            "must be at least 1".to_owned(),
        )?;
        range(
            "ledger.max_batch",
            (1..=65_536).contains(&self.ledger.max_batch),
            format!("must be between 1 and 65536, got {}", self.ledger.max_batch),
        )?;
        range(
            "server.max_request_bytes",
            (1024..=64 * 1024 * 1024).contains(&self.server.max_request_bytes),
            format!(
                "must be between 1024 and 67108864, got {}",
                self.server.max_request_bytes
            ),
        )?;
        range(
            "server.max_concurrent_requests",
            (2..=1_000_000).contains(&self.server.max_concurrent_requests),
            format!(
                "must be between 2 and 1000000, got {}",
                self.server.max_concurrent_requests
            ),
        )?;
        // A missing half of the pair has no source of its own: name where the other
        // half was set.
        let tls_pair = |missing: &'static str, set: &str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange {
                    key: missing,
                    problem: format!(
                        "is not set but {set} is; set both (PEM files) to serve TLS, or neither"
                    ),
                    source_name: source(set),
                })
            }
        };
        tls_pair(
            "server.tls_key_file",
            "server.tls_cert_file",
            self.server.tls_key_file.is_some() || self.server.tls_cert_file.is_none(),
        )?;
        tls_pair(
            "server.tls_cert_file",
            "server.tls_key_file",
            self.server.tls_cert_file.is_some() || self.server.tls_key_file.is_none(),
        )?;
        range(
            "server.tls_client_ca_file",
            self.server.tls_client_ca_file.is_none() || self.server.tls_cert_file.is_some(),
            "needs server.tls_cert_file and server.tls_key_file: client certificates are checked only over TLS".to_owned(),
        )?;
        if let Some(rps) = self.server.rate_limit.per_principal_rps {
            range(
                "server.rate_limit.per_principal_rps",
                (1..=1_000_000).contains(&rps),
                format!("must be between 1 and 1000000 (or unset for no limit), got {rps}"),
            )?;
        }
        if let Some(burst) = self.server.rate_limit.burst {
            range(
                "server.rate_limit.burst",
                (1..=1_000_000).contains(&burst),
                format!("must be between 1 and 1000000, got {burst}"),
            )?;
            range(
                "server.rate_limit.burst",
                self.server.rate_limit.per_principal_rps.is_some(),
                "has no effect without server.rate_limit.per_principal_rps; set that too, or drop burst".to_owned(),
            )?;
        }
        range(
            "node.id",
            !self.node.id.is_empty()
                && self
                    .node
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            format!("must be letters, digits, - _ or ., got {:?}", self.node.id),
        )?;
        for (key, secs) in [
            (
                "oversight.sla_secs.critical",
                self.oversight.sla_secs.critical,
            ),
            ("oversight.sla_secs.high", self.oversight.sla_secs.high),
            ("oversight.sla_secs.medium", self.oversight.sla_secs.medium),
            ("oversight.sla_secs.low", self.oversight.sla_secs.low),
        ] {
            range(
                key,
                (1..=31_536_000).contains(&secs),
                format!("must be between 1 and 31536000 seconds, got {secs}"),
            )?;
        }
        range(
            "oversight.warn_before_secs",
            self.oversight.warn_before_secs <= 31_536_000,
            format!(
                "must be at most 31536000 seconds, got {}",
                self.oversight.warn_before_secs
            ),
        )?;
        range(
            "oversight.approval_ttl_secs",
            (1..=604_800).contains(&self.oversight.approval_ttl_secs),
            format!(
                "must be between 1 and 604800 seconds, got {}",
                self.oversight.approval_ttl_secs
            ),
        )?;
        range(
            "oversight.max_override_secs",
            (60..=31_536_000).contains(&self.oversight.max_override_secs),
            format!(
                "must be between 60 and 31536000 seconds, got {}",
                self.oversight.max_override_secs
            ),
        )?;
        range(
            "evidence.max_bytes",
            (1..=256 * 1024 * 1024).contains(&self.evidence.max_bytes),
            format!(
                "must be between 1 and 268435456, got {}",
                self.evidence.max_bytes
            ),
        )?;
        range(
            "compliance.log_retention_days",
            (183..=36_500).contains(&self.compliance.log_retention_days),
            format!(
                "must be between 183 (six months, EU AI Act Art. 19(1) and 26(6)) and 36500, got {}",
                self.compliance.log_retention_days
            ),
        )?;
        for (key, secs, lo, hi) in [
            (
                "compliance.verification_max_age_secs",
                self.compliance.verification_max_age_secs,
                60,
                31_536_000,
            ),
            (
                "compliance.activity_window_secs",
                self.compliance.activity_window_secs,
                3_600,
                63_072_000,
            ),
            (
                "compliance.evidence_max_age_secs",
                self.compliance.evidence_max_age_secs,
                3_600,
                157_680_000,
            ),
            (
                "compliance.key_max_age_secs",
                self.compliance.key_max_age_secs,
                86_400,
                157_680_000,
            ),
        ] {
            range(
                key,
                (lo..=hi).contains(&secs),
                format!("must be between {lo} and {hi} seconds, got {secs}"),
            )?;
        }
        range(
            "mcp.escalation_wait_secs",
            self.mcp.escalation_wait_secs <= 3_600,
            format!(
                "must be at most 3600 seconds, got {}",
                self.mcp.escalation_wait_secs
            ),
        )?;
        for (i, row) in self.mcp.tools.iter().enumerate() {
            let bad_level = row.risk_level.filter(|l| !(1..=5).contains(l));
            let bad_mode = row
                .mode
                .as_deref()
                .filter(|m| !["permissive", "strict", "paranoid"].contains(m));
            let problem = if row.pattern.is_empty() {
                Some("match is empty: give a glob over NAME/TOOL such as \"files/*\"".to_owned())
            } else if let Some(level) = bad_level {
                Some(format!("risk_level must be 1..5, got {level}"))
            } else {
                bad_mode.map(|mode| {
                    format!("mode must be permissive, strict or paranoid, got {mode:?}")
                })
            };
            if let Some(problem) = problem {
                range("mcp.tools", false, format!("[{i}] {problem}"))?;
            }
        }
        if let Some(url) = &self.database.url {
            range(
                "database.url",
                url.starts_with("sqlite:")
                    || url.starts_with("postgres://")
                    || url.starts_with("postgresql://"),
                "must start with sqlite: or postgres://".to_owned(),
            )?;
        }
        for (i, p) in self.auth.oidc.iter().enumerate() {
            let problem = match (&p.jwks_file, &p.jwks_url) {
                (Some(_), Some(_)) => Some("sets both jwks_file and jwks_url: keep one".to_owned()),
                (None, None) => {
                    Some("needs jwks_file or jwks_url: where its signing keys are".to_owned())
                }
                (None, Some(url)) => crate::jwks::check_jwks_url(url)
                    .err()
                    .map(|e| format!("jwks_url {url:?} {e}")),
                (Some(_), None) => None,
            };
            let problem = problem.or_else(|| {
                (!(1..=86_400).contains(&p.jwks_cache_secs)).then(|| {
                    format!(
                        "jwks_cache_secs must be between 1 and 86400, got {}",
                        p.jwks_cache_secs
                    )
                })
            });
            if let Some(problem) = problem {
                range(
                    "auth.oidc",
                    false,
                    format!("[{i}] ({:?}) {problem}", p.name),
                )?;
            }
        }
        if let Some(url) = &self.redis.url {
            range(
                "redis.url",
                url.starts_with("redis://") || url.starts_with("rediss://"),
                "must start with redis:// or rediss://".to_owned(),
            )?;
        }
        Ok(())
    }

    /// Reads the configuration again from where this one came from (for SIGHUP).
    pub fn reload(&self) -> Result<Config, ConfigError> {
        Config::load(&Sources {
            data_dir: Some(self.data_dir.clone()),
            config_file: self.config_file.clone(),
        })
    }

    /// The data directory's layout: where `init` put each file.
    pub fn layout(&self) -> DataDir {
        DataDir::new(&self.data_dir)
    }

    /// The database URL, defaulting to the SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| self.layout().database_url())
    }

    /// The policy file, defaulting to `DIR/policy.toml`.
    pub fn policy_file(&self) -> PathBuf {
        self.policy
            .file
            .clone()
            .unwrap_or_else(|| self.layout().policy_file())
    }

    /// The checkpoint origin, defaulting to `lexecon/<node id>`.
    pub fn ledger_origin(&self) -> String {
        self.ledger
            .origin
            .clone()
            .unwrap_or_else(|| format!("lexecon/{}", self.node.id))
    }

    /// The directory holding the node's keys.
    pub fn keys_dir(&self) -> PathBuf {
        self.layout().keys_dir()
    }

    /// The master key file: `secrets.master_key_file`, or `DIR/master.key`.
    pub fn master_key_file(&self) -> PathBuf {
        self.secrets
            .master_key_file
            .clone()
            .unwrap_or_else(|| self.layout().master_key())
    }

    /// The file holding the admin API key the CLI uses by default.
    pub fn admin_token_file(&self) -> PathBuf {
        self.layout().admin_token()
    }
}

/// The environment provider: `LEXECON_SECTION__KEY=value`. Variables without a `__`
/// (such as `LEXECON_TOKEN`, read by the CLI) are not configuration and are skipped.
fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX)
        .filter(|key| key.as_str().contains("__"))
        .split("__")
}

/// The commented `lexecon.toml` that `lexecon init` writes: every key with its default.
pub fn default_config_file(node_id: &str) -> String {
    /// The sections whose defaults are data owned by other crates, written out in full so
    /// an operator edits real values rather than guessing key names.
    #[derive(Serialize)]
    struct DataSections<'a> {
        risk: &'a lexecon_risk::RiskConfig,
        budget: &'a lexecon_budget::BudgetConfig,
    }
    let defaults = Config::default();
    let data = toml::to_string(&DataSections {
        risk: &defaults.risk,
        budget: &defaults.budget,
    })
    .unwrap_or_default();
    let mut out = DEFAULT_CONFIG_TEMPLATE.replace("{node_id}", node_id);
    out.push_str(DATA_SECTIONS_HEADER);
    out.push_str(&data);
    out
}

const DATA_SECTIONS_HEADER: &str = "
# ---------------------------------------------------------------------------------
# [risk]: the six-dimension risk rules and weights (docs/risk.md explains each one).
# [budget]: LLM budgets, rate limits, model access and prices (docs/budget.md).
# Unset limits (monthly_budget, rpm_limit, tpm_limit, max_request_cost,
# max_tokens_per_request, soft_limit_pct) mean unlimited; for example:
#   [budget]
#   monthly_budget = 100.0
#   rpm_limit = 60
#   [budget.users.alice]
#   monthly_budget = 20.0
#   [budget.global]
#   monthly_budget = 1000.0
# ---------------------------------------------------------------------------------
";

/// Whether `dir` looks initialised (it has a configuration file).
pub fn is_initialised(dir: &Path) -> bool {
    DataDir::new(dir).is_initialised()
}

const DEFAULT_CONFIG_TEMPLATE: &str = include_str!("default_config.toml");

#[cfg(test)]
mod tests;
