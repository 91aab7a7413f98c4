//! Start-up failures: each exits 2 with one paragraph naming the cause and the fix.
mod common;
use common::*;

const CFG: &str = "[dataplane]\nip = \"192.168.1.121\"\nflow_capacity = 1024\n[[service]]\nvip = \"192.168.1.200\"\nport = 80\n[[service.backend]]\nip = \"192.168.1.118\"\nmac = \"00:0c:29:56:5c:c5\"\n";

fn expect_exit2(name: &str, eal: &[&str], cfg: &str, want: &str) {
    let (dir, prefix) = scratch(name);
    let cfgp = write(&dir, "c.toml", cfg);
    let pcap = dir.join("in.pcap");
    drlb::testing::pcap::write(&pcap, &[]).unwrap();
    let mem = eal_mem();
    let mut args: Vec<String> = vec!["--no-pci".into(), "--file-prefix".into(), prefix.clone()];
    args.extend(mem);
    for a in eal {
        args.push(
            a.replace("{pcap}", pcap.to_str().unwrap()).replace("{dir}", dir.to_str().unwrap()),
        );
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, err) =
        run_to_exit(&argv, &["--config", cfgp.to_str().unwrap(), "--stats-interval", "0"]);
    assert_eq!(code, 2, "{name}: exit code, stderr:\n{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("drlb: error:"))
        .unwrap_or_else(|| panic!("{name}: no error line in:\n{err}"));
    assert!(line.contains(want), "{name}: {line:?} lacks {want:?}");
    // A start that got past EAL init removes EAL's runtime directory on the way out.
    if !err.contains("EAL initialisation failed") {
        let rt = std::path::Path::new("/var/run/dpdk").join(&prefix);
        assert!(!rt.exists(), "{name}: {} left behind", rt.display());
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_config_names_file_key_and_reason_before_eal() {
    expect_exit2(
        "badcfg",
        &["-l", "0-1", "--vdev=net_pcap0,rx_pcap={pcap}"],
        &CFG.replace("port = 80", "port = 80\nbogus = 1"),
        "unknown field `bogus`",
    );
    expect_exit2(
        "remap",
        &["-l", "0-1", "--vdev=net_pcap0,rx_pcap={pcap}"],
        &format!("{CFG}port = 8080\n"),
        "service[0].backend[0].port",
    );
}

#[test]
fn bad_eal_argument() {
    expect_exit2(
        "badeal",
        &["-l", "0-1", "--no-such-eal-option"],
        CFG,
        "EAL initialisation failed",
    );
}

#[test]
fn no_port() {
    expect_exit2("noport", &["-l", "0-1"], CFG, "no Ethernet port");
}

#[test]
fn configured_port_missing() {
    expect_exit2(
        "portmissing",
        &["-l", "0-1", "--vdev=net_pcap0,rx_pcap={pcap}"],
        &CFG.replace("flow_capacity", "port = 3\nflow_capacity"),
        "dataplane.port = 3 but DPDK has 1 port(s)",
    );
}

#[test]
fn not_enough_queues_for_the_workers() {
    expect_exit2(
        "queues",
        &["--lcores=0@0,1@1,2@1", "--vdev=net_pcap0,rx_pcap={pcap}"],
        CFG,
        "offers 1 RX and 1 TX queues, but 2 workers",
    );
}

#[test]
fn no_worker_lcore() {
    expect_exit2(
        "nolcore",
        &["-l", "0", "--vdev=net_pcap0,rx_pcap={pcap}"],
        CFG,
        "no worker lcore",
    );
}

#[test]
fn no_hugepages_says_how_to_get_them() {
    // A --huge-dir that is not a hugetlbfs mount is what a host without hugepages looks
    // like to EAL. (Without --in-memory/--no-huge, so build the args by hand.)
    let (dir, prefix) = scratch("nohuge");
    let cfgp = write(&dir, "c.toml", CFG);
    let hd = dir.join("not-hugetlbfs");
    std::fs::create_dir_all(&hd).unwrap();
    let hd = format!("--huge-dir={}", hd.display());
    let (code, err) = run_to_exit(
        &["-l", "0-1", "--no-pci", "--file-prefix", &prefix, &hd, "--vdev=net_null0"],
        &["--config", cfgp.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nr_hugepages") && err.contains("--no-huge"), "{err}");
    // The failed EAL init removed the runtime directory it had created.
    assert_no_dpdk_files(&prefix);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn metrics_port_in_use_fails_before_eal() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (dir, _) = scratch("metricsport");
    let cfgp = write(&dir, "c.toml", CFG);
    // No --vdev and bogus EAL args: reaching EAL would fail differently.
    let (code, err) = run_to_exit(
        &["--no-such-eal-option"],
        &["--config", cfgp.to_str().unwrap(), "--metrics", &port],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is the port in use"), "{err}");
    assert!(!err.contains("EAL"), "must fail before EAL starts: {err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_validates_offline() {
    let (dir, _) = scratch("check");
    let good = write(&dir, "good.toml", CFG);
    let bad = write(&dir, "bad.toml", &CFG.replace("port = 80", "port = 80\nscheduler = \"lblc\""));
    let out = std::process::Command::new(DRLB)
        .args(["--check", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 services, 1 backends)"));
    let out =
        std::process::Command::new(DRLB).args(["--check", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown variant `lblc`"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_separator_and_help() {
    let out = std::process::Command::new(DRLB).args(["--config", "x.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--`"));
    let out = std::process::Command::new(DRLB).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("drlb [EAL options] -- --config FILE"));
    let out = std::process::Command::new(DRLB).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("DPDK"));
}

#[test]
fn a_second_primary_on_the_same_prefix_fails_and_leaves_the_first_alone() {
    // Shared-config mode (hugepages with files, not --in-memory): the case where EAL
    // init fails on a runtime directory that belongs to a running process.
    let (dir, prefix) = scratch("twoprimaries");
    let cfgp = write(&dir, "c.toml", CFG);
    let mem: &[&str] = if eal_mem().iter().any(|a| a == "--in-memory") {
        &["-m", "128"]
    } else {
        &["--no-huge", "-m", "128"]
    };
    let eal: Vec<String> = ["-l", "0-1", "--no-pci", "--file-prefix", &prefix]
        .iter()
        .chain(mem.iter())
        .map(|s| s.to_string())
        .chain(["--vdev=net_null0".to_string()])
        .collect();
    let app = vec!["--config".to_string(), cfgp.display().to_string()];
    let mut first = spawn(&eal, &app);
    first.wait_for("start", std::time::Duration::from_secs(30), |l| {
        l.contains("worker(s) on lcores")
    });
    let rundir = std::path::PathBuf::from(format!("/var/run/dpdk/{prefix}"));
    assert!(rundir.join("config").exists());
    let args: Vec<&str> = eal.iter().map(|s| s.as_str()).collect();
    let (code, err) = run_to_exit(
        &args,
        &[
            "--config",
            cfgp.to_str().unwrap(),
            "--control",
            dir.join("second.sock").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        rundir.join("config").exists(),
        "the failed second start removed the running primary's runtime directory"
    );
    let (code, _, log) = first.stop();
    assert_eq!(code, 0, "{log}");
    assert_no_dpdk_files(&prefix);
    let _ = std::fs::remove_dir_all(dir);
}

/// The resident kB and the size in kB of each mapping of `pid` advised huge pages
/// (`hg`): the flow tables (`mem::Table`).
fn advised_huge_mappings(pid: u32) -> Vec<(u64, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let kb = |l: &str| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok());
    let (mut found, mut size, mut rss) = (Vec::new(), 0, 0);
    for l in smaps.lines() {
        if l.starts_with("Size:") {
            size = kb(l).unwrap();
        } else if l.starts_with("Rss:") {
            rss = kb(l).unwrap();
        } else if l.starts_with("VmFlags:") && l.split_whitespace().any(|f| f == "hg") {
            found.push((rss, size));
        }
    }
    found
}

#[test]
fn the_flow_table_is_resident_before_the_first_packet() {
    // A worker that first writes into an untouched part of its table stalls while the
    // kernel zeroes the page (1-2 ms a 16 MiB table, measured): drlb makes the table
    // resident before the worker starts. No packet ever arrives here (an empty pcap).
    let (dir, prefix) = scratch("resident");
    let cfgp =
        write(&dir, "c.toml", &CFG.replace("flow_capacity = 1024", "flow_capacity = 1048576"));
    let pcap = dir.join("in.pcap");
    drlb::testing::pcap::write(&pcap, &[]).unwrap();
    let eal = eal_args(&prefix, &format!("net_pcap0,rx_pcap={}", pcap.display()));
    let app = vec!["--config".to_string(), cfgp.display().to_string()];
    let mut d = spawn(&eal, &app);
    let line = d.wait_for("start", std::time::Duration::from_secs(30), |l| {
        l.contains("worker(s) on lcores")
    });
    assert!(
        line.contains("1048576 flows/worker (16 bytes each, 16384 KiB resident a worker)"),
        "{line}"
    );
    let tables: Vec<_> = advised_huge_mappings(d.child.id())
        .into_iter()
        .filter(|&(_, size)| size >= 16384)
        .collect();
    assert!(!tables.is_empty(), "no 16 MiB mapping advised huge pages:\n{}", d.log());
    for (rss, size) in tables {
        assert!(rss >= 16384, "the flow table's mapping ({size} kB) holds {rss} kB resident");
    }
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(c["rx"], 0, "no packet arrived");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_flow_table_that_cannot_be_mapped_names_flow_capacity() {
    // drlb's address space capped 1 GiB above what it holds with a small table: EAL
    // starts, and the largest table (2 GiB a worker) cannot be mapped. Before, a panic.
    let (dir, prefix) = scratch("nomap");
    let small = write(&dir, "small.toml", CFG);
    let big =
        write(&dir, "big.toml", &CFG.replace("flow_capacity = 1024", "flow_capacity = 134217728"));
    let eal = eal_args(&prefix, "net_null0");
    let app = |cfg: &std::path::Path| vec!["--config".to_string(), cfg.display().to_string()];
    let mut d = spawn(&eal, &app(&small));
    d.wait_for("start", std::time::Duration::from_secs(30), |l| l.contains("worker(s) on lcores"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    let vm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    let (code, _, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    let limit = (vm_kb + (1 << 20)) * 1024;
    let mut cmd = std::process::Command::new(DRLB);
    cmd.args(&eal)
        .arg("--")
        .args(app(&big))
        .args(["--control", dir.join("s.sock").to_str().unwrap()]);
    // SAFETY: setrlimit is async-signal-safe; the child only sets its own limit.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let r = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            if libc::setrlimit(libc::RLIMIT_AS, &r) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code, stderr:\n{err}");
    let line = err.lines().find(|l| l.starts_with("drlb: error:")).expect("an error line");
    assert!(
        line.contains(
            "cannot hold worker 0's flow table (2048 MiB for dataplane.flow_capacity = 134217728)"
        ) && line.contains("Lower dataplane.flow_capacity"),
        "{line}"
    );
    assert_no_dpdk_files(&prefix);
    let _ = std::fs::remove_dir_all(dir);
}
