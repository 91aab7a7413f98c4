//! `--metrics`: scrape /metrics with curl and check the values against known traffic.
mod common;
use common::*;
use drlb::testing::pcap::{self, FlowsSpec};
use std::time::Duration;

const CFG: &str = "[dataplane]\nip = \"192.168.1.121\"\nflow_capacity = 4096\n[[service]]\nvip = \"192.168.1.200\"\nport = 80\nscheduler = \"rr\"\n\
[[service.backend]]\nip = \"192.168.1.118\"\nmac = \"00:0c:29:00:00:0a\"\n[[service.backend]]\nip = \"192.168.1.119\"\nweight = 0\nmac = \"00:0c:29:00:00:0b\"\n";

#[test]
fn metrics_match_known_traffic() {
    let (dir, prefix) = scratch("metrics");
    let cfgp = write(&dir, "drlb.toml", CFG);
    // 10 flows, SYN then ACK, plus the junk set: all 10 flows go to .118 (.119 drains).
    let spec = FlowsSpec { interleave: true, ..flows_spec(10, 2) };
    let mut frames = pcap::flows(&spec);
    frames.extend(pcap::junk(spec.dst_mac, spec.src_mac, spec.vip));
    let inp = dir.join("in.pcap");
    pcap::write(&inp, &frames).unwrap();
    let port = free_port();
    let eal = eal_args(&prefix, &format!("net_pcap0,rx_pcap={}", inp.display()));
    let mut d = spawn(&eal, &app(&cfgp, &["--metrics", &port.to_string()]));
    d.wait_rx(frames.len() as u64, Duration::from_secs(30));
    let b118 = r#"{vip="192.168.1.200",port="80",proto="tcp",backend="192.168.1.118:80"}"#;
    let b119 = r#"{vip="192.168.1.200",port="80",proto="tcp",backend="192.168.1.119:80"}"#;
    let want = [
        format!("drlb_rx_packets_total{{worker=\"0\"}} {}", frames.len()),
        "drlb_forwarded_packets_total{worker=\"0\"} 20".to_string(),
        format!("drlb_backend_packets_total{b118} 20"),
        format!("drlb_backend_bytes_total{b118} 1200"),
        format!("drlb_backend_connections_total{b118} 10"),
        format!("drlb_backend_packets_total{b119} 0"),
        format!("drlb_backend_weight{b119} 0"),
        format!("drlb_backend_weight{b118} 1"),
        format!("drlb_backend_active_connections{b118} 10"),
        format!("drlb_backend_mac_known{b118} 1"),
        format!("drlb_backend_up{b118} 1"),
        format!("drlb_backend_health_transitions_total{b118} 0"),
        "drlb_dropped_packets_total{reason=\"runt\"} 1".to_string(),
        "drlb_dropped_packets_total{reason=\"tcp_no_flow\"} 1".to_string(),
        "drlb_snapshot_generation 1".to_string(),
        "drlb_flow_entries{worker=\"0\"} 10".to_string(),
        "drlb_flow_capacity{worker=\"0\"} 4096".to_string(),
        r#"drlb_service_packets_total{vip="192.168.1.200",port="80",proto="tcp"} 20"#.to_string(),
        r#"drlb_service_connections_total{vip="192.168.1.200",port="80",proto="tcp"} 10"#
            .to_string(),
        "# TYPE drlb_backend_weight gauge".to_string(),
    ];
    let mut body = String::new();
    for _ in 0..40 {
        body = scrape(port);
        if want.iter().all(|w| body.lines().any(|l| l == w)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    for w in &want {
        assert!(body.lines().any(|l| l == w), "missing {w:?} in:\n{body}");
    }
    // Every metric the Grafana dashboard queries is in the scrape (a sample line).
    let dash =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/grafana-drlb.json"))
            .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&dash).expect("dashboard is JSON");
    let mut queried = std::collections::BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap();
            for (i, _) in e.match_indices("drlb_") {
                let name: String =
                    e[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                queried.insert(name);
            }
        }
    }
    assert!(queried.len() >= 15, "{queried:?}");
    for m in &queried {
        assert!(
            body.lines()
                .any(|l| l.starts_with(&format!("{m}{{")) || l.starts_with(&format!("{m} "))),
            "the dashboard queries {m}, which drlb does not export"
        );
    }
    let o = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "404");
    let (code, _, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    let _ = std::fs::remove_dir_all(dir);
}
