//! Administration over the control socket: the protocol both sides speak, the
//! ipvsadm listing formats, the client (`drlbadm`), the BGP feed ExaBGP runs, and on the daemon's side the socket
//! server and the application of commands to the running config.
//!
//! `drlbadm` uses [`protocol`], [`client`], [`ipvsadm`], [`keepalived`] and [`bgp_feed`]
//! only.
pub mod apply;
pub mod bgp_feed;
pub mod client;
pub mod ipvsadm;
pub mod keepalived;
pub mod protocol;
pub mod server;

pub use apply::apply;
