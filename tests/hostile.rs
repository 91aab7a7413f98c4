//! Hostile input against the real binary: malformed and random frames, abuse of the
//! control socket while forwarding at full rate, hostile config files, SIGTERM at full
//! rate, and a worker that panics.
mod common;
use common::*;
use drlb::testing::frames::{self, Flow};
use drlb::testing::pcap;
use drlb::testing::Rng;
use drlb::wire::tcp::flags::{ACK, SYN};
use drlb::wire::Mac;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PORT: Mac = PCAP_MAC;
const BACKENDS: [&str; 2] = ["00:0c:29:00:00:0a", "00:0c:29:00:00:0b"];

const CFG: &str = r#"
[dataplane]
ip = "192.168.1.121"
flow_capacity = 65536

[[service]]
vip = "192.168.1.200"
port = 80
  [[service.backend]]
  ip = "192.168.1.118"
  mac = "00:0c:29:00:00:0a"
  [[service.backend]]
  ip = "192.168.1.119"
  mac = "00:0c:29:00:00:0b"
"#;

/// Random frames: pure noise, and noise behind our MAC with IPv4, ARP or 802.1Q
/// ethertypes (so it reaches the deeper parsers).
fn garbage(n: usize) -> Vec<Vec<u8>> {
    let mut r = Rng(0x1234_5678_9abc_def1);
    (0..n)
        .map(|i| {
            let len = 1 + (r.next_u64() % 1514) as usize;
            let mut f = r.bytes(len);
            if i % 4 != 0 && len >= 14 {
                f[..6].copy_from_slice(&PORT.0);
                let et: [u8; 2] = match i % 4 {
                    1 => [0x08, 0x00],
                    2 => [0x08, 0x06],
                    _ => [0x81, 0x00],
                };
                f[12..14].copy_from_slice(&et);
                if i % 8 == 1 && len >= 34 {
                    f[14] = 0x45; // plausible IPv4 header start
                }
            }
            f
        })
        .collect()
}

#[test]
fn malformed_and_random_frames_are_counted_and_nothing_bad_is_forwarded() {
    let (dir, prefix) = scratch("malformed");
    let vip = u32::from(std::net::Ipv4Addr::new(192, 168, 1, 200));
    // Valid flows, then every malformed shape and 4000 random frames, then more valid
    // flows: forwarding must carry on after the junk.
    let before = pcap::flows(&flows_spec(200, 2));
    // The same flows with one address bit flipped: the IPv4 checksum no longer holds.
    let corrupted: Vec<Vec<u8>> = before
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f[29] ^= 0x80;
            f
        })
        .collect();
    // New clients after the junk: the flow table still takes new flows.
    let tail: Vec<Vec<u8>> = (0..200u32)
        .flat_map(|i| {
            let f = Flow {
                dst_mac: PORT,
                src_mac: CLIENT,
                saddr: u32::from(std::net::Ipv4Addr::new(172, 16, 0, 0)) + i,
                daddr: vip,
                sport: 40_000 + i as u16,
                dport: 80,
            };
            [frames::tcp(&f, SYN, 0, 60), frames::tcp(&f, ACK, 1, 60)]
        })
        .collect();
    let junk = pcap::junk(PORT, CLIENT, vip);
    let noise = garbage(4000);
    let mut input = before.clone();
    input.extend(junk.iter().cloned());
    input.extend(noise.iter().cloned());
    input.extend(corrupted.iter().cloned());
    input.extend(tail.iter().cloned());
    let inp = dir.join("in.pcap");
    let outp = dir.join("out.pcap");
    pcap::write(&inp, &input).unwrap();
    let cfg = write(&dir, "c.toml", CFG);
    let eal = eal_args(&prefix, &pcap_rx_tx(&inp, &outp));
    let mut d = spawn(&eal, &app(&cfg, &[]));
    let n = input.len() as u64;
    d.wait_rx(n, Duration::from_secs(60));
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(c["rx"], n, "{c:?}");
    assert_eq!(accounted(&c), c["rx"], "every frame has one outcome: {c:?}");
    let drops: u64 = c.iter().filter(|(k, _)| k.starts_with("drop_")).map(|(_, v)| v).sum();
    assert_eq!(drops, c["dropped"], "drop reasons add up");
    // Forwarded: exactly the valid flows (the bit-flipped ones fail their checksum).
    let valid = (before.len() + tail.len()) as u64;
    assert_eq!(c["forwarded"], valid, "{c:?}");
    assert_eq!(c["new_flows"], 400, "{c:?}");
    assert!(c["drop_ipv4_bad_checksum"] >= corrupted.len() as u64, "{c:?}");
    assert_eq!(c["mbufs_in_use"], 0);
    // Every transmitted frame is a valid input frame with only its MACs rewritten, to a
    // real server.
    let out = pcap::read(&outp).unwrap();
    assert_eq!(out.len() as u64, c["tx"]);
    let valid_tails: HashSet<&[u8]> = before.iter().chain(tail.iter()).map(|f| &f[12..]).collect();
    for f in out.iter().filter(|f| !is_garp(f)) {
        let dst = Mac(f[..6].try_into().unwrap()).to_string();
        assert!(BACKENDS.contains(&dst.as_str()), "sent to {dst}");
        assert_eq!(&f[6..12], &PORT.0);
        assert!(valid_tails.contains(&f[12..]), "forwarded a frame that was not valid");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// One raw request on the control socket; the reply (empty when the server hung up).
fn raw(sock: &Path, req: &[u8]) -> String {
    raw_on(UnixStream::connect(sock).unwrap(), req)
}

fn raw_on(mut s: UnixStream, req: &[u8]) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(req);
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    r
}

