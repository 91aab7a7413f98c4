//! IPVS's schedulers (wlc, lc, sed, nq, fo, sh) through the pure pipeline, against
//! models written from ip_vs_wlc.c, ip_vs_lc.c, ip_vs_sed.c, ip_vs_nq.c, ip_vs_fo.c and
//! ip_vs_sh.c: the same decisions on the same sequence of events. And wlc/lc on two
//! workers sharing their connection counts: connections balanced by weight.
use drlb::lb::conns::{ConnCounts, ConnRow};
use drlb::lb::flow::FlowTable;
use drlb::lb::snapshot::{BackendSpec, Policy, ServiceSpec};
use drlb::lb::{process, LocalState, Proto, SchedFlags, SchedKind, Snapshot, Timeouts, Verdict};
use drlb::testing::frames::{self, ip, Flow};
use drlb::testing::Rng;
use drlb::wire::tcp::flags::*;
use drlb::wire::Mac;
use std::collections::HashMap;

const PORT: Mac = Mac([2, 0, 0, 0, 0, 1]);
const TICKS: u32 = 10; // per second

/// One service, backends in slots 0.. (configuration order) with these weights; the
/// ones in `down` fail their check.
fn snap(kind: SchedKind, flags: SchedFlags, weights: &[u32], down: &[usize], gen: u64) -> Snapshot {
    let specs = vec![ServiceSpec {
        vip: ip("192.168.1.200"),
        port: 80,
        proto: Proto::Tcp,
        policy: Policy { sched_flags: flags, ..Policy::new(kind) },
        backends: weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| BackendSpec {
                slot: i as u16,
                incarnation: 1,
                ip: ip("192.168.1.100") + i as u32,
                port: 80,
                weight,
                mac: Some(Mac([0, 0x0c, 0x29, 0, 0, i as u8])),
                down: down.contains(&i),
            })
            .collect(),
        ..ServiceSpec::default()
    }];
    Snapshot::build(gen, PORT, ip("192.168.1.121"), Timeouts::default(), &specs).unwrap()
}

fn segment(saddr: u32, sport: u16, fl: u8) -> Vec<u8> {
    let f = Flow {
        dst_mac: PORT,
        src_mac: Mac([2, 9, 9, 9, 9, 9]),
        saddr,
        daddr: ip("192.168.1.200"),
        sport,
        dport: 80,
    };
    frames::tcp(&f, fl, 0, 60)
}

fn send(
    s: &Snapshot,
    l: &mut LocalState,
    saddr: u32,
    sport: u16,
    fl: u8,
    secs: u32,
) -> Option<u16> {
    match process(&mut segment(saddr, sport, fl), s, l, secs * TICKS) {
        Verdict::Forward { slot, .. } => Some(slot),
        _ => None,
    }
}

// ---- The IPVS model --------------------------------------------------------------

/// An `ip_vs_dest` as the schedulers see it.
#[derive(Clone, Debug)]
struct Dest {
    slot: u16,
    weight: u32,
    /// IP_VS_DEST_F_OVERLOAD or no usable route: drlb's "down" (or MAC unknown).
    overload: bool,
    activeconns: i64,
    inactconns: i64,
}

fn wlc_overhead(d: &Dest) -> i64 {
    (d.activeconns << 8) + d.inactconns
}

