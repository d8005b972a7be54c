//! The scheduler: runs jobs over the DAG on tokio, in dependency order, with a global bound
//! (`-j`), a per-host cap, retries with backoff for transient faults only, and keep-going: a
//! failed job's dependents are skipped and listed, every other job still runs. Ctrl-C stops
//! starting new jobs, lets the running ones finish (they run in their own process groups, so
//! the signal does not reach them) and returns what happened, so the caller records it.
//!
//! Jobs are blocking work (processes, ssh); each runs on tokio's blocking pool. Events come
//! back on a channel to the caller's thread, which renders progress and records state, so
//! recording is serialized without a lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::address::Address;

/// Why a job failed, and whether trying again may help.
#[derive(Debug, Clone)]
pub struct JobError {
    /// What went wrong, for people.
    pub message: String,
    /// Connection refused, timed out: worth a retry. Anything else is not.
    pub transient: bool,
    /// What kind of failure, for events and the summary.
    pub kind: FailureKind,
}

/// What kind of failure a job had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The step failed (a command, a build).
    Failed,
    /// The host could not be reached.
    Unreachable,
    /// The step converged but its healthcheck failed.
    Healthcheck,
    /// hl cannot converge this kind of node yet.
    Unsupported,
}

impl JobError {
    /// A permanent failure.
    pub fn failed(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            transient: false,
            kind: FailureKind::Failed,
        }
    }

    /// A failed healthcheck.
    pub fn healthcheck(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            transient: false,
            kind: FailureKind::Healthcheck,
        }
    }

    /// A kind hl has no provider for yet.
    pub fn unsupported(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            transient: false,
            kind: FailureKind::Unsupported,
        }
    }
}

impl From<crate::transport::TransportError> for JobError {
    fn from(e: crate::transport::TransportError) -> JobError {
        let kind = match e {
            crate::transport::TransportError::Unreachable { .. } => FailureKind::Unreachable,
            _ => FailureKind::Failed,
        };
        JobError {
            message: e.to_string(),
            transient: e.transient(),
            kind,
        }
    }
}

impl From<crate::error::Error> for JobError {
    fn from(e: crate::error::Error) -> JobError {
        JobError::failed(e.to_string())
    }
}

/// What a job can tell the scheduler while it runs.
#[derive(Clone)]
pub struct JobCtx {
    address: Address,
    tx: mpsc::UnboundedSender<Event>,
    /// The attempt, from 1.
    pub attempt: u32,
}

impl JobCtx {
    /// Reports progress ("uploading release", "healthcheck").
    pub fn say(&self, text: impl Into<String>) {
        let _ = self.tx.send(Event::Message {
            address: self.address.clone(),
            text: text.into(),
        });
    }
}

/// The work of a job: it returns a value for the caller (what to record) or an error.
pub type Work<T> = Arc<dyn Fn(&JobCtx) -> Result<T, JobError> + Send + Sync>;

