//! Path MTU discovery through the director (issue: ICMP errors to the right server).
//!
//! The client sits behind a router whose link towards it has an MTU of 1280; the
//! client's own interface has 1500, so it advertises an MSS of 1460 and the real server
//! sends full-sized segments with DF set. The router answers each with ICMP
//! "fragmentation needed" (MTU 1280) to their source, the VIP, which it routes to the
//! director. drlb relays the error to the real server that owns the connection, the
//! server lowers its path MTU, and a 400 KB download completes.
//!
//! The same download with those ICMP errors dropped on their way to the director (a
//! policy rule on the router: what drlb did before it relayed them) stalls: the test can
//! fail.
//! Topology: scripts/ecmp-topology.sh with one director and a static route to it.
mod common;
use common::*;
use std::process::{Command, Output};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Topo {
    sfx: String,
    dir: std::path::PathBuf,
}

impl Topo {
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

    fn run(&self, ns: &str, cmd: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", ns]).args(cmd).output().expect("ip netns exec")
    }

    fn ns(&self, role: &str) -> String {
        format!("drlb-{role}-{}", self.sfx)
    }

    /// Downloads A's 400 KB file through the VIP; the bytes received and curl's status.
    fn download(&self, max_secs: u32) -> (usize, bool) {
        let o = self.run(
            &self.ns("ec"),
            &["curl", "-s", "--max-time", &max_secs.to_string(), "http://192.168.1.200/big.bin"],
        );
        (o.stdout.len(), o.status.success())
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = self.sh(&format!("ecmp_down {} 1", self.dir.display()));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn frag_needed_reaches_the_real_server_and_a_large_download_completes() {
    let (dir, _) = scratch("pmtu");
    let t = Topo { sfx: format!("{}", std::process::id() % 100000 + 7), dir };
    t.sh_ok(&format!("ecmp_up {} 1", t.dir.display()));
    let (rt, sfx) = (t.ns("rt"), t.sfx.clone());
    // The narrow link: the router's side towards the client.
    t.sh_ok(&format!("ip -n {rt} link set rc{sfx} mtu 1280"));
    t.sh_ok(&format!("ip -n {rt} route add 192.168.1.200/32 via 192.168.1.121"));
    let cfg = write(
        &t.dir,
        "drlb.toml",
        "[dataplane]\nip = \"192.168.1.121\"\n\n[[service]]\nvip = \"192.168.1.200\"\nport = 80\n\
         scheduler = \"rr\"\n  [[service.backend]]\n  ip = \"192.168.1.118\"\n",
    );
    let mut eal: Vec<String> = ["netns", "exec", &t.ns("d1"), DRLB, "-l", "0-1", "--no-pci"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    eal.push("--file-prefix".into());
    eal.push(format!("pmtu{sfx}"));
    eal.extend(eal_mem());
    eal.push(format!("--vdev=net_af_packet0,iface=d1v{sfx}"));
    let sock = t.dir.join("drlb.sock").display().to_string();
    let mut d = spawn_cmd("ip", &eal, &app(&cfg, &["--control", &sock]));
    d.wait_ready(Duration::from_secs(30));
    poll("the VIP answering through the router", Duration::from_secs(20), || {
        let o = t.run(&t.ns("ec"), &["curl", "-s", "--max-time", "2", "http://192.168.1.200/"]);
        String::from_utf8_lossy(&o.stdout).contains("this is A").then_some(())
    });

    // Negative control: the router's "fragmentation needed" never reaches the director
    // (a policy rule blackholes the router's ICMP to the VIP).
    t.sh_ok(&format!("ip -n {rt} rule add to 192.168.1.200 ipproto icmp blackhole"));
    let (got, ok) = t.download(6);
    eprintln!("pmtu: frag-needed dropped before the director: {got} of 400000 bytes in 6 s");
    assert!(!ok && got < 400_000, "the download must stall without PMTU discovery ({got} bytes)");
    t.sh_ok(&format!("ip -n {rt} rule del to 192.168.1.200 ipproto icmp blackhole"));

    // With the errors relayed by drlb: the download completes, and the real server has
    // learned the path MTU towards the client.
    let (got, ok) = t.download(30);
    eprintln!("pmtu: frag-needed relayed by drlb: {got} of 400000 bytes");
    assert!(ok && got == 400_000, "{got} bytes");
    let route = t.run(&t.ns("rsa"), &["ip", "route", "get", "10.0.0.2", "from", "192.168.1.200"]);
    let route = String::from_utf8_lossy(&route.stdout).into_owned();
    eprintln!("pmtu: on A: {}", route.trim());
    assert!(route.contains("mtu 1280"), "A's route to the client: {route}");
    let (code, counters, err) = d.stop();
    assert_eq!(code, 0, "{err}");
    assert_eq!(counters.get("drop_icmp_error_no_flow"), Some(&0), "{counters:?}");
    assert_eq!(counters.get("drop_icmp_error_malformed"), Some(&0), "{counters:?}");
}
