//! A bound on how large a YAML document may grow once its aliases are expanded.
//!
//! `serde_yaml` builds a `Value` by copying an anchored node at every alias. Its own
//! guards stop the classic "billion laughs" (a repetition limit of 100 alias jumps
//! per event) and deep nesting (128 levels), but not a quadratic document: an anchor
//! of *n* items aliased *n* times is two short lines that become *n²* values. A
//! 14 KB spec of that shape took 420 MB and three seconds; 100 KB would take tens of
//! gigabytes, and the server parses specs sent over HTTP. So the text is first
//! walked without keeping anything, counting what the `Value` would hold, and refused
//! past [`MAX_EXPANDED_BYTES`] before any of it is built.
//!
//! Deep *flow* nesting (`[[[[...`) is the other trap: libyaml's scanner revisits
//! every open flow level at each token, so the time grows with the square of the
//! depth (80 KB of `[` took three seconds in a release build), and the events are
//! all scanned before `serde_yaml`'s depth limit of 128 can refuse them. Telling a
//! real `[` from one inside a quoted or block scalar takes a YAML scanner, and a
//! wrong guess would let a hostile document through; counting *every* `[` and `{`
//! cannot under-count, so more than [`MAX_FLOW_OPENERS`] of them are refused. No
//! honest spec comes near that; large code or data belongs in a workspace file.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

/// The most a YAML spec may expand to, in estimated bytes of parsed values: 16 MiB.
/// Real specs are a few kilobytes; a long goal of megabytes still fits.
pub const MAX_EXPANDED_BYTES: usize = 16 * 1024 * 1024;

/// The most `[` and `{` characters a YAML spec may contain, wherever they are. At
/// this depth libyaml still scans in about a quarter of a second (release build).
pub const MAX_FLOW_OPENERS: usize = 10_000;

/// What one node costs besides its text: about the size of a `serde_yaml::Value`
/// and its share of the container holding it.
const NODE_BYTES: usize = 64;

/// Why [`check_expansion`] refused a text.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The values would exceed the limit.
    TooLarge,
    /// More than [`MAX_FLOW_OPENERS`] `[` and `{` characters.
    TooManyOpeners,
    /// The text is not valid YAML (or trips one of `serde_yaml`'s own limits).
    Yaml(serde_yaml::Error),
}

/// Walks `text` as YAML and fails once the values it would produce exceed `limit`
/// estimated bytes. Syntax errors surface here too, with the parser's position.
pub(crate) fn check_expansion(text: &str, limit: usize) -> Result<(), Refused> {
    if text.bytes().filter(|b| matches!(b, b'[' | b'{')).count() > MAX_FLOW_OPENERS {
        return Err(Refused::TooManyOpeners);
    }
    let left = Cell::new(limit);
    let exceeded = Cell::new(false);
    Budget { left: &left, exceeded: &exceeded }
        .deserialize(serde_yaml::Deserializer::from_str(text))
        .map_err(|error| if exceeded.get() { Refused::TooLarge } else { Refused::Yaml(error) })
}

/// A visitor that spends from a shared allowance for every node it sees.
#[derive(Clone, Copy)]
struct Budget<'a> {
    left: &'a Cell<usize>,
    /// Set when the allowance ran out, to tell that error from the parser's own.
    exceeded: &'a Cell<bool>,
}

impl Budget<'_> {
    fn spend<E: de::Error>(self, text_bytes: usize) -> Result<(), E> {
        let cost = NODE_BYTES.saturating_add(text_bytes);
        match self.left.get().checked_sub(cost) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom("expansion limit exceeded"))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Budget<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Budget<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.spend(text.len())
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<(), E> {
        self.spend(bytes.len())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        self.spend(0)?;
        while items.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        self.spend(0)?;
        while entries.next_key_seed(self)?.is_some() {
            entries.next_value_seed(self)?;
        }
        Ok(())
    }

    /// A tagged value (`!tag value`) arrives as an enum: the tag, then the value.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_documents_fit_and_repeated_anchors_do_not() {
        let spec = "name: t\nsteps:\n  - title: A\n    checks: [{run: !shell cargo test}]\n";
        check_expansion(spec, MAX_EXPANDED_BYTES).expect("a small spec fits");
        // 10 items aliased 10 times: 100 values once expanded, over a 50-node budget.
        let items = ["x"; 10].join(", ");
        let aliases = ["*a"; 10].join(", ");
        let square = format!("a: &a [{items}]\nb: [{aliases}]\n");
        check_expansion(&square, NODE_BYTES * 200).expect("fits a larger budget");
        let refused = check_expansion(&square, NODE_BYTES * 50).expect_err("over budget");
        assert!(matches!(refused, Refused::TooLarge), "{refused:?}");
        let syntax = check_expansion("a: [unclosed\n", MAX_EXPANDED_BYTES).expect_err("syntax");
        assert!(matches!(syntax, Refused::Yaml(_)), "{syntax:?}");
    }

    #[test]
    fn flow_openers_are_counted_wherever_they_are() {
        let inside_text = format!("goal: '{}'\n", "[".repeat(MAX_FLOW_OPENERS));
        check_expansion(&inside_text, MAX_EXPANDED_BYTES).expect("at the limit");
        let over = format!("goal: '{}{{'\n", "[".repeat(MAX_FLOW_OPENERS));
        let refused = check_expansion(&over, MAX_EXPANDED_BYTES).expect_err("over the limit");
        assert!(matches!(refused, Refused::TooManyOpeners), "{refused:?}");
    }

    #[test]
    fn long_text_counts_its_bytes() {
        let text = format!("goal: {}\n", "g".repeat(10_000));
        assert!(matches!(check_expansion(&text, 5_000), Err(Refused::TooLarge)));
        assert!(check_expansion(&text, 20_000).is_ok());
    }
}
