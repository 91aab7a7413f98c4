//! Prometheus exposition at `/metrics` (`--metrics ADDR:PORT`), in the OpenMetrics text
//! format written by `prometheus-client`, served by a small HTTP thread pinned to the
//! main lcore's CPU (never a worker's).
//!
//! Worker counters are read live; the per-service/backend view (weights, connection
//! counts, ARP state, generation, reloads) is the manager's listing, refreshed every
//! [`REFRESH`]. Names are `drlb_*` with units in the name; labels `worker`, `reason`,
//! `vip`, `port`, `proto`, `backend`.
use super::admin::Listing;
use crate::dataplane::counters::{Counter as WCounter, Totals, WorkerCounters};
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
}

/// `PORT` or `ADDR:PORT`; a bare port listens on 127.0.0.1.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(p) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], p)));
    }
    s.parse()
        .map_err(|_| format!("--metrics {s}: want PORT or ADDR:PORT, e.g. 127.0.0.1:9100"))
}

fn counter_family(
    reg: &mut Registry,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, u64)>,
) {
    let f = Family::<Labels, Counter>::default();
    for (l, v) in rows {
        f.get_or_create(&l).inc_by(v);
    }
    reg.register(name, help, f);
}

fn gauge_family(
    reg: &mut Registry,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, i64)>,
) {
    let f = Family::<Labels, Gauge>::default();
    for (l, v) in rows {
        f.get_or_create(&l).set(v);
    }
    reg.register(name, help, f);
}

