//! `process`: one frame in, one verdict out, in this order (the README's "Forwarding
//! semantics"): 1 destination MAC ours or broadcast, 2 Ethernet with at most one 802.1Q
//! tag and no more than `dataplane.mtu` bytes after it, 3 ARP, 4 IPv4 validated (a later
//! fragment follows its first), 5 the service, 6 the flow entry or a new one (the
//! scheduler), 7 the MAC rewrite, 8 transmitted by the caller on its own queue.
//!
//! Pure and DPDK-free: it reads the snapshot, reads and writes only the worker's own
//! [`LocalState`], and rewrites the frame in place (the 12 MAC bytes for a forward; the
//! whole ARP or ICMP message for a reply). It never allocates and never panics: every
//! length is validated by a `wire` view before it is used.
use super::conns::ConnCounts;
use super::flow::{FlowEntry, FlowKey, FlowTable, Hashed, HitView, KeyBytes, Lookup, WireKey};
use super::frag::{FragKey, Frags, NotHeld};
use super::persist::{Created, PersistStats, Template, TemplateKey, Templates};
use super::sched;
use super::snapshot::{Service, Snapshot, L2_MASK, MAX_SERVICES};
use super::tcp_state::{self, TcpState};
use super::verdict::{DropReason, Neighbor, Verdict};
use super::{MidFlow, OnGone, SchedKind, SynFlood, Tick};
use crate::wire::arp::{self, ArpPacket};
use crate::wire::ethernet::{self, EtherType};
use crate::wire::icmp::{self, IcmpPacket};
use crate::wire::ipv4::{protocol, Ipv4Packet};
use crate::wire::tcp::{flags, TcpPacket};
use crate::wire::udp::UdpPacket;
use crate::wire::{checksum, Error, Mac};
use std::sync::Arc;

/// Everything a worker owns that the pipeline writes: its flow table, its scheduler
/// cursors (one per service index) and its flood state.
pub struct LocalState {
    pub flows: FlowTable,
    cursors: Box<[u32]>,
    /// Per service: the current weight of wrr's gcd stepping (long cycles only).
    step_cw: Box<[u32]>,
    /// Persistence templates: shared by all workers ([`super::persist`]).
    pub templates: Arc<Templates>,
    /// This worker's template writes.
    pub persist: PersistStats,
    /// Fragments: datagrams' servers and the hold area ([`super::frag`]).
    pub frags: Frags,
    /// Other workers exist: an ICMP error about a flow with no entry here is handed to
    /// them ([`Verdict::IcmpRedirect`]).
    pub peers: bool,
    /// The frame being processed was handed over by another worker (set by the worker
    /// around the call): it is not handed on again.
    pub redirected: bool,
    pub flood: Flood,
    /// TCP segments without SYN and without an entry scheduled (`mid_flow = schedule`).
    pub mid_flow_scheduled: u64,
}

/// `syn_flood = "stateless"` bookkeeping of one worker.
///
/// The worker is *under pressure* until `until`: each SYN that found both of its table
/// groups full pushes `until` to one SYN_RECV timeout ahead (the time a handshake
/// started then may take). Under pressure, every new TCP flow is routed by its hash
/// ([`Hashed::choose`] over the service's schedule) instead of the scheduler's cursor,
/// stored when there is a free entry and not stored when there is none; and a TCP
/// segment without an entry (the ACK of such a handshake) is routed by the same hash
/// instead of being dropped, and stored unless its candidates are all ESTABLISHED.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flood {
    pub until: Tick,
    /// SYNs forwarded without an entry (their groups were full).
    pub stateless_syns: u64,
    /// Segments without an entry routed by hash under pressure (handshake ACKs).
    pub hashed_segments: u64,
}

impl Flood {
    #[inline(always)]
    pub fn active(&self, now: Tick) -> bool {
        now < self.until
    }

    /// A SYN forwarded without an entry (its groups were full): under pressure for one
    /// SYN_RECV timeout from now.
    #[inline(always)]
    fn forwarded_stateless(&mut self, snap: &Snapshot, now: Tick) {
        self.until = snap.timeouts.expires(TcpState::SynRecv, now);
        self.stateless_syns += 1;
    }
}

impl LocalState {
    /// `worker` offsets the scheduler cursors so workers start on different backends.
    pub fn new(flow_capacity: usize, worker: usize) -> Self {
        Self::with_table(FlowTable::new(flow_capacity), worker)
    }
    pub fn with_table(flows: FlowTable, worker: usize) -> Self {
        Self::sharing(flows, worker, Templates::new(PRIVATE_TEMPLATES))
    }
    /// A worker's state with the templates all workers share.
    pub fn sharing(flows: FlowTable, worker: usize, templates: Arc<Templates>) -> Self {
        LocalState {
            flows,
            cursors: vec![worker as u32; MAX_SERVICES].into_boxed_slice(),
            step_cw: vec![0; MAX_SERVICES].into_boxed_slice(),
            templates,
            persist: PersistStats::default(),
            frags: Frags::new(),
            peers: false,
            redirected: false,
            flood: Flood::default(),
            mid_flow_scheduled: 0,
        }
    }
}

/// Templates of a [`LocalState`] that shares none (tests, benches).
const PRIVATE_TEMPLATES: usize = 4096;

use DropReason as D;

/// Processes one frame. See the module docs for the order of checks.
#[inline]
pub fn process(frame: &mut [u8], snap: &Snapshot, local: &mut LocalState, now: Tick) -> Verdict {
    process_hinted(frame, snap, local, now, &None)
}

/// [`process`], reusing the flow hash from [`prefetch_burst`] when its key is this
/// frame's (checked; a stale or absent hint only costs a hash). Always inlined: the
/// worker calls it for every frame where a run of the fast path ([`forward_hits`])
/// stopped, and a call returning the `Verdict` through memory, with the big function's
/// prologue and epilogue, cost ~10 % of the flood's rate.
#[inline(always)]
pub fn process_hinted(
    frame: &mut [u8],
    snap: &Snapshot,
    local: &mut LocalState,
    now: Tick,
    hint: &Hint,
) -> Verdict {
    if let Some(p) = hint.as_ref().filter(|p| p.fast != Fast::Slow) {
        if p.fast.hit() {
            let flows = local.flows.hit_view();
            let renew = Renewal::at(snap, now);
            if let Some(slot) = fast_hit(frame, snap, flows, now, p, p.fast, &renew) {
                return Verdict::Forward { slot, new_flow: false };
            }
        }
        if let Some(v) = clean(frame, snap, local, now, p) {
            return v;
        }
    }
    // 1-2. Ethernet (+ one 802.1Q tag), destination MAC filter, the MTU.
    let l2 = match ethernet::parse(frame) {
        Ok(l2) => l2,
        Err(_) => return Verdict::Drop(D::Runt),
    };
    let dst = ethernet::dst(frame);
    if dst != snap.port_mac.0 && dst != Mac::BROADCAST.0 {
        return Verdict::Drop(D::NotForUs);
    }
    if frame.len() - l2.l3_offset > usize::from(snap.mtu) {
        return Verdict::Drop(D::Oversize);
    }
    match l2.ethertype {
        EtherType::IPV4 => ipv4(frame, l2.l3_offset, snap, local, now, hint),
        EtherType::ARP => arp_in(frame, l2.l3_offset, snap),
        _ => Verdict::Drop(D::UnsupportedEthertype),
    }
}

