//! Model access: restricted models, per-user and per-role deny and allow lists.
//!
//! Precedence, first match decides:
//! 1. a model matching `restricted_models` is denied to everyone (`model_restricted`);
//! 2. a model matching a denylist of the user or of any of their roles is denied
//!    (`model_denied`);
//! 3. if the user or any of their roles has an allowlist that is explicitly empty, every
//!    model is denied (`model_not_allowed`);
//! 4. if the user or any of their roles has an allowlist, the model must match at least
//!    one pattern of one of those lists (`model_not_allowed`);
//! 5. otherwise the model is allowed (pricing is checked next).
//!
//! List keys name a user id or a role name; `user:<id>` and `role:<name>` name only
//! one of them when a user and a role share a name.

use std::collections::{BTreeMap, HashMap};

use crate::glob::Glob;

/// A denial by the access rules: reason, scope and the limit id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessDenial {
    pub(crate) reason: crate::DenialReason,
    pub(crate) scope: String,
    pub(crate) limit_id: String,
}

#[derive(Debug, Clone, Default)]
struct List {
    globs: Vec<Glob>,
    /// Some key for this user or role was given an empty list.
    explicitly_empty: bool,
}

/// Lists split by whom they apply to.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessRules {
    restricted: Vec<Glob>,
    user_allow: HashMap<String, List>,
    role_allow: HashMap<String, List>,
    user_deny: HashMap<String, List>,
    role_deny: HashMap<String, List>,
}

fn split(map: &BTreeMap<String, Vec<String>>) -> (HashMap<String, List>, HashMap<String, List>) {
    let mut users: HashMap<String, List> = HashMap::new();
    let mut roles: HashMap<String, List> = HashMap::new();
    for (key, patterns) in map {
        let targets: Vec<(&mut HashMap<String, List>, &str)> =
            if let Some(id) = key.strip_prefix("user:") {
                vec![(&mut users, id)]
            } else if let Some(role) = key.strip_prefix("role:") {
                vec![(&mut roles, role)]
            } else {
                vec![(&mut users, key.as_str()), (&mut roles, key.as_str())]
            };
        for (target, name) in targets {
            let list = target.entry(name.to_owned()).or_default();
            list.globs.extend(patterns.iter().map(|p| Glob::new(p)));
            list.explicitly_empty |= patterns.is_empty();
        }
    }
    (users, roles)
}

impl AccessRules {
    pub(crate) fn new(
        restricted: &[String],
        allow: &BTreeMap<String, Vec<String>>,
        deny: &BTreeMap<String, Vec<String>>,
    ) -> AccessRules {
        let (user_allow, role_allow) = split(allow);
        let (user_deny, role_deny) = split(deny);
        AccessRules {
            restricted: restricted.iter().map(|p| Glob::new(p)).collect(),
            user_allow,
            role_allow,
            user_deny,
            role_deny,
        }
    }

    /// True when no rule exists, so every model passes.
    pub(crate) fn is_empty(&self) -> bool {
        self.restricted.is_empty()
            && self.user_allow.is_empty()
            && self.role_allow.is_empty()
            && self.user_deny.is_empty()
            && self.role_deny.is_empty()
    }

    /// Checks `model` (lowercased characters) for `user` with `roles`.
    pub(crate) fn check(
        &self,
        model: &[char],
        user: &str,
        roles: &[String],
    ) -> Result<(), AccessDenial> {
        let deny = |reason, scope: String, list: &str| AccessDenial {
            reason,
            limit_id: format!("budget.{scope}.{list}"),
            scope,
        };
        if self.restricted.iter().any(|g| g.matches_lowercase(model)) {
            return Err(AccessDenial {
                reason: crate::DenialReason::ModelRestricted,
                scope: "global".to_owned(),
                limit_id: "budget.restricted_models".to_owned(),
            });
        }
        let user_scope = || format!("user:{user}");
        let role_scope = |r: &str| format!("role:{r}");
        if let Some(list) = self.user_deny.get(user)
            && list.globs.iter().any(|g| g.matches_lowercase(model))
        {
            return Err(deny(
                crate::DenialReason::ModelDenied,
                user_scope(),
                "model_denylist",
            ));
        }
        for role in roles {
            if let Some(list) = self.role_deny.get(role.as_str())
                && list.globs.iter().any(|g| g.matches_lowercase(model))
            {
                return Err(deny(
                    crate::DenialReason::ModelDenied,
                    role_scope(role),
                    "model_denylist",
                ));
            }
        }
        let user_list = self.user_allow.get(user).map(|l| (user_scope(), l));
        let role_lists = roles
            .iter()
            .filter_map(|r| self.role_allow.get(r.as_str()).map(|l| (role_scope(r), l)));
        let lists: Vec<(String, &List)> = user_list.into_iter().chain(role_lists).collect();
        if lists.is_empty() {
            return Ok(());
        }
        if let Some((scope, _)) = lists.iter().find(|(_, l)| l.explicitly_empty) {
            return Err(deny(
                crate::DenialReason::ModelNotAllowed,
                scope.clone(),
                "model_allowlist",
            ));
        }
        if lists
            .iter()
            .any(|(_, l)| l.globs.iter().any(|g| g.matches_lowercase(model)))
        {
            return Ok(());
        }
        let scope = lists.into_iter().next().map(|(s, _)| s).unwrap_or_default();
        Err(deny(
            crate::DenialReason::ModelNotAllowed,
            scope,
            "model_allowlist",
        ))
    }
}
