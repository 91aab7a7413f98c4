//! The per-worker flow table.
//!
//! A fixed-capacity, set-associative hash table: the capacity is rounded up to a power
//! of two and split into groups of [`WAYS`] entries. An entry is 16 bytes and a group
//! one 64-byte-aligned cache line, so a lookup reads one line per group: the entry
//! keeps the source address and both ports as the frame has them, the backend slot, its
//! incarnation, the TCP state and a 32-bit expiry. It keeps no destination address: a
//! backend slot belongs to one service (`control::state`'s slot rules), so the slot
//! stands for the VIP. The table records each slot's owner (the destination of the
//! flows it stored for the slot's incarnation), and the fast path compares the frame's
//! destination with the snapshot's route for the slot, which carries the VIP. A key may
//! live in one of two groups chosen by independent bits of its hash ("two choices"): a
//! lookup reads at most two lines (bounded probing, no tombstones, no rehash, no
//! allocation after construction), and an insert takes a free entry in the first, or
//! in the second when the first is full (so most hits read one line).
//!
//! - Hash: a folded 64x64->128 multiply of the key words with two random 64-bit seeds
//!   drawn at start (the foldhash / wyhash construction). Clients cannot aim collisions
//!   at a group without knowing the seed.
//! - Expiry: each entry carries its expiry tick. Expired entries are treated as empty by
//!   lookups and reused by inserts (lazy), and [`FlowTable::sweep`] clears a few groups
//!   per call so occupancy figures stay true without a pause.
//! - Full groups: [`FlowTable::lookup_hashed`] says `Full` and the caller decides (the
//!   pipeline's `syn_flood` mode may store nothing); [`FlowTable::make_room_hashed`] and
//!   [`FlowTable::find`] search up to three levels of cuckoo moves, else pick the entry
//!   expiring soonest, preferring entries that are not ESTABLISHED (half-open SYN_RECV
//!   floods go first, from the two groups' other groups too), and the insert counts the
//!   eviction.
//! - A slot given to another backend (a new incarnation, once every slot has been used)
//!   orphans the flows of the slot's old incarnation when the new one stores its first
//!   flow: they are absent to lookups and cleared by the sweep. Their server had been
//!   removed and its slot given away, so they could not resume (DESIGN.md: flows of a
//!   removed server resume when the same address comes back, to the same slot).
use super::conns::ConnRow;
use super::snapshot::route_key;
use super::tcp_state::TcpState;
use super::Tick;

pub const WAYS: usize = 4;

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

/// One flow as a value (the table stores it as one 16-byte [`Lane`], its destination
/// address as its backend slot's owner).
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

impl WireKey {
    /// What a [`Lane`] keeps of the key: the source address, the source port and the
    /// destination port, as the frame has them (bytes 26..30 and 34..38), as one
    /// little-endian word. The destination address is the backend slot's owner's
    /// ([`FlowTable`]'s `owners`), the protocol the state's.
    #[inline(always)]
    pub fn sp(&self) -> u64 {
        (self.addrs & 0xffff_ffff) | (u64::from(self.ports) << 32)
    }

    /// The destination address as the frame has it (bytes 30..34), a little-endian word.
    #[inline(always)]
    pub fn daddr_wire(&self) -> u32 {
        (self.addrs >> 32) as u32
    }
}

/// Bits of a [`Lane`]'s `word`: the backend slot in 0..12 (slots are below
/// [`MAX_SLOTS`](super::snapshot::MAX_SLOTS) = 4096), the TCP state in 12..16 (0 =
/// empty), the slot's incarnation in 16..32. Without the state it is the flow's
/// [`route_key`], which the fast path compares with the snapshot's route.
const SLOT_BITS: u32 = 0xfff;
const STATE_SHIFT: u32 = 12;
const STATE_BITS: u32 = 0xf << STATE_SHIFT;

/// One flow as a group holds it in its lane: 16 bytes. The key without its destination
/// address (which the slot's owner holds: every backend slot belongs to one service, so
/// one VIP), the backend, the state and the expiry.
#[derive(Clone, Copy, Default)]
struct Lane {
    /// [`WireKey::sp`].
    sp: u64,
    /// Slot, state and incarnation ([`SLOT_BITS`], [`STATE_BITS`]).
    word: u32,
    expires: Tick,
}

impl Lane {
    #[inline(always)]
    fn state(&self) -> u8 {
        ((self.word & STATE_BITS) >> STATE_SHIFT) as u8
    }
    #[inline(always)]
    fn slot(&self) -> u16 {
        (self.word & SLOT_BITS) as u16
    }
    #[inline(always)]
    fn incarnation(&self) -> u16 {
        (self.word >> 16) as u16
    }
    #[inline(always)]
    fn occupied(&self) -> bool {
        self.word & STATE_BITS != 0
    }
    #[inline(always)]
    fn live(&self, now: Tick) -> bool {
        self.occupied() && self.expires > now
    }
    /// The protocol the state implies: UDP for [`TcpState::Udp`], TCP for the others.
    #[inline(always)]
    fn proto(&self) -> u8 {
        if self.state() == TcpState::Udp as u8 {
            crate::wire::ipv4::protocol::UDP
        } else {
            crate::wire::ipv4::protocol::TCP
        }
    }
}

