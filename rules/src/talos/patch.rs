//! Talos machine-config patching, with Talos's own semantics so that what `hl` renders is what
//! `talosctl` would produce from the same patches:
//!
//! - strategic merge: maps merge recursively, lists append, a scalar replaces; except the
//!   lists and sections in [`REPLACED`] (overwritten) and [`KEYED`] (merged element by element
//!   on a key, e.g. `machine.network.interfaces` on `interface:` or `deviceSelector:`).
//!   `$patch: delete` removes the map or list element that carries it; a `null` sets nothing
//!   (Talos decodes into typed structs, where an unset field is no change).
//! - RFC 6902 JSON patches (a list of `{op, path, value}`), applied to the v1alpha1 document.
//! - multi-document configs (Talos 1.5+): a patch document with `apiVersion` and `kind` merges
//!   into the typed document of the same `(apiVersion, kind, name)`, or is appended.

use serde_json::{Map, Value};

/// The directive key of strategic merge patches.
const DIRECTIVE: &str = "$patch";

/// Paths (keys joined with `.`, list indices left out) whose value a patch replaces outright.
const REPLACED: [&str; 3] = [
    "cluster.network.podSubnets",
    "cluster.network.serviceSubnets",
    "cluster.apiServer.auditPolicy",
];

/// Lists merged element by element: an element of the patch merges into the element of the
/// config that has an equal value for any of the keys, and is appended otherwise.
const KEYED: [(&str, &[&str]); 4] = [
    (
        "machine.network.interfaces",
        &["interface", "deviceSelector"],
    ),
    ("machine.network.interfaces.vlans", &["vlanId"]),
    ("cluster.apiServer.admissionControl", &["name"]),
    // ExtensionServiceConfig documents.
    ("configFiles", &["mountPath"]),
];

/// A machine configuration: the v1alpha1 document and the typed documents that follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineConfig {
    /// The `version: v1alpha1` document.
    pub main: Value,
    /// Documents with `apiVersion` and `kind` (`ExtensionServiceConfig`, `UserVolumeConfig`...),
    /// in the order they were added.
    pub extra: Vec<Value>,
}

/// What a patch document is.
#[derive(Debug)]
enum PatchKind<'a> {
    /// A partial config, merged in.
    Merge(&'a Map<String, Value>),
    /// RFC 6902 operations.
    Json(&'a [Value]),
}

/// Tells a strategic merge patch from a JSON patch, the way `talosctl` does: by shape.
fn classify(doc: &Value) -> Result<PatchKind<'_>, String> {
    match doc {
        Value::Object(m) => Ok(PatchKind::Merge(m)),
        Value::Array(ops) if ops.iter().all(|o| o.get("op").is_some()) => Ok(PatchKind::Json(ops)),
        Value::Array(_) => Err(
            "a patch that is a list must hold JSON patch operations (`op`, `path`, `value`)".into(),
        ),
        _ => Err(
            "a patch must be a mapping (strategic merge) or a list of JSON patch operations".into(),
        ),
    }
}

/// Checks a patch document's shape without applying it, so that discovery can refuse an inline
/// patch where it is written rather than at realize time.
pub fn check(doc: &Value) -> Result<(), String> {
    classify(doc).map(drop)
}

impl MachineConfig {
    /// A config of one v1alpha1 document.
    pub fn new(main: Value) -> MachineConfig {
        MachineConfig {
            main,
            extra: Vec::new(),
        }
    }

    /// Applies one patch document.
    pub fn apply(&mut self, doc: &Value) -> Result<(), String> {
        match classify(doc)? {
            PatchKind::Merge(patch) => self.merge_document(patch),
            PatchKind::Json(ops) => json6902(&mut self.main, ops),
        }
    }

