//! The `mh` scheduler: Maglev hashing (Eisenbud et al., NSDI '16, §3.4), as IPVS's
//! `ip_vs_mh.c` does it, built on the control plane and read by the workers.
//!
//! Every director with the same config and the same `hash_seed` builds the same table,
//! so a flow that ECMP moves to another director gets the same real server there.
//!
//! - **Table**: a prime number `M` of positions (`mh_table_size`, default 65537), each
//!   naming a backend. Backend *b* prefers positions `offset_b + j·skip_b (mod M)`,
//!   `offset`/`skip` from two keyed hashes of its `ip:port`; backends take turns claiming
//!   their next free preferred position until every position is taken. A backend takes
//!   `weight/gcd` consecutive turns per round (scaled down so the largest is below
//!   2^[`TURN_BITS`]), so shares follow weights.
//! - **Stable across order and drain**: backends are taken sorted by address, not in
//!   the order they were added; and the table is built from each backend's *last
//!   non-zero* weight (IPVS `last_weight`), so draining (weight 0), a failed health check
//!   or a MAC not yet resolved does not rebuild it. Such a backend is skipped at lookup
//!   instead ([`MhTable::lookup`]): the flows that hash to it probe further, by a step
//!   derived from their own hash (IPVS `mh-fallback`), so they spread over the others
//!   and every other flow keeps its backend.
//! - **Flow key**: a keyed hash of the 5-tuple (IPVS `mh-port`), or of the source
//!   address only (`mh_hash = "source"`: all of a client's connections on one server).
//! - **Hash**: SipHash-1-3 with 128-bit keys derived from the `hash_seed` string; the
//!   function is fixed (not `std`'s `DefaultHasher`, which may change between Rust
//!   releases), so directors built by different toolchains agree.
//! - **Fingerprint**: a hash of the table as backend addresses, not slots (slots are
//!   local to one director), shown by `drlbadm -ln --json` for comparing directors.
use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// `mh_table_size` when the service does not say (Maglev's and Katran's default).
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;
/// Largest table accepted (Maglev's "large" table is 655,373).
pub const MAX_TABLE_SIZE: u32 = 1_048_573;
/// Smallest table accepted.
pub const MIN_TABLE_SIZE: u32 = 7;
/// `hash_seed` when the config does not give one; every director without the key agrees.
pub const DEFAULT_HASH_SEED: &str = "drlb";
/// Bits of the heaviest backend's turns per round after scaling (as IPVS: at most 63).
pub const TURN_BITS: u32 = 6;

/// What the flow key of an `mh` service is hashed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MhHash {
    /// Source and destination address and port, and the protocol (IPVS `mh-port`).
    #[default]
    Flow,
    /// The source address only (IPVS `mh` without flags): a client sticks to a server.
    Source,
}

/// The SipHash keys derived from a `hash_seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MhKeys {
    offset: [u8; 16],
    skip: [u8; 16],
    flow: [u8; 16],
}

fn sip(key: &[u8; 16], bytes: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_key(key);
    h.write(bytes);
    h.finish()
}

impl MhKeys {
    /// The keys of a seed: SipHash-1-3 (key 0) of a label and the seed, twice per key.
    pub fn from_seed(seed: &str) -> Self {
        let derive = |label: &str| {
            let mut k = [0u8; 16];
            for (half, part) in k.chunks_exact_mut(8).enumerate() {
                let text = format!("drlb mh {label} {half}\0{seed}");
                part.copy_from_slice(&sip(&[0; 16], text.as_bytes()).to_le_bytes());
            }
            k
        };
        MhKeys { offset: derive("offset"), skip: derive("skip"), flow: derive("flow") }
    }

    /// The hash a flow is looked up by.
    #[inline]
    pub fn flow_hash(
        &self,
        how: MhHash,
        saddr: u32,
        daddr: u32,
        sport: u16,
        dport: u16,
        proto: u8,
    ) -> u64 {
        match how {
            MhHash::Source => sip(&self.flow, &saddr.to_be_bytes()),
            MhHash::Flow => {
                let mut b = [0u8; 13];
                b[0..4].copy_from_slice(&saddr.to_be_bytes());
                b[4..8].copy_from_slice(&daddr.to_be_bytes());
                b[8..10].copy_from_slice(&sport.to_be_bytes());
                b[10..12].copy_from_slice(&dport.to_be_bytes());
                b[12] = proto;
                sip(&self.flow, &b)
            }
        }
    }
}

