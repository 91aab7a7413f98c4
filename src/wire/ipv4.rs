//! IPv4 header view (RFC 791).
//!
//! `new_checked` validates version == 4, IHL >= 5, IHL*4 <= total length, and total
//! length <= the buffer (Ethernet padding after it is allowed). After it succeeds no
//! accessor can panic and `payload()` is exactly the L4 bytes the header announces.
use super::{be16, be32, checksum, Error};

mod field {
    pub const VER_IHL: usize = 0;
    pub const LENGTH: usize = 2;
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

pub struct Ipv4Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self, Error> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let hl = usize::from(b[field::VER_IHL] & 0x0f) * 4;
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        let total = usize::from(be16(b, field::LENGTH));
        if total < hl {
            return Err(Error::Malformed);
        }
        if total > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Ipv4Packet { buf })
    }
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
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buf.as_ref()[field::TTL]
    }
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buf.as_ref()[field::PROTOCOL]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }
    #[inline]
    pub fn src(&self) -> u32 {
        be32(self.buf.as_ref(), field::SRC)
    }
    #[inline]
    pub fn dst(&self) -> u32 {
        be32(self.buf.as_ref(), field::DST)
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
        b[field::SRC..field::SRC + 4].copy_from_slice(&d.to_be_bytes());
        b[field::DST..field::DST + 4].copy_from_slice(&s.to_be_bytes());
    }
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buf.as_mut();
        b[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&b[..hl]);
        b[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
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
        let mut b = hdr();
        b[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::Malformed),
            "version 6"
        );
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::Malformed),
            "ihl 4"
        );
        b[0] = 0x46;
        b[2..4].copy_from_slice(&22u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::Malformed),
            "total < ihl*4"
        );
        b[0] = 0x45;
        b[2..4].copy_from_slice(&25u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::Truncated),
            "total > buffer"
        );
        assert_eq!(
            Ipv4Packet::new_checked(&b[..19]).err(),
            Some(Error::Truncated),
            "short"
        );
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
