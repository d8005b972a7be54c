//! One run of the engine over a repo: find the root, load, check, hash, plan. Every command
//! that needs a plan goes through [`Session::open`] so they all see the same data.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hl_engine::{
    evaluate, plan, Address, Caches, Error, Evaluation, FileSet, Graph, Node, Origin, Plan,
    Registry, RepoPath, Selector, StatCache, StatKey, StatUpdate, State,
};
use hl_rules::Homelab;

/// Global options.
#[derive(Debug)]
pub struct Options {
    /// `-C DIR`.
    pub repo: Option<PathBuf>,
    /// `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
}

static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// The repo root of this run, once known (error rendering reads source lines from it).
pub fn last_root() -> Option<&'static Path> {
    ROOT.get().map(PathBuf::as_path)
}

/// Records the repo root of this run for error rendering.
pub fn set_root(root: &Path) {
    let _ = ROOT.set(root.to_path_buf());
}

/// A loaded, hashed and planned repo.
pub struct Session {
    /// The repo root.
    pub root: PathBuf,
    /// Its files.
    pub files: Arc<FileSet>,
    /// The homelab (its nodes moved into [`Session::graph`]).
    pub lab: Homelab,
    /// The graph.
    pub graph: Graph,
    /// The rules.
    pub registry: Registry,
    /// The recorded state.
    pub state: State,
    /// The cache.
    pub caches: Caches,
    /// Every node hashed.
    pub eval: Evaluation,
    /// The full plan (before selection).
    pub plan: Plan,
    /// The stat cache as loaded.
    stat: StatCache,
    /// What it learnt this run (files hashed, entries no longer used), to save.
    stat_update: StatUpdate,
    /// What loading learnt, to save.
    learnt: crate::loadcache::Learnt,
    /// The recorded state's files (state.json, its journal) as they were before it was read.
    pub state_seen: Vec<Option<StatKey>>,
    /// Where each record lies in state.json, when it alone holds the state.
    pub state_spans: Option<hl_engine::state::Spans>,
}

/// Which caches on disk hold what a run found, once it saved (see [`Session::save_stat_cache`]).
#[derive(Debug, Clone, Copy)]
pub struct Saved {
    /// The load cache's generation; `None` when it does not hold this run's nodes.
    pub loadcache: Option<u64>,
    /// The stat cache's identity ([`StatCache::identity`]).
    pub statcache: (u64, usize),
}

/// The metadata of the recorded state's files (state.json and its journal), each `None` when
/// absent: what a memo of a plan made from that state is keyed on.
pub fn state_seen(root: &Path) -> Vec<Option<StatKey>> {
    let state = state_path(root);
    [state.clone(), hl_engine::state::journal_path(&state)]
        .iter()
        .map(|p| std::fs::metadata(p).ok().map(|m| StatKey::of(&m)))
        .collect()
}

impl Session {
    /// Finds the repo, loads and checks it, hashes every node and computes the plan. Nothing is
    /// written until all of that succeeded; then only the stat cache (and the content cache).
    pub fn open(opts: &Options) -> Result<Session, Error> {
        Session::open_at(opts, find(opts)?)
    }

    /// [`Session::open`] at a root already found (apply locks the state before it plans).
    pub fn open_at(opts: &Options, root: PathBuf) -> Result<Session, Error> {
        let files = Arc::new(FileSet::new(&root)?);
        Session::open_with(opts, root, files, None, None)
    }

