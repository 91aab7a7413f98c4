//! The health checker against servers that behave well and badly, in a network namespace
//! of the test's own (entered by the test thread; the servers' and the checker's threads
//! inherit it): every check ends within its timeout with the right verdict, and nothing
//! blocks the others.
mod common;
use common::Netns;
use drlb::control::config::{CheckConf, CheckType, Expect};
use drlb::control::state::BackendKey;
use drlb::health::{Checker, Report, Target};
use drlb::lb::Proto;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::time::{Duration, Instant};

/// A server on 127.0.0.1 that answers each connection with `reply` (None: accepts and
/// never answers). Returns its port.
fn server(reply: Option<&'static [u8]>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            match reply {
                Some(r) => {
                    let mut s = s;
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(r);
                }
                None => held.push(s), // stalls: never reads, never answers
            }
        }
    });
    port
}

fn check(kind: CheckType) -> CheckConf {
    CheckConf {
        kind,
        interval: 1.0,
        timeout: 0.5,
        rise: 1,
        fall: 1,
        path: None,
        expect: None,
        command: None,
        port: None,
    }
}

#[test]
fn every_check_ends_within_its_timeout_with_the_right_verdict() {
    let _ns = Netns::new("drlbt-health").enter();
    let ok_http = server(Some(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    let busy = server(Some(b"HTTP/1.0 503 Service Unavailable\r\n\r\n"));
    let garbage = server(Some(b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02 garbage\r\n\r\n"));
    let stall = server(None);
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // bound, then closed
    let http = |path: &str, expect: Option<Expect>| CheckConf {
        path: Some(path.into()),
        expect,
        ..check(CheckType::Http)
    };
    let exec = |cmd: &str| CheckConf { command: Some(cmd.into()), ..check(CheckType::Exec) };
    // (name, port, check, expected ok, a word the result must say)
    let cases: Vec<(&str, u16, CheckConf, bool, &str)> = vec![
        ("http 200", ok_http, http("/", None), true, "HTTP 200"),
        ("http 503", busy, http("/", None), false, "HTTP 503"),
        ("http 503 expected", busy, http("/", Some(Expect::Any(vec![200, 503]))), true, "HTTP 503"),
        ("http garbage", garbage, http("/", None), false, "bad HTTP"),
        ("http stalls", stall, http("/", None), false, "timeout"),
        ("tcp connects", stall, check(CheckType::Tcp), true, "connected"),
        ("tcp refused", closed, check(CheckType::Tcp), false, "refused"),
        ("exec exit 0", 1, exec("true"), true, "exit 0"),
        ("exec exit 1", 1, exec("false"), false, "exit 1"),
        ("exec hangs", 1, exec("sleep 100"), false, "timeout"),
        ("exec floods stdout", 1, exec("yes flood"), false, "timeout"),
        (
            "exec gets %ip and %port",
            ok_http,
            exec("test %ip:%port = 127.0.0.1:%port"),
            true,
            "exit 0",
        ),
        ("exec missing program", 1, exec("/nonexistent/check"), false, "No such file"),
    ];
    let checker = Checker::start(None).unwrap();
    let key = |i: usize| BackendKey {
        vip: Ipv4Addr::new(192, 168, 1, 200),
        port: 80,
        proto: Proto::Tcp,
        rip: Ipv4Addr::new(10, 0, 0, i as u8 + 1),
    };
    let targets = cases
        .iter()
        .enumerate()
        .map(|(i, (_, port, c, _, _))| Target {
            key: key(i),
            addr: SocketAddrV4::new(Ipv4Addr::LOCALHOST, *port),
            source: Ipv4Addr::LOCALHOST,
            check: c.clone(),
        })
        .collect();
    let start = Instant::now();
    checker.set_targets(targets);
    let mut first: HashMap<BackendKey, (Report, Duration)> = HashMap::new();
    while first.len() < cases.len() && start.elapsed() < Duration::from_secs(10) {
        for r in checker.reports() {
            first.entry(r.key).or_insert((r, start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for (i, (name, _, c, ok, word)) in cases.iter().enumerate() {
        let (r, at) = first.get(&key(i)).unwrap_or_else(|| panic!("{name}: no result within 10 s"));
        assert_eq!(r.result.ok, *ok, "{name}: {:?}", r.result);
        assert!(r.result.detail.contains(word), "{name}: {:?} lacks {word:?}", r.result.detail);
        // Within the timeout (0.5 s; the slack is for scheduling on a loaded 2-CPU
        // machine), and not held up by the slow ones (a hang would be 100 s).
        let limit = Duration::from_secs_f64(c.timeout) + Duration::from_secs(1);
        assert!(r.result.latency <= limit, "{name}: took {:?}", r.result.latency);
        assert!(*at <= limit + Duration::from_secs(2), "{name}: arrived at {at:?}");
    }
    drop(checker); // stops every check and joins the thread
}
