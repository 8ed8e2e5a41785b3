//! The price catalog: dollars per million input and output tokens, per model.
//!
//! The built-in set below is a starting point with list prices as published by the
//! vendors in 2025; it is data, not policy. Operators override or extend it under
//! `[budget.pricing."<model>"]` and can drop it with `builtin_pricing = false`
//! (see `docs/budget.md`). A model found nowhere is unpriced, and an unpriced model is
//! denied unless `allow_unpriced_models = true`: never free by accident.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::glob::Glob;
use crate::money::Dollars;

/// The price of one model, in dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Dollars per million prompt tokens.
    pub input_per_mtok: Dollars,
    /// Dollars per million completion tokens.
    pub output_per_mtok: Dollars,
}

impl Price {
    /// The cost of a call in micro-dollars, rounded up to the next micro-dollar so that
    /// no call is free by rounding.
    pub fn cost_micros(self, input_tokens: u64, output_tokens: u64) -> u64 {
        let pico = u128::from(input_tokens) * u128::from(self.input_per_mtok.micros())
            + u128::from(output_tokens) * u128::from(self.output_per_mtok.micros());
        u64::try_from(pico.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

/// The built-in catalog: (pattern, input, output) in micro-dollars per million tokens.
///
/// Patterns are globs so that dated snapshots (`claude-3-5-haiku-20241022`) are priced
/// with their family; an exact name always wins over a glob.
const BUILTIN: &[(&str, u64, u64)] = &[
    ("gpt-4o", 2_500_000, 10_000_000),
    ("gpt-4o-2024-*", 2_500_000, 10_000_000),
    ("gpt-4o-mini", 150_000, 600_000),
    ("gpt-4o-mini-*", 150_000, 600_000),
    ("gpt-4.1", 2_000_000, 8_000_000),
    ("gpt-4.1-mini", 400_000, 1_600_000),
    ("gpt-4.1-nano", 100_000, 400_000),
    ("gpt-4-turbo", 10_000_000, 30_000_000),
    ("gpt-3.5-turbo", 500_000, 1_500_000),
    ("o1", 15_000_000, 60_000_000),
    ("o3", 2_000_000, 8_000_000),
    ("o3-mini", 1_100_000, 4_400_000),
    ("o4-mini", 1_100_000, 4_400_000),
    ("claude-opus-4*", 15_000_000, 75_000_000),
    ("claude-sonnet-4*", 3_000_000, 15_000_000),
    ("claude-3-7-sonnet*", 3_000_000, 15_000_000),
    ("claude-3-5-sonnet*", 3_000_000, 15_000_000),
    ("claude-3-5-haiku*", 800_000, 4_000_000),
    ("claude-3-haiku*", 250_000, 1_250_000),
    ("gemini-2.5-pro*", 1_250_000, 10_000_000),
    ("gemini-2.5-flash*", 300_000, 2_500_000),
    ("gemini-2.0-flash*", 100_000, 400_000),
    ("gemini-1.5-pro*", 1_250_000, 5_000_000),
    ("gemini-1.5-flash*", 75_000, 300_000),
    ("mistral-large*", 2_000_000, 6_000_000),
    ("mistral-small*", 100_000, 300_000),
];

/// The built-in catalog as configuration entries.
pub fn builtin_prices() -> BTreeMap<String, Price> {
    BUILTIN
        .iter()
        .map(|(name, input, output)| {
            (
                (*name).to_owned(),
                Price {
                    input_per_mtok: Dollars(*input),
                    output_per_mtok: Dollars(*output),
                },
            )
        })
        .collect()
}

/// A catalog ready for lookups.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    /// Exact names, lowercased.
    exact: std::collections::HashMap<String, Price>,
    /// Glob entries, most specific first.
    globs: Vec<(Glob, Price)>,
}

impl Catalog {
    pub(crate) fn new(entries: &BTreeMap<String, Price>) -> Catalog {
        let mut catalog = Catalog::default();
        for (name, price) in entries {
            let glob = Glob::new(name);
            if glob.is_literal() {
                catalog.exact.insert(name.to_lowercase(), *price);
            } else {
                catalog.globs.push((glob, *price));
            }
        }
        // Most literal characters first; ties in name order (the BTreeMap's), so the
        // choice is the same on every replica.
        catalog
            .globs
            .sort_by_key(|(g, _)| std::cmp::Reverse(g.specificity()));
        catalog
    }

    /// The price of `model`: an exact name first, else the most specific glob.
    pub(crate) fn price<'a>(
        &self,
        model_lower: &str,
        model_chars: impl FnOnce() -> &'a [char],
    ) -> Option<Price> {
        if let Some(p) = self.exact.get(model_lower) {
            return Some(*p);
        }
        let chars = model_chars();
        self.globs
            .iter()
            .find(|(g, _)| g.matches_lowercase(chars))
            .map(|(_, p)| *p)
    }
}