/// The flow key of a frame that looks like IPv4 TCP/UDP (untagged or one tag), for
/// [`hint`] when [`fast_key`] does not pass. Reads only what it bounds-checks; a hint,
/// not validation.
#[inline(always)]
pub fn peek_key(frame: &[u8]) -> Option<FlowKey> {
    let l2 = ethernet::parse(frame).ok()?;
    if l2.ethertype != EtherType::IPV4 {
        return None;
    }
    let ip = &frame[l2.l3_offset..];
    if ip.len() < 20 {
        return None;
    }
    let proto = ip[9];
    if proto != protocol::TCP && proto != protocol::UDP {
        return None;
    }
    let hl = usize::from(ip[0] & 0xf) * 4;
    if ip.len() < hl + 4 {
        return None;
    }
    let be32 = |at: usize| u32::from_be_bytes([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]);
    Some(FlowKey {
        saddr: be32(12),
        daddr: be32(16),
        sport: u16::from_be_bytes([ip[hl], ip[hl + 1]]),
        dport: u16::from_be_bytes([ip[hl + 2], ip[hl + 3]]),
        proto,
    })
}

/// What [`hint`] learned about one packet, handed to [`process_hinted`]: its flow key
/// and hash and which path it may take ([`fast_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peeked {
    pub key: WireKey,
    pub hash: Hashed,
    pub fast: Fast,
}

/// Which path a packet may take. The fast path ([`fast_hit`]) for one that would not
/// change its flow's state (a TCP segment without SYN, FIN or RST; UDP), whose entry
/// must then be in that state (ESTABLISHED; UDP); [`clean`] for one whose headers
/// [`fast_key`] found good (untagged IPv4 to the port's MAC, no options, not a
/// fragment, consistent lengths) that the fast path does not forward; the full parse
/// for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fast {
    /// The full path ([`process`]).
    Slow = 0,
    Established = TcpState::Established as u8,
    Udp = TcpState::Udp as u8,
    /// Headers good, but a SYN, FIN or RST: [`clean`]. (Not a stored state.)
    Clean = 0x80,
}

impl Fast {
    /// The fast path may forward it (if its entry is in this state).
    #[inline(always)]
    fn hit(self) -> bool {
        matches!(self, Fast::Established | Fast::Udp)
    }
}

/// The TCP flags that change a flow's state (or make one): a segment carrying any of
/// them takes the full path.
const STATE_FLAGS: u8 = flags::SYN | flags::FIN | flags::RST;

/// [`Peeked`], or nothing for a frame that is not IPv4 TCP/UDP.
pub type Hint = Option<Peeked>;

/// The common case, checked once at fixed offsets: an untagged IPv4 frame to the port's
/// MAC, header without options, not a fragment, TCP or UDP with a consistent header,
/// within the MTU. Such a packet on an existing flow takes the fast path, and one the
/// fast path does not forward takes [`clean`], which skips the parsing; anything else
/// (VLAN, options, fragments, ICMP, ARP, broadcast, short or inconsistent lengths) goes
/// through [`process`]'s full checks. Every condition here is one that `process` checks
/// too, so the fast path never forwards what `process` would drop, but for the IPv4
/// header checksum (see [`fast_hit`]).
#[inline(always)]
pub fn fast_key(f: &[u8], snap: &Snapshot) -> Option<(WireKey, Fast)> {
    fast_key_within(f, snap, frame_max(snap))
}

/// The longest frame [`fast_key`] passes: the MTU's, the MTU capped below 2^16 - 1 (the
/// config's is at most 9,600), which keeps every total length below TCP_MIN_TOTAL's
/// "never".
#[inline(always)]
fn frame_max(snap: &Snapshot) -> usize {
    14 + usize::from(snap.mtu.min(u16::MAX - 1))
}

/// [`fast_key`] with [`frame_max`] computed once by the caller (the hit loop: inside it,
/// LLVM reloaded and capped the MTU on every hit in one of two loops it inlined).
#[inline(always)]
fn fast_key_within(f: &[u8], snap: &Snapshot, max: usize) -> Option<(WireKey, Fast)> {
    // Every frame on the wire is at least 60 bytes; shorter ones take the full path. The
    // first 54 bytes as an array: the reads below need no bounds checks.
    let h: &[u8; 54] = crate::mem::head_within(f, max)?;
    let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    // Destination MAC ours (not broadcast), IPv4 without a tag, version 4 and IHL 5 (one
    // masked compare).
    let first: &[u8; 16] = h[..16].try_into().expect("16 bytes");
    if !crate::mem::eq_masked16(first, &snap.l2_want, &L2_MASK) {
        return None;
    }
    // Compared in 16 bits, so no instruction widens it: `f.len() - 14` is at most the
    // capped MTU.
    let total = be16(16);
    if total > (f.len() - 14) as u16 {
        return None;
    }
    // Bytes 20..24 as one word: the flags and fragment offset (no MF flag, no offset;
    // DF may be set), the TTL (any) and the protocol, one mask and one compare each for
    // TCP and UDP.
    let frag_proto = u32::from_le_bytes(h[20..24].try_into().expect("4 bytes")) & 0xff00_ff3f;
    let fast = match frag_proto {
        // Data offset between 5 words and the segment (so the datagram holds at least
        // 40 bytes); a segment with SYN, FIN or RST changes its flow's state (or makes
        // one).
        FRAG_PROTO_TCP if TCP_MIN_TOTAL[usize::from(h[46])] <= total => {
            if h[47] & STATE_FLAGS == 0 {
                Fast::Established
            } else {
                Fast::Clean
            }
        }
        // Length field between 8 and the datagram.
        FRAG_PROTO_UDP if be16(38) >= 8 && 20 + u32::from(be16(38)) <= u32::from(total) => {
            Fast::Udp
        }
        _ => return None,
    };
    Some((key_at(h), fast))
}

/// Bytes 20..24 of an unfragmented TCP or UDP packet's frame (no options, no tag), read
/// as a little-endian word under the mask 0xff00_ff3f (the fragment offset and MF, the
/// protocol).
const FRAG_PROTO_TCP: u32 = (protocol::TCP as u32) << 24;
const FRAG_PROTO_UDP: u32 = (protocol::UDP as u32) << 24;

/// The least IPv4 total length a TCP segment needs, by its data-offset byte (byte 46 of
/// the frame): 20 + 4 × the offset, or 2^16 - 1 for an offset below 5 words, which the
/// full path drops (`l4_malformed`): above any total [`fast_key`] lets through (it
/// bounds the frame by an MTU below that). One load where the two tests were eight
/// instructions.
static TCP_MIN_TOTAL: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut b = 0;
    while b < 256 {
        let words = b as u16 >> 4;
        t[b] = if words >= 5 { 20 + 4 * words } else { u16::MAX };
        b += 1;
    }
    t
};

/// The flow key at the fixed offsets where an untagged IPv4 frame without options holds
/// it: protocol at byte 23, addresses 26..34, ports 34..38 (one function for
/// [`fast_key`] and stage 1, whose hash the fast path uses for `fast_key`'s key).
#[inline(always)]
fn key_at(h: &[u8; 54]) -> WireKey {
    let (addrs, ports) = (&h[26..34], &h[34..38]);
    WireKey::from_wire(
        addrs.try_into().expect("8 bytes"),
        ports.try_into().expect("4 bytes"),
        h[23],
    )
}

