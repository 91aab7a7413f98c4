//! TCP header view (RFC 9293): ports and flags, validated data offset.
use super::{be16, Error};

pub const HEADER_LEN: usize = 20;
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

pub struct TcpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Needs 20 bytes, and a data offset between 5 and the segment length.
    pub fn new_checked(buf: T) -> Result<Self, Error> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let doff = usize::from(b[12] >> 4) * 4;
        if doff < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if doff > b.len() {
            return Err(Error::Truncated);
        }
        Ok(TcpPacket { buf })
    }
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buf.as_ref(), 0)
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), 2)
    }
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[13]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parse() {
        let mut b = [0u8; 20];
        b[0..2].copy_from_slice(&40000u16.to_be_bytes());
        b[2..4].copy_from_slice(&80u16.to_be_bytes());
        b[12] = 0x50;
        b[13] = flags::SYN;
        let t = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            (t.src_port(), t.dst_port(), t.flags()),
            (40000, 80, flags::SYN)
        );
        assert_eq!(
            TcpPacket::new_checked(&b[..19]).err(),
            Some(Error::Truncated)
        );
        b[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&b[..]).err(), Some(Error::Malformed));
        b[12] = 0x60;
        assert_eq!(TcpPacket::new_checked(&b[..]).err(), Some(Error::Truncated));
    }
}