fn forwarded_now(sock: &Path) -> u64 {
    let r = raw(sock, b"{\"cmd\":\"list\"}\n");
    let v: serde_json::Value =
        serde_json::from_str(r.trim()).unwrap_or_else(|e| panic!("{r}: {e}"));
    assert_eq!(v["ok"], true, "{r}");
    v["data"]["services"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["in_pkts"].as_u64().unwrap())
        .sum()
}

/// drlb replaying `flows` flows x 4 packets at full rate (net_pcap infinite_rx), with its
/// control socket in `dir`.
fn full_rate(dir: &Path, prefix: &str, flows: u32) -> (Running, std::path::PathBuf) {
    let inp = dir.join("in.pcap");
    pcap::write(&inp, &pcap::flows(&flows_spec(flows, 4))).unwrap();
    let cfg = write(dir, "c.toml", CFG);
    let sock = dir.join("ctl.sock");
    let eal = eal_args(prefix, &format!("net_pcap0,rx_pcap={},infinite_rx=1", inp.display()));
    let sock_arg = sock.display().to_string();
    let d = spawn(&eal, &app(&cfg, &["--control", &sock_arg, "--mbufs", "8191"]));
    (d, sock)
}

#[test]
fn control_socket_abuse_does_not_disturb_forwarding() {
    let (dir, prefix) = scratch("sockabuse");
    let (mut d, sock) = full_rate(&dir, &prefix, 512);
    d.wait_rx(100_000, Duration::from_secs(30));
    let f0 = forwarded_now(&sock);

    // A 10 MB request: refused with a message once past the cap, connection closed.
    // Connected before the crowd below, so it is not the one told "busy".
    let big_conn = UnixStream::connect(&sock).unwrap();
    let big = std::thread::spawn(move || raw_on(big_conn, &vec![b'{'; 10 << 20]));
    // Garbage bytes, and a client that never finishes its line.
    assert!(raw(&sock, b"\x00\xff\xfe\x01garbage\n").contains("\"ok\":false"));
    let mut stalled = UnixStream::connect(&sock).unwrap();
    stalled.write_all(b"{\"cmd\":").unwrap();
    // 100 concurrent clients: each gets an answer (the listing, or "busy" past 64).
    let t0 = Instant::now();
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || raw(&sock, b"{\"cmd\":\"list\"}\n"))
        })
        .collect();
    let replies: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ok = replies.iter().filter(|r| r.contains("\"ok\":true")).count();
    let busy = replies.iter().filter(|r| r.contains("busy")).count();
    assert_eq!(ok + busy, 100, "every client answered: {:?}", &replies[..3]);
    assert!(ok >= 36, "{ok} served");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let r = big.join().unwrap();
    assert!(r.contains("too large"), "10 MB request: {:.200}", r);
    // The stalled client is cut off after the deadline with an error.
    stalled.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = String::new();
    let _ = stalled.read_to_string(&mut r);
    assert!(r.contains("\"ok\":false"), "stalled client: {r}");

    // The next valid client is answered normally, and forwarding went on throughout.
    let f1 = forwarded_now(&sock);
    assert!(f1 > f0 + 100_000, "forwarding stalled: {f0} -> {f1}");
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    let bad: u64 = c
        .iter()
        .filter(|(k, _)| k.starts_with("drop_") && *k != "drop_tcp_no_flow")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(bad, 0, "{c:?}");
    assert_eq!(c["mbufs_in_use"], 0);
    assert!(!sock.exists(), "control socket left behind");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn hostile_config_files_are_rejected_with_a_message() {
    let (dir, _) = scratch("badcfg");
    let mut r = Rng(7);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "huge",
            {
                let mut v = b"[dataplane]\nip = \"192.168.1.121\"\n".to_vec();
                v.extend(
                    std::iter::repeat_n(
                        b"#xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n".as_slice(),
                        200_000,
                    )
                    .flatten(),
                );
                v
            },
            "a config is at most",
        ),
        ("binary", r.bytes(8192), "not UTF-8"),
        (
            "nested_arrays",
            format!("a = {}{}\n", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            "recursion limit",
        ),
        (
            "nested_tables",
            format!("a = {}1{}\n", "{b = ".repeat(50_000), "}".repeat(50_000)).into_bytes(),
            "recursion limit",
        ),
        (
            "duplicate",
            b"[dataplane]\nip = \"1.2.3.4\"\nip = \"1.2.3.5\"\n".to_vec(),
            "duplicate key",
        ),
        ("nul", b"[dataplane]\nip = \"1.2.3.4\0\"\n".to_vec(), "line 2"),
        ("empty", Vec::new(), "dataplane"),
    ];
    for (name, bytes, want) in cases {
        let p = dir.join(format!("{name}.toml"));
        std::fs::write(&p, &bytes).unwrap();
        let o = Command::new(DRLB).arg("--check").arg(&p).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err:.300} lacks {want:?}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Files a stopped drlb with this prefix could leave: runtime dir, hugepage files.
