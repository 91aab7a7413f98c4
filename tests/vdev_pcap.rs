//! The real binary and worker loop on `net_pcap`: a pcap the test builds (thousands of
//! flows to two services, plus junk, ARP and ping) in; every output frame checked.
mod common;
use common::*;
use drlb::testing::frames::{self, ip, Flow};
use drlb::testing::pcap::{self, FlowsSpec};
use drlb::wire::arp::{OP_REPLY, OP_REQUEST};
use drlb::wire::Mac;
use std::collections::HashMap;
use std::time::Duration;

// net_pcap0's own MAC ("pcap" in ASCII); net_pcap cannot change it (mac_addr_set is
// not supported), so the config leaves dataplane.mac unset.
const PORT: Mac = Mac([0x02, 0x70, 0x63, 0x61, 0x70, 0x00]);
const CLIENT: Mac = Mac([0x02, 0xc1, 0, 0, 0, 1]);
const A: Mac = Mac([0, 0x0c, 0x29, 0, 0, 0xa]);
const B: Mac = Mac([0, 0x0c, 0x29, 0, 0, 0xb]);
const C: Mac = Mac([0, 0x0c, 0x29, 0, 0, 0xc]);

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
vip = "192.168.1.200"
port = 53
protocol = "udp"
scheduler = "rr"
  [[service.backend]]
  ip = "192.168.1.118"
  mac = "00:0c:29:00:00:0a"
  [[service.backend]]
  ip = "192.168.1.120"
  mac = "00:0c:29:00:00:0c"
"#;

const TCP_FLOWS: u32 = 2000;
const TCP_PKTS: u32 = 3;
const UDP_FLOWS: u32 = 1000;

/// Flow identity of a TCP/UDP frame (untagged IPv4): src ip, src port, dst port, proto.
fn flow_of(f: &[u8]) -> (u32, u16, u16, u8) {
    let ihl = usize::from(f[14] & 0xf) * 4;
    let l4 = 14 + ihl;
    (
        u32::from_be_bytes(f[26..30].try_into().unwrap()),
        u16::from_be_bytes([f[l4], f[l4 + 1]]),
        u16::from_be_bytes([f[l4 + 2], f[l4 + 3]]),
        f[23],
    )
}

