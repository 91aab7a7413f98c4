//! DPDK's own tools against a running drlb: `dpdk-telemetry.py` (the `/drlb/*`
//! telemetry commands) and `dpdk-dumpcap` (capture through rte_pdump), both from
//! Debian's dpdk package. They attach through the primary's runtime directory, so these
//! daemons run on shared hugepages (no `--in-memory`).
mod common;
use common::*;
use drlb::testing::pcap;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `flows` TCP flows of `packets` frames each to 192.168.1.200:80, flow by flow.
fn write_flows(path: &std::path::Path, flows: u32, packets: u32) {
    pcap::write(path, &pcap::flows(&flows_spec(flows, packets))).unwrap();
}

/// EAL options on shared hugepages, so secondary processes can attach.
fn eal_shared(prefix: &str, vdev: &str) -> Vec<String> {
    let mem = eal_mem();
    assert!(
        mem.iter().any(|a| a == "--in-memory"),
        "dpdk-telemetry.py and dpdk-dumpcap need drlb on hugepages; run scripts/setup.sh (reserves them)"
    );
    ["-l", "0-1", "--no-pci", "--file-prefix", prefix, "-m", "256"]
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
    let cfg = write(&dir, "drlb.toml", &cfg());
    let eal = eal_shared(&prefix, &format!("net_pcap0,rx_pcap={}", pcap.display()));
    let mut d = spawn(&eal, &app(&cfg, &[]));
    d.wait_rx(800, Duration::from_secs(30));
    // The listing is refreshed every 250 ms and the flow census needs a full sweep of
    // the table: wait until both show every flow.
    poll_noting("the flow census in telemetry", Duration::from_secs(30), |seen| {
        let r = telemetry(&prefix, &["/drlb/workers", "/drlb/services"]);
        let (w, s) = (&r[0]["/drlb/workers"]["0"], &r[1]["/drlb/services"]["0"]);
        *seen = format!("worker {w}, service {s}");
        (w["flows"] == 400 && s["connections"] == 400).then_some(())
    });
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
            "/drlb/port",
        ],
    );
    let list: Vec<&str> = r[0]["/"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    for c in ["/drlb/stats", "/drlb/workers", "/drlb/services", "/drlb/backends", "/drlb/port"] {
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
    assert!(r[7]["/help"]["/drlb/backends"].as_str().unwrap().contains("VIP:PORT"));
    let port = &r[8]["/drlb/port"];
    assert_eq!((port["link"].as_str(), port["imissed"].as_u64()), (Some("up"), Some(0)), "{port}");
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
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "HH:MM:SS.us [IFACE DIRECTION] SRC > DST, ethertype IPv4 ..." (tcpdump 4.99
            // names the pcapng interface and direction before the addresses).
            let w: Vec<&str> = l.split_whitespace().collect();
            let is_mac = |s: &str| s.len() == 17 && s.split(':').count() == 6;
            let i = (0..w.len().saturating_sub(2)).find(|&i| is_mac(w[i]) && w[i + 1] == ">")?;
            Some((w[i + 2].trim_end_matches(',').to_string(), w[i].to_string()))
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
    let cfg = write(&dir, "drlb.toml", &cfg());
    let msock = dir.join("m.sock");
    let eal = eal_shared(
        &prefix,
        &format!(
            "net_memif0,role=server,socket={},socket-abstract=no,mac=02:70:63:61:70:00",
            msock.display()
        ),
    );
    let mut d = spawn(&eal, &app(&cfg, &[]));
    d.wait_ready(Duration::from_secs(30));
    let cap = dir.join("cap.pcapng");
    let mut dumpcap = Command::new("timeout")
        .args(["30", "dpdk-dumpcap", "--file-prefix"])
        .arg(&prefix)
        .args(["-i", "net_memif0", "-a", "duration:5", "-w"])
        .arg(&cap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dpdk-dumpcap (Debian package dpdk-dev; scripts/setup.sh installs it)");
    // Traffic starts once dumpcap's capture loop runs (it attaches as a secondary
    // process, which takes a while on a busy machine): its progress line "Packets
    // captured:" appears on stderr (unbuffered) once pdump is enabled.
    let progress = Arc::new(Mutex::new(String::new()));
    let stderr_reader = {
        let (mut err, progress) = (dumpcap.stderr.take().unwrap(), progress.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut err, &mut buf) {
                if n == 0 {
                    break;
                }
                progress.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    poll("dpdk-dumpcap to start capturing", Duration::from_secs(30), || {
        progress.lock().unwrap().contains("Packets captured:").then_some(())
    });
    let mut gen_eal = vec!["-l".to_string(), "0".into(), "--no-pci".into(), "--file-prefix".into()];
    gen_eal.push(format!("{prefix}-gen"));
    gen_eal.extend(eal_mem());
    gen_eal.push(format!(
        "--vdev=net_memif0,role=client,socket={},socket-abstract=no",
        msock.display()
    ));
    // --hold: the generator stays connected, not polling, until drlb has stopped (a memif
    // peer disconnecting under a polling lcore can crash DPDK 22.11's memif PMD).
    let mut gen = Command::new(env!("CARGO_BIN_EXE_drlb-pktgen"))
        .args(&gen_eal)
        .args(["--", "--rate", "100000", "--secs", "1", "--warmup", "0", "--flows", "64"])
        .args(["--vip", "192.168.1.201", "--port", "53", "--dst-mac", "02:70:63:61:70:00"])
        .arg("--hold")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let report = std::io::BufRead::lines(std::io::BufReader::new(gen.stdout.take().unwrap()))
        .map_while(Result::ok)
        .find(|l| l.starts_with('{'));
    let Some(gen_out) = report else {
        let out = gen.wait_with_output().unwrap();
        panic!("drlb-pktgen printed no report: {}", String::from_utf8_lossy(&out.stderr))
    };
    let status = dumpcap.wait().unwrap();
    stderr_reader.join().unwrap();
    let err = progress.lock().unwrap().clone();
    let err = err.rsplit('\r').next().unwrap_or_default();
    assert!(status.success(), "dpdk-dumpcap failed:\n{err}\ndrlb:\n{}", d.log());
    let frames = tcpdump_macs(&cap);
    assert!(frames.len() >= 400, "captured {}:\n{err}", frames.len());
    let port = "02:70:63:61:70:00";
    let rx = frames.iter().filter(|(dst, _)| dst == port).count();
    let tx: Vec<_> = frames.iter().filter(|(_, src)| src == port).collect();
    assert!(rx > 0 && !tx.is_empty(), "rx {rx} tx {} of {}", tx.len(), frames.len());
    // What drlb sent went to the real servers' MACs, nowhere else (but its gratuitous
    // ARPs, to everyone).
    assert!(
        tx.iter().all(|(dst, _)| dst == "00:0c:29:00:00:0c" || dst == "ff:ff:ff:ff:ff:ff"),
        "{tx:?}"
    );
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    // SAFETY: kill(2) on our child (held by --hold until now).
    unsafe { libc::kill(gen.id() as i32, libc::SIGTERM) };
    let gen_end = gen.wait_with_output().unwrap();
    assert!(gen_end.status.success(), "{}", String::from_utf8_lossy(&gen_end.stderr));
    // Every frame the generator got into the memif ring reached drlb and was forwarded.
    // (How many that is depends on the CPU time the generator had: three DPDK processes
    // share two CPUs here, so a fixed count would be a timing assertion.)
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
