//! Prefixed ULID identifiers: `dec_01J...`, `tok_01J...`, `res_01J...`.
//!
//! A ULID sorts by creation time and carries 80 random bits. The prefix tells a
//! person (and a parser) what kind of thing an id names, so a token id cannot be
//! passed where a decision id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::Ulid;

use crate::Timestamp;

/// An id string that is not `<prefix>` followed by a 26-character ULID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {input:?}: expected {prefix:?} followed by a 26-character ULID")]
pub struct IdError {
    kind: &'static str,
    prefix: &'static str,
    input: String,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Ulid);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// An id for an object created at `at`, with the caller's random bits.
            ///
            /// Randomness is an argument so that this crate stays free of IO.
            pub fn new(at: Timestamp, random: u128) -> Self {
                let millis = u64::try_from(at.unix_millis()).unwrap_or(0);
                $name(Ulid::from_parts(millis, random))
            }

            /// The ULID inside the id.
            pub fn ulid(self) -> Ulid {
                self.0
            }

            /// The creation time the id carries, to the millisecond.
            pub fn timestamp(self) -> Timestamp {
                Timestamp::from_unix_millis(i64::try_from(self.0.timestamp_ms()).unwrap_or(i64::MAX))
            }
        }

        impl From<Ulid> for $name {
            fn from(ulid: Ulid) -> Self {
                $name(ulid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($prefix)?;
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = || IdError { kind: $kind, prefix: $prefix, input: s.to_owned() };
                let rest = s.strip_prefix($prefix).ok_or_else(err)?;
                // Ulid::from_string accepts lowercase too; ids are printed uppercase,
                // and we only accept the canonical form so that each id has one spelling.
                if rest.len() != 26 || rest.bytes().any(|b| b.is_ascii_lowercase()) {
                    return Err(err());
                }
                Ulid::from_string(rest).map($name).map_err(|_| err())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// The id of one decision: `dec_` + ULID.
    DecisionId,
    "dec_",
    "decision"
);
prefixed_id!(
    /// The id of one capability token: `tok_` + ULID.
    TokenId,
    "tok_",
    "token"
);
prefixed_id!(
    /// The id of one budget reservation: `res_` + ULID.
    ReservationId,
    "res_",
    "reservation"
);
prefixed_id!(
    /// The id of one escalation: `esc_` + ULID.
    EscalationId,
    "esc_",
    "escalation"
);
prefixed_id!(
    /// The id of one override: `ovr_` + ULID.
    OverrideId,
    "ovr_",
    "override"
);
prefixed_id!(
    /// The id of one halt: `hlt_` + ULID.
    HaltId,
    "hlt_",
    "halt"
);
prefixed_id!(
    /// The id of one audit export: `exp_` + ULID.
    ExportId,
    "exp_",
    "export"
);
prefixed_id!(
    /// The id of one legal hold: `hld_` + ULID.
    HoldId,
    "hld_",
    "legal hold"
);
prefixed_id!(
    /// The id of one recorded intervention (EU AI Act Art. 14): `itv_` + ULID.
    InterventionId,
    "itv_",
    "intervention"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_id_is_dec_plus_26_char_ulid_and_round_trips() {
        let id = DecisionId::new(Timestamp::from_unix_millis(1_764_000_000_000), 42);
        let s = id.to_string();
        assert!(s.starts_with("dec_"));
        assert_eq!(s.len(), 4 + 26);
        assert_eq!(s.parse::<DecisionId>(), Ok(id));
        assert_eq!(
            id.timestamp(),
            Timestamp::from_unix_millis(1_764_000_000_000)
        );
    }

    #[test]
    fn ids_sort_by_time() {
        let a = DecisionId::new(Timestamp::from_unix_millis(1), u128::MAX);
        let b = DecisionId::new(Timestamp::from_unix_millis(2), 0);
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn rejects_wrong_prefix_length_alphabet_and_case() {
        let good = TokenId::new(Timestamp::from_unix_secs(1), 7).to_string();
        assert!(good.parse::<TokenId>().is_ok());
        assert!(
            good.parse::<DecisionId>().is_err(),
            "a token id is not a decision id"
        );
        for bad in [
            "",
            "tok_",
            "tok_01ARZ3NDEKTSV4RRFFQ69G5FA",
            "tok_01ARZ3NDEKTSV4RRFFQ69G5FAVV",
            "tok_01ARZ3NDEKTSV4RRFFQ69G5FAU",
            "tok_01arz3ndektsv4rrffq69g5fav",
            "TOK_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ] {
            let err = bad.parse::<TokenId>().unwrap_err();
            assert!(err.to_string().contains("tok_"), "{err}");
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let id = ReservationId::new(Timestamp::from_unix_secs(9), 1);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<ReservationId>(&json).unwrap(), id);
        assert!(
            serde_json::from_str::<ReservationId>("\"dec_01ARZ3NDEKTSV4RRFFQ69G5FAV\"").is_err()
        );
    }
}
