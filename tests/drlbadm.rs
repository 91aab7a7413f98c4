//! drlbadm against a running drlb (net_pcap vdev): every command, ipvsadm's `-ln`
//! layout with counters from known traffic, rejected commands change nothing, `-S`
//! round-trips through `--check` and a reload, and the control socket survives garbage.
mod common;
use common::*;
use drlb::testing::pcap::{self, FlowsSpec};
use std::process::Command;
use std::time::Duration;

const CFG: &str = r#"[dataplane]
ip = "192.168.1.121"
flow_capacity = 4096

[[service]]
vip = "192.168.1.200"
port = 80
scheduler = "rr"

  [[service.backend]]
  ip = "192.168.1.118"
  mac = "00:0c:29:00:00:0a"

  [[service.backend]]
  ip = "192.168.1.119"
  mac = "00:0c:29:00:00:0b"
"#;

/// drlb on net_pcap replaying `spec`'s flows with [`CFG`] and a control socket: (its
/// scratch dir, the config file, the socket, drlb) once it is ready.
fn daemon(
    name: &str,
    spec: FlowsSpec,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf, Running) {
    let (dir, prefix) = scratch(name);
    let cfgp = write(&dir, "drlb.toml", CFG);
    let sock = dir.join("ctl.sock");
    let inp = dir.join("in.pcap");
    pcap::write(&inp, &pcap::flows(&spec)).unwrap();
    let eal = eal_args(&prefix, &format!("net_pcap0,rx_pcap={}", inp.display()));
    let mut d = spawn(&eal, &app(&cfgp, &["--control", &sock.display().to_string()]));
    d.wait_ready(Duration::from_secs(30));
    (dir, cfgp, sock, d)
}

