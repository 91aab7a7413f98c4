//! SYN flood against a full flow table, through the pure pipeline, in each
//! `syn_flood` mode: established flows keep their backend, the table does not grow.
//! - `stateless` (default): no SYN evicts anything; SYNs whose groups are full are
//!   forwarded by hash and counted; a real handshake in the middle of the flood still
//!   completes on one backend and is stored by its ACK.
//! - `evict`: the flood evicts (counted), half-open entries first.
//! - `drop`: no established flow is lost at all; refused SYNs count as `flow_table_full`.
mod common;
use drlb::lb::snapshot::{BackendSpec, Policy, ServiceSpec};
use drlb::lb::{
    process, DropReason, LocalState, OnGone, Proto, SchedKind, Snapshot, SynFlood, Timeouts,
    Verdict,
};
use drlb::testing::frames::{self, ip, Flow};
use drlb::testing::Rng;
use drlb::wire::tcp::flags::*;
use drlb::wire::Mac;

const PORT: Mac = Mac([2, 0, 0, 0, 0, 1]);
const CAP: usize = 16384;

fn snap(mode: SynFlood) -> Snapshot {
    snap_weighted(mode, [1, 1, 1, 1])
}

fn snap_weighted(mode: SynFlood, weights: [u32; 4]) -> Snapshot {
    snap_with(mode, weights, Policy::new(SchedKind::Wrr))
}

fn snap_with(mode: SynFlood, weights: [u32; 4], policy: Policy) -> Snapshot {
    let specs = vec![ServiceSpec {
        vip: ip("192.168.1.200"),
        port: 80,
        proto: Proto::Tcp,
        policy: Policy { on_removed: OnGone::Reschedule, on_down: OnGone::Reschedule, ..policy },
        backends: (0..4u16)
            .map(|slot| BackendSpec {
                slot,
                incarnation: 1,
                ip: ip("192.168.1.100") + u32::from(slot),
                port: 80,
                weight: weights[usize::from(slot)],
                mac: Some(Mac([0, 0x0c, 0x29, 0, 0, slot as u8])),
                down: false,
            })
            .collect(),
        ..ServiceSpec::default()
    }];
    let mut s = Snapshot::build(1, PORT, ip("192.168.1.121"), Timeouts::default(), &specs).unwrap();
    s.syn_flood = mode;
    s
}

fn frame(saddr: u32, sport: u16, fl: u8) -> Vec<u8> {
    frame_to(PORT, saddr, sport, fl)
}

/// A TCP segment from a client to VIP:80, sent to `dst` (the director's port MAC).
fn frame_to(dst: Mac, saddr: u32, sport: u16, fl: u8) -> Vec<u8> {
    let f = Flow {
        dst_mac: dst,
        src_mac: Mac([2, 9, 9, 9, 9, 9]),
        saddr,
        daddr: ip("192.168.1.200"),
        sport,
        dport: 80,
    };
    frames::tcp(&f, fl, 0, 60)
}

struct Outcome {
    kept: usize,
    established: usize,
    evictions: u64,
    evicted_established: u64,
    refused: usize,
    flood_forwarded: usize,
    stateless: u64,
}

