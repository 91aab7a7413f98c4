//! The drlb process, in phases:
//!
//! 1. [`preflight`]: everything that needs no DPDK, checked before EAL starts so a bad
//!    config or a taken socket starts nothing: the config, the metrics port, the
//!    control socket, the signal handlers ([`Plan`]);
//! 2. [`bring_up`]: EAL, the port (one RX+TX queue pair per worker lcore), the mbuf pool
//!    ([`Dataplane`]);
//! 3. [`spawn_workers`]: the first snapshot, the channels between the manager and the
//!    workers, a worker on every lcore but the main one ([`Workers`]);
//! 4. [`run`]: the manager on the main lcore, telemetry and metrics beside it, until
//!    SIGINT/SIGTERM;
//! 5. [`shutdown`]: workers first (they flush their TX buffers), then the port (a
//!    net_pcap TX file is complete), then EAL; returns the [`Summary`].
//!
//! Each phase owns what it started and releases it through `Drop`, so a failure at any
//! step leaves nothing behind: no socket file, no EAL runtime directory, no hugepage
//! file, no running worker.
pub mod cli;
pub mod error;

pub use error::StartError;

use crate::admin::server::{self, ControlServer};
use crate::control::config::Config;
use crate::control::manager::{Links, Manager, ManagerConfig};
use crate::control::state::ControlState;
use crate::dataplane::counters::{latency_summary, Totals, WorkerCounters};
use crate::dataplane::worker::{Worker, WorkerSetup};
use crate::dataplane::CtrlFrame;
use crate::dpdk::mempool::Mempool;
use crate::dpdk::port::{self, PortInfo, PortStats, RxQueue, Started, TxQueue};
use crate::dpdk::{self, eal, mbuf};
use crate::kernel;
use crate::lb::flow::{FlowTable, ENTRY_BYTES};
use crate::observe::{metrics, telemetry};
use crate::sync::{epoch, spsc};
use crate::wire::Mac;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// SIGINT/SIGTERM set `stop`; SIGHUP sets `hup` (reload).
#[derive(Clone)]
pub struct Signals {
    pub stop: Arc<AtomicBool>,
    pub hup: Arc<AtomicBool>,
}

/// What preflight checked and holds: nothing of DPDK yet.
pub struct Plan {
    pub args: cli::Args,
    pub eal_args: Vec<String>,
    pub config_path: PathBuf,
    pub cfg: Config,
    pub server: ControlServer,
    pub metrics: Option<(std::net::SocketAddr, tiny_http::Server)>,
    pub signals: Signals,
}

/// Checks and binds everything that needs no DPDK (see the module docs).
pub fn preflight(eal_args: Vec<String>, args: cli::Args) -> Result<Plan, StartError> {
    let config_path = args.config.clone().expect("clap requires --config without --check");
    // Bound before EAL, like the control socket: a taken port fails with nothing started.
    let metrics = match args.metrics.as_deref() {
        Some(m) => {
            let addr = metrics::parse_addr(m).map_err(StartError::Metrics)?;
            Some((addr, metrics::bind(addr).map_err(StartError::Metrics)?))
        }
        None => None,
    };
    let cfg = Config::load(&config_path).map_err(StartError::Config)?;
    // The control socket before EAL: "another drlb is running" fails fast.
    let gid = match args.control_group.as_deref() {
        Some(g) => Some(server::group_id(g).ok_or_else(|| StartError::NoGroup(g.into()))?),
        None => None,
    };
    let server = ControlServer::bind(&args.control, gid)?;
    let signals =
        Signals { stop: Arc::new(AtomicBool::new(false)), hup: Arc::new(AtomicBool::new(false)) };
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, signals.stop.clone()).map_err(StartError::Signals)?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, signals.hup.clone())
        .map_err(StartError::Signals)?;
    Ok(Plan { args, eal_args, config_path, cfg, server, metrics, signals })
}

/// EAL, the port and its pool. Fields drop in order: the port (closed once no queue
/// handle is left), the pool, then EAL (cleaned up, its files removed).
pub struct Dataplane {
    pub port: Started,
    /// The kernel interface's tap, until its thread takes it.
    pub tap: Option<kernel::Tap>,
    pub pool: Arc<Mempool>,
    /// One pair per worker, taken by [`spawn_workers`].
    pub queues: Vec<(RxQueue, TxQueue)>,
    pub info: PortInfo,
    pub mac: Mac,
    pub lcores: Vec<u32>,
    pub eal: eal::Eal,
}

