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
    /// Starts loading element `i`'s first cache line (`i` below the length; a
    /// prefetch of any address is harmless, so nothing is checked or masked).
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        prefetch(self.ptr.as_ptr().wrapping_add(i) as *const u8);
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
    /// Element `i`, else element `j` (both wrapped as in [`wrapped`](Self::wrapped)),
    /// the first for which `f` gives a value: that element, writable, and the value.
    /// The element is the one `f` read, at the address computed for it (taking it again
    /// by index afterwards costs the address computation twice on a hot path).
    #[inline(always)]
    pub fn first_mut<R>(
        &mut self,
        i: usize,
        j: usize,
        f: impl FnMut(&T) -> Option<R>,
    ) -> Option<(&mut T, R)> {
        self.view().first_mut(i, j, f)
    }

    /// The table's address and index mask as values, for a loop that reads and writes
    /// its elements but nothing else of the table: held in registers, they need not be
    /// loaded again after each write to an element (which the compiler cannot always
    /// tell apart from a write to the table itself).
    #[inline(always)]
    pub fn view(&mut self) -> View<'_, T> {
        View { ptr: self.ptr, mask: self.len - 1, _table: std::marker::PhantomData }
    }
}

/// A [`Table`] borrowed writably as its address and index mask ([`Table::view`]).
pub struct View<'a, T> {
    ptr: NonNull<T>,
    /// len - 1 (len > 0).
    mask: usize,
    _table: std::marker::PhantomData<&'a mut T>,
}

impl<T> View<'_, T> {
    /// The view again, for a shorter time (a call that takes it by value).
    #[inline(always)]
    pub fn reborrow(&mut self) -> View<'_, T> {
        View { ptr: self.ptr, mask: self.mask, _table: std::marker::PhantomData }
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

    /// [`Table::wrapped`].
    #[inline(always)]
    pub fn wrapped(&self, i: usize) -> &T {
        // SAFETY: as in `Table::wrapped`: mask = len - 1 of a table of len > 0.
        unsafe { &*self.ptr.as_ptr().add(i & self.mask) }
    }
}

impl<'a, T> View<'a, T> {
    /// [`Table::first_mut`], for as long as the view's borrow.
    #[inline(always)]
    pub fn first_mut<R>(
        self,
        i: usize,
        j: usize,
        mut f: impl FnMut(&T) -> Option<R>,
    ) -> Option<(&'a mut T, R)> {
        let base = self.ptr.as_ptr();
        for k in [i, j] {
            // SAFETY: inside the table, as in `wrapped`.
            let p = unsafe { base.add(k & self.mask) };
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

/// Whether `a` and `b` agree in their first 12 bytes (the last 4 not compared): one
/// SSE2 compare of the two 16-byte values and a test of its byte mask, with neither
/// value in a general register.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn eq_first12(a: &[u8; 16], b: &[u8; 16]) -> bool {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is x86_64 baseline; the unaligned loads read exactly `a`'s and `b`'s
    // 16 bytes.
    unsafe {
        let x = _mm_loadu_si128(a.as_ptr() as *const __m128i);
        let y = _mm_loadu_si128(b.as_ptr() as *const __m128i);
        _mm_movemask_epi8(_mm_cmpeq_epi8(x, y)) & 0xfff == 0xfff
    }
}

/// Whether `a` and `b` agree in their first 12 bytes (the last 4 not compared).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn eq_first12(a: &[u8; 16], b: &[u8; 16]) -> bool {
    a[..12] == b[..12]
}

/// The lanes of `lanes` equal to the top 16 bits of `h`, as a bitmask (bit i = lane i):
/// one SSE2 compare of all eight (as `rte_hash` matches signatures). The value is
/// broadcast from where it is in `h` (two shuffles; no shift and no register move).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn match_top16x8(lanes: &[u16; 8], h: u64) -> u32 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86_64 baseline; the load reads exactly the 16 bytes
    // of `lanes` (unaligned load, no alignment requirement).
    unsafe {
        // h's word 3 into words 0-3, then the low 8 bytes into the high 8.
        let v = _mm_shuffle_epi32::<0x44>(_mm_shufflelo_epi16::<0xff>(_mm_cvtsi64_si128(h as i64)));
        let x = _mm_loadu_si128(lanes.as_ptr() as *const __m128i);
        let eq = _mm_cmpeq_epi16(x, v);
        // 16-bit lanes (0 or -1) to bytes, one bit per lane (the mask says the result
        // is below 256, so a lane index from it needs no masking).
        (_mm_movemask_epi8(_mm_packs_epi16(eq, eq)) as u32) & 0xff
    }
}

