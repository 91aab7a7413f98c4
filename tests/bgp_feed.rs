//! `drlbadm --bgp-feed` against a running drlb (net_pcap vdev): what it tells ExaBGP on
//! its stdout as services lose and regain their quorum, under a maintenance file, when
//! drlb is killed and comes back, when ExaBGP restarts it, and on SIGTERM.
mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// VIP .200 has two services, both with static MACs (available at once); VIP .201's
/// server has no MAC and nothing answers ARP on a pcap port: never available.
const CFG: &str = r#"[dataplane]
ip = "192.168.1.121"
flow_capacity = 4096

[[service]]
vip = "192.168.1.200"
port = 80
  [[service.backend]]
  ip = "192.168.1.118"
  mac = "00:0c:29:00:00:0a"

[[service]]
vip = "192.168.1.200"
port = 443
  [[service.backend]]
  ip = "192.168.1.118"
  mac = "00:0c:29:00:00:0a"
  [[service.backend]]
  ip = "192.168.1.119"
  mac = "00:0c:29:00:00:0b"

[[service]]
vip = "192.168.1.201"
port = 53
protocol = "udp"
  [[service.backend]]
  ip = "192.168.1.120"
"#;

const ANNOUNCE: &str = "announce route 192.168.1.200/32 next-hop 192.168.1.121";
const WITHDRAW: &str = "withdraw route 192.168.1.200/32 next-hop 192.168.1.121";

/// The feed as ExaBGP runs it: stdin and stdout are pipes; its stdout lines are
/// collected with their arrival time.
struct Feed {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Feed {
    fn start(sock: &Path, maintenance: &Path) -> Feed {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let mut child = Command::new(ADM)
            .args(["--bgp-feed", "--socket"])
            .arg(sock)
            .arg("--maintenance")
            .arg(maintenance)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(maintenance.with_extension(format!(
                    "feed{}.log",
                    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                )))
                .unwrap(),
            )
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().unwrap().push((Instant::now(), line));
            }
        });
        Feed { child, lines }
    }

    /// Waits for the `n`-th occurrence of `line` (counting from the start); when it came.
    fn wait(&self, line: &str, n: usize, timeout: Duration) -> Instant {
        poll(&format!("feed line #{n} {line:?}"), timeout, || {
            let l = self.lines.lock().unwrap();
            l.iter().filter(|(_, x)| x == line).nth(n - 1).map(|(t, _)| *t)
        })
    }

    fn count(&self, line: &str) -> usize {
        self.lines.lock().unwrap().iter().filter(|(_, x)| x == line).count()
    }

    fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().iter().map(|(_, l)| l.clone()).collect()
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_drlb(dir: &Path, prefix: &str, sock: &Path) -> Running {
    let cfg = dir.join("drlb.toml");
    let inp = dir.join("in.pcap");
    let eal = eal_args(prefix, &format!("net_pcap0,rx_pcap={}", inp.display()));
    let s = sock.display().to_string();
    let mut d = spawn(&eal, &app(&cfg, &["--control", &s]));
    d.wait_ready(Duration::from_secs(30));
    d
}

#[test]
fn the_feed_announces_what_drlb_can_serve_and_withdraws_on_every_reason() {
    let (dir, prefix) = scratch("bgpfeed");
    write(&dir, "drlb.toml", CFG);
    let spec = flows_spec(1, 1);
    drlb::testing::pcap::write(&dir.join("in.pcap"), &drlb::testing::pcap::flows(&spec)).unwrap();
    let sock = dir.join("ctl.sock");
    let maint = dir.join("maintenance");
    let t = Duration::from_secs(10);

    // The feed starts before drlb: nothing to say until drlb is there.
    let feed = Feed::start(&sock, &maint);
    std::thread::sleep(Duration::from_millis(300));
    assert!(feed.all().is_empty(), "{:?}", feed.all());
    let d = start_drlb(&dir, &prefix, &sock);
    feed.wait(ANNOUNCE, 1, t);
    // .201 is never available: withdrawn (the first state clears a predecessor's).
    feed.wait("withdraw route 192.168.1.201/32 next-hop 192.168.1.121", 1, t);
    assert_eq!(feed.count(ANNOUNCE), 1, "announced once: {:?}", feed.all());

    // Port 443 loses its quorum (both servers drained): the VIP is withdrawn, though
    // port 80 is fine — a route covers every port of the address.
    for rip in ["192.168.1.118", "192.168.1.119"] {
        d.adm_ok(&["-e", "-t", "192.168.1.200:443", "-r", rip, "-w", "0"]);
    }
    feed.wait(WITHDRAW, 1, t);
    d.adm_ok(&["-e", "-t", "192.168.1.200:443", "-r", "192.168.1.119", "-w", "1"]);
    feed.wait(ANNOUNCE, 2, t);

    // The maintenance file drains the director; removing it brings it back.
    std::fs::write(&maint, "").unwrap();
    let touched = Instant::now();
    let at = feed.wait(WITHDRAW, 2, t);
    assert!(at.duration_since(touched) < Duration::from_secs(1));
    std::fs::remove_file(&maint).unwrap();
    feed.wait(ANNOUNCE, 3, t);

    // ExaBGP restarting its process: a second feed says the same, harmlessly.
    let second = Feed::start(&sock, &maint);
    second.wait(ANNOUNCE, 1, t);
    drop(second);

    // drlb killed: the socket closes, the route is withdrawn at once.
    let killed = Instant::now();
    drop(d); // SIGKILL
    let at = feed.wait(WITHDRAW, 3, t);
    let took = at.duration_since(killed);
    eprintln!("withdrawn {:.0} ms after drlb was killed", took.as_secs_f64() * 1e3);
    assert!(took < Duration::from_secs(2), "{took:?}");
    // drlb back: announced again.
    let d = start_drlb(&dir, &prefix, &sock);
    feed.wait(ANNOUNCE, 4, Duration::from_secs(15));

    // SIGTERM: withdraw, then exit 0.
    let mut feed = feed;
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(feed.child.id() as i32, libc::SIGTERM) };
    // (Not Child::wait: it closes the feed's stdin first, which also ends it.)
    let st = poll("the feed to exit", t, || feed.child.try_wait().unwrap());
    assert_eq!(st.code(), Some(0));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(feed.count(WITHDRAW), 4, "{:?}", feed.all());

    // A feed whose stdin closes (ExaBGP gone) exits by itself.
    let mut gone = Feed::start(&sock, &maint);
    gone.wait(ANNOUNCE, 1, t);
    drop(gone.child.stdin.take());
    let st = poll("the feed to exit with its stdin", t, || gone.child.try_wait().unwrap());
    assert_eq!(st.code(), Some(0));
    let (code, _, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("VIP 192.168.1.200: announce"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}