/// A job: one step of a plan.
pub struct Job<T> {
    /// The node.
    pub address: Address,
    /// The host it runs on, for the per-host cap.
    pub host: Option<String>,
    /// Jobs of this run that must succeed first.
    pub deps: Vec<Address>,
    /// The work.
    pub work: Work<T>,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// At most this many jobs at once.
    pub jobs: usize,
    /// At most this many jobs at once on one host.
    pub per_host: usize,
    /// Retries of a transient fault.
    pub retries: u32,
    /// The first backoff; it doubles on each retry.
    pub backoff: Duration,
    /// Set to stop starting jobs (Ctrl-C sets it too).
    pub cancel: Arc<AtomicBool>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            jobs: 8,
            per_host: 2,
            retries: 2,
            backoff: Duration::from_millis(500),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What happens, as it happens.
pub enum Event<T = ()> {
    /// A job started (or started again).
    Started {
        /// The job.
        address: Address,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// A job said something.
    Message {
        /// The job.
        address: Address,
        /// What.
        text: String,
    },
    /// A transient fault: the job will be tried again.
    Retrying {
        /// The job.
        address: Address,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
        /// The wait before the next attempt.
        wait: Duration,
    },
    /// A job finished.
    Finished {
        /// The job.
        address: Address,
        /// Its result.
        result: Result<T, JobError>,
        /// How long it took, retries included.
        elapsed: Duration,
    },
    /// A job will not run because a dependency failed or was skipped.
    Skipped {
        /// The job.
        address: Address,
        /// The dependency that failed.
        because: Address,
    },
    /// Ctrl-C: no new jobs start.
    Interrupted,
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct Summary {
    /// Finished well.
    pub succeeded: BTreeSet<Address>,
    /// Failed, with why.
    pub failed: BTreeMap<Address, String>,
    /// Not run because a dependency failed, with which.
    pub skipped: BTreeMap<Address, Address>,
    /// Not started because the run was interrupted.
    pub not_started: BTreeSet<Address>,
    /// Whether Ctrl-C (or the cancel flag) stopped the run.
    pub interrupted: bool,
}

/// Runs the jobs; `on_event` is called on the caller's thread for every event, in order.
pub fn run<T: Send + 'static>(
    jobs: Vec<Job<T>>,
    opts: &Options,
    mut on_event: impl FnMut(Event<T>),
) -> Summary {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(opts.jobs.max(1) + 2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    rt.block_on(drive(jobs, opts, &mut on_event))
}

async fn drive<T: Send + 'static>(
    jobs: Vec<Job<T>>,
    opts: &Options,
    on_event: &mut impl FnMut(Event<T>),
) -> Summary {
    let names: BTreeSet<Address> = jobs.iter().map(|j| j.address.clone()).collect();
    let mut waiting: HashMap<Address, usize> = HashMap::new();
    let mut dependents: HashMap<Address, Vec<Address>> = HashMap::new();
    let mut by_addr: HashMap<Address, Job<T>> = HashMap::new();
    for j in jobs {
        let deps: Vec<&Address> = j.deps.iter().filter(|d| names.contains(*d)).collect();
        waiting.insert(j.address.clone(), deps.len());
        for d in deps {
            dependents
                .entry(d.clone())
                .or_default()
                .push(j.address.clone());
        }
        by_addr.insert(j.address.clone(), j);
    }
    let mut ready: BTreeSet<Address> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(a, _)| a.clone())
        .collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<Event<T>>();
    let (msg_tx, mut msg_rx) = mpsc::unbounded_channel::<Event>();
    let mut running: HashMap<Address, Option<String>> = HashMap::new();
    let mut per_host: HashMap<String, usize> = HashMap::new();
    let mut summary = Summary::default();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut ctrl_c_armed = true;

