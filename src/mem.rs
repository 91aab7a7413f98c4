//! Memory primitives the hot path needs below safe Rust, each behind a safe function:
//! - [`Table`]: large per-worker tables in anonymous mappings that are zero until
//!   touched or populated (all resident at once, on a chosen NUMA node) and advised to
//!   use transparent huge pages (a random-access table of tens of MiB otherwise costs a
//!   TLB miss per lookup);
//! - [`prefetch`]: a cache-line prefetch hint;
//! - [`match_key4`]: one SIMD compare of a flow key with a flow-table group's four keys;
//! - [`eq_masked16`]: one SIMD compare of a frame's first 16 bytes under a mask.
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
    /// (len - 1) × the element's size ([`scaled_mask`]).
    scaled_mask: usize,
    map: *mut libc::c_void,
    map_len: usize,
}

// SAFETY: Table owns its memory exclusively, like Box<[T]>.
unsafe impl<T: bytemuck::Zeroable + Send> Send for Table<T> {}
// SAFETY: shared access only hands out &[T], like Box<[T]>.
unsafe impl<T: bytemuck::Zeroable + Sync> Sync for Table<T> {}

impl<T: bytemuck::Zeroable> Table<T> {
    /// `len` zeroed values. Panics if the mapping fails (out of address space), like an
    /// allocation failure would; [`try_zeroed`](Self::try_zeroed) returns the error.
    pub fn zeroed(len: usize) -> Self {
        Self::try_zeroed(len).unwrap_or_else(|e| panic!("cannot map a table of {len}: {e}"))
    }

    /// `len` zeroed values, or the error of the mapping (the address space or, with
    /// `vm.overcommit_memory = 2`, the commit limit cannot hold it).
    pub fn try_zeroed(len: usize) -> std::io::Result<Self> {
        assert!(len > 0, "an empty table");
        let too_big = || std::io::Error::from(std::io::ErrorKind::OutOfMemory);
        let bytes = std::mem::size_of::<T>().checked_mul(len).ok_or_else(too_big)?;
        assert!(std::mem::align_of::<T>() <= HUGE);
        // Over-map by 2 MiB so the table can start on a huge-page boundary.
        let map_len = bytes.checked_add(HUGE).ok_or_else(too_big)?;
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
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
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
        Ok(Table {
            ptr: NonNull::new(start as *mut T).expect("mmap never returns 0"),
            len,
            scaled_mask: scaled_mask::<T>(len - 1),
            map,
            map_len,
        })
    }
}

impl<T: bytemuck::Zeroable> Table<T> {
    /// Starts loading element `i`'s first cache line (`i` below the length; a
    /// prefetch of any address is harmless, so nothing is checked or masked).
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        prefetch(self.ptr.as_ptr().wrapping_add(i) as *const u8);
    }

    /// Starts loading element `(x / size) & (len - 1)` (`size` that of an element, a
    /// power of two): for an `x` whose bits above the element's size are its index (a
    /// hash laid out so), one AND finds the element's offset, where an index takes an
    /// AND and a shift.
    #[inline(always)]
    pub fn prefetch_scaled(&self, x: usize) {
        debug_assert!(std::mem::size_of::<T>().is_power_of_two());
        prefetch((self.ptr.as_ptr() as *const u8).wrapping_add(x & self.scaled_mask));
    }

    /// Element `i & mask` where `mask` = len - 1: for a table whose length is a power of
    /// two, an index wrapped into it. No bounds check (an AND instead of a compare and a
    /// branch on a hash table's hot path), and no index can reach outside the table
    /// (whatever the length: `i & (len - 1) <= len - 1`).
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

