//! ICMPv4 (RFC 792): echo, which the director answers for its VIPs, and the error
//! messages, whose quoted datagram names the flow they are about.
use super::{be16, checksum, need, Error};

pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACHABLE: u8 = 3;
pub const ECHO_REQUEST: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;
pub const PARAMETER_PROBLEM: u8 = 12;
/// Destination unreachable, code 4: fragmentation needed and DF set (RFC 1191's PMTU).
pub const FRAG_NEEDED: u8 = 4;
pub const HEADER_LEN: usize = 8;

/// An error message, which quotes the datagram that caused it.
#[inline]
pub fn is_error(msg_type: u8) -> bool {
    matches!(msg_type, DEST_UNREACHABLE | TIME_EXCEEDED | PARAMETER_PROBLEM)
}

/// What an ICMP error's quoted datagram says about its flow: the IPv4 addresses and
/// protocol, and the first four bytes of its payload as two ports (TCP and UDP put
/// their ports there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}

/// Field offsets (RFC 792).
mod field {
    pub const TYPE: usize = 0;
    pub const CHECKSUM: usize = 2;
}

/// Needs the 8-byte header.
#[inline]
fn check(b: &[u8]) -> Result<(), Error> {
    need(b, HEADER_LEN)
}

view! {
    /// An ICMP message.
    IcmpPacket, check;
    msg_type: u8 @ field::TYPE;
    code: u8 @ 1;
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// The checksum over the whole message is valid.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buf.as_ref())
    }

    /// The quoted datagram of an error message: an IPv4 header (any IHL) and at least
    /// the 8 bytes of its payload that RFC 792 requires. The quote may be cut short of
    /// the datagram's total length (most routers quote 8 bytes, RFC 1812 allows more),
    /// so only the header's own length is checked. `None` when it is not that.
    pub fn quoted(&self) -> Option<Quoted> {
        let q = self.buf.as_ref().get(HEADER_LEN..)?;
        let (&vihl, rest) = q.split_first()?;
        let hl = usize::from(vihl & 0x0f) * 4;
        if vihl >> 4 != 4 || hl < 20 || rest.len() + 1 < hl + 8 {
            return None;
        }
        let word = |i: usize| u32::from_be_bytes([q[i], q[i + 1], q[i + 2], q[i + 3]]);
        Some(Quoted {
            src: word(12),
            dst: word(16),
            proto: q[9],
            sport: be16(q, hl),
            dport: be16(q, hl + 2),
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Echo request -> echo reply in place: type 8 -> 0 with an RFC 1624 checksum update.
    pub fn make_echo_reply(&mut self) {
        let b = self.buf.as_mut();
        let old = be16(b, field::TYPE);
        b[field::TYPE] = ECHO_REPLY;
        let new = be16(b, field::TYPE);
        let mut c = checksum::update16(be16(b, field::CHECKSUM), old, new);
        if c == 0 {
            // RFC 1624's equation yields the -0 form (0x0000) when every other word is
            // zero; a sender's checksum is then 0xffff. Sum it again to be sure.
            super::put16(b, field::CHECKSUM, 0);
            c = checksum::checksum(b);
        }
        super::put16(b, field::CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn echo_reply_keeps_checksum_valid() {
        let mut m = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'h', b'i'];
        let c = checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        let mut p = IcmpPacket::new_checked(&mut m[..]).unwrap();
        assert!(p.verify_checksum());
        p.make_echo_reply();
        assert_eq!(p.msg_type(), ECHO_REPLY);
        assert!(p.verify_checksum());
    }

    /// An error quoting a TCP datagram with options in its IP header, cut after 8
    /// bytes of TCP; and quotes that are too short or not IPv4.
    #[test]
    fn quoted_datagram() {
        let mut m = vec![DEST_UNREACHABLE, FRAG_NEEDED, 0, 0, 0, 0, 0x05, 0xdc];
        m.extend([0x46, 0, 5, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        m.extend([192, 168, 1, 200, 10, 0, 0, 2, 1, 1, 0, 0]); // src, dst, 4 bytes of options
        m.extend([0, 80, 0xc3, 0x50, 0, 0, 0, 1]); // 80 -> 50000, then the sequence number
        let q = IcmpPacket::new_checked(&m[..]).unwrap().quoted().unwrap();
        assert_eq!(
            q,
            Quoted { src: 0xc0a8_01c8, dst: 0x0a00_0002, proto: 6, sport: 80, dport: 50000 }
        );
        assert!(IcmpPacket::new_checked(&m[..m.len() - 1]).unwrap().quoted().is_none());
        let mut v6 = m.clone();
        v6[8] = 0x66;
        assert!(IcmpPacket::new_checked(&v6[..]).unwrap().quoted().is_none());
        let mut ihl4 = m.clone();
        ihl4[8] = 0x44;
        assert!(IcmpPacket::new_checked(&ihl4[..]).unwrap().quoted().is_none());
        assert!(IcmpPacket::new_checked(&m[..8]).unwrap().quoted().is_none());
    }

    /// Found by the wire fuzzer: an echo request whose other words are all zero.
    #[test]
    fn echo_reply_of_an_all_zero_request_verifies() {
        let mut m = [8u8, 0, 0xf7, 0xff, 0, 0, 0, 0];
        let mut p = IcmpPacket::new_checked(&mut m[..]).unwrap();
        assert!(p.verify_checksum());
        p.make_echo_reply();
        assert!(p.verify_checksum(), "{m:?}");
    }
}
