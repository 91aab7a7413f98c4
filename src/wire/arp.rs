//! ARP for IPv4 over Ethernet (RFC 826). Only htype 1 / ptype 0x0800 / hlen 6 / plen 4
//! is accepted; anything else is `Malformed`.
use super::{be16, need, put16, put32, Error};

/// Field offsets (RFC 826): each field follows the one before.
mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = HTYPE + 2;
    pub const HLEN: usize = PTYPE + 2;
    pub const PLEN: usize = HLEN + 1;
    pub const OPER: usize = PLEN + 1;
    pub const SHA: usize = OPER + 2;
    pub const SPA: usize = SHA + 6;
    pub const THA: usize = SPA + 4;
    pub const TPA: usize = THA + 6;
}
pub const PACKET_LEN: usize = field::TPA + 4;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

/// Validates the length and the fixed Ethernet/IPv4 fields.
#[inline]
fn check(b: &[u8]) -> Result<(), Error> {
    need(b, PACKET_LEN)?;
    if be16(b, field::HTYPE) != 1
        || be16(b, field::PTYPE) != 0x0800
        || b[field::HLEN] != 6
        || b[field::PLEN] != 4
    {
        return Err(Error::Malformed);
    }
    Ok(())
}

view! {
    /// An ARP message: the operation, the sender's addresses, the target's.
    ArpPacket, check;
    oper: u16 @ field::OPER;
    sha: mac @ field::SHA; spa: u32 @ field::SPA;
    tha: mac @ field::THA; tpa: u32 @ field::TPA;
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Turns a request into the reply "`target` is at `our_mac`", in place.
    pub fn make_reply(&mut self, our_mac: [u8; 6]) {
        ArpRepr { oper: OP_REPLY, sha: our_mac, spa: self.tpa(), tha: self.sha(), tpa: self.spa() }
            .emit(self.buf.as_mut());
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
        b[field::SHA..field::SHA + 6].copy_from_slice(&self.sha);
        put32(b, field::SPA, self.spa);
        b[field::THA..field::THA + 6].copy_from_slice(&self.tha);
        put32(b, field::TPA, self.tpa);
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
    let l3 = super::ethernet::emit(out, [0xff; 6], src_mac, super::ethernet::EtherType::ARP);
    ArpRepr { oper: OP_REQUEST, sha: src_mac, spa: sender_ip, tha: [0; 6], tpa: target_ip }
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
