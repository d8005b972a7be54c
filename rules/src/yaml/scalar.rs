//! What a plain YAML scalar means, exactly as `serde_yaml_ng` 0.10 resolves it into a value
//! (`de.rs`: `visit_untagged_scalar`, `visit_int`, `parse_f64`, `digits_but_not_number`), so
//! the fast parser and the full one make the same value of every scalar the fast one takes.
//! Anything whose value that crate would make through a path not ported here (an integer
//! wider than 64 bits, a float that is not finite) is `None`: the caller parses the file with
//! the full parser instead.

use serde_json::{Number, Value};

/// The value of a plain scalar, or `None` when only the full parser should say.
pub(super) fn plain(v: &str) -> Option<Value> {
    match resolve(v)? {
        Resolved::Value(value) => Some(value),
        Resolved::Str => Some(Value::String(v.to_string())),
    }
}

/// What a plain scalar is: a string (left for the caller to copy, or not), or another value.
pub(super) enum Resolved {
    Str,
    Value(Value),
}

/// [`plain`], without making the string.
pub(super) fn resolve(v: &str) -> Option<Resolved> {
    if v.is_empty() || matches!(v, "null" | "Null" | "NULL" | "~") {
        return Some(Resolved::Value(Value::Null));
    }
    match v {
        "true" | "True" | "TRUE" => return Some(Resolved::Value(Value::Bool(true))),
        "false" | "False" | "FALSE" => return Some(Resolved::Value(Value::Bool(false))),
        _ => {}
    }
    // Only a scalar that starts like a number can be one ("inf", "nan" and "infinity" parse
    // as f64 but are not finite, so the full parser keeps them as strings too).
    let first = v.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return Some(Resolved::Str);
    }
    number(v).map(|n| n.map_or(Resolved::Str, Resolved::Value))
}

/// A scalar that starts like a number: `Some(None)` when it is a string after all.
fn number(v: &str) -> Option<Option<Value>> {
    if let Some(u) = unsigned(v, u64::from_str_radix) {
        return Some(Some(Value::Number(u.into())));
    }
    if let Some(i) = negative(v, i64::from_str_radix) {
        return Some(Some(Value::Number(i.into())));
    }
    if unsigned(v, u128::from_str_radix).is_some() || negative(v, i128::from_str_radix).is_some() {
        return None;
    }
    if !digits_but_not_number(v) {
        let unpositive = match v.strip_prefix('+') {
            Some(u) if u.starts_with(['+', '-']) => return Some(None),
            Some(u) => u,
            None => v,
        };
        let special = matches!(unpositive, ".inf" | ".Inf" | ".INF")
            || matches!(v, "-.inf" | "-.Inf" | "-.INF" | ".nan" | ".NaN" | ".NAN");
        if special {
            return None;
        }
        if let Ok(f) = unpositive.parse::<f64>() {
            if f.is_finite() {
                return Number::from_f64(f).map(|n| Some(Value::Number(n)));
            }
        }
    }
    Some(None)
}

type Radix<T> = fn(&str, u32) -> Result<T, std::num::ParseIntError>;

/// `parse_unsigned_int`.
fn unsigned<T>(scalar: &str, from_str_radix: Radix<T>) -> Option<T> {
    let unpositive = scalar.strip_prefix('+').unwrap_or(scalar);
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = unpositive.strip_prefix(prefix) {
            if rest.starts_with(['+', '-']) {
                return None;
            }
            if let Ok(int) = from_str_radix(rest, radix) {
                return Some(int);
            }
        }
    }
    if unpositive.starts_with(['+', '-']) || digits_but_not_number(scalar) {
        return None;
    }
    from_str_radix(unpositive, 10).ok()
}

/// `parse_negative_int`.
fn negative<T>(scalar: &str, from_str_radix: Radix<T>) -> Option<T> {
    for (prefix, radix) in [("-0x", 16), ("-0o", 8), ("-0b", 2)] {
        if let Some(rest) = scalar.strip_prefix(prefix) {
            if let Ok(int) = from_str_radix(&format!("-{rest}"), radix) {
                return Some(int);
            }
        }
    }
    if digits_but_not_number(scalar) {
        return None;
    }
    from_str_radix(scalar, 10).ok()
}

/// Leading zeros followed by digits are a string in YAML 1.2.
fn digits_but_not_number(scalar: &str) -> bool {
    let scalar = scalar.strip_prefix(['-', '+']).unwrap_or(scalar);
    scalar.len() > 1 && scalar.starts_with('0') && scalar[1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::plain;
    use serde_json::{json, Value};

    /// Each scalar as the full parser reads it, beside what this module makes of it.
    #[test]
    fn plain_scalars_resolve_as_serde_yaml_ng_resolves_them() {
        let table = [
            "",
            "~",
            "null",
            "Null",
            "NULL",
            "nULL",
            "true",
            "True",
            "TRUE",
            "tRUE",
            "yes",
            "no",
            "on",
            "off",
            "0",
            "-0",
            "+0",
            "00",
            "007",
            "-007",
            "+7",
            "++7",
            "+-7",
            "-+7",
            "42",
            "-42",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "0x1F",
            "0x",
            "0x-1",
            "-0x1F",
            "+0x1F",
            "0o17",
            "0o8",
            "0b101",
            "-0b101",
            "1.5",
            "-1.5",
            "+1.5",
            "1.",
            ".5",
            "1e3",
            "1E3",
            "-1e-3",
            "1e400",
            ".inf",
            "-.inf",
            "+.inf",
            ".nan",
            ".NaN",
            "inf",
            "nan",
            "infinity",
            "NaN",
            "1_000",
            "1.2.3",
            "v1",
            "1.0",
            ".",
            "..",
            ".a",
            "0.0",
            "-0.0",
            "1e",
            "0755",
            "08",
            "1:30",
            "-1",
            "-a",
            "127.0.0.1",
            "10.0.0.0/8",
            "3h",
            "-1h",
            "+",
            "0xFFFFFFFFFFFFFFFFFF",
        ];
        for s in table {
            let full: Value =
                match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&format!("k: {s}\n")) {
                    Ok(y) => crate::yaml::to_json(y)["k"].clone(),
                    Err(_) => {
                        // Integers past 64 bits: the full parser refuses them, and so must the
                        // fast path leave them.
                        assert_eq!(plain(s), None, "{s:?}");
                        continue;
                    }
                };
            match plain(s) {
                Some(v) => assert_eq!(v, full, "{s:?}"),
                None => assert!(
                    matches!(full, Value::String(_) | Value::Number(_)),
                    "{s:?} left to the full parser: {full}"
                ),
            }
        }
        assert_eq!(plain("42"), Some(json!(42)));
        assert_eq!(plain("0755"), Some(json!("0755")));
    }
}
