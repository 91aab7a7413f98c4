//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// Ones'-complement sum of `data` folded to 16 bits (not inverted).
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    fold(acc)
}

#[inline(always)]
fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for `data` (whose checksum field must be zero).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// True when `data`, checksum field included, sums to 0xffff (a valid checksum).
#[inline]
pub fn verify(data: &[u8]) -> bool {
    if data.len() == 20 {
        return verify20(data.try_into().unwrap());
    }
    sum(data) == 0xffff
}

/// [`verify`] for the common IPv4 header without options: five 32-bit words summed in
/// 64 bits. Loaded in the machine's order, not swapped: the ones'-complement sum of
/// byte-swapped words is the byte-swapped sum (RFC 1071 §2(B)), and 0xffff is its own
/// swap.
#[inline(always)]
pub fn verify20(h: &[u8; 20]) -> bool {
    let mut acc: u64 = 0;
    for w in h.chunks_exact(4) {
        acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    acc == 0xffff
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word changes from `old` to `new`.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!csum) + u32::from(!old) + u32::from(new);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: sum of these words is 0xddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&d), 0xddf2);
    }

    /// An IPv4 header with its checksum filled in.
    fn header() -> [u8; 20] {
        let mut h =
            [0x45u8, 0, 0, 60, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 192, 168, 1, 200];
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn fast_20_byte_path_agrees() {
        let h = header();
        for i in 0..20 {
            for bit in 0..8 {
                let mut x = h;
                x[i] ^= 1 << bit;
                assert_eq!(verify(&x), sum(&x) == 0xffff);
                assert!(!verify(&x));
            }
        }
        assert!(verify(&h));
        // Random headers, checksummed and not: the unswapped sum agrees with RFC 1071's.
        let mut rng = crate::testing::Rng(0xc5);
        for _ in 0..20_000 {
            let mut x = [0u8; 20];
            x.iter_mut().for_each(|b| *b = rng.below(256) as u8);
            assert_eq!(verify20(&x), sum(&x) == 0xffff, "{x:02x?}");
            x[10..12].fill(0);
            let c = checksum(&x);
            x[10..12].copy_from_slice(&c.to_be_bytes());
            assert!(verify20(&x), "{x:02x?}");
        }
    }

    #[test]
    fn incremental_matches_full() {
        let mut d = header();
        let c = u16::from_be_bytes([d[10], d[11]]);
        assert!(verify(&d));
        // change the TTL/protocol word
        let old = u16::from_be_bytes([d[8], d[9]]);
        d[8] = 63;
        let new = u16::from_be_bytes([d[8], d[9]]);
        let c2 = update16(c, old, new);
        d[10..12].copy_from_slice(&c2.to_be_bytes());
        assert!(verify(&d));
    }
}