/// The whole exposition, as text.
pub fn render(workers: &[Arc<WorkerCounters>], listing: Option<&Listing>) -> String {
    let mut reg = <Registry>::default();
    let per_worker = |f: fn(&WorkerCounters) -> &WCounter| -> Vec<(Labels, u64)> {
        workers
            .iter()
            .enumerate()
            .map(|(i, w)| (vec![("worker".into(), i.to_string())], f(w).get()))
            .collect()
    };
    counter_family(
        &mut reg,
        "drlb_rx_packets",
        "Frames received, per worker",
        per_worker(|w| &w.rx),
    );
    counter_family(
        &mut reg,
        "drlb_tx_packets",
        "Frames transmitted, per worker",
        per_worker(|w| &w.tx),
    );
    counter_family(
        &mut reg,
        "drlb_tx_dropped_packets",
        "Frames the TX queue refused (freed and counted)",
        per_worker(|w| &w.tx_dropped),
    );
    counter_family(
        &mut reg,
        "drlb_forwarded_packets",
        "Frames forwarded to a real server",
        per_worker(|w| &w.forwarded),
    );
    counter_family(
        &mut reg,
        "drlb_replied_packets",
        "ARP and ICMP echo replies sent",
        per_worker(|w| &w.arp_replies)
            .into_iter()
            .zip(per_worker(|w| &w.icmp_replies))
            .map(|((l, a), (_, b))| (l, a + b)),
    );
    counter_family(
        &mut reg,
        "drlb_idle_loops",
        "Worker loop iterations that received nothing",
        per_worker(|w| &w.idle_loops),
    );
    counter_family(
        &mut reg,
        "drlb_busy_loops",
        "Worker loop iterations that received a burst",
        per_worker(|w| &w.busy_loops),
    );
    counter_family(
        &mut reg,
        "drlb_flow_evictions",
        "Live flows evicted from a full flow table",
        per_worker(|w| &w.flow_evictions),
    );
    counter_family(
        &mut reg,
        "drlb_flow_expired",
        "Flows expired by the sweep",
        per_worker(|w| &w.flow_expired),
    );
    counter_family(
        &mut reg,
        "drlb_syn_stateless",
        "SYNs forwarded by hash without a flow entry: their flow-table groups were full (syn_flood = stateless)",
        per_worker(|w| &w.syn_stateless),
    );
    counter_family(
        &mut reg,
        "drlb_hashed_segments",
        "TCP segments without a flow entry routed by hash while under SYN-flood pressure (handshake ACKs)",
        per_worker(|w| &w.hashed_segments),
    );
    gauge_family(
        &mut reg,
        "drlb_syn_flood_active",
        "1 while the worker is under SYN-flood pressure (a SYN found its flow-table groups full within the SYN_RECV timeout)",
        per_worker(|w| &w.flood_active)
            .into_iter()
            .map(|(l, v)| (l, v as i64)),
    );
    gauge_family(
        &mut reg,
        "drlb_flow_entries",
        "Live flow-table entries per worker (as of the last full sweep)",
        per_worker(|w| &w.flows)
            .into_iter()
            .map(|(l, v)| (l, v as i64)),
    );
    let t = Totals::sum(workers);
    counter_family(
        &mut reg,
        "drlb_dropped_packets",
        "Frames dropped, by reason",
        t.drops
            .iter()
            .map(|(r, n)| (vec![("reason".into(), r.name().to_string())], *n)),
    );
    if let Some(l) = listing {
        gauge_family(
            &mut reg,
            "drlb_flow_capacity",
            "Flow-table entries per worker",
            (0..workers.len()).map(|i| {
                (
                    vec![("worker".into(), i.to_string())],
                    l.flows_per_worker as i64,
                )
            }),
        );
        let svc_labels = |s: &super::admin::ServiceRow| -> Labels {
            vec![
                ("vip".into(), s.vip.to_string()),
                ("port".into(), s.port.to_string()),
                ("proto".into(), s.proto.ipvsadm_name().to_lowercase()),
            ]
        };
        let svc_rows = |f: fn(&super::admin::BackendRow) -> u64| -> Vec<(Labels, u64)> {
            l.services
                .iter()
                .map(|s| (svc_labels(s), s.backends.iter().map(f).sum()))
                .collect()
        };
        counter_family(
            &mut reg,
            "drlb_service_packets",
            "Packets forwarded for the virtual service",
            svc_rows(|b| b.in_pkts),
        );
        counter_family(
            &mut reg,
            "drlb_service_bytes",
            "Bytes forwarded for the virtual service",
            svc_rows(|b| b.in_bytes),
        );
        counter_family(
            &mut reg,
            "drlb_service_connections",
            "New connections scheduled for the virtual service",
            svc_rows(|b| b.conns),
        );
        let rows = |f: fn(&super::admin::BackendRow) -> u64| -> Vec<(Labels, u64)> {
            l.services
                .iter()
                .flat_map(|s| {
                    s.backends.iter().map(move |b| {
                        let mut labels = svc_labels(s);
                        labels.push(("backend".into(), format!("{}:{}", b.ip, b.port)));
                        (labels, f(b))
                    })
                })
                .collect()
        };
        counter_family(
            &mut reg,
            "drlb_backend_packets",
            "Packets forwarded to the real server",
            rows(|b| b.in_pkts),
        );
        counter_family(
            &mut reg,
            "drlb_backend_bytes",
            "Bytes forwarded to the real server",
            rows(|b| b.in_bytes),
        );
        counter_family(
            &mut reg,
            "drlb_backend_connections",
            "New connections scheduled to the real server",
            rows(|b| b.conns),
        );
        gauge_family(
            &mut reg,
            "drlb_backend_active_connections",
            "ESTABLISHED flows (as of the last flow-table sweep)",
            rows(|b| b.active_conns)
                .into_iter()
                .map(|(l, v)| (l, v as i64)),
        );
        gauge_family(
            &mut reg,
            "drlb_backend_inactive_connections",
            "Other flows (as of the last flow-table sweep)",
            rows(|b| b.inactive_conns)
                .into_iter()
                .map(|(l, v)| (l, v as i64)),
        );
        gauge_family(
            &mut reg,
            "drlb_backend_weight",
            "Configured weight (0 = draining)",
            rows(|b| u64::from(b.weight))
                .into_iter()
                .map(|(l, v)| (l, v as i64)),
        );
        gauge_family(
            &mut reg,
            "drlb_backend_mac_known",
            "1 when the real server's MAC is known (static or ARP)",
            rows(|b| u64::from(b.mac.is_some()))
                .into_iter()
                .map(|(l, v)| (l, v as i64)),
        );
        let g = <Gauge>::default();
        g.set(l.generation as i64);
        reg.register(
            "drlb_snapshot_generation",
            "Generation of the forwarding snapshot",
            g,
        );
        for (name, help, v) in [
            ("drlb_reloads", "Config reloads applied", l.swaps.reloads),
            (
                "drlb_failed_reloads",
                "Config reloads rejected",
                l.swaps.failed_reloads,
            ),
        ] {
            let c = <Counter>::default();
            c.inc_by(v);
            reg.register(name, help, c);
        }
    }
    let mut out = String::new();
    encode(&mut out, &reg).expect("encoding to a String cannot fail");
    out
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
) -> Result<std::thread::JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name("drlb-metrics".into())
        .spawn(move || {
            if let Some(id) = cpu {
                core_affinity::set_for_current(core_affinity::CoreId { id });
            }
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(100)) else {
                    continue;
                };
                let resp = if req.url() == "/metrics" || req.url().starts_with("/metrics?") {
                    let body = render(&workers, shared.listing.lock().as_ref());
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
        .map_err(|e| e.to_string())
}