fn leftovers(prefix: &str) -> Vec<String> {
    let mut v = Vec::new();
    if Path::new(&format!("/var/run/dpdk/{prefix}")).exists() {
        v.push(format!("/var/run/dpdk/{prefix}"));
    }
    if let Ok(rd) = std::fs::read_dir("/dev/hugepages") {
        v.extend(
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix)),
        );
    }
    v
}

#[test]
fn sigterm_at_full_rate_exits_within_a_second_and_cleans_up() {
    let (dir, prefix) = scratch("sigterm");
    let (mut d, sock) = full_rate(&dir, &prefix, 1024);
    d.wait_rx(1_000_000, Duration::from_secs(30));
    let t0 = Instant::now();
    d.signal(libc::SIGTERM);
    let status = loop {
        if let Some(st) = d.child.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "no exit 5 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = t0.elapsed();
    eprintln!("SIGTERM at full rate: exited in {took:?}");
    assert_eq!(status.code(), Some(0), "{}", d.log());
    assert!(took < Duration::from_secs(1), "exit took {took:?}");
    assert!(!sock.exists(), "control socket left behind");
    assert_eq!(leftovers(&prefix), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_worker_panic_stops_the_process_with_a_clear_message() {
    let (dir, prefix) = scratch("panic");
    let inp = dir.join("in.pcap");
    pcap::write(&inp, &pcap::flows(&flows_spec(16, 2))).unwrap();
    let cfg = write(&dir, "c.toml", CFG);
    let sock = dir.join("ctl.sock");
    let eal = eal_args(&prefix, &format!("net_pcap0,rx_pcap={}", inp.display()));
    let t0 = Instant::now();
    let out = Command::new(DRLB)
        .env("DRLB_FAULT", "worker_panic")
        .args(&eal)
        .arg("--")
        .args(["--config", cfg.to_str().unwrap(), "--control", sock.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert!(err.contains("fault injection"), "{err}");
    assert!(
        err.contains(
            "drlb: error: worker 0 on lcore 1 panicked (message above); stopping drlb, exit code 1"
        ),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("counter rx "));
    assert!(!sock.exists(), "control socket left behind");
    assert_eq!(leftovers(&prefix), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(dir);
}
