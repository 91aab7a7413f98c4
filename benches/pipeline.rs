//! Per-packet cost of `lb::process` without I/O (Katran `-perf_testing` style), in
//! bursts of 32 with the same stages as the worker (prefetch, then process).
//!
//!   cargo bench --bench pipeline [-- --quick]
//!   cargo bench --bench pipeline -- --quick --flows 1024   # one hit case (profiling)
//!   cargo bench --bench pipeline -- --quick --miss         # the stateless miss only
//!
//! Frames live in a small ring of 32 hot buffers, as an RX ring's would; each packet's
//! flow (source address, source port, IP checksum) is patched into its buffer from a
//! precomputed array, so the cost measured is the pipeline's, not the bench's memory.
//! Cases: the hit path with 1k, 64k and 1M flows in the table; the miss path (every
//! packet a new flow: schedule + insert until the table is full, then, by default
//! `syn_flood = "stateless"`, forwarded by hash without an entry) and `miss_evict` (the
//! same with `syn_flood = "evict"`: every SYN past the fill evicts); and the fill curve
//! (evict mode): new flows into an empty 1M-entry table in steps of 10 % of its
//! capacity up to 150 % (ns/packet and evictions per step), with the process's resident
//! memory at 1M flows (`# rss_*` lines); and this host's memory under a table as large
//! as the 1M case's (`# dram_*` lines, [`host_memory`]).
use drlb::lb::snapshot::{BackendSpec, Policy, ServiceSpec};
use drlb::lb::{
    forward_hits, hint, prefetch_burst, process_hinted, Cursor, LocalState, OnGone, Proto,
    SchedKind, Snapshot, SynFlood, Timeouts, Verdict, AHEAD,
};
use drlb::testing::pcap::{self, FlowsSpec};
use drlb::wire::tcp::flags::{ACK, PSH, SYN};
use drlb::wire::Mac;
use std::time::Instant;

const PORT: Mac = Mac([2, 0, 0, 0, 0, 1]);
const BURST: usize = 32;

fn snapshot() -> Snapshot {
    let specs = vec![ServiceSpec {
        vip: 0xc0a8_01c8,
        port: 80,
        proto: Proto::Tcp,
        policy: Policy {
            on_removed: OnGone::Reschedule,
            on_down: OnGone::Reschedule,
            ..Policy::new(SchedKind::Wrr)
        },
        sorry: None,
        quorum: 1,
        mh: None,
        backends: (0..4)
            .map(|i| BackendSpec {
                slot: i,
                incarnation: 1,
                ip: 0xc0a8_0176 + u32::from(i),
                port: 80,
                weight: 1 + u32::from(i),
                mac: Some(Mac([0, 0xc, 0x29, 0, 0, i as u8])),
                down: false,
            })
            .collect(),
    }];
    Snapshot::build(1, PORT, 0xc0a8_0179, Timeouts::default(), &specs).unwrap()
}

/// What differs between flows: bytes 24..36 of the frame (IP checksum, addresses,
/// source port), written as the NIC would write the whole frame.
type Patch = [u8; 12];

/// A 60-byte frame (every frame here is 60 bytes: fixed offsets, no bounds checks in
/// the bench's own "RX").
type Frame = [u8; 60];

fn patches(flows: u32) -> Vec<Patch> {
    let spec = FlowsSpec {
        flows,
        packets_per_flow: 1,
        dst_mac: PORT,
        src_mac: Mac([2, 1, 1, 1, 1, 1]),
        vip: 0xc0a8_01c8,
        port: 80,
        frame_len: 60,
        interleave: true,
        ack_only: false,
    };
    (0..flows)
        .map(|i| {
            let f = pcap::flow_frame(&spec, i, 1);
            f[24..36].try_into().unwrap()
        })
        .collect()
}

