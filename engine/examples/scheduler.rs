//! The scheduler's own cost: 1,000 independent jobs whose work is a fixed sleep, run at
//! -j 1, 2 and 8. The overhead per job is the wall time beyond the ideal (jobs x work / j),
//! divided by the number of jobs. Run: `cargo run --release -p hl-engine --example scheduler`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hl_engine::scheduler::{run, Job, Options};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let work = Duration::from_micros(
        std::env::args()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000),
    );
    println!("{n} independent jobs, {} us of work each", work.as_micros());
    println!("| -j | wall | ideal | overhead per job | speed-up vs -j 1 |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    let mut first = None;
    for j in [1usize, 2, 8] {
        let jobs: Vec<Job<()>> = (0..n)
            .map(|i| Job {
                address: format!("image:n{i:05}").parse().expect("a valid address"),
                host: None,
                deps: Vec::new(),
                work: Arc::new(move |_| {
                    std::thread::sleep(work);
                    Ok(())
                }),
            })
            .collect();
        let opts = Options {
            jobs: j,
            per_host: j,
            ..Options::default()
        };
        let start = Instant::now();
        let summary = run(jobs, &opts, |_| {});
        let wall = start.elapsed();
        assert_eq!(summary.succeeded.len(), n);
        let ideal = work * (n as u32) / (j as u32);
        let over = wall.saturating_sub(ideal).as_secs_f64() * 1000.0 / n as f64;
        let base = *first.get_or_insert(wall.as_secs_f64());
        println!(
            "| {j} | {:.3} s | {:.3} s | {over:.3} ms | {:.2}x |",
            wall.as_secs_f64(),
            ideal.as_secs_f64(),
            base / wall.as_secs_f64()
        );
    }
}
