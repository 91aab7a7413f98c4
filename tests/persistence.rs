//! Persistence (ipvsadm `-p`/`-M`): a client keeps its real server across connections
//! and workers while any of its connections lives and `timeout` after; drained and down
//! servers keep their persistent clients until the template expires, removed ones do
//! not. The pure pipeline on two workers, then the real binary on two workers with
//! drlbadm's `-ln`, `-lnc` and `-S`.
mod common;
use common::*;
use drlb::lb::conns::{ConnCounts, ConnRow};
use drlb::lb::flow::FlowTable;
use drlb::lb::persist::Templates;
use drlb::lb::pipeline::keep_template;
use drlb::lb::snapshot::{BackendSpec, Policy, ServiceSpec};
use drlb::lb::{process, LocalState, Proto, SchedKind, Snapshot, Timeouts, Verdict};
use drlb::testing::frames::{self, ip, Flow};
use drlb::testing::pcap;
use drlb::wire::tcp::flags::*;
use drlb::wire::Mac;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const PMAC: Mac = Mac([2, 0, 0, 0, 0, 1]);
const T: u32 = 10; // ticks a second

/// Backends (slot = index, incarnation 1) with these weights; `down` fail their check;
/// `removed` are left out.
fn snap(weights: &[u32], down: &[usize], removed: &[usize], timeout: u32, mask: u32) -> Snapshot {
    let specs = vec![ServiceSpec {
        vip: ip("192.168.1.200"),
        port: 443,
        proto: Proto::Tcp,
        policy: Policy {
            persistence: timeout,
            persistence_mask: mask,
            ..Policy::new(SchedKind::Rr)
        },
        backends: weights
            .iter()
            .enumerate()
            .filter(|(i, _)| !removed.contains(i))
            .map(|(i, &weight)| BackendSpec {
                slot: i as u16,
                incarnation: 1,
                ip: ip("192.168.1.100") + i as u32,
                port: 443,
                weight,
                mac: Some(Mac([0, 0x0c, 0x29, 0, 0, i as u8])),
                down: down.contains(&i),
            })
            .collect(),
        ..ServiceSpec::default()
    }];
    Snapshot::build(1, PMAC, ip("192.168.1.121"), Timeouts::default(), &specs).unwrap()
}

/// `n` workers sharing templates and connection counts, as drlb's.
fn workers(n: usize) -> (Vec<LocalState>, Arc<Templates>) {
    let (conns, templates) = (ConnCounts::new(n), Templates::new(4096));
    let w = (0..n)
        .map(|i| {
            let flows = FlowTable::new(1 << 14).with_conns(ConnRow::new(&conns, i));
            LocalState::sharing(flows, i, templates.clone())
        })
        .collect();
    (w, templates)
}

fn send(
    s: &Snapshot,
    l: &mut LocalState,
    client: u32,
    sport: u16,
    fl: u8,
    secs: u32,
) -> Option<u16> {
    let f = Flow {
        dst_mac: PMAC,
        src_mac: Mac([2, 9, 9, 9, 9, 9]),
        saddr: client,
        daddr: ip("192.168.1.200"),
        sport,
        dport: 443,
    };
    match process(&mut frames::tcp(&f, fl, 0, 60), s, l, secs * T) {
        Verdict::Forward { slot, .. } => Some(slot),
        _ => None,
    }
}

/// 200 clients × 5 connections each, the connections spread over two workers (as RSS
/// spreads them): every client's connections land on one server; rr spreads the
/// clients over the servers.
#[test]
fn two_hundred_clients_five_connections_each_one_server_per_client() {
    let s = snap(&[1, 1, 1], &[], &[], 300, u32::MAX);
    let (mut w, templates) = workers(2);
    let mut per_client: HashMap<u32, HashSet<u16>> = HashMap::new();
    for k in 0..5u16 {
        for c in 0..200u32 {
            let client = ip("10.3.0.0") + c;
            let sport = 20_000 + k;
            let wk = usize::from((c + u32::from(k)) % 2 == 1);
            let slot = send(&s, &mut w[wk], client, sport, SYN, 1 + u32::from(k)).unwrap();
            assert_eq!(send(&s, &mut w[wk], client, sport, ACK, 1 + u32::from(k)), Some(slot));
            per_client.entry(client).or_default().insert(slot);
        }
    }
    assert!(per_client.values().all(|s| s.len() == 1), "a client on two servers");
    let mut per_server = [0; 3];
    for s in per_client.values() {
        per_server[usize::from(*s.iter().next().unwrap())] += 1;
    }
    eprintln!("200 clients x 5 connections on 2 workers: clients per server {per_server:?}");
    assert!(per_server.iter().all(|&n| (60..=74).contains(&n)), "{per_server:?}");
    assert_eq!(templates.iter_live(10 * T).count(), 200);
    let created: u64 = w.iter().map(|l| l.persist.created).sum();
    assert_eq!(created, 200, "a template per client, written once");
}

