//! `check:*`: the L0 runway. Each node kind says what converging its nodes needs (tools,
//! environment variables, credential files, reachable hosts); here those needs become check
//! nodes that the needing nodes are ordered after, so a plan lists exactly the checks its
//! changes need, and `hl check` runs them. Checks only read; they are never recorded in state.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hl_engine::{
    canonical_pretty, Address, Artifact, Edge, EdgeKind, Error, Layer, Node, Origin, RealizeCtx,
    Registry, Requirement, Rule,
};
use serde_json::Value;

use crate::{Ctx, Topology};

/// The rule of `check` nodes.
pub struct CheckRule;

impl Rule for CheckRule {
    fn kind(&self) -> &'static str {
        "check"
    }
    fn version(&self) -> u32 {
        1
    }
    fn layer(&self) -> Layer {
        Layer::L0
    }
    fn stateful(&self) -> bool {
        false
    }
    fn realize(&self, node: &Node, _ctx: &RealizeCtx<'_>) -> Result<Artifact, Error> {
        Ok(Artifact::single(
            "check.json",
            canonical_pretty(&node.params),
        ))
    }
}

/// The address of the check that satisfies a requirement.
pub fn address_of(req: &Requirement) -> Result<Address, String> {
    match req {
        Requirement::Tool { name } => Address::new("check", &format!("tool/{name}"), None),
        Requirement::RemoteTool { name, host } => {
            Address::new("check", &format!("tool/{name}"), Some(host))
        }
        Requirement::Env { name } => Address::new("check", &format!("env/{name}"), None),
        Requirement::File { path } => Address::new("check", &format!("file/{path}"), None),
        Requirement::Reachable { host } => Address::new("check", "ssh", Some(host)),
        Requirement::Credential { name, .. } => {
            Address::new("check", &format!("credential/{name}"), None)
        }
    }
}

/// Adds to every node an order edge on each check it needs, and returns the check nodes.
pub fn derive(ctx: &Ctx, registry: &Registry, nodes: &mut [Node]) -> Result<Vec<Node>, Error> {
    let mut checks: BTreeMap<Address, Node> = BTreeMap::new();
    for node in nodes.iter_mut() {
        let rule = registry.rule(node.address.kind())?;
        for req in rule.requirements(node) {
            let addr =
                address_of(&req).map_err(|e| Error::Internal(format!("{}: {e}", node.address)))?;
            checks
                .entry(addr.clone())
                .or_insert_with(|| check_node(ctx, &addr, &req));
            node.edges.push(Edge {
                to: addr,
                kind: EdgeKind::Order,
                origin: None,
            });
        }
    }
    Ok(checks.into_values().collect())
}

fn check_node(ctx: &Ctx, addr: &Address, req: &Requirement) -> Node {
    // How to reach a host is the inventory's, read when the check runs: not a parameter.
    let params = serde_json::to_value(req).unwrap_or(Value::Null);
    let labels = match req {
        Requirement::Reachable { host } | Requirement::RemoteTool { host, .. } => {
            ctx.host_labels(host)
        }
        _ => Default::default(),
    };
    Node {
        address: addr.clone(),
        layer: Layer::L0,
        params: params.into(),
        files: Vec::new(),
        edges: Vec::new(),
        labels,
        origin: Origin::file(ctx.topology_path.clone()),
    }
}

