//! Helpers for tests that run the real `drlb` binary on DPDK virtual devices.
#![allow(dead_code)]
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DRLB: &str = env!("CARGO_BIN_EXE_drlb");

/// EAL memory options: hugepages without files (`--in-memory`) when the host has them,
/// else `--no-huge` (slower, same behaviour).
pub fn eal_mem() -> Vec<String> {
    let free = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("HugePages_Free:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let mounted = std::fs::read_to_string("/proc/mounts")
        .map(|m| m.contains("hugetlbfs"))
        .unwrap_or(false);
    if free >= 128 && mounted && std::env::var_os("DRLB_TEST_NO_HUGE").is_none() {
        vec!["--in-memory".into(), "-m".into(), "256".into()]
    } else {
        vec!["--no-huge".into(), "-m".into(), "512".into()]
    }
}

/// EAL options for a test daemon: lcores 0-1 (one worker), no PCI, its own file prefix,
/// the memory options of [`eal_mem`], and one `--vdev=VDEV`.
pub fn eal_args(prefix: &str, vdev: &str) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "-l".into(),
        "0-1".into(),
        "--no-pci".into(),
        "--file-prefix".into(),
        prefix.into(),
    ];
    v.extend(eal_mem());
    v.push(format!("--vdev={vdev}"));
    v
}

/// A per-test scratch directory and DPDK file prefix.
pub fn scratch(name: &str) -> (PathBuf, String) {
    let prefix = format!("drlbt-{name}-{}", std::process::id());
    let dir = std::env::temp_dir().join(&prefix);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (dir, prefix)
}

pub struct Running {
    pub child: Child,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

/// Starts drlb with `eal` args (before `--`) and `app` args (after).
pub fn spawn(eal: &[String], app: &[String]) -> Running {
    spawn_cmd(DRLB, eal, app)
}

/// A control socket path of this test's own (unless `app` names one).
fn with_control(app: &[String]) -> Vec<String> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mut v = app.to_vec();
    if !v.iter().any(|a| a == "--control") {
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        v.push("--control".into());
        v.push(
            std::env::temp_dir()
                .join(format!("drlbt-{}-{n}.sock", std::process::id()))
                .display()
                .to_string(),
        );
    }
    v
}

/// Starts `prog eal... -- app...` (e.g. `ip netns exec NS drlb ...`).
pub fn spawn_cmd(prog: &str, eal: &[String], app: &[String]) -> Running {
    let mut child = Command::new(prog)
        .args(eal)
        .arg("--")
        .args(with_control(app))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start drlb");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l2 = lines.clone();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            l2.lock().unwrap().push(line);
        }
    });
    Running {
        child,
        stderr: lines,
    }
}

/// A test that fails midway still stops its daemon (SIGKILL), so no drlb outlives it.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Running {
    /// Waits until a stderr line satisfies `pred`; panics with the log after `timeout`.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.stderr.lock().unwrap().iter().find(|l| pred(l)) {
                return l.clone();
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("drlb exited ({st}) before {what}:\n{}", self.log());
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("timed out waiting for {what}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a stats line whose rx counter is at least `n`.
    pub fn wait_rx(&mut self, n: u64, timeout: Duration) {
        self.wait_for(&format!("rx >= {n}"), timeout, |l| {
            stat(l, "rx").is_some_and(|v| v >= n)
        });
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM, wait (at most 20 s), return (exit code, final counters).
    pub fn stop(mut self) -> (i32, HashMap<String, u64>, String) {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("drlb did not stop within 20 s of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        use std::io::Read;
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        (status.code().unwrap_or(-1), counters(&out), self.log())
    }
}

/// `key=value` from a stats line.
pub fn stat(line: &str, key: &str) -> Option<u64> {
    let pfx = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&pfx))
        .and_then(|v| v.parse().ok())
}

/// The final `counter NAME VALUE` lines.
pub fn counters(stdout: &str) -> HashMap<String, u64> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next()? == "counter").then_some(())?;
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// Runs drlb to completion (for start-up errors): (exit code, stderr).
pub fn run_to_exit(eal: &[&str], app: &[&str]) -> (i32, String) {
    let app: Vec<String> = app.iter().map(|s| s.to_string()).collect();
    let out = Command::new(DRLB)
        .args(eal)
        .arg("--")
        .args(with_control(&app))
        .output()
        .expect("run drlb");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// xorshift64*: reproducible pseudo-random test data without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Neither EAL's runtime directory nor hugepage files of `prefix` are left.
pub fn assert_no_dpdk_files(prefix: &str) {
    assert!(
        !std::path::Path::new(&format!("/var/run/dpdk/{prefix}")).exists(),
        "runtime directory left behind"
    );
    let left: Vec<_> = std::fs::read_dir("/dev/hugepages")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "hugepage files left behind: {left:?}");
}

/// A `net_pcap` vdev that replays `rx` once and writes what is sent to `tx`.
pub fn pcap_rx_tx(rx: &Path, tx: &Path) -> String {
    format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        rx.display(),
        tx.display()
    )
}
