//! DPDK telemetry commands, for `dpdk-telemetry.py -f PREFIX` (or any client of the
//! telemetry socket `/var/run/dpdk/PREFIX/dpdk_telemetry.v2`):
//!
//! - `/drlb/stats`: process totals (the final-counter names) plus generation and reloads;
//! - `/drlb/workers`: per worker (keyed by index): lcore, rx, tx, forwarded, loops, flows;
//! - `/drlb/services`: per service (keyed by index): VIP, port, scheduler, sums;
//! - `/drlb/backends[,VIP:PORT]`: per real server (keyed by index), optionally one service.
//!
//! The callbacks run on DPDK's telemetry thread. They read the workers' counters (plain
//! atomic loads) and the manager's listing, refreshed every [`super::metrics::REFRESH`];
//! they never touch the dataplane. Dictionary keys are indexes because DPDK (from 23.03)
//! allows only `[A-Za-z0-9_/]` in names; addresses go in values. DPDK caps a reply at
//! 16 KiB and a dictionary at 256 entries: `/drlb/backends,VIP:PORT` narrows a big
//! listing, and the `*_total` fields say how many rows exist.
#![allow(unsafe_code)]

use super::admin::{BackendRow, Listing, ServiceRow};
use super::metrics::Shared;
use crate::dataplane::counters::{Totals, WorkerCounters};
use dpdk_sys::rte_tel_data;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::{Arc, OnceLock};

/// What the callbacks read.
pub struct View {
    pub workers: Vec<Arc<WorkerCounters>>,
    pub lcores: Vec<u32>,
    pub shared: Arc<Shared>,
}

static VIEW: OnceLock<View> = OnceLock::new();

/// Entries per dictionary that DPDK accepts, less one for the `*_total` field.
const MAX_ROWS: usize = 256 - 1; // RTE_TEL_MAX_DICT_ENTRIES

/// A borrowed or owned `rte_tel_data` being filled as a dictionary.
struct Dict(*mut rte_tel_data);

impl Dict {
    /// # Safety
    /// `d` is a valid `rte_tel_data` that no one else writes while this lives.
    unsafe fn start(d: *mut rte_tel_data) -> Dict {
        // SAFETY: per the contract above.
        unsafe { dpdk_sys::rte_tel_data_start_dict(d) };
        Dict(d)
    }

    fn new() -> Option<Dict> {
        // SAFETY: allocates a fresh container (NULL on failure).
        let d = unsafe { dpdk_sys::rte_tel_data_alloc() };
        // SAFETY: a fresh container, owned here.
        (!d.is_null()).then(|| unsafe { Dict::start(d) })
    }

    fn u64(&mut self, name: &str, v: u64) {
        let n = CString::new(name).expect("static names have no NUL");
        // SAFETY: self.0 is a valid dict; the name is copied.
        unsafe { dpdk_sys::rte_tel_data_add_dict_u64(self.0, n.as_ptr(), v) };
    }

    fn str(&mut self, name: &str, v: &str) {
        let n = CString::new(name).expect("static names have no NUL");
        let v = CString::new(v.replace('\0', "")).expect("NULs removed");
        // SAFETY: self.0 is a valid dict; both strings are copied (truncated at 127).
        unsafe { dpdk_sys::rte_tel_data_add_dict_string(self.0, n.as_ptr(), v.as_ptr()) };
    }

    /// Adds `child` under `name`; the parent takes ownership (freed with it).
    fn dict(&mut self, name: &str, child: Dict) {
        let n = CString::new(name).expect("index names have no NUL");
        // SAFETY: both valid; keep=0 hands `child` to the parent, which frees it. On
        // failure (full dictionary) the parent did not take it, so free it here.
        unsafe {
            if dpdk_sys::rte_tel_data_add_dict_container(self.0, n.as_ptr(), child.0, 0) != 0 {
                dpdk_sys::rte_tel_data_free(child.0);
            }
        }
    }
}

fn service_name(s: &ServiceRow) -> String {
    format!("{} {}:{}", s.proto.ipvsadm_name(), s.vip, s.port)
}

fn stats(v: &View, d: &mut Dict) {
    for (k, n) in Totals::sum(&v.workers).lines() {
        d.u64(&k, n);
    }
    if let Some(l) = v.shared.listing.lock().as_ref() {
        d.u64("generation", l.generation);
        d.u64("reloads", l.swaps.reloads);
        d.u64("failed_reloads", l.swaps.failed_reloads);
        d.u64("services", l.services.len() as u64);
        d.u64(
            "backends",
            l.services.iter().map(|s| s.backends.len() as u64).sum(),
        );
        d.str("version", &l.version);
    }
}

fn workers(v: &View, d: &mut Dict) {
    let cap = v
        .shared
        .listing
        .lock()
        .as_ref()
        .map_or(0, |l| l.flows_per_worker as u64);
    for (i, w) in v.workers.iter().enumerate().take(MAX_ROWS) {
        let Some(mut e) = Dict::new() else { return };
        e.u64(
            "lcore",
            u64::from(v.lcores.get(i).copied().unwrap_or(u32::MAX)),
        );
        e.u64("rx", w.rx.get());
        e.u64("tx", w.tx.get());
        e.u64("tx_dropped", w.tx_dropped.get());
        e.u64("forwarded", w.forwarded.get());
        e.u64("new_flows", w.new_flows.get());
        e.u64("replied", w.arp_replies.get() + w.icmp_replies.get());
        e.u64("dropped", w.drops.iter().map(|c| c.get()).sum());
        e.u64("idle_loops", w.idle_loops.get());
        e.u64("busy_loops", w.busy_loops.get());
        e.u64("flows", w.flows.get());
        e.u64("flow_capacity", cap);
        e.u64("flow_evictions", w.flow_evictions.get());
        e.u64("flow_expired", w.flow_expired.get());
        e.u64("syn_stateless", w.syn_stateless.get());
        e.u64("hashed_segments", w.hashed_segments.get());
        e.u64("syn_flood_active", w.flood_active.get());
        e.u64("generation", w.generation.get());
        d.dict(&i.to_string(), e);
    }
    d.u64("workers_total", v.workers.len() as u64);
}