    fn merge_document(&mut self, patch: &Map<String, Value>) -> Result<(), String> {
        let delete = is_delete(patch);
        let Some(id) = identity(patch) else {
            if delete {
                return Err("`$patch: delete` cannot remove the v1alpha1 document".into());
            }
            merge(&mut self.main, &Value::Object(patch.clone()), "");
            return Ok(());
        };
        let found = self
            .extra
            .iter()
            .position(|d| d.as_object().and_then(identity).as_ref() == Some(&id));
        match (found, delete) {
            (Some(i), true) => {
                self.extra.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => merge(&mut self.extra[i], &Value::Object(patch.clone()), ""),
            (None, false) => self.extra.push(clean(&Value::Object(patch.clone()))),
        }
        Ok(())
    }
}

/// `(apiVersion, kind, name)` of a typed document; `None` for the v1alpha1 document.
fn identity(doc: &Map<String, Value>) -> Option<(String, String, String)> {
    let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    doc.contains_key("kind")
        .then(|| (text("apiVersion"), text("kind"), text("name")))
}

fn is_delete(m: &Map<String, Value>) -> bool {
    m.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

fn is_delete_value(v: &Value) -> bool {
    v.as_object().is_some_and(is_delete)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Merges `right` into `left` at `path`.
fn merge(left: &mut Value, right: &Value, path: &str) {
    let replaced = REPLACED.contains(&path);
    match (left, right) {
        (_, Value::Null) => {}
        (Value::Object(l), Value::Object(r)) if !replaced => merge_map(l, r, path),
        (Value::Array(l), Value::Array(r)) if !replaced => merge_list(l, r, path),
        (left, right) => *left = clean(right),
    }
}

fn merge_map(left: &mut Map<String, Value>, right: &Map<String, Value>, path: &str) {
    for (k, rv) in right {
        if k == DIRECTIVE {
            continue;
        }
        if is_delete_value(rv) {
            left.remove(k);
            continue;
        }
        match left.get_mut(k) {
            Some(lv) => merge(lv, rv, &join(path, k)),
            None if rv.is_null() => {}
            None => {
                left.insert(k.clone(), clean(rv));
            }
        }
    }
}

fn merge_list(left: &mut Vec<Value>, right: &[Value], path: &str) {
    let keys = KEYED.iter().find(|(p, _)| *p == path).map(|(_, k)| *k);
    for item in right {
        let found = keys.and_then(|ks| left.iter().position(|l| same_element(l, item, ks)));
        match (found, is_delete_value(item)) {
            (Some(i), true) => {
                left.remove(i);
            }
            (Some(i), false) => merge(&mut left[i], item, path),
            (None, true) => {}
            (None, false) => left.push(clean(item)),
        }
    }
}

/// Whether two list elements are the same entry: equal on any of the keys both carry.
fn same_element(a: &Value, b: &Value, keys: &[&str]) -> bool {
    keys.iter().any(|k| match (a.get(k), b.get(k)) {
        (Some(x), Some(y)) => !x.is_null() && x == y,
        _ => false,
    })
}

/// A patch value as it lands in the config: directives and what they delete dropped, `null`
/// map values dropped (unset).
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| *k != DIRECTIVE && !v.is_null() && !is_delete_value(v))
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|v| !is_delete_value(v))
                .map(clean)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Applies RFC 6902 operations in order; the first failure stops and says which.
fn json6902(doc: &mut Value, ops: &[Value]) -> Result<(), String> {
    for (i, op) in ops.iter().enumerate() {
        apply_op(doc, op).map_err(|e| format!("JSON patch operation {}: {e}", i + 1))?;
    }
    Ok(())
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), String> {
    let name = op
        .get("op")
        .and_then(Value::as_str)
        .ok_or("`op` must be a string")?;
    let path = field_str(op, "path")?;
    let value = || {
        op.get("value")
            .cloned()
            .ok_or_else(|| format!("`{name}` needs a `value`"))
    };
    match name {
        "add" => add(doc, path, value()?),
        "remove" => remove(doc, path).map(drop),
        "replace" => {
            lookup(doc, path)?;
            remove(doc, path)?;
            add(doc, path, value()?)
        }
        "move" => {
            let moved = remove(doc, field_str(op, "from")?)?;
            add(doc, path, moved)
        }
        "copy" => {
            let copied = lookup(doc, field_str(op, "from")?)?.clone();
            add(doc, path, copied)
        }
        "test" if lookup(doc, path)? == &value()? => Ok(()),
        "test" => Err(format!(
            "test failed: `{path}` does not hold the given value"
        )),
        other => Err(format!(
            "unknown op `{other}`: expected add, remove, replace, move, copy or test"
        )),
    }
}

fn field_str<'a>(op: &'a Value, key: &str) -> Result<&'a str, String> {
    op.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{key}` must be a JSON pointer string such as /machine/network"))
}

/// The reference tokens of a JSON pointer (`~1` is `/`, `~0` is `~`).
fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("`{pointer}` is not a JSON pointer: it must start with `/`"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn step<'a>(v: &'a Value, t: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(t),
        Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    }
}

fn step_mut<'a>(v: &'a mut Value, t: &str) -> Option<&'a mut Value> {
    match v {
        Value::Object(m) => m.get_mut(t),
        Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    }
}

fn lookup<'a>(doc: &'a Value, pointer: &str) -> Result<&'a Value, String> {
    tokens(pointer)?
        .iter()
        .try_fold(doc, |v, t| step(v, t))
        .ok_or_else(|| format!("`{pointer}` does not exist in the config"))
}

/// The container holding the last token of `pointer`, and that token.
fn parent_mut<'a>(doc: &'a mut Value, pointer: &str) -> Result<(&'a mut Value, String), String> {
    let mut ts = tokens(pointer)?;
    let last = ts.pop().ok_or_else(|| {
        "the whole document cannot be the target; name a path below it".to_string()
    })?;
    let parent = ts
        .iter()
        .try_fold(doc, |v, t| step_mut(v, t))
        .ok_or_else(|| format!("the parent of `{pointer}` does not exist in the config"))?;
    Ok((parent, last))
}

fn add(doc: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    let (parent, last) = parent_mut(doc, pointer)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) if last == "-" => {
            a.push(value);
            Ok(())
        }
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i <= a.len() => {
                a.insert(i, value);
                Ok(())
            }
            _ => Err(format!(
                "`{pointer}`: index out of range (the list has {} items)",
                a.len()
            )),
        },
        _ => Err(format!(
            "the parent of `{pointer}` is not a mapping or a list"
        )),
    }
}

fn remove(doc: &mut Value, pointer: &str) -> Result<Value, String> {
    let (parent, last) = parent_mut(doc, pointer)?;
    let removed = match parent {
        Value::Object(m) => m.remove(&last),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Some(a.remove(i)),
            _ => None,
        },
        _ => None,
    };
    removed.ok_or_else(|| format!("`{pointer}` does not exist in the config"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched(base: Value, patches: &[Value]) -> Result<MachineConfig, String> {
        let mut config = MachineConfig::new(base);
        for p in patches {
            config.apply(p)?;
        }
        Ok(config)
    }

    #[test]
    fn strategic_merge_follows_talos_rules() {
        let cases = [
            (
                "maps merge recursively, scalars replace",
                json!({"machine": {"type": "worker", "network": {"hostname": "a"}}}),
                json!({"machine": {"network": {"hostname": "b", "mtu": 1500}}}),
                json!({"machine": {"type": "worker", "network": {"hostname": "b", "mtu": 1500}}}),
            ),
            (
                "lists append",
                json!({"machine": {"certSANs": ["a"]}}),
                json!({"machine": {"certSANs": ["b"]}}),
                json!({"machine": {"certSANs": ["a", "b"]}}),
            ),
            (
                "$patch: delete removes a key",
                json!({"machine": {"kubelet": {"image": "x"}, "type": "worker"}}),
                json!({"machine": {"kubelet": {"$patch": "delete"}}}),
                json!({"machine": {"type": "worker"}}),
            ),
            (
                "null sets nothing",
                json!({"machine": {"type": "worker"}}),
                json!({"machine": {"type": null, "new": null}}),
                json!({"machine": {"type": "worker"}}),
            ),
            (
                "pod and service subnets are overwritten",
                json!({"cluster": {"network": {"podSubnets": ["10.244.0.0/16"], "serviceSubnets": ["10.96.0.0/12"]}}}),
                json!({"cluster": {"network": {"podSubnets": ["10.42.0.0/16"]}}}),
                json!({"cluster": {"network": {"podSubnets": ["10.42.0.0/16"], "serviceSubnets": ["10.96.0.0/12"]}}}),
            ),
            (
                "interfaces merge on interface:, others append",
                json!({"machine": {"network": {"interfaces": [{"interface": "eth0", "dhcp": false}]}}}),
                json!({"machine": {"network": {"interfaces": [{"interface": "eth0", "vip": {"ip": "10.0.0.5"}}, {"interface": "eth1", "dhcp": true}]}}}),
                json!({"machine": {"network": {"interfaces": [{"interface": "eth0", "dhcp": false, "vip": {"ip": "10.0.0.5"}}, {"interface": "eth1", "dhcp": true}]}}}),
            ),
            (
                "interfaces merge on deviceSelector:, vlans on vlanId:",
                json!({"machine": {"network": {"interfaces": [{"deviceSelector": {"driver": "virtio_net"}, "vlans": [{"vlanId": 20, "mtu": 1500}]}]}}}),
                json!({"machine": {"network": {"interfaces": [{"deviceSelector": {"driver": "virtio_net"}, "vlans": [{"vlanId": 20, "dhcp": true}]}]}}}),
                json!({"machine": {"network": {"interfaces": [{"deviceSelector": {"driver": "virtio_net"}, "vlans": [{"vlanId": 20, "mtu": 1500, "dhcp": true}]}]}}}),
            ),
            (
                "$patch: delete removes a keyed list element",
                json!({"machine": {"network": {"interfaces": [{"interface": "eth0"}, {"interface": "eth1"}], "hostname": "w"}}}),
                json!({"machine": {"network": {"interfaces": [{"interface": "eth0", "$patch": "delete"}]}}}),
                json!({"machine": {"network": {"interfaces": [{"interface": "eth1"}], "hostname": "w"}}}),
            ),
            (
                "admission control merges on name",
                json!({"cluster": {"apiServer": {"admissionControl": [{"name": "PodSecurity", "configuration": {"exemptions": {"namespaces": ["kube-system"]}}}]}}}),
                json!({"cluster": {"apiServer": {"admissionControl": [{"name": "PodSecurity", "configuration": {"exemptions": {"namespaces": ["rook-ceph"]}}}]}}}),
                json!({"cluster": {"apiServer": {"admissionControl": [{"name": "PodSecurity", "configuration": {"exemptions": {"namespaces": ["kube-system", "rook-ceph"]}}}]}}}),
            ),
            (
                "new content loses its directives",
                json!({"machine": {}}),
                json!({"machine": {"files": [{"path": "/a"}, {"$patch": "delete"}], "kubelet": {"x": {"$patch": "delete"}}}}),
                json!({"machine": {"files": [{"path": "/a"}], "kubelet": {}}}),
            ),
        ];
        for (name, base, patch, want) in cases {
            let got = patched(base, &[patch]).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got.main, want, "{name}");
        }
    }

    #[test]
    fn json6902_operations() {
        let base = json!({"machine": {"network": {"hostname": "a", "interfaces": [{"interface": "eth0"}]}}});
        let cases = [
            (
                "add to a map and append to a list",
                json!([
                    {"op": "add", "path": "/machine/kubelet", "value": {"extraArgs": {"v": "2"}}},
                    {"op": "add", "path": "/machine/network/interfaces/-", "value": {"interface": "eth1"}},
                ]),
                Ok(json!({"machine": {"kubelet": {"extraArgs": {"v": "2"}}, "network": {"hostname": "a", "interfaces": [{"interface": "eth0"}, {"interface": "eth1"}]}}})),
            ),
            (
                "replace and remove",
                json!([
                    {"op": "replace", "path": "/machine/network/hostname", "value": "b"},
                    {"op": "remove", "path": "/machine/network/interfaces/0"},
                ]),
                Ok(json!({"machine": {"network": {"hostname": "b", "interfaces": []}}})),
            ),
            (
                "move, copy and an escaped key",
                json!([
                    {"op": "copy", "from": "/machine/network/hostname", "path": "/machine/a~1b"},
                    {"op": "move", "from": "/machine/a~1b", "path": "/machine/c"},
                    {"op": "test", "path": "/machine/c", "value": "a"},
                ]),
                Ok(json!({"machine": {"c": "a", "network": {"hostname": "a", "interfaces": [{"interface": "eth0"}]}}})),
            ),
            (
                "replace of a missing path fails",
                json!([{"op": "replace", "path": "/machine/install/disk", "value": "/dev/sda"}]),
                Err("JSON patch operation 1: `/machine/install/disk` does not exist in the config"),
            ),
            (
                "remove of a missing path fails",
                json!([{"op": "add", "path": "/machine/x", "value": 1}, {"op": "remove", "path": "/cluster"}]),
                Err("JSON patch operation 2: `/cluster` does not exist in the config"),
            ),
            (
                "a failed test stops the patch",
                json!([{"op": "test", "path": "/machine/network/hostname", "value": "z"}]),
                Err("JSON patch operation 1: test failed: `/machine/network/hostname` does not hold the given value"),
            ),
        ];
        for (name, patch, want) in cases {
            let got = patched(base.clone(), &[patch]).map(|c| c.main);
            assert_eq!(got, want.map_err(str::to_string), "{name}");
        }
    }

    #[test]
    fn typed_documents_merge_append_and_delete() {
        let ext = |name: &str, env: Value| json!({"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": name, "environment": env});
        let got = patched(
            json!({"version": "v1alpha1"}),
            &[
                ext("tailscale", json!(["A=1"])),
                ext("nut", json!(["B=1"])),
                ext("tailscale", json!(["C=1"])),
                json!({"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "nut", "$patch": "delete"}),
            ],
        )
        .unwrap();
        assert_eq!(got.extra, vec![ext("tailscale", json!(["A=1", "C=1"]))]);
        assert_eq!(got.main, json!({"version": "v1alpha1"}));
    }

    #[test]
    fn malformed_patches_are_refused() {
        for (patch, want) in [
            (json!("machine: {}"), "a patch must be a mapping"),
            (
                json!([{"path": "/x"}]),
                "a patch that is a list must hold JSON patch operations",
            ),
            (
                json!([{"op": "frobnicate", "path": "/x"}]),
                "unknown op `frobnicate`",
            ),
            (
                json!([{"op": "add", "path": "x", "value": 1}]),
                "is not a JSON pointer",
            ),
            (
                json!({"$patch": "delete"}),
                "cannot remove the v1alpha1 document",
            ),
        ] {
            let err = patched(json!({}), std::slice::from_ref(&patch)).unwrap_err();
            assert!(err.contains(want), "{patch}: {err}");
        }
    }
}