/// `established` flows (SYN, then ACK), then 10 x CAP spoofed SYNs interleaved with a
/// packet of each established flow every CAP/8 SYNs (they stay fresh, as live
/// connections do), then one more packet per established flow: same backend?
fn run(mode: SynFlood, established: usize) -> Outcome {
    let s = snap(mode);
    let mut l = LocalState::new(CAP, 0);
    let mut now = 0u32;
    let client = |i: usize| (ip("10.0.0.0") + (i as u32 >> 10), 1024 + (i as u16 & 1023));
    let mut backend = Vec::with_capacity(established);
    for i in 0..established {
        let (a, p) = client(i);
        let v = process(&mut frame(a, p, SYN), &s, &mut l, now);
        let Verdict::Forward { slot, .. } = v else { panic!("{v:?}") };
        backend.push(slot);
        let v = process(&mut frame(a, p, ACK), &s, &mut l, now);
        assert_eq!(v, Verdict::Forward { slot, new_flow: false });
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut refused, mut flood_forwarded) = (0, 0);
    let capacity = l.flows.capacity();
    for n in 0..10 * CAP {
        let r = rng.next_u64();
        let a = 0x6400_0000 | (r as u32 & 0x00ff_ffff); // 100.0.0.0/8, spoofed
        match process(&mut frame(a, (r >> 32) as u16 | 1, SYN), &s, &mut l, now) {
            Verdict::Forward { .. } => flood_forwarded += 1,
            Verdict::Drop(DropReason::FlowTableFull) => refused += 1,
            v => panic!("flood SYN: {v:?}"),
        }
        if n % (CAP / 8) == 0 {
            now += 1; // time passes (ticks), but no entry expires during the flood
            for i in (0..established).step_by(97) {
                let (a, p) = client(i);
                let _ = process(&mut frame(a, p, ACK), &s, &mut l, now);
            }
        }
    }
    assert_eq!(l.flows.capacity(), capacity, "the table never grows");
    let mut kept = 0;
    for (i, &b) in backend.iter().enumerate() {
        let (a, p) = client(i);
        if process(&mut frame(a, p, ACK), &s, &mut l, now)
            == (Verdict::Forward { slot: b, new_flow: false })
        {
            kept += 1;
        }
    }
    Outcome {
        kept,
        established,
        evictions: l.flows.stats.evictions,
        evicted_established: l.flows.stats.evicted_established,
        refused,
        flood_forwarded,
        stateless: l.flood.stateless_syns,
    }
}

#[test]
fn stateless_default_evicts_nothing_and_keeps_every_established_flow() {
    assert_eq!(SynFlood::default(), SynFlood::Stateless);
    for established in [CAP / 4, CAP / 2, CAP * 7 / 8] {
        let o = run(SynFlood::Stateless, established);
        eprintln!(
            "stateless, {established} established: kept {}, evictions {}, stateless SYNs {}",
            o.kept, o.evictions, o.stateless
        );
        assert_eq!(o.kept, o.established, "every established flow kept");
        assert_eq!(o.evictions, 0, "a SYN never evicts in stateless mode");
        assert_eq!(o.refused, 0);
        assert_eq!(o.flood_forwarded, 10 * CAP, "every SYN is still served");
        // The table takes SYNs until their groups are full, then forwards them without
        // state: nearly all of the flood goes statelessly.
        assert!(o.stateless as usize >= 9 * CAP, "stateless SYNs {}", o.stateless);
    }
}

#[test]
fn evict_mode_keeps_established_flows_and_counts_evictions() {
    for fill in [4, 2] {
        // a quarter, then half of the table established
        let o = run(SynFlood::Evict, CAP / fill);
        let share = o.kept as f64 / o.established as f64;
        eprintln!(
            "evict, {} established: kept {:.3} %, evictions {} (established {}), flood SYNs forwarded {}",
            o.established,
            share * 100.0,
            o.evictions,
            o.evicted_established,
            o.flood_forwarded
        );
        assert!(share >= 0.99, "only {:.2} % kept", share * 100.0);
        assert!(o.evictions > 0, "a full table must evict, and count it");
        assert_eq!(o.refused, 0, "evict mode refuses no SYN");
        assert_eq!(o.stateless, 0);
        assert_eq!(o.flood_forwarded, 10 * CAP);
    }
}

