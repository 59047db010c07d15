//! Walking a `serde_yaml::Value` the way the reference reads its dict, with field
//! paths for errors.
//!
//! The reference leans on Python truthiness (`data.get("name") or default`) and
//! `str()`; these helpers reproduce both for scalars and turn everything Python would
//! have mangled (a list where text belongs, `str()` of a dict) into errors instead.

use serde_yaml::{Mapping, Value};

use crate::error::{Error, Location, Result};
use crate::pytext::py_strip;

/// Python truthiness of a YAML value.
pub(crate) fn is_falsy(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        Value::Tagged(_) => false,
    }
}

/// A short name of the value's kind, for error messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Python's `str()` of a scalar; an error for null, lists, mappings and tags.
pub(crate) fn scalar_text(
    value: &Value,
    location: &Location,
    field: &str,
    expected: &str,
) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(true) => Ok("True".to_owned()),
        Value::Bool(false) => Ok("False".to_owned()),
        other => Err(Error::field(location, field, format!("is {}", kind_of(other)), expected)),
    }
}

/// `str(data.get(key) or "").strip()`, `None` when that is empty.
pub(crate) fn optional_text(
    map: &Mapping,
    key: &str,
    location: &Location,
    field: &str,
) -> Result<Option<String>> {
    let Some(value) = map.get(key) else { return Ok(None) };
    if is_falsy(value) {
        return Ok(None);
    }
    let text = scalar_text(value, location, field, "text")?;
    let stripped = py_strip(&text);
    Ok((!stripped.is_empty()).then(|| stripped.to_owned()))
}

/// `[str(a).strip() for a in (value or []) if str(a).strip()]`, but only for a list
/// of scalars: a string (which Python would split into characters) is an error.
pub(crate) fn text_list(value: &Value, location: &Location, field: &str) -> Result<Vec<String>> {
    if is_falsy(value) {
        return Ok(Vec::new());
    }
    let Value::Sequence(items) = value else {
        return Err(Error::field(
            location,
            field,
            format!("is {}", kind_of(value)),
            "a list of strings, e.g. `- tests pass`",
        ));
    };
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let text = scalar_text(item, location, &format!("{field}[{index}]"), "a string")?;
        let stripped = py_strip(&text);
        if !stripped.is_empty() {
            out.push(stripped.to_owned());
        }
    }
    Ok(out)
}

/// A non-negative whole number, as Python's `int()` reads it: integers, floats
/// (truncated) and strings of digits. Negative values and other text are errors.
pub(crate) fn non_negative_int(value: &Value, location: &Location, field: &str) -> Result<u64> {
    let expected = "a non-negative whole number";
    let negative = || Error::field(location, field, "is negative", expected);
    match value {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(u)
            } else if n.as_i64().is_some() {
                Err(negative())
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => Ok(f as u64),
                    Some(f) if f < 0.0 => Err(negative()),
                    _ => Err(Error::field(location, field, "is not a finite number", expected)),
                }
            }
        }
        Value::String(s) => {
            let trimmed = py_strip(s);
            let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
            if digits.starts_with('-') {
                return Err(negative());
            }
            if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
                return digits.parse::<u64>().map_err(|_| {
                    Error::field(location, field, format!("{s:?} is too large"), expected)
                });
            }
            Err(Error::field(location, field, format!("{s:?} is not a number"), expected))
        }
        other => Err(Error::field(location, field, format!("is {}", kind_of(other)), expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).expect("test yaml")
    }

    #[test]
    fn truthiness_follows_python() {
        for falsy in ["~", "false", "0", "0.0", "''", "[]", "{}"] {
            assert!(is_falsy(&yaml(falsy)), "{falsy} should be falsy");
        }
        for truthy in ["true", "1", "'0'", "[0]", "{a: 1}", "' '"] {
            assert!(!is_falsy(&yaml(truthy)), "{truthy} should be truthy");
        }
    }

    #[test]
    fn scalars_print_like_python_str() {
        let loc = Location::new("<input>");
        assert_eq!(scalar_text(&yaml("true"), &loc, "f", "x").expect("bool"), "True");
        assert_eq!(scalar_text(&yaml("12"), &loc, "f", "x").expect("int"), "12");
        assert_eq!(scalar_text(&yaml("1.5"), &loc, "f", "x").expect("float"), "1.5");
        assert!(scalar_text(&yaml("[1]"), &loc, "f", "x").is_err());
        assert!(scalar_text(&yaml("~"), &loc, "f", "x").is_err());
    }

    #[test]
    fn text_lists_drop_blank_items_and_refuse_strings() {
        let loc = Location::new("<input>");
        assert_eq!(text_list(&yaml("[' a ', '', 3]"), &loc, "acc").expect("list"), ["a", "3"]);
        let err = text_list(&yaml("'tests pass'"), &loc, "acceptance").expect_err("string");
        assert!(err.to_string().contains("acceptance: is a string"), "{err}");
        let err = text_list(&yaml("[[1]]"), &loc, "acceptance").expect_err("nested");
        assert!(err.to_string().contains("acceptance[0]"), "{err}");
    }

    #[test]
    fn whole_numbers_accept_what_python_int_accepts() {
        let loc = Location::new("<input>");
        assert_eq!(non_negative_int(&yaml("5"), &loc, "f").expect("int"), 5);
        assert_eq!(non_negative_int(&yaml("2.7"), &loc, "f").expect("float"), 2);
        assert_eq!(non_negative_int(&yaml("' 7 '"), &loc, "f").expect("digits"), 7);
        assert!(non_negative_int(&yaml("-1"), &loc, "f").is_err());
        assert!(non_negative_int(&yaml("'-1'"), &loc, "f").is_err());
        assert!(non_negative_int(&yaml("abc"), &loc, "f").is_err());
        assert!(non_negative_int(&yaml("true"), &loc, "f").is_err());
        assert!(non_negative_int(&yaml(".nan"), &loc, "f").is_err());
    }
}