/// [`key_at`] of any frame of at least 54 bytes, whatever it is, and whether byte 47
/// (the TCP flags there) has SYN, FIN or RST; `None` for a shorter frame. For a frame
/// [`fast_key`] passes, the key (and its hash) is `fast_key`'s. (Byte 47 of a UDP
/// datagram is payload: the flag test then only decides one prefetch.)
#[inline(always)]
fn key_at_fixed_offsets(f: &[u8]) -> Option<(WireKey, bool)> {
    let h: &[u8; 54] = f.get(..54)?.try_into().ok()?;
    Some((key_at(h), h[47] & STATE_FLAGS != 0))
}

/// Stage 1 ([`stage1`]) for every frame of a burst, so the group lines of all its
/// packets load at once. `hashes` (scratch, at least as long as `frames`; no
/// allocation) receives each frame's hash. (The worker runs [`stage1`] as it receives
/// the burst.)
#[inline]
pub fn prefetch_burst<'a>(
    frames: impl Iterator<Item = &'a [u8]>,
    local: &LocalState,
    hashes: &mut [u64],
) {
    for (h, f) in hashes.iter_mut().zip(frames) {
        *h = stage1(f, local);
    }
}

/// Stage 1 of [`prefetch_burst`] for one frame: hashes the key at fixed offsets
/// ([`key_at_fixed_offsets`]) without looking at anything else, prefetches the line
/// of its first group (and of its second for a SYN, FIN or RST, likely a miss), and
/// returns the 64-bit hash ([`FlowTable::hash_bits`]; 0 for a frame too short to hold a
/// key). The checks come once, in [`forward_hits`] for the hits and in [`hint`] for
/// the frames it stops at, which take the hash from here; a frame whose key is
/// elsewhere, tagged or with options, is hashed again by [`hint`] (its prefetch here
/// was of a line it does not use).
#[inline(always)]
pub fn stage1(f: &[u8], local: &LocalState) -> u64 {
    match key_at_fixed_offsets(f) {
        Some((key, miss)) => {
            let h = local.flows.hash_bits(&key);
            local.flows.prefetch_groups(&local.flows.hashed(h), miss);
            h
        }
        None => 0,
    }
}

/// The hint of a frame for [`process_hinted`]: its key, hash (from [`prefetch_burst`]'s
/// `h` when [`fast_key`] passes, so the key is at the offsets stage 1 hashed) and which
/// path it may take; for another IPv4 TCP/UDP frame the key [`peek_key`] finds, hashed
/// here; `None` for the rest.
#[inline(always)]
pub fn hint(frame: &[u8], h: u64, snap: &Snapshot, local: &LocalState) -> Hint {
    match fast_key(frame, snap) {
        Some((key, fast)) => {
            debug_assert_eq!(h, local.flows.hash_bits(&key));
            Some(Peeked { key, hash: local.flows.hashed(h), fast })
        }
        None => peek_key(frame).map(|k| {
            let key = WireKey::from(&k);
            Peeked { key, hash: local.flows.hash_wire(&key), fast: Fast::Slow }
        }),
    }
}

/// The fast path: a packet [`fast_key`] passed, on a live flow whose server serves and
/// whose TCP state this packet does not change (ESTABLISHED, no SYN, FIN or RST; or
/// UDP). The flow is found first (as IPVS's `ip_vs_in` looks up the connection before
/// the service): its server's slot being present, and the frame's destination being
/// that slot's service's VIP, stand for its service and server both being configured.
/// The entry's expiry is renewed and the MACs rewritten, exactly what [`process`] does
/// for such a packet, without re-reading the headers, finding the service or summing
/// the IPv4 header: DR never changes the IP header, so its checksum is the sender's
/// business and the real server's kernel verifies it (as Katran and VPP with checksum
/// offload do); a corrupt header cannot create a flow, because a miss goes through
/// `process`, which verifies it. `None`: take the full path.
#[inline(always)]
fn fast_hit(
    frame: &mut [u8],
    snap: &Snapshot,
    flows: HitView,
    now: Tick,
    p: &Peeked,
    state: Fast,
    renew: &Renewal,
) -> Option<u16> {
    // What [`fast_key`] passed: at least 54 bytes (one bounds check, for both uses).
    let head: &mut [u8; 54] = frame.get_mut(..54)?.try_into().ok()?;
    // The key as 16 bytes of the frame, compared in a vector register (`p.key` is the
    // same key, in the general registers the hit needs for the rest).
    let key = KeyBytes(head[26..42].try_into().expect("16 bytes"));
    debug_assert_eq!(key.wire(p.key.proto), p.key);
    // Live in the state the fast path keeps (`state`, which is `p.fast`: the leading-hits
    // loop passes it as a constant): ESTABLISHED for TCP, UDP for UDP; compared with the
    // slot's route in one word ([`Entry::route_key`](super::flow::Entry::route_key)).
    debug_assert_eq!(state, p.fast);
    let mut e = flows.hit_entry(&key, &p.hash, now, state as u8)?;
    let route = e.route_key();
    let l2 = snap.serving_l2_to(route, p.key.daddr_wire())?;
    e.refresh(renew.of(state));
    let macs: &mut [u8; 12] = (&mut head[..12]).try_into().expect("12 bytes");
    *macs = *l2; // a fixed-size copy: no call (see ethernet::set_macs)
    Some(route as u16) // the slot half
}

/// The expiry a fast hit renews its entry to, by the state it keeps (the [`Fast`] value,
/// which is the stored state's byte): `now` plus the ESTABLISHED or the UDP timeout,
/// computed once a burst. An array indexed by the state, so a hit takes its renewal
/// with one load and no select.
#[derive(Clone, Copy)]
struct Renewal([Tick; 8]);

impl Renewal {
    #[inline(always)]
    fn at(snap: &Snapshot, now: Tick) -> Renewal {
        let t = &snap.timeouts;
        let mut r = [0; 8];
        for s in [TcpState::Established, TcpState::Udp] {
            r[s as usize] = t.expires(s, now);
        }
        Renewal(r)
    }

    /// The renewed expiry for an entry the fast path found in state `fast`.
    #[inline(always)]
    fn of(&self, fast: Fast) -> Tick {
        self.0[fast as usize & 7]
    }
}

/// Where a burst stands between [`forward_hits`]' runs: the next frame to forward. One
/// a burst, from `Cursor::default()`.
#[derive(Clone, Copy, Default)]
pub struct Cursor {
    /// The burst's next frame: the one after the last run's hits, until the caller has
    /// taken it by the full path ([`Cursor::skip`]).
    pub at: usize,
}

impl Cursor {
    /// Frame `at` went by the full path: the next run starts after it.
    #[inline(always)]
    pub fn skip(&mut self) {
        self.at += 1;
    }
}

