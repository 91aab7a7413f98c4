//! configs/drlb.service passes `systemd-analyze verify` (with the built binary standing
//! in for /usr/local/bin/drlb), with no warning at all.
use std::process::Command;

#[test]
fn unit_file_verifies() {
    let dir = std::env::temp_dir().join(format!("drlbt-systemd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/drlb.service"))
            .unwrap()
            .replace("/usr/local/bin/drlb", env!("CARGO_BIN_EXE_drlb"));
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains("Restart=on-failure"));
    assert!(unit.contains("RuntimeDirectory=drlb"));
    let path = dir.join("drlb.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/setup.sh installs it)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Unknown keys and bad values are only warnings (exit 0): there must be none.
    assert!(err.trim().is_empty(), "systemd-analyze verify warned:\n{err}");
    // A broken unit is caught: the check can fail.
    let bad = dir.join("bad.service");
    std::fs::write(&bad, "[Service]\nExecStart=/nonexistent/drlb\nBogusKey=1\n").unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&bad).output().unwrap();
    assert!(!out.status.success() || !out.stderr.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
