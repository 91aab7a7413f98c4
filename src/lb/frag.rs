//! IPv4 fragments: shallow virtual reassembly (VPP's `ip4-sv-reass`), per worker.
//!
//! Only a datagram's first fragment carries the ports a service and a flow are found by.
//! drlb schedules the first fragment like any packet and remembers, for a short while,
//! (source, destination, protocol, IP id) → its real server; the later fragments of the
//! datagram find that and go to the same server. Nothing is reassembled or rewritten but
//! the MACs (DR): the real server's kernel reassembles.
//!
//! Fragments that arrive before their first fragment (reordering) are copied into a
//! small hold area — [`HOLD_SLOTS`] frames of up to the MTU's frame per worker,
//! allocated once — for at most [`HOLD_TICKS`] ticks; when the first fragment comes
//! they are released to its server (in arrival order), else dropped and counted
//! (`fragment_timeout`). A full hold area or a frame too big for a slot is a counted
//! drop too. The datagram table holds [`FRAG_ENTRIES`] entries, four per bucket; an
//! entry lives [`FRAG_TICKS`] ticks after its first fragment, and a new one takes a free
//! or expired entry of its bucket, else the oldest (counted). Memory is bounded whatever
//! arrives: a flood of fragments costs evictions and counted drops, nothing else.
//!
//! RSS: NICs hash every fragment of a datagram, the first included, by its addresses
//! only (there are no ports in the others), so a datagram's fragments reach one worker.
use super::Tick;

/// Datagram entries per worker.
pub const FRAG_ENTRIES: usize = 1024;
const WAYS: usize = 4;
/// How long a datagram's server is remembered after its first fragment: 2 s.
pub const FRAG_TICKS: Tick = 20;
/// Fragments held while their first fragment is missing.
pub const HOLD_SLOTS: usize = 32;
/// Largest frame the hold area takes by default (a 1500-byte MTU frame with a VLAN tag
/// fits); [`Frags::for_mtu`] sizes it for another MTU.
pub const HOLD_BYTES: usize = 1536;
/// How long a fragment is held: 1-2 ticks (100-200 ms; VPP's default is 100 ms).
pub const HOLD_TICKS: Tick = 2;

/// A datagram: what all of its fragments share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FragKey {
    pub saddr: u32,
    pub daddr: u32,
    pub id: u16,
    pub proto: u8,
}

#[derive(Clone, Copy, Default)]
struct Entry {
    key: FragKey,
    slot: u16,
    incarnation: u16,
    /// 0: empty.
    expires: Tick,
}

struct Held {
    key: FragKey,
    /// 0: free.
    len: u16,
    expires: Tick,
    /// Released to this slot's server: its MACs are rewritten; waiting to be sent.
    ready: bool,
    data: Box<[u8]>,
}

/// What one worker counts of fragments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragStats {
    /// First fragments forwarded (each remembered).
    pub first: u64,
    /// Later fragments forwarded to their first fragment's server on arrival.
    pub followed: u64,
    /// Fragments held until their first fragment came, then forwarded.
    pub released: u64,
    /// Datagram entries that took the place of a live one (table full there).
    pub evicted: u64,
}

/// One worker's fragment state.
pub struct Frags {
    entries: Box<[Entry]>,
    held: Box<[Held]>,
    /// Held frames that are waiting (not ready), so the common case scans nothing.
    waiting: usize,
    /// Released frames not yet taken by the worker.
    ready: usize,
    seed: u32,
    pub stats: FragStats,
}

impl Default for Frags {
    fn default() -> Self {
        Self::new()
    }
}

/// Why [`Frags::hold`] did not keep a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotHeld {
    Full,
    TooBig,
}

impl Frags {
    pub fn new() -> Self {
        Self::with_hold_bytes(HOLD_BYTES)
    }

    /// A hold area whose slots take a frame of `mtu` (with an Ethernet header and a tag).
    pub fn for_mtu(mtu: u16) -> Self {
        Self::with_hold_bytes((usize::from(mtu) + 18).max(HOLD_BYTES))
    }

