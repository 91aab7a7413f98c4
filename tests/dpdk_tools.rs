//! DPDK's own tools against a running drlb: `dpdk-telemetry.py` (the `/drlb/*`
//! telemetry commands) and `dpdk-dumpcap` (capture through rte_pdump), both from
//! Debian's dpdk package. They attach through the primary's runtime directory, so these
//! daemons run on shared hugepages (no `--in-memory`).
mod common;
use common::*;
use drlb::testing::pcap::{self, FlowsSpec};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const CFG: &str = r#"
[dataplane]
ip = "192.168.1.121"
flow_capacity = 65536

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

[[service]]
vip = "192.168.1.201"
port = 53
protocol = "udp"
  [[service.backend]]
  ip = "192.168.1.120"
  mac = "00:0c:29:00:00:0c"
"#;

/// `flows` TCP flows of `packets` frames each to 192.168.1.200:80, flow by flow.
fn write_flows(path: &std::path::Path, flows: u32, packets: u32) {
    let spec = FlowsSpec {
        flows,
        packets_per_flow: packets,
        dst_mac: drlb::wire::Mac([0x02, 0x70, 0x63, 0x61, 0x70, 0x00]),
        src_mac: drlb::wire::Mac([0x02, 0xc1, 0, 0, 0, 1]),
        vip: u32::from(std::net::Ipv4Addr::new(192, 168, 1, 200)),
        port: 80,
        frame_len: 60,
        interleave: false,
    };
    pcap::write(path, &pcap::flows(&spec)).unwrap();
}