/// Refuses to go on when `HL_ENV` names another environment than the inventory does.
pub fn environment_guard(topology: &Topology, hl_env: Option<&str>) -> Result<(), Error> {
    match (hl_env, topology.environment.as_deref()) {
        (Some(want), Some(have)) if want != have => Err(Error::Environment {
            message: format!(
                "wrong environment: HL_ENV is `{want}` but this repo describes `{have}`"
            ),
            help: Some(format!(
                "unset HL_ENV or set HL_ENV={have} if you really mean this repo"
            )),
        }),
        (Some(want), None) => Err(Error::Environment {
            message: format!("HL_ENV is `{want}` but the inventory names no environment"),
            help: Some("add `environment: <name>` to inventory/topology.yaml".into()),
        }),
        _ => Ok(()),
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// Passed.
    pub ok: bool,
    /// Failed, but only a warning (an offline-first host).
    pub warning: bool,
    /// What was found.
    pub detail: String,
}

/// Runs a check node: reads only.
pub fn run(node: &Node, topology: &Topology) -> Outcome {
    let req: Option<Requirement> =
        serde_json::from_value(serde_json::Value::clone(&node.params)).ok();
    let pass = |detail: String| Outcome {
        ok: true,
        warning: false,
        detail,
    };
    let fail = |detail: String| Outcome {
        ok: false,
        warning: false,
        detail,
    };
    match req {
        Some(Requirement::Tool { name }) => match which(&name) {
            Some(p) => pass(format!("{} found", p.display())),
            None => fail(format!("`{name}` is not on PATH; install it")),
        },
        Some(Requirement::Env { name }) => match std::env::var_os(&name) {
            Some(v) if !v.is_empty() => pass(format!("{name} is set")),
            _ => fail(format!("{name} is not set in the environment")),
        },
        Some(Requirement::File { path }) => {
            let p = expand_home(&path);
            match std::fs::File::open(&p) {
                Ok(_) => pass(format!("{} is readable", p.display())),
                Err(e) => fail(format!("{} is not readable: {e}", p.display())),
            }
        }
        Some(Requirement::Credential { name, env, default }) => {
            let from_env = env
                .as_deref()
                .and_then(std::env::var_os)
                .filter(|v| !v.is_empty());
            let (p, how) = match (&from_env, &env) {
                (Some(v), Some(var)) => (PathBuf::from(v), format!(" (from {var})")),
                _ => (expand_home(&default), String::new()),
            };
            match std::fs::File::open(&p) {
                Ok(_) => pass(format!("{name}: {} is readable{how}", p.display())),
                Err(e) => fail(format!(
                    "{name}: {} is not readable{how}: {e}{}",
                    p.display(),
                    env.as_ref()
                        .map_or(String::new(), |v| format!("; set {v} or create it"))
                )),
            }
        }
        Some(Requirement::Reachable { host }) => remote(node, topology, &host, &["true"]),
        Some(Requirement::RemoteTool { name, host }) => remote(
            node,
            topology,
            &host,
            &["sh", "-c", "command -v \"$1\"", "hl-check", &name],
        ),
        None => fail("unreadable check parameters".into()),
    }
}

/// One round trip to the host through its transport (the user's OpenSSH client, agent,
/// config and known_hosts, multiplexed). The remote argv is fixed by hl, never repo data.
fn remote(_node: &Node, topology: &Topology, host: &str, argv: &[&str]) -> Outcome {
    let offline_first = topology.hosts.get(host).is_some_and(|h| h.offline_first);
    let Some(t) = crate::hosts::transport(topology, host) else {
        return Outcome {
            ok: false,
            warning: false,
            detail: format!("{host} is not in the inventory"),
        };
    };
    let (ok, detail) = match t.run(argv, None, std::time::Duration::from_secs(20)) {
        Ok(_) if argv == ["true"] => (true, format!("{host} answered over ssh")),
        Ok(o) => (true, format!("{} on {host}", o.text())),
        Err(e) => (false, e.to_string()),
    };
    Outcome {
        ok,
        warning: !ok && offline_first,
        detail,
    }
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Looks a program up on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            }
            #[cfg(not(unix))]
            {
                p.is_file()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_guard_refuses_a_mismatch_only() {
        let topo = Topology {
            environment: Some("home".into()),
            ..Default::default()
        };
        assert!(environment_guard(&topo, None).is_ok());
        assert!(environment_guard(&topo, Some("home")).is_ok());
        let err = environment_guard(&topo, Some("prod")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "wrong environment: HL_ENV is `prod` but this repo describes `home`"
        );
    }

    #[test]
    fn requirement_addresses() {
        for (req, want) in [
            (
                Requirement::Tool {
                    name: "talosctl".into(),
                },
                "check:tool/talosctl",
            ),
            (
                Requirement::RemoteTool {
                    name: "docker".into(),
                    host: "PIHA".into(),
                },
                "check:tool/docker@PIHA",
            ),
            (
                Requirement::Env {
                    name: "PROXMOX_API_TOKEN".into(),
                },
                "check:env/PROXMOX_API_TOKEN",
            ),
            (
                Requirement::Reachable { host: "VPS".into() },
                "check:ssh@VPS",
            ),
        ] {
            assert_eq!(address_of(&req).unwrap().to_string(), want);
        }
    }
}
