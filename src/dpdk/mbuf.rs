//! Packet buffers as safe Rust: a received burst ([`RxBurst`]) that owns its mbufs and
//! lends out their bytes, a TX buffer ([`TxBuffer`]) that owns what it has not sent yet,
//! and one owned mbuf ([`Mbuf`]) for frames the control plane builds. Whatever a burst
//! or a buffer still holds when it is dropped goes back to its pool: no path leaks an
//! mbuf, and no caller handles a raw pointer.
use super::mempool::Mempool;
use super::port::{RxQueue, TxQueue};
use dpdk_sys::rte_mbuf;
use std::ptr::NonNull;

/// Most frames a burst holds: twice l3fwd's MAX_PKT_BURST (32). The worker's work a
/// burst (the clock, the control queues, the TX flush, the RX and TX calls' own
/// set-up) is spread over twice the frames: drlb's own instructions 124.5 -> 122.2 a
/// packet and +1 % (1k flows) / +2.5 % (64k) Mpps, paired runs (perf/README.md). At
/// most 64: one bit a frame in [`Sent`].
pub const BURST: usize = 64;

/// One bit a frame of a burst (bit i: frame i).
type Sent = u64;
const _: () = assert!(BURST <= Sent::BITS as usize);

/// The frames `0..k` of a burst (`k` at most [`BURST`]).
#[inline(always)]
fn first(k: usize) -> Sent {
    Sent::MAX.checked_shr(Sent::BITS - k as u32).unwrap_or(0)
}

/// The packet bytes of a single-segment mbuf.
///
/// # Safety
/// `m` must be a valid mbuf owned by the caller for `'a`, with no other live reference
/// to its data.
#[inline(always)]
unsafe fn data_mut<'a>(m: *mut rte_mbuf) -> &'a mut [u8] {
    // SAFETY: per the contract, `m` is valid; buf_addr + data_off is the first data byte
    // and data_len bytes follow inside the buffer (DPDK invariant).
    unsafe {
        let mb = &*m;
        let p = (mb.buf_addr as *mut u8).add(usize::from(mb.data_off));
        std::slice::from_raw_parts_mut(p, usize::from(mb.data_len))
    }
}

/// Returns mbufs to their pools.
///
/// # Safety
/// Each pointer must be a valid mbuf owned by the caller; none is used afterwards.
#[inline(always)]
unsafe fn free_bulk(ms: &mut [*mut rte_mbuf]) {
    if !ms.is_empty() {
        // SAFETY: per the contract.
        unsafe { dpdk_sys::rte_pktmbuf_free_bulk(ms.as_mut_ptr(), ms.len() as u32) }
    }
}

/// Up to `N` mbuf pointers, the first `len` in use.
struct Mbufs<const N: usize> {
    pkts: [*mut rte_mbuf; N],
    len: usize,
}

impl<const N: usize> Default for Mbufs<N> {
    fn default() -> Self {
        Mbufs { pkts: [std::ptr::null_mut(); N], len: 0 }
    }
}

/// Up to [`BURST`] received frames, owned until each is handed to a [`TxBuffer`]
/// ([`RxBurst::send`]) or freed ([`RxBurst::free_rest`], or drop).
pub struct RxBurst {
    m: Mbufs<BURST>,
    /// Bit i: frame i was handed to a TX buffer (no longer ours).
    sent: Sent,
    /// Each frame's first byte and length, read from its mbuf once by
    /// [`recv`](RxBurst::recv) or [`recv_each`](RxBurst::recv_each); the length is 0 for
    /// a frame in more than one segment, so the iterators below show it as empty without
    /// reading the mbuf again. A frame that left the burst keeps its length here (no
    /// store when it leaves): the iterators show it as empty by `sent`.
    data: [NonNull<u8>; BURST],
    lens: [u16; BURST],
    /// Sent frames whose lengths are 0 already (those sent before the last
    /// [`whole_frames_mut_again`](RxBurst::whole_frames_mut_again)): a subset of `sent`.
    zeroed: Sent,
}

impl Default for RxBurst {
    fn default() -> Self {
        RxBurst {
            m: Mbufs::default(),
            sent: 0,
            data: [NonNull::dangling(); BURST],
            lens: [0; BURST],
            zeroed: 0,
        }
    }
}

impl RxBurst {
    /// Receives a burst from `q` (freeing whatever the previous burst left); returns its
    /// length. Each frame's bytes are found here, the mbuf's header read once a burst
    /// rather than once by every stage that looks at the frame, and their first cache
    /// line starts loading (l3fwd's prefetch).
    #[inline(always)]
    pub fn recv(&mut self, q: &mut RxQueue) -> usize {
        self.recv_each(q, |_, f| crate::mem::prefetch(f.as_ptr()))
    }