/// `-M 255.255.255.0`: every client of one /24 shares a server.
#[test]
fn the_netmask_groups_clients() {
    let s = snap(&[1, 1], &[], &[], 300, 0xffff_ff00);
    let (mut w, _) = workers(1);
    for net in 0..20u32 {
        let base = ip("10.4.0.0") + (net << 8);
        let first = send(&s, &mut w[0], base + 1, 1000, SYN, 1).unwrap();
        for host in 2..10 {
            assert_eq!(send(&s, &mut w[0], base + host, 1000, SYN, 1), Some(first));
        }
    }
}

/// The template outlives the client's last connection by the timeout, then a new
/// connection is scheduled afresh; a connection that lives longer than the timeout keeps
/// the template alive (the sweep's `keep_template`, run here every 10 s).
#[test]
fn a_client_keeps_its_server_while_connected_and_timeout_after() {
    let s = snap(&[1, 1], &[], &[], 30, u32::MAX);
    let (mut w, templates) = workers(1);
    let client = ip("10.5.0.1");
    let sweep = |l: &mut LocalState, t: u32| {
        let cap = l.flows.capacity();
        let tp = templates.clone();
        l.flows.sweep_visit(t * T, cap, |e| keep_template(&s, &tp, e, t * T));
    };
    let a = send(&s, &mut w[0], client, 1000, SYN, 1).unwrap();
    send(&s, &mut w[0], client, 1000, ACK, 1);
    // The connection lives for 10 minutes (a segment every 100 s).
    for t in (10..=600).step_by(10) {
        if t % 100 == 0 {
            assert_eq!(send(&s, &mut w[0], client, 1000, ACK, t), Some(a));
        }
        sweep(&mut w[0], t);
    }
    assert_eq!(send(&s, &mut w[0], client, 2000, SYN, 600), Some(a), "kept while connected");
    // Both end at 600 s (RST: CLOSE, 10 s); the sweep last sees them at 600 s.
    send(&s, &mut w[0], client, 2000, ACK, 600);
    send(&s, &mut w[0], client, 1000, RST, 600);
    send(&s, &mut w[0], client, 2000, RST, 600);
    sweep(&mut w[0], 600);
    for t in [610, 620] {
        sweep(&mut w[0], t);
    }
    assert!(templates.iter_live(625 * T).count() == 1, "within the timeout");
    assert_eq!(templates.iter_live(630 * T).count(), 0, "gone after the timeout");
    // A new connection now is scheduled afresh (rr: the other server is next).
    assert_eq!(send(&s, &mut w[0], client, 4000, SYN, 631), Some(1 - a));
}

/// A drained (weight 0) or down server keeps its persistent clients until their
/// templates expire (IPVS, expire_quiescent_template = 0); a removed one does not.
#[test]
fn drained_and_down_servers_keep_persistent_clients_removed_ones_do_not() {
    let (mut w, _) = workers(1);
    let s0 = snap(&[1, 1], &[], &[], 300, u32::MAX);
    let (c0, c1) = (ip("10.6.0.1"), ip("10.6.0.2"));
    let a = send(&s0, &mut w[0], c0, 1000, SYN, 1).unwrap();
    let b = send(&s0, &mut w[0], c1, 1000, SYN, 1).unwrap();
    assert_ne!(a, b);
    let mut wt = [1, 1];
    wt[usize::from(a)] = 0;
    let drained = snap(&wt, &[], &[], 300, u32::MAX);
    assert_eq!(send(&drained, &mut w[0], c0, 1001, SYN, 2), Some(a), "drained: kept");
    assert_eq!(send(&drained, &mut w[0], ip("10.6.0.9"), 1, SYN, 2), Some(b), "no new client");
    let down = snap(&[1, 1], &[usize::from(a)], &[], 300, u32::MAX);
    assert_eq!(send(&down, &mut w[0], c0, 1002, SYN, 3), Some(a), "down: kept");
    let removed = snap(&[1, 1], &[], &[usize::from(a)], 300, u32::MAX);
    assert_eq!(send(&removed, &mut w[0], c0, 1003, SYN, 4), Some(b), "removed: rescheduled");
    // ... and the new template holds.
    assert_eq!(send(&s0, &mut w[0], c0, 1004, SYN, 5), Some(b));
    assert_eq!(send(&s0, &mut w[0], c1, 1004, SYN, 5), Some(b));
}