/// EAL options on shared hugepages, so secondary processes can attach.
fn eal_shared(prefix: &str, vdev: &str) -> Vec<String> {
    let mem = eal_mem();
    assert!(
        mem.iter().any(|a| a == "--in-memory"),
        "dpdk-telemetry.py and dpdk-dumpcap need drlb on hugepages; run scripts/setup.sh (reserves them)"
    );
    [
        "-l",
        "0-1",
        "--no-pci",
        "--file-prefix",
        prefix,
        "-m",
        "256",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--vdev={vdev}")])
    .collect()
}

/// Asks `dpdk-telemetry.py -f PREFIX` each command; one parsed JSON reply per command.
fn telemetry(prefix: &str, cmds: &[&str]) -> Vec<Value> {
    let mut c = Command::new("dpdk-telemetry.py")
        .args(["-f", prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py (Debian package dpdk; scripts/setup.sh installs it)");
    let mut input = cmds.join("\n");
    input.push('\n');
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let replies: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l}: {e}")))
        .collect();
    assert_eq!(
        replies.len(),
        cmds.len(),
        "dpdk-telemetry.py output:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    replies
}

#[test]
fn dpdk_telemetry_shows_drlb_commands_with_live_counters() {
    let (dir, prefix) = scratch("telemetry");
    let pcap = dir.join("in.pcap");
    // 400 TCP flows x 2 packets to the wrr 3:1 service: 300 flows to .118, 100 to .119.
    write_flows(&pcap, 400, 2);
    let cfg = dir.join("drlb.toml");
    std::fs::write(&cfg, CFG).unwrap();
    let eal = eal_shared(&prefix, &format!("net_pcap0,rx_pcap={}", pcap.display()));
    let mut d = spawn(
        &eal,
        &[
            "--config".into(),
            cfg.display().to_string(),
            "--stats-interval".into(),
            "1".into(),
        ],
    );
    d.wait_rx(800, Duration::from_secs(30));
    // The listing is refreshed every 250 ms; the flow census needs a full sweep.
    std::thread::sleep(Duration::from_millis(1500));
    let r = telemetry(
        &prefix,
        &[
            "/",
            "/drlb/stats",
            "/drlb/workers",
            "/drlb/services",
            "/drlb/backends",
            "/drlb/backends,192.168.1.201:53",
            "/drlb/backends,10.9.9.9",
            "/help,/drlb/backends",
        ],
    );
    let list: Vec<&str> = r[0]["/"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for c in [
        "/drlb/stats",
        "/drlb/workers",
        "/drlb/services",
        "/drlb/backends",
    ] {
        assert!(list.contains(&c), "{c} not registered: {list:?}");
    }
    let stats = &r[1]["/drlb/stats"];
    assert_eq!(stats["rx"], 800, "{stats}");
    assert_eq!(stats["forwarded"], 800, "{stats}");
    assert_eq!(stats["new_flows"], 400, "{stats}");
    assert_eq!(stats["dropped"], 0, "{stats}");
    assert_eq!(stats["services"], 2);
    assert_eq!(stats["backends"], 3);
    let w = &r[2]["/drlb/workers"];
    assert_eq!(w["workers_total"], 1);
    assert_eq!(w["0"]["lcore"], 1);
    assert_eq!(w["0"]["rx"], 800);
    assert_eq!(w["0"]["flows"], 400, "flow-table occupancy: {w}");
    assert_eq!(w["0"]["flow_capacity"], 65536);
    let s = &r[3]["/drlb/services"];
    assert_eq!(s["services_total"], 2);
    assert_eq!(s["0"]["service"], "TCP 192.168.1.200:80");
    assert_eq!(s["0"]["scheduler"], "wrr");
    assert_eq!(s["0"]["connections"], 400);
    assert_eq!(s["0"]["packets"], 800);
    assert_eq!(s["1"]["service"], "UDP 192.168.1.201:53");
    let b = &r[4]["/drlb/backends"];
    assert_eq!(b["backends_total"], 3);
    assert_eq!(b["0"]["backend"], "192.168.1.118:80");
    assert_eq!(b["0"]["connections"], 300);
    assert_eq!(b["0"]["packets"], 600);
    assert_eq!(b["0"]["weight"], 3);
    assert_eq!(b["0"]["mac"], "00:0c:29:00:00:0a");
    assert_eq!(b["1"]["connections"], 100);
    let one = &r[5]["/drlb/backends"];
    assert_eq!(one["backends_total"], 1, "{one}");
    assert_eq!(one["0"]["backend"], "192.168.1.120:53");
    assert_eq!(r[6]["/drlb/backends"]["backends_total"], 0);
    assert!(r[7]["/help"]["/drlb/backends"]
        .as_str()
        .unwrap()
        .contains("VIP:PORT"));
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(c["forwarded"], 800);
    assert_no_dpdk_files(&prefix);
    let _ = std::fs::remove_dir_all(dir);
}

/// A stopped drlb leaves neither its runtime directory nor hugepage files.
/// Frames in a pcapng as (dst MAC, src MAC), read by tcpdump.
fn tcpdump_macs(file: &std::path::Path) -> Vec<(String, String)> {
    let out = Command::new("tcpdump")
        .args(["-nn", "-e", "-r"])
        .arg(file)
        .output()
        .expect("tcpdump (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "HH:MM:SS.us SRC > DST, ethertype IPv4 ..."
            let mut it = l.split_whitespace().skip(1);
            let src = it.next()?.to_string();
            it.next()?;
            let dst = it.next()?.trim_end_matches(',').to_string();
            Some((dst, src))
        })
        .collect()
}

#[test]
fn dpdk_dumpcap_captures_rx_and_tx_while_forwarding() {
    // Traffic from drlb-pktgen over memif, so it can stop before dumpcap detaches: DPDK
    // 22.11's pdump removes its callbacks without waiting for a worker that is inside
    // one, and dumpcap then frees its capture pool. Detaching at full rate crashed drlb's
    // worker once in CI (a segfault in mempool code). Operators: stop dumpcap with care
    // on a loaded port (README, "Packet capture").
    let (dir, prefix) = scratch("dumpcap");
    let cfg = dir.join("drlb.toml");
    std::fs::write(&cfg, CFG).unwrap();
    let msock = dir.join("m.sock");
    let eal = eal_shared(
        &prefix,
        &format!(
            "net_memif0,role=server,socket={},socket-abstract=no,mac=02:70:63:61:70:00",
            msock.display()
        ),
    );
    let d = spawn(
        &eal,
        &[
            "--config".into(),
            cfg.display().to_string(),
            "--stats-interval".into(),
            "1".into(),
        ],
    );
    for _ in 0..100 {
        if msock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cap = dir.join("cap.pcapng");
    let dumpcap = Command::new("timeout")
        .args(["30", "dpdk-dumpcap", "--file-prefix"])
        .arg(&prefix)
        .args(["-i", "net_memif0", "-a", "duration:5", "-q", "-w"])
        .arg(&cap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dpdk-dumpcap (Debian package dpdk-dev; scripts/setup.sh installs it)");
    std::thread::sleep(Duration::from_millis(1500));
    let mut gen_eal = vec![
        "-l".to_string(),
        "0".into(),
        "--no-pci".into(),
        "--file-prefix".into(),
    ];
    gen_eal.push(format!("{prefix}-gen"));
    gen_eal.extend(eal_mem());
    gen_eal.push(format!(
        "--vdev=net_memif0,role=client,socket={},socket-abstract=no",
        msock.display()
    ));
    let gen = Command::new(env!("CARGO_BIN_EXE_drlb-pktgen"))
        .args(&gen_eal)
        .args([
            "--", "--rate", "100000", "--secs", "1", "--warmup", "0", "--flows", "64",
        ])
        .args([
            "--vip",
            "192.168.1.201",
            "--port",
            "53",
            "--dst-mac",
            "02:70:63:61:70:00",
        ])
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let out = dumpcap.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dpdk-dumpcap failed:\n{err}\ndrlb:\n{}",
        d.log()
    );
    let frames = tcpdump_macs(&cap);
    assert!(frames.len() >= 400, "captured {}:\n{err}", frames.len());
    let port = "02:70:63:61:70:00";
    let rx = frames.iter().filter(|(dst, _)| dst == port).count();
    let tx: Vec<_> = frames.iter().filter(|(_, src)| src == port).collect();
    assert!(
        rx > 0 && !tx.is_empty(),
        "rx {rx} tx {} of {}",
        tx.len(),
        frames.len()
    );
    // What drlb sent went to the real servers' MACs, nowhere else.
    assert!(
        tx.iter().all(|(dst, _)| dst == "00:0c:29:00:00:0c"),
        "{tx:?}"
    );
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    // Every frame the generator got into the memif ring reached drlb and was forwarded.
    // (How many that is depends on the CPU time the generator had: three DPDK processes
    // share two CPUs here, so a fixed count would be a timing assertion.)
    let gen_out = String::from_utf8_lossy(&gen.stdout);
    let sent: u64 = gen_out
        .split("\"tx\":")
        .nth(1)
        .and_then(|t| t.split(',').next()?.parse().ok())
        .unwrap_or_else(|| panic!("drlb-pktgen printed no tx count: {gen_out}"));
    assert!(sent >= 10_000, "the generator sent only {sent}");
    // (The generator counts from the start of its timed window: drlb may see a few more.)
    assert!(c["rx"] >= sent, "generator sent {sent}: {c:?}");
    assert_eq!(c["forwarded"], c["rx"], "{c:?}");
    assert_eq!(c["mbufs_in_use"], 0, "capture leaked mbufs");
    assert_no_dpdk_files(&prefix);
    let _ = std::fs::remove_dir_all(dir);
}