/// The word of a lane holding a flow to `slot`'s `incarnation` in `state`.
#[inline(always)]
fn lane_word(slot: u16, incarnation: u16, state: u8) -> u32 {
    route_key(slot, incarnation) | (u32::from(state) & 0xf) << STATE_SHIFT
}

/// Four lanes: one cache line, 64-byte aligned, each field of the four side by side (a
/// lookup compares the four keys with two 16-byte loads that no hit ever writes into;
/// with each lane's 16 bytes together, the load over a lane whose expiry the hit before
/// had just renewed, as a flow's next packet finds it, waited for that store to retire:
/// a flow's SYN and 15 ACKs in a row ran 14-23 % slower). A lookup reads one line per
/// group.
#[derive(Clone, Copy, Default, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Group {
    /// [`Lane::sp`] of each lane.
    sp: [u64; WAYS],
    word: [u32; WAYS],
    expires: [Tick; WAYS],
}

impl Group {
    #[inline(always)]
    fn lane(&self, i: usize) -> Lane {
        let i = i & (WAYS - 1);
        Lane { sp: self.sp[i], word: self.word[i], expires: self.expires[i] }
    }

    #[inline(always)]
    fn set(&mut self, i: usize, l: Lane) {
        let i = i & (WAYS - 1);
        (self.sp[i], self.word[i], self.expires[i]) = (l.sp, l.word, l.expires);
    }

    fn lanes(&self) -> impl Iterator<Item = Lane> + '_ {
        (0..WAYS).map(|i| self.lane(i))
    }

    /// Entries that are empty or expired, as a bitmask (bit i = entry i).
    #[inline(always)]
    fn free_lanes(&self, now: Tick) -> u32 {
        let mut m = 0;
        for (i, l) in self.lanes().enumerate() {
            m |= u32::from(!l.live(now)) << i;
        }
        m
    }

    /// The live entries and the expired ones (not empty), as bitmasks: the masks of
    /// [`free_lanes`](Self::free_lanes), kept apart (for the sweep, which counts the
    /// first and clears the second).
    #[inline(always)]
    fn live_and_expired(&self, now: Tick) -> (u32, u32) {
        let (mut live, mut old) = (0, 0);
        for (i, l) in self.lanes().enumerate() {
            live |= u32::from(l.live(now)) << i;
            old |= u32::from(l.occupied() && l.expires <= now) << i;
        }
        (live, old)
    }

    /// The lanes whose `sp` is `sp`, as a mask with bit 4i for lane i (one SIMD
    /// compare of the four, [`crate::mem::match_u64x4`]): the key's entry, or its
    /// twin of the other protocol or to another VIP (the caller tells them apart).
    #[inline(always)]
    fn sp_matches(&self, sp: u64) -> u32 {
        crate::mem::match_u64x4(&self.sp, sp)
    }

    /// [`sp_matches`](Self::sp_matches) of a key as the frame has it.
    #[inline(always)]
    fn key_matches(&self, k: &KeyBytes) -> u32 {
        crate::mem::match_key4(&self.sp, &k.0)
    }

    /// Marks lane `i` empty: state 0, and a key no frame of the fast path's has.
    #[inline(always)]
    fn empty(&mut self, i: usize) {
        self.set(i, Lane::default());
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

    /// Starts loading the first group line of the key hashed to `h`.
    #[inline(always)]
    pub fn prefetch(&self, h: u64) {
        self.groups.prefetch_scaled(h as usize);
    }

    /// The view again, for a shorter time (for [`hit_entry`](Self::hit_entry), which
    /// takes it by value).
    #[inline(always)]
    pub fn reborrow(&mut self) -> HitView<'_> {
        HitView { groups: self.groups.reborrow() }
    }
}

impl<'a> HitView<'a> {
    /// The fast path's lookup of the key whose bytes (as the frame has them) are `k`: the
    /// first lane of its first group, else of its second, whose `sp` is the key's
    /// ([`WireKey::sp`]), if it has not expired: that
    /// entry, to read and renew in place. Neither its state nor its destination is
    /// compared here: [`Entry::route_key`] for `state` is the flow's route only when
    /// the state is `state` (a [`TcpState`] byte), and the caller compares it, and the
    /// frame's destination, with the snapshot's route for the slot
    /// ([`Snapshot::serving_l2_to`](super::Snapshot::serving_l2_to)). A lane that does
    /// not pass (the key's twin of the other protocol, or of another VIP, in the same
    /// group; rare) sends the frame to the full path, whose lookup tells them apart.
    #[inline(always)]
    pub fn hit_entry(self, k: &KeyBytes, h: &Hashed, now: Tick, state: u8) -> Option<Entry<'a>> {
        let (g1, g2) = h.scaled();
        let (grp, i) = self.groups.first_mut_scaled(g1, g2, |grp| {
            let m = grp.key_matches(k);
            if m == 0 {
                return None;
            }
            let i = (m.trailing_zeros() / 4) as usize & (WAYS - 1);
            Some((grp.expires[i] > now).then_some(i))
        })?;
        Some(Entry { grp, i: i?, state })
    }
}

/// An entry found by [`HitView::hit_entry`]: what the fast path reads and renews.
pub struct Entry<'a> {
    grp: &'a mut Group,
    i: usize,
    state: u8,
}