impl Default for MhKeys {
    fn default() -> Self {
        MhKeys::from_seed(DEFAULT_HASH_SEED)
    }
}

/// One backend as the table is built from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MhBackend {
    pub ip: u32,
    pub port: u16,
    /// Its last non-zero weight (0: never weighted, not in the table).
    pub last_weight: u32,
    /// Its slot on this director (what the table stores).
    pub slot: u16,
}

/// A built table: each position's backend slot.
#[derive(Debug, PartialEq, Eq)]
pub struct MhTable {
    entries: Box<[u16]>,
    fingerprint: u64,
}

/// Whether `n` is prime (trial division; table sizes are at most about a million).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl MhTable {
    /// Builds the table of `size` positions (a prime, checked by the config) over
    /// `backends` (any order; those with `last_weight` 0 take no position).
    pub fn build(size: u32, keys: &MhKeys, backends: &[MhBackend]) -> MhTable {
        let m = size as usize;
        let mut live: Vec<MhBackend> =
            backends.iter().copied().filter(|b| b.last_weight > 0).collect();
        live.sort_by_key(|b| (b.ip, b.port));
        if live.is_empty() || m == 0 {
            return MhTable { entries: Box::new([]), fingerprint: fingerprint(&[], &live) };
        }
        let g = live.iter().fold(0, |g, b| gcd(g, b.last_weight));
        let heaviest = live.iter().map(|b| b.last_weight / g).max().unwrap_or(1);
        // Scale the turns down (keeping at least one) so one round stays short.
        let shift = (32 - heaviest.leading_zeros()).saturating_sub(TURN_BITS);
        let turns: Vec<u32> = live.iter().map(|b| ((b.last_weight / g) >> shift).max(1)).collect();
        // (next preferred position, skip) of each backend.
        let mut perm: Vec<(usize, usize)> = live
            .iter()
            .map(|b| {
                let mut id = [0u8; 6];
                id[..4].copy_from_slice(&b.ip.to_be_bytes());
                id[4..].copy_from_slice(&b.port.to_be_bytes());
                let offset = (sip(&keys.offset, &id) % size as u64) as usize;
                let skip = (sip(&keys.skip, &id) % (size as u64 - 1)) as usize + 1;
                (offset, skip)
            })
            .collect();
        const EMPTY: u16 = u16::MAX;
        let mut entries = vec![EMPTY; m];
        let mut filled = 0;
        'fill: loop {
            for (i, b) in live.iter().enumerate() {
                for _ in 0..turns[i] {
                    let (pos, skip) = &mut perm[i];
                    while entries[*pos] != EMPTY {
                        *pos += *skip;
                        if *pos >= m {
                            *pos -= m;
                        }
                    }
                    entries[*pos] = b.slot;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
        let fingerprint = fingerprint(&entries, &live);
        MhTable { entries: entries.into_boxed_slice(), fingerprint }
    }

    /// Positions in the table (0 when no backend has a weight).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The slot at each position.
    pub fn entries(&self) -> &[u16] {
        &self.entries
    }

    /// A hash of the table by backend address: equal on directors that agree.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The backend for a flow hash: its position's backend if `usable`, else the first
    /// usable one along a probe sequence derived from the hash (a step in 1 ..= M-1,
    /// which visits every position as M is prime). `None` only when no position is
    /// usable; callers check first that some backend is, so that is never a full walk.
    #[inline]
    pub fn lookup(&self, hash: u64, usable: impl Fn(u16) -> bool) -> Option<u16> {
        let m = self.entries.len();
        if m == 0 {
            return None;
        }
        let pos = (hash % m as u64) as usize;
        let first = self.entries[pos];
        if usable(first) {
            return Some(first);
        }
        self.probe(hash, pos, &usable)
    }

    #[inline(never)]
    fn probe(&self, hash: u64, mut pos: usize, usable: &impl Fn(u16) -> bool) -> Option<u16> {
        let m = self.entries.len();
        if m < 2 {
            return None;
        }
        let step = ((hash >> 32) % (m as u64 - 1)) as usize + 1;
        for _ in 1..m {
            pos += step;
            if pos >= m {
                pos -= m;
            }
            let s = self.entries[pos];
            if usable(s) {
                return Some(s);
            }
        }
        None
    }
}

/// SipHash (fixed key) of each position's backend address, by position.
fn fingerprint(entries: &[u16], live: &[MhBackend]) -> u64 {
    let by_slot: std::collections::HashMap<u16, (u32, u16)> =
        live.iter().map(|b| (b.slot, (b.ip, b.port))).collect();
    let mut h = SipHasher13::new_with_key(&[0; 16]);
    h.write(&(entries.len() as u64).to_le_bytes());
    for s in entries {
        let (ip, port) = by_slot.get(s).copied().unwrap_or_default();
        h.write(&ip.to_be_bytes());
        h.write(&port.to_be_bytes());
    }
    h.finish()
}

/// Share of table positions (so of flows) whose backend changes between two tables
/// (both built over the same slots for the same addresses).
pub fn moved(a: &MhTable, b: &MhTable) -> f64 {
    let n = a.entries.len().min(b.entries.len());
    if n == 0 {
        return 0.0;
    }
    let changed = a.entries.iter().zip(b.entries.iter()).filter(|(x, y)| x != y).count();
    changed as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: usize) -> Vec<MhBackend> {
        (0..n)
            .map(|i| MhBackend {
                ip: u32::from(std::net::Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250) as u8 + 1)),
                port: 80,
                last_weight: 1,
                slot: i as u16,
            })
            .collect()
    }

    fn shares(t: &MhTable, slots: usize) -> Vec<f64> {
        let mut c = vec![0usize; slots];
        for &s in t.entries() {
            c[usize::from(s)] += 1;
        }
        c.into_iter().map(|x| x as f64 / t.len() as f64).collect()
    }

    #[test]
    fn primes() {
        assert!(is_prime(65_537) && is_prime(7) && is_prime(251) && is_prime(655_373));
        assert!(!is_prime(65_536) && !is_prime(1) && !is_prime(0) && !is_prime(65_535));
    }

    #[test]
    fn every_position_is_filled_and_shares_are_even() {
        let b = backends(10);
        let t = MhTable::build(DEFAULT_TABLE_SIZE, &MhKeys::default(), &b);
        assert_eq!(t.len(), 65_537);
        for s in shares(&t, 10) {
            assert!((s - 0.1).abs() < 0.001, "share {s}");
        }
    }

    #[test]
    fn weights_set_the_shares() {
        let mut b = backends(3);
        b[0].last_weight = 3;
        b[1].last_weight = 2;
        b[2].last_weight = 1;
        let t = MhTable::build(65_537, &MhKeys::default(), &b);
        let s = shares(&t, 3);
        for (got, want) in s.iter().zip([0.5, 1.0 / 3.0, 1.0 / 6.0]) {
            assert!((got - want).abs() < 0.002, "{s:?}");
        }
        // Weights beyond 2^TURN_BITS are scaled, keeping their proportions roughly.
        b[0].last_weight = 60_000;
        b[1].last_weight = 30_000;
        b[2].last_weight = 1;
        let s = shares(&MhTable::build(65_537, &MhKeys::default(), &b), 3);
        assert!((s[0] - 2.0 * s[1]).abs() < 0.02 && s[2] > 0.0 && s[2] < 0.02, "{s:?}");
    }

    #[test]
    fn order_and_slots_do_not_change_the_choice_and_the_seed_does() {
        let b = backends(5);
        let keys = MhKeys::default();
        let t = MhTable::build(65_537, &keys, &b);
        // Another director: same servers, given in another order, in other slots.
        let mut other: Vec<MhBackend> = b.iter().rev().copied().collect();
        for (i, x) in other.iter_mut().enumerate() {
            x.slot = 100 + i as u16;
        }
        let u = MhTable::build(65_537, &keys, &other);
        assert_eq!(t.fingerprint(), u.fingerprint());
        let ip_of = |bs: &[MhBackend], s: u16| bs.iter().find(|x| x.slot == s).unwrap().ip;
        for (x, y) in t.entries().iter().zip(u.entries()) {
            assert_eq!(ip_of(&b, *x), ip_of(&other, *y));
        }
        let v = MhTable::build(65_537, &MhKeys::from_seed("another"), &b);
        assert_ne!(t.fingerprint(), v.fingerprint());
        assert!(moved(&t, &v) > 0.5, "another seed is another table");
        let w = MhTable::build(65_521, &keys, &b);
        assert_ne!(t.fingerprint(), w.fingerprint(), "the size is part of the fingerprint");
    }

    #[test]
    fn an_unusable_backend_only_moves_its_own_flows_and_they_spread() {
        let b = backends(4);
        let keys = MhKeys::default();
        let t = MhTable::build(65_537, &keys, &b);
        let mut went = [0usize; 4];
        for i in 0..20_000u32 {
            let h = keys.flow_hash(MhHash::Flow, 0x0a00_0000 + i, 0xc0a8_01c8, 40_000, 80, 6);
            let before = t.lookup(h, |_| true).unwrap();
            let after = t.lookup(h, |s| s != 2).unwrap();
            if before != 2 {
                assert_eq!(before, after, "a flow on another backend stays");
            } else {
                went[usize::from(after)] += 1;
            }
        }
        assert_eq!(went[2], 0);
        for n in [went[0], went[1], went[3]] {
            assert!(n > 1200, "the down backend's flows spread: {went:?}");
        }
        assert_eq!(t.lookup(1, |_| false), None);
    }

    #[test]
    fn the_flow_key_is_the_5_tuple_or_the_source() {
        let k = MhKeys::default();
        let a = k.flow_hash(MhHash::Flow, 1, 2, 3, 4, 6);
        assert_ne!(a, k.flow_hash(MhHash::Flow, 1, 2, 5, 4, 6));
        let s = k.flow_hash(MhHash::Source, 1, 2, 3, 4, 6);
        assert_eq!(s, k.flow_hash(MhHash::Source, 1, 9, 5, 7, 17));
    }

    #[test]
    fn known_answers_pin_the_hash_across_builds() {
        // Directors built by other toolchains must agree: these values are the contract.
        let k = MhKeys::default();
        let h = k.flow_hash(MhHash::Flow, 0x0a00_0002, 0xc0a8_01c8, 40_000, 80, 6);
        let t = MhTable::build(251, &k, &backends(3));
        assert_eq!((h, t.fingerprint()), (KNOWN.0, KNOWN.1), "{h:#x} {:#x}", t.fingerprint());
    }
    const KNOWN: (u64, u64) = (0xf292_c844_5320_b659, 0x79a0_ba05_04f3_5f8e);

    /// Removing or adding one of N backends moves about 1/N of the flows (the minimum
    /// is exactly the share of the one that left or came); Maglev trades a little more
    /// for its even shares, more so with many backends per position (1.6 % for 1 of
    /// 100 at M = 65537, 1.14 % at M = 655373; the paper's §5.3 reports the same:
    /// a larger table is more resilient to backend changes).
    #[test]
    fn disruption_is_close_to_the_minimum() {
        for n in [3usize, 10, 100] {
            let (removed, added) = disruption(n, DEFAULT_TABLE_SIZE);
            let ideal_rm = 1.0 / n as f64;
            let ideal_add = 1.0 / (n + 1) as f64;
            assert!(removed >= ideal_rm * 0.99 && removed < ideal_rm * 1.75, "{n}: {removed}");
            assert!(added >= ideal_add * 0.99 && added < ideal_add * 1.75, "{n}: {added}");
        }
    }

    /// Shares of positions that change when backend 0 of `n` is removed, and when an
    /// `n+1`-th is added (averaged over a few choices of which one).
    pub fn disruption(n: usize, size: u32) -> (f64, f64) {
        let keys = MhKeys::default();
        let all = backends(n + 1);
        let base = MhTable::build(size, &keys, &all[..n]);
        let trials = n.min(5);
        let mut rm = 0.0;
        for k in 0..trials {
            let fewer: Vec<MhBackend> =
                all[..n].iter().enumerate().filter(|&(i, _)| i != k).map(|(_, b)| *b).collect();
            rm += moved(&base, &MhTable::build(size, &keys, &fewer));
        }
        let add = moved(&base, &MhTable::build(size, &keys, &all));
        (rm / trials as f64, add)
    }

    /// The disruption table of perf/results (run with --ignored --nocapture).
    #[test]
    #[ignore]
    fn print_disruption_table() {
        println!("| backends N | table M | moved when one is removed | minimum 1/N | moved when one is added | minimum 1/(N+1) |");
        println!("|---|---|---|---|---|---|");
        for size in [DEFAULT_TABLE_SIZE, 655_373] {
            for n in [3usize, 10, 100] {
                let (r, a) = disruption(n, size);
                println!(
                    "| {n} | {size} | {:.2} % | {:.2} % | {:.2} % | {:.2} % |",
                    r * 100.0,
                    100.0 / n as f64,
                    a * 100.0,
                    100.0 / (n + 1) as f64
                );
            }
        }
    }
}
