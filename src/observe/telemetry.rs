//! DPDK telemetry commands, for `dpdk-telemetry.py -f PREFIX` (or any client of the
//! telemetry socket `/var/run/dpdk/PREFIX/dpdk_telemetry.v2`):
//!
//! - `/drlb/stats`: process totals (the final-counter names) plus generation and reloads;
//! - `/drlb/workers`: per worker (keyed by index): lcore, and every counter-table row
//!   shown in telemetry (rx, tx, forwarded, loops, flows, ...);
//! - `/drlb/services`: per service (keyed by index): VIP, port, scheduler, sums;
//! - `/drlb/backends[,VIP:PORT]`: per real server (keyed by index), optionally one service.
//!
//! The handlers run on DPDK's telemetry thread. They read the workers' counters (plain
//! atomic loads) and the manager's listing, refreshed every [`super::metrics::REFRESH`];
//! they never touch the dataplane. Dictionary keys are indexes because DPDK (from 23.03)
//! allows only `[A-Za-z0-9_/]` in names; addresses go in values. DPDK caps a reply at
//! 16 KiB and a dictionary at 256 entries: `/drlb/backends,VIP:PORT` narrows a big
//! listing, and the `*_total` fields say how many rows exist.
use super::metrics::Shared;
use crate::admin::protocol::{BackendRow, Listing, ServiceRow};
use crate::dataplane::counters::{self, show, Totals, WorkerCounters};
use crate::dpdk::telemetry::{self as tel, Dict};
use std::sync::Arc;

/// What the handlers read.
pub struct View {
    pub workers: Vec<Arc<WorkerCounters>>,
    pub lcores: Vec<u32>,
    pub shared: Arc<Shared>,
}

/// Entries per dictionary that DPDK accepts, less one for the `*_total` field.
const MAX_ROWS: usize = tel::MAX_ENTRIES - 1;

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
        d.u64("backends", l.services.iter().map(|s| s.backends.len() as u64).sum());
        d.str("version", &l.version);
    }
}

fn workers(v: &View, d: &mut Dict) {
    let cap = v.shared.listing.lock().as_ref().map_or(0, |l| l.flows_per_worker as u64);
    for (i, w) in v.workers.iter().enumerate().take(MAX_ROWS) {
        let Some(mut e) = Dict::new() else { return };
        e.u64("lcore", u64::from(v.lcores.get(i).copied().unwrap_or(u32::MAX)));
        for row in counters::table().filter(|r| r.show & show::TELEMETRY != 0) {
            e.u64(row.name, (row.value)(w));
        }
        e.u64("flow_capacity", cap);
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

/// Runs `f` on the manager's listing, once it has published one.
fn with_listing(v: &View, f: impl FnOnce(&Listing)) {
    if let Some(l) = v.shared.listing.lock().as_ref() {
        f(l)
    }
}

/// Registers the `/drlb/*` commands (after EAL init). Errors name the command.
pub fn register(view: View) -> Result<(), String> {
    let v = Arc::new(view);
    let (a, b, c, e, f) = (v.clone(), v.clone(), v.clone(), v.clone(), v);
    tel::register(
        c"/drlb/stats",
        c"drlb totals: rx, forwarded, drops by reason, generation. No parameters",
        Arc::new(move |_, d| stats(&a, d)),
    )?;
    tel::register(
        c"/drlb/workers",
        c"Per worker: lcore, rx, tx, forwarded, loops, flow-table entries. No parameters",
        Arc::new(move |_, d| workers(&b, d)),
    )?;
    tel::register(
        c"/drlb/services",
        c"Virtual services with scheduler and summed counters. No parameters",
        Arc::new(move |_, d| with_listing(&c, |l| services(l, d))),
    )?;
    tel::register(
        c"/drlb/backends",
        c"Real servers: weight, MAC, connections, packets. Parameter: VIP or VIP:PORT (optional)",
        Arc::new(move |p, d| with_listing(&e, |l| backends(l, p, d))),
    )?;
    tel::register(
        c"/drlb/port",
        c"The NIC: imissed, ierrors, rx_nombuf, oerrors, link state and speed. No parameters",
        Arc::new(move |_, d| with_listing(&f, |l| port(l, d))),
    )
}

/// `/drlb/port`: what the NIC itself counts, and its link.
fn port(l: &Listing, d: &mut Dict) {
    if let Some(p) = &l.port {
        d.u64("port", u64::from(p.port));
        d.u64("imissed", p.imissed);
        d.u64("ierrors", p.ierrors);
        d.u64("rx_nombuf", p.rx_nombuf);
        d.u64("oerrors", p.oerrors);
        d.str("link", if p.link_up { "up" } else { "down" });
        d.u64("link_speed_mbps", u64::from(p.link_speed_mbps));
    }
}