#[test]
fn drop_mode_loses_no_established_flow() {
    // 7/8 of the table established: whole groups fill with established flows.
    let o = run(SynFlood::Drop, CAP * 7 / 8);
    eprintln!(
        "drop, {} established: kept {}, evictions {} (established {}), refused {}",
        o.established, o.kept, o.evictions, o.evicted_established, o.refused
    );
    assert_eq!(o.kept, o.established);
    assert_eq!(o.evicted_established, 0);
    assert!(o.evictions > 0);
    assert!(o.refused > 0);
    assert_eq!(o.refused + o.flood_forwarded, 10 * CAP);
    // The same load in evict mode does lose some: the mode is doing the work.
    let o = run(SynFlood::Evict, CAP * 7 / 8);
    eprintln!(
        "evict, {} established: kept {}, evicted established {}",
        o.established, o.kept, o.evicted_established
    );
    assert!(o.evicted_established > 0, "expected losses in evict mode");
}

fn forward_slot(v: Verdict) -> u16 {
    match v {
        Verdict::Forward { slot, .. } => slot,
        v => panic!("not forwarded: {v:?}"),
    }
}

/// A tiny table (two groups: every key sees all 16 entries) filled by a flood.
fn flooded(mode: SynFlood) -> (Snapshot, LocalState, u32) {
    let s = snap(mode);
    let mut l = LocalState::new(16, 0);
    let now = 10;
    for i in 0..64u32 {
        forward_slot(process(&mut frame(0x6400_0000 + i, 4000, SYN), &s, &mut l, now));
    }
    (s, l, now)
}

#[test]
fn handshake_in_a_flood_completes_on_one_backend_and_is_stored_by_its_ack() {
    let (s, mut l, now) = flooded(SynFlood::Stateless);
    assert_eq!(l.flood.stateless_syns, 64 - 16, "16 stored, the rest stateless");
    assert!(l.flood.active(now));
    let c = ip("10.9.0.1");
    // The SYN finds the table full: routed by hash, nothing stored.
    let b = forward_slot(process(&mut frame(c, 5555, SYN), &s, &mut l, now));
    assert_eq!(l.flows.stats.inserts, 16);
    // Its retransmission and its ACK go to the same backend; the ACK stores the flow,
    // displacing a half-open flood entry.
    assert_eq!(forward_slot(process(&mut frame(c, 5555, SYN), &s, &mut l, now)), b);
    let v = process(&mut frame(c, 5555, ACK), &s, &mut l, now);
    assert_eq!(v, Verdict::Forward { slot: b, new_flow: false });
    assert_eq!(l.flood.hashed_segments, 1);
    assert_eq!(l.flows.stats.inserts, 17);
    assert_eq!(l.flows.stats.evictions, 1, "a half-open entry made room");
    // Long after the flood (its pressure and the flood's entries expired), the
    // connection's segments still hit its entry: same backend, not routed by hash.
    let later = now + 50 * 10;
    assert!(!l.flood.active(later + 700));
    for t in [later, later + 10, later + 700] {
        let v = process(&mut frame(c, 5555, ACK | PSH), &s, &mut l, t);
        assert_eq!(v, Verdict::Forward { slot: b, new_flow: false });
    }
    assert_eq!(l.flood.hashed_segments, 1);
}

#[test]
fn segments_without_a_flow_are_routed_only_under_pressure() {
    // No pressure: a stray ACK is dropped as always (IPVS sloppy_tcp=0).
    let s = snap(SynFlood::Stateless);
    let mut l = LocalState::new(CAP, 0);
    let v = process(&mut frame(ip("10.1.1.1"), 1000, ACK), &s, &mut l, 5);
    assert_eq!(v, Verdict::Drop(DropReason::TcpNoFlow));
    // Under pressure: routed by hash; an RST or FIN is forwarded but not stored.
    let (s, mut l, now) = flooded(SynFlood::Stateless);
    let inserts = l.flows.stats.inserts;
    forward_slot(process(&mut frame(ip("10.1.1.2"), 1000, RST), &s, &mut l, now));
    forward_slot(process(&mut frame(ip("10.1.1.3"), 1000, FIN | ACK), &s, &mut l, now));
    assert_eq!(l.flows.stats.inserts, inserts);
    assert_eq!(l.flood.hashed_segments, 2);
    // Pressure ends one SYN_RECV timeout (60 s) after the last full-table SYN.
    let after = now + 60 * 10;
    let v = process(&mut frame(ip("10.1.1.4"), 1000, ACK), &s, &mut l, after);
    assert_eq!(v, Verdict::Drop(DropReason::TcpNoFlow));
    // The other modes never route a segment without a flow.
    for mode in [SynFlood::Evict, SynFlood::Drop] {
        let (s, mut l, now) = flooded(mode);
        let v = process(&mut frame(ip("10.1.1.5"), 1000, ACK), &s, &mut l, now);
        assert_eq!(v, Verdict::Drop(DropReason::TcpNoFlow), "{mode:?}");
    }
}

