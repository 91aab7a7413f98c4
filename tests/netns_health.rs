//! The director as a real host with health checks, in network namespaces with real
//! HTTP servers (scripts/seed-topology.sh): the kernel interface (ping and TCP to the
//! director IP), HTTP, TCP and exec checks taking a stopped server out and putting it
//! back, the sorry server, the quorum, a reload that keeps a down server down, a server
//! that never answers ARP, and servers flapping (removed and re-added, or down and up by
//! their check) under a long download and under ab: no request fails.
mod common;
use common::topo::*;
use common::*;
use std::time::{Duration, Instant};

/// The seed service with a kernel interface, a check of `check` (TOML lines), C as the
/// sorry server and `quorum`.
fn config(check: &str, quorum: u32) -> String {
    format!(
        r#"[dataplane]
ip = "192.168.1.121"
kernel_interface = "drlb0"

[[service]]
vip = "192.168.1.200"
port = 80
scheduler = "rr"
sorry_server = "192.168.1.120"
quorum = {quorum}
  [service.check]
  interval = 0.3
  timeout = 0.25
  rise = 2
  fall = 2
  {check}
  [[service.backend]]
  ip = "192.168.1.118"
  [[service.backend]]
  ip = "192.168.1.119"
"#
    )
}

const HTTP: &str = "type = \"http\"\n  path = \"/health\"";

/// The listing as JSON.
fn listing(d: &Running) -> serde_json::Value {
    serde_json::from_str(&d.adm_ok(&["-ln", "--json"])).expect("JSON listing")
}

/// Real server `ip`'s weight as new flows see it (0: down or unresolved).
fn weight(d: &Running, ip: &str) -> Option<u64> {
    let l = listing(d);
    let b = l["services"][0]["backends"].as_array()?.iter().find(|b| b["ip"] == ip)?.clone();
    b["weight"].as_u64()
}

/// Waits until real server `ip` takes new flows (`up`) or not; returns how long it took.
fn wait_weight(d: &Running, ip: &str, up: bool, timeout: Duration) -> Duration {
    let start = Instant::now();
    poll(&format!("{ip} {}", if up { "up" } else { "down" }), timeout, || {
        (weight(d, ip).map(|w| w > 0) == Some(up)).then_some(())
    });
    start.elapsed()
}

const A: &str = "192.168.1.118";
const B: &str = "192.168.1.119";

