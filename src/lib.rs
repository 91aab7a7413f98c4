//! drlb: an LVS-DR load balancer as a DPDK poll-mode forwarder.
//!
//! The crate is cut along the architecture (see README "Layout"):
//! - [`wire`]: safe packet views; [`lb`]: pure balancing logic (the pipeline);
//! - [`sync`]: the epoch swap and SPSC queues that cross the worker boundary;
//! - [`dpdk`]: the only hand-written unsafe (EAL, mempools, ports, bursts);
//! - [`dataplane`]: the worker loop; [`control`]: manager, config, ARP resolution.
#![deny(unsafe_code)]

pub mod control;
pub mod dataplane;
pub mod dpdk;
pub mod lb;
pub mod mem;
pub mod pcapgen;
pub mod sync;
pub mod wire;
