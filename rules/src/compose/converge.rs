//! Converging a compose service on its host: the release goes to
//! `<runtime_root>/releases/<svc>/<output digest>/` (content-addressed, uploaded atomically),
//! `current` is switched to it atomically (the one before is kept as `previous`, for
//! rollback), then `docker compose up -d --remove-orphans` runs in it (or `docker-compose` where
//! the v2 plugin is absent), then the service's healthcheck. Each remote script is a constant
//! of hl's; the service's names and paths reach it as positional parameters only.

use hl_engine::{ApplyCtx, JobError, Node, Observed, Transport};
use serde_json::Value;

/// Switches `current` to the release named `$2` inside the releases folder `$1`.
const SWITCH: &str = r#"set -e
cd "$1"
cur=$(readlink current 2>/dev/null || true)
if [ "$cur" != "$2" ]; then
  if [ -n "$cur" ]; then ln -sfn "$cur" previous.tmp && mv -fT previous.tmp previous; fi
  ln -sfn "$2" current.tmp && mv -fT current.tmp current
fi"#;

/// Runs compose in the release `$1` for project `$2`, with the host's env file `$3` when it
/// exists, then the compose arguments.
const COMPOSE: &str = r#"set -e
dir="$1"; project="$2"; envfile="$3"; shift 3
set -- -p "$project" --project-directory "$dir" -f "$dir/compose.yaml" "$@"
if [ -f "$envfile" ]; then set -- --env-file "$envfile" "$@"; fi
if docker compose version >/dev/null 2>&1; then exec docker compose "$@"
elif command -v docker-compose >/dev/null 2>&1; then exec docker-compose "$@"
else echo "neither \`docker compose\` nor \`docker-compose\` is installed on this host" >&2; exit 127
fi"#;

/// Prints the `current` release and the project's containers (`name state`).
const OBSERVE: &str = r#"readlink "$1/current" 2>/dev/null || echo -
docker ps -a --filter "label=com.docker.compose.project=$2" --format '{{.Names}} {{.State}}'"#;

/// Swaps `current` and `previous` in the releases folder `$1`; prints the new current.
const ROLLBACK: &str = r#"set -e
cd "$1"
prev=$(readlink previous 2>/dev/null) || { echo "no previous release to roll back to" >&2; exit 3; }
cur=$(readlink current)
ln -sfn "$cur" previous.tmp && mv -fT previous.tmp previous
ln -sfn "$prev" current.tmp && mv -fT current.tmp current
echo "$prev""#;

/// Runs the release's healthcheck in its folder.
const HEALTH: &str = r#"cd "$1" || exit 1
[ -f healthcheck.sh ] || exit 0
exec sh ./healthcheck.sh"#;

/// Takes the project down and removes its releases.
const DOWN: &str = r#"set -e
dir="$1"; project="$2"
if [ -d "$dir/current" ]; then
  if docker compose version >/dev/null 2>&1; then docker compose -p "$project" --project-directory "$dir/current" -f "$dir/current/compose.yaml" down --remove-orphans
  else docker-compose -p "$project" --project-directory "$dir/current" -f "$dir/current/compose.yaml" down --remove-orphans; fi
fi
rm -rf "$dir""#;

struct Place {
    project: String,
    releases: String,
    env_file: String,
}

