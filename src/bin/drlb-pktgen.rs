//! drlb-pktgen: a small paced traffic source on DPDK, for the in-machine harness
//! (perf/). It sends UDP to the VIP on port 0 at `--rate` packets/s (token bucket on the
//! TSC, bursts of at most 32, no catch-up beyond one burst), counts what comes back on
//! the same port, and prints one JSON line. Not a Pktgen replacement: no UI, one port,
//! one lcore.
//!
//!   drlb-pktgen -l 0 --no-pci --vdev=net_memif0,role=client,socket=/tmp/m.sock -- \
//!       --rate 1000000 --secs 10 --flows 1024 --dst-mac 02:00:00:00:00:01
//!
//! Flows: `--flows N` recurring flows (client IP x port), and with `--new-share F` that
//! share of packets from flows never seen before (an endless series: entries expire
//! instead of being refreshed; the soak test's expiry-heavy mix).
//!
//! Round trip: each frame carries the TSC of the burst that sent it in its first eight
//! UDP payload bytes (drlb rewrites MACs only); what comes back during the measured
//! seconds gives `rtt_p50_us` ... `rtt_max_us` (generator -> memif -> drlb -> memif ->
//! generator, so it includes the time a packet waits for drlb to poll).
#![deny(unsafe_code)]
use clap::Parser;
use drlb::dpdk::mbuf::{Mbuf, RxBurst, TxBuffer};
use drlb::dpdk::port::{RxQueue, TxQueue};
use drlb::dpdk::{self, eal, mempool::Mempool, port};
use drlb::testing::frames::{self, Flow};
use drlb::wire::ipv4::Ipv4Packet;
use drlb::wire::Mac;
use hdrhistogram::Histogram;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "drlb-pktgen",
    about = "Paced UDP source to a VIP on DPDK port 0, counting what returns",
    override_usage = "drlb-pktgen [EAL options] -- [--rate PPS] [--secs S] [--flows N] ..."
)]
struct Args {
    /// Packets per second to offer (0: as fast as the port takes them).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Warm-up seconds, sent but not counted (ARP, flow tables, caches).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Recurring flows.
    #[arg(long, default_value_t = 1024)]
    flows: u32,
    /// Share of packets from never-seen flows (0..1).
    #[arg(long, default_value_t = 0.0)]
    new_share: f64,
    /// Frame size without FCS (60 = 64 on the wire).
    #[arg(long, default_value_t = 60)]
    size: usize,
    /// The director's MAC.
    #[arg(long, default_value = "02:00:00:00:00:01")]
    dst_mac: Mac,
    #[arg(long, default_value = "192.168.1.200")]
    vip: Ipv4Addr,
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// Mbufs in the pool.
    #[arg(long, default_value_t = 16383)]
    mbufs: u32,
    /// With --rate: sleep when no packet is due instead of spinning, catching up at
    /// most 8 bursts after a sleep (burstier; leaves CPU time to processes sharing the
    /// generator's core, e.g. drlb's manager and drlbadm on a 2-CPU host).
    #[arg(long)]
    yield_cpu: bool,
    /// After printing the report, keep the port open without polling it until SIGINT or
    /// SIGTERM (at most 120 s, so a parent that died leaves nothing behind), so
    /// that a memif peer can stop first: DPDK 22.11's memif PMD can crash a process that
    /// is polling while its peer disconnects.
    #[arg(long)]
    hold: bool,
}

const BURST: usize = 32;
/// The longest `--hold` (its help says 120 s).
const HOLD_MAX_SECS: u64 = 120;
/// Where a frame's send time (TSC, little-endian) goes: the UDP payload's first bytes.
const STAMP: usize = 42;

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("drlb-pktgen: error: {msg}");
    std::process::exit(2);
}

/// The frame of packet `seq`: a recurring flow, or (a `new_share` of the time) a fresh one.
struct Frames {
    template: Vec<u8>,
    flows: u32,
    new_every: u64,
    fresh: u32,
}

