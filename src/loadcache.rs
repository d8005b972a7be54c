//! The load cache: `.hl/loadcache`, what the loaders found last time and every path whose
//! state they depended on (files read, paths probed, folders listed or walked, the .gitignore
//! files that shaped the walks). When all of those are as they were, loading is skipped: a
//! no-op plan of a large homelab then stats files and parses none, as ninja does with its
//! manifest. The cache is tied to the hl binary that wrote it, since the loaders are code.

use std::path::Path;

use hl_engine::{Error, FileSet, RepoPath, Seen};
use hl_rules::Discovered;
use serde::{Deserialize, Serialize};

const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct LoadCache {
    format: u32,
    build: String,
    seen: Vec<(RepoPath, Seen)>,
    discovered: Discovered,
}

/// This binary's identity: its version and the size and mtime of its executable.
fn build_id() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::metadata(p).ok());
    let stamp = exe
        .map(|m| {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            format!("{}:{}", m.len(), t.map_or(0, |d| d.as_nanos()))
        })
        .unwrap_or_default();
    format!("{}:{stamp}", env!("CARGO_PKG_VERSION"))
}

/// What the loaders find, from the cache when nothing they depended on moved. Returns the
/// bytes of a new cache to save when loading ran (and its view can be trusted).
pub fn discover(files: &FileSet, path: &Path) -> Result<(Discovered, Option<Vec<u8>>), Error> {
    let build = build_id();
    if let Some(cache) = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<LoadCache>(&b).ok())
    {
        if cache.format == FORMAT && cache.build == build && files.still(&cache.seen) {
            return Ok((cache.discovered, None));
        }
    }
    files.watch();
    let discovered = hl_rules::discover(files)?;
    let bytes = files.observations().and_then(|seen| {
        serde_json::to_vec(&LoadCache {
            format: FORMAT,
            build,
            seen,
            discovered: discovered.clone(),
        })
        .ok()
    });
    Ok((discovered, bytes))
}
