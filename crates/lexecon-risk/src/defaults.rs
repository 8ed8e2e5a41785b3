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

/// `(rule id = "verb." + the verb, tier, points, description)`.
pub(crate) const VERBS: &[(&str, Tier, [u8; 6], &str)] = &[
    ("verb.read", Tier::Read, READ, "reads data"),
    ("verb.get", Tier::Read, READ, "reads data"),
    ("verb.list", Tier::Read, READ, "reads data"),
    ("verb.search", Tier::Read, READ, "reads data"),
    ("verb.query", Tier::Read, READ, "reads data"),
    ("verb.view", Tier::Read, READ, "reads data"),
    ("verb.fetch", Tier::Read, READ, "reads data"),
    ("verb.describe", Tier::Read, READ, "reads data"),
    ("verb.count", Tier::Read, READ, "reads data"),
    ("verb.analyze", Tier::Read, READ, "reads data"),
    ("verb.summarize", Tier::Read, READ, "reads data"),
    ("verb.write", Tier::Write, WRITE, "changes data"),
    ("verb.create", Tier::Write, WRITE, "changes data"),
    ("verb.update", Tier::Write, WRITE, "changes data"),
    ("verb.insert", Tier::Write, WRITE, "changes data"),
    ("verb.modify", Tier::Write, WRITE, "changes data"),
    ("verb.edit", Tier::Write, WRITE, "changes data"),
    ("verb.append", Tier::Write, WRITE, "changes data"),
    ("verb.upload", Tier::Write, WRITE, "changes data"),
    ("verb.send", Tier::Write, WRITE, "sends a message or data"),
    ("verb.reply", Tier::Write, WRITE, "sends a message or data"),
    ("verb.notify", Tier::Write, WRITE, "sends a message or data"),
    ("verb.schedule", Tier::Write, WRITE, "changes data"),
    (
        "verb.delete",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "verb.remove",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "verb.drop",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "verb.purge",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "verb.truncate",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "verb.destroy",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "verb.erase",
        Tier::Destructive,
        DELETE,
        "deletes data: hard or impossible to undo",
    ),
    (
        "verb.export",
        Tier::Destructive,
        EXPORT,
        "moves data out of its system",
    ),
    (
        "verb.download",
        Tier::Destructive,
        EXPORT,
        "moves data out of its system",
    ),
    (
        "verb.share",
        Tier::Destructive,
        EXPORT,
        "moves data out of its system",
    ),
    (
        "verb.copy",
        Tier::Destructive,
        EXPORT,
        "moves data out of its system",
    ),
    (
        "verb.publish",
        Tier::Destructive,
        PUBLISH,
        "makes something public",
    ),
    (
        "verb.post",
        Tier::Destructive,
        PUBLISH,
        "makes something public",
    ),
    (
        "verb.transfer",
        Tier::Destructive,
        TRANSFER,
        "moves money or assets",
    ),
    (
        "verb.pay",
        Tier::Destructive,
        TRANSFER,
        "moves money or assets",
    ),
    (
        "verb.refund",
        Tier::Destructive,
        TRANSFER,
        "moves money or assets",
    ),
    (
        "verb.purchase",
        Tier::Destructive,
        TRANSFER,
        "moves money or assets",
    ),
    (
        "verb.withdraw",
        Tier::Destructive,
        TRANSFER,
        "moves money or assets",
    ),
    (
        "verb.execute",
        Tier::Destructive,
        EXECUTE,
        "runs code or commands",
    ),
    (
        "verb.exec",
        Tier::Destructive,
        EXECUTE,
        "runs code or commands",
    ),
    (
        "verb.run",
        Tier::Destructive,
        EXECUTE,
        "runs code or commands",
    ),
    (
        "verb.eval",
        Tier::Destructive,
        EXECUTE,
        "runs code or commands",
    ),
    (
        "verb.deploy",
        Tier::Destructive,
        EXECUTE,
        "runs code or commands",
    ),
    (
        "verb.install",
        Tier::Destructive,
        EXECUTE,
        "runs code or commands",
    ),
    (
        "verb.grant",
        Tier::Destructive,
        PRIVILEGE,
        "changes who may do what",
    ),
    (
        "verb.revoke",
        Tier::Destructive,
        PRIVILEGE,
        "changes who may do what",
    ),
    (
        "verb.impersonate",
        Tier::Destructive,
        PRIVILEGE,
        "changes who may do what",
    ),
    (
        "verb.escalate",
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

/// `(rule id = "data_class." + the class, points, description)`.
pub(crate) const DATA_CLASSES: &[(&str, [u8; 6], &str)] = &[
    ("data_class.public", [0, 0, 0, 0, 0, 0], "public data"),
    ("data_class.internal", [5, 5, 5, 0, 5, 0], "internal data"),
    (
        "data_class.confidential",
        [15, 10, 10, 0, 10, 5],
        "confidential business data",
    ),
    (
        "data_class.pii",
        [10, 40, 30, 0, 20, 0],
        "personal data (GDPR)",
    ),
    (
        "data_class.sensitive_pii",
        [15, 50, 45, 0, 30, 0],
        "special-category personal data (GDPR art. 9)",
    ),
    (
        "data_class.phi",
        [15, 50, 50, 0, 30, 0],
        "health data (HIPAA PHI)",
    ),
    (
        "data_class.health",
        [15, 50, 50, 0, 30, 0],
        "health data (HIPAA PHI)",
    ),
    (
        "data_class.medical",
        [15, 50, 50, 0, 30, 0],
        "health data (HIPAA PHI)",
    ),
    (
        "data_class.financial",
        [25, 30, 40, 0, 20, 30],
        "financial records",
    ),
    (
        "data_class.payment",
        [25, 30, 40, 0, 20, 30],
        "payment card or account data (PCI DSS)",
    ),
    (
        "data_class.pci",
        [25, 30, 40, 0, 20, 30],
        "payment card or account data (PCI DSS)",
    ),
    (
        "data_class.credentials",
        [60, 10, 20, 10, 20, 10],
        "credentials or secrets",
    ),
    (
        "data_class.secrets",
        [60, 10, 20, 10, 20, 10],
        "credentials or secrets",
    ),
    (
        "data_class.secret",
        [60, 10, 20, 10, 20, 10],
        "credentials or secrets",
    ),
    (
        "data_class.api_keys",
        [60, 10, 20, 10, 20, 10],
        "credentials or secrets",
    ),
    (
        "data_class.passwords",
        [60, 10, 20, 10, 20, 10],
        "credentials or secrets",
    ),
    (
        "data_class.children",
        [10, 50, 50, 0, 40, 0],
        "data about children (COPPA, GDPR art. 8)",
    ),
    (
        "data_class.minors",
        [10, 50, 50, 0, 40, 0],
        "data about children (COPPA, GDPR art. 8)",
    ),
    (
        "data_class.biometric",
        [20, 50, 50, 0, 30, 0],
        "biometric data",
    ),
    (
        "data_class.location",
        [5, 30, 20, 0, 10, 0],
        "location data",
    ),
    (
        "data_class.legal",
        [10, 20, 35, 0, 25, 5],
        "legal or privileged material",
    ),
    (
        "data_class.source_code",
        [30, 0, 10, 5, 20, 20],
        "source code or trade secrets",
    ),
    (
        "data_class.trade_secret",
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
pub(crate) const CALLER_RISK_LEVEL: [(&str, u8, &str); 5] = [
    (
        "caller_risk_level.1",
        0,
        "the caller rates the action 1 of 5",
    ),
    (
        "caller_risk_level.2",
        5,
        "the caller rates the action 2 of 5",
    ),
    (
        "caller_risk_level.3",
        15,
        "the caller rates the action 3 of 5",
    ),
    (
        "caller_risk_level.4",
        30,
        "the caller rates the action 4 of 5",
    ),
    (
        "caller_risk_level.5",
        50,
        "the caller rates the action 5 of 5",
    ),
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

/// Rule ids of the single rules.
pub(crate) const UNKNOWN_VERB_ID: &str = "verb.unknown";
pub(crate) const UNKNOWN_DATA_CLASS_ID: &str = "data_class.unknown";
pub(crate) const MISSING_TOOL_ID: &str = "tool.missing";

/// The compiled-in copy of `text` when the default rules hold it, so factors of
/// default rules carry a `&'static str` and cost no reference counting.
pub(crate) fn intern(text: &str) -> Option<&'static str> {
    let singles = [
        UNKNOWN_VERB_ID,
        UNKNOWN_VERB.1,
        UNKNOWN_DATA_CLASS_ID,
        UNKNOWN_DATA_CLASS.1,
        MISSING_TOOL_ID,
        MISSING_TOOL.1,
    ];
    let verbs = VERBS.iter().flat_map(|v| [v.0, v.3]);
    let classes = DATA_CLASSES.iter().flat_map(|c| [c.0, c.2]);
    let levels = CALLER_RISK_LEVEL.iter().flat_map(|l| [l.0, l.2]);
    let tools = TOOLS.iter().flat_map(|t| [t.0, t.3]);
    let context = CONTEXT.iter().flat_map(|c| [c.0, c.3]);
    let cost = LLM_COST.iter().flat_map(|c| [c.0, c.3]);
    singles
        .into_iter()
        .chain(verbs)
        .chain(classes)
        .chain(levels)
        .chain(tools)
        .chain(context)
        .chain(cost)
        .find(|&s| s == text)
}
