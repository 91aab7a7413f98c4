//! `drlbadm --import-keepalived`: real-world-shaped keepalived.conf files (tests/keepalived/,
//! written from keepalived's own doc/samples, on direct routing) become configs that
//! `drlb --check` accepts and that say what keepalived said; what drlb cannot do is
//! refused with the file, the line and the reason, and nothing is printed.
//! (tests/netns_health.rs runs an imported config in namespaces with real servers.)
use drlb::control::config::{CheckType, Config, Expect};
use drlb::lb::maglev::MhHash;
use drlb::lb::{Proto, SchedKind};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

const ADM: &str = env!("CARGO_BIN_EXE_drlbadm");
const DRLB: &str = env!("CARGO_BIN_EXE_drlb");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keepalived").join(name)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("drlb-ka-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `drlbadm --import-keepalived FILE [extra]`: (exit code, stdout, stderr).
fn import(file: &Path, extra: &[&str]) -> (i32, String, String) {
    let o = Command::new(ADM).arg("--import-keepalived").arg(file).args(extra).output().unwrap();
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (o.status.code().unwrap_or(-1), s(&o.stdout), s(&o.stderr))
}

/// Imports a fixture as a whole config, checks it with `drlb --check` and parses it.
fn imported(name: &str) -> (Config, String) {
    let (code, toml, err) = import(&fixture(name), &["--director-ip", "192.168.1.121"]);
    assert_eq!(code, 0, "{name}: {err}");
    let dir = scratch(name);
    let out = dir.join("drlb.toml");
    std::fs::write(&out, &toml).unwrap();
    let check = Command::new(DRLB).arg("--check").arg(&out).output().unwrap();
    let said = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(
        check.status.success() && said.contains(": ok ("),
        "{name}: drlb --check: {said}\n{toml}"
    );
    let cfg = Config::parse(&toml, name).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // Comments wrap at word boundaries (where depends on the path's length): unwrap them.
    (cfg, toml.replace("\n#   ", " "))
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn the_classic_dr_pair_with_vrrp_and_an_included_https_service() {
    let (c, toml) = imported("lvs-dr-http.conf");
    assert_eq!(c.dataplane.ip, ip("192.168.1.121"));
    assert_eq!(c.dataplane.kernel_interface.as_deref(), Some("drlb0"));
    // global_defs' lvs_timeouts.
    let t = c.timeouts();
    assert_eq!((t.tcp, t.tcp_fin, t.udp), (7200, 60, 120));
    assert_eq!(c.services.len(), 2);
    let web = &c.services[0];
    assert_eq!(
        (web.vip, web.port, web.protocol, web.scheduler),
        (ip("192.168.1.200"), 80, Proto::Tcp, SchedKind::Wlc)
    );
    let ips: Vec<_> = web.backends.iter().map(|b| (b.ip, b.weight)).collect();
    assert_eq!(ips, [(ip("192.168.1.118"), 1), (ip("192.168.1.119"), 1)]);
    let ck = web.check.as_ref().unwrap();
    // delay_loop 6, connect_timeout 3, retry 3: down after 4 failures, up after 1 success.
    assert_eq!(
        (ck.kind, ck.interval, ck.timeout, ck.fall, ck.rise),
        (CheckType::Http, 6.0, 3.0, 4, 1)
    );
    assert_eq!((ck.path.as_deref(), &ck.expect), (Some("/health"), &Some(Expect::One(200))));
    // The included file (conf.d/*.conf), its line named.
    let https = &c.services[1];
    assert_eq!((https.port, https.scheduler), (443, SchedKind::Sh));
    assert_eq!((https.flags().sh_port, https.flags().sh_fallback), (true, true));
    // `persistence_timeout` without a value: keepalived's 6 minutes.
    assert_eq!(
        (https.persistence, https.persistence_netmask),
        (Some(360), Some(ip("255.255.255.0")))
    );
    let ck = https.check.as_ref().unwrap();
    // connect_timeout from the virtual server, delay_loop 10, retry's default 1, the
    // check port the service's (so not written).
    assert_eq!(
        (ck.kind, ck.interval, ck.timeout, ck.fall, ck.port),
        (CheckType::Tcp, 10.0, 4.0, 2, None)
    );
    assert_eq!(https.backends.iter().map(|b| b.weight).collect::<Vec<_>>(), [2, 3]);
    // Where each service came from, and what was not imported, in comments.
    assert!(toml.contains("lvs-dr-http.conf:30: virtual_server 192.168.1.200 80"), "{toml}");
    assert!(toml.contains("conf.d/https.conf:3: virtual_server 192.168.1.200 443"), "{toml}");
    assert!(toml.contains("lvs-dr-http.conf:15) is not imported: drlb has no VRRP"), "{toml}");
    assert!(toml.contains("note: inhibit_on_failure"), "{toml}");
    assert!(toml.contains("note: delay_before_retry"), "{toml}");
}

#[test]
fn quorum_sample_ten_servers() {
    let (c, toml) = imported("quorum-dr.conf");
    let s = &c.services[0];
    assert_eq!(
        (s.port, s.scheduler, s.persistence, s.backends.len()),
        (8080, SchedKind::Wrr, Some(900), 10)
    );
    // Quorum 7 in weight, every weight 1: 7 servers.
    assert_eq!(s.quorum, 7);
    let ck = s.check.as_ref().unwrap();
    // TCP_CHECK's connect_port 80 differs from the service's 8080: kept.
    assert_eq!((ck.kind, ck.port, ck.timeout, ck.interval), (CheckType::Tcp, Some(80), 3.0, 6.0));
    for n in ["alpha:", "hysteresis:", "quorum_up, quorum_down, omega:"] {
        assert!(toml.contains(&format!("note: {n}")), "{n}\n{toml}");
    }
}

#[test]
fn udp_dns_with_a_script_per_server_becomes_one_command() {
    let (c, _) = imported("dns-misc.conf");
    let s = &c.services[0];
    assert_eq!((s.protocol, s.port, s.scheduler), (Proto::Udp, 53, SchedKind::Rr));
    assert_eq!((s.persistence, s.persistence_netmask), (Some(120), Some(ip("255.255.255.0"))));
    let ck = s.check.as_ref().unwrap();
    // Each server's own address in its misc_path is %ip; MISC_CHECK's retry default is 0.
    assert_eq!(ck.command.as_deref(), Some("/usr/local/bin/check_dns.sh %ip example.com"));
    assert_eq!((ck.kind, ck.timeout, ck.interval, ck.fall), (CheckType::Exec, 3.0, 5.0, 1));
}

#[test]
fn maglev_sorry_server_weights_and_status_ranges() {
    let (c, toml) = imported("mh-sorry.conf");
    let s = &c.services[0];
    assert_eq!(s.scheduler, SchedKind::Mh);
    // mh-port: the whole 5-tuple is hashed.
    assert_eq!(s.mh_hash, Some(MhHash::Flow));
    assert_eq!(s.sorry_server, Some(ip("172.16.9.9")));
    // quorum 5 in weight over weights 4, 2, 1: two servers at least.
    assert_eq!(s.quorum, 2);
    assert!(toml.contains("note: quorum 5: keepalived counts the weight"), "{toml}");
    let ck = s.check.as_ref().unwrap();
    assert_eq!(ck.expect, Some(Expect::Ranges("200-299 301 302".into())));
    let st = ck.expect.as_ref().unwrap().statuses();
    assert!(st.contains(&204) && st.contains(&302) && !st.contains(&303) && st.len() == 102);
    // nb_get_retry 2 (the old name of retry): down after 3.
    assert_eq!((ck.fall, ck.timeout, ck.interval), (3, 2.0, 3.0));
    assert!(toml.contains("note: digest: drlb's HTTP check looks at the status only"), "{toml}");
}

#[test]
fn without_a_director_ip_the_services_go_under_an_existing_dataplane() {
    let (code, toml, err) = import(&fixture("dns-misc.conf"), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!toml.contains("\n[dataplane]\n"), "{toml}");
    assert!(toml.contains("--director-ip IP"), "{toml}");
    let whole = format!("[dataplane]\nip = \"10.20.0.1\"\nkernel_interface = \"drlb0\"\n{toml}");
    Config::parse(&whole, "t").unwrap();
    assert!(err.contains("imported 1 service from"), "{err}");
}

/// keepalived.conf text -> what the refusal says.
#[test]
fn what_drlb_cannot_do_is_refused_with_the_line_and_the_reason() {
    let vs = |head: &str, body: &str| {
        format!("! a director\nvirtual_server {head} {{\n    lb_algo rr\n    lb_kind DR\n{body}    real_server 10.0.0.2 80 {{\n        weight 1\n    }}\n}}\n")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("NAT", vs("10.0.0.1 80", "    lb_kind NAT\n"), "t.conf:5: lb_kind NAT: drlb only does direct routing (DR), not NAT"),
        ("TUN", vs("10.0.0.1 80", "    lvs_method TUN type ipip\n"), "t.conf:5: lvs_method TUN type ipip: drlb only does direct routing (DR), not TUN"),
        ("no lb_kind (NAT by default)", "virtual_server 10.0.0.1 80 {\n  real_server 10.0.0.2 80 {\n  }\n}\n".into(), "t.conf:1: virtual_server 10.0.0.1 80: no `lb_kind DR`: keepalived's default is NAT"),
        ("fwmark", vs("fwmark 1", ""), "t.conf:2: virtual_server fwmark 1: fwmark services are not built in drlb"),
        ("group", "virtual_server_group G {\n  10.0.0.1 80\n}\n".into(), "t.conf:1: virtual_server_group G: virtual server groups are not built in drlb"),
        ("group use", vs("group G", ""), "t.conf:2: virtual_server group G: virtual server groups are not built in drlb"),
        ("SSL_GET", vs("10.0.0.1 443", "    real_server 10.0.0.3 443 {\n        SSL_GET {\n            url {\n              path /\n            }\n        }\n    }\n"), "t.conf:6: SSL_GET: drlb's health checks do not speak TLS"),
        ("DNS_CHECK", vs("10.0.0.1 80", "    real_server 10.0.0.3 80 {\n        DNS_CHECK {\n        }\n    }\n"), "t.conf:6: DNS_CHECK: DNS_CHECK is not built in drlb"),
        ("scheduler", vs("10.0.0.1 80", "    lb_algo lblc\n"), "t.conf:5: lb_algo lblc: scheduler \"lblc\" is not built in drlb"),
        ("SCTP", vs("10.0.0.1 80", "    protocol SCTP\n"), "t.conf:5: protocol SCTP: protocol SCTP is not built in drlb"),
        ("IPv6", vs("2001:db8::1 80", ""), "t.conf:2: virtual_server 2001:db8::1 80: IPv6 services are not built in drlb"),
        ("port remap", vs("10.0.0.1 80", "    real_server 10.0.0.3 8080 {\n    }\n"), "t.conf:5: real_server 10.0.0.3 8080: the real server's port must be the service's (80)"),
        ("no port", vs("10.0.0.1", "    persistence_timeout 60\n"), "t.conf:2: virtual_server 10.0.0.1: a service without a port"),
        ("checks differ", vs("10.0.0.1 80", "    real_server 10.0.0.3 80 {\n        TCP_CHECK {\n        }\n    }\n"), "t.conf:2: virtual_server 10.0.0.1 80: its real servers are checked differently"),
        ("two checkers", vs("10.0.0.1 80", "    real_server 10.0.0.3 80 {\n        TCP_CHECK {\n        }\n        HTTP_GET {\n        }\n    }\n"), "t.conf:8: HTTP_GET: a second checker on one real server"),
        ("weight", vs("10.0.0.1 80", "    real_server 10.0.0.3 80 {\n        weight 70000\n    }\n"), "t.conf:6: weight 70000: 70000 is out of range"),
        ("thresholds", vs("10.0.0.1 80", "    real_server 10.0.0.3 80 {\n        uthreshold 100\n    }\n"), "t.conf:6: uthreshold 100: connection thresholds are not built in drlb"),
        ("ops", vs("10.0.0.1 80", "    ops\n"), "t.conf:5: ops: one-packet scheduling is not built in drlb"),
        ("sorry port", vs("10.0.0.1 80", "    sorry_server 10.0.0.9 8080\n"), "t.conf:5: sorry_server 10.0.0.9 8080: the sorry server's port must be the service's (80)"),
        ("unknown keyword", vs("10.0.0.1 80", "    lb_algorithm rr\n"), "t.conf:5: lb_algorithm rr: unknown keyword in a virtual_server"),
        ("unclosed block", "virtual_server 10.0.0.1 80 {\n  lb_kind DR\n".into(), "t.conf:1: this block is not closed"),
        ("stray brace", "}\n".into(), "t.conf:1: `}` closes no block"),
        ("missing include", "include /nonexistent/keepalived.d/vs.conf\n".into(), "t.conf:1: include /nonexistent/keepalived.d/vs.conf: no such file"),
        ("parameters", "$VIP=10.0.0.1\n".into(), "t.conf:1: $VIP=10.0.0.1: keepalived's conditional configuration, parameters and sequences"),
        ("nothing to import", "global_defs {\n  router_id X\n}\n".into(), "t.conf: no virtual_server to import"),
        ("duplicate service", format!("{}{}", vs("10.0.0.1 80", ""), vs("10.0.0.1 80", "")), "t.conf:10: virtual_server 10.0.0.1 80: drlb refuses what this becomes: the import: service[1]: duplicate service 10.0.0.1:80/tcp"),
    ];
    let dir = scratch("refusals");
    let mut failed = Vec::new();
    for (what, text, want) in &cases {
        let f = dir.join("t.conf");
        std::fs::write(&f, text).unwrap();
        // Run from the directory so the file is named as given.
        let o = Command::new(ADM)
            .current_dir(&dir)
            .args(["--import-keepalived", "t.conf"])
            .output()
            .unwrap();
        let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        if o.status.code() != Some(1)
            || !out.is_empty()
            || !err.contains(want)
            || !err.contains("nothing imported")
        {
            failed.push(format!(
                "{what}: exit {:?}, stdout {out:?}, stderr:\n{err}\nwanted: {want}",
                o.status.code()
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failed.is_empty(), "{}", failed.join("\n---\n"));
}

#[test]
fn every_refusal_of_a_file_is_listed_not_only_the_first() {
    let dir = scratch("many");
    std::fs::write(
        dir.join("k.conf"),
        "virtual_server 10.0.0.1 80 {\n  lb_kind NAT\n  real_server 10.0.0.2 80 {\n  }\n}\nvirtual_server fwmark 7 {\n}\n",
    )
    .unwrap();
    let (code, out, err) = import(&dir.join("k.conf"), &[]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.contains("k.conf:2: lb_kind NAT") && err.contains("k.conf:6: virtual_server fwmark 7"),
        "{err}"
    );
    assert!(err.contains("nothing imported (2 errors)"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_that_is_not_a_keepalived_conf_is_refused_in_twenty_lines() {
    let dir = scratch("notka");
    let text: String = (0..30).map(|i| format!("user{i}:x:{i}:{i}::/home:/bin/sh\n")).collect();
    std::fs::write(dir.join("passwd"), text).unwrap();
    let (code, out, err) = import(&dir.join("passwd"), &[]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.contains("passwd:1: user0:x:0:0::/home:/bin/sh: unknown keyword at the top level"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 22, "{err}");
    assert!(
        err.contains("... and 10 more") && err.contains("nothing imported (30 errors)"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