/// The fast path over a burst from frame `cur.at`: frames (with their [`prefetch_burst`]
/// hashes, `hashes` being the whole burst's) that [`fast_key`] passes are forwarded by
/// [`fast_hit`] (and, under a SYN flood, by [`flood_syn`]) in order until the first that
/// cannot be, where the run stops; the caller takes that one by [`process_hinted`] with
/// its [`hint`], [`Cursor::skip`]s it and runs this again on the frames after it. So
/// frames are decided in order (none overtakes an earlier one of its flow, whose state
/// it may have changed) and one frame the fast path cannot forward (a SYN, a FIN) costs
/// the frames after it nothing. The headers are checked here, once: no hint is written
/// and read back for a frame this loop forwards. `frames` and `hashes` are the whole
/// burst's (the frames before `cur.at` are passed over). Returns how many were
/// forwarded, from `cur.at` on (`cur.at` moves past them); each one is handed to
/// `on_hit` with its backend slot, its length and whether it is a new connection
/// (`process`'s `Verdict::Forward`: `false` for a hit, `true` for a SYN routed by hash),
/// for the caller's counters. One tight loop: the table, the snapshot and the clock stay
/// in registers. `hashes` holds [`AHEAD`] more after the burst's (any values: the
/// padding of the worker's hash array): each frame's turn starts loading the group line
/// of the frame `AHEAD` places after it (a slice without them ends a run `AHEAD`
/// frames before the burst's end, and those frames go by the caller's full path).
#[inline(always)]
pub fn forward_hits<'a>(
    frames: impl Iterator<Item = &'a mut [u8]>,
    hashes: &[u64],
    cur: &mut Cursor,
    snap: &Snapshot,
    local: &mut LocalState,
    now: Tick,
    on_hit: impl FnMut(u16, usize, bool),
) -> usize {
    // One loop for each flood state, so the loop tests nothing that cannot change in
    // it (the test and the flag's register cost four instructions a hit).
    let hits = if local.flood.active(now) {
        leading::<true>(frames, hashes, cur, snap, local, now, on_hit)
    } else {
        leading::<false>(frames, hashes, cur, snap, local, now, on_hit)
    };
    cur.at += hits;
    hits
}

/// How many frames ahead [`forward_hits`] prefetches a frame's group line, again: stage 1
/// did for the whole burst as it was received, but in a table far bigger than the cache
/// (1M flows, 32 MiB) the frames late in a burst still waited on their lines; with a
/// second prefetch 16 frames ahead the bench's 1M hit went from 34-42 to 24-26 ns
/// alternating with the build before (8 ahead did as well, 4 less; stage 1 prefetching
/// only the first 16 frames, 25 ns), three instructions a packet with the scaled group
/// offsets (perf/README.md's step table).
pub const AHEAD: usize = 16;

/// [`forward_hits`]' loop, under a flood (`FLOOD`: [`Flood::active`] when the run started) with [`flood_syn`] for the SYNs or
/// not (then a SYN ends it, as every other frame the fast path does not forward).
#[inline(always)]
fn leading<'a, const FLOOD: bool>(
    frames: impl Iterator<Item = &'a mut [u8]>,
    hashes: &[u64],
    cur: &mut Cursor,
    snap: &Snapshot,
    local: &mut LocalState,
    now: Tick,
    mut on_hit: impl FnMut(u16, usize, bool),
) -> usize {
    // Computed here, once, and read through an opaque reference: without the black box
    // LLVM sinks the two saturating adds into the loop (four instructions a hit,
    // callgrind), and with the value itself black-boxed it copies it every iteration.
    let (renewal, max) = (Renewal::at(snap, now), frame_max(snap));
    let (from, renew) = (cur.at, std::hint::black_box(&renewal));
    let mut flows = local.flows.hit_view();
    // The burst's frames and hashes from `from` on, at one index off one base (the
    // frames' pointers and lengths sit beside the hashes in the worker's `Received`),
    // with the hash AHEAD places on.
    let ahead = hashes.get(AHEAD..).unwrap_or_default();
    let (mut n, mut run) = (0, frames.zip(hashes.iter().zip(ahead)));
    if from > 0 {
        run.nth(from - 1); // (a `skip` tested its count on every hit)
    }
    for (f, (&h, &later)) in run {
        flows.prefetch(later);
        let Some((key, fast)) = fast_key_within(f, snap, max) else { break };
        let p = Peeked { key, hash: flows.hashed(h), fast };
        let len = f.len();
        if fast.hit() {
            // One hit for each state the fast path keeps, the state a constant in each
            // (its compare and the renewal's index immediates, no register holding it
            // through the hit). Tried three times before, at one instruction less or
            // more; in bursts of 64, 122.2 -> 119.3 a packet and +3 % at 64k flows
            // (perf/README).
            let hit = if fast == Fast::Established {
                fast_hit(f, snap, flows.reborrow(), now, &p, Fast::Established, renew)
            } else {
                fast_hit(f, snap, flows.reborrow(), now, &p, Fast::Udp, renew)
            };
            let Some(slot) = hit else { break };
            on_hit(slot, len, false);
        } else {
            // A SYN, FIN or RST: only a SYN under a flood stays in this loop.
            if !FLOOD {
                break;
            }
            debug_assert_eq!(h, local.flows.hash_bits(&key));
            let Some(slot) = flood_syn(f, snap, local, now, &p) else { break };
            on_hit(slot, len, true);
            flows = local.flows.hit_view();
        }
        n += 1;
    }
    n
}

/// A SYN under a flood ([`Flood`]) whose groups are both full, in `syn_flood =
/// "stateless"`: forwarded without an entry, exactly as [`process`] would (its checks
/// in [`clean_key`], the service and the lookup as in [`segment`], the choice by
/// [`choose`] as in [`new_flow`]), without
/// the full path's calls and copies: under a flood nearly every frame is one of these.
/// `None` for every other frame `fast_key` passed that is not a hit (a FIN or RST, a
/// SYN with ACK, a bad checksum, the director's own address, no such service, an
/// entry or a free one in its groups, no backend, ...): [`process_hinted`] takes it. Out of line,
/// and only in the loop [`forward_hits`] runs under a flood: the registers the call
/// needs saved cost the hits in that loop ~16 instructions each (callgrind).
#[inline(never)]
fn flood_syn(
    frame: &mut [u8],
    snap: &Snapshot,
    local: &mut LocalState,
    now: Tick,
    p: &Peeked,
) -> Option<u16> {
    let head: &mut [u8; 54] = frame.get_mut(..54)?.try_into().ok()?;
    if !new_conn(head[47]) || snap.syn_flood != SynFlood::Stateless {
        return None;
    }
    let key = clean_key(head[14..34].try_into().expect("20 bytes"), snap, p).ok()?;
    let (_, svc) = snap.service(key.daddr, key.dport, protocol::TCP)?;
    if local.flows.lookup_hashed(&p.key, &p.hash, now) != Lookup::Full {
        return None;
    }
    let slot = choose(svc, snap, local, (&p.key, &p.hash), now)?;
    let l2 = &snap.backends.get(usize::from(slot))?.l2;
    // Last, so that the full path never runs the search (which keeps a backoff) again
    // for this frame: room made by moves, and the full path stores the SYN there.
    if local.flows.room_by_moves(&p.hash, now).is_some() {
        return None;
    }
    local.flood.forwarded_stateless(snap, now);
    let macs: &mut [u8; 12] = (&mut head[..12]).try_into().expect("12 bytes");
    *macs = *l2;
    Some(slot)
}

/// Sends a reply back where the frame came from: dst = old src, src = port MAC.
#[inline]
fn turn_around(frame: &mut [u8], port_mac: Mac) {
    let src = ethernet::src(frame);
    frame[0..6].copy_from_slice(&src);
    frame[6..12].copy_from_slice(&port_mac.0);
}