impl<T: bytemuck::Zeroable> Table<T> {
    /// The table's size in bytes.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<T>() * self.len
    }

    /// Makes every page of the table resident now, preferably on NUMA node `node`
    /// (`None`: wherever the kernel puts it), so that nothing faults later: a worker that
    /// first writes into an untouched 2 MiB of its table stalls while the kernel zeroes
    /// a huge page (~0.1 ms each; 1 ms for a 16 MiB table filling), and a table the
    /// kernel cannot back fails here, at start, not under load. The pages are zero
    /// still. `MADV_POPULATE_WRITE` (Linux 5.14) faults them in as writes would, huge
    /// pages where advised; on an older kernel a write of zero to each 4 KiB page does.
    pub fn populate(&mut self, node: Option<u32>) -> std::io::Result<()> {
        let (start, bytes) = (self.ptr.as_ptr() as *mut libc::c_void, self.bytes());
        if let Some(node) = node.filter(|&n| n < 64) {
            let mask: libc::c_ulong = 1 << node;
            // SAFETY: a memory policy for our own mapping's range; `mask` is one word,
            // 64 nodes (maxnode = 65: the kernel reads maxnode - 1 bits). A preference,
            // so its failure is not the table's: where the node cannot be had (a kernel
            // without NUMA, a cpuset without the node, a node without memory) the
            // kernel's default placement applies.
            let _ = unsafe {
                libc::syscall(libc::SYS_mbind, start, bytes, libc::MPOL_PREFERRED, &mask, 65, 0)
            };
        }
        // SAFETY: advice for a range inside our own mapping; it changes no contents.
        if unsafe { libc::madvise(start, bytes, libc::MADV_POPULATE_WRITE) } == 0 {
            return Ok(());
        }
        match std::io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EINVAL) => {
                self.touch_pages();
                Ok(())
            }
            e => Err(e),
        }
    }

    /// Writes a zero to the first byte of every 4 KiB page (they are zero already): the
    /// faults `populate` takes where the kernel has no `MADV_POPULATE_WRITE`.
    fn touch_pages(&mut self) {
        let base = self.ptr.as_ptr() as *mut u8;
        for off in (0..self.bytes()).step_by(4096) {
            // SAFETY: off < the table's size: inside the table, which &mut self owns;
            // a zero byte is a valid part of any Zeroable T.
            unsafe { std::ptr::write_volatile(base.add(off), 0) };
        }
    }

    /// The table's address and index mask as values, for a loop that reads and writes
    /// its elements but nothing else of the table: held in registers, they need not be
    /// loaded again after each write to an element (which the compiler cannot always
    /// tell apart from a write to the table itself).
    #[inline(always)]
    pub fn view(&mut self) -> View<'_, T> {
        View {
            ptr: self.ptr,
            mask: self.len - 1,
            scaled_mask: self.scaled_mask,
            _table: std::marker::PhantomData,
        }
    }
}

/// `mask` times the size of `T` when that is a power of two (then its low bits are zero
/// and `x & scaled_mask` is the offset of element `(x / size) & mask`), else 0 (every
/// scaled access is element 0: in bounds, and caught by the scaled accessors' debug
/// assertion; a table of such elements is still indexed as any other).
#[inline(always)]
fn scaled_mask<T>(mask: usize) -> usize {
    let size = std::mem::size_of::<T>();
    if size.is_power_of_two() {
        mask * size
    } else {
        0
    }
}

/// A [`Table`] borrowed writably as its address and index mask ([`Table::view`]).
pub struct View<'a, T> {
    ptr: NonNull<T>,
    /// len - 1 (len > 0).
    mask: usize,
    /// The table's `scaled_mask`.
    scaled_mask: usize,
    _table: std::marker::PhantomData<&'a mut T>,
}

