//! UDP header view (RFC 768).
use super::{be16, length, need, Error};

pub const HEADER_LEN: usize = 8;

/// Offset of the length field (header and data, bytes).
const LENGTH: usize = 4;

/// Needs 8 bytes and a length field between 8 and the datagram.
#[inline]
fn check(b: &[u8]) -> Result<(), Error> {
    need(b, HEADER_LEN)?;
    length(b, usize::from(be16(b, LENGTH)), HEADER_LEN)
}

// Fields at their RFC 768 offsets.
view! {
    /// A UDP datagram.
    UdpPacket, check;
    src_port: u16 @ 0; dst_port: u16 @ 2;
}

#[cfg(test)]
mod tests {
    use super::*;
    /// An empty datagram from port 5353 to port 53.
    const EMPTY: [u8; 8] = [0x14, 0xe9, 0, 53, 0, 8, 0, 0];

    #[test]
    fn parse() {
        let mut b = EMPTY;
        let u = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (5353, 53));
        // (length field, buffer length, error)
        for (len_field, len, want) in
            [(7u16, 8, Error::Malformed), (9, 8, Error::Truncated), (8, 7, Error::Truncated)]
        {
            b[4..6].copy_from_slice(&len_field.to_be_bytes());
            assert_eq!(UdpPacket::new_checked(&b[..len]).err(), Some(want));
        }
    }
}
