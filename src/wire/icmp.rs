//! ICMPv4 echo (RFC 792): just what the director needs to answer ping to a VIP.
use super::{be16, checksum, need, Error};

pub const ECHO_REPLY: u8 = 0;
pub const ECHO_REQUEST: u8 = 8;
pub const HEADER_LEN: usize = 8;

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
