//! Raw bindings to the system DPDK, generated at build time by bindgen from
//! `pkg-config libdpdk`, plus `drlb_*` shim functions for DPDK's static inlines
//! (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, `rte_errno`, ...). Nothing here is safe;
//! the `drlb` crate's `dpdk` module is the only place that calls it.
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code)]
#![allow(clippy::all)]
include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// The DPDK version this crate was built against (from pkg-config).
pub const DPDK_VERSION: &str = env!("DPDK_VERSION");

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn mbuf_layout_matches_dpdk() {
        assert_eq!(core::mem::size_of::<rte_mbuf>(), 128);
        assert_eq!(core::mem::align_of::<rte_mbuf>(), 64);
    }
}