impl<T> View<'_, T> {
    /// The view again, for a shorter time (a call that takes it by value).
    #[inline(always)]
    pub fn reborrow(&mut self) -> View<'_, T> {
        View {
            ptr: self.ptr,
            mask: self.mask,
            scaled_mask: self.scaled_mask,
            _table: std::marker::PhantomData,
        }
    }

    /// The table's length - 1.
    #[inline(always)]
    pub fn mask(&self) -> usize {
        self.mask
    }

    /// [`Table::prefetch`].
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        prefetch(self.ptr.as_ptr().wrapping_add(i) as *const u8);
    }

    /// [`Table::prefetch_scaled`].
    #[inline(always)]
    pub fn prefetch_scaled(&self, x: usize) {
        debug_assert!(std::mem::size_of::<T>().is_power_of_two());
        prefetch((self.ptr.as_ptr() as *const u8).wrapping_add(x & self.scaled_mask));
    }

    /// [`Table::wrapped`].
    #[inline(always)]
    pub fn wrapped(&self, i: usize) -> &T {
        // SAFETY: as in `Table::wrapped`: mask = len - 1 of a table of len > 0.
        unsafe { &*self.ptr.as_ptr().add(i & self.mask) }
    }
}

impl<'a, T> View<'a, T> {
    /// Element `(x / size) & mask`, else element `(y / size) & mask` (as in
    /// [`prefetch_scaled`](Self::prefetch_scaled)), the first for which `f` gives a
    /// value: that element, writable for as long as the view's borrow, and the value.
    /// The element is the one `f` read, at the address computed for it (taking it again
    /// by index afterwards costs the address computation twice on a hot path).
    #[inline(always)]
    pub fn first_mut_scaled<R>(
        self,
        x: usize,
        y: usize,
        mut f: impl FnMut(&T) -> Option<R>,
    ) -> Option<(&'a mut T, R)> {
        debug_assert!(std::mem::size_of::<T>().is_power_of_two());
        let base = self.ptr.as_ptr() as *mut u8;
        for k in [x, y] {
            // SAFETY: k & scaled_mask is at most (len - 1) × size and a multiple of the
            // size (a power of two: `scaled_mask`; else 0), so an element's offset inside
            // the table, aligned as the table's start is.
            let p = unsafe { base.add(k & self.scaled_mask) as *mut T };
            // SAFETY: the view borrows the table writably, so it is the only access; the
            // shared reference `f` gets ends with the call, before the mutable one is
            // made.
            if let Some(r) = f(unsafe { &*p }) {
                // SAFETY: as above: the only reference to the element from here on.
                return Some((unsafe { &mut *p }, r));
            }
        }
        None
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

/// Where the kernel says whether it gives transparent huge pages.
pub const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// The mode [`THP_ENABLED`] selects (its bracketed word: `always`, `madvise` or
/// `never`), from the file's text.
pub fn thp_mode(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once('[')?;
    Some(rest.split_once(']')?.0)
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

/// 16 bytes, aligned for SSE2's compare with a memory operand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct Bytes16(pub [u8; 16]);

/// The first `N` bytes of `f` as an array when `N <= f.len() <= max` (`max` at least
/// `N`; a smaller one counts as `N`): both bounds in one compare, where `get(..N)` and a
/// second test of the length take two.
#[inline(always)]
pub fn head_within<const N: usize>(f: &[u8], max: usize) -> Option<&[u8; N]> {
    // len - N wraps to above any span when len < N.
    if f.len().wrapping_sub(N) > max.max(N) - N {
        return None;
    }
    // SAFETY: the compare above passed, so f.len() >= N: the array is `f`'s first N
    // bytes, borrowed for `f`'s lifetime ([u8; N] has u8's alignment).
    Some(unsafe { &*(f.as_ptr() as *const [u8; N]) })
}

/// Whether `bytes` equals `want` in every byte where `mask` is 0xff (each mask byte 0
/// or 0xff): one SSE2 and, compare and byte mask.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn eq_masked16(bytes: &[u8; 16], want: &Bytes16, mask: &Bytes16) -> bool {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is x86_64 baseline; the loads read exactly `bytes`' 16 (unaligned
    // load) and `want`'s and `mask`'s (16-aligned by Bytes16).
    unsafe {
        let x = _mm_loadu_si128(bytes.as_ptr() as *const __m128i);
        let m = _mm_load_si128(mask.0.as_ptr() as *const __m128i);
        let w = _mm_load_si128(want.0.as_ptr() as *const __m128i);
        _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(x, m), w)) == 0xffff
    }
}