#[test]
fn stateless_syns_follow_the_weights() {
    let s = snap_weighted(SynFlood::Stateless, [3, 1, 0, 4]);
    let mut l = LocalState::new(16, 0);
    let mut per = [0u32; 4];
    let mut rng = Rng(7);
    let n = 80_000;
    for _ in 0..n {
        let r = rng.next_u64();
        let slot =
            forward_slot(process(&mut frame(r as u32, (r >> 32) as u16 | 1, SYN), &s, &mut l, 1));
        per[usize::from(slot)] += 1;
    }
    assert_eq!(per[2], 0, "weight 0 (draining) gets no new flow");
    for (slot, w) in [(0, 3.0), (1, 1.0), (3, 4.0)] {
        let share = f64::from(per[slot]) / f64::from(n);
        assert!(
            (share - w / 8.0).abs() < 0.01,
            "slot {slot}: {share:.3} of the SYNs for weight {w}/8"
        );
    }
}

/// Under pressure a SYN without room is routed without an entry, but not blindly by
/// hash where the service says otherwise: a persistent client keeps its template's
/// server, and `sh` keeps its bucket's (every SYN of one client, whatever its port).
#[test]
fn stateless_syns_keep_persistence_and_source_hashing() {
    let persistent = Policy { persistence: 300, ..Policy::new(SchedKind::Wrr) };
    for (what, policy) in [("persistence", persistent), ("sh", Policy::new(SchedKind::Sh))] {
        let s = snap_with(SynFlood::Stateless, [1, 1, 1, 1], policy);
        let mut l = LocalState::new(16, 0);
        let c = ip("10.7.0.1");
        let b = forward_slot(process(&mut frame(c, 1000, SYN), &s, &mut l, 10));
        for i in 0..64u32 {
            forward_slot(process(&mut frame(0x6400_0000 + i, 4000, SYN), &s, &mut l, 10));
        }
        let stateless = l.flood.stateless_syns;
        assert!(l.flood.active(10) && stateless > 0, "{what}: under pressure");
        for port in 2000..2040 {
            let v = process(&mut frame(c, port, SYN), &s, &mut l, 10);
            assert_eq!(v, Verdict::Forward { slot: b, new_flow: true }, "{what}: port {port}");
        }
        assert_eq!(l.flood.stateless_syns, stateless + 40, "{what}: all without an entry");
    }
}

