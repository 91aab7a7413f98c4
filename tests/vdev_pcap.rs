//! The real binary and worker loop on `net_pcap`: a pcap the test builds (thousands of
//! flows to two services, plus junk, ARP and ping) in; every output frame checked.
mod common;
use common::*;
use drlb::testing::frames::{self, ip, Flow};
use drlb::testing::pcap::{self, FlowsSpec};
use drlb::wire::arp::{OP_REPLY, OP_REQUEST};
use drlb::wire::Mac;
use std::time::Duration;

// net_pcap0's own MAC ("pcap" in ASCII); net_pcap cannot change it (mac_addr_set is
// not supported), so the config leaves dataplane.mac unset.
const PORT: Mac = PCAP_MAC;
const A: Mac = MAC_A;
const B: Mac = MAC_B;
const C: Mac = MAC_C;

/// [`web`], and UDP 192.168.1.200:53 rr over A and C.
fn config() -> String {
    web("flow_capacity = 65536\ngarp_repeat = 0")
        + r#"
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
"#
}

const TCP_FLOWS: u32 = 2000;
const TCP_PKTS: u32 = 3;
const UDP_FLOWS: u32 = 1000;

#[test]
fn forwards_thousands_of_flows_and_accounts_for_every_frame() {
    let (dir, prefix) = scratch("pcapfwd");
    let vip = ip("192.168.1.200");
    let cip = ip("10.9.9.9");
    let spec = FlowsSpec { interleave: true, ..flows_spec(TCP_FLOWS, TCP_PKTS) };
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
    let cfg = write(&dir, "c.toml", &config());

    let eal = eal_args(&prefix, &pcap_rx_tx(&inp, &outp));
    let mut d = spawn(&eal, &app(&cfg, &[]));
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
    assert_eq!(accounted(&c), c["rx"], "{c:?}");
    assert_eq!(c["forwarded"], u64::from(TCP_FLOWS * TCP_PKTS + 2 * UDP_FLOWS));
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
    assert_eq!(out.len() as u64, c["tx"], "every transmitted frame is in the tx pcap");
    let (per_backend, replies) = check_forwarded(&input, &out, &[arp_rep, pong], PORT, |dport| {
        if dport == 80 {
            vec![A, B]
        } else {
            vec![A, C]
        }
    });
    assert_eq!(replies, [1, 1], "ARP and ICMP replies exact");
    // wrr 3:1 over 2000 new flows on one worker: exactly 1500/500. rr: 500/500.
    assert_eq!(per_backend[&(80, A)], 1500);
    assert_eq!(per_backend[&(80, B)], 500);
    assert_eq!(per_backend[&(53, A)], 500);
    assert_eq!(per_backend[&(53, C)], 500);
    let _ = std::fs::remove_dir_all(dir);
}

/// Each flow's SYN, handshake ACK and data one after another (not interleaved), and
/// every 13th frame one for no service, dropped: each burst mixes frames the fast path
/// forwards with frames it stops at (a SYN and the ACK that completes a handshake change
/// their flow's state; the dropped one is nobody's flow), so the worker's runs of fast
/// hits resume after each. Every frame comes out, in the order it came in (none
/// overtaken by a later one nor overtaking an earlier one), each flow to one server.
#[test]
fn bursts_that_mix_handshakes_data_and_drops_come_out_whole_and_in_order() {
    let (dir, prefix) = scratch("pcapmix");
    let flows = pcap::flows(&flows_spec(500, 8));
    let mut input = Vec::new();
    let mut forwarded = Vec::new();
    for (i, f) in flows.into_iter().enumerate() {
        if i % 13 == 12 {
            let sport = 1000 + i as u16;
            let to_81 = Flow {
                dst_mac: PORT,
                src_mac: CLIENT,
                saddr: 0x0c00_0001,
                daddr: VIP,
                sport,
                dport: 81,
            };
            input.push(frames::tcp(&to_81, drlb::wire::tcp::flags::ACK, 10, 60));
        }
        forwarded.push(f.clone());
        input.push(f);
    }
    let njunk = (input.len() - forwarded.len()) as u64;
    let inp = dir.join("in.pcap");
    let outp = dir.join("out.pcap");
    pcap::write(&inp, &input).unwrap();
    let cfg = write(&dir, "c.toml", &web("flow_capacity = 65536\ngarp_repeat = 0"));
    let mut d = spawn(&eal_args(&prefix, &pcap_rx_tx(&inp, &outp)), &app(&cfg, &[]));
    let n = input.len() as u64;
    d.wait_rx(n, Duration::from_secs(60));
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "exit code on SIGTERM\n{log}");
    assert_eq!(accounted(&c), n, "{c:?}");
    assert_eq!(c["forwarded"], forwarded.len() as u64, "{c:?}");
    assert_eq!(c["new_flows"], 500, "{c:?}");
    assert_eq!(c["drop_no_service"], njunk, "{c:?}");
    assert_eq!(c["mbufs_in_use"], 0, "no mbuf leaked");
    let out: Vec<Vec<u8>> =
        pcap::read(&outp).unwrap().into_iter().filter(|f| !is_garp(f)).collect();
    assert_eq!(out.len(), forwarded.len());
    for (k, (o, i)) in out.iter().zip(&forwarded).enumerate() {
        assert_eq!(o[12..], i[12..], "frame {k} out of order");
    }
    check_forwarded(&forwarded, &out, &[], PORT, |_| vec![A, B]);
    let _ = std::fs::remove_dir_all(dir);
}

