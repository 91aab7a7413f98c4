//! IPv4 fragments (shallow virtual reassembly): later fragments follow their first
//! fragment's server, in order and out of order; held fragments time out; a fragment
//! flood is bounded and counted and does not stop whole datagrams. The pure pipeline,
//! then the real binary on net_pcap.
mod common;
use common::*;
use drlb::lb::frag::{HOLD_SLOTS, HOLD_TICKS};
use drlb::lb::snapshot::{BackendSpec, Policy, ServiceSpec};
use drlb::lb::{process, DropReason, LocalState, Proto, SchedKind, Snapshot, Timeouts, Verdict};
use drlb::testing::frames::{self, ip, Flow};
use drlb::testing::pcap;
use drlb::wire::tcp::flags::*;
use drlb::wire::Mac;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const PMAC: Mac = PCAP_MAC;

fn snap(removed: &[u16]) -> Snapshot {
    let svc = |port, proto| ServiceSpec {
        vip: ip("192.168.1.200"),
        port,
        proto,
        policy: Policy::new(SchedKind::Rr),
        backends: [(0u16, MAC_A), (1, MAC_B)]
            .iter()
            .filter(|b| !removed.contains(&b.0))
            .map(|&(i, mac)| BackendSpec {
                slot: i + if proto == Proto::Udp { 2 } else { 0 },
                incarnation: 1,
                ip: ip("192.168.1.118") + u32::from(i),
                port,
                weight: 1,
                mac: Some(mac),
                down: false,
            })
            .collect(),
        ..ServiceSpec::default()
    };
    let specs = [svc(53, Proto::Udp), svc(80, Proto::Tcp)];
    Snapshot::build(1, PMAC, ip("192.168.1.121"), Timeouts::default(), &specs).unwrap()
}

fn flow(client: u32, sport: u16, dport: u16) -> Flow {
    Flow {
        dst_mac: PMAC,
        src_mac: CLIENT,
        saddr: ip("10.8.0.0") + client,
        daddr: ip("192.168.1.200"),
        sport,
        dport,
    }
}

/// A UDP datagram of `len` bytes of payload in fragments of 512 bytes.
fn datagram(client: u32, id: u16, len: usize) -> Vec<Vec<u8>> {
    let whole = frames::udp(&flow(client, 5000, 53), len, 0);
    frames::fragments(&whole, id, 512)
}

fn mac_of(slot: u16) -> Mac {
    if slot.is_multiple_of(2) {
        MAC_A
    } else {
        MAC_B
    }
}

/// Forwarded: only the MACs changed, to the slot's server.
fn forwarded(before: &[u8], after: &[u8], slot: u16) {
    assert_eq!(&after[..6], &mac_of(slot).0);
    assert_eq!(&after[6..12], &PMAC.0);
    assert_eq!(&after[12..], &before[12..], "DR changes only the MACs");
}

#[test]
fn later_fragments_follow_the_first_in_order() {
    let s = snap(&[]);
    let mut l = LocalState::new(1024, 0);
    let mut later = 0;
    for (i, (client, len)) in [(1, 3000), (2, 1400), (3, 600)].into_iter().enumerate() {
        let frags = datagram(client, 100 + i as u16, len);
        assert!(frags.len() >= 2);
        later += frags.len() as u64 - 1;
        let mut server = None;
        for f in &frags {
            let mut out = f.clone();
            match process(&mut out, &s, &mut l, 1) {
                Verdict::Forward { slot, .. } => {
                    assert_eq!(*server.get_or_insert(slot), slot, "one server per datagram");
                    forwarded(f, &out, slot);
                }
                v => panic!("{v:?}"),
            }
        }
    }
    assert_eq!(l.frags.stats.first, 3);
    assert_eq!(l.frags.stats.followed, later);
}

#[test]
fn fragments_before_the_first_are_held_and_released_to_its_server() {
    let s = snap(&[]);
    let mut l = LocalState::new(1024, 0);
    let frags = datagram(7, 9, 2000); // 4 fragments
    assert_eq!(frags.len(), 4);
    // Last, then the two middle ones, then the first.
    for f in [&frags[3], &frags[1], &frags[2]] {
        let mut out = f.clone();
        assert_eq!(process(&mut out, &s, &mut l, 1), Verdict::FragmentHeld);
        assert_eq!(&out, f, "a held frame is not touched (it is copied)");
    }
    assert_eq!(l.frags.held(), 3);
    let mut out = frags[0].clone();
    let Verdict::Forward { slot, .. } = process(&mut out, &s, &mut l, 1) else { panic!() };
    forwarded(&frags[0], &out, slot);
    let mut released = Vec::new();
    l.frags.take_ready(|f| {
        released.push(f.to_vec());
        true
    });
    assert_eq!(released.len(), 3);
    for (r, f) in released.iter().zip([&frags[3], &frags[1], &frags[2]]) {
        forwarded(f, r, slot); // in arrival order, whole
    }
    assert_eq!(l.frags.held(), 0);
    // A later fragment now goes straight through.
    let mut again = frags[2].clone();
    assert_eq!(process(&mut again, &s, &mut l, 2), Verdict::Forward { slot, new_flow: false });
}

