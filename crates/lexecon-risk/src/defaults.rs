//! The compiled-in default rule set: what `RiskConfig::default()` holds.
//!
//! Points are listed in dimension order: security, privacy, compliance, operational,
//! reputational, financial. `docs/risk.md` lists the same tables; a test checks that
//! every rule id below appears there with its points.

/// How destructive a verb is. Every verb of a higher tier scores at least as much as
/// every verb of a lower tier in every dimension (a property test holds the defaults
/// to it), so a more destructive verb never lowers a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Tier {
    Read,
    Write,
    Destructive,
}

const READ: [u8; 6] = [5, 5, 0, 0, 0, 0];
const WRITE: [u8; 6] = [15, 5, 5, 15, 5, 0];
const DELETE: [u8; 6] = [30, 10, 15, 40, 15, 5];
const EXPORT: [u8; 6] = [30, 30, 25, 20, 20, 5];
const PUBLISH: [u8; 6] = [30, 25, 20, 20, 30, 5];
const TRANSFER: [u8; 6] = [30, 10, 15, 20, 15, 40];
const EXECUTE: [u8; 6] = [40, 10, 10, 35, 15, 5];
const PRIVILEGE: [u8; 6] = [45, 10, 20, 25, 10, 5];

/// `(verb, tier, points, description)`.
pub(crate) const VERBS: &[(&str, Tier, [u8; 6], &str)] = &[
    ("read", Tier::Read, READ, "reads data"),
    ("get", Tier::Read, READ, "reads data"),
    ("list", Tier::Read, READ, "reads data"),
    ("search", Tier::Read, READ, "reads data"),
    ("query", Tier::Read, READ, "reads data"),
    ("view", Tier::Read, READ, "reads data"),
    ("fetch", Tier::Read, READ, "reads data"),
    ("describe", Tier::Read, READ, "reads data"),
    ("count", Tier::Read, READ, "reads data"),
    ("analyze", Tier::Read, READ, "reads data"),
    ("summarize", Tier::Read, READ, "reads data"),
    ("write", Tier::Write, WRITE, "changes data"),
    ("create", Tier::Write, WRITE, "changes data"),
    ("update", Tier::Write, WRITE, "changes data"),
    ("insert", Tier::Write, WRITE, "changes data"),
    ("modify", Tier::Write, WRITE, "changes data"),
    ("edit", Tier::Write, WRITE, "changes data"),
    ("append", Tier::Write, WRITE, "changes data"),
    ("upload", Tier::Write, WRITE, "changes data"),
    ("send", Tier::Write, WRITE, "sends a message or data"),
    ("reply", Tier::Write, WRITE, "sends a message or data"),
    ("notify", Tier::Write, WRITE, "sends a message or data"),
    ("schedule", Tier::Write, WRITE, "changes data"),
    (
        "delete",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "remove",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "drop",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "purge",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "truncate",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "destroy",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "erase",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "export",
        Tier::Destructive,
        EXPORT,
        "moves data out of its system",
    ),
    (
        "download",
        Tier::Destructive,
        EXPORT,
        "moves data out of its system",
    ),
    (
        "share",
        Tier::Destructive,
        EXPORT,
        "moves data out of its system",
    ),
    (
        "copy",
        Tier::Destructive,
        EXPORT,
        "moves data out of its system",
    ),
    (
        "publish",
        Tier::Destructive,
        PUBLISH,
        "makes something public",
    ),
    ("post", Tier::Destructive, PUBLISH, "makes something public"),
    (
        "transfer",
        Tier::Destructive,
        TRANSFER,
        "moves money or assets",
    ),
    ("pay", Tier::Destructive, TRANSFER, "moves money or assets"),
    (
        "refund",
        Tier::Destructive,
        TRANSFER,
        "moves money or assets",
    ),
    (
        "purchase",
        Tier::Destructive,
        TRANSFER,
        "moves money or assets",
    ),
    (
        "withdraw",
        Tier::Destructive,
        TRANSFER,
        "moves money or assets",
    ),
    (
        "execute",
        Tier::Destructive,
        EXECUTE,
        "runs code or commands",
    ),
    ("exec", Tier::Destructive, EXECUTE, "runs code or commands"),
    ("run", Tier::Destructive, EXECUTE, "runs code or commands"),
    ("eval", Tier::Destructive, EXECUTE, "runs code or commands"),
    (
        "deploy",
        Tier::Destructive,
        EXECUTE,
        "runs code or commands",
    ),
    (
        "install",
        Tier::Destructive,
        EXECUTE,
        "runs code or commands",
    ),
    (
        "grant",
        Tier::Destructive,
        PRIVILEGE,
        "changes who may do what",
    ),
    (
        "revoke",
        Tier::Destructive,
        PRIVILEGE,
        "changes who may do what",
    ),
    (
        "impersonate",
        Tier::Destructive,
        PRIVILEGE,
        "changes who may do what",
    ),
    (
        "escalate",
        Tier::Destructive,
        PRIVILEGE,
        "changes who may do what",
    ),
];

