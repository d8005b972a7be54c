//! What the compose loader takes from each file it reads, derived from the file's bytes alone
//! so a later run reuses it while the file is unchanged ([`FileSet::derive`]): when one service
//! of a repo of thousands changes, only its files are read and parsed again. Facts hold what
//! placements need rather than whole documents (they are all read back whenever the loader runs
//! again): of a compose file, the parts that name repo files; of a contract, its dependencies
//! and requirements; of a dotenv or secret file, only that it passed its check.
//!
//! Checks that depend on nothing but the file (plaintext secrets) run inside the derivation: a
//! remembered fact is a file that passed, and a file that fails is read and reported again on
//! every run, since errors are never remembered.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Mutex;

use hl_engine::{canonical_pretty, Derivation, Error, FileSet, Origin, Rederive, RepoPath};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{secrets, yaml};

/// One entry of a host's `services.yaml`, with where its name is first written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listed {
    /// The service.
    pub name: String,
    /// Its exposure, when written.
    pub exposure: Option<String>,
    /// Where the name is first written.
    pub origin: Origin,
}

/// What placements use of a service's contract (`service.yaml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contract {
    /// The services it depends on, each with where it is written.
    pub dependencies: Vec<(String, Origin)>,
    /// Its `requires`, when that is a mapping.
    pub requires: Option<Requires>,
    /// The digest of the release's `hl-service.json` made of it (see [`Project::released`]).
    #[serde(skip)]
    pub released: Option<[u8; 32]>,
}

/// What placements use of a compose file or override: the parts that name repo files (see
/// [`mount_parts`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Project {
    /// The parts.
    pub parts: Value,
    /// The digest of the release's `compose.yaml` made of this file alone (no override
    /// merged), for a service in the file's own folder. Made while the file is parsed for its
    /// facts, kept for the plan of the same run ([`Derivation::kept`]: the plan then takes a
    /// release's digest without parsing the file again), never remembered: it changes with any
    /// value of the file, and the facts must not.
    #[serde(skip)]
    pub released: Option<[u8; 32]>,
}

/// A contract's `requires`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Requires {
    /// `gpu: true`.
    pub gpu: bool,
    /// `arch`, when a string.
    pub arch: Option<String>,
}

/// What placements use of a host's `capabilities.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Capabilities {
    /// A GPU is listed (neither null nor false).
    pub gpu: bool,
    /// `arch`, when a string.
    pub arch: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Placed {
    Name(String),
    Full {
        name: String,
        #[serde(default)]
        exposure: Option<String>,
    },
}

#[derive(Deserialize)]
struct ServicesFile {
    #[serde(default)]
    services: Vec<Placed>,
}

/// One run's facts, each file's looked up once however many placements share it (a common
/// service's compose file, a host's capabilities).
pub struct Facts<'a> {
    files: &'a FileSet,
    probes: Mutex<HashMap<RepoPath, bool>>,
    listings: Memo<Vec<Listed>>,
    projects: Memo<Project>,
    contracts: Memo<Contract>,
    capabilities: Memo<Capabilities>,
    dotenvs: Memo<()>,
    sops: Memo<bool>,
}

