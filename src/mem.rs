//! OS-facing memory for large per-worker tables: anonymous mappings that are zero
//! until touched (resident memory grows with use, not capacity) and advised to use
//! transparent huge pages (a random-access table of tens of MiB otherwise costs a TLB
//! miss per lookup). The only unsafe outside `dpdk/` and `sync/`.
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
        let bytes = std::mem::size_of::<T>()
            .checked_mul(len)
            .expect("table size overflows")
            .max(1);
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

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn zeroed_and_writable() {
        let mut t: Table<u64> = Table::zeroed(1 << 20);
        assert!(t.iter().all(|&v| v == 0));
        t[12345] = 7;
        assert_eq!(t[12345], 7);
        assert_eq!(t.as_ptr() as usize % HUGE, 0);
    }
}