    fn with_hold_bytes(bytes: usize) -> Self {
        let mut seed = [0u8; 4];
        let _ = getrandom::getrandom(&mut seed);
        Frags {
            entries: vec![Entry::default(); FRAG_ENTRIES].into_boxed_slice(),
            held: (0..HOLD_SLOTS)
                .map(|_| Held {
                    key: FragKey::default(),
                    len: 0,
                    expires: 0,
                    ready: false,
                    data: vec![0; bytes].into_boxed_slice(),
                })
                .collect(),
            waiting: 0,
            ready: 0,
            seed: u32::from_le_bytes(seed) | 1,
            stats: FragStats::default(),
        }
    }

    fn bucket(&self, k: &FragKey) -> usize {
        let x = k.saddr.wrapping_mul(0x9e37_79b1)
            ^ k.daddr.rotate_left(16).wrapping_mul(0x85eb_ca6b)
            ^ (u32::from(k.id) << 8 | u32::from(k.proto)).wrapping_mul(self.seed);
        let buckets = FRAG_ENTRIES / WAYS;
        ((x ^ (x >> 15)).wrapping_mul(0x2c1b_3c6d) >> 16) as usize % buckets * WAYS
    }

    /// The server of a datagram whose first fragment was seen, if still remembered.
    pub fn lookup(&self, k: &FragKey, now: Tick) -> Option<(u16, u16)> {
        let b = self.bucket(k);
        self.entries[b..b + WAYS]
            .iter()
            .find(|e| e.expires > now && e.key == *k)
            .map(|e| (e.slot, e.incarnation))
    }

    /// A first fragment went to (`slot`, `incarnation`): remember it, and release the
    /// held fragments of the datagram to it, their MACs set to `l2`.
    pub fn first(&mut self, k: &FragKey, slot: u16, incarnation: u16, l2: &[u8; 12], now: Tick) {
        self.stats.first += 1;
        let b = self.bucket(k);
        let bucket = &mut self.entries[b..b + WAYS];
        let i = bucket
            .iter()
            .position(|e| e.expires > now && e.key == *k)
            .or_else(|| bucket.iter().position(|e| e.expires <= now))
            .unwrap_or_else(|| {
                self.stats.evicted += 1;
                (0..WAYS).min_by_key(|&i| bucket[i].expires).unwrap_or(0)
            });
        bucket[i] = Entry { key: *k, slot, incarnation, expires: now.saturating_add(FRAG_TICKS) };
        if self.waiting == 0 {
            return;
        }
        for h in self.held.iter_mut() {
            if h.len != 0 && !h.ready && h.key == *k && h.expires > now {
                crate::wire::ethernet::set_macs(&mut h.data, l2);
                h.ready = true;
                self.waiting -= 1;
                self.ready += 1;
                self.stats.released += 1;
            }
        }
    }

    /// Copies a fragment whose first fragment has not come yet into the hold area.
    pub fn hold(&mut self, k: &FragKey, frame: &[u8], now: Tick) -> Result<(), NotHeld> {
        if frame.len() > self.held.first().map_or(0, |h| h.data.len()) {
            return Err(NotHeld::TooBig);
        }
        let h = self.held.iter_mut().find(|h| h.len == 0).ok_or(NotHeld::Full)?;
        h.key = *k;
        h.len = frame.len() as u16;
        h.expires = now.saturating_add(HOLD_TICKS);
        h.ready = false;
        h.data[..frame.len()].copy_from_slice(frame);
        self.waiting += 1;
        Ok(())
    }

    /// Frees held fragments whose first fragment did not come in time; returns how many.
    pub fn expire(&mut self, now: Tick) -> u64 {
        if self.waiting == 0 {
            return 0;
        }
        let mut n = 0;
        for h in self.held.iter_mut() {
            if h.len != 0 && !h.ready && h.expires <= now {
                h.len = 0;
                n += 1;
            }
        }
        self.waiting -= n as usize;
        n
    }

