//! More than one director: three drlb directors behind a router (BIRD 2) that spreads
//! the VIP over them by ECMP, each announcing it by BGP with ExaBGP and
//! `drlbadm --bgp-feed`, three real servers, 60 long-lived TCP connections exchanging a
//! line every 100 ms (scripts/ecmp-topology.sh, scripts/lines.py).
//!
//! With `mh`, no connection is reset, times out or changes server when a director's drlb
//! is killed (its route is withdrawn, its flows reach the others mid-flow), when it comes
//! back, when a whole director dies, or when a backend is drained and removed
//! everywhere. The negative control, in the same topology: with `wrr` the same kill
//! breaks connections. Run with `--nocapture` to read the narration (what
//! scripts/demo-ecmp.sh shows).
mod common;
use common::*;
use std::collections::HashMap;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const N: usize = 3;
const CONNS: usize = 60;

fn say(msg: impl std::fmt::Display) {
    eprintln!("ecmp: {msg}");
}

/// A director's config: the line service on the VIP with `sched` over A, B and C.
fn config(i: usize, sched: &str) -> String {
    format!(
        r#"[dataplane]
ip = "192.168.1.12{i}"
kernel_interface = "drlb0"
idle = "adaptive"
hash_seed = "ecmp-test"
flow_capacity = 65536

[[service]]
vip = "192.168.1.200"
port = 7000
{sched}
  [[service.backend]]
  ip = "192.168.1.118"
  [[service.backend]]
  ip = "192.168.1.119"
  [[service.backend]]
  ip = "192.168.1.120"
"#
    )
}

const MH: &str = "scheduler = \"mh\"";
const WRR: &str = "scheduler = \"wrr\"\nmid_flow = \"schedule\"";

struct Ecmp {
    sfx: String,
    dir: std::path::PathBuf,
    drlb: Vec<Option<Running>>,
    metrics: Vec<u16>,
}

impl Ecmp {
    fn sh(&self, script: &str) -> Output {
        Command::new("bash")
            .arg("-c")
            .arg(format!("set -e; SFX={}; . {ROOT}/scripts/ecmp-topology.sh; {script}", self.sfx))
            .output()
            .expect("bash")
    }

    fn sh_ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(o.status.success(), "{script}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn up() -> Ecmp {
        let (dir, _) = scratch("ecmp");
        let e = Ecmp {
            sfx: format!("{}", std::process::id() % 100000),
            dir,
            drlb: (0..N).map(|_| None).collect(),
            metrics: (0..N).map(|_| free_port()).collect(),
        };
        e.sh_ok(&format!("ecmp_up {} {N}", e.dir.display()));
        e
    }

    fn ns(&self, i: usize) -> String {
        format!("drlb-d{i}-{}", self.sfx)
    }

    fn sock(&self, i: usize) -> std::path::PathBuf {
        self.dir.join(format!("d{i}.sock"))
    }

    /// Starts drlb on director `i` (1-based) with its config file as it is.
    fn start(&mut self, i: usize) {
        let cfg = self.dir.join(format!("d{i}.toml"));
        let mut eal: Vec<String> =
            ["netns", "exec", &self.ns(i), DRLB, "-l", "0-1", "--no-pci", "--file-prefix"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        eal.push(format!("ecmp{i}x{}", self.sfx));
        eal.extend(eal_mem());
        eal.push(format!("--vdev=net_af_packet0,iface=d{i}v{}", self.sfx));
        let sock = self.sock(i).display().to_string();
        let metrics = format!("127.0.0.1:{}", self.metrics[i - 1]);
        let mut d = spawn_cmd("ip", &eal, &app(&cfg, &["--control", &sock, "--metrics", &metrics]));
        d.wait_ready(Duration::from_secs(30));
        self.drlb[i - 1] = Some(d);
    }

    fn kill(&mut self, i: usize) {
        drop(self.drlb[i - 1].take()); // SIGKILL, waited for
    }

    fn exabgp(&self, i: usize) {
        self.sh_ok(&format!("exabgp_start {} {i} {ADM}", self.dir.display()));
    }

    fn next_hops(&self) -> Vec<String> {
        self.sh_ok("ecmp_next_hops").lines().map(str::to_string).collect()
    }

    /// Waits until the router's next hops for the VIP are directors `want`; how long.
    fn wait_next_hops(&self, want: &[usize], timeout: Duration) -> Duration {
        let want: Vec<String> = want.iter().map(|i| format!("192.168.1.12{i}")).collect();
        let start = Instant::now();
        poll(&format!("next hops {want:?}"), timeout, || (self.next_hops() == want).then_some(()));
        start.elapsed()
    }

    /// A counter summed over director `i`'s workers, from its Prometheus endpoint.
    fn metric(&self, i: usize, name: &str) -> u64 {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns(i), "curl", "-s", "--max-time", "5"])
            .arg(format!("http://127.0.0.1:{}/metrics", self.metrics[i - 1]))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    fn mid_flow(&self, alive: &[usize]) -> u64 {
        alive.iter().map(|&i| self.metric(i, "drlb_mid_flow_scheduled_total")).sum()
    }

