//! How the process asks the kernel for memory, by what a run is about to do.
//!
//! Transparent huge pages (THP; Debian's default is `always`) suit a plan recalled or patched
//! from the caches: it touches a few dense buffers, and one fault maps 2 MiB. A loader running
//! over a whole tree is the opposite: it allocates and frees a few hundred MB in small pieces,
//! the allocator gives emptied pages back, and with THP the kernel zeroes a whole 2 MiB page
//! again on the next touch of each. On the large benchmark tree that zeroing was a sixth of a
//! first plan's samples; without THP it is gone and the first plan is ~10% faster, while the
//! no-op plan is ~15% slower without THP (more, smaller faults). So THP is turned off only
//! once a loader is about to run (docs/benchmarks.md).

/// Turns THP off for the rest of the process (no-op where the kernel has no such switch).
pub fn churn_ahead() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}
