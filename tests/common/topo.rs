//! The seed topology in network namespaces (scripts/seed-topology.sh): client,
//! director (drlb on net_af_packet), real servers A, B and C on a bridge; every name
//! carries a per-run suffix, and it is torn down when the value drops (also when an
//! assertion fails).
use super::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub struct Topo {
    pub sfx: String,
    pub dir: std::path::PathBuf,
}

impl Topo {
    pub fn sh(&self, script: &str) -> std::process::Output {
        Command::new("bash")
            .arg("-c")
            .arg(format!("set -e; SFX={}; . {ROOT}/scripts/seed-topology.sh; {script}", self.sfx))
            .output()
            .expect("bash")
    }
    pub fn up(name: &str) -> Topo {
        let (dir, _) = scratch(name);
        // The process id and a per-process count: interface names stay within 15 bytes.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = Topo { sfx: format!("{}{n}", std::process::id() % 100000), dir };
        let o = t.sh(&format!("topology_up {}", t.dir.display()));
        assert!(o.status.success(), "topology_up: {}", String::from_utf8_lossy(&o.stderr));
        t
    }
    pub fn ns(&self, role: &str) -> String {
        format!("drlb-{role}-{}", self.sfx)
    }
    /// curl from the client; returns the body or "" on failure.
    pub fn curl(&self, path: &str, extra: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns("cli"), "curl", "-s", "--max-time", "10"])
            .args(extra)
            .arg(format!("http://192.168.1.200/{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    pub fn who(&self) -> char {
        let body = self.curl("", &[]);
        match body.trim_end().chars().last() {
            Some('.') => body.trim_end().chars().rev().nth(1).unwrap_or('?'),
            _ => '?',
        }
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = self.sh(&format!("topology_down {}", self.dir.display()));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Topo {
    /// `ip netns exec DIRECTOR drlb` and the EAL options for drlb on the director's veth.
    pub fn drlb_eal(&self, name: &str) -> Vec<String> {
        let mut eal: Vec<String> =
            ["netns", "exec", &self.ns("dir"), DRLB, "-l", "0-1", "--no-pci", "--file-prefix"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        eal.push(format!("drlb{name}{}", self.sfx));
        eal.extend(eal_mem());
        eal.push(format!("--vdev=net_af_packet0,iface=dv{}", self.sfx));
        eal
    }

    /// Runs `cmd` in namespace `role` (cli, dir, rsa, rsb, rsc).
    pub fn run(&self, role: &str, cmd: &[&str]) -> std::process::Output {
        Command::new("ip").args(["netns", "exec", &self.ns(role)]).args(cmd).output().unwrap()
    }

    /// Starts or stops real server `name`'s (A, B, C) web server.
    pub fn web(&self, name: char, on: bool) {
        let root = self.dir.join(format!("www-{}", name.to_ascii_lowercase()));
        let ns = self.ns(&format!("rs{}", name.to_ascii_lowercase()));
        let script = if on {
            format!("http_start {ns} {}", root.display())
        } else {
            format!("http_stop {}", root.display())
        };
        let o = self.sh(&script);
        assert!(o.status.success(), "{script}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

/// SIGHUP, then waits for the reload's log line (the `n`-th since start).
pub fn reload(d: &mut Running, n: &mut usize) {
    d.signal(libc::SIGHUP);
    *n += 1;
    d.wait_count("reload", *n, Duration::from_secs(10), |l| {
        l.contains("generation") && l.contains("reloaded")
    });
}
