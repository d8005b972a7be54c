//! The inventory: `inventory/topology.yaml` (or `hl.yaml` at the root), with the environment,
//! the sites, the hosts and the layout that says where each layer lives in this repo.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where each layer lives; every path is repo-relative. Defaults follow docs/layout.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Layout {
    /// Per-host folders.
    pub hosts: String,
    /// Per-service folders.
    pub services: String,
    /// Image recipes.
    pub images: String,
    /// The folder holding `talconfig.yaml`.
    pub talos: String,
    /// The Kubernetes tree.
    pub kubernetes: String,
    /// How to read the Kubernetes tree.
    pub kubernetes_mode: KubernetesMode,
    /// A pattern for compose-per-host repos, e.g. `{host}/{stack}/compose.yaml`.
    pub stacks: Option<String>,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            hosts: "hosts".into(),
            services: "services".into(),
            images: "inventory/images".into(),
            talos: "cluster/talos".into(),
            kubernetes: "cluster/kubernetes".into(),
            kubernetes_mode: KubernetesMode::Auto,
            stacks: None,
        }
    }
}

/// How the Kubernetes tree is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KubernetesMode {
    /// Flux when any Flux Kustomization is found, plain otherwise.
    Auto,
    /// One node per Flux Kustomization.
    Flux,
    /// One node per app folder.
    Plain,
}

/// SSH settings of a host.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ssh {
    /// Login user.
    pub user: Option<String>,
    /// Port.
    pub port: Option<u16>,
}

/// One host of the inventory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    /// What the host is for.
    #[serde(default)]
    pub role: Option<String>,
    /// Which site it sits in.
    #[serde(default)]
    pub site: Option<String>,
    /// What ssh connects to.
    #[serde(default)]
    pub address: Option<String>,
    /// SSH settings.
    #[serde(default)]
    pub ssh: Option<Ssh>,
    /// Selection tags (`--on @tag`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Unreachable is a warning, not a failure.
    #[serde(default)]
    pub offline_first: bool,
    /// Where releases, events and state live on the host.
    #[serde(default = "default_runtime_root")]
    pub runtime_root: String,
    /// How hl reaches it: `ssh` (default) or `local` (the machine hl runs on).
    #[serde(default)]
    pub transport: Option<String>,
}

fn default_runtime_root() -> String {
    "/opt/homelab".into()
}

impl Default for Host {
    fn default() -> Self {
        Host {
            role: None,
            site: None,
            address: None,
            ssh: None,
            tags: Vec::new(),
            offline_first: false,
            runtime_root: default_runtime_root(),
            transport: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Nodes {
    Map(BTreeMap<String, Host>),
    List(Vec<NamedHost>),
}

#[derive(Debug, Clone, Deserialize)]
struct NamedHost {
    name: String,
    #[serde(flatten)]
    host: Host,
}

#[derive(Debug, Clone, Deserialize)]
struct RawTopology {
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    layout: Layout,
    #[serde(default)]
    sites: Value,
    #[serde(default)]
    nodes: Option<Nodes>,
}

/// The parsed inventory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Topology {
    /// The environment this repo describes; `HL_ENV` must match when set.
    pub environment: Option<String>,
    /// Where things live.
    pub layout: Layout,
    /// Sites, as written.
    pub sites: Value,
    /// Hosts by name.
    pub hosts: BTreeMap<String, Host>,
}

impl Topology {
    /// Parses the inventory from its JSON form (see [`crate::yaml::typed`]).
    pub fn from_raw(v: Value) -> Result<Topology, serde_json::Error> {
        let raw: RawTopology = serde_json::from_value(v)?;
        let hosts = match raw.nodes {
            None => BTreeMap::new(),
            Some(Nodes::Map(m)) => m,
            Some(Nodes::List(l)) => l.into_iter().map(|n| (n.name, n.host)).collect(),
        };
        Ok(Topology {
            environment: raw.environment,
            layout: raw.layout,
            sites: raw.sites,
            hosts,
        })
    }
}
