//! Schedulers. wrr and rr are precomputed as sequences so that a pick on the hot path
//! is one load; the others follow IPVS's `ip_vs_*.c`, rule for rule.
//!
//! **IPVS's order.** IPVS keeps a service's real servers newest first (`list_add` at the
//! head in `__ip_vs_update_dest`), and its scanning schedulers break ties by that order.
//! drlb keeps backends in configuration order (`-a` appends), so the scanning schedulers
//! below walk it backwards: the same servers in the same order as IPVS after the same
//! `ipvsadm -a` commands, and the same decisions.
//!
//! **wrr** — each backend *i* with weight *wᵢ* gets exactly *wᵢ/g* picks in every cycle
//! of *Σw/g* picks (*g* = gcd of the weights), spread evenly rather than in runs. The
//! cycle is the Sainte-Laguë (Webster) ordering: backend *i*'s *k*-th pick sits at
//! position (2k+1)/(2wᵢ) of the cycle; all picks are sorted by that position, ties by
//! backend order. It is the same sequence nginx's "smooth weighted round-robin" yields
//! (3:2:1 -> A B A C B A), computed once per change instead of per pick, and it keeps
//! IPVS's wrr properties (exact proportions, interleaving) without its runs at the
//! start of a cycle (IPVS's gcd stepping gives A A B A B C).
//!
//! **rr** — each backend with weight > 0 once per cycle, in order: weights other than 0
//! are ignored, weight 0 drains (IPVS rr skips `IP_VS_DEST_F_OVERLOAD` and weight 0).
//!
//! **wlc** (ip_vs_wlc.c) — weighted least-connection: the server with the least
//! overhead/weight, where the overhead is `activeconns * 256 + inactconns` ("the overhead
//! of processing active connections is 256 times higher than that of inactive ones").
//! Compared by cross-multiplication, no division: *d* replaces the least so far *l*
//! when `overhead(l) * weight(d) > overhead(d) * weight(l)`; ties keep the first.
//!
//! **lc** (ip_vs_lc.c) — least-connection: the least `activeconns * 256 + inactconns`,
//! weights ignored but for 0 (skipped); ties keep the first.
//!
//! **sed** (ip_vs_sed.c) — shortest expected delay: overhead `activeconns + 1` (the delay
//! the new connection would see), compared against weights as wlc does.
//!
//! **nq** (ip_vs_nq.c) — never queue: the first server with no active connection if there
//! is one, else as sed.
//!
//! **fo** (ip_vs_fo.c) — weighted failover: every new connection to the available server
//! with the highest weight (the first of equals). The sequence is that one server.
//!
//! **sh** (ip_vs_sh.c) — source hashing: a table of 256 buckets; the servers take
//! *weight* consecutive buckets each (at least one), in IPVS's order, round and round
//! until the table is full; a client's bucket is `hash_32(port + address, 8)` of its
//! source address (and source port with `sh-port`). An unavailable server's clients are
//! dropped, or with `sh-fallback` go to the next available server found by walking the
//! table from that bucket as IPVS does. Weight 0 and down servers keep their buckets
//! (IPVS rebuilds the table only when servers are added, removed or reweighted).
//!
//! For these six the sequence is the eligible backends (as for rr): it says whether any
//! is, and spreads new flows by hash while a SYN flood keeps the table full.
//!
//! **mh** — the sequence is the eligible backends, as for rr: it says whether any is;
//! the choice is made by the service's Maglev table ([`super::maglev`]).
//!
//! Only backends with weight > 0 *and* a known MAC and not down are in the sequence; the
//! control plane rebuilds it when any of these changes. Each worker keeps its own wrr/rr
//! cursor, starting at its index, so workers do not all hand their first flow to the
//! same backend. The connection counts the scanning schedulers read are every worker's
//! ([`super::conns`]).
use super::SchedKind;

/// Longest cycle we precompute (2^20 picks = 2 MiB of u16). Beyond it (weights like
/// 60000..60019, whose gcd is 1) wrr steps through the weights as IPVS does
/// ([`step_pick`]): no table, O(servers) per new flow.
pub const MAX_CYCLE: u64 = 1 << 20;

