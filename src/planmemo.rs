//! The plan memo: `.hl/planmemo`, the last plan with what it was made of, so that `hl plan`
//! on a repo where nothing moved stats its files and prints, as ninja does on a no-op build,
//! instead of decoding every node, hashing them and comparing them with the state again (most
//! of a no-op plan's time on a large homelab).
//!
//! A plan is a function of the nodes the loaders find, the digests of their input files, the
//! recorded state, the rules (this binary), and for expensive nodes not yet built, whether the
//! action cache knows their output. The memo holds the plan with each of those identified:
//! the load cache's generation (every unit of it must still hold), the stat cache's identity
//! (every entry must still match its file), the state files' metadata, the binary, and the
//! action-cache answer for each such node. When only input files moved, the memo's plan is
//! patched for them ([`crate::planpatch`]); anything else moved, and the plan is made again.
//! Only the steps renderers show are kept, each with its node's place in the whole plan.

use std::path::Path;
use std::sync::Arc;

use hl_engine::{Caches, Digest, Error, FileSet, Input, Plan, StatCache, StatKey};
use serde::{Deserialize, Serialize};

use crate::session::{cache_dir, hl_dir, phase, Options, Saved, Session};

const FORMAT: u32 = 3;

#[derive(Serialize, Deserialize)]
struct Memo {
    format: u32,
    build: String,
    /// The load cache the nodes came from.
    loadcache: u64,
    /// The stat cache the file digests came from.
    statcache: (u64, usize),
    /// The state's files when read.
    state: Vec<Option<StatKey>>,
    /// Expensive nodes whose output the action cache gave (or did not): (input, known).
    builds: Vec<(Digest<Input>, bool)>,
    /// The number of nodes (for `--stats`).
    nodes: usize,
    /// The inventory's environment (for `HL_ENV` and the JSON view).
    environment: Option<String>,
    /// The loaders' notes.
    notes: Vec<String>,
    /// The plan's shown steps.
    plan: Plan,
    /// The place of each shown step's node in the whole plan ([`crate::planpatch::GONE`] for
    /// a delete).
    places: Vec<u32>,
    /// The id of the plan's [`crate::planindex::Evals`], when they were written.
    index: Option<u64>,
}

/// A plan recalled from the memo.
pub struct Recalled {
    /// The plan (shown steps only).
    pub plan: Plan,
    /// The number of nodes.
    pub nodes: usize,
    /// The inventory's environment.
    pub environment: Option<String>,
    /// The loaders' notes.
    pub notes: Vec<String>,
    /// The files, with the work the check did.
    pub files: Arc<FileSet>,
    /// When some files had moved: the number of nodes evaluated again to patch the plan.
    pub patched: Option<usize>,
}

fn path(root: &Path) -> std::path::PathBuf {
    hl_dir(root).join("planmemo")
}

/// What a look that found something moved leaves for making the plan: the files with their
/// stats, and the stat cache when it was loaded.
pub struct Missed {
    /// The repo's files, with what was statted.
    pub files: Arc<FileSet>,
    /// The stat cache, if loaded.
    pub stat: Option<StatCache>,
    /// The load cache, if read.
    pub loadcache: Option<crate::loadcache::Previous>,
}

/// What a look at the memo found.
enum Look {
    /// Nothing it was made of moved.
    Hit(Memo),
    /// Only these input files moved (and what held although it moved, for the load cache's
    /// journal): the plan can be patched.
    Moved(Memo, Vec<hl_engine::RepoPath>, Option<(u64, Vec<u8>)>),
    /// The plan is made again.
    Miss,
}

/// The memo's plan for the repo at `root` when nothing it was made of moved, or patched when
/// only input files did (see [`crate::planpatch`]).
pub fn recall(opts: &Options, root: &Path) -> Result<Result<Recalled, Missed>, Error> {
    let files = Arc::new(FileSet::new(root)?);
    Ok(phase("memo", || {
        let (mut stat, mut loadcache) = (None, None);
        let look = look(opts, root, &files, &mut stat, &mut loadcache);
        let recalled = |m: Memo, patched| Recalled {
            plan: m.plan,
            nodes: m.nodes,
            environment: m.environment,
            notes: m.notes,
            files: files.clone(),
            patched,
        };
        match look {
            Look::Hit(m) => {
                tracing::info!("nothing moved: the plan of .hl/planmemo");
                return Ok(recalled(m, None));
            }
            Look::Moved(m, moved, held) => {
                let stat = stat
                    .as_ref()
                    .expect("a look that found moved files loaded the stat cache");
                if let Some((m, evaluated)) = phase("patch", || {
                    patched(opts, root, &files, stat, m, &moved, held)
                }) {
                    tracing::info!(
                        evaluated,
                        "{} files moved: .hl/planmemo patched for them",
                        moved.len()
                    );
                    return Ok(recalled(m, Some(evaluated)));
                }
            }
            Look::Miss => {}
        }
        Err(Missed {
            files: files.clone(),
            stat,
            loadcache,
        })
    }))
}

