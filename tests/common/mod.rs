//! Helpers for tests that run the real `drlb` binary on DPDK virtual devices: EAL
//! arguments, scratch directories, starting and stopping the daemon, waiting for its
//! log lines and control socket, drlbadm calls, the usual configs and traffic.
#![allow(dead_code)]
pub mod topo;

use drlb::testing::pcap::FlowsSpec;
use drlb::wire::Mac;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DRLB: &str = env!("CARGO_BIN_EXE_drlb");
pub const ADM: &str = env!("CARGO_BIN_EXE_drlbadm");

/// The MAC a `net_pcap` port has (drlb answers and forwards from it).
pub const PCAP_MAC: Mac = Mac([0x02, 0x70, 0x63, 0x61, 0x70, 0x00]);
/// The test client.
pub const CLIENT: Mac = Mac([0x02, 0xc1, 0, 0, 0, 1]);
/// Real servers A (.118), B (.119) and C (.120) in [`cfg`].
pub const MAC_A: Mac = Mac([0, 0x0c, 0x29, 0, 0, 0xa]);
pub const MAC_B: Mac = Mac([0, 0x0c, 0x29, 0, 0, 0xb]);
pub const MAC_C: Mac = Mac([0, 0x0c, 0x29, 0, 0, 0xc]);
pub const VIP: u32 = 0xc0a8_01c8; // 192.168.1.200

/// The usual web service: TCP 192.168.1.200:80 wrr over A (weight 3) and B (weight 1),
/// static MACs (no ARP needed), after `[dataplane]` with `dataplane` (TOML lines).
pub fn web(dataplane: &str) -> String {
    format!(
        r#"
[dataplane]
ip = "192.168.1.121"
{dataplane}

[[service]]
vip = "192.168.1.200"
port = 80
scheduler = "wrr"
  [[service.backend]]
  ip = "192.168.1.118"
  weight = 3
  mac = "00:0c:29:00:00:0a"
  [[service.backend]]
  ip = "192.168.1.119"
  weight = 1
  mac = "00:0c:29:00:00:0b"
"#
    )
}

/// The usual config: [`web`] with 65536 flows per worker, and UDP 192.168.1.201:53 on C.
pub fn cfg() -> String {
    web("flow_capacity = 65536")
        + r#"
[[service]]
vip = "192.168.1.201"
port = 53
protocol = "udp"
  [[service.backend]]
  ip = "192.168.1.120"
  mac = "00:0c:29:00:00:0c"
"#
}

/// `flows` TCP flows of `packets` frames each (a SYN, then ACK data) from [`CLIENT`] to
/// 192.168.1.200:80 on a `net_pcap` port, flow by flow.
pub fn flows_spec(flows: u32, packets: u32) -> FlowsSpec {
    FlowsSpec {
        flows,
        packets_per_flow: packets,
        dst_mac: PCAP_MAC,
        src_mac: CLIENT,
        vip: VIP,
        port: 80,
        frame_len: 60,
        interleave: false,
        ack_only: false,
    }
}