#[test]
fn drlbadm_commands_against_a_running_daemon() {
    let (dir, prefix) = scratch("adm");
    let cfgp = write(&dir, "drlb.toml", CFG);
    let sock = dir.join("ctl.sock");
    // 10 flows, SYN then ACK: rr gives A and B 5 established flows each, 10 packets each.
    let spec = FlowsSpec { interleave: true, ..flows_spec(10, 2) };
    let inp = dir.join("in.pcap");
    pcap::write(&inp, &pcap::flows(&spec)).unwrap();
    let eal = eal_args(&prefix, &format!("net_pcap0,rx_pcap={}", inp.display()));
    let sock_arg = sock.display().to_string();
    let mut d = spawn(&eal, &app(&cfgp, &["--control", &sock_arg]));
    d.wait_rx(20, Duration::from_secs(30));

    // Socket permissions: 0600.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o600);

    // -ln, byte for byte in ipvsadm's layout; the census needs one sweep of the table.
    let want = concat!(
        "drlb 0.1.0 (flows per worker=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  192.168.1.200:80 rr\n",
        "  -> 192.168.1.118:80             Route   1      5          0         \n",
        "  -> 192.168.1.119:80             Route   1      5          0         \n",
    );
    let mut got = String::new();
    for _ in 0..50 {
        got = adm_ok(&sock, &["-ln"]);
        if got == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(got, want);
    // -lnc: the 10 connection entries in ipvsadm's layout.
    let lnc = adm_ok(&sock, &["-lnc"]);
    assert!(lnc.starts_with("drlb connection entries (10 in all)\n"), "{lnc}");
    let rows: Vec<Vec<&str>> =
        lnc.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 10, "{lnc}");
    for f in &rows {
        assert_eq!((f[0], f[2], f[4]), ("TCP", "ESTABLISHED", "192.168.1.200:80"), "{lnc}");
        assert!(
            f[3].starts_with("10.0.0.")
                && (f[5] == "192.168.1.118:80" || f[5] == "192.168.1.119:80"),
            "{lnc}"
        );
    }
    // --stats: Conns 5, InPkts 10, InBytes 600 per backend (60-byte frames).
    let stats = adm_ok(&sock, &["-L", "-n", "--stats", "--exact"]);
    assert!(
        stats.lines().any(|l| l
            == "  -> 192.168.1.118:80                    5       10        0      600        0"),
        "{stats}"
    );
    // --rate samples over a second; the pcap was replayed once, so every rate is 0.
    let rate = adm_ok(&sock, &["-ln", "--rate"]);
    assert!(
        rate.lines().nth(1).unwrap().ends_with("CPS    InPPS   OutPPS    InBPS   OutBPS"),
        "{rate}"
    );
    assert!(
        rate.lines().any(|l| l
            == "  -> 192.168.1.118:80                    0        0        0        0        0"),
        "{rate}"
    );
    let json: serde_json::Value = serde_json::from_str(&adm_ok(&sock, &["-ln", "--json"])).unwrap();
    assert_eq!(json["services"][0]["backends"][1]["in_pkts"], 10);

    // Edits, as an LVS operator types them.
    adm_ok(&sock, &["-A", "-u", "192.168.1.200:53", "-s", "wrr"]);
    adm_ok(
        &sock,
        &[
            "-a",
            "-u",
            "192.168.1.200:53",
            "-r",
            "192.168.1.118:53",
            "-g",
            "-w",
            "3",
            "--mac",
            "00:0c:29:00:00:0a",
        ],
    );
    adm_ok(&sock, &["-a", "-t", "192.168.1.200:80", "-r", "192.168.1.120", "-w", "2"]);
    adm_ok(&sock, &["-e", "-t", "192.168.1.200:80", "-r", "192.168.1.119:80", "-w", "0"]);
    adm_ok(&sock, &["-E", "-t", "192.168.1.200:80", "-s", "wrr"]);
    let l = adm_ok(&sock, &["-ln"]);
    assert!(l.contains("TCP  192.168.1.200:80 wrr\n"), "{l}");
    assert!(l.contains("  -> 192.168.1.119:80             Route   0      "), "{l}");
    // .120 has no static MAC and nobody answers ARP in a pcap: it takes no flows, and
    // shows weight 0 (its configured 2 is in the JSON listing).
    assert!(l.contains("  -> 192.168.1.120:80             Route   0      "), "{l}");
    let json: serde_json::Value = serde_json::from_str(&adm_ok(&sock, &["-ln", "--json"])).unwrap();
    let b120 = &json["services"][0]["backends"][2];
    assert_eq!(
        (b120["ip"].as_str(), b120["config_weight"].as_u64(), b120["weight"].as_u64()),
        (Some("192.168.1.120"), Some(2), Some(0))
    );
    assert!(
        l.contains("UDP  192.168.1.200:53 wrr\n  -> 192.168.1.118:53             Route   3      "),
        "{l}"
    );
    assert!(l.find("TCP ").unwrap() < l.find("UDP ").unwrap(), "sorted as ipvsadm sorts");

    // Rejected commands: exit 1, a message, nothing changed.
    let before = adm_ok(&sock, &["-S"]);
    for (args, want) in [
        (vec!["-A", "-t", "192.168.1.200:80"], "Service already exists"),
        (vec!["-a", "-t", "192.168.1.200:81", "-r", "192.168.1.118"], "Service not defined"),
        (vec!["-a", "-t", "192.168.1.200:80", "-r", "192.168.1.118:8080"], "cannot remap ports"),
        (
            vec!["-a", "-t", "192.168.1.200:80", "-r", "192.168.1.9", "-w", "70000"],
            "Invalid weight",
        ),
        (
            vec!["-e", "-t", "192.168.1.200:80", "-r", "192.168.1.9", "-w", "1"],
            "No such destination",
        ),
        (vec!["-d", "-t", "192.168.1.200:80", "-r", "10.0.0.300"], "not an IPv4 address"),
        (vec!["-A", "-t", "192.168.1.201:80", "-s", "lblc"], "Scheduler not found"),
        (
            vec!["-a", "-t", "192.168.1.200:80", "-r", "192.168.1.9", "-m"],
            "only does direct routing",
        ),
        (vec!["-A", "-D", "-t", "192.168.1.200:80"], "more than one command"),
        (vec!["-L", "--stats", "--rate"], "cannot be used with"),
        (vec!["-L", "--no-such-flag"], "unexpected argument"),
        (vec![], "no command given"),
        (
            vec!["-a", "-t", "192.168.1.200:80", "-r", "192.168.1.9", "--mac", "zz\ndrlb: forged"],
            "",
        ),
    ] {
        let (c, _, err) = adm(&sock, &args);
        assert_eq!(c, 1, "{args:?}: every rejected command exits 1: {err}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
    }
    assert_eq!(adm_ok(&sock, &["-S"]), before, "a rejected command changed the state");
    // Every documented weight works: 20 servers weighted 60000..60019 (a wrr cycle of
    // 1.2 M picks: stepped as IPVS does instead of precomputed).
    adm_ok(&sock, &["-A", "-t", "192.168.1.206:80", "-s", "wrr"]);
    for i in 0..20 {
        let (rip, w) = (format!("10.0.6.{}", i + 1), (60_000 + i).to_string());
        adm_ok(&sock, &["-a", "-t", "192.168.1.206:80", "-r", &rip, "-w", &w]);
    }
    let rules = adm_ok(&sock, &["-S", "--format", "ipvsadm"]);
    assert!(rules.contains("-a -t 192.168.1.206:80 -r 10.0.6.20:80 -g -w 60019\n"), "{rules}");
    adm_ok(&sock, &["-D", "-t", "192.168.1.206:80"]);
    // Host and service names, as ipvsadm takes them (/etc/hosts, /etc/services).
    let (c, _, err) = adm(&sock, &["-d", "-t", "192.168.1.200:http", "-r", "localhost"]);
    assert_eq!(c, 1);
    assert!(err.contains("No such destination: 127.0.0.1:80 in TCP 192.168.1.200:80"), "{err}");
    adm_ok(&sock, &["-A", "-t", "192.168.1.205:www", "-s", "rr"]);
    let rules = adm_ok(&sock, &["-S", "--format", "ipvsadm"]);
    assert!(rules.contains("-A -t 192.168.1.205:80 -s rr\n"), "{rules}");
    adm_ok(&sock, &["-D", "-t", "192.168.1.205:80"]);
    let (c, _, err) = adm(&sock, &["-A", "-t", "192.168.1.205:nosuchservice"]);
    assert_eq!(
        (c, err.contains("'nosuchservice' is not a port (1..65535) or a service name")),
        (1, true),
        "{err}"
    );
    // The socket from the environment, as ipvsadm users script it.
    let o = Command::new(ADM).env("DRLB_SOCKET", &sock).arg("-ln").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    // A path that is not a socket says so.
    for (path, want) in [(dir.clone(), "is a directory"), (cfgp.clone(), "is not a socket")] {
        let (c, _, err) = adm(&path, &["-ln"]);
        assert_eq!(c, 1);
        assert!(err.contains(want), "{err}");
    }
    // A reader that goes away early (`drlbadm -lnc | head -1`): a quiet exit 0, no panic.
    for args in [["-lnc"], ["-ln"]] {
        let mut child = Command::new(ADM)
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the pipe's only reader is gone
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }

    // Garbage, a huge request and a stalled client on the socket; the next client is served.
    {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(b"\xff\xfe garbage\n").unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        assert!(r.contains("\"ok\":false"), "{r}");
        let mut big = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        let _ = big.write_all(&vec![b'x'; 200_000]);
        let mut r = String::new();
        let _ = big.read_to_string(&mut r);
        assert!(r.contains("too large"), "{r}");
        let _stalled = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        assert_eq!(adm_ok(&sock, &["-S"]), before);
    }

    // -S -> --check -> reload from that file: the same state.
    let saved = write(&dir, "saved.toml", &before);
    adm_ok(&sock, &["--check", saved.to_str().unwrap()]);
    std::fs::copy(&saved, &cfgp).unwrap();
    let r = adm_ok(&sock, &["--reload"]);
    assert!(r.is_empty(), "{r}");
    assert_eq!(adm_ok(&sock, &["-S"]), before);

    // Deletes and clear.
    adm_ok(&sock, &["-d", "-t", "192.168.1.200:80", "-r", "192.168.1.120"]);
    adm_ok(&sock, &["-D", "-u", "192.168.1.200:53"]);
    assert!(!adm_ok(&sock, &["-ln"]).contains("UDP"));
    adm_ok(&sock, &["-C"]);
    assert_eq!(adm_ok(&sock, &["-ln"]).lines().count(), 3, "only the header after -C");

    // Another uid cannot use the socket.
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", ADM, "--socket"])
        .arg(&sock)
        .arg("-ln")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Permission denied"), "{:?}", o);

    let (code, _, log) = d.stop();
    assert_eq!(code, 0, "{log}");

    // --control-group: that group gets in, another does not.
    let (dir2, prefix2) = scratch("admgrp");
    let sock2 = dir2.join("ctl.sock");
    let eal2 = eal_args(&prefix2, &format!("net_pcap0,rx_pcap={}", inp.display()));
    let cfg2 = write(&dir2, "drlb.toml", CFG);
    let sock2_arg = sock2.display().to_string();
    let mut d2 = spawn(&eal2, &app(&cfg2, &["--control", &sock2_arg, "--control-group", "4242"]));
    d2.wait_ready(Duration::from_secs(30));
    assert_eq!(std::fs::metadata(&sock2).unwrap().permissions().mode() & 0o777, 0o660);
    let as_gid = |gid: &str| {
        Command::new("setpriv")
            .args(["--reuid=65534", &format!("--regid={gid}"), "--clear-groups", ADM, "--socket"])
            .arg(&sock2)
            .arg("-ln")
            .output()
            .unwrap()
    };
    let o = as_gid("4242");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = as_gid("65534");
    assert_eq!(o.status.code(), Some(1));
    let (code2, _, log2) = d2.stop();
    assert_eq!(code2, 0, "{log2}");
    let _ = std::fs::remove_dir_all(dir2);

    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("drlbadm: added service UDP 192.168.1.200:53"),
        "every change logged:\n{log}"
    );
    // What a client sent is logged on one line: no forged "drlb: forged" line.
    assert!(!log.lines().any(|l| l.starts_with("drlb: forged")), "{log}");
    assert!(log.contains(r"'zz\ndrlb: forged' is not a MAC address"), "{log}");
    assert!(!sock.exists(), "socket removed on exit");
    let _ = std::fs::remove_dir_all(dir);
}

