//! Safe, allocation-free views over packet bytes (smoltcp style).
//!
//! Each view is `Packet<T: AsRef<[u8]>>` ([`view!`]); `new_checked` validates every
//! length field against the buffer once ([`need`], [`length`]), after which no accessor
//! can panic. Getters are declared once per field ([`getters!`]); setters need
//! `T: AsMut<[u8]>`. Byte offsets live in one private `field` module per protocol.
//! Multi-byte fields are network order; addresses are returned as plain byte arrays or
//! host-order `u32`, which is what the flow table hashes.

/// Declares a view over a byte buffer: `pub struct Name<T> { buf: T }`, its
/// `new_checked` (which runs `check` on the bytes: after it succeeds no accessor can
/// panic), and a getter per field (see [`getters!`]).
macro_rules! view {
    ($(#[$doc:meta])* $name:ident, $check:path; $($getters:tt)*) => {
        $(#[$doc])*
        pub struct $name<T> {
            buf: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Validates `buf` (see the `check` function beside the type).
            #[inline]
            pub fn new_checked(buf: T) -> Result<Self, $crate::wire::Error> {
                $check(buf.as_ref())?;
                Ok($name { buf })
            }
            getters! { $($getters)* }
        }
    };
}

/// Declares getters, one per field: `name: TYPE @ OFFSET;` reads a `u8`, a big-endian
/// `u16` or `u32`, or six bytes (`mac`) at the offset, from a buffer `new_checked` has
/// validated.
macro_rules! getters {
    ($($(#[$doc:meta])* $name:ident: $ty:ident @ $at:expr;)*) => {$(
        $(#[$doc])*
        #[inline]
        pub fn $name(&self) -> getters!(@ty $ty) {
            getters!(@read $ty, self.buf.as_ref(), $at)
        }
    )*};
    (@ty mac) => { [u8; 6] };
    (@ty $ty:ident) => { $ty };
    (@read u8, $b:expr, $at:expr) => { $b[$at] };
    (@read u16, $b:expr, $at:expr) => { $crate::wire::be16($b, $at) };
    (@read u32, $b:expr, $at:expr) => { $crate::wire::be32($b, $at) };
    (@read mac, $b:expr, $at:expr) => {
        [$b[$at], $b[$at + 1], $b[$at + 2], $b[$at + 3], $b[$at + 4], $b[$at + 5]]
    };
}

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

/// The buffer holds at least `n` bytes (else `Truncated`).
#[inline(always)]
pub(crate) fn need(b: &[u8], n: usize) -> Result<(), Error> {
    if b.len() < n {
        return Err(Error::Truncated);
    }
    Ok(())
}

/// A length the header announces (its own length, or the packet's) is at least `min`
/// (else `Malformed`) and within the buffer (else `Truncated`).
#[inline(always)]
pub(crate) fn length(b: &[u8], len: usize, min: usize) -> Result<(), Error> {
    if len < min {
        return Err(Error::Malformed);
    }
    need(b, len)
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

#[inline(always)]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
