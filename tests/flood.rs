//! SYN flood against a full flow table, through the pure pipeline: established flows keep
//! their backend, the table does not grow, evictions are counted. With
//! `protect_established`, no established flow is lost at all and the refused SYNs are
//! counted as `flow_table_full`.
mod common;
use common::Rng;
use drlb::lb::snapshot::{BackendSpec, ServiceSpec};
use drlb::lb::{
    process, DropReason, LocalState, OnRemoved, Proto, SchedKind, Snapshot, Timeouts, Verdict,
};
use drlb::wire::builder::{self, ip, Flow};
use drlb::wire::tcp::flags::*;
use drlb::wire::Mac;

const PORT: Mac = Mac([2, 0, 0, 0, 0, 1]);
const CAP: usize = 16384;

fn snap(protect: bool) -> Snapshot {
    let specs = vec![ServiceSpec {
        vip: ip("192.168.1.200"),
        port: 80,
        proto: Proto::Tcp,
        sched: SchedKind::Wrr,
        on_removed: OnRemoved::Reschedule,
        backends: (0..4u16)
            .map(|slot| BackendSpec {
                slot,
                incarnation: 1,
                ip: ip("192.168.1.100") + u32::from(slot),
                port: 80,
                weight: 1,
                mac: Some(Mac([0, 0x0c, 0x29, 0, 0, slot as u8])),
            })
            .collect(),
    }];
    let mut s = Snapshot::build(1, PORT, ip("192.168.1.121"), Timeouts::default(), &specs).unwrap();
    s.protect_established = protect;
    s
}

fn frame(saddr: u32, sport: u16, fl: u8) -> Vec<u8> {
    let f = Flow {
        dst_mac: PORT,
        src_mac: Mac([2, 9, 9, 9, 9, 9]),
        saddr,
        daddr: ip("192.168.1.200"),
        sport,
        dport: 80,
    };
    builder::tcp(&f, fl, 0, 60)
}

struct Outcome {
    kept: usize,
    established: usize,
    evictions: u64,
    evicted_established: u64,
    refused: usize,
    flood_forwarded: usize,
}

/// `established` flows (SYN, then ACK), then 10 x CAP spoofed SYNs interleaved with a
/// packet of each established flow every CAP/8 SYNs (they stay fresh, as live
/// connections do), then one more packet per established flow: same backend?
fn run(protect: bool, established: usize) -> Outcome {
    let s = snap(protect);
    let mut l = LocalState::new(CAP, 0);
    let mut now = 0u32;
    let client = |i: usize| (ip("10.0.0.0") + (i as u32 >> 10), 1024 + (i as u16 & 1023));
    let mut backend = Vec::with_capacity(established);
    for i in 0..established {
        let (a, p) = client(i);
        let v = process(&mut frame(a, p, SYN), &s, &mut l, now);
        let Verdict::Forward { slot, .. } = v else {
            panic!("{v:?}")
        };
        backend.push(slot);
        let v = process(&mut frame(a, p, ACK), &s, &mut l, now);
        assert_eq!(
            v,
            Verdict::Forward {
                slot,
                new_flow: false
            }
        );
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut refused, mut flood_forwarded) = (0, 0);
    let capacity = l.flows.capacity();
    for n in 0..10 * CAP {
        let r = rng.next();
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
            == (Verdict::Forward {
                slot: b,
                new_flow: false,
            })
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
    }
}

#[test]
fn syn_flood_keeps_established_flows_by_default() {
    for fill in [4, 2] {
        // a quarter, then half of the table established
        let o = run(false, CAP / fill);
        let share = o.kept as f64 / o.established as f64;
        eprintln!(
            "default, {} established: kept {:.3} %, evictions {} (established {}), flood SYNs forwarded {}",
            o.established,
            share * 100.0,
            o.evictions,
            o.evicted_established,
            o.flood_forwarded
        );
        assert!(share >= 0.99, "only {:.2} % kept", share * 100.0);
        assert!(o.evictions > 0, "a full table must evict, and count it");
        assert_eq!(
            o.refused, 0,
            "without protect_established no SYN is refused"
        );
        assert_eq!(o.flood_forwarded, 10 * CAP);
    }
}

#[test]
fn protect_established_loses_no_established_flow() {
    // 7/8 of the table established: whole groups fill with established flows.
    let o = run(true, CAP * 7 / 8);
    eprintln!(
        "protect, {} established: kept {}, evictions {} (established {}), refused {}",
        o.established, o.kept, o.evictions, o.evicted_established, o.refused
    );
    assert_eq!(o.kept, o.established);
    assert_eq!(o.evicted_established, 0);
    assert!(o.evictions > 0);
    assert_eq!(o.refused + o.flood_forwarded, 10 * CAP);
    // The same load without protection does lose some: the flag is doing the work.
    let o = run(false, CAP * 7 / 8);
    eprintln!(
        "default, {} established: kept {}, evicted established {}",
        o.established, o.kept, o.evicted_established
    );
    assert!(
        o.evicted_established > 0,
        "expected losses without protection"
    );
}