    /// [`recv`](Self::recv) that hands each frame's bytes (empty for a frame in more than
    /// one segment, as [`whole_frames`](Self::whole_frames) shows it) to `each` with its
    /// index as its mbuf's header is read, in the same loop, instead of prefetching it:
    /// for a first look at every frame (the worker's hash of the flow key), one pass
    /// over the burst where two had each read the other's pointers and lengths back.
    #[inline(always)]
    pub fn recv_each(&mut self, q: &mut RxQueue, mut each: impl FnMut(usize, &[u8])) -> usize {
        self.free_rest();
        let n = q.rx_burst(&mut self.m.pkts).min(BURST);
        self.m.len = n;
        for i in 0..n {
            // SAFETY: a received mbuf, valid until this burst frees or sends it; its
            // header says where its data is (DPDK invariant: buf_addr + data_off, then
            // data_len bytes inside the buffer, which is never at address 0). The slice
            // handed out is those bytes (none for a chained frame), read-only, for the
            // call only.
            unsafe {
                let mb = &*self.m.pkts[i];
                let p = (mb.buf_addr as *mut u8).add(usize::from(mb.data_off));
                let len = if mb.nb_segs == 1 { mb.data_len } else { 0 };
                self.data[i] = NonNull::new_unchecked(p);
                self.lens[i] = len;
                each(i, std::slice::from_raw_parts(p, usize::from(len)));
            }
        }
        n
    }

