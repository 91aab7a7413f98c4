//! `dataplane.mtu` on the real binary and worker loop: 9000-byte IP packets through
//! `net_pcap` forwarded whole, one byte more dropped and counted (`oversize`); the
//! default 1500 drops a jumbo frame (which net_pcap hands over in a chain of mbufs)
//! without leaking one; the kernel interface gets the port's MTU as far as net_tap
//! carries it, and the kernel answers pings up to it unfragmented.
mod common;
use common::*;
use drlb::testing::frames::{self, ip, Flow};
use drlb::testing::pcap;
use drlb::wire::tcp::flags::{ACK, SYN};
use std::time::Duration;

fn flow(i: u32) -> Flow {
    Flow {
        dst_mac: PCAP_MAC,
        src_mac: CLIENT,
        saddr: ip("10.1.0.0") + i,
        daddr: VIP,
        sport: 20_000 + i as u16,
        dport: 80,
    }
}

/// Runs drlb with `dataplane` (TOML lines) on `input`; returns the counters and what
/// it sent.
fn run(
    name: &str,
    dataplane: &str,
    input: &[Vec<u8>],
) -> (std::collections::HashMap<String, u64>, Vec<Vec<u8>>) {
    let (dir, prefix) = scratch(name);
    let (inp, outp) = (dir.join("in.pcap"), dir.join("out.pcap"));
    pcap::write(&inp, input).unwrap();
    let cfg =
        write(&dir, "c.toml", &web(&format!("flow_capacity = 4096\ngarp_repeat = 0\n{dataplane}")));
    let mut d = spawn(&eal_args(&prefix, &pcap_rx_tx(&inp, &outp)), &app(&cfg, &[]));
    d.wait_rx(input.len() as u64, Duration::from_secs(30));
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    let out = pcap::read(&outp).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    (c, out)
}

/// What drlb sends for `frame` (forwarded to A or B): the same bytes after the MACs.
fn same_but_macs(sent: &[u8], frame: &[u8]) -> bool {
    sent.len() == frame.len()
        && sent[12..] == frame[12..]
        && (sent[..6] == MAC_A.0 || sent[..6] == MAC_B.0)
}

#[test]
fn jumbo_frames_are_forwarded_whole_and_one_byte_more_is_dropped() {
    // 40 flows: a SYN, a 9000-byte segment (a 9014-byte frame), a 9001-byte one; and a
    // 9000-byte UDP datagram to no service, to show it gets as far as the service lookup.
    let mut input = Vec::new();
    let mut jumbo = Vec::new();
    for i in 0..40 {
        input.push(frames::tcp(&flow(i), SYN, 0, 60));
        let j = frames::tcp(&flow(i), ACK, 9000 - 40, 60);
        assert_eq!(j.len(), 9014);
        jumbo.push(j.clone());
        input.push(j);
        input.push(frames::tcp(&flow(i), ACK, 9001 - 40, 60));
    }
    input.push(frames::udp(&Flow { dport: 9999, ..flow(0) }, 9000 - 28, 60));
    let (c, out) = run("mtu9000", "mtu = 9000", &input);
    assert_eq!(c["drop_oversize"], 40, "{c:?}");
    assert_eq!(c["drop_no_service"], 1, "{c:?}");
    assert_eq!(c["tx"], 80, "{c:?}");
    for j in &jumbo {
        let n = out.iter().filter(|s| same_but_macs(s, j)).count();
        assert_eq!(n, 1, "each 9014-byte frame is sent once, whole");
    }
    assert!(out.iter().all(|f| f.len() <= 9014));
    assert_eq!(c["mbufs_in_use"], 0);
}

#[test]
fn the_default_mtu_drops_longer_frames_and_leaks_nothing() {
    let mut input = vec![frames::tcp(&flow(1), SYN, 0, 60)];
    let full = frames::tcp(&flow(1), ACK, 1500 - 40, 60); // a 1514-byte frame: forwarded
    input.push(full.clone());
    input.push(frames::tcp(&flow(1), ACK, 1501 - 40, 60)); // one byte over
                                                           // A jumbo frame: longer than an mbuf of the default size, so net_pcap chains it.
    input.push(frames::tcp(&flow(1), ACK, 9000 - 40, 60));
    // And tagged: the tag does not count against the MTU.
    input.push(frames::with_vlan(&full, 7));
    let (c, out) = run("mtu1500", "", &input);
    assert_eq!(c["drop_oversize"], 2, "{c:?}");
    assert_eq!(c["tx"], 3, "{c:?}");
    assert!(out.iter().any(|s| same_but_macs(s, &full)), "the 1514-byte frame is forwarded");
    assert!(out.iter().any(|s| s.len() == 1518), "the tagged 1518-byte one too");
    assert_eq!(c["mbufs_in_use"], 0);
}