#[test]
fn a_held_fragment_whose_first_never_comes_times_out() {
    let s = snap(&[]);
    let mut l = LocalState::new(1024, 0);
    let frags = datagram(8, 10, 1200);
    assert_eq!(process(&mut frags[1].clone(), &s, &mut l, 5), Verdict::FragmentHeld);
    assert_eq!(l.frags.expire(5 + HOLD_TICKS - 1), 0);
    assert_eq!(l.frags.expire(5 + HOLD_TICKS), 1);
    // The first fragment coming later is forwarded; nothing is released.
    assert!(matches!(process(&mut frags[0].clone(), &s, &mut l, 9), Verdict::Forward { .. }));
    assert!(!l.frags.has_ready());
    // A jumbo fragment over the MTU is dropped before anything else (oversize); with a
    // jumbo MTU the hold area, sized by it, takes it; one sized for less does not.
    let jumbo = frames::fragments(&frames::udp(&flow(9, 5000, 53), 8000, 0), 13, 4000);
    assert_eq!(process(&mut jumbo[1].clone(), &s, &mut l, 9), Verdict::Drop(DropReason::Oversize));
    let mut s9 = snap(&[]);
    s9.mtu = 9000;
    assert_eq!(
        process(&mut jumbo[1].clone(), &s9, &mut l, 9),
        Verdict::Drop(DropReason::FragmentTooBig)
    );
    l.frags = drlb::lb::frag::Frags::for_mtu(9000);
    assert_eq!(process(&mut jumbo[1].clone(), &s9, &mut l, 9), Verdict::FragmentHeld);
}

#[test]
fn tcp_fragments_other_vips_and_removed_servers() {
    let s = snap(&[]);
    let mut l = LocalState::new(1024, 0);
    // A fragmented TCP segment (a client that sends one) follows its first fragment.
    let seg = frames::tcp(&flow(1, 4000, 80), SYN, 1200, 0);
    let frags = frames::fragments(&seg, 77, 400);
    let v: Vec<Verdict> = frags.iter().map(|f| process(&mut f.clone(), &s, &mut l, 1)).collect();
    let Verdict::Forward { slot, new_flow: true } = v[0] else { panic!("{v:?}") };
    assert!(v[1..].iter().all(|x| *x == Verdict::Forward { slot, new_flow: false }), "{v:?}");
    // Not a VIP: no service, not held.
    let mut other = datagram(2, 11, 1200)[1].clone();
    other[30..34].copy_from_slice(&ip("192.168.1.201").to_be_bytes());
    let other = fix_ip_csum(other);
    assert_eq!(process(&mut other.clone(), &s, &mut l, 1), Verdict::Drop(DropReason::NoService));
    // The first fragment's server removed before the rest came.
    let d = datagram(3, 12, 1200);
    let Verdict::Forward { slot, .. } = process(&mut d[0].clone(), &s, &mut l, 1) else { panic!() };
    let s2 = snap(&[slot - 2]);
    assert_eq!(
        process(&mut d[1].clone(), &s2, &mut l, 1),
        Verdict::Drop(DropReason::BackendRemoved)
    );
}

/// A flood of fragments whose first fragment never comes (random ids and sources), with
/// 1,000 whole datagrams in order in the middle of it: memory stays bounded (the hold
/// area, the datagram table), every flood fragment is counted as held-then-timed-out or
/// dropped, and every whole datagram reaches one server in full.
#[test]
fn a_fragment_flood_is_bounded_counted_and_lets_whole_datagrams_through() {
    let s = snap(&[]);
    let mut l = LocalState::new(1 << 14, 0);
    let mut rng = drlb::testing::Rng(0x1234_5678_9abc_def1);
    let mut next = || rng.next_u64();
    let junk = datagram(0, 0, 1200)[1].clone();
    let (mut held, mut full, mut whole) = (0u64, 0u64, 0);
    let mut timed_out = 0;
    for t in 0..1000u32 {
        let now = t / 10; // ten datagrams and 1,000 flood fragments per tick
        for _ in 0..100 {
            let mut f = junk.clone();
            let r = next();
            f[18..20].copy_from_slice(&(r as u16).to_be_bytes()); // IP id
            f[26..30].copy_from_slice(&((r >> 16) as u32).to_be_bytes()); // source
            match process(&mut fix_ip_csum(f), &s, &mut l, now) {
                Verdict::FragmentHeld => held += 1,
                Verdict::Drop(DropReason::FragmentHoldFull) => full += 1,
                v => panic!("flood fragment: {v:?}"),
            }
        }
        timed_out += l.frags.expire(now);
        assert!(l.frags.held() <= HOLD_SLOTS);
        let frags = datagram(1000 + t, t as u16, 1400);
        let slots: HashSet<u16> = frags
            .iter()
            .map(|f| match process(&mut f.clone(), &s, &mut l, now) {
                Verdict::Forward { slot, .. } => slot,
                v => panic!("datagram {t}: {v:?}"),
            })
            .collect();
        assert_eq!(slots.len(), 1);
        whole += 1;
    }
    timed_out += l.frags.expire(u32::MAX);
    eprintln!(
        "fragment flood: 100,000 fragments without a first: {held} held then timed out ({timed_out}), {full} dropped (hold area full); {whole} whole datagrams through; {} datagram entries evicted",
        l.frags.stats.evicted
    );
    assert_eq!(held + full, 100_000);
    assert_eq!(timed_out, held, "every held flood fragment timed out");
    assert_eq!(l.frags.stats.released, 0);
    assert_eq!(whole, 1000);
}