    /// The frames' bytes, read-only, the sent ones left out (a frame in more than one
    /// segment shows as empty).
    #[inline(always)]
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let sent = self.sent;
        self.whole_frames().enumerate().filter(move |&(i, _)| sent & (1 << i) == 0).map(|(_, f)| f)
    }

    /// Every frame's bytes in burst order, one item per frame, read-only: a frame in
    /// more than one segment (or already sent) shows as empty, so nothing reads part of
    /// a frame as if it were all of it, or a frame no longer ours.
    #[inline(always)]
    pub fn whole_frames(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let (n, sent) = (self.m.len, self.sent);
        self.data[..n].iter().zip(&self.lens[..n]).enumerate().map(move |(i, (&p, &len))| {
            let len = if sent & (1 << i) == 0 { usize::from(len) } else { 0 };
            // SAFETY: `recv`'s pointers and lengths of this burst's frames, none of a
            // sent one; shared slices tied to the borrow of `self`, so none is sent or
            // freed while a slice lives.
            unsafe { std::slice::from_raw_parts(p.as_ptr(), len) }
        })
    }

    /// [`whole_frames`](Self::whole_frames), writable. (The sent frames' lengths are
    /// set to 0 first, once, so the items need no test of `sent`: the worker's hit loop
    /// iterates these.)
    #[inline(always)]
    pub fn whole_frames_mut(&mut self) -> impl Iterator<Item = &mut [u8]> + '_ {
        self.zero_sent(self.sent);
        self.frames_mut()
    }

    /// [`whole_frames_mut`](Self::whole_frames_mut) for a burst whose frames were handed
    /// out before: only the frames sent since then have their lengths set to 0. (The
    /// worker asks again for every run of the fast path after a burst's first; zeroing
    /// every sent frame each time was 2.7 lengths a packet under a SYN flood, callgrind.)
    #[inline(always)]
    pub fn whole_frames_mut_again(&mut self) -> impl Iterator<Item = &mut [u8]> + '_ {
        self.zero_sent(self.sent & !self.zeroed);
        self.zeroed = self.sent;
        self.frames_mut()
    }

    /// Sets the lengths of the frames in `sent` (sent ones) to 0.
    #[inline(always)]
    fn zero_sent(&mut self, mut sent: Sent) {
        while sent != 0 {
            self.lens[sent.trailing_zeros() as usize] = 0;
            sent &= sent - 1;
        }
    }

    /// The frames' bytes, writable, by their recorded lengths: a sent frame's must be 0
    /// (the two callers above see to it).
    #[inline(always)]
    fn frames_mut(&mut self) -> impl Iterator<Item = &mut [u8]> + '_ {
        let n = self.m.len;
        // SAFETY: as in `whole_frames` (every sent frame's length is 0 now: a frame is
        // zeroed by `whole_frames_mut`, or by `whole_frames_mut_again` in the call after
        // it was sent, and `zeroed` is reset with `sent`); each item is a different
        // frame's bytes, and the `&mut self` the iterator's lifetime comes from keeps
        // every other access out while they live.
        self.data[..n].iter().zip(&self.lens[..n]).map(|(&p, &len)| unsafe {
            std::slice::from_raw_parts_mut(p.as_ptr(), usize::from(len))
        })
    }

    /// Frame `i`'s bytes (of its first segment), writable, and whether they are the
    /// whole frame (one segment). Panics if `i` was sent or is out of range.
    #[inline(always)]
    pub fn frame_mut(&mut self, i: usize) -> (&mut [u8], bool) {
        assert!(i < self.m.len && self.sent & (1 << i) == 0, "frame {i} not in the burst");
        let m = self.m.pkts[i];
        // SAFETY: an mbuf this burst owns (valid until sent or freed).
        let whole = unsafe { (*m).nb_segs == 1 };
        // SAFETY: as above; `&mut self` makes the slice unique.
        (unsafe { data_mut(m) }, whole)
    }

    /// Hands frame `i` to `tx` (which must have room: see [`TxBuffer::is_full`]).
    #[inline(always)]
    pub fn send(&mut self, i: usize, tx: &mut TxBuffer) {
        assert!(i < self.m.len && self.sent & (1 << i) == 0, "frame {i} not in the burst");
        assert!(!tx.is_full(), "TX buffer full");
        tx.m.pkts[tx.m.len] = self.m.pkts[i];
        tx.m.len += 1;
        self.sent |= 1 << i;
    }

    /// Hands frames `from..from + k` to `tx` at once (a run of the fast path's hits),
    /// which must have room for them ([`TxBuffer::room`]). Panics if one of them was
    /// sent or is not in the burst.
    #[inline(always)]
    pub fn send_run(&mut self, from: usize, k: usize, tx: &mut TxBuffer) {
        let end = from + k;
        assert!(end <= self.m.len, "frames {from}..{end} not in the burst");
        let mask = first(end) ^ first(from);
        assert!(self.sent & mask == 0, "frames {from}..{end} not all in the burst");
        let at = tx.m.len;
        tx.m.pkts[at..at + k].copy_from_slice(&self.m.pkts[from..end]); // panics without room
        tx.m.len += k;
        self.sent |= mask;
    }

    /// Takes frame `i` out of the burst as an owned mbuf (to hand to another thread).
    #[inline(always)]
    pub fn take(&mut self, i: usize) -> Mbuf {
        assert!(i < self.m.len && self.sent & (1 << i) == 0, "frame {i} not in the burst");
        self.sent |= 1 << i;
        // SAFETY: received mbufs are non-null; this one leaves the burst here (marked
        // sent), so the Mbuf is its only owner.
        Mbuf { ptr: unsafe { NonNull::new_unchecked(self.m.pkts[i]) } }
    }

    /// Frees every frame not sent; the burst is empty afterwards.
    #[inline(always)]
    pub fn free_rest(&mut self) {
        if self.m.len == 0 {
            return;
        }
        let mut left = !self.sent & first(self.m.len);
        self.m.len = 0;
        (self.sent, self.zeroed) = (0, 0);
        if left == 0 {
            return; // all sent (under load, every frame forwarded): nothing to gather
        }
        let mut keep = [std::ptr::null_mut(); BURST];
        let mut n = 0;
        while left != 0 {
            keep[n] = self.m.pkts[left.trailing_zeros() as usize];
            n += 1;
            left &= left - 1;
        }
        // SAFETY: mbufs of this burst that were not sent: still ours, used no more.
        unsafe { free_bulk(&mut keep[..n]) };
    }
}

impl Drop for RxBurst {
    fn drop(&mut self) {
        self.free_rest();
    }
}

/// Frames a TX buffer holds: two bursts, so a full burst always fits after a flush.
pub const TX_BUFFER: usize = 2 * BURST;

/// Frames waiting for the TX queue, owned until the device takes them.
#[derive(Default)]
pub struct TxBuffer {
    m: Mbufs<TX_BUFFER>,
}

/// What one [`TxBuffer::flush`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub sent: usize,
    /// Refused by the queue: freed, never leaked.
    pub dropped: usize,
}

