//! The README's commands work when followed literally: the pcap example under "Running
//! it" is read from README.md and run as written (with target/release on PATH, as an
//! installed drlb would be), and its output checked.
mod common;
use common::*;
use drlb::testing::pcap;
use std::process::{Command, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_readme_pcap_example_forwards_what_it_replays() {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    let at = readme.find("# no NIC: replay a pcap").expect("the pcap example");
    let lines: Vec<&str> =
        readme[at..].lines().filter(|l| !l.starts_with('#')).take_while(|l| *l != "```").collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("target/release/drlb-gen ") && lines[1].starts_with("drlb "));
    let (dir, _) = scratch("readme");
    let path = format!("{ROOT}/target/release:{}", std::env::var("PATH").unwrap_or_default());
    // The example writes in.pcap and out.pcap in the working directory: run it in a
    // scratch one that sees the repository's target/ and configs/.
    for sub in ["target", "configs"] {
        std::os::unix::fs::symlink(format!("{ROOT}/{sub}"), dir.join(sub)).unwrap();
    }
    let gen = Command::new("bash")
        .arg("-c")
        .arg(lines[0])
        .current_dir(&dir)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(gen.status.success(), "{}: {}", lines[0], String::from_utf8_lossy(&gen.stderr));
    let drlb = Command::new("bash")
        .arg("-c")
        .arg(format!("exec {}", lines[1]))
        .current_dir(&dir)
        .env("PATH", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = pcap::read(&dir.join("in.pcap")).unwrap();
    assert_eq!(input.len(), 3000);
    // Replayed once at start; then Ctrl-C.
    let out_path = dir.join("out.pcap");
    let mut forwarded = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        if let Ok(m) = std::fs::metadata(&out_path) {
            if m.len() > 3000 * 60 {
                break;
            }
        }
    }
    sigint(drlb.id());
    let o = drlb.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{log}");
    for f in pcap::read(&out_path).unwrap().iter().filter(|f| !is_garp(f)) {
        assert!(f[..6] == MAC_A_SEED || f[..6] == MAC_B_SEED, "to A or B");
        forwarded += 1;
    }
    assert_eq!(forwarded, 3000, "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

const MAC_A_SEED: [u8; 6] = [0x00, 0x0c, 0x29, 0x56, 0x5c, 0xc5];
const MAC_B_SEED: [u8; 6] = [0x00, 0x0c, 0x29, 0x56, 0x5c, 0xc6];

/// SIGINT to `pid` (Ctrl-C).
fn sigint(pid: u32) {
    let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status();
}