/// Recomputes the IPv4 header checksum of an untagged frame.
fn fix_ip_csum(mut f: Vec<u8>) -> Vec<u8> {
    f[24..26].copy_from_slice(&[0, 0]);
    let c = drlb::wire::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// Through the binary: 200 UDP datagrams of 3 KB (6 fragments each) from 200 clients,
/// half in order and half out of order (the first fragment last), and a fragmented TCP
/// segment: every datagram's fragments reach one server, all of them, unchanged but
/// for the MACs; the counters say so.
#[test]
fn fragmented_datagrams_through_the_binary_in_and_out_of_order() {
    let (dir, prefix) = scratch("frags");
    let mut input = Vec::new();
    let mut want: HashMap<Vec<u8>, usize> = HashMap::new();
    for c in 0..200u32 {
        let mut frags = datagram(c, c as u16, 3000);
        if c % 2 == 1 {
            frags.rotate_left(1); // the first fragment comes last
        }
        for f in &frags {
            *want.entry(f[12..].to_vec()).or_default() += 1;
        }
        input.extend(frags);
    }
    let seg = frames::tcp(&flow(999, 4000, 80), SYN, 1200, 0);
    let tcp = frames::fragments(&seg, 4242, 400);
    input.extend(tcp.iter().cloned());
    for f in &tcp {
        *want.entry(f[12..].to_vec()).or_default() += 1;
    }
    let inp = dir.join("in.pcap");
    let outp = dir.join("out.pcap");
    pcap::write(&inp, &input).unwrap();
    let cfg = write(
        &dir,
        "c.toml",
        r#"[dataplane]
ip = "192.168.1.121"
flow_capacity = 4096
garp_repeat = 0

[[service]]
vip = "192.168.1.200"
port = 53
protocol = "udp"
scheduler = "rr"
  [[service.backend]]
  ip = "192.168.1.118"
  mac = "00:0c:29:00:00:0a"
  [[service.backend]]
  ip = "192.168.1.119"
  mac = "00:0c:29:00:00:0b"

[[service]]
vip = "192.168.1.200"
port = 80
  [[service.backend]]
  ip = "192.168.1.118"
  mac = "00:0c:29:00:00:0a"
"#,
    );
    let eal = eal_args(&prefix, &pcap_rx_tx(&inp, &outp));
    let mut d = spawn(&eal, &app(&cfg, &[]));
    d.wait_rx(input.len() as u64, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    let (code, c, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    let out: Vec<Vec<u8>> =
        pcap::read(&outp).unwrap().into_iter().filter(|f| !is_garp(f)).collect();
    assert_eq!(out.len(), input.len(), "every fragment out: {c:?}");
    // Per datagram (source address + IP id): one server; every fragment unchanged.
    let mut per_datagram: HashMap<[u8; 6], HashSet<[u8; 6]>> = HashMap::new();
    for f in &out {
        let n = want.get_mut(&f[12..]).expect("an output frame that was not sent");
        assert!(*n > 0, "a frame out twice");
        *n -= 1;
        let key: [u8; 6] = [f[26], f[27], f[28], f[29], f[18], f[19]];
        per_datagram.entry(key).or_default().insert(f[..6].try_into().unwrap());
    }
    assert_eq!(per_datagram.len(), 201);
    assert!(per_datagram.values().all(|m| m.len() == 1), "a datagram split over servers");
    assert_eq!(c["fragments_first"], 201, "{c:?}");
    assert_eq!(c["fragments_held"], 100 * 5, "{c:?}");
    assert_eq!(c["fragments_released"], 100 * 5, "{c:?}");
    assert_eq!(c["fragments_followed"], 100 * 5 + tcp.len() as u64 - 1, "{c:?}");
    assert_eq!(c["mbufs_in_use"], 0, "no mbuf leaked");
    let _ = std::fs::remove_dir_all(dir);
}
