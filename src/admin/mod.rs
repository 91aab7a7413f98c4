//! Administration over the control socket: the protocol both sides speak, the
//! ipvsadm listing formats, the client (`drlbadm`), and on the daemon's side the socket
//! server and the application of commands to the running config.
//!
//! `drlbadm` uses [`protocol`], [`client`] and [`ipvsadm`] only.
pub mod apply;
pub mod client;
pub mod ipvsadm;
pub mod protocol;
pub mod server;

pub use apply::apply;