/// The real binary on two workers: 200 clients × 5 connections, alternate connections
/// on alternate RX queues: every frame of a client goes to one server; `-ln` says
/// `persistent 300 mask 255.255.255.255`-style as ipvsadm does, `-lnc` lists one NONE
/// template per client, `-S --format ipvsadm` has `-p`/`-M`.
#[test]
fn persistence_on_two_workers_through_the_binary() {
    let (dir, prefix) = scratch("persist2");
    let (clients, conns) = (200u32, 5u16);
    let mut inputs = [Vec::new(), Vec::new()];
    for k in 0..conns {
        for c in 0..clients {
            let f = Flow {
                dst_mac: PCAP_MAC,
                src_mac: Mac([2, 9, 9, 9, 9, 9]),
                saddr: ip("10.7.0.0") + (c / 100) * 256 * 4 + c % 100,
                daddr: ip("192.168.1.200"),
                sport: 30_000 + k,
                dport: 443,
            };
            let q = usize::from((c + u32::from(k)) % 2 == 1);
            inputs[q].push(frames::tcp(&f, SYN, 0, 60));
            inputs[q].push(frames::tcp(&f, ACK, 0, 60));
        }
    }
    let cfg = write(
        &dir,
        "c.toml",
        r#"[dataplane]
ip = "192.168.1.121"
flow_capacity = 4096
garp_repeat = 0
[[service]]
vip = "192.168.1.200"
port = 443
scheduler = "rr"
persistence = 300
  [[service.backend]]
  ip = "192.168.1.118"
  mac = "00:0c:29:00:00:0a"
  [[service.backend]]
  ip = "192.168.1.119"
  mac = "00:0c:29:00:00:0b"
"#,
    );
    let (eal, outs) = two_worker_pcap(&dir, &prefix, [&inputs[0], &inputs[1]]);
    let sock = dir.join("ctl.sock");
    let mut d = spawn(&eal, &app(&cfg, &["--control", &sock.display().to_string()]));
    d.wait_rx(inputs.iter().map(|i| i.len() as u64).sum(), Duration::from_secs(60));

    let ln = adm_ok(&sock, &["-ln"]);
    assert!(ln.contains("\nTCP  192.168.1.200:443 rr persistent 300\n"), "{ln}");
    let lnc = adm_ok(&sock, &["-lnc"]);
    let none: Vec<&str> = lnc.lines().filter(|l| l.contains(" NONE ")).collect();
    assert_eq!(none.len(), clients as usize, "one template per client:\n{lnc}");
    // Created with 300 s to live, and kept at 300 s by the sweep while the connections
    // (ESTABLISHED, 900 s) live.
    assert!(
        none.iter().all(|l| l.starts_with("TCP 05:0") || l.starts_with("TCP 04:")),
        "expire within 300 s: {}",
        none[0]
    );
    assert!(none[0].contains(":0 ") && none[0].contains("192.168.1.200:443"), "{}", none[0]);
    // -E with a netmask, as ipvsadm; -S prints it back.
    adm_ok(
        &sock,
        &["-E", "-t", "192.168.1.200:443", "-s", "rr", "-p", "600", "-M", "255.255.255.0"],
    );
    let ln = adm_ok(&sock, &["-ln"]);
    assert!(ln.contains("\nTCP  192.168.1.200:443 rr persistent 600 mask 255.255.255.0\n"), "{ln}");
    let rules = adm_ok(&sock, &["-S", "--format", "ipvsadm"]);
    assert!(
        rules.starts_with("-A -t 192.168.1.200:443 -s rr -p 600 -M 255.255.255.0\n"),
        "{rules}"
    );
    let (code, _, err) = adm(&sock, &["-E", "-t", "192.168.1.200:443", "-M", "255.255.255.0"]);
    assert_eq!((code, err.contains("-M (persistence netmask) needs -p")), (1, true), "{err}");
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(c["templates_created"], u64::from(clients), "{c:?}");

    let mut per_client: HashMap<[u8; 4], HashSet<[u8; 6]>> = HashMap::new();
    for out in &outs {
        for f in pcap::read(out).unwrap().iter().filter(|f| !is_garp(f)) {
            let src: [u8; 4] = f[26..30].try_into().unwrap();
            per_client.entry(src).or_default().insert(f[0..6].try_into().unwrap());
        }
    }
    assert_eq!(per_client.len(), clients as usize);
    assert!(per_client.values().all(|m| m.len() == 1), "a client reached two servers");
    let servers: HashSet<[u8; 6]> = per_client.values().flatten().copied().collect();
    assert_eq!(servers.len(), 2, "both servers took clients");
    let _ = std::fs::remove_dir_all(dir);
}