/// A verb the table does not name scores as the least destructive verb of the
/// destructive tier: an unrecognised verb could be anything.
pub(crate) const UNKNOWN_VERB: ([u8; 6], &str) = (
    [25, 10, 10, 20, 10, 5],
    "a verb the rules do not know: scored as possibly destructive",
);

/// `(data class, points, description)`.
pub(crate) const DATA_CLASSES: &[(&str, [u8; 6], &str)] = &[
    ("public", [0, 0, 0, 0, 0, 0], "public data"),
    ("internal", [5, 5, 5, 0, 5, 0], "internal data"),
    (
        "confidential",
        [15, 10, 10, 0, 10, 5],
        "confidential business data",
    ),
    ("pii", [10, 40, 30, 0, 20, 0], "personal data (GDPR)"),
    (
        "sensitive_pii",
        [15, 50, 45, 0, 30, 0],
        "special-category personal data (GDPR art. 9)",
    ),
    ("phi", [15, 50, 50, 0, 30, 0], "health data (HIPAA PHI)"),
    ("health", [15, 50, 50, 0, 30, 0], "health data (HIPAA PHI)"),
    ("medical", [15, 50, 50, 0, 30, 0], "health data (HIPAA PHI)"),
    ("financial", [25, 30, 40, 0, 20, 30], "financial records"),
    (
        "payment",
        [25, 30, 40, 0, 20, 30],
        "payment card or account data (PCI DSS)",
    ),
    (
        "pci",
        [25, 30, 40, 0, 20, 30],
        "payment card or account data (PCI DSS)",
    ),
    (
        "credentials",
        [60, 10, 20, 10, 20, 10],
        "credentials or secrets",
    ),
    (
        "secrets",
        [60, 10, 20, 10, 20, 10],
        "credentials or secrets",
    ),
    ("secret", [60, 10, 20, 10, 20, 10], "credentials or secrets"),
    (
        "api_keys",
        [60, 10, 20, 10, 20, 10],
        "credentials or secrets",
    ),
    (
        "passwords",
        [60, 10, 20, 10, 20, 10],
        "credentials or secrets",
    ),
    (
        "children",
        [10, 50, 50, 0, 40, 0],
        "data about children (COPPA, GDPR art. 8)",
    ),
    (
        "minors",
        [10, 50, 50, 0, 40, 0],
        "data about children (COPPA, GDPR art. 8)",
    ),
    ("biometric", [20, 50, 50, 0, 30, 0], "biometric data"),
    ("location", [5, 30, 20, 0, 10, 0], "location data"),
    (
        "legal",
        [10, 20, 35, 0, 25, 5],
        "legal or privileged material",
    ),
    (
        "source_code",
        [30, 0, 10, 5, 20, 20],
        "source code or trade secrets",
    ),
    (
        "trade_secret",
        [30, 0, 10, 5, 20, 20],
        "source code or trade secrets",
    ),
];

/// A data class the table does not name is treated as somewhat sensitive.
pub(crate) const UNKNOWN_DATA_CLASS: ([u8; 6], &str) = (
    [10, 15, 15, 0, 10, 0],
    "a data class the rules do not know: treated as sensitive",
);

/// A request that names no tool cannot be traced to a system.
pub(crate) const MISSING_TOOL: ([u8; 6], &str) = (
    [15, 0, 10, 5, 0, 0],
    "no tool named: the action cannot be traced to a system",
);

/// The caller's own estimate, `risk_level` 1..=5, index 0 = level 1.
pub(crate) const CALLER_RISK_LEVEL: [(u8, &str); 5] = [
    (0, "the caller rates the action 1 of 5"),
    (5, "the caller rates the action 2 of 5"),
    (15, "the caller rates the action 3 of 5"),
    (30, "the caller rates the action 4 of 5"),
    (50, "the caller rates the action 5 of 5"),
];

