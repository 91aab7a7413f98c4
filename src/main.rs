//! `drlb [EAL options] -- --config FILE [--control SOCKET] [--stats-interval S]`
//!
//! Start-up order: app args and the config are checked before EAL starts (a bad config
//! starts nothing); then EAL, the port (one RX+TX queue pair per worker lcore), the
//! first snapshot, the workers, and the manager on the main lcore. SIGINT/SIGTERM stop
//! the workers, flush TX, stop and close the port, print the final counters, clean up
//! EAL and exit 0. Every start-up failure exits 2 with one paragraph naming the cause
//! and the fix.
use clap::Parser;
use drlb::control::config::Config;
use drlb::control::manager::{log, Manager};
use drlb::control::state::State;
use drlb::dataplane::counters::WorkerCounters;
use drlb::dataplane::worker::{Worker, BURST};
use drlb::dataplane::CtrlFrame;
use drlb::dpdk::{self, eal, mempool::Mempool, port};
use drlb::lb::LocalState;
use drlb::sync::{epoch, spsc};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("DRLB_GIT_HASH"),
    ", built against DPDK ",
    env!("DRLB_DPDK_VERSION"),
    ")"
);

/// LVS-DR load balancer on DPDK.
///
/// Usage: drlb [EAL options] -- --config FILE [options]
///
/// EAL options come first, as for any DPDK application: e.g. `-l 0-2 -a 0000:01:00.0`,
/// or `--no-pci --vdev=net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap` without a NIC.
/// Every lcore but the main one runs a forwarding worker with its own RX/TX queue pair.
#[derive(Parser, Debug)]
#[command(name = "drlb", version = LONG_VERSION, about, long_about = None,
          override_usage = "drlb [EAL options] -- --config FILE [--control SOCKET] [--stats-interval SECS]")]
struct Args {
    /// Config file (TOML; see configs/example.toml).
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        required_unless_present = "check"
    )]
    config: Option<PathBuf>,
    /// Validate FILE and exit (0 valid, 1 invalid); starts nothing, needs no `--` or EAL.
    #[arg(long, value_name = "FILE", exclusive = true)]
    check: Option<PathBuf>,
    /// Admin socket for drlbadm (directory made 0700, socket 0600; root or drlb's uid).
    #[arg(long, value_name = "SOCKET", default_value = "/run/drlb/drlb.sock")]
    control: PathBuf,
    /// Also let this group (name or gid) use the control socket (made 0660).
    #[arg(long, value_name = "GROUP")]
    control_group: Option<String>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (a bare PORT means
    /// 127.0.0.1:PORT). Off by default.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<String>,
    /// Log level: error, warn, info (a line per control change and the stats line) or
    /// debug. (EAL's own --log-level goes before `--`.)
    #[arg(long, value_name = "LEVEL", default_value = "info", value_parser = parse_level)]
    log_level: log::LevelFilter,
    /// Print a stats line every SECS seconds (0: off).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    stats_interval: u64,
    /// RX and TX descriptors per queue.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    descriptors: u16,
    /// Mbufs in the packet pool (default: enough for every queue; net_pcap with
    /// infinite_rx=1 needs at least as many as its pcap has packets).
    #[arg(long, value_name = "N")]
    mbufs: Option<u32>,
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

/// The control socket path once bound, so a start-up failure can remove it.
static SOCKET: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
/// EAL's files once it is up, so a start-up failure leaves nothing behind either.
static EAL_FILES: std::sync::OnceLock<eal::RuntimeFiles> = std::sync::OnceLock::new();

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("drlb: error: {msg}");
    if let Some(p) = SOCKET.get() {
        let _ = std::fs::remove_file(p);
    }
    if let Some(f) = EAL_FILES.get() {
        f.remove();
    }
    std::process::exit(2);
}

fn parse_level(s: &str) -> Result<log::LevelFilter, String> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Ok(log::LevelFilter::Error),
        "warn" | "warning" => Ok(log::LevelFilter::Warn),
        "info" => Ok(log::LevelFilter::Info),
        "debug" => Ok(log::LevelFilter::Debug),
        _ => Err("want one of error, warn, info, debug".into()),
    }
}