impl TxBuffer {
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.m.len
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.m.len == 0
    }

    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.m.len == TX_BUFFER
    }

    /// How many more frames it takes before it is full.
    #[inline(always)]
    pub fn room(&self) -> usize {
        TX_BUFFER - self.m.len
    }

    /// Adds an owned mbuf; gives it back when the buffer is full.
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.is_full() {
            return Err(m);
        }
        self.m.pkts[self.m.len] = m.into_raw();
        self.m.len += 1;
        Ok(())
    }

    /// Hands everything to `q`; what the queue refuses is freed and counted.
    #[inline(always)]
    pub fn flush(&mut self, q: &mut TxQueue) -> Flushed {
        if self.m.len == 0 {
            return Flushed { sent: 0, dropped: 0 };
        }
        let sent = q.tx_burst(&mut self.m.pkts[..self.m.len]);
        let dropped = self.m.len - sent;
        // SAFETY: the device took only the first `sent`; the rest are still ours.
        unsafe { free_bulk(&mut self.m.pkts[sent..self.m.len]) };
        self.m.len = 0;
        Flushed { sent, dropped }
    }
}

impl Drop for TxBuffer {
    fn drop(&mut self) {
        // SAFETY: mbufs the device never took: ours, used no more.
        unsafe { free_bulk(&mut self.m.pkts[..self.m.len]) };
    }
}

/// An mbuf we own; freed on drop unless handed to a [`TxBuffer`].
pub struct Mbuf {
    ptr: NonNull<rte_mbuf>,
}

// SAFETY: an Mbuf is the only handle to its buffer (made by alloc or taken out of a
// burst, never cloned), so moving it to another thread moves the ownership; freeing it
// there returns it to its mempool, whose ring is multi-producer (a thread without an
// lcore id bypasses the per-lcore cache).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Allocates an mbuf and copies `bytes` into it (single segment). None when the
    /// pool is empty or `bytes` does not fit.
    pub fn from_bytes(pool: &Mempool, bytes: &[u8]) -> Option<Mbuf> {
        // SAFETY: the pool is valid; alloc returns NULL or a fresh, reset mbuf.
        let m = NonNull::new(unsafe { dpdk_sys::drlb_pktmbuf_alloc(pool.as_ptr()) })?;
        let mut mb = Mbuf { ptr: m };
        // SAFETY: fresh mbuf we own; its data room is checked before use.
        unsafe {
            let raw = &mut *m.as_ptr();
            let room = usize::from(raw.buf_len) - usize::from(raw.data_off);
            if bytes.len() > room {
                return None; // `mb` drops and frees
            }
            raw.data_len = bytes.len() as u16;
            raw.pkt_len = bytes.len() as u32;
        }
        mb.data_mut().copy_from_slice(bytes);
        Some(mb)
    }

    /// The frame's bytes.
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: we own the mbuf; `&mut self` makes the slice unique.
        unsafe { data_mut(self.ptr.as_ptr()) }
    }

    /// Inserts an 802.1Q tag (`tci`: priority and VLAN ID) after the two MAC addresses;
    /// the frame grows by 4 bytes into the headroom. False, and the frame unchanged, when
    /// it is shorter than two MACs or there is no headroom.
    pub fn insert_vlan(&mut self, tci: u16) -> bool {
        // SAFETY: we own the mbuf (single segment: data_len == pkt_len); moving the data
        // start 4 bytes back stays inside the buffer since data_off >= 4.
        unsafe {
            let raw = &mut *self.ptr.as_ptr();
            if raw.data_off < 4 || raw.data_len < 12 {
                return false;
            }
            raw.data_off -= 4;
            raw.data_len += 4;
            raw.pkt_len += 4;
        }
        let d = self.data_mut();
        d.copy_within(4..16, 0);
        d[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        d[14..16].copy_from_slice(&tci.to_be_bytes());
        true
    }

    /// Removes the 802.1Q tag after the MAC addresses, if there is one.
    pub fn strip_vlan(&mut self) -> bool {
        let d = self.data_mut();
        if d.len() < 18 || d[12..14] != 0x8100u16.to_be_bytes() {
            return false;
        }
        d.copy_within(0..12, 4);
        // SAFETY: we own the mbuf; the data start moves 4 bytes forward within data_len.
        unsafe {
            let raw = &mut *self.ptr.as_ptr();
            raw.data_off += 4;
            raw.data_len -= 4;
            raw.pkt_len -= 4;
        }
        true
    }

    fn into_raw(self) -> *mut rte_mbuf {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nobody else references it.
        unsafe { dpdk_sys::drlb_pktmbuf_free(self.ptr.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_the_frames_below_k() {
        assert_eq!(first(0), 0);
        assert_eq!(first(1), 1);
        assert_eq!(first(5), 0b1_1111);
        assert_eq!(first(BURST - 1).count_ones() as usize, BURST - 1);
        assert_eq!(first(BURST).count_ones() as usize, BURST);
        assert_eq!(first(BURST).trailing_ones() as usize, BURST);
    }
}
