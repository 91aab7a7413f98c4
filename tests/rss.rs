//! RSS on a multi-queue port: drlb sets a key of random bytes (of the length the device
//! takes) rather than the driver's well-known default, with which a sender could pick
//! addresses that all hash to one queue, i.e. one worker. net_tap is the vdev here that
//! offers RSS (IP, TCP, UDP; a 40-byte key); it accepts the key at configure time.
mod common;
use common::*;
use std::time::Duration;

#[test]
fn a_multi_queue_port_gets_a_random_key_and_a_single_queue_none() {
    for (lcores, want) in [
        ("0@0,1@0,2@1", "2 worker(s) on lcores [1, 2] (RSS with a random 40-byte key)"),
        ("0@0,1@1", "1 worker(s) on lcores [1] (RSS off)"),
    ] {
        let workers = lcores.matches(',').count();
        let (dir, prefix) = scratch(&format!("rss{workers}"));
        let netns = Netns::new(&format!("drlbt-rss{workers}"));
        let cfg = write(&dir, "c.toml", &cfg());
        let mut eal: Vec<String> = vec![
            "netns".into(),
            "exec".into(),
            netns.0.clone(),
            DRLB.into(),
            format!("--lcores={lcores}"),
            "--no-pci".into(),
            "--file-prefix".into(),
            prefix.clone(),
        ];
        eal.extend(eal_mem());
        eal.push("--vdev=net_tap0,iface=drlbrss0".into());
        let mut d = spawn_cmd("ip", &eal, &app(&cfg, &[]));
        d.wait_ready(Duration::from_secs(30));
        let (code, _, log) = d.stop();
        assert_eq!(code, 0, "{log}");
        assert!(log.contains(want), "{want:?} not in:\n{log}");
        assert_no_dpdk_files(&prefix);
        let _ = std::fs::remove_dir_all(dir);
    }
}
