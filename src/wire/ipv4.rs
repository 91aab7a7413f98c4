//! IPv4 header view (RFC 791).
//!
//! `new_checked` validates version == 4, IHL >= 5, IHL*4 <= total length, and total
//! length <= the buffer (Ethernet padding after it is allowed). After it succeeds no
//! accessor can panic and `payload()` is exactly the L4 bytes the header announces.
use super::{be16, be32, checksum, length, need, put32, Error};

mod field {
    pub const VER_IHL: usize = 0;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}
pub const HEADER_LEN: usize = 20;

pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

/// Version 4, IHL at least 5, IHL*4 <= total length <= the buffer.
#[inline]
fn check(b: &[u8]) -> Result<(), Error> {
    need(b, HEADER_LEN)?;
    if b[field::VER_IHL] >> 4 != 4 {
        return Err(Error::Malformed);
    }
    let hl = usize::from(b[field::VER_IHL] & 0x0f) * 4;
    if hl < HEADER_LEN {
        return Err(Error::Malformed);
    }
    length(b, usize::from(be16(b, field::LENGTH)), hl)
}

view! {
    /// An IPv4 packet.
    Ipv4Packet, check;
    ident: u16 @ field::IDENT;
    ttl: u8 @ field::TTL;
    protocol: u8 @ field::PROTOCOL;
    checksum: u16 @ field::CHECKSUM;
    src: u32 @ field::SRC; dst: u32 @ field::DST;
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[field::VER_IHL] & 0x0f) * 4
    }
    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(be16(self.buf.as_ref(), field::LENGTH))
    }
    /// More-fragments flag set or a non-zero fragment offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buf.as_ref(), field::FLG_OFF) & 0x3fff != 0
    }
    /// A fragment other than the first: it carries no L4 header.
    #[inline]
    pub fn is_non_first_fragment(&self) -> bool {
        be16(self.buf.as_ref(), field::FLG_OFF) & 0x1fff != 0
    }
    /// The header checksum is valid.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(&self.buf.as_ref()[..self.header_len()])
    }
    /// The L4 bytes: from the end of the header to the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len());
        &mut self.buf.as_mut()[h..t]
    }
    /// Swaps source and destination (the checksum is unchanged by a swap).
    pub fn swap_addrs(&mut self) {
        let b = self.buf.as_mut();
        let (s, d) = (be32(b, field::SRC), be32(b, field::DST));
        put32(b, field::SRC, d);
        put32(b, field::DST, s);
    }
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buf.as_mut();
        super::put16(b, field::CHECKSUM, 0);
        let c = checksum::checksum(&b[..hl]);
        super::put16(b, field::CHECKSUM, c);
    }
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buf.as_mut()[field::TTL] = ttl;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0] = 0x45;
        b[2..4].copy_from_slice(&24u16.to_be_bytes());
        b[8] = 64;
        b[9] = 6;
        b[12..16].copy_from_slice(&[10, 0, 0, 1]);
        b[16..20].copy_from_slice(&[192, 168, 1, 200]);
        b
    }

    #[test]
    fn valid_header() {
        let mut b = hdr();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.dst(), 0xc0a801c8);
        assert_eq!(p.payload().len(), 4);
        assert!(!p.is_fragment());
    }

    #[test]
    fn malformed_shapes() {
        // (what, version/IHL byte, total length, buffer length, error)
        for (what, ver_ihl, total, len, want) in [
            ("version 6", 0x65u8, 24u16, 24, Error::Malformed),
            ("ihl 4", 0x44, 24, 24, Error::Malformed),
            ("total < ihl*4", 0x46, 22, 24, Error::Malformed),
            ("total > buffer", 0x45, 25, 24, Error::Truncated),
            ("short", 0x45, 24, 19, Error::Truncated),
        ] {
            let mut b = hdr();
            b[0] = ver_ihl;
            b[2..4].copy_from_slice(&total.to_be_bytes());
            assert_eq!(Ipv4Packet::new_checked(&b[..len]).err(), Some(want), "{what}");
        }
    }

    #[test]
    fn fragments() {
        let mut b = hdr();
        b[6] = 0x20; // MF
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment() && !p.is_non_first_fragment());
        b[6] = 0x00;
        b[7] = 0x10; // offset 16*8
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment() && p.is_non_first_fragment());
        b[6] = 0x40; // DF only
        b[7] = 0;
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(!p.is_fragment());
    }
}