#[test]
fn kernel_interface_and_health_checks_end_to_end() {
    let t = Topo::up("health");
    for w in ["www-a", "www-b", "www-c"] {
        std::fs::write(t.dir.join(w).join("health"), "ok\n").unwrap();
    }
    let cfg = write(&t.dir, "drlb.toml", &config(HTTP, 1));
    let sock = t.dir.join("ctl.sock").display().to_string();
    let mut d = spawn_cmd(
        "ip",
        &t.drlb_eal("health"),
        &app(&cfg, &["--control", &sock, "--metrics", "9100"]),
    );
    d.wait_ready(Duration::from_secs(30));
    // Both up by their first check (unknown counts as up: the MACs are what it takes).
    wait_weight(&d, A, true, Duration::from_secs(20));
    wait_weight(&d, B, true, Duration::from_secs(20));

    // The director IP is a normal host: ping (one reply each), and TCP to a server on it.
    let ping = t.run("cli", &["ping", "-c", "3", "-W", "2", "192.168.1.121"]);
    let out = String::from_utf8_lossy(&ping.stdout);
    assert!(ping.status.success() && !out.contains("duplicates"), "{out}");
    let mut web = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.ns("dir"),
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "192.168.1.121",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let body = poll("HTTP to the director IP", Duration::from_secs(10), || {
        let o = t.run("cli", &["curl", "-s", "--max-time", "2", "http://192.168.1.121:8080/"]);
        let b = String::from_utf8_lossy(&o.stdout).into_owned();
        b.contains("Directory listing").then_some(b)
    });
    let _ = web.kill();
    let _ = web.wait();
    assert!(body.contains("Directory listing"));
    // The kernel interface's own counters, as for any interface.
    let link =
        String::from_utf8_lossy(&t.run("dir", &["ip", "-s", "link", "show", "drlb0"]).stdout)
            .into_owned();
    assert!(link.contains("RX:") && link.contains("TX:"), "{link}");

    // HTTP check: B's web server stops; B is down within fall x interval + timeout, and
    // every new connection goes to A.
    t.web('B', false);
    let took = wait_weight(&d, B, false, Duration::from_secs(10));
    eprintln!("B's web server stopped: B down after {:.2} s (fall 2 x interval 0.3 s + timeout 0.25 s = 0.85 s)", took.as_secs_f64());
    assert!(took < Duration::from_millis(850) + Duration::from_secs(2), "{took:?}");
    let after: String = (0..10).map(|_| t.who()).collect();
    assert_eq!(after, "A".repeat(10));
    d.wait_for("the down line", Duration::from_secs(5), |l| {
        l.contains("192.168.1.119:80") && l.contains("up -> down")
    });
    // ... and in Prometheus (the metrics listener is in the director's namespace).
    let labels =
        |ip: &str| format!(r#"{{vip="192.168.1.200",port="80",proto="tcp",backend="{ip}:80"}}"#);
    let scrape = poll("B down in /metrics", Duration::from_secs(5), || {
        let o = t.run("dir", &["curl", "-s", "--max-time", "2", "http://127.0.0.1:9100/metrics"]);
        let body = String::from_utf8_lossy(&o.stdout).into_owned();
        body.contains(&format!("drlb_backend_up{} 0", labels(B))).then_some(body)
    });
    assert!(scrape.contains(&format!("drlb_backend_up{} 1", labels(A))), "{scrape}");
    let transitions = format!("drlb_backend_health_transitions_total{} ", labels(B));
    let n: u64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix(transitions.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {transitions} in {scrape}"));
    assert!(n >= 1, "{scrape}");
    // Back after `rise` good checks; rr over both again.
    t.web('B', true);
    wait_weight(&d, B, true, Duration::from_secs(10));
    let both: String = (0..6).map(|_| t.who()).collect();
    assert!(both.contains('A') && both.contains('B'), "{both}");
    let health = d.adm_ok(&["-ln", "--health"]);
    assert!(health.contains("  -> 192.168.1.119:80             up "), "{health}");
    assert!(health.contains("HTTP 200"), "{health}");

    // Both down: the sorry server C takes new flows and is listed; back, it takes none.
    t.web('A', false);
    t.web('B', false);
    wait_weight(&d, A, false, Duration::from_secs(10));
    wait_weight(&d, B, false, Duration::from_secs(10));
    assert_eq!(t.who(), 'C');
    let ln = d.adm_ok(&["-ln"]);
    assert!(ln.contains("  -> 192.168.1.120:80             Route   1"), "{ln}");
    assert_eq!(listing(&d)["services"][0]["available"], false);
    t.web('A', true);
    t.web('B', true);
    wait_weight(&d, A, true, Duration::from_secs(10));
    wait_weight(&d, B, true, Duration::from_secs(10));
    let back: String = (0..6).map(|_| t.who()).collect();
    assert!(!back.contains('C'), "{back}");

    // A reload does not bring a down server up.
    let mut reloads = 0;
    t.web('B', false);
    wait_weight(&d, B, false, Duration::from_secs(10));
    reload(&mut d, &mut reloads);
    assert_eq!(weight(&d, B), Some(0), "still down after a reload");
    t.web('B', true);
    wait_weight(&d, B, true, Duration::from_secs(10));

    // Quorum 2: one server down makes the service unavailable (and C takes new flows).
    std::fs::write(&cfg, config(HTTP, 2)).unwrap();
    reload(&mut d, &mut reloads);
    t.web('B', false);
    wait_weight(&d, B, false, Duration::from_secs(10));
    d.wait_for("unavailable", Duration::from_secs(5), |l| {
        l.contains("unavailable: fewer than 2 servers up")
    });
    assert_eq!(listing(&d)["services"][0]["available"], false);
    t.web('B', true);
    wait_weight(&d, B, true, Duration::from_secs(10));
    d.wait_for("available again", Duration::from_secs(5), |l| l.contains("available again"));

    // TCP and exec checks take B out and back the same way.
    for check in ["type = \"tcp\"", "type = \"exec\"\n  command = \"curl -sf --max-time 0.2 -o /dev/null http://%ip:%port/health\""] {
        std::fs::write(&cfg, config(check, 1)).unwrap();
        reload(&mut d, &mut reloads);
        t.web('B', false);
        wait_weight(&d, B, false, Duration::from_secs(10));
        t.web('B', true);
        wait_weight(&d, B, true, Duration::from_secs(10));
    }
    std::fs::write(&cfg, config(HTTP, 1)).unwrap();
    reload(&mut d, &mut reloads);

    // A server that never answers ARP: listed with weight 0 and said so.
    d.adm_ok(&["-a", "-t", "192.168.1.200:80", "-r", "192.168.1.130:80", "-w", "1"]);
    d.wait_for("the ARP warning", Duration::from_secs(10), |l| {
        l.contains("192.168.1.130 has not answered")
    });
    assert_eq!(weight(&d, "192.168.1.130"), Some(0));
    assert!(d.adm_ok(&["-ln", "--health"]).contains("no ARP answer"));
    d.adm_ok(&["-d", "-t", "192.168.1.200:80", "-r", "192.168.1.130:80"]);

    // Flaps under load, with the IPVS defaults (drop while gone, resume when back): B
    // removed and re-added within a second, then down and up by its check (its health
    // file removed and restored), each under a long download from B and under ab.
    let flaps: [(&str, &dyn Fn()); 2] = [
        ("removed and re-added", &|| {
            d.adm_ok(&["-d", "-t", "192.168.1.200:80", "-r", "192.168.1.119:80"]);
            std::thread::sleep(Duration::from_millis(500));
            d.adm_ok(&["-a", "-t", "192.168.1.200:80", "-r", "192.168.1.119:80"]);
        }),
        ("down and up by its check", &|| {
            let h = t.dir.join("www-b/health");
            std::fs::remove_file(&h).unwrap();
            wait_weight(&d, B, false, Duration::from_secs(10));
            std::fs::write(&h, "ok\n").unwrap();
            wait_weight(&d, B, true, Duration::from_secs(10));
        }),
    ];
    for (what, flap) in flaps {
        let (download, ab) = under_load(&t, flap);
        assert_eq!(download.len(), 400_000, "{what}: the download from B completes");
        assert!(download.iter().all(|&b| b == b'B'), "{what}: and comes whole from B");
        assert!(ab.contains("Complete requests:      400"), "{what}: {ab}");
        assert!(ab.contains("Failed requests:        0"), "{what}: {ab}");
    }

    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(accounted(&c), c["rx"], "{c:?}");
    assert!(
        c["to_kernel"] > 0 && c["from_kernel"] > 0 && c["kernel_tx"] == c["to_kernel"],
        "{c:?}"
    );
}

/// Runs `flap` while a long download from B (the client's link is 2 Mbit/s: 400 KB take
/// 1.6 s) and ab (400 requests, 4 at a time) are in flight; returns the download's body
/// and ab's report.
fn under_load(t: &Topo, flap: &dyn Fn()) -> (Vec<u8>, String) {
    // Start downloads until one is served by B (rr alternates).
    let cli = t.ns("cli");
    let mut tries = 0;
    let download = loop {
        tries += 1;
        assert!(tries < 10, "no download went to B");
        let cli = cli.clone();
        let h = std::thread::spawn(move || {
            std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &cli,
                    "curl",
                    "-s",
                    "--max-time",
                    "60",
                    "http://192.168.1.200/big.bin",
                ])
                .output()
                .unwrap()
                .stdout
        });
        // rr: the next connection goes to the other server than the download's.
        std::thread::sleep(Duration::from_millis(300));
        if t.who() == 'A' {
            break h; // this download went to B
        }
        let _ = h.join(); // an A download: let it end,
        t.who(); // and shift rr by one, so the next download goes to B
    };
    let cli = t.ns("cli");
    let ab = std::thread::spawn(move || {
        let o = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &cli,
                "ab",
                "-q",
                "-n",
                "400",
                "-c",
                "4",
                "-s",
                "30",
                "http://192.168.1.200/",
            ])
            .output()
            .expect("ab (apache2-utils; scripts/setup.sh installs it)");
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    });
    std::thread::sleep(Duration::from_millis(300));
    flap();
    (download.join().unwrap(), ab.join().unwrap())
}

