//! The friendly routes of contract §9.

use crate::{Route, Verb};

/// Every friendly route, each onto one RPC. Checked against the descriptors by tests
/// (every RPC exists, every alias names a request field).
pub(crate) static ROUTES: &[Route] = &[
    Route {
        verb: Verb::Post,
        path: "/v1/decide",
        rpc: "DecisionService/Decide",
        aliases: &[],
        summary: "Decide whether a proposed action may go ahead (same as DecisionService/Decide)",
    },
    Route {
        verb: Verb::Post,
        path: "/decide",
        rpc: "DecisionService/Decide",
        aliases: &[],
        summary: "Decide, at the path the seed's clients use (same as POST /v1/decide)",
    },
    Route {
        verb: Verb::Get,
        path: "/v1/ledger/verify",
        rpc: "LedgerService/Verify",
        aliases: &[],
        summary: "Verify the whole ledger (same as LedgerService/Verify)",
    },
    Route {
        verb: Verb::Get,
        path: "/v1/ledger/entries",
        rpc: "LedgerService/GetEntries",
        aliases: &[],
        summary: "A page of ledger entries: ?from=N&limit=N&kind=K (same as LedgerService/GetEntries)",
    },
    Route {
        verb: Verb::Get,
        path: "/v1/policies",
        rpc: "PolicyService/ListPolicyVersions",
        aliases: &[],
        summary: "The policy version history, newest first (same as PolicyService/ListPolicyVersions)",
    },
    Route {
        verb: Verb::Post,
        path: "/v1/risk/assess",
        rpc: "RiskService/Assess",
        aliases: &[],
        summary: "Score the risk of a proposed action without deciding it (same as RiskService/Assess)",
    },
    Route {
        verb: Verb::Get,
        path: "/v1/escalations",
        rpc: "OversightService/ListEscalations",
        aliases: &[],
        summary: "Escalations, newest first, optionally of one state (same as OversightService/ListEscalations)",
    },
    Route {
        verb: Verb::Get,
        path: "/v1/compliance/{framework}/gaps",
        rpc: "ComplianceService/GetGaps",
        aliases: &[],
        summary: "The controls of one framework that are not satisfied (same as ComplianceService/GetGaps)",
    },
];
