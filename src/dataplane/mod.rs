//! The worker: one per lcore, a thin l3fwd-shaped loop around `lb::process`.
pub mod counters;
pub mod idle;
pub mod worker;

/// One flow entry streamed to the manager for `drlbadm -lnc`, with the worker's clock.
#[derive(Clone, Copy, Debug)]
pub struct DumpEntry {
    pub flow: crate::lb::flow::FlowEntry,
    pub now: crate::lb::Tick,
}

/// A frame the manager wants transmitted (ARP requests, gratuitous ARP). Copied into an
/// mbuf by worker 0, which owns the TX queue it goes out on.
#[derive(Clone, Copy)]
pub struct CtrlFrame {
    pub len: u8,
    pub data: [u8; 64],
}
