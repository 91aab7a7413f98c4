//! The per-worker flow table.
//!
//! A fixed-capacity, set-associative hash table: the capacity is rounded up to a power
//! of two and split into groups of [`WAYS`] entries. A group is 192 bytes, three cache
//! lines, 64-byte aligned: line 0 holds every entry's 16-bit hash tag, protocol, TCP
//! state and expiry; lines 1-2 hold the keys and backends. A lookup reads the tag lines
//! and then only the entry whose tag matches (the layout idea of DPDK's `rte_hash`,
//! which measured faster than our first 24-byte-entry layout at 64k+ flows). A key may live in one of two groups chosen by independent
//! bits of its hash ("two choices"): a lookup reads at most two groups (bounded probing,
//! no tombstones, no rehash, no allocation after construction), and an insert takes a
//! free entry in the first, or in the second when the first is nearly full and the
//! second less loaded (so most hits read one group's line). With one group per key a
//! table at 50 % load already overflows groups and evicts ~2 % of flows (Poisson
//! tail); with two, eviction before ~90 % load is negligible (tested below).
//!
//! - Hash: a folded 64x64->128 multiply of the key words with two random 64-bit seeds
//!   drawn at start (the foldhash / wyhash construction). Clients cannot aim collisions
//!   at a group without knowing the seed.
//! - Expiry: each entry carries its expiry tick. Expired entries are treated as empty by
//!   lookups and reused by inserts (lazy), and [`FlowTable::sweep`] clears a few groups
//!   per call so occupancy figures stay true without a pause.
//! - Full groups: [`FlowTable::lookup_hashed`] says `Full` and the caller decides (the
//!   pipeline's `syn_flood` mode may store nothing); [`FlowTable::make_room_hashed`] and
//!   [`FlowTable::find`] try one cuckoo move, else pick the entry expiring soonest,
//!   preferring entries that are not ESTABLISHED (half-open SYN_RECV floods go first),
//!   and the insert counts the eviction.
use super::conns::ConnRow;
use super::snapshot::route_key;
use super::tcp_state::TcpState;
use super::Tick;

pub const WAYS: usize = 8;

/// The 5-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowKey {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

/// A key as the table stores, hashes and compares it: the addresses and the ports as
/// they are on the wire, loaded little-endian from the packet (bytes 26..34 and 34..38
/// of an untagged IPv4 frame without options), so the hit path takes them from the
/// frame as they are, with no byte swapping. [`FlowKey`] is the same key in host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WireKey {
    /// Source address bytes then destination address bytes, as a little-endian u64.
    pub addrs: u64,
    /// Source port bytes then destination port bytes, as a little-endian u32.
    pub ports: u32,
    pub proto: u8,
}

impl WireKey {
    /// The key of the bytes `addrs` (source and destination address, 8 bytes) and
    /// `ports` (source and destination port, 4 bytes) as they are in the packet.
    #[inline(always)]
    pub fn from_wire(addrs: [u8; 8], ports: [u8; 4], proto: u8) -> WireKey {
        WireKey { addrs: u64::from_le_bytes(addrs), ports: u32::from_le_bytes(ports), proto }
    }
}

impl From<&FlowKey> for WireKey {
    #[inline(always)]
    fn from(k: &FlowKey) -> WireKey {
        let (s, d) = (k.saddr.to_be_bytes(), k.daddr.to_be_bytes());
        let (sp, dp) = (k.sport.to_be_bytes(), k.dport.to_be_bytes());
        WireKey::from_wire(
            [s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3]],
            [sp[0], sp[1], dp[0], dp[1]],
            k.proto,
        )
    }
}

/// A [`WireKey`]'s addresses and ports as 16 bytes of the frame, the way the fast
/// path has them: bytes 26..42 of an untagged IPv4 frame without options, whose first
/// 12 are the key (as [`WireKey::from_wire`] reads them) and whose last 4 (the TCP
/// sequence number's, the UDP length and checksum) are never compared. The protocol is
/// not in it: the fast lookup compares the stored state, which implies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBytes(pub [u8; 16]);

impl KeyBytes {
    /// The key of these bytes for protocol `proto`.
    #[inline(always)]
    pub fn wire(&self, proto: u8) -> WireKey {
        let b = &self.0;
        WireKey::from_wire(
            b[..8].try_into().expect("8 bytes"),
            b[8..12].try_into().expect("4 bytes"),
            proto,
        )
    }
}

impl From<&WireKey> for FlowKey {
    #[inline(always)]
    fn from(w: &WireKey) -> FlowKey {
        let (a, p) = (w.addrs.to_le_bytes(), w.ports.to_le_bytes());
        FlowKey {
            saddr: u32::from_be_bytes([a[0], a[1], a[2], a[3]]),
            daddr: u32::from_be_bytes([a[4], a[5], a[6], a[7]]),
            sport: u16::from_be_bytes([p[0], p[1]]),
            dport: u16::from_be_bytes([p[2], p[3]]),
            proto: w.proto,
        }
    }
}

/// One flow as a value (the table stores it split across a group's lines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowEntry {
    pub key: FlowKey,
    pub state: u8,
    /// Backend slot in the snapshot, and the slot's incarnation when the flow was made.
    pub slot: u16,
    pub incarnation: u16,
    pub expires: Tick,
}

impl FlowEntry {
    pub fn state(&self) -> TcpState {
        TcpState::from_u8(self.state)
    }
}

/// Key (wire order, [`WireKey`]) and backend of one entry: 16 bytes, four to a cache
/// line.
#[derive(Clone, Copy, Default, bytemuck::Zeroable, bytemuck::Pod)]
#[repr(C)]
struct Kv {
    addrs: u64,
    ports: u32,
    /// Slot and incarnation as one [`route_key`] word: the fast path's compare with the
    /// snapshot's route is one load and one compare.
    route: u32,
}

impl Kv {
    #[inline(always)]
    fn slot(&self) -> u16 {
        self.route as u16
    }
    #[inline(always)]
    fn incarnation(&self) -> u16 {
        (self.route >> 16) as u16
    }
}

#[derive(Clone, Copy, Default, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Group {
    // Line 0: what a lookup scans.
    tag: [u16; WAYS],
    expires: [Tick; WAYS],
    state: [u8; WAYS],
    /// IP protocol; 0 marks an empty entry.
    proto: [u8; WAYS],
    // Lines 1-2: read only for a tag match.
    kv: [Kv; WAYS],
}

impl Group {
    #[inline(always)]
    fn live(&self, i: usize, now: Tick) -> bool {
        self.proto[i] != 0 && self.expires[i] > now
    }

    /// Entries that are empty or expired, as a bitmask (bit i = entry i): three SSE2
    /// compares (a lane-by-lane loop was ~45 instructions a group, half a miss's lookup).
    #[inline(always)]
    fn free_lanes(&self, now: Tick) -> u32 {
        let (empty, old) = self.empty_and_old(now);
        empty | old
    }

    /// The live entries and the expired ones (not empty), as bitmasks: the masks of
    /// [`free_lanes`](Self::free_lanes), kept apart (for the sweep, which counts the
    /// first and clears the second).
    #[inline(always)]
    fn live_and_expired(&self, now: Tick) -> (u32, u32) {
        let (empty, old) = self.empty_and_old(now);
        (!(empty | old) & 0xff, old & !empty)
    }

    /// The empty entries (protocol 0) and those whose expiry has passed (empty or not),
    /// as bitmasks: one SSE2 compare each.
    #[inline(always)]
    fn empty_and_old(&self, now: Tick) -> (u32, u32) {
        (crate::mem::zero_u8x8(&self.proto), crate::mem::le_u32x8(&self.expires, now))
    }

