//! mbuf access: raw pointers on the hot path (bursts), an owning `Mbuf` elsewhere.
use super::mempool::Mempool;
use dpdk_sys::rte_mbuf;
use std::ptr::NonNull;

/// The packet bytes of a single-segment mbuf.
///
/// # Safety
/// `m` must be a valid mbuf owned by the caller for `'a`, with no other live reference
/// to its data.
#[inline(always)]
pub unsafe fn data_mut<'a>(m: *mut rte_mbuf) -> &'a mut [u8] {
    // SAFETY: per the contract, `m` is valid; buf_addr + data_off is the first data byte
    // and data_len bytes follow inside the buffer (DPDK invariant).
    unsafe {
        let mb = &*m;
        let p = (mb.buf_addr as *mut u8).add(usize::from(mb.data_off));
        std::slice::from_raw_parts_mut(p, usize::from(mb.data_len))
    }
}

/// Hints the CPU to fetch the first packet bytes (l3fwd's prefetch).
///
/// # Safety
/// `m` must point to a valid mbuf (its header is read to find the data).
#[inline(always)]
pub unsafe fn prefetch_data(m: *mut rte_mbuf) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller guarantees `m` is valid; a prefetch itself never faults.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let mb = &*m;
        let p = (mb.buf_addr as *const u8).add(usize::from(mb.data_off));
        _mm_prefetch(p as *const i8, _MM_HINT_T0);
    }
}

/// Returns a burst of mbufs to their pools.
///
/// # Safety
/// Each pointer must be a valid mbuf owned by the caller; none is used afterwards.
#[inline(always)]
pub unsafe fn free_bulk(ms: &mut [*mut rte_mbuf]) {
    if !ms.is_empty() {
        // SAFETY: per the contract.
        unsafe { dpdk_sys::rte_pktmbuf_free_bulk(ms.as_mut_ptr(), ms.len() as u32) }
    }
}

/// An mbuf we own; freed on drop unless handed to a TX queue with `into_raw`.
pub struct Mbuf {
    ptr: NonNull<rte_mbuf>,
}

impl Mbuf {
    /// Allocates an mbuf and copies `bytes` into it (single segment).
    pub fn from_bytes(pool: &Mempool, bytes: &[u8]) -> Option<Mbuf> {
        // SAFETY: the pool is valid; alloc returns NULL or a fresh, reset mbuf.
        let m = NonNull::new(unsafe { dpdk_sys::drlb_pktmbuf_alloc(pool.as_ptr()) })?;
        let mb = Mbuf { ptr: m };
        // SAFETY: fresh mbuf we own; data room (2048) >= what we check below.
        unsafe {
            let raw = &mut *m.as_ptr();
            let room = usize::from(raw.buf_len) - usize::from(raw.data_off);
            if bytes.len() > room {
                return None; // `mb` drops and frees
            }
            raw.data_len = bytes.len() as u16;
            raw.pkt_len = bytes.len() as u32;
            data_mut(m.as_ptr()).copy_from_slice(bytes);
        }
        Some(mb)
    }

    pub fn into_raw(self) -> *mut rte_mbuf {
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