/// The worker lcores (lcore, node) on another NUMA node than the port's, `port`.
fn remote_lcores(port: u32, lcores: &[(u32, u32)]) -> Vec<(u32, u32)> {
    lcores.iter().copied().filter(|&(_, node)| node != port).collect()
}

/// The number after `key` (`"MemAvailable:"`, say) in `/proc/meminfo`'s text.
fn meminfo_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

fn meminfo(key: &str) -> Option<u64> {
    meminfo_value(&std::fs::read_to_string("/proc/meminfo").ok()?, key)
}

fn free_hugepages() -> Option<u64> {
    meminfo("HugePages_Free:")
}

/// The workers' flow tables (`workers` × `each` bytes) against the memory the host
/// has available (`available_kb`, MemAvailable): the error to start with when they do
/// not fit. Making them resident would otherwise push the host into reclaim and its OOM
/// killer, which may pick another process.
fn tables_fit(
    workers: usize,
    each: usize,
    capacity: usize,
    available_kb: Option<u64>,
) -> Result<(), StartError> {
    let Some(avail) = available_kb.map(|kb| kb * 1024) else { return Ok(()) };
    if (workers * each) as u64 <= avail {
        return Ok(());
    }
    Err(StartError::TablesTooBig {
        workers,
        each_mib: each >> 20,
        capacity,
        available_mib: avail >> 20,
    })
}

/// Starts EAL and the port: one RX and one TX queue per worker lcore.
pub fn bring_up(plan: &Plan) -> Result<Dataplane, StartError> {
    let eal_args = &plan.eal_args;
    let no_huge = eal_args.iter().any(|a| a == "--no-huge");
    let mut eal = eal::init(eal_args).map_err(|err| {
        // EAL sets EACCES when it finds no usable hugetlbfs ("Cannot get hugepage
        // information") and ENOMEM when the reservation is too small.
        let free = free_hugepages();
        let hugepage_trouble =
            free == Some(0) || err.code == libc::EACCES || err.code == libc::ENOMEM;
        StartError::Eal {
            err,
            hugepages: (!no_huge && hugepage_trouble).then(|| free.unwrap_or(0)),
        }
    })?;
    // Multi-process hooks (dpdk-dumpcap) need a shared runtime; --in-memory has none.
    if !eal_args.iter().any(|a| a == "--in-memory") {
        if let Err(e) = eal.pdump_init() {
            log::info!("packet capture (dpdk-dumpcap) unavailable: {e}");
        }
    }
    let lcores = eal.worker_lcores();
    if lcores.is_empty() {
        return Err(StartError::NoWorkerLcore);
    }
    let count = port::count();
    if count == 0 {
        return Err(StartError::NoPort);
    }
    let pid = plan.cfg.dataplane.port;
    if !port::is_valid(pid) {
        return Err(StartError::PortMissing {
            port: pid,
            count,
            file: plan.config_path.display().to_string(),
        });
    }
    let port_err = |name: Option<&str>| {
        let name = name.map(String::from);
        move |err| StartError::Port { port: pid, name, err }
    };
    let info = port::info(pid).map_err(port_err(None))?;
    let nq = lcores.len();
    if usize::from(info.max_rx_queues) < nq || usize::from(info.max_tx_queues) < nq {
        return Err(StartError::Queues {
            port: pid,
            name: info.name.clone(),
            driver: info.driver.clone(),
            rx: info.max_rx_queues,
            tx: info.max_tx_queues,
            workers: nq,
        });
    }
    // Pool: every queue's descriptors, a burst and a TX buffer in flight and the lcore
    // caches, with room.
    const CACHE: u32 = 256;
    let desc = u32::from(plan.args.descriptors);
    let need = nq as u32 * (2 * desc + (mbuf::BURST + mbuf::TX_BUFFER) as u32 + CACHE) + 1024;
    let mbufs = plan.args.mbufs.unwrap_or_else(|| need.max(8192).next_power_of_two() - 1);
    let mtu = plan.cfg.dataplane.mtu;
    if !info.mtu_range().contains(&mtu) {
        return Err(StartError::Mtu {
            port: pid,
            name: info.name.clone(),
            driver: info.driver.clone(),
            mtu,
            range: info.mtu_range(),
        });
    }
    let room = crate::dpdk::mempool::data_room(mtu);
    // The mbufs on the port's node (the device writes them), any node for a vdev.
    const SOCKET_ID_ANY: i32 = -1;
    let socket = info.socket.map_or(SOCKET_ID_ANY, |s| s as i32);
    let pool = Arc::new(
        Mempool::new("drlb_pool", mbufs, CACHE, socket, room)
            .map_err(|err| StartError::Mempool { err, mbufs, room, no_huge })?,
    );
    // A vdev has no node; a device on one wants its workers there.
    if let Some(port_node) = info.socket {
        let nodes: Vec<(u32, u32)> = lcores.iter().map(|&l| (l, eal.lcore_socket(l))).collect();
        for (lcore, node) in remote_lcores(port_node, &nodes) {
            log::warn!(
                "worker lcore {lcore} is on NUMA node {node}, port {pid} ({}) on node \
                 {port_node}: every packet crosses between the nodes; give drlb worker \
                 lcores on node {port_node} (-l)",
                info.name
            );
        }
    }
    let desc = plan.args.descriptors;
    let port = port::Port::configure(&info, nq as u16, &pool, desc, desc, mtu)
        .map_err(port_err(Some(&info.name)))?;
    if let Some(mac) = plan.cfg.dataplane.mac {
        port.set_mac(mac).map_err(|err| StartError::SetMac { port: pid, mac, err })?;
    }
    let (port, queues) = port.start().map_err(port_err(Some(&info.name)))?;
    let mac = port.mac().map_err(port_err(None))?;
    let d = &plan.cfg.dataplane;
    let tap = match &d.kernel_interface {
        Some(iface) => Some(kernel::create(iface, mac, d.ip, d.prefix, mtu, &pool)?),
        None => None,
    };
    if info.driver == "net_memif" {
        eal.keep_mapped_at_exit(); // its listener's interrupt handle (`Eal::keep_mapped_at_exit`)
    }
    Ok(Dataplane { port, tap, pool, queues, info, mac, lcores, eal })
}