// 3. ARP: answer for VIPs and the director IP; learn backends' MACs.
fn arp_in(frame: &mut [u8], off: usize, snap: &Snapshot) -> Verdict {
    let (oper, sha, spa, tpa) = match ArpPacket::new_checked(&frame[off..]) {
        Ok(a) => (a.oper(), a.sha(), a.spa(), a.tpa()),
        Err(_) => return Verdict::Drop(D::ArpMalformed),
    };
    let mac = Mac(sha);
    let learned = (snap.is_backend_ip(spa) && !mac.is_multicast() && mac != Mac::ZERO)
        .then_some(Neighbor { ip: spa, mac });
    let for_dip = tpa == snap.dip && snap.dip != 0;
    // With a kernel interface the kernel answers for the director IP, and sees the
    // replies to it (drlb still learns real servers' MACs from them).
    if snap.kernel && for_dip {
        return Verdict::Kernel { learned };
    }
    let for_us = snap.is_vip(tpa) || for_dip;
    // A gratuitous ARP (sender == target) announces; it is not a question to answer.
    if oper == arp::OP_REQUEST && for_us && spa != tpa {
        // The view was validated just above on the same bytes.
        if let Ok(mut a) = ArpPacket::new_checked(&mut frame[off..]) {
            a.make_reply(snap.port_mac.0);
        }
        turn_around(frame, snap.port_mac);
        return Verdict::ArpReply { learned };
    }
    match learned {
        Some(n) => Verdict::ArpLearned(n),
        None => Verdict::Drop(D::ArpIgnored),
    }
}

// 4-8. IPv4.
fn ipv4(
    frame: &mut [u8],
    off: usize,
    snap: &Snapshot,
    local: &mut LocalState,
    now: Tick,
    hint: &Hint,
) -> Verdict {
    let (saddr, daddr, proto, hl, total, frag) = match Ipv4Packet::new_checked(&frame[off..]) {
        Ok(ip) => {
            if !ip.verify_checksum() {
                return Verdict::Drop(D::Ipv4BadChecksum);
            }
            let frag = ip.is_fragment().then(|| {
                let k = FragKey {
                    saddr: ip.src(),
                    daddr: ip.dst(),
                    id: ip.ident(),
                    proto: ip.protocol(),
                };
                (k, ip.is_non_first_fragment())
            });
            (ip.src(), ip.dst(), ip.protocol(), ip.header_len(), ip.total_len(), frag)
        }
        Err(Error::Truncated) => return Verdict::Drop(D::Ipv4Truncated),
        Err(Error::Malformed) => return Verdict::Drop(D::Ipv4Malformed),
    };
    if snap.for_kernel(daddr) {
        return Verdict::Kernel { learned: None };
    }
    match frag {
        Some((k, true)) if proto == protocol::TCP || proto == protocol::UDP => {
            return later_fragment(frame, &k, snap, local, now);
        }
        Some((_, true)) => return Verdict::Drop(D::NoService),
        _ => {}
    }
    let l4 = off + hl..off + total;
    let (sport, dport, tcp_flags) = match proto {
        protocol::TCP => match TcpPacket::new_checked(&frame[l4]) {
            Ok(t) => (t.src_port(), t.dst_port(), t.flags()),
            Err(_) => return Verdict::Drop(D::L4Malformed),
        },
        // A first fragment holds the start of the datagram only: its UDP length is the
        // whole datagram's, so only the ports are read.
        protocol::UDP if frag.is_some() => match &frame[l4] {
            [a, b, c, d, _, _, _, _, ..] => {
                (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]), 0)
            }
            _ => return Verdict::Drop(D::L4Malformed),
        },
        protocol::UDP => match UdpPacket::new_checked(&frame[l4]) {
            Ok(u) => (u.src_port(), u.dst_port(), 0),
            Err(_) => return Verdict::Drop(D::L4Malformed),
        },
        protocol::ICMP => return icmp_in(frame, off, daddr, snap, local, now),
        _ => return Verdict::Drop(D::NoService),
    };
    let key = FlowKey { saddr, daddr, sport, dport, proto };
    let wire = WireKey::from(&key);
    // The prefetch stage's hash, if its key is this packet's.
    let h = hint.as_ref().filter(|p| p.key == wire).map(|p| p.hash);
    let s = Segment { key, wire, h, tcp_flags, frag: frag.map(|(k, _)| k) };
    segment(frame, &s, snap, local, now)
}

/// A TCP or UDP packet (not a later fragment) that passed step 4: what steps 5-8 read.
struct Segment {
    key: FlowKey,
    /// `key` as the flow table takes it.
    wire: WireKey,
    /// Its flow hash, if the prefetch stage made it.
    h: Option<Hashed>,
    /// 0 for UDP.
    tcp_flags: u8,
    /// A first fragment: its datagram, whose later fragments follow it.
    frag: Option<FragKey>,
}

/// A frame [`fast_key`] passed that the fast path did not forward (a SYN, FIN or RST; a
/// flow without an entry; an entry in another state, or whose server is gone). Its
/// headers were validated at fixed offsets, so all that is left of steps 1-4 is the
/// IPv4 header checksum (verified here: such a packet may create a flow) and the
/// director's own address; then steps 5-8 as for any packet. `None` (not for a frame
/// `fast_key` passed): take the full path.
#[inline]
fn clean(
    frame: &mut [u8],
    snap: &Snapshot,
    local: &mut LocalState,
    now: Tick,
    p: &Peeked,
) -> Option<Verdict> {
    let ip: &[u8; 20] = frame.get(14..34)?.try_into().ok()?;
    let key = match clean_key(ip, snap, p) {
        Ok(key) => key,
        Err(v) => return Some(v),
    };
    let tcp_flags = if key.proto == protocol::TCP { *frame.get(47)? } else { 0 };
    let s = Segment { key, wire: p.key, h: Some(p.hash), tcp_flags, frag: None };
    Some(segment(frame, &s, snap, local, now))
}

/// What is left of steps 1-4 for a frame [`fast_key`] passed, whose IPv4 header is `ip`:
/// its header checksum (such a packet may create a flow) and the director's own
/// address. The flow key, or the verdict for a frame that goes no further. One piece
/// for [`clean`] and [`flood_syn`], so the two cannot come to check differently.
#[inline(always)]
fn clean_key(ip: &[u8; 20], snap: &Snapshot, p: &Peeked) -> Result<FlowKey, Verdict> {
    if !checksum::verify20(ip) {
        return Err(Verdict::Drop(D::Ipv4BadChecksum));
    }
    let key = FlowKey::from(&p.key);
    if snap.for_kernel(key.daddr) {
        return Err(Verdict::Kernel { learned: None });
    }
    Ok(key)
}

/// IPVS `is_new_conn`: a SYN without ACK (and, here, without RST), whatever else is set.
#[inline(always)]
fn new_conn(tcp_flags: u8) -> bool {
    tcp_flags & (flags::SYN | flags::ACK | flags::RST) == flags::SYN
}

