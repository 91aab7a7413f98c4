//! Health checks of real servers (keepalived's TCP_CHECK, HTTP_GET and MISC_CHECK), run
//! on a thread of their own (never on a worker core, never on the manager's): one task
//! per server on a single-threaded tokio runtime, each checking every `interval`,
//! bounded by `timeout`, from the director IP (so through the kernel interface: the
//! checks test the real path). Results go to the manager, which keeps the state machine
//! ([`crate::control::health`]).
//!
//! Bad servers cost nothing but a failed result: a refused or unreachable connect, a
//! server that accepts and never answers, HTTP garbage, a command that hangs (killed at
//! the timeout) or floods its output (discarded) — each is a failure within `timeout`.
mod checks;

use crate::control::config::CheckConf;
use crate::control::health::CheckResult;
use crate::control::state::BackendKey;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One server to check.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub key: BackendKey,
    /// The address checked (the server's IP and the check's port).
    pub addr: SocketAddrV4,
    /// The director IP, the checks' source address.
    pub source: Ipv4Addr,
    pub check: CheckConf,
}

/// A result for the manager.
#[derive(Debug, Clone)]
pub struct Report {
    pub key: BackendKey,
    pub result: CheckResult,
}

/// The checker thread; dropping it stops every check and joins the thread.
pub struct Checker {
    targets: Option<tokio::sync::watch::Sender<Vec<Target>>>,
    reports: mpsc::Receiver<Report>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checker {
    /// Starts the thread (pinned to `cpu` when given: the main lcore's, never a worker's).
    pub fn start(cpu: Option<usize>) -> std::io::Result<Checker> {
        let (tx, rx) = tokio::sync::watch::channel(Vec::new());
        let (rtx, rrx) = mpsc::channel();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name("drlb-health".into()).spawn(move || {
            if let Some(id) = cpu {
                core_affinity::set_for_current(core_affinity::CoreId { id });
            }
            rt.block_on(run(rx, rtx));
        })?;
        Ok(Checker { targets: Some(tx), reports: rrx, thread: Some(thread) })
    }

    /// Replaces the set of servers checked: new ones start at once, gone ones stop,
    /// unchanged ones go on undisturbed.
    pub fn set_targets(&self, targets: Vec<Target>) {
        if let Some(tx) = &self.targets {
            tx.send_if_modified(|t| {
                let changed = *t != targets;
                *t = targets;
                changed
            });
        }
    }

    /// The results that arrived since the last call (never blocks).
    pub fn reports(&self) -> impl Iterator<Item = Report> + '_ {
        self.reports.try_iter()
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.targets.take(); // the runtime sees the sender gone and stops
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The runtime's main task: keeps one checking task per target.
async fn run(mut targets: tokio::sync::watch::Receiver<Vec<Target>>, out: mpsc::Sender<Report>) {
    let mut tasks: HashMap<BackendKey, (Target, tokio::task::JoinHandle<()>)> = HashMap::new();
    loop {
        let want = targets.borrow_and_update().clone();
        tasks.retain(|k, (t, h)| {
            let keep = want.iter().any(|w| w == t && w.key == *k);
            if !keep {
                h.abort();
            }
            keep
        });
        for t in want {
            tasks.entry(t.key).or_insert_with(|| {
                let h = tokio::spawn(check_loop(t.clone(), out.clone()));
                (t, h)
            });
        }
        if targets.changed().await.is_err() {
            break; // the manager dropped the checker
        }
    }
    for (_, (_, h)) in tasks {
        h.abort();
    }
}

/// Checks one server every `interval` until aborted.
async fn check_loop(t: Target, out: mpsc::Sender<Report>) {
    let interval = Duration::from_secs_f64(t.check.interval);
    let timeout = Duration::from_secs_f64(t.check.timeout);
    let mut next = tokio::time::Instant::now();
    loop {
        let start = Instant::now();
        let outcome = tokio::time::timeout(timeout, checks::run(&t)).await;
        let latency = start.elapsed();
        let result = match outcome {
            Ok(Ok(detail)) => CheckResult { ok: true, detail, latency },
            Ok(Err(detail)) => CheckResult { ok: false, detail, latency },
            Err(_) => CheckResult {
                ok: false,
                detail: format!("timeout ({:.1} s)", timeout.as_secs_f64()),
                latency,
            },
        };
        if out.send(Report { key: t.key, result }).is_err() {
            return;
        }
        next += interval;
        tokio::time::sleep_until(next.max(tokio::time::Instant::now())).await;
    }
}
