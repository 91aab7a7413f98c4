//! The per-worker flow table.
//!
//! A fixed-capacity, set-associative hash table: the capacity is rounded up to a power
//! of two and split into groups of [`WAYS`] entries (one group = 192 bytes = three cache
//! lines, 64-byte aligned). A key lives only in the group its hash selects, so a lookup
//! reads at most one group: bounded probing, no tombstones, no rehash, no allocation
//! after construction.
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

/// 24 bytes per flow.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct FlowEntry {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub state: u8,
    /// Backend slot in the snapshot, and the slot's incarnation when the flow was made.
    pub slot: u16,
    pub incarnation: u16,
    _pad: u16,
    pub expires: Tick,
}

impl FlowEntry {
    #[inline(always)]
    fn matches(&self, k: &FlowKey) -> bool {
        // Compare as two words + a byte: the compiler keeps this branch-light.
        self.saddr == k.saddr && self.daddr == k.daddr && self.sport == k.sport && self.dport == k.dport
            && self.proto == k.proto
    }
    #[inline(always)]
    pub fn is_live(&self, now: Tick) -> bool {
        self.proto != 0 && self.expires > now
    }
    pub fn key(&self) -> FlowKey {
        FlowKey { saddr: self.saddr, daddr: self.daddr, sport: self.sport, dport: self.dport, proto: self.proto }
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
}

pub struct FlowTable {
    groups: Box<[Group]>,
    group_mask: usize,
    seed: [u64; 2],
    sweep_next: usize,
    pub stats: FlowStats,
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
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
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
        FlowTable { group_mask: groups.len() - 1, groups, seed, sweep_next: 0, stats: FlowStats::default() }
    }

    pub fn capacity(&self) -> usize {
        self.groups.len() * WAYS
    }

    /// Bytes the table occupies (its whole allocation).
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.groups)
    }

    #[inline(always)]
    fn group_of(&self, k: &FlowKey) -> usize {
        let a = (u64::from(k.saddr) << 32) | u64::from(k.daddr);
        let b = (u64::from(k.sport) << 32) | (u64::from(k.dport) << 16) | u64::from(k.proto);
        let h = folded_multiply(a ^ self.seed[0], b ^ self.seed[1]);
        let h = folded_multiply(h, 0x9e37_79b9_7f4a_7c15);
        (h as usize) & self.group_mask
    }

    /// Finds `k`, or the entry an insert of `k` would take: an empty or expired one, else
    /// the victim (soonest to expire, non-ESTABLISHED first).
    #[inline]
    pub fn find(&self, k: &FlowKey, now: Tick) -> Slot {
        let g = self.group_of(k);
        let grp = &self.groups[g].0;
        let mut victim = 0usize;
        // Rank: 0 = free (empty/expired), 1 = live not established, 2 = live established;
        // ties broken by the sooner expiry.
        let mut victim_rank = (u8::MAX, Tick::MAX);
        for (i, e) in grp.iter().enumerate() {
            if e.matches(k) && e.expires > now {
                return Slot::Hit(g * WAYS + i);
            }
            let rank = if !e.is_live(now) {
                (0, 0)
            } else if e.state == State::Established as u8 {
                (2, e.expires)
            } else {
                (1, e.expires)
            };
            if rank < victim_rank {
                victim_rank = rank;
                victim = i;
            }
        }
        Slot::Vacant(g * WAYS + victim)
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
    pub fn insert_at(&mut self, idx: usize, k: &FlowKey, slot: u16, incarnation: u16, state: State, expires: Tick, now: Tick) {
        let e = self.entry_mut(idx);
        let evicted = e.is_live(now);
        let was_est = evicted && e.state == State::Established as u8;
        *e = FlowEntry {
            saddr: k.saddr,
            daddr: k.daddr,
            sport: k.sport,
            dport: k.dport,
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
        self.groups.iter().flat_map(|g| g.0.iter()).filter(move |e| e.is_live(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> FlowKey {
        FlowKey { saddr: 0x0a00_0000 + i, daddr: 0xc0a8_01c8, sport: 1024 + (i % 50000) as u16, dport: 80, proto: 6 }
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
        let Slot::Vacant(i) = t.find(&k, 0) else { panic!("empty table hit") };
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
    fn eviction_prefers_non_established_then_soonest() {
        let mut t = FlowTable::with_seed(8, [5, 6]); // one group
        for i in 0..8u32 {
            let k = key(i);
            let Slot::Vacant(idx) = t.find(&k, 0) else { panic!() };
            let st = if i == 5 { State::SynRecv } else { State::Established };
            t.insert_at(idx, &k, 0, 0, st, 1000 + i, 0);
        }
        let newk = key(100);
        let Slot::Vacant(idx) = t.find(&newk, 0) else { panic!() };
        assert_eq!(t.entry(idx).saddr, key(5).saddr, "the SYN_RECV entry goes first");
        t.insert_at(idx, &newk, 0, 0, State::SynRecv, 2000, 0);
        let Slot::Vacant(idx) = t.find(&key(101), 0) else { panic!() };
        // Now all non-established is the new one (expires 2000) -> still preferred.
        assert_eq!(t.entry(idx).saddr, newk.saddr);
        assert_eq!(t.stats.evicted_established, 0);
    }

    #[test]
    fn sweep_clears_expired_incrementally() {
        let mut t = FlowTable::with_seed(1024, [7, 8]);
        for i in 0..500u32 {
            let k = key(i);
            if let Slot::Vacant(idx) = t.find(&k, 0) {
                t.insert_at(idx, &k, 0, 0, State::Close, if i % 2 == 0 { 10 } else { 1000 }, 0);
            }
        }
        let live0 = t.live(0);
        let mut cleared = 0;
        for _ in 0..(1024 / WAYS) {
            cleared += t.sweep(20, 1);
        }
        assert_eq!(t.live(20), live0 - cleared);
        assert_eq!(t.live(20), t.iter_live(20).filter(|e| e.expires == 1000).count());
        assert!(cleared >= 200, "about half expired, got {cleared}");
    }

    #[test]
    fn seeds_change_placement() {
        let a = FlowTable::with_seed(1 << 16, [1, 1]);
        let b = FlowTable::with_seed(1 << 16, [2, 3]);
        let same = (0..1000).filter(|&i| a.group_of(&key(i)) == b.group_of(&key(i))).count();
        assert!(same < 20, "placement must depend on the seed ({same}/1000 equal)");
    }
}