/// A reload makes the file the truth and names every drlbadm change it undoes (and every
/// key it cannot apply without a restart); `--save-config` writes the running config
/// back, so the next reload undoes nothing.
#[test]
fn a_reload_names_what_it_undoes_and_save_config_keeps_it() {
    let (dir, cfgp, sock, mut d) = daemon("admreload", flows_spec(2, 2));
    let weight_of = |ip: &str| {
        let ln = adm_ok(&sock, &["-ln"]);
        ln.lines()
            .find(|l| l.contains(&format!("-> {ip}:80")))
            .map(|l| l.split_whitespace().nth(3).unwrap().to_string())
    };
    let drain = ["-e", "-t", "192.168.1.200:80", "-r", "192.168.1.119", "-w", "0"];
    adm_ok(&sock, &drain);
    adm_ok(
        &sock,
        &["-a", "-t", "192.168.1.200:80", "-r", "192.168.1.120", "--mac", "02:00:00:00:00:20"],
    );

    // The file has neither change: both undone, both named, on stderr and in the log.
    let (code, out, err) = adm(&sock, &["--reload"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let undone: Vec<&str> = err.lines().filter(|l| l.contains("undone by the reload")).collect();
    assert_eq!(undone.len(), 2, "{err}");
    assert!(undone[0].contains("192.168.1.119") && undone[0].contains("weight"), "{err}");
    assert!(undone[1].contains("192.168.1.120"), "{err}");
    assert_eq!(weight_of("192.168.1.119").as_deref(), Some("1"));
    assert_eq!(weight_of("192.168.1.120"), None);
    d.wait_for("the reload's warning", Duration::from_secs(5), |l| {
        l.contains("reload undoes 2 change(s) made with drlbadm")
    });

    // Drain again and save: the file now says weight 0; a reload undoes nothing.
    adm_ok(&sock, &drain);
    let saved = adm_ok(&sock, &["--save-config"]);
    assert!(saved.contains(&cfgp.display().to_string()), "{saved}");
    adm_ok(&sock, &["--check", cfgp.to_str().unwrap()]);
    let file = std::fs::read_to_string(&cfgp).unwrap();
    assert!(file.contains("weight = 0"), "{file}");
    let (code, _, err) = adm(&sock, &["--reload"]);
    assert_eq!(code, 0);
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(weight_of("192.168.1.119").as_deref(), Some("0"));

    // A key that needs a restart: named, the running value kept.
    std::fs::write(&cfgp, file.replace("flow_capacity = 4096", "flow_capacity = 8192")).unwrap();
    let (code, _, err) = adm(&sock, &["--reload"]);
    assert_eq!(code, 0);
    assert!(
        err.contains("not applied until drlb restarts: dataplane.flow_capacity: 4096 -> 8192"),
        "{err}"
    );
    assert!(adm_ok(&sock, &["-S"]).contains("flow_capacity = 4096"));
    let (code, _, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `-S --format ipvsadm` prints `ipvsadm -S -n`'s lines; `-R` reads them back as one
/// change, and an input with any rule drlb cannot do changes nothing and names the line.
#[test]
fn ipvsadm_rules_round_trip_and_a_bad_rule_rejects_the_whole_input() {
    let (dir, _, sock, d) = daemon("admrestore", flows_spec(2, 2));
    let restore = |rules: &str| {
        use std::io::Write;
        let mut c = Command::new(ADM)
            .arg("--socket")
            .arg(&sock)
            .arg("-R")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
        let o = c.wait_with_output().unwrap();
        (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    adm_ok(&sock, &["-e", "-t", "192.168.1.200:80", "-r", "192.168.1.119", "-w", "3"]);
    let rules = adm_ok(&sock, &["-S", "--format", "ipvsadm"]);
    assert_eq!(
        rules,
        concat!(
            "-A -t 192.168.1.200:80 -s rr\n",
            "-a -t 192.168.1.200:80 -r 192.168.1.118:80 -g -w 1\n",
            "-a -t 192.168.1.200:80 -r 192.168.1.119:80 -g -w 3\n",
        )
    );
    // Cleared, then restored from those lines (plus a UDP service and a comment).
    adm_ok(&sock, &["-C"]);
    let more = "# from another director\n-A -u 192.168.1.200:53 -s sh -b sh-port,sh-fallback -p 60 -M 255.255.255.0\n-a -u 192.168.1.200:53 -r 192.168.1.118:53 -g -w 2\n";
    assert_eq!(restore(&format!("{rules}\n{more}")), (0, String::new()));
    let after = adm_ok(&sock, &["-S", "--format", "ipvsadm"]);
    assert_eq!(after, format!("{rules}-A -u 192.168.1.200:53 -s sh -b sh-fallback,sh-port -p 60 -M 255.255.255.0\n-a -u 192.168.1.200:53 -r 192.168.1.118:53 -g -w 2\n"));
    let ln = adm_ok(&sock, &["-ln"]);
    assert!(
        ln.contains(
            "\nUDP  192.168.1.200:53 sh (sh-fallback,sh-port) persistent 60 mask 255.255.255.0\n"
        ),
        "{ln}"
    );

    // Rules drlb cannot do: the whole input is refused, the line named, nothing changed.
    let before = adm_ok(&sock, &["-S"]);
    let ok = "-A -t 192.168.1.201:80 -s rr\n";
    for (bad, want) in [
        (
            "-a -t 192.168.1.201:80 -r 10.0.0.1:80 -m -w 1",
            "stdin line 2: drlb only does direct routing",
        ),
        (
            "-a -t 192.168.1.201:80 -r 10.0.0.1:80 -i -w 1",
            "stdin line 2: drlb only does direct routing",
        ),
        ("-A -t 192.168.1.202:80 -s lblc", "stdin line 2: Scheduler not found"),
        (
            "-A -t 192.168.1.202:80 -s wlc -b sh-port",
            "stdin line 2: scheduler flags are only for sh",
        ),
        (
            "-A -t 192.168.1.202:80 -s sh -b sh-wide",
            "stdin line 2: unknown scheduler flag 'sh-wide'",
        ),
        ("-A -t 192.168.1.202:80 -s rr -o", "stdin line 2: unexpected argument '-o'"),
        (
            "-A -t 192.168.1.202:80 -s rr -p 0",
            "stdin line 2: illegal timeout for persistent service: 0",
        ),
        ("-A -f 7 -s rr", "stdin line 2: unexpected argument '-f'"),
        ("-a -t 192.168.1.209:80 -r 10.0.0.1:80 -g -w 1", "stdin line 2: Service not defined"),
        ("-A -t 192.168.1.200:80 -s rr", "stdin line 2: Service already exists"),
        ("-L -n", "stdin line 2: a rule is one of -A -E -D -a -e -d -C"),
    ] {
        let (code, err) =
            restore(&format!("{ok}{bad}\n-a -t 192.168.1.201:80 -r 10.0.0.2:80 -g -w 1\n"));
        assert_eq!(code, 1, "{bad}: {err}");
        assert!(err.contains(want), "{bad}: {err:?} lacks {want:?}");
        assert_eq!(adm_ok(&sock, &["-S"]), before, "{bad}: nothing restored");
    }
    let (code, _, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `-Z` zeroes one service's counters (or all), `--set` changes the flow timeouts at
/// run time and `-L --timeout` shows them, as ipvsadm does.
#[test]
fn zero_counters_and_set_timeouts() {
    let (dir, _, sock, mut d) =
        daemon("admzero", FlowsSpec { interleave: true, ..flows_spec(10, 2) });
    d.wait_rx(20, Duration::from_secs(30));
    let tcp_conns = || {
        let l: serde_json::Value =
            serde_json::from_str(&adm_ok(&sock, &["-ln", "--json"])).unwrap();
        let s = l["services"].as_array().unwrap();
        let tcp = s.iter().find(|s| s["proto"] == "tcp").unwrap();
        let b: u64 =
            tcp["backends"].as_array().unwrap().iter().map(|b| b["conns"].as_u64().unwrap()).sum();
        (tcp["totals"]["conns"].as_u64().unwrap(), b)
    };
    poll("10 connections counted", Duration::from_secs(10), || {
        (tcp_conns() == (10, 10)).then_some(())
    });
    let (c, _, err) = adm(&sock, &["-Z", "-t", "192.168.1.209:80"]);
    assert_eq!(c, 1);
    assert!(err.contains("Service not defined"), "{err}");
    adm_ok(&sock, &["-Z", "-t", "192.168.1.200:80"]);
    assert_eq!(tcp_conns(), (0, 0));
    assert!(adm_ok(&sock, &["-ln", "--stats"])
        .contains("TCP  192.168.1.200:80                    0        0"));

    assert_eq!(adm_ok(&sock, &["-L", "--timeout"]), "Timeout (tcp tcpfin udp): 900 120 300\n");
    adm_ok(&sock, &["--set", "600", "0", "60"]);
    assert_eq!(adm_ok(&sock, &["-L", "--timeout"]), "Timeout (tcp tcpfin udp): 600 120 60\n");
    assert!(adm_ok(&sock, &["-S"]).contains("tcp = 600"));
    let (c, _, err) = adm(&sock, &["--set", "0", "0", "999999999"]);
    assert_eq!(c, 1, "{err}");
    assert!(err.contains("timeouts.udp"), "{err}");
    let (c, _, _) = adm(&sock, &["--set", "1", "2"]);
    assert_eq!(c, 1, "--set takes three values");
    assert_eq!(adm_ok(&sock, &["-L", "--timeout"]), "Timeout (tcp tcpfin udp): 600 120 60\n");
    let (code, _, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    let _ = std::fs::remove_dir_all(dir);
}
