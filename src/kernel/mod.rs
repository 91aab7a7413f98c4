//! The kernel interface: the director's own traffic, to and from the kernel.
//!
//! drlb owns the NIC, so the kernel would otherwise never see a frame for the director
//! IP: no ping, no ssh, no health check, no BGP session. With `dataplane.
//! kernel_interface` set, drlb creates a `net_tap` device of that name with the port's
//! MAC, gives it the director IP (`dataplane.ip/prefix`) and brings it up. Then:
//!
//! - what the workers classify as the director's (`Verdict::Kernel`: IPv4 to the
//!   director IP, ARP requests for it and replies to it) goes to the kernel, unchanged;
//! - whatever the kernel sends on the tap goes out the port, unchanged.
//!
//! Workers never make a system call for it. Each hands its frames to this module's
//! thread through a bounded queue (a token bucket on the worker, `dataplane.kernel_rate`
//! frames per second, caps what a flood at the director IP can take; drops are counted),
//! and the thread writes them to the tap. Frames the kernel sends go from the thread to
//! worker 0 through another queue, and out on its TX queue, so no TX queue is ever used
//! by two threads. The thread runs beside the manager, never on a worker core.
use crate::dpdk::mbuf::{Mbuf, RxBurst, TxBuffer};
use crate::dpdk::mempool::Mempool;
use crate::dpdk::port::{self, RxQueue, Started, TxQueue};
use crate::dpdk::{tap, DpdkError};
use crate::sync::spsc;
use crate::wire::Mac;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Frames a worker's queue to the kernel holds.
pub const QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("kernel interface {iface}: cannot create it ({err}). Is another drlb using the name, or an interface of that name in the way? Choose another dataplane.kernel_interface")]
    Create { iface: String, err: DpdkError },
    #[error("kernel interface {iface}: {what}")]
    Setup { iface: String, what: String },
}

/// What the kernel thread counts (it is their only writer).
#[derive(Default)]
pub struct KernelStats {
    /// Frames written to the kernel.
    pub to_kernel: AtomicU64,
    /// Frames the tap refused (freed).
    pub to_kernel_dropped: AtomicU64,
    /// Frames the kernel sent, handed to worker 0.
    pub from_kernel: AtomicU64,
    /// Frames from the kernel that worker 0's queue had no room for.
    pub from_kernel_dropped: AtomicU64,
}

impl KernelStats {
    /// (name, value) rows for the final summary and the metrics.
    pub fn rows(&self) -> [(&'static str, &'static str, u64); 4] {
        [
            ("kernel_tx", "Frames written to the kernel interface", self.to_kernel.load(Relaxed)),
            (
                "kernel_tx_dropped",
                "Frames the kernel interface refused (longer than its MTU, or its queue full)",
                self.to_kernel_dropped.load(Relaxed),
            ),
            ("kernel_rx", "Frames the kernel sent, for the port", self.from_kernel.load(Relaxed)),
            (
                "kernel_rx_dropped",
                "Frames from the kernel dropped: worker 0's queue was full",
                self.from_kernel_dropped.load(Relaxed),
            ),
        ]
    }
}

/// The tap port and its queue pair, before the thread takes them.
pub struct Tap {
    pub port: Started,
    queues: (RxQueue, TxQueue),
    /// The interface's MTU: longer frames for the kernel are dropped (and counted) here,
    /// before the tap would refuse them and the rest of their burst.
    mtu: u16,
}

/// Creates the tap `iface` with the port's MAC, `ip/prefix` and `mtu`, and starts it.
pub fn create(
    iface: &str,
    mac: Mac,
    ip: Ipv4Addr,
    prefix: u8,
    mtu: u16,
    pool: &Arc<Mempool>,
) -> Result<Tap, KernelError> {
    let create = |err| KernelError::Create { iface: iface.into(), err };
    let id = tap::create(iface, mac).map_err(create)?;
    let info = port::info(id).map_err(create)?;
    // The interface takes the port's MTU, as far as the tap carries it: DPDK 22.11's
    // net_tap reports 1522-byte frames at most and refuses longer ones on their way to
    // the kernel (pmd_tx_burst), so with jumbo frames on the port the kernel interface
    // stays at ~1500 and the kernel's own TCP (health checks, BGP) offers an MSS that fits.
    let kmtu = mtu.min(*info.mtu_range().end());
    if kmtu < mtu {
        log::warn!(
            "kernel interface {iface}: MTU {kmtu}, not dataplane.mtu {mtu}: the net_tap device \
             carries frames of at most {} bytes to the kernel; longer ones for the director IP \
             are counted in kernel_tx_dropped",
            info.max_rx_pktlen
        );
    }
    let p = port::Port::configure(&info, 1, pool, 512, 512, kmtu).map_err(create)?;
    let (port, mut queues) = p.start().map_err(create)?;
    let queues = queues.pop().expect("one queue pair");
    configure(iface, ip, prefix, kmtu)
        .map_err(|what| KernelError::Setup { iface: iface.into(), what })?;
    Ok(Tap { port, queues, mtu: kmtu })
}