impl Entry<'_> {
    /// The backend as one [`route_key`] word if the entry is in the state the lookup
    /// asked for; else a word no route has (its state bits are not 0).
    #[inline(always)]
    pub fn route_key(&self) -> u32 {
        self.grp.word[self.i & (WAYS - 1)] ^ (u32::from(self.state) << STATE_SHIFT)
    }
    /// Renews the expiry, the state unchanged (no count moves).
    #[inline(always)]
    pub fn refresh(&mut self, expires: Tick) {
        self.grp.expires[self.i & (WAYS - 1)] = expires;
    }
}

/// Bytes per flow entry: a group's 64 bytes over its 4 entries.
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

/// A backend slot's owner as [`FlowTable`] records it: the destination address (as the
/// frame has it, [`WireKey::daddr_wire`]) of the flows it stored for the slot's
/// incarnation, that incarnation, and [`OWNED`]. A slot's (incarnation) belongs to one
/// service for good (`control::state`'s slot rules), so this never changes while flows
/// of that incarnation exist; a new incarnation's first flow takes it over, and the
/// older incarnation's flows are orphans from then on: absent to lookups, cleared by
/// the sweep (their server was removed and its slot given to another; they could never
/// resume).
const OWNED: u64 = 1 << 48;

#[inline(always)]
fn owner_word(daddr_wire: u32, incarnation: u16) -> u64 {
    u64::from(daddr_wire) | u64::from(incarnation) << 32 | OWNED
}

pub struct FlowTable {
    groups: crate::mem::Table<Group>,
    group_mask: usize,
    seed: [u64; 2],
    sweep_next: usize,
    /// Make-room calls left that skip the cuckoo search: set after [`CUCKOO_FAILS`]
    /// searches in a row found no move (the table is full around there, as under a
    /// flood), so a full table does not pay ~40 random cache misses per new flow for
    /// nothing.
    cuckoo_backoff: u32,
    /// Cuckoo searches that failed since the last that did not ([`CUCKOO_FAILS`]).
    cuckoo_fails: u32,
    /// Per backend slot, its owner ([`owner_word`]): the destination of its flows.
    owners: Box<[u64]>,
    pub stats: FlowStats,
    /// This worker's connection counts per backend, kept as entries change.
    conns: ConnRow,
}

/// Free lanes the first group needs to take a new key although the second has more: a
/// key goes to its first group unless that one is full and the second has room, so
/// most hits read one line.
const FIRST_FIT_MIN: u32 = 1;
/// Make-room calls that evict directly after [`CUCKOO_FAILS`] failed cuckoo searches.
const CUCKOO_BACKOFF: u32 = 1024;
/// Failed cuckoo searches in a row that start a backoff: a table filling past 85 %
/// fails a good share of them (after 4 in a row, `drop` mode refused SYNs while the
/// test filled 7/8 of a table with established flows), a full one every time.
const CUCKOO_FAILS: u32 = 16;

/// A group's size is 1 << GROUP_SHIFT bytes, and a hash's bits from GROUP_SHIFT up are
/// its first group's index: the hash ANDed with the table's mask scaled by the group's
/// size is that group's offset in the table (one AND: `Table::prefetch_scaled`), where
/// an index needs an AND and a shift (three times a hit, with the prefetches).
const GROUP_SHIFT: u32 = 6;
const _: () = assert!(std::mem::size_of::<Group>() == 1 << GROUP_SHIFT);

/// Most groups a table may have: the hash's bits are split as g1 = bits 6..31,
/// g2 = g1 XOR bits 31..56 ([`GROUP_SHIFT`]).
pub const MAX_GROUPS: usize = 1 << 25;
/// Largest capacity (flows per worker).
pub const MAX_CAPACITY: usize = MAX_GROUPS * WAYS;

/// The hashed form of a key: its two groups ([`FlowTable::hashed`] of the hash the first
/// prefetch stage computed once per packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hashed {
    // Group indexes below MAX_GROUPS (2^25): u32 keeps a burst's hints small.
    g1: u32,
    g2: u32,
    h: u64,
}

impl Hashed {
    /// The groups of a key whose 64-bit hash is `h`, in a table of `mask` + 1 groups.
    #[inline(always)]
    fn of(h: u64, mask: usize) -> Hashed {
        let g1 = (h >> GROUP_SHIFT) as usize & mask;
        let g2 = (g1 ^ ((h >> (GROUP_SHIFT + 25)) as usize | 1)) & mask;
        Hashed { g1: g1 as u32, g2: g2 as u32, h }
    }

    /// An index below `n`, uniform and fixed for the key (and the table's seed): the
    /// backend of a flow routed without a table entry. The hash's top 32 bits by
    /// multiply-shift (no division, no second hash: a flood's SYNs have this one from
    /// the burst's stage 1). Those bits are not the group indexes (its low bits), so
    /// which keys find their groups full says little about their backend.
    #[inline(always)]
    pub fn choose(&self, n: usize) -> usize {
        (((self.h >> 32) * n as u64) >> 32) as usize
    }

    #[inline(always)]
    fn groups(&self) -> (usize, usize) {
        (self.g1 as usize, self.g2 as usize)
    }