/// wrr by IPVS's own gcd stepping (ip_vs_wrr.c), for weights whose cycle is too long to
/// precompute: a current weight `cw` starts at the largest weight and drops by the gcd
/// at each pass over the servers; each pass picks, in order, the servers whose weight
/// is at least `cw`. Exact proportions over a cycle, in runs at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stepping {
    /// The largest weight minus (gcd - 1), as IPVS's `mw`.
    pub mw: u32,
    pub gcd: u32,
}

impl Stepping {
    /// For the eligible (slot, weight > 0) backends.
    pub fn of(backends: &[(u16, u32)]) -> Stepping {
        let w = backends.iter().filter(|b| b.1 > 0).map(|b| u64::from(b.1));
        let gcd = w.clone().fold(0, gcd).max(1) as u32;
        let max = w.max().unwrap_or(0) as u32;
        Stepping { mw: max.saturating_sub(gcd - 1), gcd }
    }
}

/// One [`Stepping`] pick over `seq` (the eligible servers in IPVS's order) with each
/// slot's `weight`; `cl` is this worker's position (the last pick; `u32::MAX`: before
/// the first, IPVS's list head), `cw` its current weight (0: start). `None` when `seq`
/// is empty.
pub fn step_pick(
    seq: &[u16],
    weight: impl Fn(u16) -> u32,
    st: Stepping,
    cl: &mut u32,
    cw: &mut u32,
) -> Option<u16> {
    let n = seq.len();
    if n == 0 || st.mw == 0 {
        return None;
    }
    if *cw == 0 || *cw > st.mw {
        *cw = st.mw; // a fresh start, or the weights changed
    }
    let mut i = if *cl == u32::MAX { 0 } else { *cl as usize + 1 };
    // A pass at any cw <= mw finds the heaviest server: two passes always suffice.
    for _ in 0..2 * n + 2 {
        if i >= n {
            *cw = if *cw > st.gcd { *cw - st.gcd } else { st.mw };
            i = 0;
        }
        if weight(seq[i]) >= *cw {
            *cl = i as u32;
            return Some(seq[i]);
        }
        i += 1;
    }
    None
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Builds the pick sequence over `(slot, weight)`; entries with weight 0 are skipped.
/// Returns `None` when the wrr cycle would exceed [`MAX_CYCLE`] (then [`step_pick`]).
pub fn build(kind: SchedKind, backends: &[(u16, u32)]) -> Option<Vec<u16>> {
    let live: Vec<(u16, u64)> =
        backends.iter().filter(|b| b.1 > 0).map(|&(s, w)| (s, u64::from(w))).collect();
    match kind {
        SchedKind::Fo => {
            // The highest weight; the first of equals in IPVS's order (newest first).
            let mut best: Option<(u16, u64)> = None;
            for &(s, w) in live.iter().rev() {
                if best.is_none_or(|b| w > b.1) {
                    best = Some((s, w));
                }
            }
            Some(best.map(|b| b.0).into_iter().collect())
        }
        SchedKind::Wrr => {
            let g = live.iter().fold(0, |g, b| gcd(g, b.1));
            if g == 0 {
                return Some(Vec::new());
            }
            let total: u64 = live.iter().map(|b| b.1 / g).sum();
            if total > MAX_CYCLE {
                return None;
            }
            // (backend order, k, weight): position (2k+1)/(2w).
            let mut picks: Vec<(usize, u64, u64)> = Vec::with_capacity(total as usize);
            for (i, b) in live.iter().enumerate() {
                let w = b.1 / g;
                for k in 0..w {
                    picks.push((i, k, w));
                }
            }
            // Compare (2k1+1)/w1 with (2k2+1)/w2 exactly by cross-multiplying (fits u64:
            // k < w <= 2^32).
            picks.sort_by(|a, b| {
                ((2 * a.1 + 1) * b.2).cmp(&((2 * b.1 + 1) * a.2)).then(a.0.cmp(&b.0))
            });
            Some(picks.into_iter().map(|p| live[p.0].0).collect())
        }
        _ => Some(live.iter().map(|b| b.0).collect()),
    }
}

/// One candidate of a scanning scheduler: slot, weight (> 0) and the connection counts
/// (active, inactive) summed over the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub slot: u16,
    pub weight: u32,
    pub active: u64,
    pub inactive: u64,
}

