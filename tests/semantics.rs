//! Flow semantics across snapshot swaps (the flow step and backend changes),
//! with the pure pipeline: no DPDK.
use drlb::lb::snapshot::{BackendSpec, Policy, ServiceSpec};
use drlb::lb::{
    process, DropReason, LocalState, OnGone, Proto, SchedKind, Snapshot, Timeouts, Verdict,
};
use drlb::testing::frames::{self, ip, Flow};
use drlb::wire::tcp::flags::*;
use drlb::wire::Mac;

const PORT: Mac = Mac([2, 0, 0, 0, 0, 1]);

fn mac(i: u16) -> Mac {
    Mac([0, 0x0c, 0x29, 0, 0, i as u8])
}

/// Backends as (slot, incarnation, weight, mac?).
fn snap(gen: u64, on_removed: OnGone, backends: &[(u16, u16, u32, Option<Mac>)]) -> Snapshot {
    snap_down(gen, on_removed, backends, &[])
}

/// [`snap`] with the backends in slots `down` failing their health check, and
/// `on_backend_down` = `on_removed`.
fn snap_down(
    gen: u64,
    on_removed: OnGone,
    backends: &[(u16, u16, u32, Option<Mac>)],
    down: &[u16],
) -> Snapshot {
    let specs = vec![ServiceSpec {
        vip: ip("192.168.1.200"),
        port: 80,
        proto: Proto::Tcp,
        policy: Policy { on_removed, on_down: on_removed, ..Policy::new(SchedKind::Wrr) },
        backends: backends
            .iter()
            .map(|&(slot, inc, weight, mac)| BackendSpec {
                slot,
                incarnation: inc,
                ip: ip("192.168.1.100") + u32::from(slot),
                port: 80,
                weight,
                mac,
                down: down.contains(&slot),
            })
            .collect(),
        ..ServiceSpec::default()
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
    let s1 = snap(1, OnGone::Reschedule, &[(0, 1, 1, Some(mac(0))), (1, 1, 1, Some(mac(1)))]);
    let mut l = LocalState::new(4096, 0);
    let on: Vec<u16> = (0..20).map(|p| slot_of(send(&s1, &mut l, 1000 + p, SYN, 0))).collect();
    assert_eq!(on.iter().filter(|&&s| s == 1).count(), 10);
    // Drain backend 1.
    let s2 = snap(2, OnGone::Reschedule, &[(0, 1, 1, Some(mac(0))), (1, 1, 0, Some(mac(1)))]);
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

/// A backend removed, or down (its check failed), under each policy: `drop` keeps the
/// flow pinned and drops its packets until the backend is back (and then it resumes on
/// it), `reschedule` moves it to a remaining backend, `expire` removes the entry at its
/// next packet (dropped). A new SYN is a new connection under every policy.
#[test]
fn gone_backend_policies() {
    let both = [(0, 1, 1, Some(mac(0))), (1, 1, 1, Some(mac(1)))];
    let only0 = [(0, 1, 1, Some(mac(0)))];
    for (how, reason) in
        [("removed", DropReason::BackendRemoved), ("down", DropReason::BackendDown)]
    {
        for policy in [OnGone::Drop, OnGone::Reschedule, OnGone::Expire] {
            let what = format!("{how}, {policy:?}");
            let s1 = snap(1, policy, &both);
            let mut l = LocalState::new(4096, 0);
            let (a, b) =
                (slot_of(send(&s1, &mut l, 1, SYN, 0)), slot_of(send(&s1, &mut l, 2, SYN, 0)));
            assert_eq!((a, b), (0, 1), "{what}");
            let s2 = match how {
                "removed" => snap(2, policy, &only0),
                _ => snap_down(2, policy, &both, &[1]),
            };
            assert_eq!(
                slot_of(send(&s2, &mut l, 1, ACK, 1)),
                0,
                "{what}: the other backend keeps its flow"
            );
            let v = send(&s2, &mut l, 2, ACK, 1);
            match policy {
                OnGone::Reschedule => {
                    assert_eq!(v, Verdict::Forward { slot: 0, new_flow: true }, "{what}")
                }
                OnGone::Drop | OnGone::Expire => assert_eq!(v, Verdict::Drop(reason), "{what}"),
            }
            // Back (re-added with its slot and incarnation, or up again).
            let s3 = snap(3, policy, &both);
            let v = send(&s3, &mut l, 2, ACK, 2);
            match policy {
                OnGone::Drop => {
                    assert_eq!(v, Verdict::Forward { slot: 1, new_flow: false }, "{what}: resumes")
                }
                OnGone::Reschedule => assert_eq!(slot_of(v), 0, "{what}: stays where it moved"),
                OnGone::Expire => {
                    assert_eq!(v, Verdict::Drop(DropReason::TcpNoFlow), "{what}: the entry is gone")
                }
            }
            // While gone, a new SYN from that client port is a new connection on the
            // remaining backend, whatever the policy (a rescheduled flow is already there).
            let v = send(&s2, &mut l, 2, SYN, 3);
            assert_eq!(slot_of(v), 0, "{what}");
        }
    }
}

#[test]
fn a_backend_without_a_mac_is_down_for_its_flows() {
    let s1 = snap(1, OnGone::Drop, &[(0, 1, 1, Some(mac(0)))]);
    let mut l = LocalState::new(4096, 0);
    send(&s1, &mut l, 1, SYN, 0);
    let s2 = snap(2, OnGone::Drop, &[(0, 1, 1, None)]);
    assert_eq!(send(&s2, &mut l, 1, ACK, 1), Verdict::Drop(DropReason::BackendDown));
    assert_eq!(
        send(&s2, &mut l, 3, SYN, 1),
        Verdict::Drop(DropReason::NoBackend),
        "not schedulable"
    );
}

#[test]
fn reused_slot_is_not_the_old_backend() {
    let s1 = snap(1, OnGone::Drop, &[(0, 1, 1, Some(mac(0)))]);
    let mut l = LocalState::new(4096, 0);
    assert_eq!(slot_of(send(&s1, &mut l, 1, SYN, 0)), 0);
    // Slot 0 now holds a different backend (incarnation 2).
    let s2 = snap(2, OnGone::Drop, &[(0, 2, 1, Some(mac(7)))]);
    assert_eq!(send(&s2, &mut l, 1, ACK, 1), Verdict::Drop(DropReason::BackendRemoved));
}

#[test]
fn adding_a_backend_takes_new_flows_only() {
    let s1 = snap(1, OnGone::Reschedule, &[(0, 1, 1, Some(mac(0)))]);
    let mut l = LocalState::new(4096, 0);
    for p in 0..10 {
        send(&s1, &mut l, p, SYN, 0);
    }
    let s2 = snap(2, OnGone::Reschedule, &[(0, 1, 1, Some(mac(0))), (1, 1, 1, Some(mac(1)))]);
    for p in 0..10 {
        assert_eq!(slot_of(send(&s2, &mut l, p, ACK, 1)), 0);
    }
    let new: Vec<u16> = (100..110).map(|p| slot_of(send(&s2, &mut l, p, SYN, 1))).collect();
    assert_eq!(new.iter().filter(|&&s| s == 1).count(), 5);
}

#[test]
fn mac_change_applies_to_existing_flows_at_once() {
    let s1 = snap(1, OnGone::Reschedule, &[(0, 1, 1, Some(mac(0)))]);
    let mut l = LocalState::new(4096, 0);
    send(&s1, &mut l, 1, SYN, 0);
    let s2 = snap(2, OnGone::Reschedule, &[(0, 1, 1, Some(mac(42)))]);
    let mut f = pkt(1, ACK);
    assert_eq!(process(&mut f, &s2, &mut l, 1), Verdict::Forward { slot: 0, new_flow: false });
    assert_eq!(&f[..6], &mac(42).0);
}

#[test]
fn syn_on_closing_entry_is_rescheduled_and_expiry_follows_state() {
    let s = snap(1, OnGone::Reschedule, &[(0, 1, 1, Some(mac(0))), (1, 1, 1, Some(mac(1)))]);
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
        policy: Policy {
            on_removed: OnGone::Reschedule,
            on_down: OnGone::Reschedule,
            ..Policy::new(SchedKind::Rr)
        },
        backends: (0..3)
            .map(|i| BackendSpec {
                slot: i,
                incarnation: 1,
                ip: 100 + u32::from(i),
                port: 53,
                weight: 1,
                mac: Some(mac(i)),
                down: false,
            })
            .collect(),
        ..ServiceSpec::default()
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