    /// The groups as `View::first_mut_scaled` takes them: the first is the hash itself
    /// ([`GROUP_SHIFT`]).
    #[inline(always)]
    fn scaled(&self) -> (usize, usize) {
        (self.h as usize, (self.g2 as usize) << GROUP_SHIFT)
    }
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
/// share their groups, and a lookup tells them apart by the state.
#[inline(always)]
fn mix(k: &WireKey, seed: [u64; 2]) -> u64 {
    folded_multiply(
        folded_multiply(k.addrs ^ seed[0], u64::from(k.ports) ^ seed[1]),
        0x9e37_79b9_7f4a_7c15,
    )
}

/// Hash seeds from the OS's entropy (the clock where it has none): s0 odd; s1 odd with
/// its top bit set, so the ports word (40 bits) XOR s1 is never 0, which would make the
/// product 0 for every address.
fn random_seed() -> [u64; 2] {
    let mut seed = [0u8; 16];
    // getrandom only fails if the OS has no entropy source; fall back to the clock.
    if getrandom::getrandom(&mut seed).is_err() {
        let t =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        seed[..16].copy_from_slice(&t.as_nanos().to_le_bytes());
    }
    let s0 = u64::from_le_bytes(seed[..8].try_into().unwrap()) | 1;
    let s1 = u64::from_le_bytes(seed[8..].try_into().unwrap()) | 1 | (1 << 63);
    [s0, s1]
}

impl FlowTable {
    /// A table for at least `capacity` flows (rounded up to a power of two, min 8, max
    /// [`MAX_CAPACITY`]), with random hash seeds.
    pub fn new(capacity: usize) -> Self {
        Self::with_seed(capacity, random_seed())
    }

    /// [`new`](Self::new), or the error of the table's mapping.
    pub fn try_new(capacity: usize) -> std::io::Result<Self> {
        Self::try_with_seed(capacity, random_seed())
    }

    pub fn with_seed(capacity: usize, seed: [u64; 2]) -> Self {
        let t = Self::try_with_seed(capacity, seed);
        t.unwrap_or_else(|e| panic!("cannot map a flow table for {capacity} flows: {e}"))
    }

    /// The entries of a table made for `capacity` flows: rounded up to a power of two,
    /// within 8 ..= [`MAX_CAPACITY`]; [`ENTRY_BYTES`] each.
    pub fn entries_for(capacity: usize) -> usize {
        capacity.clamp(2 * WAYS, MAX_CAPACITY).next_power_of_two()
    }

    /// The bytes of a table made for `capacity` flows ([`entries_for`](Self::entries_for)).
    pub fn bytes_for(capacity: usize) -> usize {
        Self::entries_for(capacity) * ENTRY_BYTES
    }