fn hugepages_free() -> Option<u64> {
    let m = std::fs::read_to_string("/proc/meminfo").ok()?;
    m.lines()
        .find(|l| l.starts_with("HugePages_Free:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

const HUGEPAGE_FIX: &str = "Reserve hugepages as root (echo 1024 > /proc/sys/vm/nr_hugepages; mount -t hugetlbfs nodev /dev/hugepages, or run scripts/setup.sh), or run without them by adding --no-huge -m 512 to the EAL options.";

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let prog = argv.first().cloned().unwrap_or_else(|| "drlb".into());
    // DPDK convention: EAL args, then `--`, then the app's. Without `--`, only --help /
    // --version make sense; anything else is a usage error from clap.
    let (eal_args, app_args): (Vec<String>, Vec<String>) = match argv.iter().position(|a| a == "--")
    {
        Some(i) => (
            argv[..i].to_vec(),
            std::iter::once(prog.clone())
                .chain(argv[i + 1..].iter().cloned())
                .collect(),
        ),
        None => {
            let wants_info = argv
                .iter()
                .skip(1)
                .any(|a| matches!(a.as_str(), "-h" | "--help" | "-V" | "--version" | "--check"));
            if !wants_info {
                let _ = Args::try_parse_from(&argv).map_err(|e| {
                    eprintln!("{e}");
                    eprintln!("drlb: EAL options and drlb options are separated by `--`, e.g.\n  drlb -l 0-1 --no-pci --vdev=net_pcap0,rx_pcap=in.pcap -- --config configs/seed-dr.toml");
                    std::process::exit(2);
                });
                fail("missing `--` between the EAL options and drlb's, e.g. drlb -l 0-1 -- --config FILE");
            }
            (vec![prog.clone()], argv.clone())
        }
    };
    let args = Args::try_parse_from(&app_args).unwrap_or_else(|e| {
        let code = if e.use_stderr() { 2 } else { 0 };
        let _ = e.print();
        std::process::exit(code);
    });
    drlb::control::logging::init(args.log_level);
    if let Some(f) = &args.check {
        match Config::check_file(f) {
            Ok(line) => {
                println!("{line}");
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("drlb: {e}");
                std::process::exit(1);
            }
        }
    }
    let config_path = args
        .config
        .clone()
        .expect("clap requires --config without --check");
    let metrics_addr = args
        .metrics
        .as_deref()
        .map(|m| drlb::control::metrics::parse_addr(m).unwrap_or_else(|e| fail(e)));
    // Bound before EAL, like the control socket: a taken port fails with nothing started.
    let metrics_listener =
        metrics_addr.map(|a| drlb::control::metrics::bind(a).unwrap_or_else(|e| fail(e)));
    let cfg = Config::load(&config_path).unwrap_or_else(|e| fail(format_args!("bad config: {e}. Nothing was started; fix the file (drlb validates it before EAL starts).")));

    // The control socket before EAL: "another drlb is running" fails fast, nothing started.
    let gid = args.control_group.as_deref().map(|g| {
        drlb::control::server::group_id(g).unwrap_or_else(|| {
            fail(format_args!(
                "--control-group {g}: no such group (give a name from /etc/group or a number)"
            ))
        })
    });
    let server =
        drlb::control::server::ControlServer::bind(&args.control, gid).unwrap_or_else(|e| fail(e));
    let _ = SOCKET.set(args.control.clone());

    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .unwrap_or_else(|e| fail(format_args!("cannot install signal handler: {e}")));
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .unwrap_or_else(|e| fail(format_args!("cannot install SIGHUP handler: {e}")));

    let no_huge = eal_args.iter().any(|a| a == "--no-huge");
    let eal = eal::init(&eal_args).unwrap_or_else(|e| {
        // EAL sets EACCES when it finds no usable hugetlbfs ("Cannot get hugepage
        // information") and ENOMEM when the reservation is too small.
        let hp = if !no_huge && (hugepages_free() == Some(0) || e.code == libc::EACCES || e.code == libc::ENOMEM) {
            format!(" No usable hugepages (free: {}). {HUGEPAGE_FIX}", hugepages_free().unwrap_or(0))
        } else {
            String::new()
        };
        fail(format_args!("EAL initialisation failed: {e}.{hp} Check the EAL options before `--` (see the EAL messages above; `{prog} --help` for drlb's own)."))
    });
    let _ = EAL_FILES.set(eal.runtime_files());
    // Multi-process hooks (dpdk-dumpcap) need a shared runtime; --in-memory has none.
    if !eal_args.iter().any(|a| a == "--in-memory") {
        if let Err(e) = eal.pdump_init() {
            log(format_args!(
                "packet capture (dpdk-dumpcap) unavailable: {e}"
            ));
        }
    }
    let workers = eal.worker_lcores();
    if workers.is_empty() {
        fail("no worker lcore: drlb runs a worker on every lcore except the main one. Give at least two, e.g. `-l 0-1` (or `--lcores 0@0,1@0` to share one CPU).");
    }
    let nports = port::count();
    if nports == 0 {
        fail("no Ethernet port: bind a NIC to a DPDK driver (dpdk-devbind.py -b vfio-pci PCI) and pass `-a PCI`, or give a virtual device, e.g. --vdev=net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap");
    }
    let pid = cfg.dataplane.port;
    if !port::is_valid(pid) {
        fail(format_args!("dataplane.port = {pid} but DPDK has {nports} port(s) (ids 0..{}). Set dataplane.port in {} or add the device to the EAL options.", nports - 1, config_path.display()));
    }
    let info = port::info(pid).unwrap_or_else(|e| fail(format_args!("port {pid}: {e}")));
    let nq = workers.len();
    if usize::from(info.max_rx_queues) < nq || usize::from(info.max_tx_queues) < nq {
        fail(format_args!(
            "port {pid} ({}, driver {}) offers {} RX and {} TX queues, but {nq} workers need one pair each. Use fewer lcores (-l), or a device with more queues (net_af_packet: qpairs=N; net_pcap: one rx_pcap/tx_pcap per queue).",
            info.name, info.driver, info.max_rx_queues, info.max_tx_queues
        ));
    }
    // Pool: every queue's descriptors, a burst in flight and the lcore caches, with room.
    const CACHE: u32 = 256;
    let need = nq as u32 * (2 * u32::from(args.descriptors) + 2 * BURST as u32 + CACHE) + 1024;
    let nbufs = args
        .mbufs
        .unwrap_or_else(|| need.max(8192).next_power_of_two() - 1);
    let pool = Arc::new(
        Mempool::new("drlb_pool", nbufs, CACHE, 0).unwrap_or_else(|e| {
            let hint = match (e.code == libc::ENOMEM, no_huge) {
                (true, true) => format!(
                    " Not enough memory for {nbufs} mbufs (~{} MiB): raise -m, e.g. -m 512.",
                    (nbufs as u64 * 2432) >> 20
                ),
                (true, false) => {
                    format!(" Not enough hugepage memory for {nbufs} mbufs. {HUGEPAGE_FIX}")
                }
                _ => String::new(),
            };
            fail(format_args!("cannot create the mbuf pool: {e}.{hint}"))
        }),
    );
    let mut port = port::Port::configure(
        info.clone(),
        nq as u16,
        &pool,
        args.descriptors,
        args.descriptors,
    )
    .unwrap_or_else(|e| fail(format_args!("port {pid} ({}): {e}", info.name)));
    if let Some(mac) = cfg.dataplane.mac {
        port.set_mac(mac).unwrap_or_else(|e| fail(format_args!("port {pid}: cannot set dataplane.mac {mac}: {e}. Remove dataplane.mac to use the device's own MAC.")));
    }
    port.start()
        .unwrap_or_else(|e| fail(format_args!("port {pid} ({}): {e}", info.name)));
    let port_mac = port
        .mac()
        .unwrap_or_else(|e| fail(format_args!("port {pid}: {e}")));

    let flow_capacity = cfg.dataplane.flow_capacity;
    let mut state = State::new(cfg);
    let first = state
        .snapshot(port_mac)
        .unwrap_or_else(|e| fail(format_args!("bad config: {e}")));
    let (writer, readers) = epoch::domain(first, nq);
    let start_tsc = dpdk::rdtsc();
    let tsc_hz = dpdk::tsc_hz();
    let (ctrl_tx, ctrl_rx) = spsc::channel::<CtrlFrame>(256);
    let mut ctrl_rx = Some(ctrl_rx);
    let mut learned_rx = Vec::new();
    let mut dump_rx = Vec::new();
    let mut counters = Vec::new();
    let entry_bytes = drlb::lb::flow::ENTRY_BYTES;
    log(format_args!(
        "port {pid} {} ({}) mac {port_mac}, {nq} worker(s) on lcores {:?}, {} flows/worker ({} bytes each), {}",
        info.name,
        info.driver,
        workers,
        flow_capacity.next_power_of_two(),
        entry_bytes,
        dpdk::version()
    ));
    // Fault injection for the crash-hygiene test: DRLB_FAULT=worker_panic makes worker 0
    // panic once it has received a packet.
    let fault_panic_after_rx = match std::env::var("DRLB_FAULT").as_deref() {
        Ok("worker_panic") => 1,
        _ => u64::MAX,
    };
    for (i, ((rxq, txq), reader)) in port.queues().into_iter().zip(readers).enumerate() {
        let (ltx, lrx) = spsc::channel(1024);
        learned_rx.push(lrx);
        let (dtx, drx) = spsc::channel(drlb::control::admin::DUMP_QUEUE);
        dump_rx.push(drx);
        let c = Arc::new(WorkerCounters::new());
        counters.push(c.clone());
        let w = Worker {
            index: i,
            rx: rxq,
            tx: txq,
            snap: reader,
            local: LocalState::new(flow_capacity, i),
            counters: c,
            learned: ltx,
            dump: dtx,
            ctrl: if i == 0 { ctrl_rx.take() } else { None },
            pool: pool.clone(),
            stop: stop.clone(),
            panic_after_rx: fault_panic_after_rx,
            start_tsc,
            tsc_hz,
        };
        let guard = StopOnExit {
            stop: stop.clone(),
            worker: i,
            lcore: workers[i],
        };
        eal.launch(workers[i], move || {
            let _guard = guard; // dropped on return and on unwind
            w.run()
        })
        .unwrap_or_else(|e| {
            fail(format_args!(
                "cannot launch worker on lcore {}: {e}",
                workers[i]
            ))
        });
    }
    let mut mgr = Manager::new(
        state,
        writer,
        port_mac,
        learned_rx,
        ctrl_tx,
        counters,
        config_path.clone(),
        (args.stats_interval > 0).then(|| Duration::from_secs(args.stats_interval)),
        stop.clone(),
        hup,
    );
    mgr.server = Some(server);
    // The listing the metrics thread and the telemetry commands read, refreshed by the
    // manager every metrics::REFRESH.
    let shared = Arc::new(drlb::control::metrics::Shared::default());
    *shared.listing.lock() = Some(mgr.listing());
    mgr.metrics = Some(shared.clone());
    drlb::control::telemetry::register(drlb::control::telemetry::View {
        workers: mgr.counters.clone(),
        lcores: workers.clone(),
        shared: shared.clone(),
    })
    .unwrap_or_else(|e| fail(e));
    let mut metrics_thread = None;
    if let (Some(addr), Some(listener)) = (metrics_addr, metrics_listener) {
        let cpu = usize::try_from(eal.lcore_cpu(eal.main_lcore())).ok();
        metrics_thread = Some(
            drlb::control::metrics::serve(
                listener,
                mgr.counters.clone(),
                shared.clone(),
                stop.clone(),
                cpu,
            )
            .unwrap_or_else(|e| fail(format_args!("cannot start the metrics thread: {e}"))),
        );
        log(format_args!("metrics at http://{addr}/metrics"));
    }
    mgr.dumps = dump_rx;
    mgr.run();

    // Shutdown: workers first (they flush their TX buffers), then the port, then EAL.
    if let Some(t) = metrics_thread {
        let _ = t.join();
    }
    let mut worker_failed = false;
    for &l in &workers {
        if eal.wait(l) != 0 {
            worker_failed = true;
            log::error!("worker on lcore {l} failed (panicked); stopping");
        }
    }
    let pstats = port.stats();
    port.close();
    let t = mgr.totals();
    println!(
        "drlb: final counters (generation {})",
        mgr.writer.current().generation
    );
    for (k, v) in t.lines() {
        println!("counter {k} {v}");
    }
    println!("counter port_ipackets {}", pstats.ipackets);
    println!("counter port_opackets {}", pstats.opackets);
    println!("counter port_imissed {}", pstats.imissed);
    println!("counter mbufs_in_use {}", pool.in_use());
    for (k, v) in drlb::dataplane::counters::latency_summary(&mgr.counters, tsc_hz) {
        println!("counter {k} {v}");
    }
    drop(mgr);
    drop(pool);
    eal.cleanup();
    std::process::exit(if worker_failed { 1 } else { 0 });
}
