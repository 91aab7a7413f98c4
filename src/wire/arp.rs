//! ARP for IPv4 over Ethernet (RFC 826). Only htype 1 / ptype 0x0800 / hlen 6 / plen 4
//! is accepted; anything else is `Malformed`.
use super::{be16, be32, put16, Error};

mod field {
    use std::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: usize = 14;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: usize = 24;
}
pub const PACKET_LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

pub struct ArpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Validates the length and the fixed Ethernet/IPv4 fields.
    pub fn new_checked(buf: T) -> Result<Self, Error> {
        let b = buf.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if be16(b, field::HTYPE) != 1
            || be16(b, field::PTYPE) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(Error::Malformed);
        }
        Ok(ArpPacket { buf })
    }
    #[inline]
    pub fn oper(&self) -> u16 {
        be16(self.buf.as_ref(), field::OPER)
    }
    #[inline]
    pub fn sha(&self) -> [u8; 6] {
        self.buf.as_ref()[field::SHA].try_into().unwrap()
    }
    #[inline]
    pub fn spa(&self) -> u32 {
        be32(self.buf.as_ref(), field::SPA)
    }
    #[inline]
    pub fn tha(&self) -> [u8; 6] {
        self.buf.as_ref()[field::THA].try_into().unwrap()
    }
    #[inline]
    pub fn tpa(&self) -> u32 {
        be32(self.buf.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Turns a request into the reply "`target` is at `our_mac`", in place.
    pub fn make_reply(&mut self, our_mac: [u8; 6]) {
        let (sha, spa, tpa) = (self.sha(), self.spa(), self.tpa());
        let b = self.buf.as_mut();
        put16(b, field::OPER, OP_REPLY);
        b[field::THA].copy_from_slice(&sha);
        b[field::TPA..field::TPA + 4].copy_from_slice(&spa.to_be_bytes());
        b[field::SHA].copy_from_slice(&our_mac);
        b[field::SPA..field::SPA + 4].copy_from_slice(&tpa.to_be_bytes());
    }
}

/// An ARP message for IPv4 over Ethernet, as values (smoltcp's `Repr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub oper: u16,
    pub sha: [u8; 6],
    pub spa: u32,
    pub tha: [u8; 6],
    pub tpa: u32,
}

impl ArpRepr {
    /// Writes the 28-byte message into `buf` (at least [`PACKET_LEN`] bytes).
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..PACKET_LEN];
        put16(b, field::HTYPE, 1);
        put16(b, field::PTYPE, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        put16(b, field::OPER, self.oper);
        b[field::SHA].copy_from_slice(&self.sha);
        b[field::SPA..field::SPA + 4].copy_from_slice(&self.spa.to_be_bytes());
        b[field::THA].copy_from_slice(&self.tha);
        b[field::TPA..field::TPA + 4].copy_from_slice(&self.tpa.to_be_bytes());
    }
}

/// Writes a whole broadcast ARP request frame (untagged, padded to 60 bytes) into `out`
/// and returns its length. Used by the control plane to resolve backends and for
/// gratuitous ARP (`sender_ip == target_ip`).
pub fn build_request(
    out: &mut [u8; 60],
    src_mac: [u8; 6],
    sender_ip: u32,
    target_ip: u32,
) -> usize {
    *out = [0u8; 60];
    let l3 = super::ethernet::emit(out, [0xff; 6], src_mac, super::ethernet::ethertype::ARP);
    ArpRepr {
        oper: OP_REQUEST,
        sha: src_mac,
        spa: sender_ip,
        tha: [0; 6],
        tpa: target_ip,
    }
    .emit(&mut out[l3..]);
    60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_roundtrip_and_reply() {
        let mut f = [0u8; 60];
        build_request(&mut f, [2, 0, 0, 0, 0, 9], 0xc0a80176, 0xc0a801c8);
        let mut a = ArpPacket::new_checked(&mut f[14..]).unwrap();
        assert_eq!(a.oper(), OP_REQUEST);
        assert_eq!(a.spa(), 0xc0a80176);
        assert_eq!(a.tpa(), 0xc0a801c8);
        a.make_reply([2, 0, 0, 0, 0, 1]);
        assert_eq!(a.oper(), OP_REPLY);
        assert_eq!(a.sha(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(a.spa(), 0xc0a801c8);
        assert_eq!(a.tha(), [2, 0, 0, 0, 0, 9]);
        assert_eq!(a.tpa(), 0xc0a80176);
    }

    #[test]
    fn rejects_short_and_foreign() {
        let f = [0u8; 27];
        assert_eq!(ArpPacket::new_checked(&f[..]).err(), Some(Error::Truncated));
        let mut g = [0u8; 28];
        g[1] = 6; // htype 6 (IEEE 802)
        assert_eq!(ArpPacket::new_checked(&g[..]).err(), Some(Error::Malformed));
    }
}