/// `(id, full-match globs, points, description)`; tool names match ASCII
/// case-insensitively.
pub(crate) const TOOLS: &[(&str, &[&str], [u8; 6], &str)] = &[
    (
        "tool.code_execution",
        &[
            "shell",
            "bash",
            "sh",
            "terminal",
            "*_shell",
            "shell_*",
            "exec",
            "exec_*",
            "*_exec",
            "code_interpreter",
            "code_exec*",
            "python",
            "python_*",
            "eval*",
            "run_code",
            "ssh*",
        ],
        [30, 0, 5, 25, 5, 0],
        "the tool runs code or commands",
    ),
    (
        "tool.infrastructure",
        &[
            "iam*",
            "admin*",
            "*_admin",
            "kubectl",
            "k8s*",
            "kubernetes*",
            "terraform*",
            "aws*",
            "gcloud*",
            "gcp*",
            "azure*",
            "cloud_*",
            "*_iam",
        ],
        [35, 5, 10, 25, 5, 5],
        "the tool administers infrastructure or access",
    ),
    (
        "tool.database",
        &[
            "database*",
            "db",
            "db_*",
            "*_db",
            "sql",
            "sql_*",
            "*_sql",
            "postgres*",
            "mysql*",
            "mongo*",
            "redis*",
        ],
        [10, 5, 5, 10, 0, 0],
        "the tool reaches a database",
    ),
    (
        "tool.filesystem",
        &[
            "file*", "fs", "fs_*", "*_file", "*_files", "storage*", "s3*", "blob*", "drive*",
        ],
        [10, 5, 0, 10, 0, 0],
        "the tool reaches files or object storage",
    ),
    (
        "tool.messaging",
        &[
            "email*",
            "*_email",
            "mail*",
            "smtp*",
            "sms*",
            "slack*",
            "teams*",
            "chat_*",
            "messag*",
            "*_message",
            "notify*",
            "social*",
            "twitter*",
        ],
        [5, 10, 5, 0, 20, 0],
        "the tool talks to people outside the system",
    ),
    (
        "tool.payment",
        &[
            "payment*",
            "*_payment",
            "payments",
            "stripe*",
            "paypal*",
            "billing*",
            "*_billing",
            "bank*",
            "invoice*",
            "wire*",
            "ledger_*",
        ],
        [15, 5, 15, 5, 10, 35],
        "the tool moves money",
    ),
    (
        "tool.web",
        &[
            "http*", "web*", "browser*", "fetch*", "curl", "*_api", "api_*", "scrape*",
        ],
        [10, 5, 0, 5, 5, 0],
        "the tool reaches the network",
    ),
];

/// One condition of a default context rule.
pub(crate) enum When {
    /// `key` holds one of these values (ASCII case-insensitive).
    Equals(&'static str, &'static [&'static str]),
    /// `key` holds a whole number at least this large (or no number at all).
    AtLeast(&'static str, u64),
    /// Both keys are present and their values differ (ASCII case-insensitive).
    Differs(&'static str, &'static str),
}

const YES: &[&str] = &["true", "yes", "1"];

/// `(id, any-of conditions, points, description)`.
pub(crate) const CONTEXT: &[(&str, &[When], [u8; 6], &str)] = &[
    (
        "context.volume.large",
        &[When::AtLeast("volume", 1_000)],
        [5, 15, 10, 15, 10, 5],
        "1,000 records or more",
    ),
    (
        "context.volume.bulk",
        &[When::AtLeast("volume", 100_000)],
        [10, 20, 15, 20, 15, 10],
        "100,000 records or more (adds to context.volume.large)",
    ),
    (
        "context.external_recipient",
        &[
            When::Equals("recipient", &["external", "third_party", "public"]),
            When::Equals("external", YES),
        ],
        [15, 25, 20, 0, 20, 0],
        "the data goes to someone outside the organisation",
    ),
    (
        "context.cross_border",
        &[
            When::Equals("cross_border", YES),
            When::Differs("region", "destination_region"),
        ],
        [5, 20, 30, 0, 5, 0],
        "the data crosses a border between regions",
    ),
    (
        "context.production",
        &[When::Equals("environment", &["production", "prod"])],
        [10, 0, 5, 20, 10, 5],
        "the action touches a production environment",
    ),
];

/// `(id, at least this many micro-dollars, points, description)`; the tiers add up.
pub(crate) const LLM_COST: &[(&str, u64, [u8; 6], &str)] = &[
    (
        "llm_cost.notable",
        100_000,
        [0, 0, 0, 0, 0, 15],
        "the LLM call may cost $0.10 or more",
    ),
    (
        "llm_cost.high",
        1_000_000,
        [0, 0, 0, 5, 0, 30],
        "the LLM call may cost $1 or more (adds to llm_cost.notable)",
    ),
    (
        "llm_cost.very_high",
        10_000_000,
        [0, 0, 0, 10, 0, 40],
        "the LLM call may cost $10 or more (adds to the tiers below)",
    ),
];
