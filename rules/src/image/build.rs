//! Building an image, for `hl apply` and `hl build` (never during plan: images are expensive).
//!
//! `builder: qemu-img` makes a disk: from a base image (`base.path` in the repo, or `base.url`
//! fetched with curl and checked against `base.sha256`/`base.sha512`) converted to `format`,
//! or a blank disk, then grown to `size_gb`. `builder: command` runs the recipe's argv in a
//! scratch folder (the recipe's folder is `$HL_RECIPE_DIR`) and takes `output` from it. The
//! recipe's `files` (cloud-init data) travel with the disk under `seed/`.

use std::path::Path;
use std::process::Command;

use hl_engine::{Artifact, Error, Node, RealizeCtx, RepoPath};
use serde_json::Value;

fn run(node: &Node, argv: &[&str], cwd: &Path, env: &[(&str, &Path)]) -> Result<(), Error> {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| Error::Environment {
        message: format!("{}: cannot run `{}`: {e}", node.address, argv[0]),
        help: Some(format!(
            "install {} (`hl check` lists what a plan needs)",
            argv[0]
        )),
    })?;
    if !out.status.success() {
        return Err(Error::Environment {
            message: format!(
                "{}: `{}` failed ({}): {}",
                node.address,
                argv.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            help: None,
        });
    }
    Ok(())
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Builds the image of a recipe node.
pub fn build(node: &Node, ctx: &RealizeCtx<'_>) -> Result<Artifact, Error> {
    let scratch = tempfile::Builder::new()
        .prefix("hl-image-")
        .tempdir()
        .map_err(|e| Error::io("cannot create a scratch folder", std::env::temp_dir(), e))?;
    let dir = scratch.path();
    let p = &node.params;
    let recipe_dir = node.origin.path.parent();
    let mut art = Artifact::default();
    match text(p, "builder").unwrap_or("qemu-img") {
        "command" => {
            let argv: Vec<&str> = p
                .get("command")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if argv.is_empty() {
                return Err(Error::repo(
                    format!("{}: `command` is empty", node.address),
                    Some(node.origin.clone()),
                    None,
                ));
            }
            let output = text(p, "output").ok_or_else(|| {
                Error::repo(
                    format!("{}: a command recipe needs `output`", node.address),
                    Some(node.origin.clone()),
                    None,
                )
            })?;
            let out_rel = RepoPath::new(output).map_err(|e| {
                Error::repo(
                    format!("{}: output: {e}", node.address),
                    Some(node.origin.clone()),
                    None,
                )
            })?;
            run(
                node,
                &argv,
                dir,
                &[("HL_RECIPE_DIR", &ctx.files.abs(&recipe_dir))],
            )?;
            let bytes = std::fs::read(dir.join(out_rel.as_str())).map_err(|e| {
                Error::io("cannot read the built image", dir.join(out_rel.as_str()), e)
            })?;
            art.files.insert(out_rel.file_name().to_string(), bytes);
        }
        _ => {
            let format = text(p, "format").unwrap_or("qcow2");
            let disk = format!("disk.{format}");
            let base = p.get("base");
            let base_file = match (
                base.and_then(|b| text(b, "path")),
                base.and_then(|b| text(b, "url")),
            ) {
                (Some(path), _) => {
                    let rp = recipe_dir.join(path).map_err(|e| {
                        Error::repo(
                            format!("{}: base.path: {e}", node.address),
                            Some(node.origin.clone()),
                            None,
                        )
                    })?;
                    std::fs::write(dir.join("base"), ctx.files.read(&rp)?.as_slice())
                        .map_err(|e| Error::io("cannot write", dir.join("base"), e))?;
                    Some("base")
                }
                (None, Some(url)) => {
                    run(
                        node,
                        &["curl", "-fsSL", "--retry", "2", "-o", "base", "--", url],
                        dir,
                        &[],
                    )?;
                    verify_checksum(node, base.expect("base is set"), dir)?;
                    Some("base")
                }
                (None, None) => None,
            };
            match base_file {
                Some(b) => run(
                    node,
                    &["qemu-img", "convert", "-O", format, b, &disk],
                    dir,
                    &[],
                )?,
                None => {
                    let size =
                        format!("{}G", p.get("size_gb").and_then(Value::as_u64).unwrap_or(8));
                    run(
                        node,
                        &["qemu-img", "create", "-q", "-f", format, &disk, &size],
                        dir,
                        &[],
                    )?;
                }
            }
            if let (Some(_), Some(gb)) = (base_file, p.get("size_gb").and_then(Value::as_u64)) {
                run(
                    node,
                    &["qemu-img", "resize", "-q", &disk, &format!("{gb}G")],
                    dir,
                    &[],
                )?;
            }
            let bytes = std::fs::read(dir.join(&disk))
                .map_err(|e| Error::io("cannot read the built image", dir.join(&disk), e))?;
            art.files.insert(disk, bytes);
        }
    }
    for f in &node.files {
        art.files.insert(
            format!("seed/{}", f.file_name()),
            ctx.files.read(f)?.to_vec(),
        );
    }
    Ok(art)
}

/// Checks a downloaded base against the recipe's checksum with the system's sha256sum or
/// sha512sum (a recipe without one is trusted as fetched, and `hl build --check` can tell).
fn verify_checksum(node: &Node, base: &Value, dir: &Path) -> Result<(), Error> {
    for (key, tool) in [("sha256", "sha256sum"), ("sha512", "sha512sum")] {
        let Some(want) = text(base, key) else {
            continue;
        };
        let out = Command::new(tool)
            .arg("base")
            .current_dir(dir)
            .output()
            .map_err(|e| Error::Environment {
                message: format!("{}: cannot run {tool}: {e}", node.address),
                help: None,
            })?;
        let got = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        if !got.eq_ignore_ascii_case(want) {
            return Err(Error::Environment {
                message: format!(
                    "{}: the downloaded base image has {key} {got}, the recipe says {want}",
                    node.address
                ),
                help: Some("the download is corrupt or the recipe is out of date".into()),
            });
        }
    }
    Ok(())
}
