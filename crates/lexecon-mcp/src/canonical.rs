//! Canonical JSON (RFC 8785, the JSON Canonicalization Scheme) and the SHA-256 digests
//! the gateway puts in decisions and completions.
//!
//! Object members are sorted by the UTF-16 code units of their names, there is no
//! insignificant whitespace, strings are escaped minimally (`\"`, `\\`, `\b`, `\f`, `\n`,
//! `\r`, `\t`, other control characters as `\u00xx`), and numbers are written as
//! ECMAScript writes them (`1.0` is `1`, `1e21` is `1e+21`). One deliberate difference:
//! integers that fit in 64 bits are written exactly, never rounded through a double.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The canonical JSON text of `value`.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value);
    out
}

/// SHA-256 of the canonical JSON of `value`.
pub fn sha256(value: &Value) -> [u8; 32] {
    Sha256::digest(to_string(value).as_bytes()).into()
}

/// Lower-case hex SHA-256 of the canonical JSON of `value`.
pub fn sha256_hex(value: &Value) -> String {
    hex::encode(sha256(value))
}

fn write(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write(out, item);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(f) = n.as_f64() {
        out.push_str(&es_number(f));
    } else {
        // Not reachable without arbitrary precision; keep the text as parsed.
        out.push_str(&n.to_string());
    }
}

/// ECMAScript's Number::toString for a finite double (JSON has no other numbers).
fn es_number(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return "0".to_owned();
    }
    let sign = if f < 0.0 { "-" } else { "" };
    // `{:e}` is the shortest round-trip form: "d.ddddeN".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    let n = exp + 1;
    let body = if k <= n && n <= 21 {
        let zeros = usize::try_from(n - k).unwrap_or(0);
        format!("{digits}{}", "0".repeat(zeros))
    } else if 0 < n && n <= 21 {
        let at = usize::try_from(n).unwrap_or(0);
        let (int, frac) = digits.split_at(at.min(digits.len()));
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        let zeros = usize::try_from(-n).unwrap_or(0);
        format!("0.{}{digits}", "0".repeat(zeros))
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let e = n - 1;
        let e_sign = if e >= 0 { "+" } else { "-" };
        if rest.is_empty() {
            format!("{first}e{e_sign}{}", e.abs())
        } else {
            format!("{first}.{rest}e{e_sign}{}", e.abs())
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sorts_members_and_drops_whitespace() {
        let v: Value = serde_json::from_str(r#"{ "b": [1, 2, {"z": null, "a": true}], "a": "x" }"#)
            .unwrap_or_default();
        assert_eq!(to_string(&v), r#"{"a":"x","b":[1,2,{"a":true,"z":null}]}"#);
    }

    #[test]
    fn numbers_as_ecmascript_writes_them() {
        for (input, want) in [
            ("1.0", "1"),
            ("-0.0", "0"),
            ("1.5", "1.5"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
            ("123.456e5", "12345600"),
            ("-2.5e-10", "-2.5e-10"),
            ("18446744073709551615", "18446744073709551615"),
            ("-9223372036854775808", "-9223372036854775808"),
        ] {
            let v: Value = serde_json::from_str(input).unwrap_or_default();
            assert_eq!(to_string(&v), want, "{input}");
        }
    }

    #[test]
    fn numbers_are_parsed_exactly_so_the_text_is_a_fixed_point() {
        // Found by the fuzz target: without correctly rounded parsing, 84 eights came
        // back one unit in the last place off.
        let input = "8".repeat(84);
        let v: Value = serde_json::from_str(&input).unwrap_or_default();
        let once = to_string(&v);
        assert_eq!(once, "8.888888888888888e+83");
        let again: Value = serde_json::from_str(&once).unwrap_or_default();
        assert_eq!(to_string(&again), once);
    }

    #[test]
    fn strings_escape_minimally_and_keys_sort_by_utf16() {
        let v = json!({"\u{e000}": 1, "\u{1f600}": 2, "a\n\u{1}é": "\"\\/\u{7f}"});
        // U+1F600 is a surrogate pair (D83D ...), which sorts before U+E000 in UTF-16.
        assert_eq!(
            to_string(&v),
            "{\"a\\n\\u0001é\":\"\\\"\\\\/\u{7f}\",\"\u{1f600}\":2,\"\u{e000}\":1}"
        );
    }

    #[test]
    fn digest_is_of_the_canonical_text() {
        let a: Value = serde_json::from_str(r#"{"path": "/tmp/x", "n": 1}"#).unwrap_or_default();
        let b: Value = serde_json::from_str(r#"{"n":1.0,"path":"/tmp/x"}"#).unwrap_or_default();
        assert_eq!(sha256_hex(&a), sha256_hex(&b));
        assert_eq!(
            sha256_hex(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
