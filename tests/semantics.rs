//! Flow semantics across snapshot swaps (DESIGN.md step 6 and "Backend changes"),
//! with the pure pipeline: no DPDK.
use drlb::lb::snapshot::{BackendSpec, ServiceSpec};
use drlb::lb::{
    process, DropReason, LocalState, OnRemoved, Proto, SchedKind, Snapshot, Timeouts, Verdict,
};
use drlb::testing::frames::{self, ip, Flow};
use drlb::wire::tcp::flags::*;
use drlb::wire::Mac;

const PORT: Mac = Mac([2, 0, 0, 0, 0, 1]);

fn mac(i: u16) -> Mac {
    Mac([0, 0x0c, 0x29, 0, 0, i as u8])
}

/// Backends as (slot, incarnation, weight, mac?).
fn snap(gen: u64, on_removed: OnRemoved, backends: &[(u16, u16, u32, Option<Mac>)]) -> Snapshot {
    let specs = vec![ServiceSpec {
        vip: ip("192.168.1.200"),
        port: 80,
        proto: Proto::Tcp,
        sched: SchedKind::Wrr,
        on_removed,
        backends: backends
            .iter()
            .map(|&(slot, inc, weight, mac)| BackendSpec {
                slot,
                incarnation: inc,
                ip: ip("192.168.1.100") + u32::from(slot),
                port: 80,
                weight,
                mac,
            })
            .collect(),
    }];
    Snapshot::build(gen, PORT, ip("192.168.1.121"), Timeouts::default(), &specs).unwrap()
}

fn pkt(sport: u16, fl: u8) -> Vec<u8> {
    let f = Flow {
        dst_mac: PORT,
        src_mac: Mac([2, 9, 9, 9, 9, 9]),
        saddr: ip("10.1.0.1"),
        daddr: ip("192.168.1.200"),
        sport,
        dport: 80,
    };
    frames::tcp(&f, fl, 0, 60)
}

fn send(s: &Snapshot, l: &mut LocalState, sport: u16, fl: u8, now: u32) -> Verdict {
    let mut f = pkt(sport, fl);
    process(&mut f, s, l, now)
}

fn slot_of(v: Verdict) -> u16 {
    match v {
        Verdict::Forward { slot, .. } => slot,
        other => panic!("expected a forward, got {other:?}"),
    }
}

#[test]
fn drain_keeps_existing_flows_and_takes_no_new_ones() {
    let s1 = snap(1, OnRemoved::Reschedule, &[(0, 1, 1, Some(mac(0))), (1, 1, 1, Some(mac(1)))]);
    let mut l = LocalState::new(4096, 0);
    let on: Vec<u16> = (0..20).map(|p| slot_of(send(&s1, &mut l, 1000 + p, SYN, 0))).collect();
    assert_eq!(on.iter().filter(|&&s| s == 1).count(), 10);
    // Drain backend 1.
    let s2 = snap(2, OnRemoved::Reschedule, &[(0, 1, 1, Some(mac(0))), (1, 1, 0, Some(mac(1)))]);
    for (p, &was) in on.iter().enumerate() {
        assert_eq!(slot_of(send(&s2, &mut l, 1000 + p as u16, ACK, 1)), was, "existing flow moved");
    }
    for p in 0..20 {
        assert_eq!(
            slot_of(send(&s2, &mut l, 2000 + p, SYN, 1)),
            0,
            "new flow on a draining backend"
        );
    }
    // A fresh SYN on a flow of the draining backend is scheduled afresh (conn reuse).
    let p = on.iter().position(|&s| s == 1).unwrap() as u16;
    assert_eq!(slot_of(send(&s2, &mut l, 1000 + p, SYN, 2)), 0);
}

#[test]
fn removed_backend_reschedule_or_drop() {
    let both = [(0, 1, 1, Some(mac(0))), (1, 1, 1, Some(mac(1)))];
    let only0 = [(0, 1, 1, Some(mac(0)))];
    for policy in [OnRemoved::Reschedule, OnRemoved::Drop] {
        let s1 = snap(1, policy, &both);
        let mut l = LocalState::new(4096, 0);
        let a = slot_of(send(&s1, &mut l, 1, SYN, 0));
        let b = slot_of(send(&s1, &mut l, 2, SYN, 0));
        assert_eq!((a, b), (0, 1));
        let s2 = snap(2, policy, &only0);
        assert_eq!(slot_of(send(&s2, &mut l, 1, ACK, 1)), 0, "surviving backend keeps its flow");
        match policy {
            OnRemoved::Reschedule => {
                assert_eq!(
                    send(&s2, &mut l, 2, ACK, 1),
                    Verdict::Forward { slot: 0, new_flow: true }
                )
            }
            OnRemoved::Drop => {
                assert_eq!(send(&s2, &mut l, 2, ACK, 1), Verdict::Drop(DropReason::BackendRemoved));
                // ... but a new SYN from that client port starts afresh.
                assert_eq!(
                    send(&s2, &mut l, 2, SYN, 2),
                    Verdict::Forward { slot: 0, new_flow: true }
                );
            }
        }
    }
}

