//! Typed blake3 digests and the canonical encoding everything is hashed through.
//!
//! | digest | over | why |
//! | --- | --- | --- |
//! | `Digest<Content>` | a file's bytes | the stat cache keeps it, so unchanged files are not read |
//! | `Digest<Input>` | rule kind + version, canonical params, (path, content digest) per input file, (address, output digest) per input edge | the action-cache key: same inputs, same build |
//! | `Digest<Output>` | the artifact's canonical manifest: (path, content digest) per file | what dependents hash, so an edit that renders the same stops here (early cutoff) |
//!
//! The phantom kind makes the compiler refuse an input digest where an output digest belongs.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Marker: the digest of a file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Content {}
/// Marker: the digest of everything that goes into a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Input {}
/// Marker: the digest of what a node realizes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Output {}

/// A blake3 digest of a given kind.
pub struct Digest<K> {
    bytes: [u8; 32],
    kind: PhantomData<K>,
}

impl<K> Digest<K> {
    /// Wraps raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest {
            bytes,
            kind: PhantomData,
        }
    }

    /// Hashes bytes.
    pub fn of(data: &[u8]) -> Self {
        Self::from_bytes(*blake3::hash(data).as_bytes())
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Full lowercase hex.
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.bytes).to_hex().to_string()
    }

    /// The first 12 hex digits, for people.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }

    /// Parses full hex.
    pub fn parse_hex(s: &str) -> Option<Self> {
        blake3::Hash::from_hex(s)
            .ok()
            .map(|h| Self::from_bytes(*h.as_bytes()))
    }
}

impl<K> Clone for Digest<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Digest<K> {}
impl<K> PartialEq for Digest<K> {
    fn eq(&self, o: &Self) -> bool {
        self.bytes == o.bytes
    }
}
impl<K> Eq for Digest<K> {}
impl<K> std::hash::Hash for Digest<K> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.bytes.hash(h)
    }
}
impl<K> PartialOrd for Digest<K> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<K> Ord for Digest<K> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.bytes.cmp(&o.bytes)
    }
}
impl<K> fmt::Debug for Digest<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}
impl<K> fmt::Display for Digest<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}
impl<K> Serialize for Digest<K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}
impl<'de, K> Deserialize<'de> for Digest<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_hex(&s).ok_or_else(|| serde::de::Error::custom(format!("bad digest `{s}`")))
    }
}

/// Writes `v` as canonical JSON: object keys sorted bytewise, no whitespace, serde_json's one
/// number form. Key order never depends on a map implementation or a cargo feature.
pub fn canonical_json(v: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(v, &mut out);
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// Appends the canonical JSON of `v` to `out` (what [`canonical_json`] returns, without a
/// string of its own: hashing writes many documents into one buffer).
pub fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_str(k, out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_json_str(s, out),
        other => serde_json::to_writer(&mut *out, other).expect("writing to memory"),
    }
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it.
pub fn write_json_str(s: &str, out: &mut Vec<u8>) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        serde_json::to_writer(&mut *out, s).expect("writing to memory");
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Pretty canonical JSON (sorted keys, two-space indent), for artifacts people read and diff.
pub fn canonical_pretty(v: &Value) -> String {
    // Serialized through a view that visits object keys in sorted order, so the output is
    // sorted whatever map serde_json was built with, without the deep copy a sorted clone of
    // the value costs (a large homelab pretty-prints hundreds of MB of manifests on a cold plan).
    let mut s = serde_json::to_string_pretty(&Sorted(v)).expect("json values always serialize");
    s.push('\n');
    s
}

/// The blake3 digest of [`canonical_pretty`]'s text, made without the text.
pub fn canonical_pretty_digest(v: &Value) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    {
        // serde_json writes a few bytes at a time; blake3 is fed in larger pieces.
        let mut out = std::io::BufWriter::with_capacity(16 * 1024, &mut hasher);
        serde_json::to_writer_pretty(&mut out, &Sorted(v)).expect("json values always serialize");
        std::io::Write::write_all(&mut out, b"\n").expect("hashing does not fail");
        std::io::Write::flush(&mut out).expect("hashing does not fail");
    }
    *hasher.finalize().as_bytes()
}

/// A JSON value serialized with every object's keys in bytewise order.
struct Sorted<'a>(&'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            // serde_json's map is sorted already unless a crate turned on `preserve_order`.
            Value::Object(m) if m.keys().is_sorted() => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, &Sorted(v))?;
                }
                map.end()
            }
            Value::Object(m) => {
                let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, &Sorted(v))?;
                }
                map.end()
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Sorted(item))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The same text as serde_json's pretty printer gives a sorted copy of the value (what
    /// `canonical_pretty` produced before it stopped copying): artifacts' digests depend on it.
    #[test]
    fn canonical_pretty_is_serde_jsons_pretty_text_of_the_sorted_value() {
        let v = json!([
            {"b": [], "a": {}, "c": [1, 2.5, {"z": null, "y": "q\"\n"}], "d": {"k": [[]]}},
            [],
            "x",
            -3
        ]);
        let mut want = serde_json::to_string_pretty(&v).unwrap();
        want.push('\n');
        assert_eq!(canonical_pretty(&v), want);
        assert_eq!(
            canonical_pretty_digest(&v),
            *blake3::hash(want.as_bytes()).as_bytes()
        );
        assert_eq!(
            canonical_pretty(&json!({"b": 1, "a": []})),
            "{\n  \"a\": [],\n  \"b\": 1\n}\n"
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let a = json!({"b": 1, "a": {"y": [2, {"d": 1, "c": 2}], "x": null}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":null,"y":[2,{"c":2,"d":1}]},"b":1}"#
        );
    }

    #[test]
    fn digests_are_typed_and_round_trip_through_hex() {
        let d: Digest<Content> = Digest::of(b"abc");
        // Golden: blake3("abc"). A change here changes every hash hl has ever recorded.
        assert_eq!(
            d.hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(Digest::<Content>::parse_hex(&d.hex()), Some(d));
    }
}