    /// The lane that holds `k` (whose hash `h` has its tag in the top 16 bits), live.
    #[inline(always)]
    fn find(&self, h: u64, k: &WireKey, now: Tick) -> Option<usize> {
        let mut m = self.tag_matches(h);
        while m != 0 {
            let i = m.trailing_zeros() as usize & (WAYS - 1); // m < 1 << WAYS
            m &= m - 1;
            if self.holds(i, k) && self.proto[i] == k.proto {
                // A key is in at most one entry; an expired one counts as absent.
                return (self.expires[i] > now).then_some(i);
            }
        }
        None
    }

    /// The lane that holds `k` live in state `state` (a [`TcpState`] byte), for the
    /// fast path; `None` also when the entry is in another state. The stored protocol
    /// is not compared: the state implies it (UDP for [`TcpState::Udp`], TCP for every
    /// other state a live entry has), and an empty lane's state is 0, which no caller
    /// asks for. A TCP and a UDP flow on the same addresses and ports (which share
    /// their groups and tag: the protocol is not hashed, [`mix`]) are told apart by the
    /// state: a lane that holds the addresses and ports in another state is passed
    /// over, and the search goes on to the other tag matches.
    #[inline(always)]
    fn find_in_state(&self, h: u64, k: &KeyBytes, now: Tick, state: u8) -> Option<usize> {
        let m = self.tag_matches(h);
        if m == 0 {
            return None;
        }
        // The first tag match inline (a 16-bit tag rarely matches by chance); any other
        // out of line.
        let i = m.trailing_zeros() as usize & (WAYS - 1); // m < 1 << WAYS
        if self.holds_in_state(i, k, state) {
            return self.unexpired(i, now);
        }
        self.find_in_state_rest(m & (m - 1), k, now, state)
    }

    /// [`find_in_state`](Self::find_in_state) over the tag matches `m` after the first.
    #[cold]
    #[inline(never)]
    fn find_in_state_rest(&self, mut m: u32, k: &KeyBytes, now: Tick, state: u8) -> Option<usize> {
        while m != 0 {
            let i = m.trailing_zeros() as usize & (WAYS - 1);
            m &= m - 1;
            if self.holds_in_state(i, k, state) {
                return self.unexpired(i, now);
            }
        }
        None
    }

    /// Lane `i` holds `k`'s addresses and ports: it is `k`'s entry, or its twin of the
    /// other protocol ([`find`](Self::find) then compares the protocol,
    /// [`find_in_state`](Self::find_in_state) the state).
    #[inline(always)]
    fn holds(&self, i: usize, k: &WireKey) -> bool {
        let kv = &self.kv[i];
        kv.addrs == k.addrs && kv.ports == k.ports
    }

    /// [`holds`](Self::holds) for the key's bytes as the frame has them: one 16-byte
    /// compare of the lane's key and route with them, the route's 4 bytes not compared
    /// (the key stays in a vector register, none of the general ones the hit needs).
    #[inline(always)]
    fn holds_bytes(&self, i: usize, k: &KeyBytes) -> bool {
        crate::mem::eq_first12(bytemuck::cast_ref(&self.kv[i]), &k.0)
    }

    /// Lane `i` holds the key in `state` (live or not: a key of one protocol is in at
    /// most one entry).
    #[inline(always)]
    fn holds_in_state(&self, i: usize, k: &KeyBytes, state: u8) -> bool {
        self.holds_bytes(i, k) && self.state[i] == state
    }

    /// Lane `i` if it has not expired.
    #[inline(always)]
    fn unexpired(&self, i: usize, now: Tick) -> Option<usize> {
        (self.expires[i] > now).then_some(i)
    }

    /// Marks lane `i` empty: protocol 0 (what lookups test) and state 0 (what
    /// [`find_in_state`](Self::find_in_state) tests).
    #[inline(always)]
    fn empty(&mut self, i: usize) {
        self.proto[i] = 0;
        self.state[i] = TcpState::None as u8;
    }

    /// Lanes whose tag equals `tag`, as a bitmask (bit i = entry i).
    #[inline(always)]
    fn tag_matches(&self, h: u64) -> u32 {
        crate::mem::match_top16x8(&self.tag, h)
    }

    /// Stage 2 for a key hashed to `h` whose first group this is: start loading the key
    /// line of the first entry whose tag matches, or (`second`) the second group's tag
    /// line when none does; the lane of that entry, or [`NO_LANE`]. (Two keys of a full
    /// group share a 16-bit tag about once in 2,300 groups: the lookup then still finds
    /// the second, from a line not prefetched.)
    #[inline(always)]
    fn prefetch_entries(&self, h: u64, second: impl FnOnce()) -> u8 {
        let m = self.tag_matches(h);
        if m == 0 {
            second();
            NO_LANE
        } else {
            let i = m.trailing_zeros() as usize & (WAYS - 1); // m < 1 << WAYS
            prefetch_line(&self.kv[i]);
            i as u8
        }
    }
}

/// The flow table as the fast path's loop uses it: the groups' address and mask as
/// values (`mem::View`), so a hit's write to its entry does not make the next packet
/// load them from the table again (12 instructions a hit where the compiler could not
/// tell the writes apart, callgrind). Only hits and prefetches: the table's other
/// fields (counters, the sweep) are not reachable through it.
pub struct HitView<'a> {
    groups: crate::mem::View<'a, Group>,
}

impl HitView<'_> {
    /// [`FlowTable::hashed`].
    #[inline(always)]
    pub fn hashed(&self, h: u64) -> Hashed {
        Hashed::of(h, self.groups.mask())
    }

    /// [`FlowTable::prefetch_entries`], returning the first group's lane whose key
    /// line it started loading ([`NO_LANE`] when no tag there matched): the hint
    /// [`hit_entry`](Self::hit_entry) takes.
    #[inline(always)]
    pub fn prefetch_entries(&self, h: &Hashed) -> u8 {
        let (g1, g2) = h.groups();
        self.groups.wrapped(g1).prefetch_entries(h.h, || self.groups.prefetch(g2))
    }

    /// Stage 2 in the second group, for a key whose first group had no tag match
    /// ([`prefetch_entries`](Self::prefetch_entries) returned [`NO_LANE`] and started
    /// loading the second's tag line): start loading the key line of its first match.
    #[inline(always)]
    pub fn prefetch_second_entries(&self, h: &Hashed) {
        let (_, g2) = h.groups();
        self.groups.wrapped(g2).prefetch_entries(h.h, || {});
    }

    /// The view again, for a shorter time (for [`hit_entry`](Self::hit_entry), which
    /// takes it by value).
    #[inline(always)]
    pub fn reborrow(&mut self) -> HitView<'_> {
        HitView { groups: self.groups.reborrow() }
    }
}

