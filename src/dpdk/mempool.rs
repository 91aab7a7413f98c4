//! Packet-buffer pools.
use super::{errno_error, DpdkError};
use std::ffi::CString;
use std::ptr::NonNull;

/// The data room that holds a whole frame of `mtu` in one mbuf: the headroom, the
/// Ethernet header, two VLAN tags and the CRC beside the IP packet; never less than
/// DPDK's default (2 KiB + headroom).
pub fn data_room(mtu: u16) -> u16 {
    let need = dpdk_sys::RTE_PKTMBUF_HEADROOM as usize + usize::from(mtu) + 14 + 8 + 4;
    need.max(dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as usize).min(usize::from(u16::MAX)) as u16
}

pub struct Mempool {
    ptr: NonNull<dpdk_sys::rte_mempool>,
}

// SAFETY: rte_mempool's default ring ops are multi-producer/multi-consumer safe; the
// per-lcore caches are indexed by the calling lcore.
unsafe impl Send for Mempool {}
// SAFETY: as above.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// An mbuf pool of `n` buffers of `data_room` bytes (headroom included; see
    /// [`data_room`]), per-lcore cache `cache`.
    pub fn new(
        name: &str,
        n: u32,
        cache: u32,
        socket: i32,
        data_room: u16,
    ) -> Result<Self, DpdkError> {
        let cname = CString::new(name).expect("pool name has no NUL");
        // SAFETY: cname is a valid C string; numbers are in range for DPDK.
        let p = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket)
        };
        NonNull::new(p)
            .map(|ptr| Mempool { ptr })
            .ok_or_else(|| errno_error("rte_pktmbuf_pool_create"))
    }

    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.ptr.as_ptr()
    }

    /// Buffers currently taken from the pool (in queues, in flight, or leaked).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid for self's lifetime.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // After EAL is torn down its memory, this pool's included, is gone already.
        if super::eal::is_up() {
            // SAFETY: the pool is ours; ports using it hold an Arc of it, so none is
            // left when it is dropped.
            unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) }
        }
    }
}
