//! Safe wrappers over DPDK: EAL, lcores, mempools, ports and their queues, bursts of
//! mbufs, telemetry commands. The only place (with `mem` and `sync`) where drlb writes
//! `unsafe`; every block carries a `// SAFETY:` comment (clippy enforces it).
//! Return codes and `rte_errno` become [`DpdkError`] in one place ([`check`]).
#![allow(unsafe_code)]

pub mod eal;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod tap;
pub mod telemetry;

use std::ffi::CStr;

/// A failed DPDK call: which call, the errno, DPDK's text for it.
#[derive(Debug, thiserror::Error)]
#[error("{op} failed: {msg} (errno {code})")]
pub struct DpdkError {
    pub op: &'static str,
    pub code: i32,
    pub msg: String,
}

/// DPDK's text for an errno (covers DPDK's own E_RTE_* codes too).
pub fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated
    // string for any input.
    unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(code)) }.to_string_lossy().into_owned()
}

/// The calling thread's `rte_errno`.
pub fn errno() -> i32 {
    // SAFETY: reads a thread-local int; no preconditions.
    unsafe { dpdk_sys::drlb_errno() }
}

/// Turns a DPDK return code into a Result: negative values are `-errno`.
pub fn check(op: &'static str, rc: i32) -> Result<i32, DpdkError> {
    if rc < 0 {
        let code = -rc;
        Err(DpdkError { op, code, msg: strerror(code) })
    } else {
        Ok(rc)
    }
}

/// An error from a call that reports through `rte_errno`.
pub fn errno_error(op: &'static str) -> DpdkError {
    let code = errno();
    DpdkError { op, code, msg: strerror(code) }
}

/// The TSC, for timers and latency stamps.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // rte_rdtsc is `rdtsc` (no fence); inline here rather than a call into the shim
    // (once per loop iteration, and the call was ~0.7 % of a busy worker's samples).
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads the time-stamp counter; no preconditions.
    return unsafe { std::arch::x86_64::_rdtsc() };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: reads the time-stamp counter; no preconditions.
    unsafe {
        dpdk_sys::drlb_rdtsc()
    }
}

/// TSC ticks per second (valid after EAL init).
pub fn tsc_hz() -> u64 {
    // SAFETY: returns a value computed at EAL init; no preconditions.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// "DPDK 22.11.x" as the library reports it.
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(dpdk_sys::rte_version()) }.to_string_lossy().into_owned()
}
