//! Safe, allocation-free views over packet bytes (smoltcp style).
//!
//! Each view is `Packet<T: AsRef<[u8]>>`; `new_checked` validates every length field
//! against the buffer once, after which no accessor can panic. Setters need
//! `T: AsMut<[u8]>`. Byte ranges live in one private `field` module per protocol.
//! Multi-byte fields are network order; addresses are returned as plain byte arrays or
//! host-order `u32`, which is what the flow table hashes.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod udp;

pub use ethernet::Mac;

/// Why a view could not be made. Not an error type for the hot path's caller: the
/// pipeline maps each to a named drop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the header (or than a length field says).
    Truncated,
    /// A field has a value the protocol forbids (IPv4 version != 4, IHL < 5, ...).
    Malformed,
}

#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