fn template(flags: u8) -> Frame {
    let spec = FlowsSpec {
        flows: 1,
        packets_per_flow: 2,
        dst_mac: PORT,
        src_mac: Mac([2, 1, 1, 1, 1, 1]),
        vip: 0xc0a8_01c8,
        port: 80,
        frame_len: 60,
        interleave: true,
        ack_only: false,
    };
    let mut f: Frame = pcap::flow_frame(&spec, 0, 1).try_into().expect("60-byte frames");
    f[47] = flags;
    f
}

/// Runs `total` packets (bursts of 32) over the flows in `p`; returns ns/packet.
fn run(p: &[Patch], flags: u8, snap: &Snapshot, local: &mut LocalState, total: usize) -> f64 {
    let mut ring: Vec<Frame> = (0..BURST).map(|_| template(flags)).collect();
    let mut fwd = 0usize;
    let mut next = 0usize;
    // The burst's hashes, then AHEAD more for `forward_hits`' prefetch ahead (as the
    // worker's `Received` has them).
    let mut hashes = [0u64; BURST + AHEAD];
    let start = Instant::now();
    for _ in 0..total / BURST {
        // "RX": the NIC writes each frame's headers.
        for f in ring.iter_mut() {
            let patch = &p[next];
            next = if next + 1 == p.len() { 0 } else { next + 1 };
            f[..6].copy_from_slice(&PORT.0);
            f[24..36].copy_from_slice(patch);
        }
        prefetch_burst(ring.iter().map(|f| std::hint::black_box(f.as_slice())), local, &mut hashes);
        // The worker's order: runs of fast hits in one loop, each frame a run stops at
        // by the full path.
        let mut cur = Cursor::default();
        loop {
            fwd += forward_hits(
                ring.iter_mut().map(|f| std::hint::black_box(f.as_mut_slice())),
                &hashes,
                &mut cur,
                snap,
                local,
                1,
                |_, _, _| {},
            );
            let Some(&h) = hashes[..BURST].get(cur.at) else { break };
            let f = std::hint::black_box(ring[cur.at].as_mut_slice());
            cur.skip();
            let hint = hint(f, h, snap, local);
            if let Verdict::Forward { .. } = process_hinted(f, snap, local, 1, &hint) {
                fwd += 1;
            }
        }
    }
    let n = total / BURST * BURST;
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    assert_eq!(fwd, n, "every packet must be forwarded");
    ns
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // DRLB_BENCH_PACKETS: packets per hit case (callgrind runs two lengths and takes the
    // difference, so set-up cost cancels out).
    let total = std::env::var("DRLB_BENCH_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 4_000_000 } else { 40_000_000 });
    let snap = snapshot();
    println!("case,flows,table_capacity,ns_per_packet,mpps");
    // `--flows N` runs one hit case only (for profiling).
    let only: Option<u32> =
        std::env::args().skip_while(|a| a != "--flows").nth(1).and_then(|v| v.parse().ok());
    let sizes: Vec<u32> = only.map_or(vec![1_024, 65_536, 1_048_576], |n| vec![n]);
    // `--miss` runs the stateless miss only (for profiling).
    let miss_only = std::env::args().any(|a| a == "--miss");
    let sizes = if miss_only { vec![] } else { sizes };
    for &flows in &sizes {
        let cap = (flows as usize * 2).max(1024);
        let mut local = LocalState::new(cap, 0);
        let p = patches(flows);
        run(&p, SYN, &snap, &mut local, (flows as usize).max(BURST)); // populate
        let ns = run(&p, ACK | PSH, &snap, &mut local, total);
        println!("hit,{flows},{cap},{ns:.1},{:.1}", 1e3 / ns);
    }
    if only.is_some() {
        return;
    }
    // Miss path: 1M distinct SYNs into a 64k table (new flow + insert, evicting).
    let mut local = LocalState::new(65_536, 0);
    let p = patches(1_048_576);
    let ns = run(&p, SYN, &snap, &mut local, if quick { 1 << 20 } else { 4 << 20 });
    println!("miss,1048576,65536,{ns:.1},{:.1}", 1e3 / ns);
    if miss_only {
        // Profiling the stateless miss: DRLB_BENCH_PACKETS more SYNs into the full table.
        let ns = run(&p, SYN, &snap, &mut local, total);
        println!("miss_full,1048576,65536,{ns:.1},{:.1}", 1e3 / ns);
        return;
    }
    // The same with syn_flood = "evict": every SYN past the fill evicts.
    let mut evict = snapshot();
    evict.syn_flood = SynFlood::Evict;
    let mut local = LocalState::new(65_536, 0);
    let ns = run(&p, SYN, &evict, &mut local, if quick { 1 << 20 } else { 4 << 20 });
    println!("miss_evict,1048576,65536,{ns:.1},{:.1}", 1e3 / ns);
    fill(&evict, if quick { 65_536 } else { 1 << 20 });
    host_memory(2 * 1_048_576 * drlb::lb::flow::ENTRY_BYTES);
}

/// What this host's memory gives a table of `bytes` (the 1M case's: past the last-level
/// cache), in the flow table's own kind of memory (`mem::Table`: transparent huge
/// pages): the latency of a dependent load (a chase through every line in random order)
/// and the time a random line takes when a burst's 32 are prefetched together and then
/// read (as much overlap as a burst allows). A hit in such a table reads one line of it
/// (two in turn for a key in its second group): this is what the hit waits on, printed
/// beside it so that a run says how fast the host's memory was.
fn host_memory(bytes: usize) {
    let lines = bytes / 64;
    let mut t: drlb::mem::Table<[u64; 8]> = drlb::mem::Table::zeroed(lines);
    let mut rng = drlb::testing::Rng(0x9e37_79b9_7f4a_7c15);
    // Each line holds the next line's index of a random tour through all of them.
    let mut order: Vec<usize> = (0..lines).collect();
    for i in (1..lines).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for (i, &l) in order.iter().enumerate() {
        t[l][0] = order[(i + 1) % lines] as u64;
    }
    let chase = 1 << 22;
    let start = Instant::now();
    let mut at = 0usize;
    for _ in 0..chase {
        at = t[at][0] as usize;
    }
    let dependent = start.elapsed().as_nanos() as f64 / chase as f64;
    std::hint::black_box(at);
    let picks: Vec<usize> = (0..1 << 22).map(|_| rng.below(lines as u64) as usize).collect();
    let start = Instant::now();
    let mut sum = 0u64;
    for burst in picks.chunks_exact(BURST) {
        for &l in burst {
            t.prefetch(l);
        }
        for &l in burst {
            sum = sum.wrapping_add(t[l][1]);
        }
    }
    let line = start.elapsed().as_nanos() as f64 / picks.len() as f64;
    std::hint::black_box(sum);
    println!("# dram_probe_bytes {bytes}");
    println!("# dram_dependent_load_ns {dependent:.1}");
    println!("# dram_line_in_bursts_of_32_ns {line:.1}");
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// New flows into an empty table of `cap` entries, 10 % of `cap` at a time, to 150 %.
fn fill(snap: &Snapshot, cap: usize) {
    let p = patches((cap + cap / 2) as u32);
    let before = rss_bytes();
    let mut local = LocalState::new(cap, 0);
    let step = cap / 10;
    let mut evicted = 0;
    for k in 0..15 {
        let ns = run(&p[k * step..(k + 1) * step], SYN, snap, &mut local, step);
        let e = local.flows.stats.evictions;
        println!(
            "fill_{}pct_evicted_{},{},{},{ns:.1},{:.1}",
            (k + 1) * 10,
            e - evicted,
            (k + 1) * step,
            local.flows.capacity(),
            1e3 / ns
        );
        evicted = e;
        if k == 9 {
            let live = local.flows.live(1);
            let grown = rss_bytes().saturating_sub(before);
            println!("# rss_bytes_table_at_{live}_flows {grown}");
            println!("# rss_bytes_per_flow {:.1}", grown as f64 / live.max(1) as f64);
            println!("# entry_bytes {}", drlb::lb::flow::ENTRY_BYTES);
        }
    }
}