    /// [`Session::open_at`] with the repo's files of this run, the stat cache and the load
    /// cache, when a look at them was made already (the plan memo's check): what was statted or
    /// read then is not again.
    pub fn open_with(
        opts: &Options,
        root: PathBuf,
        files: Arc<FileSet>,
        stat: Option<StatCache>,
        loadcache: Option<crate::loadcache::Previous>,
    ) -> Result<Session, Error> {
        set_root(&root);
        // The state and the stat cache are parsed while the loaders' view is checked: neither
        // depends on the other, and each is mostly one thread's work.
        // Before the state is read: a state written meanwhile then shows as changed.
        let state_seen = state_seen(&root);
        let (state, stat, found) = std::thread::scope(|s| {
            let state = s.spawn(|| phase("state", || State::load_indexed(&state_path(&root))));
            let stat = s.spawn(|| {
                phase("statcache", || {
                    stat.unwrap_or_else(|| StatCache::load(&hl_dir(&root).join("statcache")))
                })
            });
            let found = phase("discover", || {
                crate::loadcache::discover(&files, &hl_dir(&root), loadcache)
            });
            (
                state.join().expect("loading the state does not panic"),
                stat.join().expect("loading the stat cache does not panic"),
                found,
            )
        });
        let (state, state_spans) = state?;
        let (discovered, learnt) = found?;
        // Recorded but gone from the repo: their deletion needs its runway too.
        let present: std::collections::HashSet<&hl_engine::Address> =
            discovered.nodes.iter().map(|n| &n.address).collect();
        let removed: Vec<Node> = state
            .nodes
            .iter()
            .filter(|(a, _)| !present.contains(a))
            .map(|(a, r)| {
                Ok(Node {
                    address: a.clone(),
                    layer: r.layer,
                    params: r.params.get()?.clone().into(),
                    files: Vec::new(),
                    edges: Vec::new(),
                    labels: r.labels.clone(),
                    origin: Origin::file(RepoPath::new(".hl/state.json").expect("a valid path")),
                })
            })
            .collect::<Result<_, Error>>()?;
        let mut lab = phase("finish", || hl_rules::finish(&files, discovered, &removed))?;
        hl_rules::check::environment_guard(&lab.topology, std::env::var("HL_ENV").ok().as_deref())?;
        for note in &lab.notes {
            eprintln!("note: {note}");
        }
        let graph = phase("graph", || Graph::build(std::mem::take(&mut lab.nodes)))?;
        let registry = hl_rules::registry();
        let caches = Caches::open(&cache_dir(opts))?;
        let (eval, stat_update) = phase("evaluate", || {
            evaluate::evaluate(&graph, &registry, &files, &stat, &caches, &state)
        })?;
        let plan = phase("plan", || {
            plan::compute(&graph, &registry, &eval, &state, &lab.removed_needs)
        })?;
        Ok(Session {
            state_seen,
            state_spans,
            stat,
            stat_update,
            learnt,
            root,
            files,
            lab,
            graph,
            registry,
            state,
            caches,
            eval,
            plan,
        })
    }

    /// Saves what this run learnt about file hashes, when it learnt anything. Commands call
    /// it once their own checks of the request passed, so a refused command writes nothing.
    /// The load cache (with its facts) and the stat cache are written side by side: neither
    /// depends on the other, and each is mostly one thread's encoding and copying.
    pub fn save_stat_cache(&self) -> Result<Saved, Error> {
        let (loadcache, statcache) = rayon::join(
            || self.save_load_cache(),
            || {
                if self.stat_update.is_empty() {
                    Ok(self.stat.identity())
                } else {
                    ensure_hl_dir(&self.root)?;
                    self.stat
                        .save(&hl_dir(&self.root).join("statcache"), &self.stat_update)
                }
            },
        );
        loadcache?;
        Ok(Saved {
            loadcache: self.loadcache_generation(),
            statcache: statcache?,
        })
    }

    /// The load cache's generation once this run saved it: `None` when it does not hold this
    /// run's nodes.
    pub fn loadcache_generation(&self) -> Option<u64> {
        self.learnt.generation
    }

