//! IPVS parity with real hosts (the seed topology in namespaces): a persistent wlc
//! service keeps a client on one real server across curls (one template in `-lnc`),
//! `-E` without `-p` lets it alternate again; a UDP service answers from the VIP.
//!
//! Fragments are tested through the binary on net_pcap (tests/fragments.rs), not here:
//! DPDK's net_af_packet joins its socket to a PACKET_FANOUT group with
//! PACKET_FANOUT_FLAG_DEFRAG, so the kernel reassembles fragments before drlb sees them
//! (a 4,000-byte datagram arrives as one 4,042-byte frame, larger than an mbuf, and is
//! dropped as ipv4_truncated). A NIC delivers the fragments as they are.
mod common;
use common::topo::*;
use common::*;
use std::time::Duration;

/// A UDP server on the VIP of real server `name`: answers each datagram with its name
/// and the datagram's length. Its pid file in the scratch dir: the topology's teardown
/// stops it.
fn udp_echo(t: &Topo, name: char) {
    let ns = t.ns(&format!("rs{}", name.to_ascii_lowercase()));
    let script = t.dir.join(format!("udp-{name}.py"));
    std::fs::write(
        &script,
        format!(
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('192.168.1.200', 5353))\nwhile True:\n    d, a = s.recvfrom(65535)\n    \
             s.sendto(b'{name} %d' % len(d), a)\n"
        ),
    )
    .unwrap();
    let d = t.dir.display();
    let o = t.sh(&format!(
        "ip netns exec {ns} python3 {} >/dev/null 2>&1 & echo $! > {d}/udp-{name}.pid",
        script.display()
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Sends `len` bytes to VIP:5353 from the client; the answer ("A 4000") or "".
fn udp_ask(t: &Topo, len: usize) -> String {
    let py = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(3)\n\
         s.sendto(b'x'*{len},('192.168.1.200',5353))\nprint(s.recvfrom(100)[0].decode())"
    );
    let o = t.run("cli", &["python3", "-c", &py]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn persistence_and_udp_with_real_servers() {
    let t = Topo::up("parity");
    let cfg = write(
        &t.dir,
        "drlb.toml",
        r#"[dataplane]
ip = "192.168.1.121"

[[service]]
vip = "192.168.1.200"
port = 80
scheduler = "wlc"
persistence = 60
  [[service.backend]]
  ip = "192.168.1.118"
  [[service.backend]]
  ip = "192.168.1.119"

[[service]]
vip = "192.168.1.200"
port = 5353
protocol = "udp"
scheduler = "rr"
  [[service.backend]]
  ip = "192.168.1.118"
  [[service.backend]]
  ip = "192.168.1.119"
"#,
    );
    udp_echo(&t, 'A');
    udp_echo(&t, 'B');
    let eal = t.drlb_eal("parity");
    let sock = t.dir.join("ctl.sock");
    let mut d = spawn_cmd("ip", &eal, &app(&cfg, &["--control", &sock.display().to_string()]));
    for ip in ["192.168.1.118", "192.168.1.119"] {
        d.wait_for("ARP resolution", Duration::from_secs(20), |l| {
            l.contains(&format!("{ip} is-at"))
        });
    }
    let ln = adm_ok(&sock, &["-ln"]);
    assert!(ln.contains("\nTCP  192.168.1.200:80 wlc persistent 60\n"), "{ln}");

    // Persistent: six curls, one server.
    let seq: String = (0..6).map(|_| t.who()).collect();
    assert!(seq == "AAAAAA" || seq == "BBBBBB", "persistent wlc answered {seq:?}\n{}", d.log());
    let lnc = adm_ok(&sock, &["-lnc"]);
    assert!(
        lnc.lines().any(|l| l.contains(" NONE ") && l.contains("192.168.1.100:0 ")),
        "no template for the client:\n{lnc}"
    );
    // -E without -p, as ipvsadm: no longer persistent; rr alternates.
    adm_ok(&sock, &["-E", "-t", "192.168.1.200:80", "-s", "rr"]);
    let seq: String = (0..4).map(|_| t.who()).collect();
    assert!(seq == "ABAB" || seq == "BABA", "rr after -E answered {seq:?}");

    // UDP: the real servers answer from the VIP; rr alternates datagrams of new flows.
    let answers: Vec<String> = (0..4).map(|_| udp_ask(&t, 1000)).collect();
    let (code, _, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    let names: String = answers.iter().map(|a| a.chars().next().unwrap_or('?')).collect();
    assert!(answers.iter().all(|a| a.ends_with(" 1000")), "answers {answers:?}");
    assert!(names == "ABAB" || names == "BABA", "answers {answers:?}");
}