/// Steps 5-8 for a TCP or UDP packet that passed step 4. Always inlined: returned
/// through memory, its `Verdict` was written field by field and read back as one
/// 16-byte load, a store-forwarding stall on every SYN (18 % of the worker loop's
/// samples under a flood).
#[inline(always)]
fn segment(
    frame: &mut [u8],
    s: &Segment,
    snap: &Snapshot,
    local: &mut LocalState,
    now: Tick,
) -> Verdict {
    let (key, tcp_flags) = (&s.key, s.tcp_flags);
    // 5. Service match.
    let Some((si, svc)) = snap.service(key.daddr, key.dport, key.proto) else {
        return Verdict::Drop(D::NoService);
    };
    // 6. Flow lookup, scheduling.
    let tcp = key.proto == protocol::TCP;
    let new_syn = tcp && new_conn(tcp_flags);
    let h = match s.h {
        Some(h) => h,
        None => local.flows.hash_wire(&s.wire),
    };
    let (slot, new_flow) = match local.flows.lookup_hashed(&s.wire, &h, now) {
        Lookup::Hit(idx) => {
            let e = local.flows.get(idx);
            // A backend that is gone: down (its check failed, or its MAC is unknown), or
            // removed from the service; the service's policy for each says what its
            // flows do.
            let gone = match snap.backend(e.slot, e.incarnation) {
                Some(b) if b.serving() => None,
                Some(_) => Some((svc.policy.on_down, D::BackendDown)),
                None => Some((svc.policy.on_removed, D::BackendRemoved)),
            };
            let keep = match gone {
                // A serving backend keeps its flows, draining or not, unless a fresh SYN
                // arrives on a draining backend or a closing entry (IPVS
                // conn_reuse_mode): that is a new connection, scheduled afresh.
                None => {
                    let b = &snap.backends[usize::from(e.slot)];
                    !(new_syn && (b.weight == 0 || e.state().is_closing()))
                }
                Some(_) if new_syn => false,
                Some((OnGone::Drop, r)) => return Verdict::Drop(r),
                Some((OnGone::Expire, r)) => {
                    local.flows.remove(idx);
                    return Verdict::Drop(r);
                }
                Some((OnGone::Reschedule, _)) => false,
            };
            if keep {
                let st = if tcp { tcp_state::next(e.state(), tcp_flags) } else { TcpState::Udp };
                local.flows.touch(idx, st, snap.timeouts.expires(st, now));
                (e.slot, false)
            } else {
                let Some(slot) = pick(svc, si, key, snap, local, now) else {
                    return Verdict::Drop(D::NoBackend);
                };
                let st =
                    if tcp { tcp_state::next(TcpState::None, tcp_flags) } else { TcpState::Udp };
                local.flows.rebind(idx, slot, snap.backends[usize::from(slot)].incarnation);
                local.flows.touch(idx, st, snap.timeouts.expires(st, now));
                (slot, true)
            }
        }
        miss => {
            let free = match miss {
                Lookup::Vacant(idx) => Some(idx),
                // A SYN that `stateless` would store nowhere: room made by moves first
                // (`evict` and `drop` make theirs in `new_flow`).
                _ if new_syn && snap.syn_flood == SynFlood::Stateless => {
                    local.flows.room_by_moves(&h, now)
                }
                _ => None,
            };
            let m = Miss { s, h: &h, new_syn, free, si, svc };
            match new_flow(&m, snap, local, now) {
                Ok(slot) => slot,
                Err(r) => return Verdict::Drop(r),
            }
        }
    };
    // 7. Rewrite the MACs; the IP packet is not touched.
    let b = &snap.backends[usize::from(slot)];
    ethernet::set_macs(frame, &b.l2);
    if let Some(k) = &s.frag {
        // A first fragment: its datagram's later fragments follow it.
        local.frags.first(k, slot, b.incarnation, &b.l2, now);
    }
    // 8. The caller transmits on its own queue.
    Verdict::Forward { slot, new_flow }
}

/// A later fragment of a TCP or UDP datagram (no ports): to its first fragment's server,
/// or held until that comes ([`super::frag`]).
#[inline(never)]
fn later_fragment(
    frame: &mut [u8],
    k: &FragKey,
    snap: &Snapshot,
    local: &mut LocalState,
    now: Tick,
) -> Verdict {
    if !snap.is_vip(k.daddr) {
        return Verdict::Drop(D::NoService);
    }
    match local.frags.lookup(k, now) {
        Some((slot, inc)) => match snap.backend(slot, inc) {
            Some(b) if b.serving() => {
                ethernet::set_macs(frame, &b.l2);
                local.frags.stats.followed += 1;
                Verdict::Forward { slot, new_flow: false }
            }
            Some(_) => Verdict::Drop(D::BackendDown),
            None => Verdict::Drop(D::BackendRemoved),
        },
        None => match local.frags.hold(k, frame, now) {
            Ok(()) => Verdict::FragmentHeld,
            Err(NotHeld::Full) => Verdict::Drop(D::FragmentHoldFull),
            Err(NotHeld::TooBig) => Verdict::Drop(D::FragmentTooBig),
        },
    }
}

/// A packet whose flow has no live entry.
struct Miss<'a> {
    s: &'a Segment,
    h: &'a Hashed,
    new_syn: bool,
    /// A free entry for it, or `None` when both of its table groups are full.
    free: Option<usize>,
    /// Its service, and that service's index in the snapshot.
    si: u16,
    svc: &'a Service,
}

impl Miss<'_> {
    /// Where to store a flow that must not displace an ESTABLISHED one: the free entry,
    /// else the entry its groups would give up if that one is not established.
    fn room_beside_established(&self, local: &mut LocalState, now: Tick) -> Option<usize> {
        self.free.or_else(|| {
            let idx = local.flows.make_room_hashed(self.h, now);
            (!local.flows.is_established(idx, now)).then_some(idx)
        })
    }
}

/// Schedules and (usually) stores a flow that has no entry: step 6's miss,
/// with `syn_flood` deciding what happens when the table has no room (see [`Flood`]).
/// Returns the backend slot and whether this is a new connection. Out of line: the hit
/// path stays small.
#[inline(never)]
fn new_flow(
    m: &Miss,
    snap: &Snapshot,
    local: &mut LocalState,
    now: Tick,
) -> Result<(u16, bool), DropReason> {
    let (si, svc) = (m.si, m.svc);
    let tcp = m.s.key.proto == protocol::TCP;
    let stateless = tcp && snap.syn_flood == SynFlood::Stateless;
    let syn_recv = snap.timeouts.expires(TcpState::SynRecv, now);
    if tcp && !m.new_syn && svc.policy.mid_flow == MidFlow::Schedule {
        return mid_flow(m, snap, local, now);
    }
    if tcp && !m.new_syn {
        // A segment without an entry: the ACK of a handshake whose SYN went statelessly
        // (or a stray). Routed by hash only while under pressure.
        if !(stateless && local.flood.active(now)) {
            return Err(D::TcpNoFlow);
        }
        let slot = choose(svc, snap, local, (&m.s.wire, m.h), now).ok_or(D::NoBackend)?;
        local.flood.hashed_segments += 1;
        if m.s.tcp_flags & (flags::RST | flags::FIN) == 0 {
            match m.room_beside_established(local, now) {
                // Stored as SYN_RECV: its next segment makes it ESTABLISHED, so a flood
                // of spoofed ACKs can only displace half-open entries.
                Some(idx) => store(local, idx, m, slot, snap, TcpState::SynRecv, syn_recv, now),
                None => local.flood.until = syn_recv,
            }
        }
        return Ok((slot, false));
    }
    if stateless && (m.free.is_none() || local.flood.active(now)) {
        let slot = choose(svc, snap, local, (&m.s.wire, m.h), now).ok_or(D::NoBackend)?;
        match m.free {
            Some(idx) => store(local, idx, m, slot, snap, TcpState::SynRecv, syn_recv, now),
            None => local.flood.forwarded_stateless(snap, now),
        }
        return Ok((slot, true));
    }
    let idx = match m.free {
        Some(idx) => idx,
        None => local.flows.make_room_hashed(m.h, now),
    };
    if snap.syn_flood == SynFlood::Drop && local.flows.is_established(idx, now) {
        return Err(D::FlowTableFull);
    }
    let slot = pick(svc, si, &m.s.key, snap, local, now).ok_or(D::NoBackend)?;
    let st = if tcp { TcpState::SynRecv } else { TcpState::Udp };
    let expires = snap.timeouts.expires(st, now);
    store(local, idx, m, slot, snap, st, expires, now);
    Ok((slot, true))
}

