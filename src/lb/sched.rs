//! Schedulers, precomputed as sequences so that a pick on the hot path is one load.
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
//! **mh** — the sequence is the eligible backends, as for rr: it says whether any is;
//! the choice is made by the service's Maglev table ([`super::maglev`]).
//!
//! Only backends with weight > 0 *and* a known MAC are in the sequence; the control
//! plane rebuilds it when either changes. Each worker keeps its own cursor, starting at
//! its index, so workers do not all hand their first flow to the same backend.
use super::SchedKind;

/// Longest cycle we precompute (2^20 picks = 2 MiB of u16). Σw/g beyond it is a config
/// error; it needs thousands of backends with large coprime weights.
pub const MAX_CYCLE: u64 = 1 << 20;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Length of the cycle `build` would produce for these weights (0 weights ignored).
pub fn cycle_len(kind: SchedKind, weights: &[u32]) -> u64 {
    let w: Vec<u64> = weights.iter().filter(|&&w| w > 0).map(|&w| u64::from(w)).collect();
    match kind {
        SchedKind::Rr | SchedKind::Mh => w.len() as u64,
        SchedKind::Wrr => {
            let g = w.iter().fold(0, |g, &x| gcd(g, x));
            if g == 0 {
                0
            } else {
                w.iter().map(|x| x / g).sum()
            }
        }
    }
}

/// Whether a service with these weights can be scheduled: its cycle fits
/// [`MAX_CYCLE`]. The message says why not.
pub fn check(kind: SchedKind, weights: &[u32]) -> Result<(), String> {
    if cycle_len(kind, weights) > MAX_CYCLE {
        return Err(format!("weights too fine-grained: sum/gcd exceeds {MAX_CYCLE}"));
    }
    Ok(())
}

/// Builds the pick sequence over `(slot, weight)`; entries with weight 0 are skipped.
/// Returns `None` when the cycle would exceed [`MAX_CYCLE`].
pub fn build(kind: SchedKind, backends: &[(u16, u32)]) -> Option<Vec<u16>> {
    let live: Vec<(u16, u64)> =
        backends.iter().filter(|b| b.1 > 0).map(|&(s, w)| (s, u64::from(w))).collect();
    match kind {
        SchedKind::Rr | SchedKind::Mh => Some(live.iter().map(|b| b.0).collect()),
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
    }
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
    fn empty_and_too_long() {
        assert!(build(SchedKind::Wrr, &[(0, 0)]).unwrap().is_empty());
        assert!(build(SchedKind::Wrr, &[]).unwrap().is_empty());
        let huge: Vec<(u16, u32)> = (0..40).map(|i| (i, 65_521 - i as u32 * 2)).collect();
        assert!(
            cycle_len(SchedKind::Wrr, &huge.iter().map(|b| b.1).collect::<Vec<_>>()) > MAX_CYCLE
        );
        assert!(build(SchedKind::Wrr, &huge).is_none());
    }
}
