//! Prometheus exposition at `/metrics` (`--metrics ADDR:PORT`), in the OpenMetrics text
//! format written by `prometheus-client`, served by a small HTTP thread pinned to the
//! main lcore's CPU (never a worker's).
//!
//! Worker counters are read live; the per-service/backend view (weights, connection
//! counts, ARP state, generation, reloads) is the manager's listing, refreshed every
//! [`REFRESH`]. Names are `drlb_*` with units in the name; labels `worker`, `reason`,
//! `vip`, `port`, `proto`, `backend`.
use crate::admin::protocol::{BackendRow, Listing, ServiceRow};
use crate::dataplane::counters::{self, Kind, Totals, WorkerCounters};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const REFRESH: Duration = Duration::from_millis(250);

type Labels = Vec<(String, String)>;

/// What the manager shares with the metrics thread.
#[derive(Default)]
pub struct Shared {
    pub listing: parking_lot::Mutex<Option<Listing>>,
    /// The kernel interface thread's counters (zero without one).
    pub kernel: Arc<crate::kernel::KernelStats>,
}

/// `PORT` or `ADDR:PORT`; a bare port listens on 127.0.0.1.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(p) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], p)));
    }
    s.parse().map_err(|_| format!("--metrics {s}: want PORT or ADDR:PORT, e.g. 127.0.0.1:9100"))
}

/// Registers one family of labelled values as Prometheus counters or gauges.
fn family(reg: &mut Registry, name: &str, help: &str, kind: Kind, rows: Vec<(Labels, u64)>) {
    match kind {
        Kind::Counter => {
            let f = Family::<Labels, Counter>::default();
            for (l, v) in rows {
                f.get_or_create(&l).inc_by(v);
            }
            reg.register(name, help, f);
        }
        Kind::Gauge => {
            let f = Family::<Labels, Gauge>::default();
            for (l, v) in rows {
                f.get_or_create(&l).set(v as i64);
            }
            reg.register(name, help, f);
        }
    }
}

/// A family of the listing: name, help, kind, the value of one real server.
type Row = (&'static str, &'static str, Kind, fn(&BackendRow) -> u64);

const BACKEND_ROWS: &[Row] = &[
    ("drlb_backend_packets", "Packets forwarded to the real server", Kind::Counter, |b| b.in_pkts),
    ("drlb_backend_bytes", "Bytes forwarded to the real server", Kind::Counter, |b| b.in_bytes),
    (
        "drlb_backend_connections",
        "New connections scheduled to the real server",
        Kind::Counter,
        |b| b.conns,
    ),
    (
        "drlb_backend_active_connections",
        "ESTABLISHED flows (as of the last flow-table sweep)",
        Kind::Gauge,
        |b| b.active_conns,
    ),
    (
        "drlb_backend_inactive_connections",
        "Other flows (as of the last flow-table sweep)",
        Kind::Gauge,
        |b| b.inactive_conns,
    ),
    ("drlb_backend_weight", "Configured weight (0 = draining)", Kind::Gauge, |b| {
        u64::from(b.weight)
    }),
    (
        "drlb_backend_mac_known",
        "1 when the real server's MAC is known (static or ARP)",
        Kind::Gauge,
        |b| u64::from(b.mac.is_some()),
    ),
    (
        "drlb_backend_up",
        "0 while the real server's health check says down (unknown and unchecked count as up)",
        Kind::Gauge,
        |b| u64::from(b.health.state != "down"),
    ),
    (
        "drlb_backend_health_transitions",
        "Health-state changes of the real server (unknown -> up, up -> down, down -> up)",
        Kind::Counter,
        |b| b.health.transitions,
    ),
];

/// Per-service families: sums of a backend counter over the service's real servers.
/// Per-service families: name, help, kind, the value of one service.
type SvcRow = (&'static str, &'static str, Kind, fn(&ServiceRow) -> u64);

const SERVICE_ROWS: &[SvcRow] = &[
    ("drlb_service_packets", "Packets forwarded for the virtual service", Kind::Counter, |s| {
        s.totals.in_pkts
    }),
    ("drlb_service_bytes", "Bytes forwarded for the virtual service", Kind::Counter, |s| {
        s.totals.in_bytes
    }),
    (
        "drlb_service_connections",
        "New connections scheduled for the virtual service",
        Kind::Counter,
        |s| s.totals.conns,
    ),
    ("drlb_service_backends_up", "Real servers up (serving, weight > 0)", Kind::Gauge, |s| {
        s.up as u64
    }),
    ("drlb_service_available", "1 while at least `quorum` real servers are up", Kind::Gauge, |s| {
        u64::from(s.available)
    }),
];

fn svc_labels(s: &ServiceRow) -> Labels {
    vec![
        ("vip".into(), s.vip.to_string()),
        ("port".into(), s.port.to_string()),
        ("proto".into(), s.proto.ipvsadm_name().to_lowercase()),
    ]
}