/// Two workers (`--lcores 0@0,1@0,2@1`: two worker lcores on this 2-CPU machine), each
/// with its own RX and TX queue (net_pcap: one rx_pcap and one tx_pcap per queue): every
/// frame of each queue comes out of the same worker's TX queue, checked; the counters
/// are per worker in Prometheus and summed in the final summary.
#[test]
fn two_workers_each_forward_their_own_queue_and_the_counters_add_up() {
    let (dir, prefix) = scratch("twoworkers");
    let per_worker = 1000;
    let spec = FlowsSpec { interleave: true, ..flows_spec(per_worker, 3) };
    // Disjoint flows per queue (net_pcap has no RSS: queue i replays file i).
    let inputs = [pcap::flows_from(&spec, 0), pcap::flows_from(&spec, per_worker)];
    let cfg = write(&dir, "c.toml", &config());
    let (eal, outs) = two_worker_pcap(&dir, &prefix, [&inputs[0], &inputs[1]]);
    let port = free_port();
    let mut d = spawn(&eal, &app(&cfg, &["--metrics", &port.to_string()]));
    let n: Vec<u64> = inputs.iter().map(|f| f.len() as u64).collect();
    d.wait_rx(n[0] + n[1], Duration::from_secs(60));
    let m = scrape(port);
    for (w, want) in n.iter().enumerate() {
        let line = format!("drlb_rx_packets_total{{worker=\"{w}\"}} {want}");
        assert!(m.lines().any(|l| l == line), "{line} not in:\n{m}");
        let line = format!("drlb_forwarded_packets_total{{worker=\"{w}\"}} {want}");
        assert!(m.lines().any(|l| l == line), "{line} not in:\n{m}");
    }
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    // net_pcap does not hash: nothing to key.
    assert!(log.contains("2 worker(s) on lcores [1, 2] (RSS off)"), "{log}");
    assert_eq!(c["rx"], n[0] + n[1], "{c:?}");
    assert_eq!(c["forwarded"], c["rx"], "{c:?}");
    assert_eq!(c["new_flows"], u64::from(2 * per_worker), "{c:?}");
    assert_eq!(c["tx"], c["rx"], "{c:?}");
    assert_eq!(c["mbufs_in_use"], 0, "no mbuf leaked");
    // Each worker's output is its own input, rewritten; wrr 3:1 per worker.
    for q in 0..2 {
        let out = pcap::read(&outs[q]).unwrap();
        assert_eq!(out.len() as u64, n[q], "queue {q}");
        let (per_backend, _) = check_forwarded(&inputs[q], &out, &[], PORT, |_| vec![A, B]);
        assert_eq!(per_backend[&(80, A)], 750, "queue {q}");
        assert_eq!(per_backend[&(80, B)], 250, "queue {q}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// At start drlb announces every VIP and the director IP by gratuitous ARP,
/// `garp_repeat` times a second apart, and a VIP added later the same way (as
/// keepalived does on a takeover): a director that takes the VIPs is found at once.
#[test]
fn announces_its_addresses_by_gratuitous_arp_at_start_and_when_a_vip_is_added() {
    let (dir, prefix) = scratch("garp");
    let inp = dir.join("in.pcap");
    let outp = dir.join("out.pcap");
    pcap::write(&inp, &pcap::flows(&flows_spec(1, 1))).unwrap();
    let cfg = write(&dir, "c.toml", &web("garp_repeat = 2"));
    let port = free_port();
    let sock = dir.join("ctl.sock");
    let eal = eal_args(&prefix, &pcap_rx_tx(&inp, &outp));
    let mut d = spawn(
        &eal,
        &app(&cfg, &["--metrics", &port.to_string(), "--control", &sock.display().to_string()]),
    );
    d.wait_ready(Duration::from_secs(30));
    let ctrl_tx = |want: u64| {
        poll(&format!("{want} control frames sent"), Duration::from_secs(10), || {
            let line = "drlb_control_tx_packets_total{worker=\"0\"} ";
            scrape(port)
                .lines()
                .find_map(|l| l.strip_prefix(line)?.parse::<u64>().ok())
                .filter(|&n| n >= want)
        })
    };
    ctrl_tx(4); // .200 and .121, twice each
    adm_ok(&sock, &["-A", "-t", "192.168.1.201:80", "-s", "rr"]);
    ctrl_tx(6);
    std::thread::sleep(Duration::from_millis(1500)); // no more rounds after the repeats
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    let garps: Vec<(u32, Vec<u8>)> = pcap::read(&outp)
        .unwrap()
        .into_iter()
        .filter(|f| f[12..14] == [0x08, 0x06] && f[28..32] == f[38..42])
        .map(|f| (u32::from_be_bytes(f[28..32].try_into().unwrap()), f))
        .collect();
    let count = |a: &str| garps.iter().filter(|(ip_, _)| *ip_ == ip(a)).count();
    assert_eq!(
        (count("192.168.1.200"), count("192.168.1.121"), count("192.168.1.201")),
        (2, 2, 2),
        "{c:?}"
    );
    for (_, f) in &garps {
        assert_eq!(&f[0..6], &Mac::BROADCAST.0, "broadcast");
        assert_eq!(&f[6..12], &PORT.0, "from the port's MAC");
        assert_eq!(&f[22..28], &PORT.0, "sender hardware address: the port's MAC");
        assert_eq!(u16::from_be_bytes([f[20], f[21]]), OP_REQUEST);
    }
    assert_eq!(garps.len() as u64, c["ctrl_tx"], "nothing else from the control plane");
    let _ = std::fs::remove_dir_all(dir);
}

/// Two workers: an ICMP "fragmentation needed" about a flow that worker 0 owns arrives
/// on worker 1's queue (RSS hashes an ICMP error by the router's address, not the
/// flow's). Worker 1 hands it to worker 0, which forwards it to the flow's server on
/// its own TX queue; an error about a flow nobody has is counted as a miss.
#[test]
fn an_icmp_error_reaches_the_worker_that_owns_its_flow() {
    let (dir, prefix) = scratch("icmpredir");
    let (vip, cip, router) = (ip("192.168.1.200"), ip("10.0.0.7"), ip("10.0.0.1"));
    let f =
        Flow { dst_mac: PORT, src_mac: CLIENT, saddr: cip, daddr: vip, sport: 40000, dport: 80 };
    let q0 = vec![frames::tcp(&f, 0x02, 0, 60), frames::tcp(&f, 0x10, 0, 60)];
    // Worker 1 first works through filler (UDP to no service), so worker 0 has the flow
    // by the time it reaches the errors.
    let filler = Flow { dport: 9, ..f };
    let mut q1: Vec<Vec<u8>> = (0..50_000).map(|_| frames::udp(&filler, 0, 60)).collect();
    let quote = |dport: u16| {
        let r = Flow { dst_mac: CLIENT, src_mac: A, saddr: vip, daddr: cip, sport: 80, dport };
        frames::tcp(&r, 0x10, 1400, 60)[14..42].to_vec()
    };
    let error =
        |dport| frames::icmp_error((PORT, CLIENT), (router, vip), (3, 4, 1280), &quote(dport));
    q1.push(error(40000));
    q1.push(error(40001)); // no such flow anywhere
    let cfg = write(&dir, "c.toml", &config());
    let (eal, outs) = two_worker_pcap(&dir, &prefix, [&q0, &q1]);
    let mut d = spawn(&eal, &app(&cfg, &[]));
    d.wait_rx((q0.len() + q1.len()) as u64, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(c["icmp_errors_redirected"], 2, "{c:?}");
    assert_eq!(c["icmp_redirect_hits"], 1, "{c:?}");
    assert_eq!(c["icmp_redirect_misses"], 1, "{c:?}");
    assert_eq!(c["mbufs_in_use"], 0, "no mbuf leaked");
    let out0 = pcap::read(&outs[0]).unwrap();
    let want = error(40000);
    let got: Vec<&Vec<u8>> = out0.iter().filter(|o| o[12..] == want[12..]).collect();
    assert_eq!(got.len(), 1, "the error leaves worker 0's queue once");
    let syn_out = &out0[0];
    assert_eq!(got[0][..6], syn_out[..6], "to the flow's server");
    assert!(pcap::read(&outs[1]).unwrap().iter().all(|o| o[12..] != want[12..]));
    let _ = std::fs::remove_dir_all(dir);
}
