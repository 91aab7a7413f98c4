//! Memory primitives the hot path needs below safe Rust, each behind a safe function:
//! - [`Table`]: large per-worker tables in anonymous mappings that are zero until
//!   touched (resident memory grows with use, not capacity) and advised to use
//!   transparent huge pages (a random-access table of tens of MiB otherwise costs a TLB
//!   miss per lookup);
//! - [`prefetch`]: a cache-line prefetch hint;
//! - [`match_u16x8`]: one SIMD compare of eight 16-bit lanes (flow-table tags).
//!
//! With `dpdk/` and `sync/`, the only modules allowed `unsafe`.
#![allow(unsafe_code)]

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

const HUGE: usize = 2 << 20;

/// A zero-initialised slice of `T` in its own anonymous mapping.
pub struct Table<T: bytemuck::Zeroable> {
    ptr: NonNull<T>,
    len: usize,
    map: *mut libc::c_void,
    map_len: usize,
}

// SAFETY: Table owns its memory exclusively, like Box<[T]>.
unsafe impl<T: bytemuck::Zeroable + Send> Send for Table<T> {}
// SAFETY: shared access only hands out &[T], like Box<[T]>.
unsafe impl<T: bytemuck::Zeroable + Sync> Sync for Table<T> {}

impl<T: bytemuck::Zeroable> Table<T> {
    /// `len` zeroed values. Panics if the mapping fails (out of address space), like an
    /// allocation failure would.
    pub fn zeroed(len: usize) -> Self {
        assert!(len > 0, "an empty table");
        let bytes = std::mem::size_of::<T>().checked_mul(len).expect("table size overflows");
        assert!(std::mem::align_of::<T>() <= HUGE);
        // Over-map by 2 MiB so the table can start on a huge-page boundary.
        let map_len = bytes + HUGE;
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert!(
            map != libc::MAP_FAILED,
            "cannot map {map_len} bytes for a table: {}",
            std::io::Error::last_os_error()
        );
        let start = (map as usize + HUGE - 1) & !(HUGE - 1);
        // SAFETY: [start, start + bytes) is inside the mapping; MADV_HUGEPAGE is advice
        // about how to back it and changes no contents.
        unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                bytes.next_multiple_of(HUGE),
                libc::MADV_HUGEPAGE,
            )
        };
        Table {
            ptr: NonNull::new(start as *mut T).expect("mmap never returns 0"),
            len,
            map,
            map_len,
        }
    }
}

impl<T: bytemuck::Zeroable> Table<T> {
    /// Element `i & mask` where `mask` = len - 1: for a table whose length is a power of
    /// two, an index wrapped into it. No bounds check (an AND instead of a compare and a
    /// branch on a hash table's hot path), and no index can reach outside the table
    /// (whatever the length: `i & (len - 1) <= len - 1`).
    /// Starts loading element `i`'s first cache line (`i` below the length; a
    /// prefetch of any address is harmless, so nothing is checked or masked).
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        prefetch(self.ptr.as_ptr().wrapping_add(i) as *const u8);
    }

    #[inline(always)]
    pub fn wrapped(&self, i: usize) -> &T {
        // SAFETY: len > 0 (zeroed), so i & (len - 1) < len: inside the table.
        unsafe { &*self.ptr.as_ptr().add(i & (self.len - 1)) }
    }

    /// [`wrapped`](Self::wrapped), mutable.
    #[inline(always)]
    pub fn wrapped_mut(&mut self, i: usize) -> &mut T {
        // SAFETY: as in `wrapped`; &mut self is the only access.
        unsafe { &mut *self.ptr.as_ptr().add(i & (self.len - 1)) }
    }
}

impl<T: bytemuck::Zeroable> Deref for Table<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: ptr is aligned (2 MiB boundary), points to len values inside our
        // mapping, all valid because anonymous memory is zero and T: Zeroable.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: bytemuck::Zeroable> DerefMut for Table<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref; &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: bytemuck::Zeroable> Drop for Table<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing borrows it any more (we are dropped).
        // T needs no drop: Zeroable types here are plain data.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

/// Hints the CPU to start loading the cache line at `p`; a no-op off x86_64.
#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults or changes memory, whatever `p` is.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The lanes of `lanes` equal to `v`, as a bitmask (bit i = lane i): one SSE2 compare of
/// all eight (as `rte_hash` matches signatures), five instructions.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn match_u16x8(lanes: &[u16; 8], v: u16) -> u32 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86_64 baseline; the load reads exactly the 16 bytes
    // of `lanes` (unaligned load, no alignment requirement).
    unsafe {
        let x = _mm_loadu_si128(lanes.as_ptr() as *const __m128i);
        let eq = _mm_cmpeq_epi16(x, _mm_set1_epi16(v as i16));
        // 16-bit lanes (0 or -1) to bytes, then one bit per lane.
        (_mm_movemask_epi8(_mm_packs_epi16(eq, _mm_setzero_si128())) as u32) & 0xff
    }
}

/// The lanes of `lanes` equal to `v`, as a bitmask (bit i = lane i).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn match_u16x8(lanes: &[u16; 8], v: u16) -> u32 {
    lanes.iter().enumerate().fold(0, |m, (i, &l)| m | (u32::from(l == v) << i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_finds_every_equal_lane() {
        for base in [0u16, 1, 0x7fff, 0x8000, 0xffff, 0x1234] {
            for lane in 0..8 {
                let mut l = [0u16; 8];
                for (i, t) in l.iter_mut().enumerate() {
                    *t = base.wrapping_add(i as u16 + 1);
                }
                l[lane] = base;
                let exact = (0..8).filter(|&i| l[i] == base).fold(0u32, |a, i| a | 1 << i);
                assert_eq!(match_u16x8(&l, base), exact, "tag {base:#x} lane {lane}");
            }
        }
    }

    #[test]
    fn zeroed_and_writable() {
        let mut t: Table<u64> = Table::zeroed(1 << 20);
        assert!(t.iter().all(|&v| v == 0));
        t[12345] = 7;
        assert_eq!(t[12345], 7);
        assert_eq!(t.as_ptr() as usize % HUGE, 0);
    }
}
