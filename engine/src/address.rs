//! Addresses (`kind:name[@HOST]`) and layers: the one key by which plans, state, events,
//! selection and errors refer to a node.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The five layers of a homelab, bottom to top. An edge never points from a lower layer to a
/// higher one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Layer {
    /// Runway checks: read-only, before anything changes.
    L0,
    /// Disk and OS images.
    L1,
    /// VMs on hypervisors.
    L2,
    /// OS configuration (Talos machine configs).
    L3,
    /// Runtime: Kubernetes manifests and compose services.
    L4,
}

impl Layer {
    /// All layers, bottom to top.
    pub const ALL: [Layer; 5] = [Layer::L0, Layer::L1, Layer::L2, Layer::L3, Layer::L4];

    /// What the layer holds, for headings.
    pub fn title(self) -> &'static str {
        match self {
            Layer::L0 => "L0 runway",
            Layer::L1 => "L1 images",
            Layer::L2 => "L2 infrastructure",
            Layer::L3 => "L3 OS configuration",
            Layer::L4 => "L4 runtime",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl FromStr for Layer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "L0" | "0" => Ok(Layer::L0),
            "L1" | "1" => Ok(Layer::L1),
            "L2" | "2" => Ok(Layer::L2),
            "L3" | "3" => Ok(Layer::L3),
            "L4" | "4" => Ok(Layer::L4),
            _ => Err(format!(
                "unknown layer `{s}`: expected one of L0, L1, L2, L3, L4"
            )),
        }
    }
}

/// A node's address: `kind:name[@HOST]`, e.g. `compose:mosquitto@SATURN`, `k8s:apps/jellyfin`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    kind: String,
    name: String,
    host: Option<String>,
}

impl Address {
    /// Builds an address from its parts; `kind` and `name` must be non-empty and free of `@`
    /// and whitespace (the loader's names come from files, so this is checked, not assumed).
    pub fn new(kind: &str, name: &str, host: Option<&str>) -> Result<Address, String> {
        let bad = |s: &str| s.is_empty() || s.contains(['@', ' ', '\t', '\n']);
        if bad(kind) || kind.contains(':') {
            return Err(format!("invalid node kind `{kind}`"));
        }
        if bad(name) {
            return Err(format!("invalid node name `{name}` (no spaces or `@`)"));
        }
        if let Some(h) = host {
            if bad(h) || h.contains(':') {
                return Err(format!("invalid host name `{h}`"));
            }
        }
        Ok(Address {
            kind: kind.to_string(),
            name: name.to_string(),
            host: host.map(str::to_string),
        })
    }

    /// The node kind: `compose`, `vm`, ...
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The name within the kind.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host the node is placed on, when the address names one.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)?;
        if let Some(h) = &self.host {
            write!(f, "@{h}")?;
        }
        Ok(())
    }
}

impl FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not an address: expected kind:name[@HOST]"))?;
        let (name, host) = match rest.rsplit_once('@') {
            Some((n, h)) => (n, Some(h)),
            None => (rest, None),
        };
        Address::new(kind, name, host)
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        for (text, kind, name, host) in [
            (
                "compose:mosquitto@SATURN",
                "compose",
                "mosquitto",
                Some("SATURN"),
            ),
            ("k8s:apps/jellyfin", "k8s", "apps/jellyfin", None),
            (
                "check:tool/docker@PIHA",
                "check",
                "tool/docker",
                Some("PIHA"),
            ),
            ("image:debian-12", "image", "debian-12", None),
        ] {
            let a: Address = text.parse().unwrap();
            assert_eq!((a.kind(), a.name(), a.host()), (kind, name, host));
            assert_eq!(a.to_string(), text);
        }
    }

    #[test]
    fn bad_addresses_are_refused() {
        for text in ["mosquitto", ":x", "compose:", "compose:a b", "compose:x@"] {
            assert!(text.parse::<Address>().is_err(), "{text} should be refused");
        }
    }
}
