//! `--log-level`: the stats line and control-change lines are info, refused changes are
//! warnings, ARP resolution attempts are debug; nothing is logged per packet.
mod common;
use common::*;
use std::time::Duration;

const CFG: &str = "[dataplane]\nip = \"192.168.1.121\"\nflow_capacity = 4096\n[[service]]\nvip = \"192.168.1.200\"\nport = 80\n[[service.backend]]\nip = \"192.168.1.118\"\n";

fn run(level: &str) -> String {
    let (dir, prefix) = scratch(&format!("log{level}"));
    let cfg = write(&dir, "drlb.toml", CFG);
    let eal = eal_args(&prefix, "net_null0,no-rx=1");
    let mut d = spawn(&eal, &app(&cfg, &["--log-level", level]));
    d.wait_ready(Duration::from_secs(30));
    match level {
        "debug" | "info" => {
            d.wait_for("a stats line", Duration::from_secs(30), |l| l.contains("stats gen=1"));
        }
        // Nothing to wait for where lines must be absent: give drlb two stats periods.
        _ => std::thread::sleep(Duration::from_millis(2500)),
    }
    if level == "debug" {
        d.wait_for("an ARP request", Duration::from_secs(30), |l| l.contains("ARP who-has"));
    }
    // A reload of a now-invalid file: rejected, with a warning; the listing counts it.
    std::fs::write(&cfg, "[dataplane]\nip = 1\n").unwrap();
    d.signal(libc::SIGHUP);
    poll("the rejected reload", Duration::from_secs(30), || {
        let l: serde_json::Value = serde_json::from_str(&d.adm_ok(&["-ln", "--json"])).ok()?;
        (l["swaps"]["failed_reloads"] == 1).then_some(())
    });
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert!(c.contains_key("rx"), "final counters are printed at every level");
    let _ = std::fs::remove_dir_all(dir);
    log
}

#[test]
fn log_level_filters_lines() {
    let debug = run("debug");
    assert!(debug.contains("drlb: debug: ARP who-has 192.168.1.118 tell 192.168.1.121"), "{debug}");
    assert!(debug.contains("drlb: stats gen=1"), "{debug}");
    assert!(debug.contains("drlb: warning: reload rejected"), "{debug}");

    let info = run("info");
    assert!(!info.contains("debug:"), "{info}");
    assert!(info.contains("drlb: stats gen=1"), "{info}");
    assert!(info.contains("drlb: warning: reload rejected"), "{info}");

    let warn = run("warn");
    assert!(!warn.contains("drlb: stats"), "{warn}");
    assert!(!warn.contains("drlb: port 0"), "{warn}");
    assert!(warn.contains("drlb: warning: reload rejected"), "{warn}");

    let error = run("error");
    assert!(!error.lines().any(|l| l.starts_with("drlb: ")), "{error}");
}
