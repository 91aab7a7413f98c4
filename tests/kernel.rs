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
    let ns = format!("drlbt-k-{}", std::process::id());
    let sh = |args: &[&str]| {
        assert!(
            std::process::Command::new("ip").args(args).status().unwrap().success(),
            "ip {args:?}"
        )
    };
    sh(&["netns", "add", &ns]);
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _del = Del(ns.clone());

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