fn services(l: &Listing, d: &mut Dict) {
    for (i, s) in l.services.iter().enumerate().take(MAX_ROWS) {
        let Some(mut e) = Dict::new() else { return };
        let sum = |f: fn(&BackendRow) -> u64| s.backends.iter().map(f).sum::<u64>();
        e.str("service", &service_name(s));
        e.str("proto", s.proto.ipvsadm_name());
        e.str("vip", &s.vip.to_string());
        e.u64("port", u64::from(s.port));
        e.str("scheduler", s.sched.name());
        e.u64("backends", s.backends.len() as u64);
        e.u64("connections", sum(|b| b.conns));
        e.u64("active_connections", sum(|b| b.active_conns));
        e.u64("inactive_connections", sum(|b| b.inactive_conns));
        e.u64("packets", sum(|b| b.in_pkts));
        e.u64("bytes", sum(|b| b.in_bytes));
        d.dict(&i.to_string(), e);
    }
    d.u64("services_total", l.services.len() as u64);
}

/// Does service `s` match the `VIP:PORT` (or `VIP`) filter?
fn matches(s: &ServiceRow, filter: Option<&str>) -> bool {
    let Some(f) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
        return true;
    };
    f == s.vip.to_string() || f == format!("{}:{}", s.vip, s.port)
}

fn backends(l: &Listing, filter: Option<&str>, d: &mut Dict) {
    let mut n = 0usize;
    for s in l.services.iter().filter(|s| matches(s, filter)) {
        for b in &s.backends {
            if n < MAX_ROWS {
                let Some(mut e) = Dict::new() else { return };
                e.str("service", &service_name(s));
                e.str("backend", &format!("{}:{}", b.ip, b.port));
                e.u64("weight", u64::from(b.weight));
                e.str("mac", b.mac.as_deref().unwrap_or("unresolved"));
                e.u64("connections", b.conns);
                e.u64("active_connections", b.active_conns);
                e.u64("inactive_connections", b.inactive_conns);
                e.u64("packets", b.in_pkts);
                e.u64("bytes", b.in_bytes);
                d.dict(&n.to_string(), e);
            }
            n += 1;
        }
    }
    d.u64("backends_total", n as u64);
}

/// Runs `f` on the view and the reply container; -1 before `register` (never called then).
fn reply(
    params: *const c_char,
    d: *mut rte_tel_data,
    f: fn(&View, Option<&str>, &mut Dict),
) -> c_int {
    let Some(v) = VIEW.get() else { return -1 };
    // SAFETY: DPDK passes NULL or a NUL-terminated parameter string valid for the call.
    let params = (!params.is_null())
        .then(|| unsafe { CStr::from_ptr(params) }.to_str().ok())
        .flatten();
    // SAFETY: DPDK hands us the reply container for this call only.
    let mut d = unsafe { Dict::start(d) };
    // A panic must not unwind into C: report an error reply instead.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(v, params, &mut d))) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

macro_rules! command {
    ($name:ident, $body:expr) => {
        unsafe extern "C" fn $name(
            _cmd: *const c_char,
            params: *const c_char,
            d: *mut rte_tel_data,
        ) -> c_int {
            reply(params, d, $body)
        }
    };
}

command!(cmd_stats, |v, _, d| stats(v, d));
command!(cmd_workers, |v, _, d| workers(v, d));
command!(cmd_services, |v, _, d| {
    if let Some(l) = v.shared.listing.lock().as_ref() {
        services(l, d)
    }
});
command!(cmd_backends, |v, p, d| {
    if let Some(l) = v.shared.listing.lock().as_ref() {
        backends(l, p, d)
    }
});

/// Registers the `/drlb/*` commands (after EAL init). Errors name the command.
pub fn register(view: View) -> Result<(), String> {
    if VIEW.set(view).is_err() {
        return Err("telemetry commands already registered".into());
    }
    type Cb = unsafe extern "C" fn(*const c_char, *const c_char, *mut rte_tel_data) -> c_int;
    let cmds: [(&CStr, Cb, &CStr); 4] = [
        (c"/drlb/stats", cmd_stats, c"drlb totals: rx, forwarded, drops by reason, generation. No parameters"),
        (c"/drlb/workers", cmd_workers, c"Per worker: lcore, rx, tx, forwarded, loops, flow-table entries. No parameters"),
        (c"/drlb/services", cmd_services, c"Virtual services with scheduler and summed counters. No parameters"),
        (c"/drlb/backends", cmd_backends, c"Real servers: weight, MAC, connections, packets. Parameter: VIP or VIP:PORT (optional)"),
    ];
    for (name, cb, help) in cmds {
        // SAFETY: static NUL-terminated strings; `cb` has the telemetry_cb signature and
        // is safe to call from the telemetry thread at any time after this.
        let rc =
            unsafe { dpdk_sys::rte_telemetry_register_cmd(name.as_ptr(), Some(cb), help.as_ptr()) };
        if rc != 0 {
            return Err(format!(
                "cannot register telemetry command {name:?}: error {rc}"
            ));
        }
    }
    Ok(())
}