/// Whether `bytes` equals `want` in every byte where `mask` is 0xff.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn eq_masked16(bytes: &[u8; 16], want: &Bytes16, mask: &Bytes16) -> bool {
    (0..16).all(|i| bytes[i] & mask.0[i] == want.0[i])
}

/// Which of the four words of `words` equal `v`, as a mask with bit 4i set for word i
/// (and no other bits).
#[inline(always)]
pub fn match_u64x4(words: &[u64; 4], v: u64) -> u32 {
    let w = [v as u32, 0, (v >> 32) as u32, 0];
    match_key4(words, bytemuck::cast_ref(&w))
}

/// [`match_u64x4`] of the word made of `key`'s bytes 0..4 and 8..12 (a frame's source
/// address and ports, its bytes 26..42 holding the source and destination address, the
/// ports and 4 bytes more): one load and one shuffle make it, two 16-byte loads and two
/// SSE2 compares test the four words, one pack and one movemask make the mask.
/// (Lane-by-lane compares were ~20 instructions, a sixth of a flow-table hit.)
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn match_key4(words: &[u64; 4], key: &[u8; 16]) -> u32 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is x86_64 baseline; the loads read exactly the 32 bytes of `words`
    // and the 16 of `key` (unaligned loads).
    unsafe {
        let p = words.as_ptr() as *const __m128i;
        // The key's 32-bit words 0 and 2, twice.
        let want = _mm_shuffle_epi32::<0x88>(_mm_loadu_si128(key.as_ptr() as *const __m128i));
        let lo = _mm_cmpeq_epi32(_mm_loadu_si128(p), want);
        let hi = _mm_cmpeq_epi32(_mm_loadu_si128(p.add(1)), want);
        // Two mask bits per 16-bit half of a 32-bit word, four per word's half: word
        // i's 8 bytes are mask bits 4i..4i+4 after the pack.
        let m = _mm_movemask_epi8(_mm_packs_epi32(lo, hi)) as u32;
        m & (m >> 2) & 0x1111
    }
}