/// (dataplane.mtu, what the kernel interface gets, IP length of the ping, replied?)
#[test]
fn the_kernel_interface_takes_the_mtu_as_far_as_the_tap_carries_it() {
    // 1400: the same MTU, and a 1400-byte ping answered whole. 9000: DPDK 22.11's net_tap
    // carries at most 1522-byte frames to the kernel, so the interface gets what it
    // carries (a 1504-byte MTU), a 1500-byte ping is answered and a 9000-byte one is
    // dropped and counted before the tap (kernel_tx_dropped), the rest unharmed.
    for (mtu, kernel_mtu, pings) in [
        (1400u16, 1400u16, vec![(1400usize, true)]),
        (9000, 1504, vec![(9000, false), (1500, true)]),
    ] {
        let (dir, prefix) = scratch(&format!("mtutap{mtu}"));
        let netns = Netns::new(&format!("drlbt-m{mtu}"));
        let dip = ip("192.168.1.121");
        let peer = ip("192.168.1.50");
        // The peer asks for the director's MAC (so the kernel knows the peer's), then
        // pings it.
        let mut input = vec![frames::arp_frame(
            drlb::wire::Mac::BROADCAST,
            1,
            CLIENT,
            peer,
            drlb::wire::Mac::ZERO,
            dip,
        )];
        for (seq, (len, _)) in pings.iter().enumerate() {
            input.push(frames::icmp_echo_len(PCAP_MAC, CLIENT, (peer, dip), seq as u16, *len));
        }
        let (inp, outp) = (dir.join("in.pcap"), dir.join("out.pcap"));
        pcap::write(&inp, &input).unwrap();
        let cfg = write(
            &dir,
            "c.toml",
            &web(&format!("kernel_interface = \"drlbm1\"\nmtu = {mtu}\ngarp_repeat = 0")),
        );
        let mut eal: Vec<String> =
            vec!["netns".into(), "exec".into(), netns.0.clone(), DRLB.into()];
        eal.extend(eal_args(&prefix, &pcap_rx_tx(&inp, &outp)));
        let mut d = spawn_cmd("ip", &eal, &app(&cfg, &[]));
        d.wait_rx(input.len() as u64, Duration::from_secs(30));
        let link = std::process::Command::new("ip")
            .args(["netns", "exec", &netns.0, "ip", "link", "show", "drlbm1"])
            .output()
            .unwrap();
        let link = String::from_utf8_lossy(&link.stdout).into_owned();
        assert!(link.contains(&format!("mtu {kernel_mtu} ")), "{mtu}: {link}");
        std::thread::sleep(Duration::from_millis(1000));
        let (code, c, log) = d.stop();
        assert_eq!(code, 0, "{log}");
        assert_eq!(c["to_kernel"], input.len() as u64, "{c:?}");
        let lost = pings.iter().filter(|p| !p.1).count() as u64;
        assert_eq!(c["kernel_tx_dropped"], lost, "{c:?}");
        if lost > 0 {
            assert!(
                log.contains("kernel interface drlbm1: MTU 1504, not dataplane.mtu 9000"),
                "{log}"
            );
        }
        let out = pcap::read(&outp).unwrap();
        // The echo replies: unfragmented, as long as the pings answered.
        let replies: Vec<usize> = out
            .iter()
            .filter(|f| f.len() > 34 && f[12..14] == [8, 0] && f[23] == 1 && f[34] == 0)
            .map(|f| {
                assert_eq!(f[20] & 0x3f | f[21], 0, "not a fragment");
                f.len()
            })
            .collect();
        let want: Vec<usize> = pings.iter().filter(|p| p.1).map(|p| p.0 + 14).collect();
        assert_eq!(replies, want, "{mtu}");
        assert_eq!(c["mbufs_in_use"], 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