/// The lanes of `lanes` equal to the top 16 bits of `h`, as a bitmask (bit i = lane i).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn match_top16x8(lanes: &[u16; 8], h: u64) -> u32 {
    let v = (h >> 48) as u16;
    lanes.iter().enumerate().fold(0, |m, (i, &l)| m | (u32::from(l == v) << i))
}

/// The lanes of `lanes` that are zero, as a bitmask (bit i = lane i): one SSE2 compare.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn zero_u8x8(lanes: &[u8; 8]) -> u32 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is x86_64 baseline; the load reads exactly the 8 bytes of `lanes`.
    unsafe {
        let x = _mm_loadl_epi64(lanes.as_ptr() as *const __m128i);
        (_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_setzero_si128())) as u32) & 0xff
    }
}

/// The lanes of `lanes` that are zero, as a bitmask (bit i = lane i).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn zero_u8x8(lanes: &[u8; 8]) -> u32 {
    lanes.iter().enumerate().fold(0, |m, (i, &l)| m | (u32::from(l == 0) << i))
}

/// The lanes of `lanes` at most `v` (unsigned), as a bitmask (bit i = lane i): two SSE2
/// compares of four lanes (signed, on values biased by 2^31, which orders them as
/// unsigned), packed to one bit per lane.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn le_u32x8(lanes: &[u32; 8], v: u32) -> u32 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is x86_64 baseline; the two loads read exactly the 32 bytes of
    // `lanes` (unaligned loads).
    unsafe {
        let bias = _mm_set1_epi32(i32::MIN);
        let n = _mm_xor_si128(_mm_set1_epi32(v as i32), bias);
        let p = lanes.as_ptr() as *const __m128i;
        let gt_lo = _mm_cmpgt_epi32(_mm_xor_si128(_mm_loadu_si128(p), bias), n);
        let gt_hi = _mm_cmpgt_epi32(_mm_xor_si128(_mm_loadu_si128(p.add(1)), bias), n);
        let gt = _mm_packs_epi16(_mm_packs_epi32(gt_lo, gt_hi), _mm_setzero_si128());
        !(_mm_movemask_epi8(gt) as u32) & 0xff
    }
}

/// The lanes of `lanes` at most `v`, as a bitmask (bit i = lane i).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn le_u32x8(lanes: &[u32; 8], v: u32) -> u32 {
    lanes.iter().enumerate().fold(0, |m, (i, &l)| m | (u32::from(l <= v) << i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eq_first12_compares_the_first_twelve_bytes_only() {
        let a: [u8; 16] = std::array::from_fn(|i| i as u8);
        for i in 0..16 {
            let mut b = a;
            b[i] ^= 0x80;
            assert_eq!(eq_first12(&a, &b), i >= 12, "byte {i}");
        }
        assert!(eq_first12(&a, &a));
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

    #[test]
    fn zero_and_le_lanes_match_the_scalar_answer() {
        let mut rng = crate::testing::Rng(0x51);
        let edges = [0u32, 1, 0x7fff_ffff, 0x8000_0000, 0x8000_0001, u32::MAX - 1, u32::MAX];
        for _ in 0..20_000 {
            let pick = |r: &mut crate::testing::Rng| {
                if r.below(2) == 0 {
                    edges[r.below(edges.len() as u64) as usize]
                } else {
                    r.next_u64() as u32
                }
            };
            let lanes: [u32; 8] = std::array::from_fn(|_| pick(&mut rng));
            let v = if rng.below(4) == 0 { lanes[rng.below(8) as usize] } else { pick(&mut rng) };
            let want = lanes.iter().enumerate().fold(0, |m, (i, &l)| m | (u32::from(l <= v) << i));
            assert_eq!(le_u32x8(&lanes, v), want, "{lanes:x?} <= {v:x}");
            let bytes: [u8; 8] =
                std::array::from_fn(|_| if rng.below(3) == 0 { 0 } else { rng.next_u64() as u8 });
            let want = bytes.iter().enumerate().fold(0, |m, (i, &l)| m | (u32::from(l == 0) << i));
            assert_eq!(zero_u8x8(&bytes), want, "{bytes:x?}");
        }
    }

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
                assert_eq!(
                    match_top16x8(&l, u64::from(base) << 48 | 0xffff_0000_1234),
                    exact,
                    "tag {base:#x} lane {lane}"
                );
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