/// [`match_key4`] without SIMD.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn match_key4(words: &[u64; 4], key: &[u8; 16]) -> u32 {
    let word = |i: usize| u32::from_le_bytes(key[4 * i..4 * i + 4].try_into().expect("4"));
    let v = u64::from(word(0)) | u64::from(word(2)) << 32;
    (0..4).fold(0, |m, i| m | u32::from(words[i] == v) << (4 * i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_key4_takes_the_keys_words_0_and_2() {
        let words: [u64; 4] = std::array::from_fn(|i| 0x0101_0101_0101_0101 * i as u64 + 7);
        for (i, &w) in words.iter().enumerate() {
            let mut key = [0xa5u8; 16];
            key[..4].copy_from_slice(&(w as u32).to_le_bytes());
            key[8..12].copy_from_slice(&((w >> 32) as u32).to_le_bytes());
            assert_eq!(match_key4(&words, &key), 1 << (4 * i), "word {i}");
            assert_eq!(match_u64x4(&words, w), 1 << (4 * i));
            // Either half alone is not a match.
            assert_eq!(match_u64x4(&words, w ^ 1), 0);
            assert_eq!(match_u64x4(&words, w ^ 1 << 63), 0);
            key[9] ^= 1;
            assert_eq!(match_key4(&words, &key), 0);
        }
        let same = [words[0], words[1], words[0], words[3]];
        assert_eq!(match_u64x4(&same, words[0]), 1 | 1 << 8);
    }

    #[test]
    fn head_within_takes_both_bounds() {
        let f = [7u8; 100];
        for len in 0..100 {
            for max in [0, 3, 4, 5, 50, 99] {
                let got = head_within::<4>(&f[..len], max).map(|h| h.as_ptr());
                let want = (4 <= len && len <= max.max(4)).then_some(f.as_ptr());
                assert_eq!(got, want, "len {len} max {max}");
            }
        }
    }

    #[test]
    fn masked_compare_looks_only_at_the_masked_bytes() {
        let mut rng = crate::testing::Rng(0x16);
        for _ in 0..20_000 {
            let bytes: [u8; 16] = std::array::from_fn(|_| rng.below(256) as u8);
            let mask = Bytes16(std::array::from_fn(|_| if rng.below(2) == 0 { 0xff } else { 0 }));
            // Mostly equal where masked, so both answers come up.
            let want = Bytes16(std::array::from_fn(|i| {
                let b = if rng.below(40) == 0 { rng.below(256) as u8 } else { bytes[i] };
                b & mask.0[i]
            }));
            let scalar = bytes.iter().zip(&mask.0).zip(&want.0).all(|((b, m), w)| b & m == *w);
            assert_eq!(eq_masked16(&bytes, &want, &mask), scalar, "{bytes:02x?} {want:?} {mask:?}");
        }
    }

    /// How many of the table's 4 KiB pages are resident (mincore).
    fn resident_pages<T: bytemuck::Zeroable>(t: &Table<T>) -> usize {
        let pages = t.bytes().div_ceil(4096);
        let mut v = vec![0u8; pages];
        // SAFETY: the range is our mapping's; `v` has a byte for each page.
        let rc =
            unsafe { libc::mincore(t.as_ptr() as *mut libc::c_void, t.bytes(), v.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        v.iter().filter(|&&b| b & 1 != 0).count()
    }

    #[test]
    fn populate_makes_every_page_resident_and_keeps_it_zero() {
        let mut t: Table<u64> = Table::zeroed(1 << 20); // 8 MiB
        assert_eq!(resident_pages(&t), 0, "an untouched mapping holds no pages");
        t.populate(Some(0)).expect("node 0 exists on every Linux host");
        assert_eq!(resident_pages(&t), t.bytes() / 4096);
        assert!(t.iter().all(|&v| v == 0));
        let mut u: Table<u64> = Table::zeroed(1 << 17);
        u.populate(None).unwrap();
        assert_eq!(resident_pages(&u), u.bytes() / 4096);
        // A node the host does not have is a preference not met, not a failure.
        let mut w: Table<u64> = Table::zeroed(1 << 17);
        w.populate(Some(63)).unwrap();
        assert_eq!(resident_pages(&w), w.bytes() / 4096);
    }

    #[test]
    fn touching_the_pages_makes_them_resident_too() {
        // The fallback for kernels before MADV_POPULATE_WRITE.
        let mut t: Table<[u8; 64]> = Table::zeroed(3 << 12);
        t.touch_pages();
        assert_eq!(resident_pages(&t), t.bytes() / 4096);
        assert!(t.iter().all(|g| g.iter().all(|&b| b == 0)));
    }

    #[test]
    fn a_table_the_address_space_cannot_hold_is_an_error() {
        assert!(Table::<[u8; 64]>::try_zeroed(1 << 52).is_err(), "2^58 bytes");
        assert!(Table::<[u8; 64]>::try_zeroed(usize::MAX / 32).is_err(), "overflows");
        assert_eq!(Table::<u64>::try_zeroed(8).unwrap().len(), 8);
    }

    #[test]
    fn thp_mode_is_the_bracketed_word() {
        assert_eq!(thp_mode("always [madvise] never\n"), Some("madvise"));
        assert_eq!(thp_mode("always madvise [never]\n"), Some("never"));
        assert_eq!(thp_mode("[always] madvise never"), Some("always"));
        assert_eq!(thp_mode(""), None);
        assert_eq!(thp_mode("always [madvise"), None);
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
