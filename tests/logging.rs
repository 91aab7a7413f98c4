//! `--log-level`: the stats line and control-change lines are info, refused changes are
//! warnings, ARP resolution attempts are debug; nothing is logged per packet.
mod common;
use common::*;
use std::time::Duration;

const CFG: &str = "[dataplane]\nip = \"192.168.1.121\"\nflow_capacity = 4096\n[[service]]\nvip = \"192.168.1.200\"\nport = 80\n[[service.backend]]\nip = \"192.168.1.118\"\n";

fn run(level: &str) -> String {
    let (dir, prefix) = scratch(&format!("log{level}"));
    let cfg = dir.join("drlb.toml");
    std::fs::write(&cfg, CFG).unwrap();
    let eal = eal_args(&prefix, "net_null0,no-rx=1");
    let d = spawn(
        &eal,
        &[
            "--config".into(),
            cfg.display().to_string(),
            "--stats-interval".into(),
            "1".into(),
            "--log-level".into(),
            level.into(),
        ],
    );
    std::thread::sleep(Duration::from_millis(2500));
    // A reload of a now-invalid file: rejected, with a warning.
    std::fs::write(&cfg, "[dataplane]\nip = 1\n").unwrap();
    d.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        c.contains_key("rx"),
        "final counters are printed at every level"
    );
    let _ = std::fs::remove_dir_all(dir);
    log
}

#[test]
fn log_level_filters_lines() {
    let debug = run("debug");
    assert!(
        debug.contains("drlb: debug: ARP who-has 192.168.1.118 tell 192.168.1.121"),
        "{debug}"
    );
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