    fn try_with_seed(capacity: usize, seed: [u64; 2]) -> std::io::Result<Self> {
        let entries = Self::entries_for(capacity);
        // An anonymous mapping of untouched zero pages (mem::Table), whose pages may be
        // huge (TLB misses dominate random lookups in a big table otherwise): resident
        // as it is used, or all at once by `populate` (drlb's workers).
        let groups = crate::mem::Table::<Group>::try_zeroed(entries / WAYS)?;
        Ok(FlowTable {
            group_mask: groups.len() - 1,
            seed,
            sweep_next: 0,
            cuckoo_backoff: 0,
            cuckoo_fails: 0,
            groups,
            owners: vec![0; super::snapshot::MAX_SLOTS].into_boxed_slice(),
            stats: FlowStats::default(),
            conns: ConnRow::private(),
        })
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

    #[inline(always)]
    fn lane(&self, idx: usize) -> Lane {
        self.group(idx / WAYS).lane(idx % WAYS)
    }

    /// The lane's flow belongs to its slot's owner (its incarnation is the one whose
    /// flows the table holds) and goes to `daddr`.
    #[inline(always)]
    fn owned_by(&self, l: &Lane, daddr_wire: u32) -> bool {
        self.owners[usize::from(l.slot())] == owner_word(daddr_wire, l.incarnation())
    }

    /// The lane's flow is not an orphan (its slot's owner is its incarnation).
    #[inline(always)]
    fn owned(&self, l: &Lane) -> bool {
        // The owner word without its address half.
        self.owners[usize::from(l.slot())] >> 32 == owner_word(0, l.incarnation()) >> 32
    }

    /// Stops counting the entry at `idx` (being cleared, overwritten or rebound). Its
    /// place must hold an entry.
    #[inline]
    fn uncount(&self, idx: usize) {
        let l = self.lane(idx);
        self.conns.sub(l.slot(), l.incarnation(), TcpState::from_u8(l.state()).is_active());
    }

    pub fn capacity(&self) -> usize {
        self.groups.len() * WAYS
    }

    /// Bytes the table occupies (its whole allocation).
    pub fn bytes(&self) -> usize {
        self.groups.bytes()
    }

    /// Makes the whole table resident now, preferably on NUMA node `node`
    /// ([`crate::mem::Table::populate`]): the worker's table, before it forwards, so
    /// that no insert stalls on a page fault.
    pub fn populate(&mut self, node: Option<u32>) -> std::io::Result<()> {
        self.groups.populate(node)
    }

    #[inline(always)]
    pub fn hash(&self, k: &FlowKey) -> Hashed {
        self.hash_wire(&k.into())
    }

    /// The groups of a key: g1 from the hash's low bits, g2 = g1 XOR an odd number from
    /// bits 25.. (so never g1; as cuckoo filters pick the other bucket).
    #[inline(always)]
    pub fn hash_wire(&self, k: &WireKey) -> Hashed {
        self.hashed(self.hash_bits(k))
    }

    /// The 64-bit hash of `k` that [`hashed`](Self::hashed) turns into groups.
    #[inline(always)]
    pub fn hash_bits(&self, k: &WireKey) -> u64 {
        mix(k, self.seed)
    }

    /// The groups of a key whose [`hash_bits`](Self::hash_bits) are `h`.
    #[inline(always)]
    pub fn hashed(&self, h: u64) -> Hashed {
        Hashed::of(h, self.group_mask)
    }

    /// Stage 1 of a burst: hash `k` and start loading its first group's line, and the
    /// second's too when `miss` (a SYN, FIN or RST: under a flood a miss, which reads
    /// both groups).
    #[inline(always)]
    pub fn prefetch(&self, k: &WireKey, miss: bool) -> Hashed {
        let h = self.hash_wire(k);
        self.prefetch_groups(&h, miss);
        h
    }

    /// [`prefetch`](Self::prefetch) of a key already hashed.
    #[inline(always)]
    pub fn prefetch_groups(&self, h: &Hashed, miss: bool) {
        let (first, second) = h.scaled();
        self.groups.prefetch_scaled(first);
        if miss {
            self.groups.prefetch_scaled(second);
        }
    }

    /// The lane of group `g` that holds `k`, live.
    #[inline(always)]
    fn scan(&self, g: usize, k: &WireKey, now: Tick) -> Option<usize> {
        let grp = self.group(g);
        let mut m = grp.sp_matches(k.sp());
        while m != 0 {
            let i = (m.trailing_zeros() / 4) as usize & (WAYS - 1);
            m &= m - 1;
            let l = grp.lane(i);
            if l.occupied() && l.proto() == k.proto && self.owned_by(&l, k.daddr_wire()) {
                // A key is in at most one entry; an expired one counts as absent.
                return (l.expires > now).then_some(i);
            }
        }
        None
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
        match self.scan(g1, k, now) {
            Some(i) => Some((g1, i)),
            None => self.scan(g2, k, now).map(|i| (g2, i)),
        }
    }

    /// The lookup alone: `Hit`, `Vacant` with a free (empty or expired) entry in the
    /// first group, or in the second when the first is full ([`FIRST_FIT_MIN`]), or
    /// `Full` when both groups hold only live entries; then nothing is moved or chosen,
    /// and a caller that wants the entry anyway calls [`make_room_hashed`].
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

    /// Room for a key whose groups are both full ([`lookup_hashed`] said `Full`) without
    /// evicting anything: the entry a cuckoo search freed by moving others to their
    /// other groups; `None` when there is none (or the search
    /// is backing off, [`CUCKOO_FAILS`]). For `syn_flood = "stateless"`, which stores a
    /// SYN only where nothing is evicted: four lanes a group leave ~2 % of keys with
    /// both groups full at half load, which moves almost always fix (without them a
    /// table at half load forwarded SYNs statelessly and put the worker under
    /// pressure; 1k flows each with its SYN and 15 ACKs ran 17 % slower).
    #[cold]
    #[inline(never)]
    pub fn room_by_moves(&mut self, h: &Hashed, now: Tick) -> Option<usize> {
        // No orphan scan here (eight owner loads a SYN under a flood, where this runs
        // for every SYN: 0.785 -> 0.629 of the no-flood rate in 3ec9c44's publication):
        // the sweep clears orphans, and moving one costs nothing but the move.
        let (g1, g2) = h.groups();
        self.search(g1, g2, now)
    }

    /// Both groups are full of live entries: an orphan's place, else room made by
    /// cuckoo moves, else the victim.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, g1: usize, g2: usize, now: Tick) -> usize {
        match self.orphan(g1, g2).or_else(|| self.search(g1, g2, now)) {
            Some(free) => free,
            None => self.victim(g1, g2, now),
        }
    }

    /// An entry of g1 or g2 that is an orphan (whose key the table no longer knows).
    fn orphan(&self, g1: usize, g2: usize) -> Option<usize> {
        let mut all = [g1, g2].into_iter().flat_map(|g| (0..WAYS).map(move |i| g * WAYS + i));
        all.find(|&idx| !self.owned(&self.lane(idx)))
    }

    /// A cuckoo search ([`cuckoo`](Self::cuckoo)) unless backing off: three levels after
    /// a search that found a move, two after one that did not (a flood's full table
    /// fails every search: the third level is 128 more hashes), none for
    /// [`CUCKOO_BACKOFF`] calls after [`CUCKOO_FAILS`] failures in a row.
    fn search(&mut self, g1: usize, g2: usize, now: Tick) -> Option<usize> {
        if self.cuckoo_backoff > 0 {
            self.cuckoo_backoff -= 1;
            return None;
        }
        let levels = if self.cuckoo_fails == 0 { 3 } else { 2 };
        let found = self.cuckoo(g1, g2, now, levels);
        if found.is_some() {
            self.cuckoo_fails = 0;
        } else {
            self.cuckoo_fails += 1;
            if self.cuckoo_fails >= CUCKOO_FAILS {
                (self.cuckoo_backoff, self.cuckoo_fails) = (CUCKOO_BACKOFF, 0);
            }
        }
        found
    }

