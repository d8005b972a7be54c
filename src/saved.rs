//! Saved plans: `hl plan -o FILE` records, per step, the input digest the node was planned
//! with and the state it was planned against; `hl apply FILE` applies exactly those steps and
//! refuses, by name and with why, only those whose input or recorded state moved since.
//! Unlike a Terraform plan file, which goes stale when anything in the state moves, an
//! unrelated apply in between leaves a saved plan valid.

use std::collections::BTreeMap;
use std::path::Path;

use hl_engine::{Action, Address, Digest, Error, Input, Output, Plan, State};
use serde::{Deserialize, Serialize};

/// The format version of a saved plan.
pub const SAVED_FORMAT: u32 = 1;

/// One saved step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedStep {
    /// The node.
    pub address: Address,
    /// What to do.
    pub action: Action,
    /// The input digest planned (absent for a delete).
    pub input: Option<Digest<Input>>,
    /// The recorded input the step was planned against (absent: nothing was recorded).
    pub prior_input: Option<Digest<Input>>,
    /// The recorded output the step was planned against.
    pub prior_output: Option<Digest<Output>>,
}

/// A saved plan file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedPlan {
    /// Format version.
    pub format_version: u32,
    /// The git commit planned, when the repo is a git work tree.
    pub revision: Option<String>,
    /// Whether that work tree had uncommitted changes.
    pub dirty: bool,
    /// When it was saved (RFC 3339).
    pub created: String,
    /// The steps.
    pub steps: Vec<SavedStep>,
    /// The whole plan, as `hl plan --json` shows it, for people and reviews.
    pub plan: Plan,
}

impl SavedPlan {
    /// The saveable part of a plan.
    pub fn of(plan: &Plan, root: &Path) -> SavedPlan {
        let repo = hl_engine::files::GitRepo::discover(root).ok();
        let revision = repo.as_ref().and_then(|r| r.resolve("HEAD").ok());
        let dirty = repo.as_ref().and_then(|r| r.dirty().ok()).unwrap_or(false);
        SavedPlan {
            format_version: SAVED_FORMAT,
            revision,
            dirty,
            created: hl_engine::time::rfc3339(hl_engine::time::unix_now()),
            steps: plan
                .steps
                .iter()
                .filter(|s| s.action.is_change())
                .map(|s| SavedStep {
                    address: s.address.clone(),
                    action: s.action,
                    input: s.input,
                    prior_input: s.prior_input,
                    prior_output: s.prior_output,
                })
                .collect(),
            plan: plan.clone(),
        }
    }

    /// Reads a saved plan.
    pub fn load(path: &Path) -> Result<SavedPlan, Error> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::io("cannot read the saved plan", path, e))?;
        let p: SavedPlan = serde_json::from_slice(&bytes).map_err(|e| Error::Environment {
            message: format!("{} is not a saved hl plan: {e}", path.display()),
            help: Some("save one with `hl plan -o FILE`".into()),
        })?;
        if p.format_version > SAVED_FORMAT {
            return Err(Error::Environment {
                message: format!(
                    "{} was saved by a newer hl (format {})",
                    path.display(),
                    p.format_version
                ),
                help: Some("upgrade hl".into()),
            });
        }
        Ok(p)
    }

    /// Writes it (atomically).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let mut s =
            serde_json::to_string_pretty(self).map_err(|e| Error::Internal(e.to_string()))?;
        s.push('\n');
        hl_cache::write_atomic(path, s.as_bytes())?;
        Ok(())
    }

    /// Keeps, of the current plan, exactly the saved steps that are still valid; returns the
    /// refused ones with why. A step is refused when the node's input moved since it was
    /// planned, or the state recorded for it is no longer what it was planned against.
    pub fn narrow(&self, current: &Plan, state: &State) -> (Plan, BTreeMap<Address, String>) {
        let mut refused = BTreeMap::new();
        let mut keep = Vec::new();
        for saved in &self.steps {
            let rec = state.get(&saved.address);
            let now = (rec.map(|r| r.input), rec.map(|r| r.output));
            if now != (saved.prior_input, saved.prior_output) {
                refused.insert(
                    saved.address.clone(),
                    "its recorded state moved since the plan was saved (applied or changed by another run)".to_string(),
                );
                continue;
            }
            let Some(step) = current.step(&saved.address) else {
                refused.insert(
                    saved.address.clone(),
                    "it is no longer part of the plan".into(),
                );
                continue;
            };
            if saved.action == Action::Delete {
                if step.action != Action::Delete {
                    refused.insert(
                        saved.address.clone(),
                        "it is back in the repo: the delete no longer holds".into(),
                    );
                    continue;
                }
            } else if step.input != saved.input {
                refused.insert(
                    saved.address.clone(),
                    "its inputs moved since the plan was saved (`hl plan` shows the new change)"
                        .into(),
                );
                continue;
            }
            let mut s = step.clone();
            s.action = saved.action;
            s.destructive = saved.action.is_destructive();
            keep.push(s);
        }
        // Checks the kept steps need still run.
        let kept: std::collections::BTreeSet<Address> =
            keep.iter().map(|s| s.address.clone()).collect();
        for s in &current.steps {
            if s.action == Action::Check {
                if let Some(hl_engine::Cause::NeededBy { addresses }) = s.causes.first() {
                    if addresses.iter().any(|a| kept.contains(a)) {
                        keep.push(s.clone());
                    }
                }
            }
        }
        keep.sort_by_key(|s| s.layer);
        (
            Plan {
                format_version: current.format_version,
                steps: keep,
            },
            refused,
        )
    }
}
