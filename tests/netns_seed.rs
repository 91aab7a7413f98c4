//! End to end with real hosts: the seed's LVS-DR setup in network namespaces (client,
//! drlb on net_af_packet, real servers A and B with the VIP on lo:0 and python's HTTP
//! server), driven with ping and curl. Topology from scripts/seed-topology.sh, with a
//! per-run suffix; torn down also when an assertion fails.
mod common;
use common::topo::*;
use common::*;
use std::process::Command;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn set_backends(cfg: &std::path::Path, sched: &str, wa: u32, wb: u32) {
    std::fs::write(
        cfg,
        format!(
            "[dataplane]\nip = \"192.168.1.121\"\n[[service]]\nvip = \"192.168.1.200\"\nport = 80\nscheduler = \"{sched}\"\n\
             [[service.backend]]\nip = \"192.168.1.118\"\nweight = {wa}\n[[service.backend]]\nip = \"192.168.1.119\"\nweight = {wb}\n"
        ),
    )
    .unwrap();
}

#[test]
fn seed_dr_end_to_end() {
    let t = Topo::up("seed");
    let cfg = t.dir.join("drlb.toml");
    std::fs::copy(format!("{ROOT}/configs/seed-dr.toml"), &cfg).unwrap();
    let eal = t.drlb_eal("e2e");
    let sock = t.dir.join("ctl.sock");
    let sock_arg = sock.display().to_string();
    let adm = |args: &[&str]| adm_ok(&sock, args);
    let mut d = spawn_cmd("ip", &eal, &app(&cfg, &["--control", &sock_arg]));
    d.wait_for("ARP resolution of A", Duration::from_secs(20), |l| {
        l.contains("192.168.1.118 is-at")
    });
    d.wait_for("ARP resolution of B", Duration::from_secs(20), |l| {
        l.contains("192.168.1.119 is-at")
    });

    // drlbadm -ln lists both real servers as Route 1, in ipvsadm's layout.
    let ln = adm(&["-ln"]);
    assert!(ln.contains("TCP  192.168.1.200:80 rr\n"), "{ln}");
    assert!(ln.contains("  -> 192.168.1.118:80             Route   1      "), "{ln}");
    assert!(ln.contains("  -> 192.168.1.119:80             Route   1      "), "{ln}");

    // ping to the VIP is answered (by the director).
    let ping = Command::new("ip")
        .args(["netns", "exec", &t.ns("cli"), "ping", "-c", "2", "-W", "2", "192.168.1.200"])
        .output()
        .unwrap();
    assert!(ping.status.success(), "ping VIP: {}", String::from_utf8_lossy(&ping.stdout));

    // Six curls alternate A/B.
    let seq: String = (0..6).map(|_| t.who()).collect();
    assert!(seq == "ABABAB" || seq == "BABABA", "rr answers {seq:?}\n{}", d.log());

    // Drain B while a long download from B is in flight.
    let next = t.who(); // after an even count the cursor is back where it started
    let (first, second) = (next, if next == 'A' { 'B' } else { 'A' });
    assert_eq!(first, seq.chars().next().unwrap());
    let slow_on = second; // the next new flow goes to `second`
    let netns_cli = t.ns("cli");
    let slow = std::thread::spawn(move || {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &netns_cli,
                "curl",
                "-s",
                "--max-time",
                "30",
                "http://192.168.1.200/big.bin",
            ])
            .output()
            .unwrap();
        out.stdout
    });
    // The download is under way once its connection is ESTABLISHED on the director.
    let slow_ip = if slow_on == 'A' { "192.168.1.118" } else { "192.168.1.119" };
    poll("the download's connection", Duration::from_secs(20), || {
        let l: serde_json::Value = serde_json::from_str(&adm(&["-ln", "--json"])).ok()?;
        let b = l["services"][0]["backends"].as_array()?;
        b.iter().any(|b| b["ip"] == slow_ip && b["active_conns"].as_u64() >= Some(1)).then_some(())
    });
    let (wa, wb) = if slow_on == 'B' { (1, 0) } else { (0, 1) };
    set_backends(&cfg, "rr", wa, wb);
    let mut reloads = 0;
    reload(&mut d, &mut reloads);
    let other = first;
    let drained: String = (0..20).map(|_| t.who()).collect();
    assert_eq!(drained, other.to_string().repeat(20), "new connections after draining {slow_on}");
    let body = slow.join().unwrap();
    assert_eq!(body.len(), 400_000, "the long download from the draining server completes");
    assert!(body.iter().all(|&b| b == slow_on as u8), "and comes whole from {slow_on}");

    // SIGHUP with wrr, B weight 3, A weight 1: 1:3 over 40 new connections.
    set_backends(&cfg, "wrr", 1, 3);
    reload(&mut d, &mut reloads);
    let split: String = (0..40).map(|_| t.who()).collect();
    assert_eq!(split.matches('A').count(), 10, "{split}");
    assert_eq!(split.matches('B').count(), 30, "{split}");

    // An invalid file is rejected whole; service continues as before.
    std::fs::write(&cfg, "[dataplane]\nip = \"192.168.1.121\"\nbogus = true\n").unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for("rejected reload", Duration::from_secs(5), |l| {
        l.contains("reload rejected") && l.contains("bogus")
    });
    let after: String = (0..4).map(|_| t.who()).collect();
    assert!(after.chars().all(|c| c == 'A' || c == 'B'), "service continues: {after:?}");

    // drlbadm -d on B: new connections all reach A; adding B back restores the split.
    set_backends(&cfg, "rr", 1, 1);
    reload(&mut d, &mut reloads);
    adm(&["-d", "-t", "192.168.1.200:80", "-r", "192.168.1.119:80"]);
    let only_a: String = (0..10).map(|_| t.who()).collect();
    assert_eq!(only_a, "A".repeat(10));
    adm(&["-a", "-t", "192.168.1.200:80", "-r", "192.168.1.119:80", "-g", "-w", "1"]);
    let back: String = (0..10).map(|_| t.who()).collect();
    assert_eq!(back.matches('B').count(), 5, "split restored: {back}");

    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(accounted(&c), c["rx"], "{c:?}");
    let sfx = t.sfx.clone();
    drop(t);
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&left.stdout).contains(&sfx), "namespaces left behind");
}