#[inline]
#[allow(clippy::too_many_arguments)]
fn store(
    local: &mut LocalState,
    idx: usize,
    m: &Miss,
    slot: u16,
    snap: &Snapshot,
    st: TcpState,
    expires: Tick,
    now: Tick,
) {
    let inc = snap.backends[usize::from(slot)].incarnation;
    local.flows.insert_hashed(idx, &m.s.key, m.h, slot, inc, st, expires, now);
}

/// A segment of a TCP flow that began elsewhere (`mid_flow = schedule`): scheduled as a
/// new flow would be (for `mh`, the backend its SYN got on any director) and stored as
/// ESTABLISHED, or as what its FIN makes of that; a RST is forwarded and not stored.
/// Where both of its groups hold only ESTABLISHED flows it is forwarded without an
/// entry (its next segment is scheduled the same way) rather than evict one.
#[inline(never)]
fn mid_flow(
    m: &Miss,
    snap: &Snapshot,
    local: &mut LocalState,
    now: Tick,
) -> Result<(u16, bool), DropReason> {
    let slot = pick(m.svc, m.si, &m.s.key, snap, local, now).ok_or(D::NoBackend)?;
    local.mid_flow_scheduled += 1;
    if m.s.tcp_flags & flags::RST == 0 {
        if let Some(idx) = m.room_beside_established(local, now) {
            let st = tcp_state::next(TcpState::Established, m.s.tcp_flags);
            let expires = snap.timeouts.expires(st, now);
            store(local, idx, m, slot, snap, st, expires, now);
        }
    }
    Ok((slot, false))
}

/// The backend of an `mh` service for a flow: its Maglev table's choice among the
/// eligible backends. `None` when none is eligible.
#[inline]
fn maglev(svc: &Service, snap: &Snapshot, key: &FlowKey) -> Option<Option<u16>> {
    let table = svc.mh.as_ref()?;
    if svc.schedule.is_empty() {
        return Some(None); // no eligible backend: do not walk the table
    }
    let h = snap.mh_keys.flow_hash(
        svc.policy.mh_hash,
        key.saddr,
        key.daddr,
        key.sport,
        key.dport,
        key.proto,
    );
    Some(table.lookup(h, |s| snap.backends.get(usize::from(s)).is_some_and(Service::eligible)))
}

/// The backend of a flow routed by hash: for `mh`, its table's choice; else a position
/// in the service's schedule chosen by a hash of the flow's key
/// ([`Hashed::choose`]), so each backend's share is its share of the schedule (its
/// weight for wrr) and every segment of the flow gets the same one while the schedule
/// stands.
#[inline(always)]
fn choose(
    svc: &Service,
    snap: &Snapshot,
    local: &LocalState,
    (wire, h): (&WireKey, &Hashed),
    now: Tick,
) -> Option<u16> {
    if !svc.by_hash {
        if let Some(chosen) = by_client(svc, snap, local, wire, now) {
            return chosen;
        }
    }
    let seq = &svc.schedule;
    (!seq.is_empty()).then(|| seq[h.choose(seq.len())])
}

/// [`choose`] for a service not routed by hash alone: a persistent client's server (no
/// template is written on this path: a flood of spoofed sources must not fill the
/// template table), else the `mh` or `sh` table's choice; `None`: by hash after all.
/// Out of line, from the key as the frame has it: inlined, with the key in host order,
/// it kept that key alive in memory through every flood SYN's lookup (13 instructions
/// a packet in [`flood_syn`], callgrind).
#[inline(never)]
fn by_client(
    svc: &Service,
    snap: &Snapshot,
    local: &LocalState,
    wire: &WireKey,
    now: Tick,
) -> Option<Option<u16>> {
    let key = FlowKey::from(wire);
    if let Some(t) = template(svc, snap, local, &key, now) {
        return Some(Some(t.slot));
    }
    by_table(svc, snap, &key)
}

/// The schedulers whose choice is a table lookup on the flow's own addresses, the same
/// on every worker and every director: `mh` (its Maglev table) and `sh` (its buckets).
/// `None` for the others.
#[inline]
fn by_table(svc: &Service, snap: &Snapshot, key: &FlowKey) -> Option<Option<u16>> {
    if let Some(chosen) = maglev(svc, snap, key) {
        return Some(chosen);
    }
    (svc.policy.sched == SchedKind::Sh).then(|| source_hash(svc, snap, key))
}

/// The backend of a new flow of `svc` on this worker: the sorry server while it takes
/// the new flows; for `mh`, its table's choice; for `sh`, its bucket's; for wlc, lc, sed
/// and nq, the least loaded by every worker's connection counts; else (wrr, rr, fo) the
/// next in the schedule from this worker's cursor. The schedule only holds present
/// backends with weight > 0 and a known MAC that are not down.
#[inline]
fn pick(
    svc: &Service,
    si: u16,
    key: &FlowKey,
    snap: &Snapshot,
    local: &mut LocalState,
    now: Tick,
) -> Option<u16> {
    if svc.policy.persistence > 0 && !svc.sorry_takes {
        return persistent(svc, si, key, snap, local, now);
    }
    schedule(svc, si, key, snap, local)
}

/// The template key of a flow's client for a persistent service.
#[inline]
fn template_key(svc: &Service, key: &FlowKey) -> TemplateKey {
    TemplateKey {
        client: key.saddr & svc.policy.persistence_mask,
        vip: svc.vip,
        vport: svc.port,
        proto: key.proto,
    }
}

/// The client's live template for a persistent service, if it still points at a usable
/// server: present (not removed, same incarnation) with a known MAC. A drained or down
/// server keeps its persistent clients until the template expires, as in IPVS.
#[inline]
fn template(
    svc: &Service,
    snap: &Snapshot,
    local: &LocalState,
    key: &FlowKey,
    now: Tick,
) -> Option<Template> {
    if svc.policy.persistence == 0 {
        return None;
    }
    let t = local.templates.get(&template_key(svc, key), now)?;
    snap.backend(t.slot, t.incarnation).filter(|b| b.mac.is_some()).map(|_| t)
}

/// A new connection of a persistent service (IPVS `ip_vs_sched_persist`): the server of
/// the client's template, which it keeps alive; else the scheduler's choice, stored as
/// the client's template. See [`super::persist`].
#[inline(never)]
fn persistent(
    svc: &Service,
    si: u16,
    key: &FlowKey,
    snap: &Snapshot,
    local: &mut LocalState,
    now: Tick,
) -> Option<u16> {
    if let Some(t) = template(svc, snap, local, key, now) {
        keep_alive(svc, &local.templates, &t, now);
        return Some(t.slot);
    }
    let slot = schedule(svc, si, key, snap, local)?;
    let inc = snap.backends[usize::from(slot)].incarnation;
    let until = now.saturating_add(persistence_ticks(svc));
    match local.templates.create(&template_key(svc, key), slot, inc, until, now) {
        Created::Stored => local.persist.created += 1,
        Created::Evicted => {
            local.persist.created += 1;
            local.persist.evicted += 1;
        }
        Created::Busy => local.persist.busy += 1,
    }
    Some(slot)
}

/// Keeps the template of a live flow of a persistent service alive for `timeout` from
/// now (called by the worker's flow-table sweep for each live flow, so a client keeps
/// its server while any of its connections lives, and `timeout` after the sweep last saw
/// one). Writes only when the template would expire more than a tenth of the timeout
/// early.
pub fn keep_template(snap: &Snapshot, templates: &Templates, e: &FlowEntry, now: Tick) {
    if !snap.persistent {
        return;
    }
    let Some((_, svc)) = snap.service(e.key.daddr, e.key.dport, e.key.proto) else {
        return;
    };
    if svc.policy.persistence == 0 {
        return;
    }
    let Some(t) = templates.get(&template_key(svc, &e.key), now) else { return };
    if (t.slot, t.incarnation) == (e.slot, e.incarnation) {
        keep_alive(svc, templates, &t, now);
    }
}

