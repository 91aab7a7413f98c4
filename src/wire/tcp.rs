//! TCP header view (RFC 9293): ports and flags, validated data offset.
use super::{length, need, Error};

pub const HEADER_LEN: usize = 20;
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// Offset of the data offset (header length in words, high nibble).
const DATA_OFF: usize = 12;

/// Needs 20 bytes, and a data offset between 5 words and the segment length.
#[inline]
fn check(b: &[u8]) -> Result<(), Error> {
    need(b, HEADER_LEN)?;
    length(b, usize::from(b[DATA_OFF] >> 4) * 4, HEADER_LEN)
}

// Fields at their RFC 9293 offsets.
view! {
    /// A TCP segment.
    TcpPacket, check;
    src_port: u16 @ 0; dst_port: u16 @ 2;
    flags: u8 @ 13;
}

#[cfg(test)]
mod tests {
    use super::*;
    /// A SYN from port 40000 to port 80, no options.
    const SYN: [u8; 20] =
        [0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0];

    #[test]
    fn parse() {
        let mut b = SYN;
        let t = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port(), t.flags()), (40000, 80, flags::SYN));
        // (data offset byte, buffer length, error)
        for (doff, len, want) in [
            (0x50, 19, Error::Truncated),
            (0x40, 20, Error::Malformed),
            (0x60, 20, Error::Truncated),
        ] {
            b[12] = doff;
            assert_eq!(TcpPacket::new_checked(&b[..len]).err(), Some(want));
        }
    }
}
