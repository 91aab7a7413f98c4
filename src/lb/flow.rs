//! The per-worker flow table.
//!
//! A fixed-capacity, set-associative hash table: the capacity is rounded up to a power
//! of two and split into groups of [`WAYS`] entries (one group = 192 bytes = three cache
//! lines, 64-byte aligned). A key may live in one of two groups chosen by independent
//! bits of its hash ("two choices"): a lookup reads at most two groups (bounded probing,
//! no tombstones, no rehash, no allocation after construction), and an insert takes a
//! free entry in either. With one group per key a table at 50 % load already overflows
//! groups and evicts ~2 % of flows (Poisson tail); with two, eviction before ~90 % load
//! is negligible (tested below).
//!
//! - Hash: a folded 64x64->128 multiply of the key words with two random 64-bit seeds
//!   drawn at start (the foldhash / wyhash construction). Clients cannot aim collisions
//!   at a group without knowing the seed.
//! - Expiry: each entry carries its expiry tick. Expired entries are treated as empty by
//!   lookups and reused by inserts (lazy), and [`FlowTable::sweep`] clears a few groups
//!   per call so occupancy figures stay true without a pause.
//! - Full group: the insert evicts the entry expiring soonest, preferring entries that
//!   are not ESTABLISHED (half-open SYN_RECV floods go first), and counts the eviction.
use super::tcp_state::State;
use super::Tick;

pub const WAYS: usize = 8;

/// The 5-tuple. `proto == 0` marks an empty entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct FlowKey {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

/// 24 bytes per flow. The key is kept as two packed words so a compare is two integer
/// compares: `addrs` = saddr << 32 | daddr, `ports` = sport << 16 | dport.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct FlowEntry {
    addrs: u64,
    ports: u32,
    /// IP protocol; 0 marks an empty entry.
    pub proto: u8,
    pub state: u8,
    /// Backend slot in the snapshot, and the slot's incarnation when the flow was made.
    pub slot: u16,
    pub incarnation: u16,
    _pad: u16,
    pub expires: Tick,
}

impl FlowKey {
    #[inline(always)]
    fn addrs(&self) -> u64 {
        (u64::from(self.saddr) << 32) | u64::from(self.daddr)
    }
    #[inline(always)]
    fn ports(&self) -> u32 {
        (u32::from(self.sport) << 16) | u32::from(self.dport)
    }
}

impl FlowEntry {
    #[inline(always)]
    fn matches(&self, addrs: u64, ports: u32, proto: u8) -> bool {
        self.addrs == addrs && self.ports == ports && self.proto == proto
    }
    #[inline(always)]
    pub fn is_live(&self, now: Tick) -> bool {
        self.proto != 0 && self.expires > now
    }
    pub fn key(&self) -> FlowKey {
        FlowKey {
            saddr: (self.addrs >> 32) as u32,
            daddr: self.addrs as u32,
            sport: (self.ports >> 16) as u16,
            dport: self.ports as u16,
            proto: self.proto,
        }
    }
    pub fn saddr(&self) -> u32 {
        (self.addrs >> 32) as u32
    }
    pub fn state(&self) -> State {
        State::from_u8(self.state)
    }
}

pub const ENTRY_BYTES: usize = std::mem::size_of::<FlowEntry>();

#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Group([FlowEntry; WAYS]);

/// Where a key is, or where it would go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A live entry with this key, at this index.
    Hit(usize),
    /// No live entry; an insert would use this index.
    Vacant(usize),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub inserts: u64,
    pub evictions: u64,
    pub evicted_established: u64,
    pub expired: u64,
    /// Entries moved to their other group to make room (cuckoo moves).
    pub moved: u64,
}

pub struct FlowTable {
    groups: Box<[Group]>,
    group_mask: usize,
    seed: [u64; 2],
    sweep_next: usize,
    pub stats: FlowStats,
}

/// A cache-line prefetch hint; a no-op off x86_64.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults or changes memory, whatever `p` is.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