    fn adm(&self, i: usize, args: &[&str]) -> String {
        adm_ok(&self.sock(i), args)
    }

    /// Rewrites director `i`'s config with `sched` (started or reloaded after).
    fn configure(&self, i: usize, sched: &str) {
        write(&self.dir, &format!("d{i}.toml"), &config(i, sched));
    }

    fn fingerprint(&self, i: usize) -> String {
        let l: serde_json::Value = serde_json::from_str(&self.adm(i, &["-ln", "--json"])).unwrap();
        l["services"][0]["mh"]["fingerprint"].as_str().unwrap_or("none").to_string()
    }
}

impl Drop for Ecmp {
    fn drop(&mut self) {
        for d in self.drlb.iter_mut() {
            drop(d.take());
        }
        let _ = self.sh(&format!("ecmp_down {} {N}", self.dir.display()));
        let _ = std::fs::remove_dir_all(&self.dir);
        // A director killed with SIGKILL (a simulated death) leaves its EAL runtime
        // directory behind; a clean exit removes its own.
        for i in 1..=N {
            let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/ecmp{i}x{}", self.sfx));
        }
    }
}

/// One connection as scripts/lines.py reports it.
#[derive(Debug, Clone, serde::Deserialize)]
struct Conn {
    conn: usize,
    server: Option<String>,
    answers: u64,
    moved: bool,
    error: Option<String>,
    longest_wait: f64,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Status {
    connected: usize,
    conns: Vec<Conn>,
}

/// The line client in the client namespace.
struct Client {
    child: Child,
    status: std::path::PathBuf,
}

impl Client {
    fn start(e: &Ecmp, name: &str) -> Client {
        let status = e.dir.join(format!("{name}.json"));
        let child = Command::new("ip")
            .args(["netns", "exec", &format!("drlb-ec-{}", e.sfx), "python3"])
            .arg(format!("{ROOT}/scripts/lines.py"))
            .args(["client", "192.168.1.200", "7000", &CONNS.to_string()])
            .arg(&status)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Client { child, status }
    }

    fn status(&self) -> Option<Status> {
        serde_json::from_str(&std::fs::read_to_string(&self.status).ok()?).ok()
    }