#[test]
fn forwards_thousands_of_flows_and_accounts_for_every_frame() {
    let (dir, prefix) = scratch("pcapfwd");
    let vip = ip("192.168.1.200");
    let cip = ip("10.9.9.9");
    let spec = FlowsSpec {
        flows: TCP_FLOWS,
        packets_per_flow: TCP_PKTS,
        dst_mac: PORT,
        src_mac: CLIENT,
        vip,
        port: 80,
        frame_len: 60,
        interleave: true,
    };
    let mut input = pcap::flows(&spec);
    for k in 0..2 {
        for i in 0..UDP_FLOWS {
            let f = Flow {
                dst_mac: PORT,
                src_mac: CLIENT,
                saddr: 0x0b00_0000 + i,
                daddr: vip,
                sport: 2000 + (i % 1000) as u16,
                dport: 53,
            };
            input.push(frames::udp(&f, 20 + k, 60));
        }
    }
    let junk = pcap::junk(PORT, CLIENT, vip);
    let njunk = junk.len() as u64;
    input.extend(junk);
    let arp_req = frames::arp_frame(Mac::BROADCAST, OP_REQUEST, CLIENT, cip, Mac::ZERO, vip);
    let arp_rep = frames::arp_frame(CLIENT, OP_REPLY, PORT, vip, CLIENT, cip);
    let ping = frames::icmp_echo(PORT, CLIENT, cip, vip, 3);
    let pong = frames::icmp_echo_msg(0, CLIENT, PORT, vip, cip, 3);
    input.push(arp_req);
    input.push(ping);
    let inp = dir.join("in.pcap");
    let outp = dir.join("out.pcap");
    pcap::write(&inp, &input).unwrap();
    let cfg = write(&dir, "c.toml", CFG);

    let eal = eal_args(&prefix, &pcap_rx_tx(&inp, &outp));
    let mut d = spawn(
        &eal,
        &[
            "--config".into(),
            cfg.display().to_string(),
            "--stats-interval".into(),
            "1".into(),
        ],
    );
    let n = input.len() as u64;
    d.wait_rx(n, Duration::from_secs(60));
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "exit code on SIGTERM\n{log}");

    // Counters: every received frame has exactly one outcome.
    assert_eq!(c["rx"], n, "{c:?}");
    // Sampled time inside drlb, RX to TX: present and ordered.
    assert!(c["latency_samples"] > 0, "{c:?}");
    assert!(
        c["latency_p50_ns"] <= c["latency_p99_ns"] && c["latency_p99_ns"] <= c["latency_max_ns"]
    );
    assert_eq!(
        c["forwarded"] + c["arp_replies"] + c["icmp_replies"] + c["arp_learned"] + c["dropped"],
        c["rx"],
        "{c:?}"
    );
    assert_eq!(
        c["forwarded"],
        u64::from(TCP_FLOWS * TCP_PKTS + 2 * UDP_FLOWS)
    );
    assert_eq!(c["new_flows"], u64::from(TCP_FLOWS + UDP_FLOWS));
    assert_eq!((c["arp_replies"], c["icmp_replies"]), (1, 1));
    assert_eq!(c["dropped"], njunk);
    for r in [
        "not_for_us",
        "runt",
        "unsupported_ethertype",
        "ipv4_bad_checksum",
        "no_service",
        "tcp_no_flow",
    ] {
        assert_eq!(c[&format!("drop_{r}")], 1, "drop_{r}");
    }
    assert_eq!(c["drop_ipv4_malformed"], 2);
    assert_eq!(c["drop_ipv4_truncated"], 2);
    assert_eq!(
        c["tx"] + c["tx_dropped"],
        c["forwarded"] + c["arp_replies"] + c["icmp_replies"] + c["ctrl_tx"]
    );
    assert_eq!(c["mbufs_in_use"], 0, "no mbuf leaked");

    // Output frames: the pcap must be complete (port closed on SIGTERM).
    let out = pcap::read(&outp).unwrap();
    assert_eq!(
        out.len() as u64,
        c["tx"],
        "every transmitted frame is in the tx pcap"
    );
    let mut inputs: HashMap<Vec<u8>, u32> = HashMap::new();
    for f in input.iter().filter(|f| f.len() > 12) {
        *inputs.entry(f[12..].to_vec()).or_default() += 1;
    }
    let mut backend_of: HashMap<(u32, u16, u16, u8), Mac> = HashMap::new();
    let mut per_backend: HashMap<(u16, Mac), u32> = HashMap::new();
    let (mut arp_seen, mut pong_seen) = (0, 0);
    for f in &out {
        if f == &arp_rep {
            arp_seen += 1;
            continue;
        }
        if f == &pong {
            pong_seen += 1;
            continue;
        }
        let left = inputs
            .get_mut(&f[12..])
            .expect("output frame whose bytes from offset 12 match no input frame");
        assert!(*left > 0, "more copies out than in");
        *left -= 1;
        assert_eq!(&f[6..12], &PORT.0, "source MAC is the port's");
        let dst = Mac(f[..6].try_into().unwrap());
        let key = flow_of(f);
        let allowed: &[Mac] = if key.2 == 80 { &[A, B] } else { &[A, C] };
        assert!(
            allowed.contains(&dst),
            "flow {key:?} sent to {dst}, not one of its service's backends"
        );
        match backend_of.insert(key, dst) {
            Some(prev) => assert_eq!(prev, dst, "flow {key:?} moved"),
            None => *per_backend.entry((key.2, dst)).or_default() += 1,
        }
    }
    assert_eq!((arp_seen, pong_seen), (1, 1), "ARP and ICMP replies exact");
    // wrr 3:1 over 2000 new flows on one worker: exactly 1500/500. rr: 500/500.
    assert_eq!(per_backend[&(80, A)], 1500);
    assert_eq!(per_backend[&(80, B)], 500);
    assert_eq!(per_backend[&(53, A)], 500);
    assert_eq!(per_backend[&(53, C)], 500);
    let _ = std::fs::remove_dir_all(dir);
}