/// drlb's own arguments for a test daemon: the config, a stats line every second, then
/// `extra`.
pub fn app(cfg: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--config".to_string(),
        cfg.display().to_string(),
        "--stats-interval".into(),
        "1".into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Frames with an outcome in the final counters: forwarded, replied, learned, handed
/// to the kernel or dropped.
pub fn accounted(c: &HashMap<String, u64>) -> u64 {
    c["forwarded"]
        + c["arp_replies"]
        + c["icmp_replies"]
        + c["arp_learned"]
        + c["to_kernel"]
        + c["dropped"]
}

/// Runs drlbadm against `sock`: (exit code, stdout, stderr).
pub fn adm(sock: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(ADM).arg("--socket").arg(sock).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// [`adm`] that must succeed; its stdout.
pub fn adm_ok(sock: &Path, args: &[&str]) -> String {
    let (c, out, err) = adm(sock, args);
    assert_eq!(c, 0, "drlbadm {args:?}: {err}");
    out
}

/// Polls `f` every 50 ms until it returns Some, or panics naming `what` after `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    poll_noting(what, timeout, |_| f())
}

/// [`poll`] where `f` also notes what it last saw, for the message on a timeout.
pub fn poll_noting<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut(&mut String) -> Option<T>,
) -> T {
    let start = Instant::now();
    let mut seen = String::new();
    loop {
        if let Some(v) = f(&mut seen) {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}; last seen: {seen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

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
    let mounted =
        std::fs::read_to_string("/proc/mounts").map(|m| m.contains("hugetlbfs")).unwrap_or(false);
    if free >= 128 && mounted && std::env::var_os("DRLB_TEST_NO_HUGE").is_none() {
        vec!["--in-memory".into(), "-m".into(), "256".into()]
    } else {
        vec!["--no-huge".into(), "-m".into(), "512".into()]
    }
}

/// EAL options for a test daemon: lcores 0-1 (one worker), no PCI, its own file prefix,
/// the memory options of [`eal_mem`], and one `--vdev=VDEV`.
pub fn eal_args(prefix: &str, vdev: &str) -> Vec<String> {
    let mut v: Vec<String> =
        vec!["-l".into(), "0-1".into(), "--no-pci".into(), "--file-prefix".into(), prefix.into()];
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
    /// Its control socket.
    pub socket: PathBuf,
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
    let app = with_control(app);
    let socket = app
        .iter()
        .position(|a| a == "--control")
        .map(|i| PathBuf::from(&app[i + 1]))
        .expect("with_control names a socket");
    let mut child = Command::new(prog)
        .args(eal)
        .arg("--")
        .args(&app)
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
    Running { child, stderr: lines, socket }
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

    /// Waits until `n` stderr lines satisfy `pred` (a second reload's log line, say).
    pub fn wait_count(
        &mut self,
        what: &str,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) {
        let start = Instant::now();
        loop {
            if self.stderr.lock().unwrap().iter().filter(|l| pred(l)).count() >= n {
                return;
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

    /// Waits until the control socket answers (drlb is up and serving drlbadm).
    pub fn wait_ready(&mut self, timeout: Duration) {
        let start = Instant::now();
        while adm(&self.socket, &["-ln"]).0 != 0 {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("drlb exited ({st}) before it was ready:\n{}", self.log());
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("drlb not ready within {timeout:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// drlbadm against this daemon.
    pub fn adm(&self, args: &[&str]) -> (i32, String, String) {
        adm(&self.socket, args)
    }

    /// drlbadm that must succeed; its stdout.
    pub fn adm_ok(&self, args: &[&str]) -> String {
        adm_ok(&self.socket, args)
    }

    /// Waits for a stats line whose rx counter is at least `n`.
    pub fn wait_rx(&mut self, n: u64, timeout: Duration) {
        self.wait_for(&format!("rx >= {n}"), timeout, |l| stat(l, "rx").is_some_and(|v| v >= n));
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
        self.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        (status.code().unwrap_or(-1), counters(&out), self.log())
    }
}

/// `key=value` from a stats line.
pub fn stat(line: &str, key: &str) -> Option<u64> {
    let pfx = format!("{key}=");
    line.split_whitespace().find_map(|w| w.strip_prefix(&pfx)).and_then(|v| v.parse().ok())
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
    let out =
        Command::new(DRLB).args(eal).arg("--").args(with_control(&app)).output().expect("run drlb");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
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
    format!("net_pcap0,rx_pcap={},tx_pcap={}", rx.display(), tx.display())
}

/// EAL arguments for drlb with two workers (`--lcores 0@0,1@0,2@1`: two worker lcores
/// on this 2-CPU machine) on one net_pcap port with two queues: queue q replays
/// `inputs[q]` (written to DIR/in{q}.pcap; net_pcap has no RSS) and writes what its
/// worker sends to DIR/out{q}.pcap. Returns the arguments and the two output files.
pub fn two_worker_pcap(
    dir: &Path,
    prefix: &str,
    inputs: [&[Vec<u8>]; 2],
) -> (Vec<String>, [PathBuf; 2]) {
    let ins = [dir.join("in0.pcap"), dir.join("in1.pcap")];
    let outs = [dir.join("out0.pcap"), dir.join("out1.pcap")];
    for (p, frames) in ins.iter().zip(inputs) {
        drlb::testing::pcap::write(p, frames).unwrap();
    }
    let vdev = format!(
        "net_pcap0,rx_pcap={},rx_pcap={},tx_pcap={},tx_pcap={}",
        ins[0].display(),
        ins[1].display(),
        outs[0].display(),
        outs[1].display()
    );
    let mut eal = eal_args(prefix, &vdev);
    let l = eal.iter().position(|a| a == "-l").unwrap();
    eal.splice(l..l + 2, ["--lcores".to_string(), "0@0,1@0,2@1".into()]);
    (eal, outs)
}

/// A TCP port free on 127.0.0.1 right now (for `--metrics`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// GET http://127.0.0.1:PORT/metrics with curl.
pub fn scrape(port: u16) -> String {
    let o = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Flow identity of a TCP/UDP frame (untagged IPv4): src ip, src port, dst port, proto.
pub fn flow_of(f: &[u8]) -> (u32, u16, u16, u8) {
    let ihl = usize::from(f[14] & 0xf) * 4;
    let l4 = 14 + ihl;
    (
        u32::from_be_bytes(f[26..30].try_into().unwrap()),
        u16::from_be_bytes([f[l4], f[l4 + 1]]),
        u16::from_be_bytes([f[l4 + 2], f[l4 + 3]]),
        f[23],
    )
}

/// A gratuitous ARP (drlb announcing a VIP or its own IP at start and when a VIP is
/// added; `dataplane.garp_repeat`): not a forwarded frame.
pub fn is_garp(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[28..32] == f[38..42]
}

/// Checks every forwarded frame in `out` against `input` (gratuitous ARPs aside): its bytes from offset 12 are
/// an input frame's (each input used at most once: nothing duplicated, the IP packet
/// untouched), its source MAC is the port's, its destination is one of `allowed(dport)`,
/// and a flow never changes backend. Frames equal to one of `replies` are skipped and
/// counted. Returns (new flows per (service port, backend MAC), how often each reply
/// was seen).
pub fn check_forwarded(
    input: &[Vec<u8>],
    out: &[Vec<u8>],
    replies: &[Vec<u8>],
    port_mac: Mac,
    allowed: impl Fn(u16) -> Vec<Mac>,
) -> (HashMap<(u16, Mac), u32>, Vec<usize>) {
    let mut inputs: HashMap<&[u8], u32> = HashMap::new();
    for f in input.iter().filter(|f| f.len() > 12) {
        *inputs.entry(&f[12..]).or_default() += 1;
    }
    let mut backend_of: HashMap<(u32, u16, u16, u8), Mac> = HashMap::new();
    let mut per_backend: HashMap<(u16, Mac), u32> = HashMap::new();
    let mut seen_replies = vec![0; replies.len()];
    for f in out.iter().filter(|f| !is_garp(f)) {
        if let Some(i) = replies.iter().position(|r| r == f) {
            seen_replies[i] += 1;
            continue;
        }
        let left = inputs
            .get_mut(&f[12..])
            .expect("output frame whose bytes from offset 12 match no input frame");
        assert!(*left > 0, "more copies out than in");
        *left -= 1;
        assert_eq!(&f[6..12], &port_mac.0, "source MAC is the port's");
        let dst = Mac(f[..6].try_into().unwrap());
        let key = flow_of(f);
        assert!(
            allowed(key.2).contains(&dst),
            "flow {key:?} sent to {dst}, not one of its service's backends"
        );
        match backend_of.insert(key, dst) {
            Some(prev) => assert_eq!(prev, dst, "flow {key:?} moved"),
            None => *per_backend.entry((key.2, dst)).or_default() += 1,
        }
    }
    (per_backend, seen_replies)
}

/// `ip ARGS`, which must succeed.
pub fn ip_ok(args: &[&str]) {
    let o = Command::new("ip").args(args).output().unwrap();
    assert!(o.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// A network namespace of the test's own, `NAME-PID`, with `lo` up; deleted when
/// dropped (also when an assertion fails).
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: &str) -> Netns {
        let ns = Netns(format!("{name}-{}", std::process::id()));
        ip_ok(&["netns", "add", &ns.0]);
        ip_ok(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }

    /// Moves the calling thread into the namespace.
    pub fn enter(self) -> Netns {
        use std::os::fd::AsFd;
        let f = std::fs::File::open(format!("/var/run/netns/{}", self.0)).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        self
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
