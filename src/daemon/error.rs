//! Why drlb could not start: one paragraph each, naming the cause and the fix. `main`
//! prints `drlb: error: MESSAGE` and exits 2; everything started so far has been
//! stopped and removed by then (the phases own it and drop it).
use crate::admin::server::ServerError;
use crate::control::config::ConfigError;
use crate::dpdk::DpdkError;
use crate::wire::Mac;

const HUGEPAGE_FIX: &str = "Reserve hugepages as root (echo 1024 > /proc/sys/vm/nr_hugepages; mount -t hugetlbfs nodev /dev/hugepages, or run scripts/setup.sh), or run without them by adding --no-huge -m 512 to the EAL options.";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "bad config: {0}. Nothing was started; fix the file (drlb validates it before EAL starts)."
    )]
    Config(ConfigError),
    #[error("{0}")]
    Metrics(String),
    #[error("--control-group {0}: no such group (give a name from /etc/group or a number)")]
    NoGroup(String),
    #[error(transparent)]
    Control(#[from] ServerError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("EAL initialisation failed: {err}.{} Check the EAL options before `--` (see the EAL messages above; `drlb --help` for drlb's own).",
            hugepages.map_or(String::new(), |free| format!(" No usable hugepages (free: {free}). {HUGEPAGE_FIX}")))]
    Eal {
        err: DpdkError,
        /// Free hugepages when the failure looks like a hugepage problem.
        hugepages: Option<u64>,
    },
    #[error("no worker lcore: drlb runs a worker on every lcore except the main one. Give at least two, e.g. `-l 0-1` (or `--lcores 0@0,1@0` to share one CPU).")]
    NoWorkerLcore,
    #[error("no Ethernet port: bind a NIC to a DPDK driver (dpdk-devbind.py -b vfio-pci PCI) and pass `-a PCI`, or give a virtual device, e.g. --vdev=net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap")]
    NoPort,
    #[error("dataplane.port = {port} but DPDK has {count} port(s) (ids 0..{}). Set dataplane.port in {file} or add the device to the EAL options.", count - 1)]
    PortMissing { port: u16, count: u16, file: String },
    #[error("port {port} ({name}, driver {driver}) offers {rx} RX and {tx} TX queues, but {workers} workers need one pair each. Use fewer lcores (-l), or a device with more queues (net_af_packet: qpairs=N; net_pcap: one rx_pcap/tx_pcap per queue).")]
    Queues { port: u16, name: String, driver: String, rx: u16, tx: u16, workers: usize },
    #[error("cannot create the mbuf pool: {err}.{}", pool_hint(*.mbufs, *.room, *.no_huge, err))]
    Mempool { err: DpdkError, mbufs: u32, room: u16, no_huge: bool },
    #[error("port {port} ({name}, driver {driver}) takes an MTU of {} ..= {}, but dataplane.mtu is {mtu}. Set dataplane.mtu within that range (the default is 1500), or use a device that takes jumbo frames.", range.start(), range.end())]
    Mtu { port: u16, name: String, driver: String, mtu: u16, range: std::ops::RangeInclusive<u16> },
    #[error("port {port}{}: {err}", name.as_deref().map_or(String::new(), |n| format!(" ({n})")))]
    Port { port: u16, name: Option<String>, err: DpdkError },
    #[error("port {port}: cannot set dataplane.mac {mac}: {err}. Remove dataplane.mac to use the device's own MAC.")]
    SetMac { port: u16, mac: Mac, err: DpdkError },
    #[error("bad config: {0}")]
    Snapshot(String),
    #[error("cannot launch worker on lcore {lcore}: {err}")]
    Launch { lcore: u32, err: DpdkError },
    #[error(
        "cannot hold worker {worker}'s flow table ({mib} MiB for dataplane.flow_capacity = \
         {capacity}) in memory: {err}. Lower dataplane.flow_capacity (16 bytes a flow, \
         rounded up to a power of two) or free memory."
    )]
    FlowTable { worker: usize, mib: usize, capacity: usize, err: std::io::Error },
    #[error(
        "the flow tables need {} MiB ({workers} worker(s) × {each_mib} MiB for \
         dataplane.flow_capacity = {capacity}) and the host has {available_mib} MiB available \
         (MemAvailable in /proc/meminfo). Lower dataplane.flow_capacity (16 bytes a flow, \
         rounded up to a power of two), run fewer workers (-l) or free memory.",
        workers * each_mib
    )]
    TablesTooBig { workers: usize, each_mib: usize, capacity: usize, available_mib: u64 },
    #[error("{0}")]
    Telemetry(String),
    #[error("cannot start the metrics thread: {0}")]
    MetricsThread(std::io::Error),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Kernel(#[from] crate::kernel::KernelError),
}

fn pool_hint(mbufs: u32, room: u16, no_huge: bool, err: &DpdkError) -> String {
    // An mbuf is its data room plus the rte_mbuf header and the pool's own overhead.
    let mib = (u64::from(mbufs) * (u64::from(room) + 256)) >> 20;
    match (err.code == libc::ENOMEM, no_huge) {
        (true, true) => format!(
            " Not enough memory for {mbufs} mbufs of {room} bytes (~{mib} MiB): raise -m, \
             e.g. -m {}, or give fewer with --mbufs.",
            (mib * 2).max(512)
        ),
        (true, false) => format!(" Not enough hugepage memory for {mbufs} mbufs. {HUGEPAGE_FIX}"),
        _ => String::new(),
    }
}