impl Frames {
    fn fill(&mut self, seq: u64, stamp: u64, out: &mut [u8]) {
        let (ip, port) = if self.new_every > 0 && seq.is_multiple_of(self.new_every) {
            self.fresh = self.fresh.wrapping_add(1);
            // 100.64.0.0/10 and all ports: 2^22 x 2^16 flows before one repeats.
            (0x6440_0000 | (self.fresh >> 16 & 0x3f_ffff), self.fresh as u16 | 1)
        } else {
            let i = (seq % u64::from(self.flows)) as u32;
            (0x0a00_0000 | (i >> 10), 1024 + (i & 1023) as u16)
        };
        out.copy_from_slice(&self.template);
        out[26..30].copy_from_slice(&ip.to_be_bytes());
        out[34..36].copy_from_slice(&port.to_be_bytes());
        out[40..42].copy_from_slice(&[0, 0]); // UDP checksum: none
        out[STAMP..STAMP + 8].copy_from_slice(&stamp.to_le_bytes());
        if let Ok(mut p) = Ipv4Packet::new_checked(&mut out[14..]) {
            p.fill_checksum();
        }
    }
}

/// The port, its pool and queues, and the burst buffers. Fields drop in order: the
/// frames, the queues, the port (closed with its last handle), then the pool.
struct Io {
    back: RxBurst,
    out: TxBuffer,
    rx: RxQueue,
    tx: TxQueue,
    _port: port::Started,
    pool: Arc<Mempool>,
    src: Mac,
}

impl Io {
    fn open(a: &Args) -> Io {
        if port::count() == 0 {
            fail("no port: give a --vdev (e.g. net_memif0,role=server,socket=PATH)");
        }
        let info = port::info(0).unwrap_or_else(|e| fail(e));
        let pool = Arc::new(
            Mempool::new("pktgen_pool", a.mbufs, 256, 0, drlb::dpdk::mempool::data_room(1500))
                .unwrap_or_else(|e| fail(e)),
        );
        let p =
            port::Port::configure(&info, 1, &pool, 1024, 1024, 1500).unwrap_or_else(|e| fail(e));
        let (p, mut queues) = p.start().unwrap_or_else(|e| fail(e));
        let src = p.mac().unwrap_or_else(|e| fail(e));
        let (rx, tx) = queues.pop().expect("one queue pair");
        Io { back: RxBurst::default(), out: TxBuffer::default(), rx, tx, _port: p, pool, src }
    }

