//! ICMPv4 echo (RFC 792): just what the director needs to answer ping to a VIP.
use super::{be16, checksum, Error};

pub const ECHO_REPLY: u8 = 0;
pub const ECHO_REQUEST: u8 = 8;
pub const HEADER_LEN: usize = 8;

pub struct IcmpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub fn new_checked(buf: T) -> Result<Self, Error> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(IcmpPacket { buf })
    }
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[0]
    }
    #[inline]
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[1]
    }
    /// The checksum over the whole message is valid.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buf.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Echo request -> echo reply in place: type 8 -> 0 with an RFC 1624 checksum update.
    pub fn make_echo_reply(&mut self) {
        let b = self.buf.as_mut();
        let old = be16(b, 0);
        b[0] = ECHO_REPLY;
        let new = be16(b, 0);
        let c = checksum::update16(be16(b, 2), old, new);
        b[2..4].copy_from_slice(&c.to_be_bytes());
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
}