/// The running workers. Dropped before they were joined (a later start-up step
/// failed), it stops them and waits for them.
pub struct Workers {
    stop: Arc<AtomicBool>,
    lcores: Vec<u32>,
    pub counters: Vec<Arc<WorkerCounters>>,
    pub tsc_hz: u64,
    /// What the kernel interface's thread counts.
    pub kernel: Arc<kernel::KernelStats>,
    /// Threads beside the workers (the kernel interface's), joined with them.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The kernel interface's tap, closed after its thread ends.
    kernel_port: Option<Started>,
}

impl Workers {
    /// Waits for every worker (after the stop flag was set); true when all ended well.
    pub fn join(mut self) -> bool {
        let mut ok = true;
        for l in std::mem::take(&mut self.lcores) {
            if eal::wait_lcore(l) != 0 {
                ok = false;
                log::error!("worker on lcore {l} failed (panicked); stopping");
            }
        }
        for t in std::mem::take(&mut self.threads) {
            ok &= t.join().is_ok();
        }
        ok
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for &l in &self.lcores {
            eal::wait_lcore(l);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.kernel_port.take(); // closes the tap: the kernel interface goes away
    }
}

/// Stops the whole process when a worker ends for any reason (a panic included): no
/// silent dead worker, whose RX queue would fill and whose flows would be lost.
struct StopOnExit {
    stop: Arc<AtomicBool>,
    worker: usize,
    lcore: u32,
}

impl Drop for StopOnExit {
    fn drop(&mut self) {
        if std::thread::panicking() {
            log::error!(
                "worker {} on lcore {} panicked (message above); stopping drlb, exit code 1",
                self.worker,
                self.lcore
            );
        }
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// ICMP errors one worker can have in flight to another (they are rare).
const ICMP_REDIRECT_QUEUE: usize = 64;

/// Builds the first snapshot and the channels, and launches a worker on every worker
/// lcore. Returns the workers and the manager's ends of the channels.
pub fn spawn_workers(
    plan: &Plan,
    dp: &mut Dataplane,
    state: &mut ControlState,
) -> Result<(Workers, Links), StartError> {
    let first = state.snapshot(dp.mac).map_err(StartError::Snapshot)?;
    let nq = dp.queues.len();
    let (writer, readers) = epoch::domain(first, nq);
    let (ctrl_tx, ctrl_rx) = spsc::channel::<CtrlFrame>(256);
    let mut ctrl_rx = Some(ctrl_rx);
    let clock = crate::dataplane::worker::Clock::new(dpdk::rdtsc(), dpdk::tsc_hz());
    // Fault injection for the crash-hygiene test: DRLB_FAULT=worker_panic makes worker 0
    // panic at its first tick after it has received a packet.
    let panic_after_rx = match std::env::var("DRLB_FAULT").as_deref() {
        Ok("worker_panic") => 1,
        _ => u64::MAX,
    };
    let flow_capacity = plan.cfg.dataplane.flow_capacity;
    // One row of connection counts per worker, read by every worker's schedulers.
    let conns = crate::lb::conns::ConnCounts::new(nq);
    let templates = crate::lb::persist::Templates::new(plan.cfg.dataplane.persistence_capacity);
    let mut workers = Workers {
        stop: plan.signals.stop.clone(),
        lcores: Vec::new(),
        counters: Vec::new(),
        tsc_hz: clock.tsc_hz,
        kernel: Arc::default(),
        threads: Vec::new(),
        kernel_port: None,
    };
    let (mut learned, mut dumps) = (Vec::new(), Vec::new());
    // Worker i hands ICMP errors it has no flow for to every other worker j.
    let mut peers_out: Vec<Vec<spsc::Producer<crate::dpdk::mbuf::Mbuf>>> =
        (0..nq).map(|_| Vec::new()).collect();
    let mut peers_in: Vec<Vec<spsc::Consumer<crate::dpdk::mbuf::Mbuf>>> =
        (0..nq).map(|_| Vec::new()).collect();
    for (i, out) in peers_out.iter_mut().enumerate() {
        for (_, inp) in peers_in.iter_mut().enumerate().filter(|(j, _)| *j != i) {
            let (p, c) = spsc::channel(ICMP_REDIRECT_QUEUE);
            out.push(p);
            inp.push(c);
        }
    }
    let has_kernel = dp.tap.is_some();
    let (mut to_kernel_rx, (from_kernel_tx, from_kernel_rx)) =
        (Vec::new(), spsc::channel(kernel::QUEUE));
    let mut from_kernel_rx = has_kernel.then_some(from_kernel_rx);
    let queues = std::mem::take(&mut dp.queues);
    let mut built = Vec::with_capacity(nq);
    // A worker's flow table that cannot be mapped or made resident.
    let each = FlowTable::bytes_for(flow_capacity);
    let table_err = |worker, err| StartError::FlowTable {
        worker,
        mib: each >> 20,
        capacity: flow_capacity,
        err,
    };
    for (index, (((rx, tx), snap), &lcore)) in
        queues.into_iter().zip(readers).zip(&dp.lcores).enumerate()
    {
        let (learned_tx, learned_rx) = spsc::channel(1024);
        learned.push(learned_rx);
        let (dump_tx, dump_rx) = spsc::channel(crate::admin::protocol::DUMP_QUEUE);
        dumps.push(dump_rx);
        let counters = Arc::new(WorkerCounters::new());
        workers.counters.push(counters.clone());
        let to_kernel = has_kernel.then(|| {
            let (tx, rx) = spsc::channel(kernel::QUEUE);
            to_kernel_rx.push(rx);
            tx
        });
        let w = Worker::new(WorkerSetup {
            index,
            rx,
            tx,
            pool: dp.pool.clone(),
            snap,
            counters,
            learned: learned_tx,
            dump: dump_tx,
            ctrl: if index == 0 { ctrl_rx.take() } else { None },
            to_kernel,
            from_kernel: if index == 0 { from_kernel_rx.take() } else { None },
            kernel_rate: plan.cfg.dataplane.kernel_rate,
            stop: plan.signals.stop.clone(),
            flow_capacity,
            conns: crate::lb::conns::ConnRow::new(&conns, index),
            templates: templates.clone(),
            peers_out: std::mem::take(&mut peers_out[index]),
            peers_in: std::mem::take(&mut peers_in[index]),
            clock,
            panic_after_rx,
            idle: plan.cfg.dataplane.idle,
            mtu: plan.cfg.dataplane.mtu,
        })
        .map_err(|err| table_err(index, err))?;
        built.push((index, lcore, w));
    }
    // Every worker's flow table resident, on its worker's node, before any worker starts:
    // no insert stalls on a page fault, and tables that do not fit fail here.
    tables_fit(built.len(), each, flow_capacity, meminfo("MemAvailable:"))?;
    for (worker, lcore, w) in &mut built {
        let node = Some(dp.eal.lcore_socket(*lcore));
        w.populate_flows(node).map_err(|err| table_err(*worker, err))?;
    }
    for (index, lcore, w) in built {
        let guard = StopOnExit { stop: plan.signals.stop.clone(), worker: index, lcore };
        dp.eal
            .launch(lcore, move || {
                let _guard = guard; // dropped on return and on unwind
                w.run()
            })
            .map_err(|err| StartError::Launch { lcore, err })?;
        workers.lcores.push(lcore);
    }
    let links = Links {
        writer,
        learned,
        dumps,
        ctrl: ctrl_tx,
        counters: workers.counters.clone(),
        conns,
        templates,
        clock,
    };
    if let Some(tap) = dp.tap.take() {
        let klinks = kernel::Links {
            from_workers: to_kernel_rx,
            to_wire: from_kernel_tx,
            vlan: plan.cfg.dataplane.vlan,
        };
        let cpu = usize::try_from(dp.eal.lcore_cpu(dp.eal.main_lcore())).ok();
        let (port, thread) =
            kernel::spawn(tap, klinks, workers.kernel.clone(), plan.signals.stop.clone(), cpu)
                .map_err(StartError::Thread)?;
        workers.kernel_port = Some(port);
        workers.threads.push(thread);
    }
    Ok((workers, links))
}

/// What drlb prints when it stops (stable: tests parse the `counter` lines).
pub struct Summary {
    pub generation: u64,
    pub totals: Totals,
    /// The kernel interface thread's counters (name, value).
    pub kernel: Vec<(String, u64)>,
    pub port: PortStats,
    pub mbufs_in_use: u32,
    pub latency: Vec<(String, u64)>,
    /// A worker ended with a panic: exit code 1.
    pub worker_failed: bool,
}

impl Summary {
    pub fn print(&self) {
        println!("drlb: final counters (generation {})", self.generation);
        let port = [
            ("port_ipackets", self.port.ipackets),
            ("port_opackets", self.port.opackets),
            ("port_imissed", self.port.imissed),
            ("mbufs_in_use", u64::from(self.mbufs_in_use)),
        ];
        let lines = self.totals.lines().into_iter().chain(self.kernel.iter().cloned());
        let port = port.into_iter().map(|(k, v)| (k.to_string(), v));
        for (k, v) in lines.chain(port).chain(self.latency.iter().cloned()) {
            println!("counter {k} {v}");
        }
    }
}

/// Runs drlb until SIGINT/SIGTERM (or a worker's end) and returns the summary.
pub fn run(eal_args: Vec<String>, args: cli::Args) -> Result<Summary, StartError> {
    crate::observe::logging::init(args.log_level);
    let mut plan = preflight(eal_args, args)?;
    let mut dp = bring_up(&plan)?;
    let flow_capacity = plan.cfg.dataplane.flow_capacity;
    let mut state = ControlState::new(plan.cfg.clone());
    let (workers, links) = spawn_workers(&plan, &mut dp, &mut state)?;
    log::info!(
        "port {} {} ({}) mac {}, {} worker(s) on lcores {:?} ({}), {} flows/worker ({} bytes each, {} KiB resident a worker), {}",
        dp.port.id(),
        dp.info.name,
        dp.info.driver,
        dp.mac,
        dp.lcores.len(),
        dp.lcores,
        dp.port.rss(),
        FlowTable::entries_for(flow_capacity),
        ENTRY_BYTES,
        FlowTable::bytes_for(flow_capacity) >> 10,
        dpdk::version()
    );
    if let Ok(text) = std::fs::read_to_string(crate::mem::THP_ENABLED) {
        if crate::mem::thp_mode(&text) == Some("never") {
            log::warn!(
                "transparent huge pages are off ({}: never): the flow tables are in 4 KiB \
                 pages, and lookups in a table larger than the TLB reaches wait on page \
                 walks; `echo madvise > {}` (drlb advises huge pages for its tables only)",
                crate::mem::THP_ENABLED,
                crate::mem::THP_ENABLED
            );
        }
    }
    // The listing the metrics thread and the telemetry commands read, refreshed by the
    // manager every metrics::REFRESH.
    let shared =
        Arc::new(metrics::Shared { listing: Default::default(), kernel: workers.kernel.clone() });
    let stats_interval = plan.args.stats_interval;
    let main_cpu = usize::try_from(dp.eal.lcore_cpu(dp.eal.main_lcore())).ok();
    // Checks go through the kernel interface: no interface, no checker.
    let checker = match plan.cfg.dataplane.kernel_interface {
        Some(_) => Some(crate::health::Checker::start(main_cpu).map_err(StartError::Thread)?),
        None => None,
    };
    let mut mgr = Manager::new(
        ManagerConfig {
            state,
            port_mac: dp.mac,
            config_path: plan.config_path.clone(),
            stats_interval: (stats_interval > 0).then(|| Duration::from_secs(stats_interval)),
            server: plan.server,
            shared: shared.clone(),
            signals: plan.signals.clone(),
            checker,
            port: Some(dp.port.monitor()),
        },
        links,
    );
    telemetry::register(telemetry::View {
        workers: workers.counters.clone(),
        lcores: dp.lcores.clone(),
        shared: shared.clone(),
    })
    .map_err(StartError::Telemetry)?;
    let metrics_thread = match plan.metrics.take() {
        Some((addr, listener)) => {
            let t = metrics::serve(
                listener,
                workers.counters.clone(),
                shared,
                plan.signals.stop.clone(),
                main_cpu,
            )
            .map_err(StartError::MetricsThread)?;
            log::info!("metrics at http://{addr}/metrics");
            Some(t)
        }
        None => None,
    };
    mgr.run();
    if let Some(t) = metrics_thread {
        let _ = t.join();
    }
    Ok(shutdown(dp, workers, &mgr))
}

/// Workers first (they flush their TX buffers), then the port, then EAL.
pub fn shutdown(dp: Dataplane, workers: Workers, mgr: &Manager) -> Summary {
    let tsc_hz = workers.tsc_hz;
    let counters = workers.counters.clone();
    let kstats = workers.kernel.clone();
    let worker_failed = !workers.join();
    let Dataplane { port, pool, eal, .. } = dp;
    let stats = port.stats();
    drop(port); // the queues went with the workers: this closes the port
    let summary = Summary {
        generation: mgr.generation(),
        totals: Totals::sum(&counters),
        kernel: kstats.rows().iter().map(|(k, _, v)| (k.to_string(), *v)).collect(),
        port: stats,
        mbufs_in_use: pool.in_use(),
        latency: latency_summary(&counters, tsc_hz),
        worker_failed,
    };
    drop(pool);
    drop(eal);
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_that_the_host_cannot_hold_fail_the_start() {
        let text = "MemTotal:       24683520 kB\nMemFree:        20406404 kB\n\
                    MemAvailable:   22129388 kB\nHugePages_Free:     1024\n";
        assert_eq!(meminfo_value(text, "MemAvailable:"), Some(22129388));
        assert_eq!(meminfo_value(text, "HugePages_Free:"), Some(1024));
        assert_eq!(meminfo_value(text, "Nope:"), None);
        let gib = 1 << 30;
        assert!(tables_fit(2, gib, 1 << 26, Some(3 << 20)).is_ok(), "2 GiB of 3");
        let err = tables_fit(4, 2 * gib, 1 << 27, Some(5 << 20)).unwrap_err().to_string();
        assert!(
            err.contains(
                "8192 MiB (4 worker(s) × 2048 MiB for dataplane.flow_capacity = 134217728)"
            ) && err.contains("5120 MiB available"),
            "{err}"
        );
        assert!(tables_fit(64, 2 * gib, 1 << 27, None).is_ok(), "no MemAvailable: no check");
    }

    #[test]
    fn remote_lcores_are_those_off_the_ports_node() {
        let lcores = [(1, 0), (2, 1), (3, 1)];
        assert_eq!(remote_lcores(0, &lcores), vec![(2, 1), (3, 1)]);
        assert_eq!(remote_lcores(1, &lcores), vec![(1, 0)]);
        assert!(remote_lcores(1, &lcores[1..]).is_empty());
    }
}
