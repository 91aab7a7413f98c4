//! The kernel interface on a `net_pcap` port, in a namespace of the test's own (the tap
//! and its address live there): a flood at the director IP is cut to
//! `dataplane.kernel_rate` (the rest dropped and counted) while the load-balanced
//! traffic among it is forwarded, every frame of it.
mod common;
use common::*;
use drlb::testing::frames::{self, ip, Flow};
use drlb::testing::pcap;
use std::time::Duration;

#[test]
fn a_flood_at_the_director_ip_is_rate_limited_and_forwarding_goes_on() {
    let (dir, prefix) = scratch("kernel");
    let netns = Netns::new("drlbt-k");
    let ns = netns.0.clone();

    // 2,000 flows to the VIP (3 frames each) with 20,000 UDP datagrams to the director
    // IP woven in.
    let vip_frames = pcap::flows(&flows_spec(2000, 3));
    let to_dip = Flow {
        dst_mac: PCAP_MAC,
        src_mac: CLIENT,
        saddr: ip("10.9.0.1"),
        daddr: ip("192.168.1.121"),
        sport: 9999,
        dport: 53,
    };
    let mut input = Vec::new();
    for (i, f) in vip_frames.iter().enumerate() {
        input.push(f.clone());
        for k in 0..3 {
            let sport = (i * 3 + k) as u16;
            input.push(frames::udp(&Flow { sport, ..to_dip }, 10, 60));
        }
    }
    let flood = (input.len() - vip_frames.len()) as u64;
    let (inp, outp) = (dir.join("in.pcap"), dir.join("out.pcap"));
    pcap::write(&inp, &input).unwrap();
    let cfg = write(&dir, "c.toml", &web("kernel_interface = \"drlbk0\"\nkernel_rate = 1000"));
    let mut eal: Vec<String> = vec!["netns".into(), "exec".into(), ns.clone(), DRLB.into()];
    eal.extend(eal_args(&prefix, &pcap_rx_tx(&inp, &outp)));
    let mut d = spawn_cmd("ip", &eal, &app(&cfg, &[]));
    d.wait_rx(input.len() as u64, Duration::from_secs(60));
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(c["rx"], input.len() as u64, "{c:?}");
    assert_eq!(
        c["forwarded"],
        vip_frames.len() as u64,
        "every load-balanced frame forwarded: {c:?}"
    );
    let limited = c["drop_kernel_rate_limited"] + c["drop_kernel_queue_full"];
    assert_eq!(c["to_kernel"] + limited, flood, "every frame for the director accounted: {c:?}");
    assert!(limited > flood / 2, "the rate limit bites: {c:?}");
    assert_eq!(
        c["kernel_tx"], c["to_kernel"],
        "what the workers handed over reached the tap: {c:?}"
    );
    assert_eq!(accounted(&c), c["rx"], "{c:?}");
    assert_eq!(c["mbufs_in_use"], 0, "no mbuf leaked on the way to the kernel");
    let out = pcap::read(&outp).unwrap();
    let (per_backend, _) =
        check_forwarded(&vip_frames, &out, &[], PCAP_MAC, |_| vec![MAC_A, MAC_B]);
    assert_eq!(per_backend.values().sum::<u32>(), 2000);
    let _ = std::fs::remove_dir_all(dir);
}

/// `dataplane.vlan = 100`: drlb's own frames carry the tag — its gratuitous ARPs, its ARP
/// requests for a real server, and what the kernel interface sends — and a tagged frame
/// for the kernel reaches the (untagged) tap without its tag: the kernel answers it.
#[test]
fn vlan_tags_drlbs_own_frames_and_the_kernels() {
    let (dir, prefix) = scratch("vlan");
    let netns = Netns::new("drlbt-v");
    let ns = netns.0.clone();
    // A ping to the director IP from 192.168.1.50, tagged 100: the kernel answers it, so
    // it first asks for 192.168.1.50's MAC.
    let ping = frames::icmp_echo(PCAP_MAC, CLIENT, ip("192.168.1.50"), ip("192.168.1.121"), 1);
    let input = vec![frames::with_vlan(&ping, 100)];
    let (inp, outp) = (dir.join("in.pcap"), dir.join("out.pcap"));
    pcap::write(&inp, &input).unwrap();
    let cfg = web("kernel_interface = \"drlbk1\"\nvlan = 100\ngarp_repeat = 1")
        + "\n[[service]]\nvip = \"192.168.1.201\"\nport = 53\nprotocol = \"udp\"\n  [[service.backend]]\n  ip = \"192.168.1.120\"\n";
    let cfg = write(&dir, "c.toml", &cfg);
    let mut eal: Vec<String> = vec!["netns".into(), "exec".into(), ns.clone(), DRLB.into()];
    eal.extend(eal_args(&prefix, &pcap_rx_tx(&inp, &outp)));
    let mut d = spawn_cmd("ip", &eal, &app(&cfg, &[]));
    d.wait_rx(1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(c["to_kernel"], 1, "{c:?}");
    let out = pcap::read(&outp).unwrap();
    assert!(!out.is_empty());
    // Every frame drlb sent is tagged 100.
    for f in &out {
        assert_eq!(&f[12..16], &[0x81, 0x00, 0x00, 100], "tagged 100: {f:02x?}");
    }
    // The ARP frames: (operation, sender address, target address).
    let arps: Vec<(u16, [u8; 4], [u8; 4])> = out
        .iter()
        .filter(|f| f[16..18] == [0x08, 0x06])
        .map(|f| {
            let a = &f[18..];
            let addr = |at: usize| -> [u8; 4] { a[at..at + 4].try_into().unwrap() };
            (u16::from_be_bytes([a[6], a[7]]), addr(14), addr(24))
        })
        .collect();
    let has = |oper: u16, spa: [u8; 4], tpa: [u8; 4]| arps.contains(&(oper, spa, tpa));
    assert!(has(1, [192, 168, 1, 200], [192, 168, 1, 200]), "GARP for the VIP: {arps:?}");
    assert!(has(1, [192, 168, 1, 121], [192, 168, 1, 121]), "GARP for the DIP: {arps:?}");
    assert!(has(1, [192, 168, 1, 121], [192, 168, 1, 120]), "drlb asks for C: {arps:?}");
    assert!(has(1, [192, 168, 1, 121], [192, 168, 1, 50]), "the kernel asks: {arps:?}");
    assert_eq!(c["mbufs_in_use"], 0);
    let _ = std::fs::remove_dir_all(dir);
}
