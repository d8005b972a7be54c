//! Wall-clock time as text (UTC, RFC 3339), without a date crate: events, locks and the state
//! need timestamps people read, nothing more.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `(year, month, day)` of a day count since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-11-25T08:30:00Z`.
pub fn rfc3339(secs: u64) -> String {
    let (y, m, d) = civil((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `2026-11-25`.
pub fn date(secs: u64) -> String {
    let (y, m, d) = civil((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Now, by the clock file systems stamp modification times with (ns since the epoch): what a
/// run compares mtimes with to tell racy files, ones that may change again without their mtime
/// moving.
///
/// Linux stamps mtimes from its coarse clock (the last timer tick, up to 10 ms behind), so
/// an edit made just after a run started, read by the next, can carry an mtime before that
/// start by the fine clock; by the coarse clock it cannot. Elsewhere, the fine clock less 20
/// ms (more than a tick) stands in.
#[cfg(target_os = "linux")]
pub fn fs_now_ns() -> i128 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// See the Linux one.
#[cfg(not(target_os = "linux"))]
pub fn fs_now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
        - 20_000_000
}

/// Waits until the file systems' clock is past the last change (mtime or ctime) of `path` (and
/// of anything written before it), so that a run starting after does not take it for racy: for tests, which edit
/// and plan within a tick. That clock can lag more than a tick behind when the machine idles,
/// and file systems with fine-grained timestamps stamp ahead of it, so it is waited for, not
/// slept over.
pub fn settle(path: &std::path::Path) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    let changed = crate::statcache::StatKey::of(&meta).changed_ns();
    while fs_now_ns() <= changed {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_595_400, "2026-11-25T08:30:00Z"),
        ] {
            assert_eq!(rfc3339(secs), want);
        }
        assert_eq!(date(1_795_595_400), "2026-11-25");
    }

    /// What the racy checks rest on: a file written after a run started never carries an
    /// mtime before that start, whatever granularity the file system stamps with (the fine
    /// clock fails this on file systems that stamp from the kernel's coarse clock).
    #[test]
    fn a_write_after_a_start_is_never_stamped_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        for i in 0..300 {
            let start = fs_now_ns();
            std::fs::write(&f, i.to_string()).unwrap();
            let mtime = std::fs::metadata(&f)
                .unwrap()
                .modified()
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as i128;
            assert!(mtime >= start, "write {i}: mtime {mtime} < start {start}");
        }
        settle(&f);
        assert!(
            fs_now_ns()
                > std::fs::metadata(&f)
                    .map(|m| m.modified().unwrap())
                    .map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i128)
                    .unwrap()
        );
    }
}