impl<'a> Facts<'a> {
    /// Facts of `files`, none looked up yet.
    pub fn new(files: &'a FileSet) -> Facts<'a> {
        Facts {
            files,
            probes: Mutex::default(),
            listings: Memo::default(),
            projects: Memo::default(),
            contracts: Memo::default(),
            capabilities: Memo::default(),
            dotenvs: Memo::default(),
            sops: Memo::default(),
        }
    }

    /// Whether `p` is a file, asked of the repo once per run: every placement on a host asks
    /// about the host's `machine.yaml` and `capabilities.yaml`.
    pub fn is_file(&self, p: &RepoPath) -> bool {
        if let Some(&known) = self.probes.lock().expect("no panics hold this lock").get(p) {
            return known;
        }
        let found = self.files.is_file(p);
        self.probes
            .lock()
            .expect("no panics hold this lock")
            .insert(p.clone(), found);
        found
    }

    /// The services a host's `services.yaml` places, in order.
    pub fn listing(&self, p: &RepoPath) -> Result<Vec<Listed>, Error> {
        self.listings.get(self.files, &LISTING, p)
    }

    /// A compose file or override, checked for plaintext secrets, cut down to the parts that
    /// name repo files (see [`mount_parts`]).
    pub fn project(&self, p: &RepoPath) -> Result<Value, Error> {
        Ok(self.projects.get(self.files, &PROJECT, p)?.parts)
    }

    /// A service's contract.
    pub fn contract(&self, p: &RepoPath) -> Result<Contract, Error> {
        self.contracts.get(self.files, &CONTRACT, p)
    }

    /// A host's capabilities.
    pub fn capabilities(&self, p: &RepoPath) -> Result<Capabilities, Error> {
        self.capabilities.get(self.files, &CAPABILITIES, p)
    }

    /// Refuses a committed dotenv file that sets a secret-looking variable.
    pub fn check_dotenv(&self, p: &RepoPath) -> Result<(), Error> {
        self.dotenvs.get(self.files, &DOTENV, p)
    }

    /// Whether a file is SOPS-encrypted.
    pub fn is_sops(&self, p: &RepoPath) -> Result<bool, Error> {
        self.sops.get(self.files, &SOPS, p)
    }
}

/// The derivations of this module, for cutoffs.
pub(crate) static DERIVATIONS: [&dyn Rederive; 6] =
    [&LISTING, &PROJECT, &CONTRACT, &CAPABILITIES, &DOTENV, &SOPS];

/// The derivations, each under a tag with a version: a new version whenever what one derives
/// changes.
static LISTING: Derivation<Vec<Listed>> =
    Derivation::new("compose.listing.v1", |b, p| listing(yaml::utf8(b, p)?, p));
/// The digests of the release's pieces are kept for the run: the plan takes them from there.
static PROJECT: Derivation<Project> =
    Derivation::new("compose.project.v1", |b, p| project(yaml::utf8(b, p)?, p)).kept(|f| Project {
        parts: Value::Null,
        released: f.released,
    });
static CONTRACT: Derivation<Contract> = Derivation::new("compose.contract.v1", |b, p| {
    contract(yaml::utf8(b, p)?, p)
})
.kept(|c| Contract {
    dependencies: Vec::new(),
    requires: None,
    released: c.released,
});

/// The digest of the release's `compose.yaml` for the compose file `p` alone, in its own
/// folder: from what discovery kept of it this run, or made now.
pub(super) fn released_project(files: &FileSet, p: &RepoPath) -> Result<Option<[u8; 32]>, Error> {
    Ok(files.derived(&PROJECT, p)?.released)
}

/// The digest of the release's `hl-service.json` for the contract `p`: as
/// [`released_project`].
pub(super) fn released_contract(files: &FileSet, p: &RepoPath) -> Result<Option<[u8; 32]>, Error> {
    Ok(files.derived(&CONTRACT, p)?.released)
}
static CAPABILITIES: Derivation<Capabilities> =
    Derivation::new("compose.capabilities.v1", |b, p| {
        capabilities(yaml::utf8(b, p)?, p)
    });
static DOTENV: Derivation<()> = Derivation::new("compose.dotenv.v1", |b, p| {
    secrets::check_dotenv(yaml::utf8(b, p)?, p)
});
static SOPS: Derivation<bool> = Derivation::new("compose.sops.v1", |b, p| {
    Ok(yaml::text_is_sops(yaml::utf8(b, p)?))
});

fn listing(text: &str, p: &RepoPath) -> Result<Vec<Listed>, Error> {
    let parsed: ServicesFile = yaml::typed_of(text, p)?;
    Ok(parsed
        .services
        .into_iter()
        .map(|entry| {
            let (name, exposure) = match entry {
                Placed::Name(n) => (n, None),
                Placed::Full { name, exposure } => (name, exposure),
            };
            let origin = yaml::locate_in(text, p, None, &name, 1);
            Listed {
                name,
                exposure,
                origin,
            }
        })
        .collect())
}

fn project(text: &str, p: &RepoPath) -> Result<Project, Error> {
    let doc = yaml::one_of(text, p)?;
    check_secrets(&doc, p, text)?;
    let parts = mount_parts(&doc);
    let mut alone = super::merged(doc, None);
    super::mounts::relocate(&mut alone, &p.parent());
    Ok(Project {
        parts,
        released: Some(*blake3::hash(canonical_pretty(&alone).as_bytes()).as_bytes()),
    })
}

fn contract(text: &str, p: &RepoPath) -> Result<Contract, Error> {
    let doc = yaml::one_of(text, p)?;
    let dependencies = match doc.get("dependencies") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|d| d.as_str().or_else(|| d.get("name").and_then(Value::as_str)))
            .map(|d| {
                let origin = yaml::locate_in(text, p, Some("dependencies"), d, 1);
                (d.to_string(), origin)
            })
            .collect(),
        _ => Vec::new(),
    };
    let requires = doc
        .get("requires")
        .and_then(Value::as_object)
        .map(|req| Requires {
            gpu: req.get("gpu") == Some(&Value::Bool(true)),
            arch: req.get("arch").and_then(Value::as_str).map(str::to_string),
        });
    Ok(Contract {
        dependencies,
        requires,
        released: Some(*blake3::hash(canonical_pretty(&doc).as_bytes()).as_bytes()),
    })
}