    /// Waits until every connection in `which` has `more` answers beyond `base`; or,
    /// with `stop_on_error`, until one fails. The status then.
    fn progress(&self, base: &Status, which: &[usize], more: u64, timeout: Duration) -> Status {
        poll_noting("connections to answer again", timeout, |seen| {
            let s = self.status()?;
            let behind: Vec<usize> = which
                .iter()
                .copied()
                .filter(|&i| {
                    s.conns[i].error.is_none() && s.conns[i].answers < base.conns[i].answers + more
                })
                .collect();
            *seen = format!("{} behind: {behind:?}", behind.len());
            behind.is_empty().then_some(s)
        })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connections that failed or changed server, as "conn N (server): why".
fn broken(s: &Status, which: &[usize]) -> Vec<String> {
    which
        .iter()
        .map(|&i| &s.conns[i])
        .filter(|c| c.error.is_some() || c.moved)
        .map(|c| {
            let why = c.error.clone().unwrap_or_else(|| "answered by another server".into());
            format!("conn {} ({:?}): {why}", c.conn, c.server)
        })
        .collect()
}

fn longest(s: &Status, which: &[usize]) -> f64 {
    which.iter().map(|&i| s.conns[i].longest_wait).fold(0.0, f64::max)
}

fn servers(s: &Status) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for c in &s.conns {
        *m.entry(c.server.clone().unwrap_or_default()).or_insert(0) += 1;
    }
    m
}

#[test]
fn directors_behind_ecmp_keep_every_connection_through_failures() {
    let mut e = Ecmp::up();
    let all: Vec<usize> = (1..=N).collect();
    for i in 1..=N {
        e.configure(i, MH);
        e.start(i);
        e.exabgp(i);
    }
    let t = e.wait_next_hops(&all, Duration::from_secs(60));
    say(format_args!(
        "router: ECMP route to 192.168.1.200 via {:?} ({:.1} s after ExaBGP started)",
        e.next_hops(),
        t.as_secs_f64()
    ));
    let fp: Vec<String> = (1..=N).map(|i| e.fingerprint(i)).collect();
    say(format_args!("mh table fingerprints: {fp:?}"));
    assert!(fp.iter().all(|f| *f == fp[0] && f.len() == 16), "{fp:?}");

    let client = Client::start(&e, "mh");
    let every: Vec<usize> = (0..CONNS).collect();
    let zero = Status {
        connected: 0,
        conns: (0..CONNS)
            .map(|i| Conn {
                conn: i,
                server: None,
                answers: 0,
                moved: false,
                error: None,
                longest_wait: 0.0,
            })
            .collect(),
    };
    let s = client.progress(&zero, &every, 10, Duration::from_secs(30));
    assert_eq!(s.connected, CONNS);
    let spread: Vec<u64> = all.iter().map(|&i| e.metric(i, "drlb_new_flows_total")).collect();
    say(format_args!(
        "{CONNS} connections up; servers {:?}; new flows per director {spread:?}",
        servers(&s)
    ));
    assert!(spread.iter().all(|&n| n > 0), "every director takes flows: {spread:?}");
    assert_eq!(e.mid_flow(&all), 0, "no flow began elsewhere yet");

    // kill -9 director 1's drlb: the router withdraws it (BGP hold time: the kernel
    // interface the session ran over died with drlb), its flows reach 2 and 3 mid-flow.
    let before = client.status().unwrap();
    let killed = Instant::now();
    e.kill(1);
    let t = e.wait_next_hops(&[2, 3], Duration::from_secs(15));
    say(format_args!("kill -9 drlb on director 1: route withdrawn after {:.2} s", t.as_secs_f64()));
    let s = client.progress(&before, &every, 10, Duration::from_secs(40));
    // Workers publish their counters once a tick: wait for it.
    let mid = poll("mid-flow counts on 2 and 3", Duration::from_secs(5), || {
        Some(e.mid_flow(&[2, 3])).filter(|&n| n > 0)
    });
    say(format_args!(
        "  all {CONNS} connections answered again within {:.1} s of the kill (longest wait {:.2} s); broken: {}; mid-flow scheduled on 2 and 3: {mid}",
        killed.elapsed().as_secs_f64(), longest(&s, &every), broken(&s, &every).len()
    ));
    assert_eq!(broken(&s, &every), Vec::<String>::new());
    assert!(mid > 0, "the survivors took director 1's flows mid-flow");

    // Director 1's drlb back: announced again, a share of the flows moves back to it
    // (mid-flow: it has no entry for them) once the router has its address again; every
    // connection then answers 10 more lines, those on director 1 included.
    let started = Instant::now();
    e.start(1);
    let t = e.wait_next_hops(&all, Duration::from_secs(30));
    say(format_args!(
        "drlb restarted on director 1: announced {:.2} s after it was started",
        t.as_secs_f64()
    ));
    let _first = poll("director 1's mid-flow count", Duration::from_secs(10), || {
        Some(e.metric(1, "drlb_mid_flow_scheduled_total")).filter(|&n| n > 0)
    });
    let back_at = started.elapsed();
    let before = client.status().unwrap();
    let s = client.progress(&before, &every, 10, Duration::from_secs(40));
    let back_after = e.metric(1, "drlb_mid_flow_scheduled_total");
    say(format_args!(
        "  first flow back on director 1 (mid-flow) {:.2} s after its start; {back_after} in all; every connection answered 10 lines more by {:.1} s; broken: {}",
        back_at.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        broken(&s, &every).len()
    ));
    assert_eq!(broken(&s, &every), Vec::<String>::new());

    // A whole director dies (drlb and ExaBGP, as a power cut): gone after the hold time.
    let before = client.status().unwrap();
    let killed = Instant::now();
    e.kill(2);
    e.sh_ok(&format!("exabgp_stop {} 2 KILL", e.dir.display()));
    let t = e.wait_next_hops(&[1, 3], Duration::from_secs(15));
    say(format_args!(
        "director 2 dies (drlb and ExaBGP, kill -9): route withdrawn after {:.2} s",
        t.as_secs_f64()
    ));
    let s = client.progress(&before, &every, 10, Duration::from_secs(40));
    say(format_args!(
        "  all answered again within {:.1} s; broken: {}",
        killed.elapsed().as_secs_f64(),
        broken(&s, &every).len()
    ));
    assert_eq!(broken(&s, &every), Vec::<String>::new());

    // Drain C, then remove it, on every director: the other connections are untouched.
    let on_c: Vec<usize> =
        s.conns.iter().filter(|c| c.server.as_deref() == Some("C")).map(|c| c.conn).collect();
    let others: Vec<usize> = every.iter().copied().filter(|i| !on_c.contains(i)).collect();
    let before = client.status().unwrap();
    for i in [1, 3] {
        e.adm(i, &["-e", "-t", "192.168.1.200:7000", "-r", "192.168.1.120", "-w", "0"]);
    }
    let s = client.progress(&before, &every, 10, Duration::from_secs(20));
    say(format_args!(
        "C drained on directors 1 and 3: its {} connections go on; broken: {}",
        on_c.len(),
        broken(&s, &every).len()
    ));
    assert_eq!(broken(&s, &every), Vec::<String>::new());
    let before = client.status().unwrap();
    for i in [1, 3] {
        e.adm(i, &["-d", "-t", "192.168.1.200:7000", "-r", "192.168.1.120"]);
    }
    let s = client.progress(&before, &others, 10, Duration::from_secs(20));
    say(format_args!(
        "C removed: the {} connections on A and B go on; broken among them: {}",
        others.len(),
        broken(&s, &others).len()
    ));
    assert_eq!(broken(&s, &others), Vec::<String>::new());
    drop(client);

    // The negative control, same topology: wrr (mid_flow = schedule, as IPVS with
    // sloppy_tcp) on directors 1 and 3; new connections; kill director 1's drlb.
    for i in [1, 3] {
        e.configure(i, WRR);
        e.adm(i, &["--reload"]);
    }
    let client = Client::start(&e, "wrr");
    let s = client.progress(&zero, &every, 10, Duration::from_secs(30));
    assert_eq!(s.connected, CONNS);
    let before = s;
    e.kill(1);
    e.wait_next_hops(&[3], Duration::from_secs(15));
    let s = poll("connections to answer again or break", Duration::from_secs(40), || {
        let s = client.status()?;
        let done = every.iter().all(|&i| {
            s.conns[i].error.is_some()
                || s.conns[i].moved
                || s.conns[i].answers >= before.conns[i].answers + 10
        });
        done.then_some(s)
    });
    let b = broken(&s, &every);
    say(format_args!("negative control, wrr: kill -9 drlb on director 1: {} of {CONNS} connections broken, e.g. {:?}", b.len(), b.first()));
    assert!(!b.is_empty(), "with wrr the kill must break connections");
}