/// The whole exposition, as text: every row of the counter table per worker, drops by
/// reason, and (with the manager's listing) per-service and per-backend families.
pub fn render(workers: &[Arc<WorkerCounters>], shared: &Shared) -> String {
    let listing = shared.listing.lock();
    let listing = listing.as_ref();
    let mut reg = <Registry>::default();
    let worker = |i: usize| vec![("worker".to_string(), i.to_string())];
    for d in counters::table().filter(|d| !d.metric.is_empty()) {
        let rows = workers.iter().enumerate().map(|(i, w)| (worker(i), (d.value)(w))).collect();
        family(&mut reg, d.metric, d.help(), d.kind, rows);
    }
    let t = Totals::sum(workers);
    let drops = t.drops.iter().map(|(r, n)| (vec![("reason".into(), r.name().to_string())], *n));
    family(
        &mut reg,
        "drlb_dropped_packets",
        "Frames dropped, by reason",
        Kind::Counter,
        drops.collect(),
    );
    if let Some(l) = listing {
        listing_families(&mut reg, workers.len(), l);
    }
    for (name, help, v) in shared.kernel.rows() {
        let c = <Counter>::default();
        c.inc_by(v);
        reg.register(format!("drlb_{name}_packets"), help, c);
    }
    let mut out = String::new();
    encode(&mut out, &reg).expect("encoding to a String cannot fail");
    out
}

/// The families that come from the manager's listing.
fn listing_families(reg: &mut Registry, workers: usize, l: &Listing) {
    let cap =
        (0..workers).map(|i| (vec![("worker".into(), i.to_string())], l.flows_per_worker as u64));
    family(reg, "drlb_flow_capacity", "Flow-table entries per worker", Kind::Gauge, cap.collect());
    for (name, help, kind, f) in SERVICE_ROWS {
        let rows = l.services.iter().map(|s| (svc_labels(s), f(s)));
        family(reg, name, help, *kind, rows.collect());
    }
    for (name, help, kind, f) in BACKEND_ROWS {
        let rows = l.services.iter().flat_map(|s| {
            s.backends.iter().filter(|b| !b.sorry).map(move |b| {
                let mut labels = svc_labels(s);
                labels.push(("backend".into(), format!("{}:{}", b.ip, b.port)));
                (labels, f(b))
            })
        });
        family(reg, name, help, *kind, rows.collect());
    }
    let g = <Gauge>::default();
    g.set(l.generation as i64);
    reg.register("drlb_snapshot_generation", "Generation of the forwarding snapshot", g);
    for (name, help, v) in [
        ("drlb_reloads", "Config reloads applied", l.swaps.reloads),
        ("drlb_failed_reloads", "Config reloads rejected", l.swaps.failed_reloads),
    ] {
        let c = <Counter>::default();
        c.inc_by(v);
        reg.register(name, help, c);
    }
    if let Some(p) = &l.port {
        // The NIC's own view: what it dropped before drlb saw it.
        let port = || vec![("port".to_string(), p.port.to_string())];
        for (name, help, kind, v) in [
            (
                "drlb_port_imissed",
                "Frames the NIC dropped: its RX queue was full (drlb too slow)",
                Kind::Counter,
                p.imissed,
            ),
            ("drlb_port_ierrors", "Erroneous frames the NIC received", Kind::Counter, p.ierrors),
            (
                "drlb_port_rx_nombuf",
                "RX mbuf allocation failures (the pool ran dry)",
                Kind::Counter,
                p.rx_nombuf,
            ),
            ("drlb_port_oerrors", "Frames the NIC failed to send", Kind::Counter, p.oerrors),
            (
                "drlb_port_link_up",
                "1 while the port's link is up",
                Kind::Gauge,
                u64::from(p.link_up),
            ),
            (
                "drlb_port_link_speed_mbps",
                "Link speed, Mb/s (0: unknown)",
                Kind::Gauge,
                u64::from(p.link_speed_mbps),
            ),
        ] {
            family(reg, name, help, kind, vec![(port(), v)]);
        }
    }
}

/// Binds the metrics listener (at start-up, before anything else is started, so a
/// taken port is a clean start-up error).
pub fn bind(addr: SocketAddr) -> Result<tiny_http::Server, String> {
    tiny_http::Server::http(addr).map_err(|e| {
        format!("--metrics {addr}: {e}: is the port in use? choose another with --metrics")
    })
}

/// Starts the HTTP thread on a bound `server`; it stops when `stop` is set. `cpu`: pin it there.
pub fn serve(
    server: tiny_http::Server,
    workers: Vec<Arc<WorkerCounters>>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    cpu: Option<usize>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("drlb-metrics".into()).spawn(move || {
        if let Some(id) = cpu {
            core_affinity::set_for_current(core_affinity::CoreId { id });
        }
        while !stop.load(Ordering::Relaxed) {
            let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            let resp = if req.url() == "/metrics" || req.url().starts_with("/metrics?") {
                let body = render(&workers, &shared);
                let ct = tiny_http::Header::from_bytes(
                    &b"Content-Type"[..],
                    &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
                )
                .expect("static header");
                tiny_http::Response::from_string(body).with_header(ct)
            } else {
                tiny_http::Response::from_string("drlb: metrics are at /metrics\n")
                    .with_status_code(404)
            };
            let _ = req.respond(resp);
        }
    })
}