/// The seed as an operator's keepalived.conf (LVS-DR, HTTP_GET on /health), imported
/// with `drlbadm --import-keepalived`, checked with `drlb --check` and run: both servers
/// alternate, a stopped one is taken out by the imported check and put back.
#[test]
fn an_imported_keepalived_conf_runs() {
    let t = Topo::up("kaimp");
    for w in ["www-a", "www-b"] {
        std::fs::write(t.dir.join(w).join("health"), "ok\n").unwrap();
    }
    let real = |ip: &str| {
        format!(
            "    real_server {ip} 80 {{\n        weight 1\n        HTTP_GET {{\n            url {{\n                path /health\n                status_code 200\n            }}\n            connect_timeout 0.25\n            retry 1\n            delay_before_retry 1\n        }}\n    }}\n"
        )
    };
    let ka = write(
        &t.dir,
        "keepalived.conf",
        &format!(
            "! the seed, as keepalived runs it\nvrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 51\n    virtual_ipaddress {{\n        192.168.1.200\n    }}\n}}\n\nvirtual_server 192.168.1.200 80 {{\n    delay_loop 0.3\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n\n{}{}}}\n",
            real(A),
            real(B)
        ),
    );
    let o = std::process::Command::new(ADM)
        .args(["--import-keepalived", &ka.display().to_string(), "--director-ip", "192.168.1.121"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = write(&t.dir, "drlb.toml", &String::from_utf8_lossy(&o.stdout));
    let check = std::process::Command::new(DRLB).arg("--check").arg(&cfg).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    let sock = t.dir.join("ctl.sock").display().to_string();
    let mut d = spawn_cmd("ip", &t.drlb_eal("kaimp"), &app(&cfg, &["--control", &sock]));
    d.wait_ready(Duration::from_secs(30));
    wait_weight(&d, A, true, Duration::from_secs(20));
    wait_weight(&d, B, true, Duration::from_secs(20));
    let seq: String = (0..6).map(|_| t.who()).collect();
    assert!(seq == "ABABAB" || seq == "BABABA", "{seq}");
    // retry 1: down after two failures of the imported HTTP check.
    t.web('B', false);
    wait_weight(&d, B, false, Duration::from_secs(10));
    let only_a: String = (0..4).map(|_| t.who()).collect();
    assert_eq!(only_a, "AAAA");
    t.web('B', true);
    wait_weight(&d, B, true, Duration::from_secs(10));
    let ln = d.adm_ok(&["-ln"]);
    assert!(ln.contains("TCP  192.168.1.200:80 rr"), "{ln}");
    let (code, _, log) = d.stop();
    assert_eq!(code, 0, "{log}");
}
