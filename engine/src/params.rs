//! A node's parameters: a JSON value, and its canonical text, each made from the other when
//! first asked for. A loader builds the value; the load cache keeps the text; hashing reads the
//! text. So a no-op plan of a large homelab, whose nodes all come from the load cache, hashes
//! their parameters without ever building a value tree for them (that was a third of its
//! memory and a fifth of its time), and a node that changed is parsed when a rule reads it.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::digest::canonical_json;

/// Parameters: see the module.
#[derive(Clone, Default)]
pub struct Params {
    value: OnceLock<Value>,
    text: OnceLock<String>,
}

impl Params {
    /// Parameters whose canonical text is known (read back from the load cache).
    fn from_canonical(text: String) -> Params {
        Params {
            value: OnceLock::new(),
            text: OnceLock::from(text),
        }
    }

    /// The canonical JSON text (sorted keys, no spaces): what the input digest hashes.
    pub fn canonical(&self) -> &str {
        self.text.get_or_init(|| canonical_json(self))
    }

    /// The parameters read as `T`, which may name only some keys: from the value when it was
    /// built, else from the text without building the rest (every plan asks each node's rule
    /// for its requirements; a Flux node's spec need not become a value tree for that).
    /// `None` when they do not fit `T`.
    pub fn read<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        match self.value.get() {
            Some(v) => T::deserialize(v).ok(),
            None => serde_json::from_str(self.canonical()).ok(),
        }
    }
}

impl From<Value> for Params {
    fn from(v: Value) -> Params {
        Params {
            value: OnceLock::from(v),
            text: OnceLock::new(),
        }
    }
}

impl Deref for Params {
    type Target = Value;
    fn deref(&self) -> &Value {
        self.value.get_or_init(|| {
            // The text is canonical JSON that hl wrote itself, inside a load cache whose
            // framing was read without error.
            serde_json::from_str(self.text.get().map_or("null", String::as_str))
                .expect("the load cache holds canonical JSON parameters")
        })
    }
}

impl PartialEq for Params {
    fn eq(&self, other: &Params) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// JSON for people (plans, `hl show`); the canonical text in binary caches.
impl Serialize for Params {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            (**self).serialize(s)
        } else {
            s.serialize_str(self.canonical())
        }
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Params, D::Error> {
        if d.is_human_readable() {
            Value::deserialize(d).map(Params::from)
        } else {
            String::deserialize(d).map(Params::from_canonical)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Through a binary cache and back, the same text and the same value, and the value is
    /// built only when asked for.
    #[test]
    fn parameters_survive_the_load_cache_as_canonical_text() {
        let p = Params::from(json!({"b": [1, {"z": "x\n"}], "a": null}));
        let bytes = rmp_serde::to_vec_named(&p).unwrap();
        let back: Params = rmp_serde::from_slice(&bytes).unwrap();
        assert!(back.value.get().is_none(), "not parsed yet");
        assert_eq!(back.canonical(), r#"{"a":null,"b":[1,{"z":"x\n"}]}"#);
        assert_eq!(back, p);
        assert_eq!(serde_json::to_value(&back).unwrap(), *p);
    }

    /// A partial read takes the keys it names, from the text alone (no value tree built) or
    /// from the value, the same either way.
    #[test]
    fn a_partial_read_takes_only_the_keys_it_names() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Mode {
            mode: String,
        }
        let p = Params::from(json!({"mode": "flux", "spec": {"path": "./x", "deep": [1, 2]}}));
        let back: Params = rmp_serde::from_slice(&rmp_serde::to_vec_named(&p).unwrap()).unwrap();
        let want = Some(Mode {
            mode: "flux".into(),
        });
        assert_eq!(back.read::<Mode>(), want);
        assert!(back.value.get().is_none(), "read from the text");
        assert_eq!(p.read::<Mode>(), want);
        assert_eq!(Params::from(json!({"spec": {}})).read::<Mode>(), None);
    }
}