/// wlc, lc, sed, nq: the chosen one of `eligible` (available servers with weight > 0, in
/// IPVS's order), by the rules in the module docs. `None` when there is none.
pub fn least(kind: SchedKind, eligible: impl Iterator<Item = Candidate>) -> Option<u16> {
    // Overheads grow past u64 only with absurd counts; u128 products never overflow.
    let overhead = |c: &Candidate| -> u128 {
        match kind {
            SchedKind::Sed | SchedKind::Nq => u128::from(c.active) + 1,
            _ => (u128::from(c.active) << 8) + u128::from(c.inactive),
        }
    };
    let mut best: Option<(Candidate, u128)> = None;
    for c in eligible {
        if kind == SchedKind::Nq && c.active == 0 {
            return Some(c.slot); // an idle server: no queue at all
        }
        let doh = overhead(&c);
        let better = match best {
            None => true,
            Some((_, loh)) if kind == SchedKind::Lc => doh < loh,
            Some((l, loh)) => loh * u128::from(c.weight) > doh * u128::from(l.weight),
        };
        if better {
            best = Some((c, doh));
        }
    }
    best.map(|b| b.0.slot)
}

/// Buckets of an `sh` table (IPVS's `IP_VS_SH_TAB_BITS` = 8).
pub const SH_TAB_BITS: u32 = 8;
pub const SH_TAB_SIZE: usize = 1 << SH_TAB_BITS;

/// The `sh` table over a service's servers (slot, weight) in IPVS's order: each takes
/// `weight` consecutive buckets (at least one), round and round (`ip_vs_sh_reassign`).
/// Empty when there is no server.
pub fn sh_table(servers: &[(u16, u32)]) -> Box<[u16]> {
    if servers.is_empty() {
        return Box::new([]);
    }
    let mut t = Vec::with_capacity(SH_TAB_SIZE);
    let (mut d, mut count) = (0, 0u32);
    while t.len() < SH_TAB_SIZE {
        t.push(servers[d].0);
        count += 1;
        if count >= servers[d].1 {
            d = (d + 1) % servers.len();
            count = 0;
        }
    }
    t.into_boxed_slice()
}

/// `ip_vs_sh_hashkey`: the bucket of (address, port) at `offset`.
#[inline]
fn sh_bucket(addr: u32, port: u16, offset: u32) -> usize {
    let h = u32::from(port).wrapping_add(addr).wrapping_mul(0x61c8_8647) >> (32 - SH_TAB_BITS);
    (offset.wrapping_add(h) as usize) & (SH_TAB_SIZE - 1)
}

