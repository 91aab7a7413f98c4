//! Ethernet II with at most one 802.1Q tag.
use super::{be16, Error};
use std::fmt;
use std::str::FromStr;

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!(
                "'{s}' is not a MAC address (want six hex bytes, e.g. 02:00:00:00:00:01)"
            ));
        }
        let mut m = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.is_empty() || p.len() > 2 {
                return Err(format!("'{s}' is not a MAC address (byte '{p}')"));
            }
            m[i] = u8::from_str_radix(p, 16)
                .map_err(|_| format!("'{s}' is not a MAC address (byte '{p}')"))?;
        }
        Ok(Mac(m))
    }
}

pub const HEADER_LEN: usize = 14;
pub const VLAN_TAG_LEN: usize = 4;

/// An ethertype. The ones drlb handles are named constants; any other value is simply
/// not one of them (a match arm, not an error). A newtype rather than an enum: matching
/// it costs one compare, no conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    /// 802.1Q tag.
    pub const VLAN: EtherType = EtherType(0x8100);
}

/// The L2 header as parsed: where L3 starts and which ethertype it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2 {
    /// Offset of the L3 header in the frame (14, or 18 with one 802.1Q tag).
    pub l3_offset: usize,
    /// The ethertype of the L3 payload (the inner one when tagged).
    pub ethertype: EtherType,
    /// The 802.1Q TCI when tagged.
    pub vlan_tci: Option<u16>,
}

/// Destination MAC. Caller guarantees `frame.len() >= 6` (checked by [`parse`]).
#[inline(always)]
pub fn dst(frame: &[u8]) -> [u8; 6] {
    [frame[0], frame[1], frame[2], frame[3], frame[4], frame[5]]
}

#[inline(always)]
pub fn src(frame: &[u8]) -> [u8; 6] {
    [frame[6], frame[7], frame[8], frame[9], frame[10], frame[11]]
}

/// Writes a frame's destination and source MACs (`l2`: destination then source), the
/// whole of DR's rewrite. Caller guarantees `frame.len() >= 12`. A copy of a fixed 12
/// bytes: `frame[..12].copy_from_slice(l2)` became a call into `copy_from_slice_impl` and
/// `memcpy` in the worker's loop, ~18 instructions a packet.
#[inline(always)]
pub fn set_macs(frame: &mut [u8], l2: &[u8; 12]) {
    let macs: &mut [u8; 12] = (&mut frame[..12]).try_into().expect("12 bytes");
    *macs = *l2;
}

/// Writes an untagged Ethernet header at the start of `frame` (at least 14 bytes) and
/// returns where L3 starts.
pub fn emit(frame: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: EtherType) -> usize {
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    super::put16(frame, 12, ethertype.0);
    HEADER_LEN
}

/// Parses the Ethernet header and at most one 802.1Q tag. A second tag (or a QinQ
/// outer tag) yields its ethertype unparsed, so the caller drops it as unsupported.
#[inline]
pub fn parse(frame: &[u8]) -> Result<L2, Error> {
    if frame.len() < HEADER_LEN {
        return Err(Error::Truncated);
    }
    let et = EtherType(be16(frame, 12));
    if et == EtherType::VLAN {
        if frame.len() < HEADER_LEN + VLAN_TAG_LEN {
            return Err(Error::Truncated);
        }
        return Ok(L2 {
            l3_offset: 18,
            ethertype: EtherType(be16(frame, 16)),
            vlan_tci: Some(be16(frame, 14)),
        });
    }
    Ok(L2 { l3_offset: HEADER_LEN, ethertype: et, vlan_tci: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_and_print() {
        let m: Mac = "00:0c:29:56:5C:c5".parse().unwrap();
        assert_eq!(m.to_string(), "00:0c:29:56:5c:c5");
        assert!("00:0c:29:56:5c".parse::<Mac>().is_err());
        assert!("00:0c:29:56:5c:zz".parse::<Mac>().is_err());
        assert!("00:0c:29:56:5c:1234".parse::<Mac>().is_err());
    }

    #[test]
    fn untagged_and_tagged() {
        let untagged = [[0u8; 12].as_slice(), &[0x08, 0x00, 0, 0, 0, 0]].concat();
        let tagged = [[0u8; 12].as_slice(), &[0x81, 0x00, 0x00, 0x64, 0x08, 0x06]].concat();
        // (frame, l3 offset, ethertype, tag)
        for (f, off, et, tci) in
            [(&untagged, 14, EtherType::IPV4, None), (&tagged, 18, EtherType::ARP, Some(100))]
        {
            let want = L2 { l3_offset: off, ethertype: et, vlan_tci: tci };
            assert_eq!(parse(f), Ok(want));
        }
        assert_eq!(parse(&tagged[..16]), Err(Error::Truncated));
        assert_eq!(parse(&tagged[..13]), Err(Error::Truncated));
    }
}