impl FlowTable {
    /// A table for at least `capacity` flows (rounded up to a power of two, min 8),
    /// with random hash seeds.
    pub fn new(capacity: usize) -> Self {
        let mut seed = [0u8; 16];
        // getrandom only fails if the OS has no entropy source; fall back to the clock.
        if getrandom::getrandom(&mut seed).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            seed[..16].copy_from_slice(&t.as_nanos().to_le_bytes());
        }
        let s0 = u64::from_le_bytes(seed[..8].try_into().unwrap()) | 1;
        let s1 = u64::from_le_bytes(seed[8..].try_into().unwrap()) | 1;
        Self::with_seed(capacity, [s0, s1])
    }

    pub fn with_seed(capacity: usize, seed: [u64; 2]) -> Self {
        let entries = capacity.max(WAYS).next_power_of_two();
        let groups = entries / WAYS;
        // vec! of zeroed groups: the allocator hands back untouched zero pages, so
        // resident memory grows with use, not with capacity.
        let groups = vec![Group::default(); groups].into_boxed_slice();
        FlowTable {
            group_mask: groups.len() - 1,
            groups,
            seed,
            sweep_next: 0,
            stats: FlowStats::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.groups.len() * WAYS
    }

    /// Bytes the table occupies (its whole allocation).
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.groups)
    }

    /// The key's two candidate groups.
    #[inline(always)]
    fn groups_of(&self, k: &FlowKey) -> (usize, usize) {
        let a = k.addrs();
        let b = (u64::from(k.ports()) << 8) | u64::from(k.proto);
        let h = folded_multiply(a ^ self.seed[0], b ^ self.seed[1]);
        let h = folded_multiply(h, 0x9e37_79b9_7f4a_7c15);
        let g1 = (h as usize) & self.group_mask;
        let mut g2 = ((h >> 32) as usize) & self.group_mask;
        if g2 == g1 {
            g2 = (g1 ^ 1) & self.group_mask;
        }
        (g1, g2)
    }

    /// Starts loading both candidate groups of `k` into the cache. Called for a whole
    /// burst before any packet of it is processed, so the misses overlap (as DPDK's
    /// `rte_hash_lookup_bulk` does) instead of stalling one packet at a time.
    #[inline(always)]
    pub fn prefetch(&self, k: &FlowKey) {
        let (g1, g2) = self.groups_of(k);
        for g in [g1, g2] {
            let p = self.groups[g].0.as_ptr() as *const u8;
            for line in 0..3 {
                prefetch_line(p.wrapping_add(line * 64));
            }
        }
    }

    #[inline(always)]
    fn scan(&self, g: usize, addrs: u64, ports: u32, proto: u8, now: Tick) -> Option<usize> {
        let grp = &self.groups[g].0;
        for (i, e) in grp.iter().enumerate() {
            if e.matches(addrs, ports, proto) {
                // A key is in at most one entry; an expired one counts as absent.
                return (e.expires > now).then_some(g * WAYS + i);
            }
        }
        None
    }

    /// Finds `k`, or the entry an insert of `k` would take: an empty or expired one in
    /// either group, else room made by one cuckoo move, else the victim (non-ESTABLISHED
    /// first, then soonest to expire). `&mut` because making room may move an entry to
    /// its other group, which lookups also check, so no flow is lost by it.
    #[inline]
    pub fn find(&mut self, k: &FlowKey, now: Tick) -> Slot {
        let (g1, g2) = self.groups_of(k);
        let (a, p) = (k.addrs(), k.ports());
        if let Some(i) = self.scan(g1, a, p, k.proto, now) {
            return Slot::Hit(i);
        }
        if let Some(i) = self.scan(g2, a, p, k.proto, now) {
            return Slot::Hit(i);
        }
        Slot::Vacant(self.victim(g1, g2, now))
    }

    /// Both groups are full of live entries: first try one cuckoo move (an entry whose
    /// other group has room moves there, freeing its place); only then evict.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, g1: usize, g2: usize, now: Tick) -> usize {
        for g in [g1, g2] {
            for i in 0..WAYS {
                let e = self.groups[g].0[i];
                let (a, b) = self.groups_of(&e.key());
                let alt = if a == g { b } else { a };
                if let Some(j) = (0..WAYS).find(|&j| !self.groups[alt].0[j].is_live(now)) {
                    if self.groups[alt].0[j].proto != 0 {
                        self.stats.expired += 1;
                    }
                    self.groups[alt].0[j] = e;
                    self.groups[g].0[i] = FlowEntry::default();
                    self.stats.moved += 1;
                    return g * WAYS + i;
                }
            }
        }
        self.victim_slow(g1, g2, now)
    }

    fn victim_slow(&self, g1: usize, g2: usize, now: Tick) -> usize {
        // Rank: 0 = free (empty/expired), 1 = live not established, 2 = live established;
        // ties broken by the sooner expiry.
        let mut best = (g1 * WAYS, (u8::MAX, Tick::MAX));
        for g in [g1, g2] {
            for (i, e) in self.groups[g].0.iter().enumerate() {
                let rank = if !e.is_live(now) {
                    (0, 0)
                } else if e.state == State::Established as u8 {
                    (2, e.expires)
                } else {
                    (1, e.expires)
                };
                if rank < best.1 {
                    best = (g * WAYS + i, rank);
                }
            }
        }
        best.0
    }

    /// A free entry in the less loaded of the two groups (power of two choices), else
    /// the best victim of both.
    #[inline(always)]
    fn victim(&mut self, g1: usize, g2: usize, now: Tick) -> usize {
        let free = |g: usize| {
            let grp = &self.groups[g].0;
            let mut n = 0;
            let mut first = WAYS;
            for (i, e) in grp.iter().enumerate() {
                if !e.is_live(now) {
                    n += 1;
                    first = first.min(i);
                }
            }
            (n, g * WAYS + first)
        };
        let (n1, i1) = free(g1);
        let (n2, i2) = free(g2);
        match (n1, n2) {
            (0, 0) => self.make_room(g1, g2, now),
            _ if n1 >= n2 => i1,
            _ => i2,
        }
    }

    #[inline(always)]
    pub fn entry(&self, idx: usize) -> &FlowEntry {
        &self.groups[idx / WAYS].0[idx % WAYS]
    }

    #[inline(always)]
    pub fn entry_mut(&mut self, idx: usize) -> &mut FlowEntry {
        &mut self.groups[idx / WAYS].0[idx % WAYS]
    }

    /// Stores a new flow at `idx` (from [`find`]'s `Vacant`), counting an eviction when
    /// the entry there is still live.
    #[inline]
    #[allow(clippy::too_many_arguments)] // the entry's fields, each named at the call
    pub fn insert_at(
        &mut self,
        idx: usize,
        k: &FlowKey,
        slot: u16,
        incarnation: u16,
        state: State,
        expires: Tick,
        now: Tick,
    ) {
        let e = self.entry_mut(idx);
        let evicted = e.is_live(now);
        let was_est = evicted && e.state == State::Established as u8;
        *e = FlowEntry {
            addrs: k.addrs(),
            ports: k.ports(),
            proto: k.proto,
            state: state as u8,
            slot,
            incarnation,
            _pad: 0,
            expires,
        };
        self.stats.inserts += 1;
        if evicted {
            self.stats.evictions += 1;
            if was_est {
                self.stats.evicted_established += 1;
            }
        }
    }

    /// Clears expired entries in the next `groups` groups (wrapping). Returns how many.
    pub fn sweep(&mut self, now: Tick, groups: usize) -> usize {
        let mut n = 0;
        for _ in 0..groups.min(self.groups.len()) {
            let g = self.sweep_next;
            self.sweep_next = (g + 1) & self.group_mask;
            for e in self.groups[g].0.iter_mut() {
                if e.proto != 0 && e.expires <= now {
                    *e = FlowEntry::default();
                    n += 1;
                }
            }
        }
        self.stats.expired += n as u64;
        n
    }

    /// Live entries (a full scan: for tests and the control plane, not the hot path).
    pub fn live(&self, now: Tick) -> usize {
        self.iter_live(now).count()
    }

    pub fn iter_live(&self, now: Tick) -> impl Iterator<Item = &FlowEntry> {
        self.groups
            .iter()
            .flat_map(|g| g.0.iter())
            .filter(move |e| e.is_live(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> FlowKey {
        FlowKey {
            saddr: 0x0a00_0000 + i,
            daddr: 0xc0a8_01c8,
            sport: 1024 + (i % 50000) as u16,
            dport: 80,
            proto: 6,
        }
    }

    #[test]
    fn entry_is_24_bytes_and_group_is_three_lines() {
        assert_eq!(ENTRY_BYTES, 24);
        assert_eq!(std::mem::size_of::<Group>(), 192);
        assert_eq!(std::mem::align_of::<Group>(), 64);
    }

    #[test]
    fn insert_then_hit() {
        let mut t = FlowTable::with_seed(1024, [1, 2]);
        let k = key(7);
        let Slot::Vacant(i) = t.find(&k, 0) else {
            panic!("empty table hit")
        };
        t.insert_at(i, &k, 3, 1, State::SynRecv, 100, 0);
        assert_eq!(t.find(&k, 50), Slot::Hit(i));
        assert_eq!(t.entry(i).slot, 3);
        // expired at 100
        assert!(matches!(t.find(&k, 100), Slot::Vacant(_)));
    }

    #[test]
    fn capacity_is_fixed_and_full_table_evicts() {
        let mut t = FlowTable::with_seed(64, [3, 4]);
        let bytes = t.bytes();
        for i in 0..10_000u32 {
            let k = key(i);
            match t.find(&k, 0) {
                Slot::Hit(_) => panic!("distinct keys"),
                Slot::Vacant(idx) => t.insert_at(idx, &k, 0, 0, State::Established, 1000, 0),
            }
        }
        assert_eq!(t.capacity(), 64);
        assert_eq!(t.bytes(), bytes, "no growth");
        assert_eq!(t.live(0), 64);
        assert_eq!(t.stats.inserts, 10_000);
        assert_eq!(t.stats.evictions, 10_000 - 64);
    }

    #[test]
    fn two_choices_hold_a_nearly_full_table() {
        for (cap, load) in [
            (1 << 12, 0.9),
            (1 << 16, 0.9),
            (1 << 16, 0.5),
            (1 << 20, 0.9),
        ] {
            let mut t = FlowTable::with_seed(cap, [11, 13]);
            let n = (cap as f64 * load) as u32;
            for i in 0..n {
                let k = key(i);
                let Slot::Vacant(idx) = t.find(&k, 0) else {
                    panic!("distinct keys")
                };
                t.insert_at(idx, &k, 0, 0, State::Established, 1000, 0);
            }
            let lost = t.stats.evictions as f64 / f64::from(n);
            assert!(
                lost < 0.001,
                "capacity {cap} at {load}: {:.3} % evicted",
                lost * 100.0
            );
            assert_eq!(t.live(0) as u64, u64::from(n) - t.stats.evictions);
        }
    }

    #[test]
    fn eviction_prefers_non_established_then_soonest() {
        let mut t = FlowTable::with_seed(16, [5, 6]); // two groups: every key sees both
        for i in 0..16u32 {
            let k = key(i);
            let Slot::Vacant(idx) = t.find(&k, 0) else {
                panic!()
            };
            let st = if i == 5 {
                State::SynRecv
            } else {
                State::Established
            };
            t.insert_at(idx, &k, 0, 0, st, 1000 + i, 0);
        }
        let newk = key(100);
        let Slot::Vacant(idx) = t.find(&newk, 0) else {
            panic!()
        };
        assert_eq!(
            t.entry(idx).saddr(),
            key(5).saddr,
            "the SYN_RECV entry goes first"
        );
        t.insert_at(idx, &newk, 0, 0, State::SynRecv, 2000, 0);
        let Slot::Vacant(idx) = t.find(&key(101), 0) else {
            panic!()
        };
        // Now all non-established is the new one (expires 2000) -> still preferred.
        assert_eq!(t.entry(idx).saddr(), newk.saddr);
        assert_eq!(t.stats.evicted_established, 0);
    }

    #[test]
    fn sweep_clears_expired_incrementally() {
        let mut t = FlowTable::with_seed(1024, [7, 8]);
        for i in 0..500u32 {
            let k = key(i);
            if let Slot::Vacant(idx) = t.find(&k, 0) {
                t.insert_at(
                    idx,
                    &k,
                    0,
                    0,
                    State::Close,
                    if i % 2 == 0 { 10 } else { 1000 },
                    0,
                );
            }
        }
        let live0 = t.live(0);
        let mut cleared = 0;
        for _ in 0..(1024 / WAYS) {
            cleared += t.sweep(20, 1);
        }
        assert_eq!(t.live(20), live0 - cleared);
        assert_eq!(
            t.live(20),
            t.iter_live(20).filter(|e| e.expires == 1000).count()
        );
        assert!(cleared >= 200, "about half expired, got {cleared}");
    }

    #[test]
    fn seeds_change_placement() {
        let a = FlowTable::with_seed(1 << 16, [1, 1]);
        let b = FlowTable::with_seed(1 << 16, [2, 3]);
        let same = (0..1000)
            .filter(|&i| a.groups_of(&key(i)).0 == b.groups_of(&key(i)).0)
            .count();
        assert!(
            same < 20,
            "placement must depend on the seed ({same}/1000 equal)"
        );
    }
}
