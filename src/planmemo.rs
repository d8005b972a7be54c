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
//! action-cache answer for each such node. Any of them moved, and the plan is made again.
//! Only the steps renderers show are kept.

use std::path::Path;
use std::sync::Arc;

use hl_engine::{Caches, Digest, Error, FileSet, Input, Plan, StatCache, StatKey};
use serde::{Deserialize, Serialize};

use crate::session::{cache_dir, hl_dir, phase, Options, Saved, Session};

const FORMAT: u32 = 1;

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

/// The memo's plan for the repo at `root` when nothing it was made of moved.
pub fn recall(opts: &Options, root: &Path) -> Result<Result<Recalled, Missed>, Error> {
    let files = Arc::new(FileSet::new(root)?);
    Ok(phase("memo", || {
        let (mut stat, mut loadcache) = (None, None);
        let hit = check(opts, root, &files, &mut stat, &mut loadcache);
        match hit {
            Some(m) => {
                tracing::info!("nothing moved: the plan of .hl/planmemo");
                Ok(Recalled {
                    plan: m.plan,
                    nodes: m.nodes,
                    environment: m.environment,
                    notes: m.notes,
                    files: files.clone(),
                })
            }
            None => Err(Missed {
                files,
                stat,
                loadcache,
            }),
        }
    }))
}

/// The memo, when nothing it was made of moved; the stat cache and the load cache are left in
/// `stat` and `loadcache` when read.
fn check(
    opts: &Options,
    root: &Path,
    files: &FileSet,
    stat: &mut Option<StatCache>,
    loadcache: &mut Option<crate::loadcache::Previous>,
) -> Option<Memo> {
    let memo: Memo = rmp_serde::from_slice(&std::fs::read(path(root)).ok()?).ok()?;
    if memo.format != FORMAT
        || memo.build != crate::loadcache::build_id()
        || memo.state != crate::session::state_seen(root)
    {
        return None;
    }
    let hl = hl_dir(root);
    // The load cache first: the paths it stats are most of what a plan made again stats, and
    // are not statted again.
    let previous = loadcache.insert(crate::loadcache::previous(&hl));
    if crate::loadcache::unchanged(files, previous) != Some(memo.loadcache) {
        return None;
    }
    let loaded = stat.insert(StatCache::load(&hl.join("statcache")));
    if loaded.identity() != memo.statcache || !files.all_hit(loaded) {
        return None;
    }
    if !memo.builds.is_empty() {
        let caches = Caches::open(&cache_dir(opts)).ok()?;
        for (input, known) in &memo.builds {
            let now = matches!(
                caches.actions.get(input.bytes()),
                Ok(hl_cache::Fetched::Hit(_))
            );
            if now != *known {
                return None;
            }
        }
    }
    Some(memo)
}

/// Keeps the plan of a session that saved its caches as `saved`; nothing when the load cache
/// does not hold this run's nodes. A memo that cannot be written is only work lost.
pub fn keep(session: &Session, saved: Saved) {
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
    let mut plan = session.plan.clone();
    plan.steps.retain(crate::render::visible);
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
    };
    if let Ok(bytes) = rmp_serde::to_vec_named(&memo) {
        let _ = hl_cache::write_cached(&path(&session.root), &bytes);
    }
}