/// The `sh` choice for a client (`port` 0 unless `sh-port`): its bucket's server if
/// `available`, else with `fallback` the first available one walking the table as
/// `ip_vs_sh_get_fallback` does, else `None`.
pub fn sh_pick(
    table: &[u16],
    addr: u32,
    port: u16,
    fallback: bool,
    available: impl Fn(u16) -> bool,
) -> Option<u16> {
    if table.len() != SH_TAB_SIZE {
        return None;
    }
    let ihash = sh_bucket(addr, port, 0);
    let first = table[ihash];
    if available(first) {
        return Some(first);
    }
    if !fallback {
        return None;
    }
    (0..SH_TAB_SIZE as u32)
        .map(|offset| table[sh_bucket(addr, port, (offset + ihash as u32) % SH_TAB_SIZE as u32)])
        .find(|&s| available(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(seq: &[u16]) -> String {
        seq.iter().map(|&s| (b'A' + s as u8) as char).collect()
    }

    #[test]
    fn wrr_3_2_1_interleaves() {
        let s = build(SchedKind::Wrr, &[(0, 3), (1, 2), (2, 1)]).unwrap();
        assert_eq!(names(&s), "ABACBA");
    }

    #[test]
    fn wrr_exact_proportions_and_gcd() {
        let s = build(SchedKind::Wrr, &[(0, 300), (1, 200), (2, 100)]).unwrap();
        assert_eq!(s.len(), 6, "gcd 100 divides out");
        let s = build(SchedKind::Wrr, &[(0, 7), (1, 3), (2, 0), (3, 5)]).unwrap();
        assert_eq!(s.len(), 15);
        for (slot, w) in [(0u16, 7usize), (1, 3), (2, 0), (3, 5)] {
            assert_eq!(s.iter().filter(|&&x| x == slot).count(), w);
        }
    }

    #[test]
    fn wrr_no_long_runs() {
        // 1:1 must alternate; 2:1 must never repeat a backend three times in a row.
        assert_eq!(names(&build(SchedKind::Wrr, &[(0, 1), (1, 1)]).unwrap()), "AB");
        let s = build(SchedKind::Wrr, &[(0, 5), (1, 4), (2, 3), (3, 1)]).unwrap();
        let doubled: Vec<u16> = s.iter().chain(s.iter()).copied().collect();
        assert!(doubled.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])), "{}", names(&s));
    }

    #[test]
    fn rr_ignores_weights_but_drains_zero() {
        let s = build(SchedKind::Rr, &[(0, 5), (1, 0), (2, 1)]).unwrap();
        assert_eq!(s, vec![0, 2]);
    }

    #[test]
    fn stepping_gives_exact_proportions_for_any_weights() {
        // 20 servers weighted 60000..60019: a cycle of 1.2 M picks, too long to build.
        let b: Vec<(u16, u32)> = (0..20).map(|i| (i, 60_000 + u32::from(i))).collect();
        assert!(build(SchedKind::Wrr, &b).is_none());
        let st = Stepping::of(&b);
        assert_eq!(st, Stepping { mw: 60_019, gcd: 1 });
        let seq: Vec<u16> = b.iter().map(|x| x.0).collect();
        let w = |s: u16| 60_000 + u32::from(s);
        let (mut cl, mut cw, mut n) = (u32::MAX, 0, [0u32; 20]);
        let total: u32 = b.iter().map(|x| x.1).sum();
        for _ in 0..total {
            n[usize::from(step_pick(&seq, w, st, &mut cl, &mut cw).unwrap())] += 1;
        }
        for (i, c) in n.iter().enumerate() {
            assert_eq!(*c, 60_000 + i as u32, "server {i}: one cycle gives each its weight");
        }
        // IPVS's order for 3:2:1 (its runs at the start of a cycle).
        let st = Stepping::of(&[(0, 3), (1, 2), (2, 1)]);
        let (mut cl, mut cw) = (u32::MAX, 0);
        let picks: Vec<u16> = (0..6)
            .map(|_| {
                step_pick(&[0, 1, 2], |s| [3, 2, 1][usize::from(s)], st, &mut cl, &mut cw).unwrap()
            })
            .collect();
        assert_eq!(names(&picks), "AABABC");
        assert_eq!(step_pick(&[], |_| 1, st, &mut cl, &mut cw), None);
    }

    #[test]
    fn empty_and_too_long() {
        assert!(build(SchedKind::Wrr, &[(0, 0)]).unwrap().is_empty());
        assert!(build(SchedKind::Wrr, &[]).unwrap().is_empty());
        let huge: Vec<(u16, u32)> = (0..40).map(|i| (i, 65_521 - i as u32 * 2)).collect();
        let g = huge.iter().fold(0, |g, b| gcd(g, u64::from(b.1)));
        assert!(huge.iter().map(|b| u64::from(b.1) / g).sum::<u64>() > MAX_CYCLE);
        assert!(build(SchedKind::Wrr, &huge).is_none());
    }
}