    fn save_load_cache(&self) -> Result<(), Error> {
        if let Some(bytes) = &self.learnt.loadcache {
            ensure_hl_dir(&self.root)?;
            // Facts first: a load cache is never newer than the facts it was loaded with.
            for (kind, facts) in &self.learnt.facts {
                let path = crate::loadcache::facts_path(&hl_dir(&self.root), kind);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
                }
                hl_cache::write_cached(&path, facts)?;
            }
            hl_cache::write_cached(&hl_dir(&self.root).join("loadcache"), bytes)?;
            hl_engine::journal::clear(&crate::loadcache::journal_path(&hl_dir(&self.root)));
        } else if let Some((generation, record)) = &self.learnt.journal {
            hl_engine::journal::append(
                &crate::loadcache::journal_path(&hl_dir(&self.root)),
                *generation,
                record,
            )?;
        }
        Ok(())
    }

    /// The plan narrowed to a selection (checked: an unknown `--target` is an error).
    pub fn selected_plan(&self, selector: &Selector) -> Result<Plan, Error> {
        let mut plan = self.plan.clone();
        if selector.is_empty() {
            return Ok(plan);
        }
        let mut known: Vec<&Address> = self.graph.addresses();
        known.extend(self.state.nodes.keys());
        selector.check_targets(&known)?;
        let keep = selector.select(&self.graph, &self.plan, |a| {
            self.state
                .get(a)
                .map(|r| r.labels.clone())
                .unwrap_or_default()
        });
        plan.retain(&keep);
        Ok(plan)
    }

    /// The node at an address that must still be in the repo.
    pub fn node(&self, addr: &Address) -> Result<&Node, Error> {
        self.graph
            .get(addr)
            .ok_or_else(|| Error::repo(format!("{addr} is no longer in the repo"), None, None))
    }

    /// Parses an address given on the command line, with a did-you-mean when it names no node.
    pub fn address(&self, text: &str) -> Result<Address, Error> {
        let addr: Address = text.parse().map_err(|e: String| {
            Error::repo(
                e,
                None,
                Some("addresses look like compose:mosquitto@SATURN".into()),
            )
        })?;
        if self.graph.contains(&addr) || self.state.get(&addr).is_some() {
            return Ok(addr);
        }
        let mut known = self.graph.addresses();
        known.extend(self.state.nodes.keys());
        let suggestion = hl_engine::graph::did_you_mean(&addr, known);
        Err(Error::repo(
            format!("no node `{addr}`"),
            None,
            Some(match suggestion {
                Some(s) => format!("did you mean `{s}`?"),
                None => "`hl graph` lists every address".into(),
            }),
        ))
    }
}

/// Runs one phase of a session inside a span, so `HL_LOG=hl=info` prints where the time went.
pub fn phase<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let out = {
        let _span = tracing::info_span!("phase", name).entered();
        f()
    };
    tracing::info!(
        phase = name,
        ms = start.elapsed().as_secs_f64() * 1e3,
        "done"
    );
    out
}

/// Finds the homelab root from `-C` or the current directory.
pub fn find(opts: &Options) -> Result<PathBuf, Error> {
    let start = match &opts.repo {
        Some(p) => p.clone(),
        None => std::env::current_dir().map_err(|e| Error::io("cannot read", ".", e))?,
    };
    hl_rules::find_root(&start).ok_or_else(|| Error::Environment {
        message: format!(
            "{} is not inside a homelab repo (no inventory/topology.yaml or hl.yaml above it)",
            start.display()
        ),
        help: Some(
            "run hl in your homelab repo or pass -C DIR; docs/layout.md shows the layout".into(),
        ),
    })
}

/// `.hl/` at the repo root.
pub fn hl_dir(root: &Path) -> PathBuf {
    root.join(".hl")
}

/// `.hl/state.json`.
pub fn state_path(root: &Path) -> PathBuf {
    hl_dir(root).join("state.json")
}

/// Creates `.hl/` with a `.gitignore` of its own, so no repo has to remember to ignore it.
pub fn ensure_hl_dir(root: &Path) -> Result<(), Error> {
    let dir = hl_dir(root);
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        let ignore = dir.join(".gitignore");
        std::fs::write(&ignore, "*\n").map_err(|e| Error::io("cannot write", &ignore, e))?;
    }
    Ok(())
}

/// The cache folder: `--cache-dir`, `HL_CACHE_DIR`, `$XDG_CACHE_HOME/hl`, `~/.cache/hl`.
pub fn cache_dir(opts: &Options) -> PathBuf {
    if let Some(d) = &opts.cache_dir {
        return d.clone();
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("hl");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache/hl"),
        None => std::env::temp_dir().join("hl-cache"),
    }
}