/// The memo with the plan patched for the moved files, once what it learnt is saved: the
/// stat cache, the load cache's journal, the action cache, the index and the memo.
fn patched(
    opts: &Options,
    root: &Path,
    files: &FileSet,
    stat: &StatCache,
    mut memo: Memo,
    moved: &[hl_engine::RepoPath],
    held: Option<(u64, Vec<u8>)>,
) -> Option<(Memo, usize)> {
    let hl = hl_dir(root);
    let evals = crate::planindex::Evals::read(&hl).filter(|e| Some(e.id) == memo.index)?;
    let caches = Caches::open(&cache_dir(opts)).ok()?;
    let patch = crate::planpatch::patch(
        root,
        files,
        &caches,
        stat,
        (&memo.plan, &memo.places),
        evals,
        moved,
    );
    // Actions of nodes realized are kept even when the patch gave up.
    caches.actions.flush().ok()?;
    let mut patch = patch?;
    crate::session::ensure_hl_dir(root).ok()?;
    if let Some((generation, record)) = held {
        hl_engine::journal::append(&crate::loadcache::journal_path(&hl), generation, &record)
            .ok()?;
    }
    memo.statcache = if patch.update.is_empty() {
        stat.identity()
    } else {
        stat.save(&hl.join("statcache"), &patch.update).ok()?
    };
    for (before, now) in patch.builds {
        memo.builds.retain(|(input, _)| *input != before);
        memo.builds.extend(now);
    }
    memo.index = patch.evals.write(&hl);
    memo.plan = patch.plan;
    memo.places = patch.places;
    write(root, &memo);
    Some((memo, patch.evaluated))
}

/// Writes the memo; one that cannot be written is only work lost.
fn write(root: &Path, memo: &Memo) {
    if let Ok(bytes) = rmp_serde::to_vec_named(memo) {
        let _ = hl_cache::write_cached(&path(root), &bytes);
    }
}

/// What the memo says of the repo as it is now; the stat cache and the load cache are left in
/// `stat` and `loadcache` when read.
fn look(
    opts: &Options,
    root: &Path,
    files: &FileSet,
    stat: &mut Option<StatCache>,
    loadcache: &mut Option<crate::loadcache::Previous>,
) -> Look {
    let Some(memo) = std::fs::read(path(root))
        .ok()
        .and_then(|b| rmp_serde::from_slice::<Memo>(&b).ok())
    else {
        return Look::Miss;
    };
    if memo.format != FORMAT
        || memo.build != crate::loadcache::build_id()
        || memo.state != crate::session::state_seen(root)
    {
        return Look::Miss;
    }
    let hl = hl_dir(root);
    // The load cache first: the paths it stats are most of what a plan made again stats, and
    // are not statted again.
    let previous = loadcache.insert(crate::loadcache::previous(&hl));
    let held = match crate::loadcache::holds(files, previous) {
        Some((generation, held)) if generation == memo.loadcache => {
            held.map(|record| (generation, record))
        }
        _ => return Look::Miss,
    };
    let loaded = stat.insert(StatCache::load(&hl.join("statcache")));
    if loaded.identity() != memo.statcache {
        return Look::Miss;
    }
    let moved = files.stat_misses(loaded);
    if !memo.builds.is_empty() {
        let Ok(caches) = Caches::open(&cache_dir(opts)) else {
            return Look::Miss;
        };
        for (input, known) in &memo.builds {
            let now = matches!(
                caches.actions.get(input.bytes()),
                Ok(hl_cache::Fetched::Hit(_))
            );
            if now != *known {
                return Look::Miss;
            }
        }
    }
    if moved.is_empty() && held.is_none() {
        Look::Hit(memo)
    } else if memo.index.is_some() {
        Look::Moved(memo, moved, held)
    } else {
        Look::Miss
    }
}

/// Writes what patching the plan of a session needs ([`crate::planindex`]), before its caches
/// are saved or while they are (it depends on the load cache's generation alone): the id of
/// the evaluations written, or `None`.
pub fn index(session: &Session) -> Option<u64> {
    let loadcache = session.loadcache_generation()?;
    let key = crate::planindex::nodes_key(
        &crate::loadcache::build_id(),
        loadcache,
        &session.lab.removed_needs,
    );
    crate::planindex::keep(
        &hl_dir(&session.root),
        key,
        &session.graph,
        &session.eval,
        &session.plan,
        &session.state,
        session.state_spans.as_ref(),
    )
}

/// Keeps the plan of a session that saved its caches as `saved`, with its [`index`]; nothing
/// when the load cache does not hold this run's nodes. A memo that cannot be written is only
/// work lost.
pub fn keep(session: &Session, saved: Saved, index: Option<u64>) {
    let Some(loadcache) = saved.loadcache else {
        let _ = std::fs::remove_file(path(&session.root));
        return;
    };
    let builds = session
        .graph
        .nodes()
        .filter(|n| {
            session
                .registry
                .rule(n.address.kind())
                .is_ok_and(|r| !r.cheap())
        })
        .filter_map(|n| {
            let ev = session.eval.get(&n.address)?;
            // A node the state records with this very input never asks the action cache.
            let recorded = session
                .state
                .get(&n.address)
                .is_some_and(|r| r.input == ev.input);
            (!recorded).then_some((ev.input, ev.built))
        })
        .collect();
    let place = crate::planindex::places(&session.graph, &session.plan);
    let mut plan = session.plan.clone();
    plan.steps.retain(crate::render::visible);
    let places = plan
        .steps
        .iter()
        .map(|s| {
            place
                .get(&s.address)
                .copied()
                .unwrap_or(crate::planpatch::GONE)
        })
        .collect();
    let memo = Memo {
        format: FORMAT,
        build: crate::loadcache::build_id(),
        loadcache,
        statcache: saved.statcache,
        state: session.state_seen.clone(),
        builds,
        nodes: session.graph.len(),
        environment: session.lab.topology.environment.clone(),
        notes: session.lab.notes.clone(),
        plan,
        places,
        index,
    };
    write(&session.root, &memo);
}