    /// The entry to evict ([`evict_victim`](Self::evict_victim)); when that is an
    /// ESTABLISHED one (every entry of both groups is), a non-ESTABLISHED entry of one
    /// of their other groups is evicted instead and an entry of g1 or g2 moved to its
    /// place: eight lanes alone would leave a flood that fills half of a table with
    /// established flows evicting ~0.4 % of its SYNs' established neighbours (2 % of
    /// them in the test), where two groups of eight did not.
    fn victim(&mut self, g1: usize, g2: usize, now: Tick) -> usize {
        let v = self.evict_victim(g1, g2);
        if !self.is_established(v, now) {
            return v;
        }
        for g in [g1, g2] {
            for i in 0..WAYS {
                let alt = self.other_group(g * WAYS + i, g);
                let spare = (0..WAYS).find(|&j| !self.is_established(alt * WAYS + j, now));
                if let Some(j) = spare {
                    let to = alt * WAYS + j;
                    if self.lane(to).live(now) && self.owned(&self.lane(to)) {
                        self.stats.evictions += 1;
                    }
                    self.remove(to);
                    self.move_entry(g * WAYS + i, to);
                    return g * WAYS + i;
                }
            }
        }
        v
    }

    /// A cuckoo search, breadth first over `levels` (at most 3) levels of moves: an
    /// entry of g1 or g2 whose other group has room moves there; else an entry of such an
    /// other group whose own other group has room moves there first, making room for the
    /// one from g1 or g2; and so on. Returns the entry it freed in g1 or g2. (Four lanes
    /// a group leave a table at 90 % load with ~5 % of its keys evicted by one level, a
    /// few in 10,000 at 87.5 % with two, none in the tests with three.)
    fn cuckoo(&mut self, g1: usize, g2: usize, now: Tick, levels: usize) -> Option<usize> {
        const NONE: u8 = u8::MAX;
        // The entries that may move, level by level (8, 32, 128), each with its parent's
        // place in `nodes` (the entry that would take its place).
        let mut nodes = [(0usize, NONE); 2 * WAYS * (1 + WAYS + WAYS * WAYS)];
        let mut len = 0;
        for g in [g1, g2] {
            for i in 0..WAYS {
                nodes[len] = (g * WAYS + i, NONE);
                len += 1;
            }
        }
        let on_path = |nodes: &[(usize, u8)], mut n: u8, idx: usize| {
            while n != NONE {
                if nodes[usize::from(n)].0 == idx {
                    return true;
                }
                n = nodes[usize::from(n)].1;
            }
            false
        };
        let (mut at, mut level_end) = (0, len);
        for level in 0..levels.min(3) {
            while at < level_end {
                let (idx, _) = nodes[at];
                let alt = self.other_group(idx, idx / WAYS);
                if let Some(f) = self.free_lane(alt, now) {
                    // Move along the path, from its far end back to g1 or g2.
                    let (mut to, mut n) = (alt * WAYS + f, at as u8);
                    let mut root = idx;
                    while n != NONE {
                        let (from, parent) = nodes[usize::from(n)];
                        self.move_entry(from, to);
                        (to, root, n) = (from, from, parent);
                    }
                    return Some(root);
                }
                if level + 1 < levels {
                    for j in 0..WAYS {
                        let child = alt * WAYS + j;
                        if !on_path(&nodes, at as u8, child) {
                            nodes[len] = (child, at as u8);
                            len += 1;
                        }
                    }
                }
                at += 1;
            }
            level_end = len;
        }
        None
    }

    /// The group the entry at `idx`, in group `g`, may also live in.
    #[inline]
    fn other_group(&self, idx: usize, g: usize) -> usize {
        let (h1, h2) = self.hash(&self.get(idx).key).groups();
        if h1 == g {
            h2
        } else {
            h1
        }
    }

    /// A lane of group `g` that is empty or expired.
    #[inline]
    fn free_lane(&self, g: usize, now: Tick) -> Option<usize> {
        let free = self.group(g).free_lanes(now);
        (free != 0).then(|| free.trailing_zeros() as usize)
    }

    /// Moves the live entry at `from` to the free (empty or expired) place `to`, and
    /// empties `from`.
    #[inline]
    fn move_entry(&mut self, from: usize, to: usize) {
        if self.lane(to).occupied() {
            self.stats.expired += 1;
            self.uncount(to);
        }
        let l = self.lane(from);
        self.group_mut(to / WAYS).set(to % WAYS, l);
        self.group_mut(from / WAYS).empty(from % WAYS);
        self.stats.moved += 1;
    }