    loop {
        let cancelled = opts.cancel.load(Ordering::SeqCst);
        if !cancelled {
            // Start what the bounds allow, in address order for stable output.
            let startable: Vec<Address> = ready
                .iter()
                .filter(|a| {
                    let host = by_addr[*a].host.as_ref();
                    host.is_none_or(|h| {
                        per_host.get(h).copied().unwrap_or(0) < opts.per_host.max(1)
                    })
                })
                .cloned()
                .collect();
            for addr in startable {
                if running.len() >= opts.jobs.max(1) {
                    break;
                }
                let host = by_addr[&addr].host.clone();
                if let Some(h) = &host {
                    if per_host.get(h).copied().unwrap_or(0) >= opts.per_host.max(1) {
                        continue;
                    }
                    *per_host.entry(h.clone()).or_default() += 1;
                }
                ready.remove(&addr);
                running.insert(addr.clone(), host);
                spawn(&by_addr[&addr], opts, tx.clone(), msg_tx.clone());
            }
        }
        if running.is_empty() && (cancelled || ready.is_empty()) {
            break;
        }
        tokio::select! {
            Some(ev) = rx.recv() => {
                if let Event::Finished { address, result, elapsed } = ev {
                    if let Some(Some(h)) = running.remove(&address) {
                        if let Some(n) = per_host.get_mut(&h) { *n -= 1; }
                    }
                    match &result {
                        Ok(_) => {
                            summary.succeeded.insert(address.clone());
                            for d in dependents.get(&address).into_iter().flatten() {
                                let n = waiting.get_mut(d).expect("a dependent is a job");
                                *n -= 1;
                                if *n == 0 && !summary.skipped.contains_key(d) {
                                    ready.insert(d.clone());
                                }
                            }
                        }
                        Err(e) => {
                            summary.failed.insert(address.clone(), e.message.clone());
                            skip_dependents(&address, &dependents, &mut summary, &mut ready, on_event);
                        }
                    }
                    on_event(Event::Finished { address, result, elapsed });
                }
            }
            Some(ev) = msg_rx.recv() => {
                on_event(match ev {
                    Event::Started { address, attempt } => Event::Started { address, attempt },
                    Event::Message { address, text } => Event::Message { address, text },
                    Event::Retrying { address, attempt, error, wait } => Event::Retrying { address, attempt, error, wait },
                    _ => continue,
                });
            }
            _ = &mut ctrl_c, if ctrl_c_armed => {
                ctrl_c_armed = false;
                opts.cancel.store(true, Ordering::SeqCst);
                on_event(Event::Interrupted);
            }
        }
    }
    summary.interrupted = opts.cancel.load(Ordering::SeqCst);
    summary.not_started = by_addr
        .keys()
        .filter(|a| {
            !summary.succeeded.contains(*a)
                && !summary.failed.contains_key(*a)
                && !summary.skipped.contains_key(*a)
        })
        .cloned()
        .collect();
    summary
}

fn skip_dependents<T>(
    failed: &Address,
    dependents: &HashMap<Address, Vec<Address>>,
    summary: &mut Summary,
    ready: &mut BTreeSet<Address>,
    on_event: &mut impl FnMut(Event<T>),
) {
    let mut stack = vec![failed.clone()];
    while let Some(a) = stack.pop() {
        for d in dependents.get(&a).into_iter().flatten() {
            if summary.skipped.contains_key(d) {
                continue;
            }
            ready.remove(d);
            summary.skipped.insert(d.clone(), failed.clone());
            on_event(Event::Skipped {
                address: d.clone(),
                because: failed.clone(),
            });
            stack.push(d.clone());
        }
    }
}

fn spawn<T: Send + 'static>(
    job: &Job<T>,
    opts: &Options,
    tx: mpsc::UnboundedSender<Event<T>>,
    msg: mpsc::UnboundedSender<Event>,
) {
    let work = job.work.clone();
    let address = job.address.clone();
    let (retries, backoff) = (opts.retries, opts.backoff);
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let mut attempt = 1;
        let result = loop {
            let _ = msg.send(Event::Started {
                address: address.clone(),
                attempt,
            });
            let ctx = JobCtx {
                address: address.clone(),
                tx: msg.clone(),
                attempt,
            };
            match work(&ctx) {
                Err(e) if e.transient && attempt <= retries => {
                    let wait = backoff * 2u32.pow(attempt - 1);
                    let _ = msg.send(Event::Retrying {
                        address: address.clone(),
                        attempt,
                        error: e.message,
                        wait,
                    });
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                other => break other,
            }
        };
        let _ = tx.send(Event::Finished {
            address,
            result,
            elapsed: start.elapsed(),
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::Mutex;

    fn addr(s: &str) -> Address {
        s.parse().unwrap()
    }

    fn job(
        a: &str,
        host: Option<&str>,
        deps: &[&str],
        work: impl Fn(&JobCtx) -> Result<(), JobError> + Send + Sync + 'static,
    ) -> Job<()> {
        Job {
            address: addr(a),
            host: host.map(str::to_string),
            deps: deps.iter().map(|d| addr(d)).collect(),
            work: Arc::new(work),
        }
    }

    #[test]
    fn dependency_order_keep_going_and_skips() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = |name: &'static str, fail: bool| {
            let order = order.clone();
            move |_: &JobCtx| {
                order.lock().unwrap().push(name);
                if fail {
                    Err(JobError::failed("boom"))
                } else {
                    Ok(())
                }
            }
        };
        let jobs = vec![
            job("compose:a@H", Some("H"), &[], o("a", false)),
            job("compose:b@H", Some("H"), &["compose:a@H"], o("b", true)),
            job("compose:c@H", Some("H"), &["compose:b@H"], o("c", false)),
            job("compose:d@G", Some("G"), &[], o("d", false)),
        ];
        let s = run(jobs, &Options::default(), |_| {});
        let ran = order.lock().unwrap().clone();
        assert!(ran.iter().position(|x| *x == "a") < ran.iter().position(|x| *x == "b"));
        assert!(!ran.contains(&"c"));
        assert_eq!(
            s.succeeded,
            BTreeSet::from([addr("compose:a@H"), addr("compose:d@G")])
        );
        assert_eq!(
            s.failed.keys().cloned().collect::<Vec<_>>(),
            vec![addr("compose:b@H")]
        );
        assert_eq!(
            s.skipped.get(&addr("compose:c@H")),
            Some(&addr("compose:b@H"))
        );
    }

    #[test]
    fn transient_faults_are_retried_permanent_ones_are_not() {
        let tries = Arc::new(AtomicU32::new(0));
        let t = tries.clone();
        let flaky = job("compose:x@H", None, &[], move |_| {
            if t.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(JobError {
                    message: "connection refused".into(),
                    transient: true,
                    kind: FailureKind::Unreachable,
                })
            } else {
                Ok(())
            }
        });
        let opts = Options {
            backoff: Duration::from_millis(1),
            ..Options::default()
        };
        let s = run(vec![flaky], &opts, |_| {});
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        assert_eq!(s.succeeded.len(), 1);

        let tries = Arc::new(AtomicU32::new(0));
        let t = tries.clone();
        let broken = job("compose:y@H", None, &[], move |_| {
            t.fetch_add(1, Ordering::SeqCst);
            Err(JobError::failed("bad compose file"))
        });
        let s = run(vec![broken], &opts, |_| {});
        assert_eq!(tries.load(Ordering::SeqCst), 1);
        assert_eq!(s.failed.len(), 1);
    }

    #[test]
    fn the_per_host_cap_holds() {
        let now = Arc::new(AtomicU32::new(0));
        let peak = Arc::new(AtomicU32::new(0));
        let mut jobs = Vec::new();
        for i in 0..6 {
            let (now, peak) = (now.clone(), peak.clone());
            jobs.push(job(&format!("compose:s{i}@H"), Some("H"), &[], move |_| {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }));
        }
        let opts = Options {
            jobs: 8,
            per_host: 2,
            ..Options::default()
        };
        let s = run(jobs, &opts, |_| {});
        assert_eq!(s.succeeded.len(), 6);
        assert!(
            peak.load(Ordering::SeqCst) <= 2,
            "peak {}",
            peak.load(Ordering::SeqCst)
        );
    }

    #[test]
    fn cancel_lets_running_jobs_finish_and_starts_no_more() {
        let cancel = Arc::new(AtomicBool::new(false));
        let c = cancel.clone();
        let first = job("compose:a@H", None, &[], move |_| {
            c.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            Ok(())
        });
        let second = job("compose:b@H", None, &["compose:a@H"], |_| Ok(()));
        let opts = Options {
            cancel,
            ..Options::default()
        };
        let s = run(vec![first, second], &opts, |_| {});
        assert!(s.interrupted);
        assert_eq!(s.succeeded, BTreeSet::from([addr("compose:a@H")]));
        assert_eq!(s.not_started, BTreeSet::from([addr("compose:b@H")]));
    }
}