/// The service's persistence timeout in ticks.
#[inline]
fn persistence_ticks(svc: &Service) -> Tick {
    svc.policy.persistence.saturating_mul(super::TICKS_PER_SEC)
}

/// Keeps template `t` alive for the service's timeout from `now`; written only when it
/// would expire more than a tenth of the timeout early ([`Templates::extend`]).
#[inline]
fn keep_alive(svc: &Service, templates: &Templates, t: &Template, now: Tick) {
    let timeout = persistence_ticks(svc);
    templates.extend(t, now.saturating_add(timeout), timeout / 10);
}

/// The scheduler's choice for a new flow (no persistence).
#[inline]
fn schedule(
    svc: &Service,
    si: u16,
    key: &FlowKey,
    snap: &Snapshot,
    local: &mut LocalState,
) -> Option<u16> {
    let seq = &svc.schedule;
    if !svc.sorry_takes {
        if let Some(chosen) = by_table(svc, snap, key) {
            return chosen;
        }
        if svc.policy.sched.counts_connections() {
            return least_loaded(svc, snap, local.flows.conns().all());
        }
    }
    if seq.is_empty() {
        return None;
    }
    if let (Some(st), false) = (svc.stepping, svc.sorry_takes) {
        let weight = |s: u16| snap.backends.get(usize::from(s)).map_or(0, |b| b.weight);
        let (cl, cw) = (&mut local.cursors[usize::from(si)], &mut local.step_cw[usize::from(si)]);
        return sched::step_pick(seq, weight, st, cl, cw);
    }
    let c = &mut local.cursors[usize::from(si)];
    // The cursor may be past the end after a swap shortened the schedule.
    let i = (*c as usize) % seq.len();
    *c = if i + 1 == seq.len() { 0 } else { (i + 1) as u32 };
    Some(seq[i])
}

/// `sh`: the server of the client's bucket (see [`sched::sh_pick`]).
#[inline]
fn source_hash(svc: &Service, snap: &Snapshot, key: &FlowKey) -> Option<u16> {
    let f = svc.policy.sched_flags;
    let port = if f.sh_port { key.sport } else { 0 };
    sched::sh_pick(&svc.sh, key.saddr, port, f.sh_fallback, |s| {
        snap.backends.get(usize::from(s)).is_some_and(Service::eligible)
    })
}

/// wlc, lc, sed, nq over the service's eligible backends in IPVS's order (newest first),
/// with the connection counts of all workers ([`super::conns`]).
#[inline(never)]
fn least_loaded(svc: &Service, snap: &Snapshot, conns: &ConnCounts) -> Option<u16> {
    let eligible = svc.backends.iter().rev().filter_map(|&slot| {
        let b = snap.backends.get(usize::from(slot))?;
        if !Service::eligible(b) {
            return None;
        }
        let (active, inactive) = conns.get(slot, b.incarnation);
        Some(sched::Candidate { slot, weight: b.weight, active, inactive })
    });
    sched::least(svc.policy.sched, eligible)
}

// ICMP echo request to a VIP or the director IP: answered by the director.
fn icmp_in(
    frame: &mut [u8],
    off: usize,
    daddr: u32,
    snap: &Snapshot,
    local: &mut LocalState,
    now: Tick,
) -> Verdict {
    if !(snap.is_vip(daddr) || (daddr == snap.dip && snap.dip != 0)) {
        return Verdict::Drop(D::NoService);
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut frame[off..]) else {
        return Verdict::Drop(D::Ipv4Malformed); // validated by the caller already
    };
    match IcmpPacket::new_checked(ip.payload_mut()) {
        Ok(mut m) if m.msg_type() == icmp::ECHO_REQUEST && m.code() == 0 && m.verify_checksum() => {
            m.make_echo_reply();
        }
        Ok(m) if icmp::is_error(m.msg_type()) && snap.is_vip(daddr) => {
            return match icmp_error(&m, daddr, snap, local, now) {
                Ok(slot) => {
                    ethernet::set_macs(frame, &snap.backends[usize::from(slot)].l2);
                    Verdict::Forward { slot, new_flow: false }
                }
                // The flow may live on another worker (RSS hashes the error by its own
                // addresses, not the flow's): they look, as DPVS redirects to the
                // owning core. A frame that is itself a redirect goes no further.
                Err(IcmpMiss::NotHere) if local.peers && !local.redirected => Verdict::IcmpRedirect,
                Err(IcmpMiss::NotHere) => Verdict::Drop(D::IcmpErrorNoFlow),
                Err(IcmpMiss::Drop(r)) => Verdict::Drop(r),
            };
        }
        _ => return Verdict::Drop(D::IcmpUnhandled),
    }
    ip.swap_addrs();
    ip.set_ttl(64);
    ip.fill_checksum();
    turn_around(frame, snap.port_mac);
    Verdict::IcmpReply
}

/// The backend an ICMP error to a VIP goes to (IPVS `ip_vs_in_icmp`): the one that owns
/// the flow its quoted datagram belongs to. That datagram went from the VIP (the real
/// server, replying directly) to the client, so the flow is its reversed 5-tuple. Such
/// errors matter: "fragmentation needed" is how the real server learns the path MTU
/// (RFC 1191), and without it large responses never arrive. Looked up in this worker's
/// table; an `mh` service without an entry here uses its table (the flow's server on
/// every director). Forwarded unchanged, never answered, never rate-limited.
fn icmp_error(
    m: &IcmpPacket<&mut [u8]>,
    vip: u32,
    snap: &Snapshot,
    local: &LocalState,
    now: Tick,
) -> Result<u16, IcmpMiss> {
    let q = match m.quoted() {
        Some(q) if m.verify_checksum() => q,
        _ => return Err(IcmpMiss::Drop(D::IcmpErrorMalformed)),
    };
    if q.src != vip || !matches!(q.proto, protocol::TCP | protocol::UDP) {
        return Err(IcmpMiss::Drop(D::IcmpErrorNoFlow));
    }
    let Some((_, svc)) = snap.service(q.src, q.sport, q.proto) else {
        return Err(IcmpMiss::Drop(D::IcmpErrorNoFlow));
    };
    let key =
        FlowKey { saddr: q.dst, daddr: q.src, sport: q.dport, dport: q.sport, proto: q.proto };
    let wire = WireKey::from(&key);
    match local.flows.lookup_hashed(&wire, &local.flows.hash_wire(&wire), now) {
        Lookup::Hit(idx) => {
            let e = local.flows.get(idx);
            match snap.backend(e.slot, e.incarnation) {
                Some(b) if b.serving() => Ok(e.slot),
                Some(_) => Err(IcmpMiss::Drop(D::BackendDown)),
                None => Err(IcmpMiss::Drop(D::BackendRemoved)),
            }
        }
        _ => match maglev(svc, snap, &key) {
            Some(Some(slot)) => Ok(slot),
            _ => Err(IcmpMiss::NotHere),
        },
    }
}

/// Why [`icmp_error`] found no server.
enum IcmpMiss {
    Drop(DropReason),
    /// A well-formed error about a service's flow that has no entry on this worker.
    NotHere,
}
