//! The repo files a compose project reads at run time: bind-mount sources, `env_file`s and
//! top-level `configs`/`secrets` files. They are inputs of the node, so editing
//! `mosquitto.conf` re-deploys mosquitto. Sources outside the project folder are allowed while
//! they stay in the repo; anything that leaves it is refused.

use hl_engine::{Error, Kind, RepoPath};
use serde_json::Value;

use super::facts::Facts;
use crate::{yaml, Ctx};

/// The input files of a merged project whose folder is `dir`.
pub fn inputs(
    ctx: &Ctx,
    facts: &Facts,
    project: &Value,
    dir: &RepoPath,
    compose: &RepoPath,
) -> Result<Vec<RepoPath>, Error> {
    let mut out = Vec::new();
    let services = project.get("services").and_then(Value::as_object);
    for svc in services.into_iter().flat_map(|m| m.values()) {
        for vol in svc
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(src) = bind_source(vol) {
                add_tree(ctx, &resolve(ctx, dir, compose, &src)?, &mut out)?;
            }
        }
        for env in env_files(svc.get("env_file")) {
            if env.starts_with('/') {
                continue; // A host path: it lives on the host, not in the repo.
            }
            let p = resolve(ctx, dir, compose, &env)?;
            if ctx.files.is_file(&p) {
                facts.check_dotenv(&p)?;
                out.push(p);
            }
        }
    }
    for (section, must_be_sops) in [("configs", false), ("secrets", true)] {
        let entries = project.get(section).and_then(Value::as_object);
        for entry in entries.into_iter().flat_map(|m| m.values()) {
            let Some(file) = entry.get("file").and_then(Value::as_str) else {
                continue;
            };
            if file.starts_with('/') {
                continue;
            }
            let p = resolve(ctx, dir, compose, file)?;
            if !ctx.files.is_file(&p) {
                continue;
            }
            if must_be_sops && !facts.is_sops(&p)? {
                return Err(Error::secret(
                    format!("compose secret file {p} is not SOPS-encrypted"),
                    Some(yaml::locate(ctx.files, compose, Some("secrets"), file)),
                    Some(format!("encrypt it: sops --encrypt --in-place {p}")),
                ));
            }
            out.push(p);
        }
    }
    Ok(out)
}

/// The source of a bind mount written relative to the project (`./conf:/etc/x`, or the long
/// form with `type: bind`); named volumes and host paths are not repo files.
fn bind_source(vol: &Value) -> Option<String> {
    let src = match vol {
        Value::String(s) => {
            let (src, _) = s.split_once(':')?;
            src.to_string()
        }
        Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("bind") => {
            m.get("source")?.as_str()?.to_string()
        }
        _ => return None,
    };
    (src.starts_with('.')).then_some(src)
}

fn env_files(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|e| e.as_str().or_else(|| e.get("path").and_then(Value::as_str)))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn resolve(ctx: &Ctx, dir: &RepoPath, compose: &RepoPath, src: &str) -> Result<RepoPath, Error> {
    dir.join(src).map_err(|e| {
        Error::repo(
            format!("{e}: `{src}` in {compose} points outside the repo"),
            Some(yaml::locate(ctx.files, compose, None, src)),
            Some("bind-mount only files kept in the repo (or absolute host paths such as /opt/homelab/...)".into()),
        )
    })
}

/// Adds a file, or every file below a folder (honouring .gitignore, so runtime data folders
/// that are ignored stay out); a symlink that leaves the repo is refused.
fn add_tree(ctx: &Ctx, p: &RepoPath, out: &mut Vec<RepoPath>) -> Result<(), Error> {
    let Some(kind) = ctx.files.kind(p) else {
        // Not in the repo: created on the host at run time (a data folder). Not an input.
        return Ok(());
    };
    // The kind says what a plain file or folder is; only a symlink is followed.
    let file = match kind {
        Kind::File => true,
        Kind::Symlink => {
            ctx.files.check_inside(p)?;
            ctx.files.is_file(p)
        }
        _ => false,
    };
    if file {
        out.push(p.clone());
        return Ok(());
    }
    for entry in ctx.files.walk(p, true)? {
        match entry.kind {
            Kind::Symlink => {
                ctx.files.check_inside(&entry.path)?;
                if ctx.files.is_file(&entry.path) {
                    out.push(entry.path);
                }
            }
            Kind::File => out.push(entry.path),
            _ => {}
        }
    }
    Ok(())
}

/// Points bind mounts that leave the service folder (`../shared/x`) at their copy inside the
/// release (`./_repo/<repo path>`), where realize puts them, so the release is self-contained.
pub fn relocate(project: &mut Value, dir: &RepoPath) {
    let Some(services) = project.get_mut("services").and_then(Value::as_object_mut) else {
        return;
    };
    let inside = |src: &str| -> Option<String> {
        let p = dir.join(src).ok()?;
        (!p.starts_with(dir)).then(|| format!("./_repo/{p}"))
    };
    for svc in services.values_mut() {
        let Some(vols) = svc.get_mut("volumes").and_then(Value::as_array_mut) else {
            continue;
        };
        for vol in vols {
            let Some(src) = bind_source(vol) else {
                continue;
            };
            let Some(moved) = inside(&src) else { continue };
            match vol {
                Value::String(s) => *s = s.replacen(&src, &moved, 1),
                Value::Object(m) => {
                    m.insert("source".into(), Value::String(moved));
                }
                _ => {}
            }
        }
    }
}
