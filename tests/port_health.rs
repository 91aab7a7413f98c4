//! The NIC's own health: imissed, ierrors, rx_nombuf, oerrors and the link state in the
//! stats line, `-ln --json`, and the log when the link goes down and comes back. The
//! port is a net_tap device in a namespace the test creates: its link follows the tap
//! interface, which the test sets down and up as a pulled cable would.
mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn link_down_and_up_are_logged_and_the_nic_counters_are_shown() {
    let (dir, prefix) = scratch("linkwatch");
    let tag = std::process::id() % 100_000;
    let netns = Netns::new("drlb-lnk");
    let (ns, tap) = (netns.0.clone(), format!("dl{tag}"));
    let cfg = write(&dir, "c.toml", &web("garp_repeat = 0"));
    let sock = dir.join("ctl.sock");
    let mut eal: Vec<String> =
        ["netns", "exec", &ns, DRLB, "-l", "0-1", "--no-pci", "--file-prefix", &prefix]
            .iter()
            .map(|s| s.to_string())
            .collect();
    eal.extend(eal_mem());
    eal.push(format!("--vdev=net_tap0,iface={tap}"));
    let extra = ["--control", &sock.display().to_string(), "--metrics", "9101"];
    let mut d = spawn_cmd("ip", &eal, &app(&cfg, &extra));
    d.wait_for("the first stats line", Duration::from_secs(30), |l| l.contains("stats gen="));
    d.wait_for("the NIC's counters in the stats line", Duration::from_secs(5), |l| {
        l.contains(" imissed=0 ierrors=0 rx_nombuf=0 oerrors=0 link=up")
    });
    let json = adm_ok(&sock, &["-ln", "--json"]).replace([' ', '\n'], "");
    assert!(json.contains("\"link_up\":true") && json.contains("\"imissed\":0"), "{json}");
    // Prometheus, inside the namespace (the listener is on its 127.0.0.1).
    let m = poll("the port's metrics", Duration::from_secs(5), || {
        let o = Command::new("ip")
            .args(["netns", "exec", &ns, "curl", "-s", "http://127.0.0.1:9101/metrics"])
            .output()
            .unwrap();
        let m = String::from_utf8_lossy(&o.stdout).into_owned();
        m.contains("drlb_port_link_up{port=\"0\"} 1").then_some(m)
    });
    assert!(m.contains("drlb_port_imissed_total{port=\"0\"} 0"), "{m}");

    ip_ok(&["-n", &ns, "link", "set", &tap, "down"]);
    d.wait_for("link down in the log", Duration::from_secs(5), |l| l.contains("port 0: link DOWN"));
    d.wait_for("link=down in the stats line", Duration::from_secs(5), |l| l.contains("link=down"));
    let json = adm_ok(&sock, &["-ln", "--json"]).replace([' ', '\n'], "");
    assert!(json.contains("\"link_up\":false"), "{json}");
    ip_ok(&["-n", &ns, "link", "set", &tap, "up"]);
    d.wait_for("link up in the log", Duration::from_secs(5), |l| l.contains("port 0: link up"));
    let (code, _, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    let _ = std::fs::remove_dir_all(dir);
}