    /// The entry to evict from two full groups: not ESTABLISHED first, then the one
    /// expiring soonest, ties to the lower index. Branch-free and shallow: each entry
    /// becomes one 32-bit key (established bit over the expiry, saturated at 2^31 ticks
    /// = 6.8 years), a tree of minimums finds the least key in three steps, and the
    /// victim is the first entry holding it. (A tuple compare per entry mispredicted
    /// about half the time under a flood and made this 17 % of a worker's cycles; a
    /// running minimum is a dependency chain.)
    #[inline]
    fn evict_victim(&self, g1: usize, g2: usize) -> usize {
        let mut keys = [0u32; 2 * WAYS];
        for (half, g) in [g1, g2].into_iter().enumerate() {
            let grp = self.group(g);
            for i in 0..WAYS {
                let l = grp.lane(i);
                let est = u32::from(l.state() == TcpState::Established as u8);
                keys[half * WAYS + i] = (est << 31) | l.expires.min(0x7fff_ffff);
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
        let l = self.lane(idx);
        l.live(now) && l.state() == TcpState::Established as u8
    }

    /// The entry at `idx` as a value; its destination is its slot's owner's (for an
    /// orphan, which lookups pass over and the sweep clears, a later incarnation's).
    #[inline(always)]
    pub fn get(&self, idx: usize) -> FlowEntry {
        let l = self.lane(idx);
        let daddr = self.owners[usize::from(l.slot())] as u32;
        let (s, p) = (l.sp as u32, (l.sp >> 32) as u32);
        let w =
            WireKey { addrs: u64::from(s) | u64::from(daddr) << 32, ports: p, proto: l.proto() };
        FlowEntry {
            key: (&w).into(),
            state: l.state(),
            slot: l.slot(),
            incarnation: l.incarnation(),
            expires: l.expires,
        }
    }

    #[inline(always)]
    fn put(&mut self, idx: usize, e: &FlowEntry) {
        let w = WireKey::from(&e.key);
        debug_assert_eq!(
            e.key.proto == crate::wire::ipv4::protocol::UDP,
            e.state == TcpState::Udp as u8
        );
        self.owners[usize::from(e.slot) % super::snapshot::MAX_SLOTS] =
            owner_word(w.daddr_wire(), e.incarnation);
        let l = Lane {
            sp: w.sp(),
            word: lane_word(e.slot, e.incarnation, e.state),
            expires: e.expires,
        };
        self.group_mut(idx / WAYS).set(idx % WAYS, l);
    }

    /// Updates the TCP state and expiry of the live entry at `idx`.
    #[inline(always)]
    pub fn touch(&mut self, idx: usize, state: TcpState, expires: Tick) {
        let mut l = self.lane(idx);
        // Active = ESTABLISHED (TcpState::is_active), compared as bytes: this is the hit.
        const EST: u8 = TcpState::Established as u8;
        let was = l.state() == EST;
        l.word = (l.word & !STATE_BITS) | (state as u32) << STATE_SHIFT;
        l.expires = expires;
        self.group_mut(idx / WAYS).set(idx % WAYS, l);
        if was != (state as u8 == EST) {
            // Into or out of ESTABLISHED: IPVS moves the connection between its
            // server's active and inactive counts (`set_tcp_state`).
            let (slot, inc) = (l.slot(), l.incarnation());
            self.conns.sub(slot, inc, was);
            self.conns.add(slot, inc, !was);
        }
    }

    /// Removes the entry at `idx` (its backend is gone and its policy is `expire`).
    #[inline]
    pub fn remove(&mut self, idx: usize) {
        if self.lane(idx).occupied() {
            self.uncount(idx);
        }
        self.group_mut(idx / WAYS).empty(idx % WAYS);
    }

    /// Points the live entry at `idx` to another backend (a rescheduled flow; one of
    /// the same service, so the same destination).
    #[inline(always)]
    pub fn rebind(&mut self, idx: usize, slot: u16, incarnation: u16) {
        let e = self.get(idx);
        self.uncount(idx);
        self.conns.add(slot, incarnation, e.state().is_active());
        self.put(idx, &FlowEntry { slot, incarnation, ..e });
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
        let l = self.lane(idx);
        let (live, established, occupied) =
            (l.live(now), l.state() == TcpState::Established as u8, l.occupied());
        if live && self.owned(&l) {
            self.stats.evictions += 1;
            if established {
                self.stats.evicted_established += 1;
            }
        }
        if occupied {
            self.uncount(idx); // evicted, or expired and not yet swept, or an orphan
        }
        self.conns.add(slot, incarnation, state.is_active());
        self.put(idx, &FlowEntry { key: *k, state: state as u8, slot, incarnation, expires });
        self.stats.inserts += 1;
    }

    /// Clears expired entries (and orphans) in the next `groups` groups (wrapping).
    /// Returns how many.
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
            let (mut live, mut expired) = self.group(g).live_and_expired(now);
            // Orphans go as if expired.
            let mut m = live;
            while m != 0 {
                let i = m.trailing_zeros() as usize & (WAYS - 1);
                m &= m - 1;
                if !self.owned(&self.group(g).lane(i)) {
                    live &= !(1 << i);
                    expired |= 1 << i;
                }
            }
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
            .filter(move |&i| self.lane(i).live(now) && self.owned(&self.lane(i)))
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

    /// The fast path's lookup of `w` in `state`: the route key it would compare with the
    /// snapshot's, when the entry is in that state (else `None`).
    fn fast(t: &mut FlowTable, w: &WireKey, now: Tick, state: u8) -> Option<u32> {
        let h = t.hash_wire(w);
        let e = t.hit_view().hit_entry(&key_bytes(w), &h, now, state)?;
        let r = e.route_key();
        (r & STATE_BITS == 0).then_some(r)
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
        assert_eq!(fast(&mut t, &w, 1, TcpState::Udp as u8), None);
        let stored = t.get(i);
        let hw = t.hash_wire(&w);
        let mut e = t.hit_view().hit_entry(&key_bytes(&w), &hw, 1, est).expect("live");
        assert_eq!(
            (stored.state, (stored.slot, stored.incarnation), e.route_key()),
            (TcpState::Established as u8, (1, 1), route_key(1, 1))
        );
        e.refresh(200);
        assert_eq!(t.get(i).expires, 200);
        assert_eq!(t.hit(&w, &t.hash_wire(&w), 150), Some(i));
        for now in [199, 200] {
            assert_eq!(fast(&mut t, &w, now, est).is_some(), now < 200, "at {now}");
        }
    }

    #[test]
    fn the_fast_lookup_takes_the_state_for_the_protocol_and_skips_emptied_lanes() {
        let (est, udp) = (TcpState::Established as u8, TcpState::Udp as u8);
        let mut t = FlowTable::with_seed(64, [3, 5]);
        let tcp = key(7);
        let udp_twin = FlowKey { proto: 17, ..tcp }; // same addresses and ports
        let hit = |t: &mut FlowTable, k: &FlowKey, st: u8| {
            fast(t, &WireKey::from(k), 1, st).map(|r| r as u16)
        };
        // The TCP flow alone: found in its state, not in UDP's.
        let Lookup::Vacant(i) = t.find(&tcp, 0) else { panic!() };
        t.insert_at(i, &tcp, 1, 1, TcpState::Established, 100, 0);
        assert_eq!((hit(&mut t, &tcp, est), hit(&mut t, &tcp, udp)), (Some(1), None));
        // Its UDP twin beside it, in the same groups (the protocol is not hashed): the
        // full lookup tells them apart; the fast one takes the first lane holding the
        // addresses and ports, and passes only in that entry's state (the other goes to
        // the full path).
        let Lookup::Vacant(j) = t.find(&udp_twin, 0) else { panic!() };
        t.insert_at(j, &udp_twin, 2, 1, TcpState::Udp, 100, 0);
        assert_eq!(t.hash_wire(&WireKey::from(&tcp)), t.hash_wire(&WireKey::from(&udp_twin)));
        assert_eq!((t.find(&tcp, 1), t.find(&udp_twin, 1)), (Lookup::Hit(i), Lookup::Hit(j)));
        assert_eq!((hit(&mut t, &tcp, est), hit(&mut t, &udp_twin, udp)), (Some(1), None));
        // A removed entry keeps nothing: its twin is the first lane with the key now.
        t.remove(i);
        assert_eq!((hit(&mut t, &tcp, est), hit(&mut t, &udp_twin, udp)), (None, Some(2)));
        assert_eq!(t.find(&udp_twin, 1), Lookup::Hit(j));
    }

    #[test]
    fn a_flow_to_another_vip_is_another_flow_and_an_orphan_is_absent() {
        let est = TcpState::Established;
        let mut t = FlowTable::with_seed(64, [3, 5]);
        let a = key(3);
        let b = FlowKey { daddr: a.daddr + 1, ..a }; // same client, port and service port
        let Lookup::Vacant(i) = t.find(&a, 0) else { panic!() };
        t.insert_at(i, &a, 1, 1, est, 100, 0);
        // b's slot's owner is b's VIP: a's entry is not b's.
        let Lookup::Vacant(j) = t.find(&b, 0) else { panic!("a's entry taken for b's") };
        t.insert_at(j, &b, 2, 1, est, 100, 0);
        assert_eq!((t.find(&a, 1), t.find(&b, 1)), (Lookup::Hit(i), Lookup::Hit(j)));
        assert_eq!((t.get(i).key, t.get(j).key), (a, b));
        assert_eq!(t.live(1), 2);
        // Slot 1 given to another service (a new incarnation) and one of its flows
        // stored: a's entry is an orphan, absent to lookups and cleared by the sweep.
        let c = FlowKey { daddr: a.daddr + 7, ..key(4) };
        let Lookup::Vacant(k) = t.find(&c, 1) else { panic!() };
        t.insert_at(k, &c, 1, 2, est, 100, 1);
        assert!(matches!(t.find(&a, 1), Lookup::Vacant(_)));
        assert_eq!(fast(&mut t, &WireKey::from(&a), 1, est as u8).map(|r| r >> 16), Some(1));
        assert_eq!((t.live(1), t.iter_live(1).filter(|e| e.key == a).count()), (2, 0));
        let swept = t.sweep_count(1, t.capacity() / WAYS);
        assert_eq!((swept.cleared, swept.live), (1, 2));
        assert_eq!(t.conns().all().get(1, 1), (0, 0), "the orphan's count went with it");
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
    fn entry_is_16_bytes_and_group_is_one_line() {
        assert_eq!(ENTRY_BYTES, 16);
        assert_eq!(std::mem::size_of::<Group>(), 64);
        assert_eq!(std::mem::align_of::<Group>(), 64);
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
        let t = FlowTable::with_seed(1 << 22, [1, 2]); // 64 MiB of entries
        assert_eq!(t.bytes(), 64 << 20);
        let grown = rss_kib().saturating_sub(before);
        assert!(grown < 16 << 10, "an empty table made {grown} KiB resident");
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
        let mut t = FlowTable::with_seed(8, [5, 6]); // two groups: every key sees both
        for i in 0..8u32 {
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
        // The victim: all established, so the one expiring soonest (key 7).
        let idx = t.make_room_hashed(&h, 0);
        assert_eq!(t.get(idx).key, key(7));
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
        let mut t = FlowTable::with_seed(8, [5, 6]); // two groups: every key sees both
        for i in 0..8u32 {
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
        // TCP keys (`key`), so TCP states: a TCP key in the UDP state breaks `put`'s
        // invariant (a debug assertion).
        let states =
            [TcpState::SynRecv, TcpState::Established, TcpState::FinWait, TcpState::TimeWait];
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
                        if t.groups[g].lane(i).occupied() {
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