/// The flood through the real binary and worker loop on `net_pcap` (rx and tx pcaps):
/// 256 established flows, 10 x capacity spoofed SYNs, 50 real handshakes (SYN, ACK,
/// data) late in the flood; every established and real flow must leave on one backend
/// only, every frame be accounted for, and the counters say which mode did the work.
fn flood_through_binary(mode: &str) -> std::collections::HashMap<String, u64> {
    use common::*;
    use drlb::testing::pcap;
    use drlb::testing::Rng;
    use std::collections::{HashMap, HashSet};
    const PCAP_MAC: Mac = Mac([0x02, 0x70, 0x63, 0x61, 0x70, 0x00]);
    const CAP: u32 = 1024;
    let (dir, prefix) = scratch(&format!("flood-{mode}"));
    let tcp = |saddr: u32, sport: u16, fl: u8| frame_to(PCAP_MAC, saddr, sport, fl);
    let est = |i: u32| (ip("10.0.0.0") + i, 1024 + i as u16);
    let real = |i: u32| (ip("10.50.0.0") + i, 2000 + i as u16);
    let mut input = Vec::new();
    for i in 0..256 {
        let (a, p) = est(i);
        input.push(tcp(a, p, SYN));
        input.push(tcp(a, p, ACK));
    }
    let mut rng = Rng(0x5eed);
    for n in 0..10 * CAP {
        let r = rng.next_u64();
        input.push(tcp(0x6400_0000 | (r as u32 & 0xff_ffff), (r >> 32) as u16 | 1, SYN));
        if n % 64 == 0 {
            let (a, p) = est((n / 64) % 256);
            input.push(tcp(a, p, ACK | PSH));
        }
        if n >= 8 * CAP && n % 40 == 0 && (n - 8 * CAP) / 40 < 50 {
            let (a, p) = real((n - 8 * CAP) / 40);
            input.push(tcp(a, p, SYN));
            input.push(tcp(a, p, ACK));
            input.push(tcp(a, p, ACK | PSH));
        }
    }
    for i in 0..256 {
        let (a, p) = est(i);
        input.push(tcp(a, p, ACK | PSH));
    }
    let inp = dir.join("in.pcap");
    let outp = dir.join("out.pcap");
    pcap::write(&inp, &input).unwrap();
    let cfg = write(
        &dir,
        "c.toml",
        &web(&format!("flow_capacity = {CAP}\nsyn_flood = \"{mode}\"\ngarp_repeat = 0")),
    );
    let eal = eal_args(&prefix, &pcap_rx_tx(&inp, &outp));
    let mut d = spawn(&eal, &["--config".into(), cfg.display().to_string()]);
    let n = input.len() as u64;
    d.wait_rx(n, std::time::Duration::from_secs(60));
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(c["rx"], n);
    assert_eq!(c["forwarded"], n, "every frame forwarded: {c:?}");
    assert_eq!(c["tx"], n);
    assert_eq!(c["mbufs_in_use"], 0);
    // Every SYN is a new connection, whichever loop of the worker forwarded it (under a
    // flood most go by hash inside the fast path's runs, `lb::forward_hits`).
    assert_eq!(c["new_flows"], 256 + 10 * u64::from(CAP) + 50, "{c:?}");
    let out = pcap::read(&outp).unwrap();
    assert_eq!(out.len() as u64, n);
    let mut backends: HashMap<(u32, u16), HashSet<[u8; 6]>> = HashMap::new();
    for f in &out {
        let saddr = u32::from_be_bytes(f[26..30].try_into().unwrap());
        let sport = u16::from_be_bytes([f[34], f[35]]);
        backends.entry((saddr, sport)).or_default().insert(f[..6].try_into().unwrap());
    }
    for (what, ids) in [
        ("established", (0..256).map(est).collect::<Vec<_>>()),
        ("real", (0..50).map(real).collect()),
    ] {
        for id in ids {
            assert_eq!(backends[&id].len(), 1, "{mode}: {what} flow {id:?} on {:?}", backends[&id]);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    c
}

#[test]
fn flood_through_the_binary_stateless_and_evict() {
    let c = flood_through_binary("stateless");
    eprintln!(
        "stateless: syn_stateless {} hashed_segments {} evictions {}",
        c["syn_stateless"], c["hashed_segments"], c["flow_evictions"]
    );
    assert!(c["syn_stateless"] >= 9 * 1024, "{c:?}");
    assert_eq!(
        c["flow_evictions"], 50,
        "only the real handshakes' ACKs displace half-open entries: {c:?}"
    );
    assert_eq!(c["hashed_segments"], 50, "{c:?}");
    let c = flood_through_binary("evict");
    eprintln!("evict: evictions {}", c["flow_evictions"]);
    assert!(c["flow_evictions"] >= 9 * 1024, "{c:?}");
    assert_eq!(c["syn_stateless"] + c["hashed_segments"], 0, "{c:?}");
}