fn place(node: &Node) -> Result<Place, JobError> {
    let get = |k: &str| {
        node.params
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let project =
        get("project").ok_or_else(|| JobError::failed(format!("{}: no project", node.address)))?;
    let root = get("runtime_root").unwrap_or_else(|| "/opt/homelab".into());
    Ok(Place {
        releases: format!("{root}/releases/{project}"),
        env_file: format!("{root}/config/{project}/.env"),
        project,
    })
}

fn compose(
    t: &Transport,
    p: &Place,
    ctx: &ApplyCtx<'_>,
    dir: &str,
    args: &[&str],
) -> Result<(), JobError> {
    let mut argv = vec![
        "sh",
        "-c",
        COMPOSE,
        "hl-compose",
        dir,
        &p.project,
        &p.env_file,
    ];
    argv.extend_from_slice(args);
    t.run(&argv, None, ctx.timeout)?;
    Ok(())
}

/// Uploads the release, switches `current` to it and brings the project up.
pub fn up(node: &Node, ctx: &ApplyCtx<'_>) -> Result<(), JobError> {
    let t = ctx.transport(node)?;
    let p = place(node)?;
    let (Some(art), Some(out)) = (ctx.artifact, ctx.output) else {
        return Err(JobError::failed(format!(
            "{}: nothing to converge to",
            node.address
        )));
    };
    let name = out.hex();
    ctx.say(format!("uploading release {}", out.short()));
    t.upload(&art.files, &format!("{}/{name}", p.releases), ctx.timeout)?;
    ctx.say("switching current");
    t.run(
        &["sh", "-c", SWITCH, "hl-switch", &p.releases, &name],
        None,
        ctx.timeout,
    )?;
    ctx.say("docker compose up");
    compose(
        t,
        &p,
        ctx,
        &format!("{}/current", p.releases),
        &["up", "-d", "--remove-orphans"],
    )
}

/// Runs the release's healthcheck, when it has one; a failure says which check and what it
/// printed.
pub fn healthcheck(node: &Node, ctx: &ApplyCtx<'_>) -> Result<(), JobError> {
    if ctx
        .artifact
        .is_some_and(|a| !a.files.contains_key("healthcheck.sh"))
    {
        return Ok(());
    }
    let t = ctx.transport(node)?;
    let p = place(node)?;
    ctx.say("healthcheck");
    let out = t.run_status(
        &[
            "sh",
            "-c",
            HEALTH,
            "hl-health",
            &format!("{}/current", p.releases),
        ],
        None,
        ctx.timeout,
    )?;
    if out.code == 0 {
        return Ok(());
    }
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tail: Vec<&str> = printed.trim().lines().rev().take(10).collect();
    Err(JobError::healthcheck(format!(
        "healthcheck healthcheck.sh of {} failed on {} (exit {}): {}",
        p.project,
        t.host(),
        out.code,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )))
}

/// Takes the project down and removes its releases.
pub fn down(node: &Node, ctx: &ApplyCtx<'_>) -> Result<(), JobError> {
    let t = ctx.transport(node)?;
    let p = place(node)?;
    ctx.say("docker compose down");
    t.run(
        &["sh", "-c", DOWN, "hl-down", &p.releases, &p.project],
        None,
        ctx.timeout,
    )?;
    Ok(())
}

/// Reads the `current` release and the containers' state: drift is a release other than the
/// recorded one, or a container that is not running.
pub fn observe(node: &Node, ctx: &ApplyCtx<'_>) -> Result<Observed, JobError> {
    let t = ctx.transport(node)?;
    let p = place(node)?;
    let out = t.run(
        &["sh", "-c", OBSERVE, "hl-observe", &p.releases, &p.project],
        None,
        ctx.timeout,
    )?;
    let text = out.text();
    let mut lines = text.lines();
    let current = lines.next().unwrap_or("-").trim().to_string();
    let containers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(n, s)| (n.to_string(), s.trim().to_string()))
        })
        .collect();
    if current == "-" && containers.is_empty() {
        return Ok(Observed::Absent);
    }
    if let Some(want) = ctx.output {
        if current != want.hex() {
            let short = &current[..current.len().min(12)];
            return Ok(Observed::Drifted {
                what: format!(
                    "the host runs release {short}, not the recorded {}",
                    want.short()
                ),
            });
        }
    }
    if containers.is_empty() {
        return Ok(Observed::Drifted {
            what: "no container of the project exists".into(),
        });
    }
    let stopped: Vec<String> = containers
        .iter()
        .filter(|(_, s)| s != "running")
        .map(|(n, s)| format!("{n} is {s}"))
        .collect();
    if !stopped.is_empty() {
        return Ok(Observed::Drifted {
            what: stopped.join(", "),
        });
    }
    Ok(Observed::Matches)
}

/// Switches `current` back to `previous` and brings the project up again; returns the release
/// now running.
pub fn rollback(node: &Node, ctx: &ApplyCtx<'_>) -> Result<String, JobError> {
    let t = ctx.transport(node)?;
    let p = place(node)?;
    ctx.say("switching current back to previous");
    let now = t
        .run(
            &["sh", "-c", ROLLBACK, "hl-rollback", &p.releases],
            None,
            ctx.timeout,
        )?
        .text();
    compose(
        t,
        &p,
        ctx,
        &format!("{}/current", p.releases),
        &["up", "-d", "--remove-orphans"],
    )?;
    healthcheck(
        node,
        &ApplyCtx {
            artifact: None,
            ..*ctx
        },
    )?;
    Ok(now)
}