#[test]
fn reused_slot_is_not_the_old_backend() {
    let s1 = snap(1, OnRemoved::Drop, &[(0, 1, 1, Some(mac(0)))]);
    let mut l = LocalState::new(4096, 0);
    assert_eq!(slot_of(send(&s1, &mut l, 1, SYN, 0)), 0);
    // Slot 0 now holds a different backend (incarnation 2).
    let s2 = snap(2, OnRemoved::Drop, &[(0, 2, 1, Some(mac(7)))]);
    assert_eq!(send(&s2, &mut l, 1, ACK, 1), Verdict::Drop(DropReason::BackendRemoved));
}

#[test]
fn adding_a_backend_takes_new_flows_only() {
    let s1 = snap(1, OnRemoved::Reschedule, &[(0, 1, 1, Some(mac(0)))]);
    let mut l = LocalState::new(4096, 0);
    for p in 0..10 {
        send(&s1, &mut l, p, SYN, 0);
    }
    let s2 = snap(2, OnRemoved::Reschedule, &[(0, 1, 1, Some(mac(0))), (1, 1, 1, Some(mac(1)))]);
    for p in 0..10 {
        assert_eq!(slot_of(send(&s2, &mut l, p, ACK, 1)), 0);
    }
    let new: Vec<u16> = (100..110).map(|p| slot_of(send(&s2, &mut l, p, SYN, 1))).collect();
    assert_eq!(new.iter().filter(|&&s| s == 1).count(), 5);
}

#[test]
fn mac_change_applies_to_existing_flows_at_once() {
    let s1 = snap(1, OnRemoved::Reschedule, &[(0, 1, 1, Some(mac(0)))]);
    let mut l = LocalState::new(4096, 0);
    send(&s1, &mut l, 1, SYN, 0);
    let s2 = snap(2, OnRemoved::Reschedule, &[(0, 1, 1, Some(mac(42)))]);
    let mut f = pkt(1, ACK);
    assert_eq!(process(&mut f, &s2, &mut l, 1), Verdict::Forward { slot: 0, new_flow: false });
    assert_eq!(&f[..6], &mac(42).0);
}

#[test]
fn syn_on_closing_entry_is_rescheduled_and_expiry_follows_state() {
    let s = snap(1, OnRemoved::Reschedule, &[(0, 1, 1, Some(mac(0))), (1, 1, 1, Some(mac(1)))]);
    let mut l = LocalState::new(4096, 0);
    assert_eq!(send(&s, &mut l, 7, SYN, 0), Verdict::Forward { slot: 0, new_flow: true });
    assert_eq!(send(&s, &mut l, 7, ACK, 1), Verdict::Forward { slot: 0, new_flow: false });
    assert_eq!(send(&s, &mut l, 7, FIN | ACK, 2), Verdict::Forward { slot: 0, new_flow: false });
    // Port reuse: a new SYN on the FIN_WAIT entry is a new connection.
    assert_eq!(send(&s, &mut l, 7, SYN, 3), Verdict::Forward { slot: 1, new_flow: true });
    // SYN_RECV expires after 60 s (600 ticks): an ACK after that has no flow.
    assert_eq!(send(&s, &mut l, 7, ACK, 3 + 599), Verdict::Forward { slot: 1, new_flow: false });
    // Now ESTABLISHED: 900 s.
    assert_eq!(send(&s, &mut l, 7, ACK, 602 + 8999), Verdict::Forward { slot: 1, new_flow: false });
    assert_eq!(send(&s, &mut l, 7, ACK, 602 + 8999 + 9000), Verdict::Drop(DropReason::TcpNoFlow));
}

#[test]
fn udp_flows_stick_for_the_udp_timeout() {
    let specs = vec![ServiceSpec {
        vip: ip("192.168.1.200"),
        port: 53,
        proto: Proto::Udp,
        sched: SchedKind::Rr,
        on_removed: OnRemoved::Reschedule,
        backends: (0..3)
            .map(|i| BackendSpec {
                slot: i,
                incarnation: 1,
                ip: 100 + u32::from(i),
                port: 53,
                weight: 1,
                mac: Some(mac(i)),
            })
            .collect(),
    }];
    let s = Snapshot::build(1, PORT, 0, Timeouts::default(), &specs).unwrap();
    let mut l = LocalState::new(4096, 0);
    let f = Flow {
        dst_mac: PORT,
        src_mac: Mac([2, 9, 9, 9, 9, 9]),
        saddr: 1,
        daddr: ip("192.168.1.200"),
        sport: 5000,
        dport: 53,
    };
    let first = slot_of(process(&mut frames::udp(&f, 10, 60), &s, &mut l, 0));
    for t in [1, 100, 2999] {
        assert_eq!(slot_of(process(&mut frames::udp(&f, 10, 60), &s, &mut l, t)), first);
    }
}