    /// Whether released fragments wait to be sent.
    #[inline(always)]
    pub fn has_ready(&self) -> bool {
        self.ready > 0
    }

    /// Hands each released fragment (its frame, MACs rewritten) to `send`, oldest first
    /// by slot order, while `send` accepts (returns true); the rest wait for the next
    /// call.
    pub fn take_ready(&mut self, mut send: impl FnMut(&[u8]) -> bool) {
        if self.ready == 0 {
            return;
        }
        for h in self.held.iter_mut() {
            if h.len != 0 && h.ready {
                if !send(&h.data[..usize::from(h.len)]) {
                    return;
                }
                h.len = 0;
                h.ready = false;
                self.ready -= 1;
            }
        }
    }

    /// Fragments held now (waiting or released and not yet sent).
    pub fn held(&self) -> usize {
        self.waiting + self.ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> FragKey {
        FragKey { saddr: 0x0a00_0001, daddr: 0xc0a8_01c8, id, proto: 17 }
    }

    #[test]
    fn first_then_rest_and_rest_then_first() {
        let mut f = Frags::new();
        assert_eq!(f.lookup(&key(1), 0), None);
        f.first(&key(1), 3, 1, &[7; 12], 0);
        assert_eq!(f.lookup(&key(1), 5), Some((3, 1)));
        assert_eq!(f.lookup(&key(1), FRAG_TICKS), None, "forgotten after FRAG_TICKS");
        // Out of order: two fragments held, then the first releases them, MACs set.
        f.hold(&key(2), &[1u8; 100], 0).unwrap();
        f.hold(&key(3), &[2u8; 60], 0).unwrap();
        f.hold(&key(2), &[3u8; 80], 0).unwrap();
        assert_eq!(f.held(), 3);
        f.first(&key(2), 4, 1, &[9; 12], 1);
        let mut out = Vec::new();
        f.take_ready(|b| {
            out.push(b.to_vec());
            true
        });
        assert_eq!(out.len(), 2);
        assert_eq!(&out[0][..12], &[9; 12]);
        assert_eq!(&out[0][12..], &[1u8; 88][..]);
        assert_eq!((out[1].len(), out[1][12]), (80, 3));
        assert_eq!(f.held(), 1, "key 3 still waits");
        assert_eq!(f.expire(1), 0);
        assert_eq!(f.expire(HOLD_TICKS), 1, "then times out");
        assert_eq!(f.held(), 0);
        assert_eq!(f.stats.released, 2);
    }

    #[test]
    fn bounded_whatever_arrives() {
        let mut f = Frags::new();
        for i in 0..HOLD_SLOTS {
            f.hold(&key(i as u16), &[0; 64], 0).unwrap();
        }
        assert_eq!(f.hold(&key(999), &[0; 64], 0), Err(NotHeld::Full));
        assert_eq!(f.hold(&key(999), &[0; HOLD_BYTES + 1], 0), Err(NotHeld::TooBig));
        // A jumbo MTU's hold area takes a jumbo frame (tagged), and no more.
        let mut j = Frags::for_mtu(9000);
        assert_eq!(j.hold(&key(1), &[0; 9018], 0), Ok(()));
        assert_eq!(j.hold(&key(2), &[0; 9019], 0), Err(NotHeld::TooBig));
        // 100k first fragments: the table keeps its size and counts evictions.
        for i in 0..100_000u32 {
            let k = FragKey { saddr: i, ..key(i as u16) };
            f.first(&k, 1, 1, &[0; 12], 0);
        }
        assert!(f.stats.evicted >= 100_000 - FRAG_ENTRIES as u64, "{:?}", f.stats);
        // A sender that takes nothing leaves the released frames in place.
        f.first(&key(5), 1, 1, &[0; 12], 1);
        f.take_ready(|_| false);
        assert!(f.has_ready());
    }
}
