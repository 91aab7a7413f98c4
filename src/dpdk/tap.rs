//! A `net_tap` device made at run time: a kernel network interface whose frames are a
//! DPDK port's RX and TX. drlb uses one as its kernel interface (the exception path).
use super::{check, DpdkError};
use crate::wire::Mac;
use std::ffi::CString;

/// The vdev's DPDK name (the kernel interface has the name the config gives).
pub const VDEV_NAME: &str = "net_tap_drlb";

/// Creates the tap `iface` with MAC `mac` and returns its port id. The interface goes
/// away when the port is closed (or the process exits). Call after EAL init.
pub fn create(iface: &str, mac: Mac) -> Result<u16, DpdkError> {
    let bad = |msg: String| DpdkError { op: "rte_eal_hotplug_add", code: libc::EINVAL, msg };
    let bus = CString::new("vdev").expect("no NUL");
    let name = CString::new(VDEV_NAME).expect("no NUL");
    let args = CString::new(format!("iface={iface},mac={mac}"))
        .map_err(|_| bad(format!("interface name {iface:?} contains NUL")))?;
    // SAFETY: three valid C strings; DPDK copies what it keeps.
    check("rte_eal_hotplug_add", unsafe {
        dpdk_sys::rte_eal_hotplug_add(bus.as_ptr(), name.as_ptr(), args.as_ptr())
    })?;
    let mut port = 0u16;
    // SAFETY: a valid C string and out-pointer.
    check("rte_eth_dev_get_port_by_name", unsafe {
        dpdk_sys::rte_eth_dev_get_port_by_name(name.as_ptr(), &mut port)
    })?;
    Ok(port)
}