impl<'a> HitView<'a> {
    /// [`FlowTable::hit`] for the fast path, of an entry in state `state` (a
    /// [`TcpState`] byte: the fast path forwards only in the state it expects): the
    /// entry itself, to read and renew in place (no index to turn back into a group).
    /// The key is its bytes as the frame has them, `h` its hash. `None` when the key is
    /// not live or is in another state (its other-protocol twin, in the same groups,
    /// is passed over: [`Group::find_in_state`]).
    ///
    /// `lane`: the first group's lane where stage 2 found the tag
    /// ([`prefetch_entries`](Self::prefetch_entries)), tried before the tag scan (which
    /// it spares the hit), or [`NO_LANE`]. A lane that does not hold the key in `state`
    /// costs one compare, and the scan follows: the answer is the scan's either way.
    #[inline(always)]
    pub fn hit_entry(
        self,
        k: &KeyBytes,
        h: &Hashed,
        now: Tick,
        state: u8,
        lane: u8,
    ) -> Option<Entry<'a>> {
        // The entry holds the group's address as the scan computed it (`locate` then
        // `group_mut` computed it again from the index: five instructions a hit).
        let (g1, g2) = h.groups();
        let mut hint = usize::from(lane); // the first group's only
        let (grp, i) = self.groups.first_mut(g1, g2, |grp| {
            let l = std::mem::replace(&mut hint, WAYS);
            if l < WAYS && grp.holds_in_state(l, k, state) {
                return grp.unexpired(l, now); // the key is in no other lane
            }
            grp.find_in_state(h.h, k, now, state)
        })?;
        Some(Entry { grp, i })
    }
}

/// No lane: [`HitView::prefetch_entries`] found no tag match in the first group.
pub const NO_LANE: u8 = u8::MAX;

/// A live entry found by [`HitView::hit_entry`]: what the fast path reads and renews.
pub struct Entry<'a> {
    grp: &'a mut Group,
    i: usize,
}

impl Entry<'_> {
    /// The backend as one [`route_key`] word.
    #[inline(always)]
    pub fn route_key(&self) -> u32 {
        self.grp.kv[self.i & (WAYS - 1)].route
    }
    /// Renews the expiry, the state unchanged (no count moves).
    #[inline(always)]
    pub fn refresh(&mut self, expires: Tick) {
        self.grp.expires[self.i & (WAYS - 1)] = expires;
    }
}

/// Bytes per flow entry: a group's 192 bytes over its 8 entries.
pub const ENTRY_BYTES: usize = std::mem::size_of::<Group>() / WAYS;

/// What one [`FlowTable::sweep_count`] or [`FlowTable::sweep_visit`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Expired entries cleared.
    pub cleared: usize,
    /// Live entries seen.
    pub live: usize,
    /// The sweep passed the end of the table.
    pub wrapped: bool,
}

/// Where a key is, or where it would go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A live entry with this key, at this index.
    Hit(usize),
    /// No live entry; an insert would use this index.
    Vacant(usize),
    /// No live entry, and both candidate groups are full of live entries (only from
    /// [`FlowTable::lookup_hashed`]; [`FlowTable::find`] makes room instead).
    Full,
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
    groups: crate::mem::Table<Group>,
    group_mask: usize,
    seed: [u64; 2],
    sweep_next: usize,
    /// Make-room calls left that skip the cuckoo search: set after a search found no
    /// move (the table is full around there, as under a flood), so a full table does not
    /// pay 16 random cache misses per new flow for nothing.
    cuckoo_backoff: u32,
    /// Whether the table is bigger than a core's L2 cache, so that [`prefetch_entries`]
    /// pays: a smaller table's key lines are a cache hit anyway.
    deep_prefetch: bool,
    pub stats: FlowStats,
    /// This worker's connection counts per backend, kept as entries change.
    conns: ConnRow,
}

/// A core's L2 cache, at least (1 MiB or more on current x86 server cores; 256 KiB on
/// older ones): a table at most this big is served from the cache.
const L2_BYTES: usize = 256 << 10;

/// Free lanes the first group needs to take a new key although the second has more: a
/// key goes to its first group unless that one is nearly full and the second is less
/// loaded. At half load ~5 % of keys then live in their second group (~31 % when the
/// less loaded group always wins), so a hit reads one tag line, and the second group's
/// is prefetched only for a miss; at 90 % load under 0.1 % of the keys are evicted
/// (tested; with 2 free lanes 0.11 % of a 64k table's keys were, with pure first fit
/// 0.33 %).
const FIRST_FIT_MIN: u32 = 3;
/// Make-room calls that evict directly after a failed cuckoo search.
const CUCKOO_BACKOFF: u32 = 64;

/// Most groups a table may have: the hash's bits are split as g1 = bits 0..24,
/// g2 = bits 24..48, tag = bits 48..64, so groups must fit in 24 bits.
pub const MAX_GROUPS: usize = 1 << 24;
/// Largest capacity (flows per worker).
pub const MAX_CAPACITY: usize = MAX_GROUPS * WAYS;

/// The hashed form of a key: its two groups and its tag ([`FlowTable::hashed`] of the
/// hash the first prefetch stage computed once per packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hashed {
    // Group indexes below MAX_GROUPS (2^24): u32 keeps a burst's hints small.
    g1: u32,
    g2: u32,
    /// The hash: its top 16 bits are the tag (a lookup broadcasts them from here).
    h: u64,
}

impl Hashed {
    /// The groups and tag of a key whose 64-bit hash is `h`, in a table of `mask` + 1
    /// groups.
    #[inline(always)]
    fn of(h: u64, mask: usize) -> Hashed {
        let g1 = (h as usize) & mask;
        let g2 = (g1 ^ ((h >> 24) as usize | 1)) & mask;
        Hashed { g1: g1 as u32, g2: g2 as u32, h }
    }

    /// An index below `n`, uniform and fixed for the key (and the table's seed): the
    /// backend of a flow routed without a table entry. The hash's top 32 bits by
    /// multiply-shift (no division, no second hash: a flood's SYNs have this one from
    /// the burst's stage 1). Those bits are the tag and the high hash bits, not the
    /// group indexes (its low bits), so which keys find their groups full says nothing
    /// about their backend.
    #[inline(always)]
    pub fn choose(&self, n: usize) -> usize {
        (((self.h >> 32) * n as u64) >> 32) as usize
    }

    /// The key's tag: the top 16 bits of its hash.
    #[inline(always)]
    fn tag(&self) -> u16 {
        (self.h >> 48) as u16
    }

    #[inline(always)]
    fn groups(&self) -> (usize, usize) {
        (self.g1 as usize, self.g2 as usize)
    }
}

#[inline(always)]
fn prefetch_line<T>(p: &T) {
    crate::mem::prefetch(p as *const T as *const u8);
}

#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// A 64-bit hash of the key's words under `seed`: a folded multiply of the two seeded
/// words (wyhash's `mum`), folded again with a constant. (One multiply alone is cheaper
/// by four instructions but leaves sequential keys clustered: 1.5 % of a 90 %-full
/// table evicted in the test below, against none.) The protocol is not hashed (three
/// instructions a packet): a TCP flow and a UDP flow on the same addresses and ports
/// share their groups and tag, and a lookup tells them apart by the protocol
/// ([`Group::find`]) or the state ([`Group::find_in_state`]).
#[inline(always)]
fn mix(k: &WireKey, seed: [u64; 2]) -> u64 {
    folded_multiply(
        folded_multiply(k.addrs ^ seed[0], u64::from(k.ports) ^ seed[1]),
        0x9e37_79b9_7f4a_7c15,
    )
}