    /// Waits for the link (a memif peer connecting): returns when the port has taken a
    /// frame, which starts the clock.
    fn wait_link(&mut self, frame: &[u8], hz: u64, stop: &AtomicBool) {
        let give_up = dpdk::rdtsc() + 10 * hz;
        loop {
            if dpdk::rdtsc() > give_up || stop.load(Ordering::Relaxed) {
                fail("port 0 took no frame in 10 s: is the peer (drlb) attached?");
            }
            let Some(m) = Mbuf::from_bytes(&self.pool, frame) else {
                fail("mbuf pool empty");
            };
            let _ = self.out.push(m);
            if self.out.flush(&mut self.tx).sent == 1 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Frames offered, refused and received, and the round trips of the measured seconds.
#[derive(Default, Clone, Copy)]
struct Tally {
    sent: u64,
    refused: u64,
    got: u64,
}

/// How many frames the rate allows now (token bucket on the TSC, at most one burst
/// ahead, or eight with `--yield-cpu`); `None`: none due, sleep (`--yield-cpu`).
struct Pacer {
    rate: u64,
    yield_cpu: bool,
    start: u64,
    hz: u64,
    /// Frames the rate allowed but that were never offered (pacing, not a backlog).
    skipped: u64,
}

impl Pacer {
    fn due(&mut self, now: u64, t: &Tally) -> Option<usize> {
        if self.rate == 0 {
            return Some(BURST);
        }
        let allowed =
            ((now - self.start) as u128 * u128::from(self.rate) / u128::from(self.hz)) as u64;
        let mut due = allowed.saturating_sub(t.sent + t.refused + self.skipped);
        let ahead = if self.yield_cpu { 8 * BURST as u64 } else { BURST as u64 };
        if self.yield_cpu && due == 0 {
            return None;
        }
        // More than `ahead` behind: forget the excess (never offered, so not counted
        // as sent or refused).
        let excess = due.saturating_sub(ahead);
        self.skipped += excess;
        due -= excess;
        Some(due.min(BURST as u64) as usize)
    }
}

/// Sends for `--warmup` + `--secs` from `start`; returns the tallies at the end of the
/// warm-up and at the end, and the round trips measured in between.
fn run(
    a: &Args,
    io: &mut Io,
    gen: &mut Frames,
    hz: u64,
    stop: &AtomicBool,
) -> (Tally, Tally, Histogram<u64>) {
    let start = dpdk::rdtsc();
    let warm_end = start + (a.warmup * hz as f64) as u64;
    let end = warm_end + (a.secs * hz as f64) as u64;
    let mut pacer = Pacer { rate: a.rate, yield_cpu: a.yield_cpu, start, hz, skipped: 0 };
    let (mut t, mut t0, mut seq) = (Tally::default(), None, 0u64);
    let mut rtt = Histogram::<u64>::new(3).expect("3 significant figures is valid");
    loop {
        let now = dpdk::rdtsc();
        if now >= end || stop.load(Ordering::Relaxed) {
            break;
        }
        if t0.is_none() && now >= warm_end {
            t0 = Some(t);
        }
        let Some(want) = pacer.due(now, &t) else {
            std::thread::sleep(std::time::Duration::from_micros(50));
            continue;
        };
        while io.out.len() < want {
            let Some(mut m) = Mbuf::from_bytes(&io.pool, &gen.template) else {
                break;
            };
            gen.fill(seq, now, m.data_mut());
            seq += 1;
            let _ = io.out.push(m);
        }
        let f = io.out.flush(&mut io.tx);
        t.refused += f.dropped as u64;
        t.sent += f.sent as u64;
        let n = io.back.recv(&mut io.rx);
        t.got += n as u64;
        if t0.is_some() && n > 0 {
            let at = dpdk::rdtsc();
            for f in io.back.frames() {
                let Some(b) = f.get(STAMP..STAMP + 8) else { continue };
                let sent_at = u64::from_le_bytes(b.try_into().expect("8 bytes"));
                if sent_at >= warm_end && sent_at <= at {
                    let _ = rtt
                        .record(((at - sent_at) as u128 * 1_000_000_000 / u128::from(hz)) as u64);
                }
            }
        }
    }
    // Drain what is still coming back (up to 100 ms).
    let drain_end = dpdk::rdtsc() + hz / 10;
    while dpdk::rdtsc() < drain_end {
        t.got += io.back.recv(&mut io.rx) as u64;
    }
    io.back.free_rest();
    (t0.unwrap_or(t), t, rtt)
}

fn report(a: &Args, t0: Tally, t: Tally, rtt: &Histogram<u64>) {
    let (tx_n, refused_n, rx_n) = (t.sent - t0.sent, t.refused - t0.refused, t.got - t0.got);
    let us = |q: f64| rtt.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{{\"rate_set\":{},\"secs\":{},\"tx\":{tx_n},\"tx_refused\":{refused_n},\"rx\":{rx_n},\"tx_pps\":{:.0},\"rx_pps\":{:.0},\"size\":{},\"flows\":{},\"new_share\":{},\"rtt_samples\":{},\"rtt_p50_us\":{:.2},\"rtt_p99_us\":{:.2},\"rtt_p999_us\":{:.2},\"rtt_max_us\":{:.2}}}",
        a.rate,
        a.secs,
        tx_n as f64 / a.secs,
        rx_n as f64 / a.secs,
        a.size,
        a.flows,
        a.new_share,
        rtt.len(),
        us(0.5),
        us(0.99),
        us(0.999),
        rtt.max() as f64 / 1000.0
    );
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let split = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    let app: Vec<String> = std::iter::once(argv[0].clone())
        .chain(argv.get(split + 1..).unwrap_or(&[]).iter().cloned())
        .collect();
    let a = Args::parse_from(app);
    if !(60..=1514).contains(&a.size) || !(0.0..=1.0).contains(&a.new_share) || a.flows == 0 {
        fail("--size must be 60..=1514, --new-share 0..1, --flows at least 1");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let e = eal::init(&argv[..split]).unwrap_or_else(|e| fail(format_args!("EAL: {e}")));
    let mut io = Io::open(&a);
    let f = Flow {
        dst_mac: a.dst_mac,
        src_mac: io.src,
        saddr: 0x0a00_0000,
        daddr: u32::from(a.vip),
        sport: 1024,
        dport: a.port,
    };
    let mut gen = Frames {
        template: frames::udp(&f, a.size - 42, a.size),
        flows: a.flows,
        new_every: if a.new_share > 0.0 { (1.0 / a.new_share).round().max(1.0) as u64 } else { 0 },
        fresh: 0,
    };
    assert_eq!(gen.template.len(), a.size, "template length");
    let hz = dpdk::tsc_hz();
    io.wait_link(&gen.template, hz, &stop);
    let (t0, t, rtt) = run(&a, &mut io, &mut gen, hz, &stop);
    report(&a, t0, t, &rtt);
    if a.hold {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(HOLD_MAX_SECS);
        while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    drop(io);
    drop(e);
}