fn capabilities(text: &str, p: &RepoPath) -> Result<Capabilities, Error> {
    let caps = yaml::one_of(text, p)?;
    Ok(Capabilities {
        gpu: caps
            .get("gpu")
            .is_some_and(|g| !matches!(g, Value::Null | Value::Bool(false))),
        arch: caps.get("arch").and_then(Value::as_str).map(str::to_string),
    })
}

/// Facts of one kind looked up this run, by file. Errors are not kept: they come again.
struct Memo<T>(Mutex<HashMap<RepoPath, T>>);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(Mutex::default())
    }
}

impl<T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> Memo<T> {
    fn get(&self, files: &FileSet, d: &Derivation<T>, p: &RepoPath) -> Result<T, Error> {
        if let Some(v) = self.0.lock().expect("no panics hold this lock").get(p) {
            return Ok(v.clone());
        }
        let v = files.derive(d, p)?;
        self.0
            .lock()
            .expect("no panics hold this lock")
            .insert(p.clone(), v.clone());
        Ok(v)
    }
}

/// Refuses literal secrets in the `environment` of any service of a compose document.
fn check_secrets(doc: &Value, path: &RepoPath, text: &str) -> Result<(), Error> {
    if let Some(services) = doc.get("services").and_then(Value::as_object) {
        for svc in services.values() {
            if let Some(env) = svc.get("environment") {
                secrets::check_environment(env, path, text)?;
            }
        }
    }
    Ok(())
}

/// The parts of a compose document that name repo files: each service's `volumes` and
/// `env_file`, and the top-level `configs` and `secrets`. Merging two documents' parts gives the
/// parts of the merged documents, since the merge rules work key by key (see [`super::merge`]),
/// so an override is merged over a compose file's facts as over the file.
fn mount_parts(doc: &Value) -> Value {
    let Value::Object(top) = doc else {
        return doc.clone();
    };
    let mut out = Map::new();
    if let Some(services) = top.get("services") {
        let services = match services {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(name, svc)| (name.clone(), service_parts(svc)))
                    .collect(),
            ),
            other => other.clone(),
        };
        out.insert("services".into(), services);
    }
    for key in ["configs", "secrets"] {
        if let Some(v) = top.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

fn service_parts(svc: &Value) -> Value {
    let Value::Object(m) = svc else {
        return svc.clone();
    };
    let mut out = Map::new();
    for key in ["volumes", "env_file"] {
        if let Some(v) = m.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(mut base: Value, over: &Value) -> Value {
        super::super::merge::merge(&mut base, over, "");
        super::super::merge::normalise(&mut base);
        base
    }

    /// Merging facts is the facts of merging, whatever a key or a service is called (a service
    /// named `environment` or `test` takes the merge's special branches).
    #[test]
    fn merging_parts_is_the_parts_of_the_merge() {
        let base = json!({
            "version": "3",
            "services": {
                "app": {"image": "a:1", "environment": ["A=1"], "volumes": ["./c:/etc/c", "d:/data"],
                        "env_file": ".env", "labels": ["x=1"]},
                "environment": {"volumes": ["./e:/e"], "image": "e"},
                "test": {"volumes": ["./t:/t"], "command": ["x"]},
                "plain": "not a mapping",
            },
            "configs": {"cfg": {"file": "./cfg.conf"}},
            "secrets": {"environment": {"file": "./s.env"}},
            "x-other": {"volumes": ["./no:/no"]},
        });
        let over = json!({
            "services": {
                "app": {"image": "a:2", "volumes": ["./o:/data", "./n:/n"], "env_file": [".env", "o.env"]},
                "environment": {"volumes": 3, "ports": ["1:1"]},
                "test": {"volumes": ["./u:/u"]},
                "plain": {"volumes": ["./p:/p"]},
                "new": {"volumes": [{"type": "bind", "source": "./x", "target": "/x"}]},
            },
            "secrets": {"environment": {"file": "./s2.env"}, "k": {"file": "./k"}},
        });
        let full = mount_parts(&merged(base.clone(), &over));
        let parts = merged(mount_parts(&base), &mount_parts(&over));
        assert_eq!(parts, full);
        assert_eq!(mount_parts(&json!(null)), json!(null));
    }
}