impl FlowTable {
    /// A table for at least `capacity` flows (rounded up to a power of two, min 16, max
    /// [`MAX_CAPACITY`]), with random hash seeds.
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
        // Top bit set: the ports word (40 bits) XOR s1 is never 0, which would make
        // the product 0 for every address.
        let s1 = u64::from_le_bytes(seed[8..].try_into().unwrap()) | 1 | (1 << 63);
        Self::with_seed(capacity, [s0, s1])
    }

    pub fn with_seed(capacity: usize, seed: [u64; 2]) -> Self {
        let entries = capacity.clamp(2 * WAYS, MAX_CAPACITY).next_power_of_two();
        // An anonymous mapping of untouched zero pages (mem::Table): resident memory
        // grows with use, not with capacity, and the pages may be huge (TLB misses
        // dominate random lookups in a big table otherwise).
        let groups = crate::mem::Table::<Group>::zeroed(entries / WAYS);
        FlowTable {
            group_mask: groups.len() - 1,
            seed,
            sweep_next: 0,
            cuckoo_backoff: 0,
            deep_prefetch: groups.len() * std::mem::size_of::<Group>() > L2_BYTES,
            groups,
            stats: FlowStats::default(),
            conns: ConnRow::private(),
        }
    }

    /// The table with stage 2 run ahead ([`deep_prefetch`](Self::deep_prefetch)) or not,
    /// whatever its size: for tests of the fast path's big-table loop on a small table,
    /// whose keys fill both their groups.
    #[doc(hidden)]
    pub fn with_deep_prefetch(mut self, on: bool) -> Self {
        self.deep_prefetch = on;
        self
    }

    /// The table, keeping its connection counts in `row` (a worker's row of the counts
    /// all workers share) instead of a private one.
    pub fn with_conns(mut self, row: ConnRow) -> Self {
        self.conns = row;
        self
    }

    /// The connection counts this table keeps (its row, and every worker's through it).
    #[inline(always)]
    pub fn conns(&self) -> &ConnRow {
        &self.conns
    }

    /// Group `g` of the table, `g` wrapped into it (no bounds check; see
    /// [`crate::mem::Table::wrapped`]): every group index here is already below the
    /// group count, which is a power of two.
    #[inline(always)]
    fn group(&self, g: usize) -> &Group {
        self.groups.wrapped(g)
    }

    #[inline(always)]
    fn group_mut(&mut self, g: usize) -> &mut Group {
        self.groups.wrapped_mut(g)
    }

    /// Stops counting the entry at `idx` (being cleared, overwritten or rebound). Its
    /// place must hold an entry (proto != 0).
    #[inline]
    fn uncount(&self, idx: usize) {
        let grp = self.group(idx / WAYS);
        let (i, kv) = (idx % WAYS, &grp.kv[idx % WAYS]);
        self.conns.sub(kv.slot(), kv.incarnation(), TcpState::from_u8(grp.state[i]).is_active());
    }

    pub fn capacity(&self) -> usize {
        self.groups.len() * WAYS
    }

    /// Bytes the table occupies (its whole allocation).
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.groups)
    }

    #[inline(always)]
    pub fn hash(&self, k: &FlowKey) -> Hashed {
        self.hash_wire(&k.into())
    }

    /// The groups and tag of a key: g1 from the hash's low bits, g2 = g1 XOR an odd
    /// number from bits 24.. (so never g1; as cuckoo filters pick the other bucket),
    /// the tag from the top 16 bits.
    #[inline(always)]
    pub fn hash_wire(&self, k: &WireKey) -> Hashed {
        self.hashed(self.hash_bits(k))
    }

    /// The 64-bit hash of `k` that [`hashed`](Self::hashed) turns into groups and tag.
    #[inline(always)]
    pub fn hash_bits(&self, k: &WireKey) -> u64 {
        mix(k, self.seed)
    }

    /// The groups and tag of a key whose [`hash_bits`](Self::hash_bits) are `h`.
    #[inline(always)]
    pub fn hashed(&self, h: u64) -> Hashed {
        Hashed::of(h, self.group_mask)
    }

    /// Whether a burst's stage 2 ([`prefetch_entries`](Self::prefetch_entries)) pays:
    /// the table is bigger than the L2 cache. In a smaller one the entry lines are cache
    /// hits when a hit reads them, and the prefetches would only fill the core's
    /// line-fill buffers.
    #[inline(always)]
    pub fn deep_prefetch(&self) -> bool {
        self.deep_prefetch
    }

    /// Stage 1 of a burst: hash `k` and start loading its first group's tag line, and
    /// the second's too when `miss` (a SYN, FIN or RST: under a flood a miss, which
    /// reads both groups). A live key is in its first group but for a few percent
    /// ([`FIRST_FIT_MIN`]); stage 2 starts the second's line for those.
    #[inline(always)]
    pub fn prefetch(&self, k: &WireKey, miss: bool) -> Hashed {
        let h = self.hash_wire(k);
        self.prefetch_groups(&h, miss);
        h
    }

    /// [`prefetch`](Self::prefetch) of a key already hashed.
    #[inline(always)]
    pub fn prefetch_groups(&self, h: &Hashed, miss: bool) {
        let (g1, g2) = h.groups();
        self.groups.prefetch(g1);
        if miss {
            self.groups.prefetch(g2);
        }
    }

    /// Stage 2 of a burst (after stage 1 for every packet): start loading the key lines
    /// of the entries in the first group whose tag matches (a 16-bit tag rarely matches
    /// by chance, so a match is almost always the flow), or the second group's tag line
    /// when none does. Only worth it in a table bigger than the L2 cache
    /// ([`deep_prefetch`](Self::deep_prefetch)).
    #[inline(always)]
    pub fn prefetch_entries(&self, h: &Hashed) {
        let (g1, g2) = h.groups();
        self.group(g1).prefetch_entries(h.h, || self.groups.prefetch(g2));
    }

    /// The lane of group `g` that holds `k`, live.
    #[inline(always)]
    fn scan(&self, g: usize, h: u64, k: &WireKey, now: Tick) -> Option<usize> {
        self.group(g).find(h, k, now)
    }

    /// Finds `k`, or the entry an insert of `k` would take: an empty or expired one in
    /// its first group or its second ([`lookup_hashed`](Self::lookup_hashed)), else
    /// room made by one cuckoo move, else the victim (non-ESTABLISHED first, then
    /// soonest to expire). `&mut` because making
    /// room may move an entry to its other group, which lookups also check, so no flow
    /// is lost by it.
    #[inline]
    pub fn find(&mut self, k: &FlowKey, now: Tick) -> Lookup {
        let h = self.hash(k);
        self.find_hashed(k, &h, now)
    }

    /// [`find`] with the hash from [`prefetch`] (it must be `self.hash(k)`): the lookup,
    /// and room made when it says `Full`.
    #[inline]
    pub fn find_hashed(&mut self, k: &FlowKey, h: &Hashed, now: Tick) -> Lookup {
        match self.lookup_hashed(&k.into(), h, now) {
            Lookup::Full => Lookup::Vacant(self.make_room_hashed(h, now)),
            found => found,
        }
    }

    /// Where `k` lives, if it is live: the lookup of the hit path, which reads nothing
    /// else (no free entry is looked for; a miss goes on to the full lookup).
    #[inline(always)]
    pub fn hit(&self, k: &WireKey, h: &Hashed, now: Tick) -> Option<usize> {
        self.locate(k, h, now).map(|(g, i)| g * WAYS + i)
    }

    /// The table for the fast path's lookups ([`HitView::hit_entry`]).
    #[inline(always)]
    pub fn hit_view(&mut self) -> HitView<'_> {
        HitView { groups: self.groups.view() }
    }

    /// The group and lane of `k`'s live entry: its first group, else its second.
    #[inline(always)]
    fn locate(&self, k: &WireKey, h: &Hashed, now: Tick) -> Option<(usize, usize)> {
        debug_assert_eq!(*h, self.hash_wire(k));
        let (g1, g2) = h.groups();
        match self.scan(g1, h.h, k, now) {
            Some(i) => Some((g1, i)),
            None => self.scan(g2, h.h, k, now).map(|i| (g2, i)),
        }
    }

    /// The lookup alone: `Hit`, `Vacant` with a free (empty or expired) entry in the
    /// first group, or in the second when the first is nearly full and the second less
    /// loaded ([`FIRST_FIT_MIN`]), or `Full` when both
    /// groups hold only live entries; then nothing is moved or chosen, and a caller
    /// that wants the entry anyway calls [`make_room_hashed`].
    #[inline(always)]
    pub fn lookup_hashed(&self, k: &WireKey, h: &Hashed, now: Tick) -> Lookup {
        if let Some(i) = self.hit(k, h, now) {
            return Lookup::Hit(i);
        }
        let (g1, g2) = h.groups();
        let (f1, f2) = (self.group(g1).free_lanes(now), self.group(g2).free_lanes(now));
        match (f1, f2) {
            (0, 0) => Lookup::Full,
            _ if f1.count_ones() >= FIRST_FIT_MIN.min(f2.count_ones()) => {
                Lookup::Vacant(g1 * WAYS + f1.trailing_zeros() as usize)
            }
            _ => Lookup::Vacant(g2 * WAYS + f2.trailing_zeros() as usize),
        }
    }

    /// Room for a key whose groups are both full ([`lookup_hashed`] said `Full`): one
    /// cuckoo move if an entry there can go to its other group, else the eviction
    /// victim. Returns the entry to insert at.
    #[inline]
    pub fn make_room_hashed(&mut self, h: &Hashed, now: Tick) -> usize {
        let (g1, g2) = h.groups();
        self.make_room(g1, g2, now)
    }

    /// Both groups are full of live entries: first try one cuckoo move (an entry whose
    /// other group has room moves there, freeing its place); only then evict.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, g1: usize, g2: usize, now: Tick) -> usize {
        if self.cuckoo_backoff > 0 {
            self.cuckoo_backoff -= 1;
            return self.evict_victim(g1, g2);
        }
        for g in [g1, g2] {
            for i in 0..WAYS {
                let e = self.get(g * WAYS + i);
                let h = self.hash(&e.key);
                let (h1, h2) = h.groups();
                let alt = if h1 == g { h2 } else { h1 };
                if let Some(j) = (0..WAYS).find(|&j| !self.group(alt).live(j, now)) {
                    if self.group(alt).proto[j] != 0 {
                        self.stats.expired += 1;
                        self.uncount(alt * WAYS + j);
                    }
                    self.put(alt * WAYS + j, h.tag(), &e);
                    self.group_mut(g).empty(i);
                    self.stats.moved += 1;
                    return g * WAYS + i;
                }
            }
        }
        self.cuckoo_backoff = CUCKOO_BACKOFF;
        self.evict_victim(g1, g2)
    }

    /// The entry to evict from two full groups: not ESTABLISHED first, then the one
    /// expiring soonest, ties to the lower index. Branch-free and shallow: each entry
    /// becomes one 32-bit key (established bit over the expiry, saturated at 2^31 ticks
    /// = 6.8 years), a tree of minimums finds the least key in four steps, and the
    /// victim is the first entry holding it. (A tuple compare per entry mispredicted
    /// about half the time under a flood and made this 17 % of a worker's cycles; a
    /// running minimum is a 16-step dependency chain.)
    #[inline]
    fn evict_victim(&self, g1: usize, g2: usize) -> usize {
        let mut keys = [0u32; 2 * WAYS];
        for (half, g) in [g1, g2].into_iter().enumerate() {
            let grp = self.group(g);
            for i in 0..WAYS {
                let est = u32::from(grp.state[i] == TcpState::Established as u8);
                keys[half * WAYS + i] = (est << 31) | grp.expires[i].min(0x7fff_ffff);
            }
        }
        let mut m = keys;
        let mut w = 2 * WAYS;
        while w > 1 {
            w /= 2;
            for i in 0..w {
                m[i] = m[i].min(m[i + w]);
            }
        }
        let mut at = 0u32;
        for (i, &k) in keys.iter().enumerate() {
            at |= u32::from(k == m[0]) << i;
        }
        let lane = at.trailing_zeros() as usize; // m[0] is one of the keys: at != 0
        let g = if lane < WAYS { g1 } else { g2 };
        g * WAYS + lane % WAYS
    }

    /// Is the entry at `idx` live and ESTABLISHED (an insert there would evict it)?
    #[inline]
    pub fn is_established(&self, idx: usize, now: Tick) -> bool {
        let grp = self.group(idx / WAYS);
        grp.live(idx % WAYS, now) && grp.state[idx % WAYS] == TcpState::Established as u8
    }

    /// The entry at `idx` as a value.
    #[inline(always)]
    pub fn get(&self, idx: usize) -> FlowEntry {
        let (g, i) = (idx / WAYS, idx % WAYS);
        let grp = self.group(g);
        let kv = &grp.kv[i];
        FlowEntry {
            key: (&WireKey { addrs: kv.addrs, ports: kv.ports, proto: grp.proto[i] }).into(),
            state: grp.state[i],
            slot: kv.slot(),
            incarnation: kv.incarnation(),
            expires: grp.expires[i],
        }
    }

    #[inline(always)]
    fn put(&mut self, idx: usize, tag: u16, e: &FlowEntry) {
        let (g, i) = (idx / WAYS, idx % WAYS);
        let grp = self.group_mut(g);
        grp.tag[i] = tag;
        grp.proto[i] = e.key.proto;
        grp.state[i] = e.state;
        grp.expires[i] = e.expires;
        let w = WireKey::from(&e.key);
        grp.kv[i] = Kv { addrs: w.addrs, ports: w.ports, route: route_key(e.slot, e.incarnation) };
    }

    /// Updates the TCP state and expiry of the live entry at `idx`.
    #[inline(always)]
    pub fn touch(&mut self, idx: usize, state: TcpState, expires: Tick) {
        let grp = self.group_mut(idx / WAYS);
        let i = idx % WAYS;
        // Active = ESTABLISHED (TcpState::is_active), compared as bytes: this is the hit.
        const EST: u8 = TcpState::Established as u8;
        let was = grp.state[i] == EST;
        grp.state[i] = state as u8;
        grp.expires[i] = expires;
        if was != (state as u8 == EST) {
            // Into or out of ESTABLISHED: IPVS moves the connection between its
            // server's active and inactive counts (`set_tcp_state`).
            let kv = grp.kv[i];
            self.conns.sub(kv.slot(), kv.incarnation(), was);
            self.conns.add(kv.slot(), kv.incarnation(), !was);
        }
    }

    /// Removes the entry at `idx` (its backend is gone and its policy is `expire`).
    #[inline]
    pub fn remove(&mut self, idx: usize) {
        if self.group(idx / WAYS).proto[idx % WAYS] != 0 {
            self.uncount(idx);
        }
        self.group_mut(idx / WAYS).empty(idx % WAYS);
    }

    /// Points the live entry at `idx` to another backend (a rescheduled flow).
    #[inline(always)]
    pub fn rebind(&mut self, idx: usize, slot: u16, incarnation: u16) {
        self.uncount(idx);
        let grp = self.group_mut(idx / WAYS);
        let active = TcpState::from_u8(grp.state[idx % WAYS]).is_active();
        grp.kv[idx % WAYS].route = route_key(slot, incarnation);
        self.conns.add(slot, incarnation, active);
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
        state: TcpState,
        expires: Tick,
        now: Tick,
    ) {
        let h = self.hash(k);
        self.insert_hashed(idx, k, &h, slot, incarnation, state, expires, now)
    }

    /// [`insert_at`] with the key's hash from [`prefetch`] or [`hash`] (no rehash).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn insert_hashed(
        &mut self,
        idx: usize,
        k: &FlowKey,
        h: &Hashed,
        slot: u16,
        incarnation: u16,
        state: TcpState,
        expires: Tick,
        now: Tick,
    ) {
        debug_assert_eq!(*h, self.hash(k));
        let grp = self.group(idx / WAYS);
        let i = idx % WAYS;
        let (live, established, occupied) =
            (grp.live(i, now), grp.state[i] == TcpState::Established as u8, grp.proto[i] != 0);
        if live {
            self.stats.evictions += 1;
            if established {
                self.stats.evicted_established += 1;
            }
        }
        if occupied {
            self.uncount(idx); // evicted, or expired and not yet swept
        }
        self.conns.add(slot, incarnation, state.is_active());
        self.put(
            idx,
            h.tag(),
            &FlowEntry { key: *k, state: state as u8, slot, incarnation, expires },
        );
        self.stats.inserts += 1;
    }

    /// Clears expired entries in the next `groups` groups (wrapping). Returns how many.
    pub fn sweep(&mut self, now: Tick, groups: usize) -> usize {
        self.sweep_count(now, groups).cleared
    }

    /// [`sweep`], also calling `visit` with every live entry of the swept groups. Its
    /// counts (`live` summed until a `wrapped` one is a complete census of the table)
    /// are [`sweep_count`]'s.
    pub fn sweep_visit(
        &mut self,
        now: Tick,
        groups: usize,
        visit: impl FnMut(&FlowEntry),
    ) -> Swept {
        self.sweep_groups::<true>(now, groups, visit)
    }

    /// [`sweep`] for a caller that only counts live entries (the census without a
    /// dump or persistence): no entry is read out.
    pub fn sweep_count(&mut self, now: Tick, groups: usize) -> Swept {
        self.sweep_groups::<false>(now, groups, |_| {})
    }

    #[inline]
    fn sweep_groups<const VISIT: bool>(
        &mut self,
        now: Tick,
        groups: usize,
        mut visit: impl FnMut(&FlowEntry),
    ) -> Swept {
        let mut s = Swept::default();
        for _ in 0..groups.min(self.groups.len()) {
            let g = self.sweep_next;
            self.sweep_next = (g + 1) & self.group_mask;
            s.wrapped |= self.sweep_next == 0;
            // The group's live and expired entries as bitmasks (SSE2 compares: a branch
            // on each lane's protocol and expiry mispredicted about every other lane).
            let (mut live, mut expired) = self.group(g).live_and_expired(now);
            s.live += live.count_ones() as usize;
            while VISIT && live != 0 {
                let i = live.trailing_zeros() as usize;
                live &= live - 1;
                visit(&self.get(g * WAYS + i));
            }
            while expired != 0 {
                let i = expired.trailing_zeros() as usize & (WAYS - 1); // expired < 1 << WAYS
                expired &= expired - 1;
                self.uncount(g * WAYS + i);
                self.group_mut(g).empty(i);
                s.cleared += 1;
            }
        }
        self.stats.expired += s.cleared as u64;
        s
    }

    /// Live entries (a full scan: for tests and the control plane, not the hot path).
    pub fn live(&self, now: Tick) -> usize {
        self.iter_live(now).count()
    }

    pub fn iter_live(&self, now: Tick) -> impl Iterator<Item = FlowEntry> + '_ {
        (0..self.capacity())
            .filter(move |&i| self.group(i / WAYS).live(i % WAYS, now))
            .map(move |i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `w`'s addresses and ports as the frame has them (and 4 bytes after them that a
    /// lookup must not compare).
    fn key_bytes(w: &WireKey) -> KeyBytes {
        let mut b = [0xa5; 16];
        b[..8].copy_from_slice(&w.addrs.to_le_bytes());
        b[8..12].copy_from_slice(&w.ports.to_le_bytes());
        let k = KeyBytes(b);
        assert_eq!(k.wire(w.proto), *w);
        k
    }

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
    fn wire_key_is_the_packet_bytes_and_converts_back() {
        let k =
            FlowKey { saddr: 0x0a01_0203, daddr: 0xc0a8_01c8, sport: 0x1234, dport: 80, proto: 6 };
        let bytes = [10, 1, 2, 3, 192, 168, 1, 200];
        let w = WireKey::from_wire(bytes, [0x12, 0x34, 0, 80], 6);
        assert_eq!(WireKey::from(&k), w);
        assert_eq!(FlowKey::from(&w), k);
        // The table hashes and finds a key the same way from either form.
        let mut t = FlowTable::with_seed(64, [3, 5]);
        assert_eq!(t.hash(&k), t.hash_wire(&w));
        let Lookup::Vacant(i) = t.find(&k, 0) else { panic!() };
        t.insert_at(i, &k, 1, 1, TcpState::Established, 100, 0);
        assert_eq!(t.hit(&w, &t.hash_wire(&w), 1), Some(i));
        assert_eq!(t.get(i).key, k);
        let est = TcpState::Established as u8;
        let hw = t.hash_wire(&w);
        assert!(t
            .hit_view()
            .hit_entry(&key_bytes(&w), &hw, 1, TcpState::Udp as u8, NO_LANE)
            .is_none());
        let stored = t.get(i);
        let mut e = t.hit_view().hit_entry(&key_bytes(&w), &hw, 1, est, NO_LANE).expect("live");
        assert_eq!(
            (stored.state, (stored.slot, stored.incarnation), e.route_key()),
            (TcpState::Established as u8, (1, 1), route_key(1, 1))
        );
        e.refresh(200);
        assert_eq!(t.get(i).expires, 200);
        assert_eq!(t.hit(&w, &t.hash_wire(&w), 150), Some(i));
        // Stage 2's hint of the entry's own lane: live until its expiry, as unhinted.
        let lane = (i % WAYS) as u8;
        for now in [199, 200] {
            let hinted = t.hit_view().hit_entry(&key_bytes(&w), &hw, now, est, lane).is_some();
            let scanned = t.hit_view().hit_entry(&key_bytes(&w), &hw, now, est, NO_LANE).is_some();
            assert_eq!((hinted, scanned), (now < 200, now < 200), "at {now}");
        }
    }

    #[test]
    fn the_fast_lookup_takes_the_state_for_the_protocol_and_skips_emptied_lanes() {
        let (est, udp) = (TcpState::Established as u8, TcpState::Udp as u8);
        let mut t = FlowTable::with_seed(64, [3, 5]);
        let tcp = key(7);
        let udp_twin = FlowKey { proto: 17, ..tcp }; // same addresses and ports

        // Whatever lane stage 2 hints (none, the entry's, its twin's, an empty one's),
        // the same answer: a hint only says where to look first.
        let hit = |t: &mut FlowTable, k: &FlowKey, st: u8| {
            let w = WireKey::from(k);
            let h = t.hash_wire(&w);
            let found = |t: &mut FlowTable, lane: u8| {
                t.hit_view()
                    .hit_entry(&key_bytes(&w), &h, 1, st, lane)
                    .map(|e| e.route_key() as u16)
            };
            let first = found(t, NO_LANE);
            for lane in 0..WAYS as u8 {
                assert_eq!(found(t, lane), first, "{k:?} in state {st}, lane {lane} hinted");
            }
            first
        };
        // The TCP flow alone: found in its state, not in UDP's.
        let Lookup::Vacant(i) = t.find(&tcp, 0) else { panic!() };
        t.insert_at(i, &tcp, 1, 1, TcpState::Established, 100, 0);
        assert_eq!((hit(&mut t, &tcp, est), hit(&mut t, &tcp, udp)), (Some(1), None));
        // Its UDP twin beside it, in the same groups under the same tag (the protocol is
        // not hashed): each state finds its own entry, whichever lane comes first.
        let Lookup::Vacant(i) = t.find(&udp_twin, 0) else { panic!() };
        t.insert_at(i, &udp_twin, 2, 1, TcpState::Udp, 100, 0);
        assert_eq!(t.hash_wire(&WireKey::from(&tcp)), t.hash_wire(&WireKey::from(&udp_twin)));
        assert_eq!((hit(&mut t, &tcp, est), hit(&mut t, &udp_twin, udp)), (Some(1), Some(2)));
        // A removed entry keeps its key and expiry but not its state: not found.
        let Lookup::Hit(i) = t.find(&tcp, 1) else { panic!() };
        t.remove(i);
        assert_eq!((hit(&mut t, &tcp, est), hit(&mut t, &udp_twin, udp)), (None, Some(2)));
    }

    #[test]
    fn the_fast_lookup_looks_past_a_tag_collision() {
        let est = TcpState::Established as u8;
        let k = WireKey::from(&key(1));
        let other = WireKey::from(&key(2));
        let tag = 0xbeefu16;
        for (first, second) in [(2, 5), (0, 7), (6, 1)] {
            let mut g = Group::default();
            for (lane, w) in [(first, other), (second, k)] {
                g.tag[lane] = tag;
                g.kv[lane] = Kv { addrs: w.addrs, ports: w.ports, route: route_key(3, 1) };
                (g.proto[lane], g.state[lane], g.expires[lane]) = (6, est, 100);
            }
            let h = u64::from(tag) << 48;
            // The lower lane's key differs: the match comes from the out-of-line rest
            // when it is the higher lane.
            assert_eq!(
                g.find_in_state(h, &key_bytes(&k), 1, est),
                Some(second),
                "lanes {first}, {second}"
            );
            assert_eq!(g.find_in_state(h, &key_bytes(&other), 1, est), Some(first));
            assert_eq!(g.find_in_state(h, &key_bytes(&k), 1, TcpState::Udp as u8), None);
            assert_eq!(g.find_in_state(h, &key_bytes(&k), 100, est), None, "expired");
        }
    }

    #[test]
    fn second_group_is_never_the_first() {
        let t = FlowTable::with_seed(16, [7, 9]); // two groups
        for i in 0..1000 {
            let h = t.hash(&key(i));
            assert_ne!(h.g1, h.g2);
        }
    }

    #[test]
    fn entry_is_24_bytes_and_group_is_three_lines() {
        assert_eq!(ENTRY_BYTES, 24);
        assert_eq!(std::mem::size_of::<Group>(), 192);
        assert_eq!(std::mem::align_of::<Group>(), 64);
        assert_eq!(std::mem::offset_of!(Group, kv), 64, "tags, state and expiry fill line 0");
    }

    #[test]
    fn large_table_is_not_resident_until_used() {
        fn rss_kib() -> u64 {
            let s = std::fs::read_to_string("/proc/self/status").unwrap();
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap()
        }
        let before = rss_kib();
        let t = FlowTable::with_seed(1 << 22, [1, 2]); // 96 MiB of entries
        assert_eq!(t.bytes(), 96 << 20);
        let grown = rss_kib().saturating_sub(before);
        assert!(grown < 16 << 10, "an empty table made {grown} KiB resident");
    }

    #[test]
    fn tag_match_never_misses() {
        let mut g = Group::default();
        // Exhaustive over a tag's neighbourhood, including borrow-prone values.
        for base in [0u16, 1, 0x7fff, 0x8000, 0xffff, 0x1234] {
            for lane in 0..WAYS {
                for (i, t) in g.tag.iter_mut().enumerate() {
                    *t = base.wrapping_add(i as u16 + 1);
                }
                g.tag[lane] = base;
                // The tag in the hash's top 16 bits; the rest is ignored.
                let m = g.tag_matches(u64::from(base) << 48 | 0x0000_a5a5_5a5a_ffff);
                assert!(m & (1 << lane) != 0, "lane {lane} missed for tag {base:#x}");
                let exact = (0..WAYS).filter(|&i| g.tag[i] == base).fold(0u32, |a, i| a | 1 << i);
                assert_eq!(m & exact, exact);
            }
        }
    }

    #[test]
    fn insert_then_hit() {
        let mut t = FlowTable::with_seed(1024, [1, 2]);
        let k = key(7);
        let Lookup::Vacant(i) = t.find(&k, 0) else { panic!("empty table hit") };
        t.insert_at(i, &k, 3, 1, TcpState::SynRecv, 100, 0);
        assert_eq!(t.find(&k, 50), Lookup::Hit(i));
        assert_eq!(t.get(i).slot, 3);
        // expired at 100
        assert!(matches!(t.find(&k, 100), Lookup::Vacant(_)));
    }

    #[test]
    fn capacity_is_fixed_and_full_table_evicts() {
        let mut t = FlowTable::with_seed(64, [3, 4]);
        let bytes = t.bytes();
        for i in 0..10_000u32 {
            let k = key(i);
            match t.find(&k, 0) {
                Lookup::Vacant(idx) => t.insert_at(idx, &k, 0, 0, TcpState::Established, 1000, 0),
                s => panic!("distinct keys, and find never says Full: {s:?}"),
            }
        }
        assert_eq!(t.capacity(), 64);
        assert_eq!(t.bytes(), bytes, "no growth");
        assert_eq!(t.live(0), 64);
        assert_eq!(t.stats.inserts, 10_000);
        assert_eq!(t.stats.evictions, 10_000 - 64);
    }

    #[test]
    fn most_keys_live_in_their_first_group() {
        for cap in [1 << 11, 1 << 17] {
            let mut t = FlowTable::with_seed(cap, [11, 13]);
            let n = cap as u32 / 2;
            for i in 0..n {
                let k = key(i);
                let Lookup::Vacant(idx) = t.find(&k, 0) else { panic!("distinct keys") };
                t.insert_at(idx, &k, 0, 0, TcpState::Established, 1000, 0);
            }
            let second = (0..n)
                .filter(|&i| {
                    let k = key(i);
                    let h = t.hash(&k);
                    t.hit(&(&k).into(), &h, 0).expect("inserted") / WAYS != h.g1 as usize
                })
                .count();
            let share = second as f64 / f64::from(n);
            assert!(share < 0.08, "capacity {cap} at half load: {:.2} % in g2", share * 100.0);
        }
    }

    #[test]
    fn two_choices_hold_a_nearly_full_table() {
        for (cap, load) in [(1 << 12, 0.9), (1 << 16, 0.9), (1 << 16, 0.5), (1 << 20, 0.9)] {
            let mut t = FlowTable::with_seed(cap, [11, 13]);
            let n = (cap as f64 * load) as u32;
            for i in 0..n {
                let k = key(i);
                let Lookup::Vacant(idx) = t.find(&k, 0) else { panic!("distinct keys") };
                t.insert_at(idx, &k, 0, 0, TcpState::Established, 1000, 0);
            }
            let lost = t.stats.evictions as f64 / f64::from(n);
            assert!(lost < 0.001, "capacity {cap} at {load}: {:.3} % evicted", lost * 100.0);
            assert_eq!(t.live(0) as u64, u64::from(n) - t.stats.evictions);
        }
    }

    #[test]
    fn lookup_says_full_and_moves_nothing_then_make_room_picks_the_victim() {
        let mut t = FlowTable::with_seed(16, [5, 6]); // two groups: every key sees both
        for i in 0..16u32 {
            let k = key(i);
            let h = t.hash(&k);
            let Lookup::Vacant(idx) = t.lookup_hashed(&(&k).into(), &h, 0) else {
                panic!("room left")
            };
            t.insert_at(idx, &k, 0, 0, TcpState::Established, 1000 - i, 0);
        }
        let k = key(99);
        let h = t.hash(&k);
        assert_eq!(t.lookup_hashed(&(&k).into(), &h, 0), Lookup::Full);
        assert_eq!(t.stats.moved + t.stats.evictions, 0);
        // The victim: all established, so the one expiring soonest (key 15).
        let idx = t.make_room_hashed(&h, 0);
        assert_eq!(t.get(idx).key, key(15));
        // Expired entries are free again.
        assert!(matches!(t.lookup_hashed(&(&k).into(), &h, 1000), Lookup::Vacant(_)));
        // choose: fixed per key, below n, spread over n.
        let mut seen = [0u32; 3];
        for i in 0..3000 {
            let c = t.hash(&key(i)).choose(3);
            assert_eq!(c, t.hash(&key(i)).choose(3));
            seen[c] += 1;
        }
        assert!(seen.iter().all(|&n| (900..1100).contains(&n)), "{seen:?}");
    }

    #[test]
    fn eviction_prefers_non_established_then_soonest() {
        let mut t = FlowTable::with_seed(16, [5, 6]); // two groups: every key sees both
        for i in 0..16u32 {
            let k = key(i);
            let Lookup::Vacant(idx) = t.find(&k, 0) else { panic!() };
            let st = if i == 5 { TcpState::SynRecv } else { TcpState::Established };
            t.insert_at(idx, &k, 0, 0, st, 1000 + i, 0);
        }
        let newk = key(100);
        let Lookup::Vacant(idx) = t.find(&newk, 0) else { panic!() };
        assert_eq!(t.get(idx).key.saddr, key(5).saddr, "the SYN_RECV entry goes first");
        t.insert_at(idx, &newk, 0, 0, TcpState::SynRecv, 2000, 0);
        let Lookup::Vacant(idx) = t.find(&key(101), 0) else { panic!() };
        // Now all non-established is the new one (expires 2000) -> still preferred.
        assert_eq!(t.get(idx).key.saddr, newk.saddr);
        assert_eq!(t.stats.evicted_established, 0);
    }

    #[test]
    fn sweep_clears_expired_incrementally() {
        let mut t = FlowTable::with_seed(1024, [7, 8]);
        for i in 0..500u32 {
            let k = key(i);
            if let Lookup::Vacant(idx) = t.find(&k, 0) {
                t.insert_at(idx, &k, 0, 0, TcpState::Close, if i % 2 == 0 { 10 } else { 1000 }, 0);
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
    fn census_over_one_full_sweep_counts_every_live_flow_once() {
        let mut t = FlowTable::with_seed(4096, [3, 9]);
        for i in 0..1000u32 {
            let k = key(i);
            let Lookup::Vacant(idx) = t.find(&k, 0) else { panic!() };
            let st = if i % 4 == 0 { TcpState::SynRecv } else { TcpState::Established };
            t.insert_at(idx, &k, (i % 3) as u16, 1, st, 100, 0);
        }
        let mut count = [[0u32; 2]; 3];
        let mut wraps = 0;
        for _ in 0..(4096 / WAYS) {
            let s = t.sweep_visit(1, 1, |e| {
                count[usize::from(e.slot)][usize::from(!e.state().is_active())] += 1
            });
            wraps += usize::from(s.wrapped);
        }
        assert_eq!(wraps, 1);
        let total: u32 = count.iter().flatten().sum();
        assert_eq!(total, 1000);
        assert_eq!(count.iter().map(|c| c[1]).sum::<u32>(), 250, "SYN_RECV counts as inactive");
        // The count-only sweep sees the same: half the entries expire at 50.
        for i in (0..1000u32).step_by(2) {
            let idx = t.hit(&(&key(i)).into(), &t.hash(&key(i)), 1).expect("live");
            t.touch(idx, TcpState::Established, 50);
        }
        let (mut live, mut cleared, mut wraps) = (0, 0, 0);
        for _ in 0..(4096 / WAYS) {
            let s = t.sweep_count(60, 1);
            (live, cleared, wraps) =
                (live + s.live, cleared + s.cleared, wraps + usize::from(s.wrapped));
        }
        assert_eq!((live, cleared, wraps), (500, 500, 1));
        assert_eq!(t.live(60), 500);
    }

    /// The connection counts equal the entries the table holds (expired ones until they
    /// are cleared), by backend and class, through every kind of change: inserts into
    /// free, expired and evicted places, cuckoo moves, state changes, rebinds, removals
    /// and sweeps.
    #[test]
    fn connection_counts_follow_every_change() {
        let mut t = FlowTable::with_seed(64, [5, 7]);
        let mut rng = crate::testing::Rng(0x2545_f491_4f6c_dd1d);
        let mut next = || rng.next_u64();
        let states = [TcpState::SynRecv, TcpState::Established, TcpState::FinWait, TcpState::Udp];
        for step in 0..20_000u32 {
            let now = step / 50;
            let r = next();
            let k = key((r % 300) as u32);
            match (r >> 20) % 8 {
                0..=3 => {
                    let idx = match t.find(&k, now) {
                        Lookup::Hit(i) | Lookup::Vacant(i) => i,
                        Lookup::Full => unreachable!(),
                    };
                    let st = states[(r >> 30) as usize % 4];
                    t.insert_at(
                        idx,
                        &k,
                        (r >> 40) as u16 % 5,
                        1,
                        st,
                        now + (r >> 50) as u32 % 9,
                        now,
                    );
                }
                4 | 5 => {
                    if let Lookup::Hit(i) = t.find(&k, now) {
                        t.touch(i, states[(r >> 30) as usize % 4], now + 5);
                    }
                }
                6 => {
                    if let Lookup::Hit(i) = t.find(&k, now) {
                        if r & 1 == 0 {
                            t.remove(i);
                        } else {
                            t.rebind(i, (r >> 40) as u16 % 5, 1);
                        }
                    }
                }
                _ => {
                    t.sweep(now, 1);
                }
            }
            if step % 997 == 0 || step == 19_999 {
                let mut want = [(0u64, 0u64); 5];
                for g in 0..t.groups.len() {
                    for i in 0..WAYS {
                        if t.groups[g].proto[i] != 0 {
                            let e = t.get(g * WAYS + i);
                            let w = &mut want[usize::from(e.slot)];
                            if e.state().is_active() {
                                w.0 += 1
                            } else {
                                w.1 += 1
                            }
                        }
                    }
                }
                for (slot, w) in want.iter().enumerate() {
                    assert_eq!(t.conns().all().get(slot as u16, 1), *w, "slot {slot}, step {step}");
                }
            }
        }
        assert!(t.stats.moved > 0 && t.stats.evictions > 0 && t.stats.expired > 0, "{:?}", t.stats);
    }

    #[test]
    fn seeds_change_placement() {
        let a = FlowTable::with_seed(1 << 16, [1, 1]);
        let b = FlowTable::with_seed(1 << 16, [2, 3]);
        let same = (0..1000).filter(|&i| a.hash(&key(i)).g1 == b.hash(&key(i)).g1).count();
        assert!(same < 20, "placement must depend on the seed ({same}/1000 equal)");
    }
}