/// Gives the interface its address and the port's MTU (the kernel sends nothing the
/// wire refuses) and brings it up (no IPv6: the director speaks IPv4, and router
/// solicitations would only be noise on the port).
fn configure(iface: &str, ip: Ipv4Addr, prefix: u8, mtu: u16) -> Result<(), String> {
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{iface}/disable_ipv6"), "1");
    let cidr = format!("{ip}/{prefix}");
    let mtu = mtu.to_string();
    for args in [
        vec!["addr", "replace", &cidr, "dev", iface],
        vec!["link", "set", "dev", iface, "mtu", &mtu, "up"],
    ] {
        let out = std::process::Command::new("ip")
            .args(&args)
            .output()
            .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`ip {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// The thread's ends of the queues.
pub struct Links {
    /// One per worker: frames for the kernel.
    pub from_workers: Vec<spsc::Consumer<Mbuf>>,
    /// Frames the kernel sent, for worker 0 to transmit.
    pub to_wire: spsc::Producer<Mbuf>,
    /// `dataplane.vlan`: the kernel's frames get this tag on the wire, and frames for
    /// the kernel lose theirs (the tap is untagged).
    pub vlan: Option<u16>,
}

/// Starts the thread (pinned to `cpu`, the main lcore's, when given); it stops when
/// `stop` is set.
pub fn spawn(
    tap: Tap,
    links: Links,
    stats: Arc<KernelStats>,
    stop: Arc<AtomicBool>,
    cpu: Option<usize>,
) -> std::io::Result<(Started, std::thread::JoinHandle<()>)> {
    let Tap { port, queues, mtu } = tap;
    let t = std::thread::Builder::new().name("drlb-kernel".into()).spawn(move || {
        if let Some(id) = cpu {
            core_affinity::set_for_current(core_affinity::CoreId { id });
        }
        run(queues, links, usize::from(mtu) + 14, &stats, &stop);
    })?;
    Ok((port, t))
}

/// Moves frames between the workers' queues and the tap until `stop`. Idle, it sleeps
/// 100 µs between polls (the director's own traffic is not latency critical).
fn run(
    (mut rx, mut tx): (RxQueue, TxQueue),
    mut links: Links,
    max_frame: usize,
    stats: &KernelStats,
    stop: &AtomicBool,
) {
    let mut out = TxBuffer::default();
    let mut burst = RxBurst::default();
    let add = |c: &AtomicU64, n: usize| c.store(c.load(Relaxed) + n as u64, Relaxed);
    while !stop.load(Relaxed) {
        let mut busy = false;
        for q in links.from_workers.iter_mut() {
            while let Some(mut m) = q.pop() {
                busy = true;
                m.strip_vlan();
                if m.data_mut().len() > max_frame {
                    add(&stats.to_kernel_dropped, 1);
                    continue;
                }
                if let Err(m) = out.push(m) {
                    let f = out.flush(&mut tx);
                    add(&stats.to_kernel, f.sent);
                    add(&stats.to_kernel_dropped, f.dropped);
                    let _ = out.push(m);
                }
            }
        }
        let f = out.flush(&mut tx);
        add(&stats.to_kernel, f.sent);
        add(&stats.to_kernel_dropped, f.dropped);
        let n = burst.recv(&mut rx);
        for i in 0..n {
            busy = true;
            let mut m = burst.take(i);
            if let Some(v) = links.vlan {
                m.insert_vlan(v); // 128 bytes of headroom: always room
            }
            match links.to_wire.push(m) {
                Ok(()) => add(&stats.from_kernel, 1),
                Err(_dropped) => add(&stats.from_kernel_dropped, 1),
            }
        }
        if !busy {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}