/// The schedulers' loops, transcribed from the kernel's C (list order = `dests`).
fn ipvs_schedule(kind: SchedKind, dests: &[Dest]) -> Option<u16> {
    match kind {
        SchedKind::Wlc => {
            // ip_vs_wlc_schedule: the first available with weight > 0, then the rest.
            let first = dests.iter().position(|d| !d.overload && d.weight > 0)?;
            let mut least = &dests[first];
            let mut loh = wlc_overhead(least);
            for d in &dests[first + 1..] {
                if d.overload {
                    continue;
                }
                let doh = wlc_overhead(d);
                if loh * i64::from(d.weight) > doh * i64::from(least.weight) {
                    least = d;
                    loh = doh;
                }
            }
            Some(least.slot)
        }
        SchedKind::Lc => {
            let mut least: Option<(&Dest, i64)> = None;
            for d in dests {
                if d.overload || d.weight == 0 {
                    continue;
                }
                let doh = wlc_overhead(d);
                if least.is_none_or(|(_, loh)| doh < loh) {
                    least = Some((d, doh));
                }
            }
            least.map(|l| l.0.slot)
        }
        SchedKind::Sed => {
            let first = dests.iter().position(|d| !d.overload && d.weight > 0)?;
            let mut least = &dests[first];
            let mut loh = least.activeconns + 1;
            for d in &dests[first + 1..] {
                if d.overload {
                    continue;
                }
                let doh = d.activeconns + 1;
                if loh * i64::from(d.weight) > doh * i64::from(least.weight) {
                    least = d;
                    loh = doh;
                }
            }
            Some(least.slot)
        }
        SchedKind::Nq => {
            let mut least: Option<(&Dest, i64)> = None;
            for d in dests {
                if d.overload || d.weight == 0 {
                    continue;
                }
                let doh = d.activeconns + 1;
                if d.activeconns == 0 {
                    return Some(d.slot); // "return the server directly if it is idle"
                }
                if least
                    .is_none_or(|(l, loh)| loh * i64::from(d.weight) > doh * i64::from(l.weight))
                {
                    least = Some((d, doh));
                }
            }
            least.map(|l| l.0.slot)
        }
        SchedKind::Fo => {
            let mut hweight: Option<&Dest> = None;
            for d in dests {
                if !d.overload && d.weight > 0 && hweight.is_none_or(|h| d.weight > h.weight) {
                    hweight = Some(d);
                }
            }
            hweight.map(|h| h.slot)
        }
        other => panic!("no model for {other:?}"),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    SynRecv,
    Established,
    FinWait,
    Close,
}

struct Conn {
    slot: u16,
    st: St,
    deadline: u32, // seconds
}

/// Runs `steps` random events through drlb and the model; every new connection must get
/// the same server, and the counts must agree after every event.
fn same_decisions_as_ipvs(kind: SchedKind, seed: u64, steps: usize) -> usize {
    let t = Timeouts::default();
    let mut rng = Rng(seed);
    let n = 2 + rng.below(4) as usize;
    let mut weights: Vec<u32> = (0..n).map(|_| 1 + rng.below(4) as u32).collect();
    let mut down: Vec<usize> = Vec::new();
    let mut gen = 1;
    let mut s = snap(kind, SchedFlags::default(), &weights, &down, gen);
    let mut l = LocalState::new(1 << 14, 0);
    // IPVS's list: newest first, so servers added in configuration order are reversed.
    let mut dests: Vec<Dest> = (0..n)
        .rev()
        .map(|i| Dest {
            slot: i as u16,
            weight: weights[i],
            overload: false,
            activeconns: 0,
            inactconns: 0,
        })
        .collect();
    let mut conns: HashMap<u16, Conn> = HashMap::new();
    let (mut now, mut next_port, mut decisions) = (1u32, 1024u16, 0);
    let client = ip("10.1.0.1");
    let dest = |dests: &mut Vec<Dest>, slot: u16| -> usize {
        dests.iter().position(|d| d.slot == slot).unwrap()
    };
    for step in 0..steps {
        let r = rng.below(100);
        if r < 40 {
            // A new connection (SYN).
            let sport = next_port;
            next_port += 1;
            let want = ipvs_schedule(kind, &dests);
            let got = send(&s, &mut l, client, sport, SYN, now);
            assert_eq!(got, want, "{kind:?} seed {seed} step {step}: drlb vs IPVS ({dests:?})");
            decisions += 1;
            if let Some(slot) = got {
                let i = dest(&mut dests, slot);
                dests[i].inactconns += 1; // new connections start inactive
                conns.insert(sport, Conn { slot, st: St::SynRecv, deadline: now + t.syn });
            }
        } else if r < 85 && !conns.is_empty() {
            // A segment of a random live connection: handshake ACK, FIN or RST.
            let ports: Vec<u16> = conns.keys().copied().collect();
            let sport = ports[rng.below(ports.len() as u64) as usize];
            let c = conns.get_mut(&sport).unwrap();
            let (fl, st, timeout) = match (c.st, rng.below(3)) {
                (St::SynRecv, _) => (ACK, St::Established, t.tcp),
                (St::Established, 0) => (RST | ACK, St::Close, t.close),
                (St::Established, _) => (FIN | ACK, St::FinWait, t.tcp_fin),
                _ => continue,
            };
            let i = dest(&mut dests, c.slot);
            if dests[i].overload {
                // Its server is down: dropped (on_backend_down = drop), nothing changes.
                assert_eq!(send(&s, &mut l, client, sport, fl, now), None);
                continue;
            }
            assert_eq!(send(&s, &mut l, client, sport, fl, now), Some(c.slot));
            // ip_vs_tcp's set_tcp_state: into or out of ESTABLISHED moves the count.
            match (c.st == St::Established, st == St::Established) {
                (false, true) => {
                    dests[i].inactconns -= 1;
                    dests[i].activeconns += 1;
                }
                (true, false) => {
                    dests[i].activeconns -= 1;
                    dests[i].inactconns += 1;
                }
                _ => {}
            }
            c.st = st;
            c.deadline = now + timeout;
        } else if r < 93 {
            // Time passes; expired connections go (IPVS's timers; drlb's sweep).
            now += 1 + rng.below(60) as u32;
            let cap = l.flows.capacity();
            l.flows.sweep(now * TICKS, cap);
            conns.retain(|_, c| {
                if c.deadline > now {
                    return true;
                }
                let d = dests.iter_mut().find(|d| d.slot == c.slot).unwrap();
                if c.st == St::Established {
                    d.activeconns -= 1
                } else {
                    d.inactconns -= 1
                }
                false
            });
        } else {
            // A weight changes (0 drains) or a server goes down or comes back.
            let i = rng.below(n as u64) as usize;
            if rng.below(3) == 0 {
                if let Some(p) = down.iter().position(|&d| d == i) {
                    down.remove(p);
                } else {
                    down.push(i);
                }
            } else {
                weights[i] = rng.below(5) as u32;
            }
            gen += 1;
            s = snap(kind, SchedFlags::default(), &weights, &down, gen);
            let j = dest(&mut dests, i as u16);
            dests[j].weight = weights[i];
            dests[j].overload = down.contains(&i);
        }
        for d in &dests {
            let (a, ina) = l.flows.conns().all().get(d.slot, 1);
            assert_eq!(
                (a as i64, ina as i64),
                (d.activeconns, d.inactconns),
                "counts, step {step}"
            );
        }
    }
    decisions
}

#[test]
fn wlc_lc_sed_nq_fo_decide_as_ipvs_does() {
    for kind in [SchedKind::Wlc, SchedKind::Lc, SchedKind::Sed, SchedKind::Nq, SchedKind::Fo] {
        let mut total = 0;
        for seed in 1..=12u64 {
            total +=
                same_decisions_as_ipvs(kind, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, 1500);
        }
        assert!(total > 5000, "{kind:?}: only {total} decisions");
    }
}

#[test]
fn wlc_is_the_default_and_ties_go_to_the_newest_server() {
    assert_eq!(SchedKind::default(), SchedKind::Wlc);
    // Two idle servers of equal weight: IPVS's list is newest first, so the first
    // connection goes to the server added last (B), the second to A, and so on.
    let s = snap(SchedKind::Wlc, SchedFlags::default(), &[1, 1], &[], 1);
    let mut l = LocalState::new(1024, 0);
    let picks: Vec<u16> =
        (0..4).map(|i| send(&s, &mut l, ip("10.1.0.1"), 2000 + i, SYN, 1).unwrap()).collect();
    assert_eq!(picks, vec![1, 0, 1, 0]);
}

// ---- sh ------------------------------------------------------------------------------

/// ip_vs_sh.c: the table (`ip_vs_sh_reassign`) and the lookup with or without fallback.
fn ipvs_sh(dests: &[Dest], addr: u32, port: u16, fallback: bool) -> Option<u16> {
    const BITS: u32 = 8;
    const SIZE: u32 = 1 << BITS;
    let mut buckets = Vec::new();
    let (mut p, mut d_count) = (0usize, 0u32);
    for _ in 0..SIZE {
        buckets.push(p);
        d_count += 1;
        if d_count >= dests[p].weight {
            p = (p + 1) % dests.len();
            d_count = 0;
        }
    }
    let hash_32 = |v: u32| v.wrapping_mul(0x61C8_8647) >> (32 - BITS);
    let hashkey = |offset: u32| (offset + hash_32(u32::from(port).wrapping_add(addr))) & (SIZE - 1);
    let unavailable = |d: &Dest| d.weight == 0 || d.overload;
    let ihash = hashkey(0);
    let dest = &dests[buckets[ihash as usize]];
    if !unavailable(dest) {
        return Some(dest.slot);
    }
    if !fallback {
        return None;
    }
    for offset in 0..SIZE {
        let roffset = (offset + ihash) % SIZE;
        let d = &dests[buckets[hashkey(roffset) as usize]];
        if !unavailable(d) {
            return Some(d.slot);
        }
    }
    None
}

#[test]
fn sh_decides_as_ipvs_does_with_and_without_its_flags() {
    let mut rng = Rng(0x5eed_0f5e_ed00_0001);
    let mut checked = 0;
    for round in 0..60 {
        let n = 1 + rng.below(6) as usize;
        let weights: Vec<u32> = (0..n).map(|_| rng.below(5) as u32).collect();
        let down: Vec<usize> = (0..n).filter(|_| rng.below(4) == 0).collect();
        let flags = SchedFlags { sh_fallback: round % 2 == 0, sh_port: round % 3 == 0 };
        let s = snap(SchedKind::Sh, flags, &weights, &down, 1);
        let dests: Vec<Dest> = (0..n)
            .rev()
            .map(|i| Dest {
                slot: i as u16,
                weight: weights[i],
                overload: down.contains(&i),
                activeconns: 0,
                inactconns: 0,
            })
            .collect();
        // Two workers: each client's server must not depend on the worker.
        let mut w = [LocalState::new(4096, 0), LocalState::new(4096, 1)];
        for c in 0..200u32 {
            let addr = ip("10.0.0.0") + rng.below(1 << 20) as u32;
            let sport = 1024 + rng.below(60000) as u16;
            let port = if flags.sh_port { sport } else { 0 };
            let want = ipvs_sh(&dests, addr, port, flags.sh_fallback);
            let got = send(&s, &mut w[(c % 2) as usize], addr, sport, SYN, 1);
            assert_eq!(got, want, "round {round}: weights {weights:?} down {down:?} {flags:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 12_000);
}

// ---- Two workers ---------------------------------------------------------------------

/// Two workers (two flow tables sharing one set of connection counts, as in drlb) take
/// connections alternately; each connection holds for a random time drawn by its own
/// kind (short and long ones mixed). Returns each server's mean active connections over
/// the run, per unit of weight, relative to the mean over servers.
fn two_worker_balance(kind: SchedKind, weights: &[u32]) -> Vec<f64> {
    let all = ConnCounts::new(2);
    let mut w: Vec<LocalState> = (0..2)
        .map(|i| {
            LocalState::with_table(FlowTable::new(1 << 16).with_conns(ConnRow::new(&all, i)), i)
        })
        .collect();
    let s = snap(kind, SchedFlags::default(), weights, &[], 1);
    let mut rng = Rng(0xfeed_beef_cafe_f00d);
    // (end second, worker, client port) of each open connection.
    let mut open: Vec<(u32, usize, u16)> = Vec::new();
    let mut sum_active = vec![0f64; weights.len()];
    let mut samples = 0;
    let client = ip("10.2.0.1");
    let mut port = 1024u16;
    for now in 1..=4000u32 {
        // 20 new connections a second, half of them on each worker.
        for _ in 0..20 {
            port = port.wrapping_add(1).max(1024);
            let wk = usize::from(port.is_multiple_of(2));
            let slot = send(&s, &mut w[wk], client, port, SYN, now).unwrap();
            assert_eq!(send(&s, &mut w[wk], client, port, ACK, now), Some(slot));
            // Short (1-5 s) and long (30-90 s) connections, one long in five.
            let life = if rng.below(5) == 0 { 30 + rng.below(60) } else { 1 + rng.below(5) };
            open.push((now + life as u32, wk, port));
        }
        open.retain(|&(end, wk, p)| {
            if end > now {
                return true;
            }
            send(&s, &mut w[wk], client, p, RST | ACK, now);
            false
        });
        for wk in w.iter_mut() {
            let cap = wk.flows.capacity();
            wk.flows.sweep(now * TICKS, cap / 64);
        }
        if now > 200 {
            for (i, a) in sum_active.iter_mut().enumerate() {
                *a += all.get(i as u16, 1).0 as f64;
            }
            samples += 1;
        }
    }
    let per_weight: Vec<f64> =
        sum_active.iter().zip(weights).map(|(a, &wt)| a / samples as f64 / f64::from(wt)).collect();
    let mean = per_weight.iter().sum::<f64>() / per_weight.len() as f64;
    per_weight.iter().map(|p| p / mean).collect()
}

/// wlc keeps each server's active connections proportional to its weight across two
/// workers: within 5 % of the mean per unit of weight. (lc ignores weights: equal
/// counts, so a 1:2:3 service is not balanced by weight; shown for contrast.)
#[test]
fn wlc_on_two_workers_balances_connections_by_weight() {
    let weights = [1, 2, 3];
    let wlc = two_worker_balance(SchedKind::Wlc, &weights);
    eprintln!("wlc, weights 1:2:3, active connections per unit of weight / mean: {wlc:.3?}");
    for r in &wlc {
        assert!((r - 1.0).abs() < 0.05, "wlc balance {wlc:?}");
    }
    let lc = two_worker_balance(SchedKind::Lc, &weights);
    eprintln!("lc, weights 1:2:3, active connections per unit of weight / mean: {lc:.3?}");
    assert!(lc[0] > 1.5 && lc[2] < 0.7, "lc does not weigh: {lc:?}");
    let lc_equal = two_worker_balance(SchedKind::Lc, &[1, 1, 1]);
    eprintln!("lc, weights 1:1:1, active connections / mean: {lc_equal:.3?}");
    for r in &lc_equal {
        assert!((r - 1.0).abs() < 0.05, "lc balance {lc_equal:?}");
    }
}

/// wrr weights whose cycle is too long to precompute (20 servers weighted
/// 60000..60019) step through the weights as IPVS does, newest server first: the
/// heaviest first, then each lower weight joins.
#[test]
fn wrr_with_any_weights_steps_as_ipvs_does() {
    let weights: Vec<u32> = (0..20).map(|i| 60_000 + i).collect();
    let s = snap(SchedKind::Wrr, SchedFlags::default(), &weights, &[], 1);
    assert!(s.services[0].stepping.is_some());
    let mut l = LocalState::new(1 << 12, 0);
    // IPVS's order is slot 19 first; at weight 60019 only 19 qualifies, at 60018 19 and
    // 18, and so on (worker 0's cursor starts after position 0: the first pass at
    // 60019 finds nothing more, and 60018 begins).
    let picks: Vec<u16> =
        (0..6).map(|i| send(&s, &mut l, ip("10.1.0.1"), 3000 + i, SYN, 1).unwrap()).collect();
    assert_eq!(picks, vec![19, 18, 19, 18, 17, 19]);
}
