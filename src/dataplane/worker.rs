//! The worker loop, shaped like DPDK's l3fwd:
//! - burst of 64 (`mbuf::BURST`) into an array on the stack; `if nb_rx == 0` do idle work
//!   and go on;
//! - prefetch every packet's headers, then its flow-table group line;
//! - one snapshot load per burst; a quiescent point once per loop iteration;
//! - the burst forwarded out of the polling loop's line (`Worker::forward_burst`), so
//!   the hit loop's registers are its own; the manager's and the kernel's queued frames
//!   taken when idle and every eighth burst, the counters and the generation published
//!   once a tick;
//! - TX buffer flushed when it holds a burst or when ~100 µs have passed; a partial
//!   `tx_burst` frees and counts the unsent tail;
//! - dropped and consumed frames freed in bulk once per burst.
//!
//! No allocation, no lock, no atomic read-modify-write on this path, and no `unsafe`:
//! the mbufs live in `dpdk::mbuf`'s burst and buffer types.
use super::counters::{SlotDeltas, Slots, WorkerCounters};
use super::{CtrlFrame, DumpEntry};
use crate::dpdk::mbuf::{Mbuf, RxBurst, TxBuffer, BURST};
use crate::dpdk::mempool::Mempool;
use crate::dpdk::port::{RxQueue, TxQueue};
use crate::lb::verdict::Neighbor;
use crate::lb::DropReason;
use crate::lb::{
    forward_hits, hint, process_hinted, stage1, Cursor, LocalState, Snapshot, Tick, Verdict, AHEAD,
    TICKS_PER_SEC,
};
use crate::sync::{epoch, spsc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Flow-table groups swept per idle iteration.
const SWEEP_GROUPS: usize = 4;

/// The TSC clock every worker shares, so their flow ticks agree.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// TSC when drlb started.
    pub start_tsc: u64,
    pub tsc_hz: u64,
    /// `2^64 / (TSC cycles a tick)`, rounded up: a tick is a multiply by it (a 64-bit
    /// division on every loop was ~1.5 % of the worker's time under load, perf).
    tick_recip: u64,
}

impl Clock {
    /// The clock started at TSC `start_tsc`, counting `tsc_hz` cycles a second.
    pub fn new(start_tsc: u64, tsc_hz: u64) -> Clock {
        // At least 2 cycles a tick, so the reciprocal fits in 64 bits.
        let tick_tsc = (tsc_hz / u64::from(TICKS_PER_SEC)).max(2);
        Clock { start_tsc, tsc_hz, tick_recip: u64::MAX / tick_tsc + 1 }
    }

    /// The tick of TSC reading `tsc`: `(tsc - start) / cycles a tick`, monotonic. The
    /// reciprocal is rounded up, so a tick never comes late and comes early by less than
    /// `(tsc - start) * cycles a tick / 2^64` cycles (50 µs after 30 days at 3.6 GHz).
    #[inline(always)]
    pub fn tick(&self, tsc: u64) -> Tick {
        let d = tsc.wrapping_sub(self.start_tsc);
        ((u128::from(d) * u128::from(self.tick_recip)) >> 64) as Tick
    }

    /// The tick now.
    pub fn now(&self) -> Tick {
        self.tick(crate::dpdk::rdtsc())
    }
}

/// Everything a worker is built from: its queues, its ends of the channels to the
/// manager, and its settings.
pub struct WorkerSetup {
    pub index: usize,
    pub rx: RxQueue,
    pub tx: TxQueue,
    /// For the control frames it copies into mbufs (worker 0).
    pub pool: Arc<Mempool>,
    pub snap: epoch::Reader<Snapshot>,
    pub counters: Arc<WorkerCounters>,
    /// Backend MACs it learns from ARP, to the manager.
    pub learned: spsc::Producer<Neighbor>,
    /// Flow entries for `drlbadm -lnc`, on request.
    pub dump: spsc::Producer<DumpEntry>,
    /// Frames from the manager to send (worker 0 only).
    pub ctrl: Option<spsc::Consumer<CtrlFrame>>,
    /// Frames for the kernel interface (when there is one).
    pub to_kernel: Option<spsc::Producer<Mbuf>>,
    /// Frames the kernel sent, to transmit (worker 0 only).
    pub from_kernel: Option<spsc::Consumer<Mbuf>>,
    /// Frames per second this worker hands to the kernel at most.
    pub kernel_rate: u32,
    pub stop: Arc<AtomicBool>,
    pub flow_capacity: usize,
    /// This worker's row of the shared connection counts.
    pub conns: crate::lb::conns::ConnRow,
    /// The persistence templates all workers share.
    pub templates: Arc<crate::lb::persist::Templates>,
    /// ICMP errors about flows without an entry here, copied to each other worker.
    pub peers_out: Vec<spsc::Producer<Mbuf>>,
    /// Those of the other workers, to look up here.
    pub peers_in: Vec<spsc::Consumer<Mbuf>>,
    pub clock: Clock,
    /// Fault injection (tests): panic at the first tick once `rx` reaches this (u64::MAX:
    /// never).
    pub panic_after_rx: u64,
    /// What it does when its RX queue is empty.
    pub idle: super::idle::Idle,
    /// `dataplane.mtu`: the fragment hold area's slots take a frame of it.
    pub mtu: u16,
}

pub struct Worker {
    s: WorkerSetup,
    local: LocalState,
    bucket: TokenBucket,
    /// The fast path's per-backend counts, added to the shared ones once a tick.
    deltas: SlotDeltas,
}

/// What becomes of a frame after the pipeline's verdict.
enum Then {
    Transmit,
    Free,
    Kernel,
    /// A copy to each other worker, then freed.
    Redirect,
}

/// `rate` frames a second with bursts of a tenth of that, on the TSC: integer only,
/// checked only for frames to the kernel.
struct TokenBucket {
    /// In TSC ticks: one frame costs `hz` tokens, and `rate * dt` arrive in `dt` ticks.
    tokens: u64,
    cap: u64,
    rate: u64,
    hz: u64,
    last: u64,
}

impl TokenBucket {
    fn new(rate: u32, hz: u64, now: u64) -> Self {
        let burst = u64::from(rate / 10).max(1);
        TokenBucket { tokens: burst * hz, cap: burst * hz, rate: u64::from(rate), hz, last: now }
    }

    fn allow(&mut self, now: u64) -> bool {
        // At most a second's worth of ticks at once: rate * hz stays far from overflow.
        let dt = now.wrapping_sub(self.last).min(self.hz);
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.cap);
        if self.tokens >= self.hz {
            self.tokens -= self.hz;
            return true;
        }
        false
    }
}

/// What one full sweep of the flow table counts: live entries (including those of
/// removed backends). Per-backend counts are kept exactly by the table (`lb::conns`).
struct Census {
    live: u64,
}

/// A received burst and its frames' stage-1 hashes, side by side: the forwarding loops
/// address both from one register. The hashes past the burst's (stale or zero) are
/// `forward_hits`' padding: it prefetches the group of the hash AHEAD places on.
struct Received {
    burst: RxBurst,
    hashes: [u64; BURST + AHEAD],
}

/// The TX buffer with the latency sample riding on it.
struct Tx {
    buf: TxBuffer,
    /// RX time (TSC) of a sampled burst whose frames are waiting in the buffer (0: none).
    sample: u64,
    /// Sampled time inside drlb, RX return to TX handover, in TSC cycles.
    latency: hdrhistogram::Histogram<u64>,
}

/// Every this many busy loops (a power of two), one burst's RX-to-TX time is sampled.
const LATENCY_SAMPLE_EVERY: u64 = 16;
/// Under load the sweep visits this many groups every this many bursts (a power of two).
const BUSY_SWEEP_EVERY: u64 = 8;

impl Tx {
    #[inline(always)]
    fn flush(&mut self, q: &mut TxQueue, c: &WorkerCounters) {
        if self.buf.is_empty() {
            return;
        }
        let f = self.buf.flush(q);
        if self.sample != 0 {
            // In range by construction (bounds below); an outlier beyond is dropped.
            let _ = self.latency.record(crate::dpdk::rdtsc().wrapping_sub(self.sample).max(1));
            self.sample = 0;
        }
        if f.dropped > 0 {
            c.tx_dropped.add(f.dropped as u64);
        }
        c.tx.add(f.sent as u64);
    }
}

impl Worker {
    /// The worker of `s`, or the error of its flow table's mapping.
    pub fn new(s: WorkerSetup) -> std::io::Result<Worker> {
        let flows =
            crate::lb::flow::FlowTable::try_new(s.flow_capacity)?.with_conns(s.conns.clone());
        let mut local = LocalState::sharing(flows, s.index, s.templates.clone());
        local.peers = !s.peers_out.is_empty();
        local.frags = crate::lb::frag::Frags::for_mtu(s.mtu);
        let bucket = TokenBucket::new(s.kernel_rate, s.clock.tsc_hz, crate::dpdk::rdtsc());
        Ok(Worker { s, local, bucket, deltas: SlotDeltas::default() })
    }

    /// Makes the worker's flow table resident on NUMA node `node` before it forwards
    /// ([`FlowTable::populate`](crate::lb::flow::FlowTable::populate)).
    pub fn populate_flows(&mut self, node: Option<u32>) -> std::io::Result<()> {
        self.local.flows.populate(node)
    }

    /// Sweeps `groups` flow-table groups, counting live flows of present backends into
    /// `census`; at each wrap the census is published to the slot counters and reset.
    /// While a connection dump is in progress (`dump.0` groups left, for request id
    /// `dump.1`), live entries also go to the dump queue; the sweep waits while the
    /// queue lacks room for a whole step, so no entry is dropped.
    fn sweep(&mut self, now: Tick, groups: usize, census: &mut Census, dump: &mut (usize, u64)) {
        use std::sync::atomic::Ordering::{Acquire, Release};
        let c = &self.s.counters;
        // Acquire pairs with the manager's release store of a new request id.
        let req = c.dump_request.load(Acquire);
        if dump.0 == 0 && req != dump.1 {
            *dump = (self.local.flows.capacity() / crate::lb::flow::WAYS, req);
        }
        let dumping = dump.0 > 0;
        if dumping && self.s.dump.room() < groups * crate::lb::flow::WAYS {
            return; // wait for the manager to drain the queue; nothing is dropped
        }
        let q = &mut self.s.dump;
        let snap = self.s.snap.load();
        let templates = &self.local.templates;
        // Entries are read out only for a dump or persistence; the census counts either way.
        let swept = if dumping || snap.persistent {
            self.local.flows.sweep_visit(now, groups, |e| {
                // A persistent client keeps its server while any of its flows lives.
                crate::lb::pipeline::keep_template(snap, templates, e, now);
                if dumping {
                    let _ = q.push(DumpEntry { flow: *e, now });
                }
            })
        } else {
            self.local.flows.sweep_count(now, groups)
        };
        census.live += swept.live as u64;
        if dumping {
            dump.0 = dump.0.saturating_sub(groups);
            if dump.0 == 0 {
                // Release: every entry pushed above is visible to a manager that sees it.
                c.dump_done.store(dump.1, Release);
            }
        }
        if swept.wrapped {
            c.flows.set(census.live);
            census.live = 0;
        }
    }

    /// Copies the flow table's and the flood state's counts to the shared counters and
    /// merges the latency samples (once a tick, busy or idle; the mutex is try-locked).
    fn publish(&self, now: Tick, latency: &mut hdrhistogram::Histogram<u64>) {
        let c = &self.s.counters;
        let (stats, flood) = (&self.local.flows.stats, &self.local.flood);
        c.flow_evictions.set(stats.evictions);
        c.flow_expired.set(stats.expired);
        c.syn_stateless.set(flood.stateless_syns);
        c.hashed_segments.set(flood.hashed_segments);
        c.mid_flow_scheduled.set(self.local.mid_flow_scheduled);
        let f = &self.local.frags.stats;
        c.fragments_first.set(f.first);
        c.fragments_followed.set(f.followed);
        c.fragments_released.set(f.released);
        c.fragment_evictions.set(f.evicted);
        let p = &self.local.persist;
        c.templates_created.set(p.created);
        c.template_evictions.set(p.evicted);
        c.template_busy.set(p.busy);
        c.syn_flood_active.set(u64::from(flood.active(now)));
        c.publish_latency(latency);
    }

    /// Once a tick, busy or idle: drops the held fragments whose first fragment did not
    /// come in time (counted), then publishes the counters and the snapshot generation
    /// it forwards with.
    fn tick(&mut self, now: Tick, latency: &mut hdrhistogram::Histogram<u64>) {
        let c = &self.s.counters;
        if c.rx.get() >= self.s.panic_after_rx && self.s.index == 0 {
            panic!("fault injection (DRLB_FAULT=worker_panic)");
        }
        c.generation.set(self.s.snap.load().generation);
        let timed_out = self.local.frags.expire(now);
        if timed_out > 0 {
            c.drops[DropReason::FragmentTimeout as usize].add(timed_out);
        }
        self.deltas.publish(&c.slots);
        self.publish(now, latency);
    }

    /// Looks up the ICMP errors other workers handed over (their flow may be here):
    /// forwarded if so, counted as a miss if not. Only while the TX buffer has room.
    fn take_redirects(&mut self, tx: &mut Tx, now: Tick) {
        let c = &self.s.counters;
        for q in self.s.peers_in.iter_mut() {
            while !tx.buf.is_full() {
                let Some(mut m) = q.pop() else { break };
                let frame = m.data_mut();
                let len = frame.len() as u64;
                self.local.redirected = true;
                let v = crate::lb::process(frame, self.s.snap.load(), &mut self.local, now);
                self.local.redirected = false;
                match v {
                    Verdict::Forward { slot, .. } => {
                        c.forwarded.add(1);
                        c.slot(slot, len, false);
                        c.icmp_redirect_hits.add(1);
                        let _ = tx.buf.push(m); // room checked above
                    }
                    Verdict::Drop(DropReason::IcmpErrorNoFlow) => c.icmp_redirect_misses.add(1),
                    Verdict::Drop(r) => c.drops[r as usize].add(1),
                    _ => {}
                }
            }
        }
    }

    /// Moves the fragments released from the hold area into the TX buffer, while it has
    /// room (every loop, so they follow the frame that released them).
    fn take_released(&mut self, tx: &mut Tx) {
        let (c, pool) = (&self.s.counters, &self.s.pool);
        self.local.frags.take_ready(|f| {
            if tx.buf.is_full() {
                return false;
            }
            // A frame that finds no mbuf is dropped (rx_nombuf-like), not retried.
            if let Some(m) = Mbuf::from_bytes(pool, f) {
                if tx.buf.push(m).is_ok() {
                    c.forwarded.add(1);
                }
            }
            true
        });
    }

    /// Moves frames the manager and the kernel queued (worker 0) into the TX buffer, and
    /// looks up the ICMP errors the other workers handed over, while it has room: when
    /// the RX queue is empty, and every [`BUSY_SWEEP_EVERY`] bursts under load.
    fn take_queued(&mut self, tx: &mut Tx, now: Tick) {
        if !self.s.peers_in.is_empty() {
            self.take_redirects(tx, now);
        }
        let c = &self.s.counters;
        if let Some(ctrl) = self.s.ctrl.as_mut() {
            while !tx.buf.is_full() {
                let Some(f) = ctrl.pop() else { break };
                if let Some(m) = Mbuf::from_bytes(&self.s.pool, &f.data[..usize::from(f.len)]) {
                    if tx.buf.push(m).is_ok() {
                        c.ctrl_tx.add(1);
                    }
                }
            }
        }
        if let Some(k) = self.s.from_kernel.as_mut() {
            while !tx.buf.is_full() {
                let Some(m) = k.pop() else { break };
                if tx.buf.push(m).is_ok() {
                    c.from_kernel.add(1);
                }
            }
        }
    }
}

/// Counts a verdict of the full path, queues a learned neighbour for the manager, and
/// says what becomes of the frame. (The fast path's hits are counted once a run.)
#[inline(always)]
fn account(
    c: &WorkerCounters,
    learned_q: &mut spsc::Producer<Neighbor>,
    v: Verdict,
    len: u64,
) -> Then {
    let learned = match v {
        Verdict::Forward { slot, new_flow } => {
            c.forwarded.add(1);
            if new_flow {
                c.new_flows.add(1);
            }
            c.slot(slot, len, new_flow);
            return Then::Transmit;
        }
        Verdict::Drop(r) => {
            c.drops[r as usize].add(1);
            return Then::Free;
        }
        Verdict::IcmpReply => {
            c.icmp_replies.add(1);
            return Then::Transmit;
        }
        Verdict::FragmentHeld => {
            c.fragments_held.add(1);
            return Then::Free; // its bytes are in the hold area
        }
        Verdict::IcmpRedirect => {
            c.icmp_errors_redirected.add(1);
            return Then::Redirect;
        }
        Verdict::ArpReply { learned } => {
            c.arp_replies.add(1);
            learned
        }
        Verdict::ArpLearned(nb) => {
            c.arp_learned.add(1);
            Some(nb)
        }
        Verdict::Kernel { learned } => learned,
    };
    if let Some(nb) = learned {
        if learned_q.push(nb).is_err() {
            c.learn_overflow.add(1);
        }
    }
    match v {
        Verdict::ArpReply { .. } => Then::Transmit,
        Verdict::Kernel { .. } => Then::Kernel,
        _ => Then::Free,
    }
}

/// Hands frame `i` to the kernel queue, within the rate; else it is freed with the burst
/// and counted.
#[inline]
fn to_kernel(
    c: &WorkerCounters,
    q: Option<&mut spsc::Producer<Mbuf>>,
    bucket: &mut TokenBucket,
    (burst, i): (&mut RxBurst, usize),
    tsc: u64,
) {
    let Some(q) = q else {
        // Without a kernel interface the pipeline never says Kernel.
        c.drops[DropReason::KernelQueueFull as usize].add(1);
        return;
    };
    if !bucket.allow(tsc) {
        c.drops[DropReason::KernelRateLimited as usize].add(1);
    } else if q.push(burst.take(i)).is_err() {
        c.drops[DropReason::KernelQueueFull as usize].add(1); // the mbuf was freed
    } else {
        c.to_kernel.add(1);
    }
}

/// [`forward_hits`]' `on_hit` in the worker: a hit's packet and bytes to its backend's
/// slot (the worker's own deltas, published once a tick), a SYN routed by hash also as
/// its backend's new connection and in `new_flows`.
#[inline(always)]
fn count_hit<'a>(
    deltas: &'a mut SlotDeltas,
    slots: Slots<'a>,
    new_flows: &'a mut u64,
) -> impl FnMut(u16, usize, bool) + 'a {
    move |slot, len, new| {
        deltas.count(slot, len);
        if new {
            slots.new_conn(slot);
        }
        *new_flows += u64::from(new);
    }
}

impl Worker {
    /// Forwards the `n` frames of `got` (with their stage-1 hashes): runs of fast hits in
    /// one loop ([`forward_hits`]), and each frame a run stops at by the full path, after
    /// which the next run starts ([`Worker::forward_rest`]); true if it flushed the TX
    /// buffer. Out of line: the loops' registers are allocated apart from the polling
    /// loop's state (1.9 instructions a packet fewer, `perf/README.md`).
    #[inline(never)]
    fn forward_burst(
        &mut self,
        got: &mut Received,
        n: usize,
        tx: &mut Tx,
        (now, tsc): (Tick, u64),
    ) -> bool {
        let c = &self.s.counters;
        // The hashes, then AHEAD more that `forward_hits` prefetches ahead of its frames.
        let (burst, hashes) = (&mut got.burst, &got.hashes[..n + AHEAD]);
        let mut flushed = false;
        let snap = self.s.snap.load();
        // The flow-table state of the whole burst in flight at once (each frame's first
        // group line since `recv_each`): a table bigger than the cache costs one miss per
        // packet if they are taken one by one. The burst's first run of fast
        // hits (and SYNs routed by hash under a flood) in one loop (a frame in more than
        // one segment shows as empty, fails `fast_key` and stops a run); the rest, if it
        // stopped, in `forward_rest`, apart: its loop carries the runs' state, which
        // took registers from this run's hits (2-4 instructions a hit, callgrind).
        let (mut new_flows, mut cur) = (0, Cursor::default());
        let hits = forward_hits(
            burst.whole_frames_mut(),
            hashes,
            &mut cur,
            snap,
            &mut self.local,
            now,
            count_hit(&mut self.deltas, c.slots.slots(), &mut new_flows),
        );
        if new_flows > 0 {
            c.new_flows.add(new_flows);
        }
        if tx.buf.room() < hits {
            tx.flush(&mut self.s.tx, c);
            flushed = true;
        }
        burst.send_run(0, hits, &mut tx.buf);
        c.forwarded.add(hits as u64);
        if hits < n {
            flushed |= self.forward_rest(got, n, cur, tx, (now, tsc));
        }
        flushed
    }

    /// The rest of [`Worker::forward_burst`]'s burst from the frame its first run of fast
    /// hits stopped at (`cur.at`): that frame by the full path with its hint, then the
    /// next run of fast hits from the frame after it, and so on, in the burst's order;
    /// true if it flushed the TX buffer. (A run, its flush and its send are written out
    /// here as in `forward_burst`, each function with its own inlined copy of the loop:
    /// the copy there is the one the all-hits burst runs, with no run state around it.)
    #[inline(never)]
    fn forward_rest(
        &mut self,
        got: &mut Received,
        n: usize,
        mut cur: Cursor,
        tx: &mut Tx,
        (now, tsc): (Tick, u64),
    ) -> bool {
        let c = &self.s.counters;
        let (burst, padded) = (&mut got.burst, &got.hashes[..n + AHEAD]);
        let hashes = &padded[..n];
        let mut flushed = false;
        let snap = self.s.snap.load();
        let mut new_flows = 0;
        while let Some(&h) = hashes.get(cur.at) {
            let i = cur.at;
            cur.skip();
            let (data, whole) = burst.frame_mut(i);
            let len = data.len() as u64;
            // A frame in more than one mbuf is longer than the mbufs, which hold a whole
            // frame of the MTU (only net_pcap chains them).
            let v = if whole {
                let hint = hint(data, h, snap, &self.local);
                process_hinted(data, snap, &mut self.local, now, &hint)
            } else {
                Verdict::Drop(crate::lb::DropReason::Oversize)
            };
            match account(c, &mut self.s.learned, v, len) {
                Then::Transmit => {
                    if tx.buf.is_full() {
                        tx.flush(&mut self.s.tx, c);
                        flushed = true;
                    }
                    burst.send(i, &mut tx.buf);
                }
                Then::Free => {}
                Then::Kernel => {
                    to_kernel(c, self.s.to_kernel.as_mut(), &mut self.bucket, (burst, i), tsc)
                }
                Then::Redirect => {
                    let (frame, _) = burst.frame_mut(i);
                    for p in self.s.peers_out.iter_mut() {
                        let sent = Mbuf::from_bytes(&self.s.pool, frame)
                            .is_some_and(|m| p.push(m).is_ok());
                        if !sent {
                            c.icmp_redirect_lost.add(1); // queue or pool full
                        }
                    }
                }
            }
            let hits = forward_hits(
                burst.whole_frames_mut_again(),
                padded,
                &mut cur,
                snap,
                &mut self.local,
                now,
                count_hit(&mut self.deltas, c.slots.slots(), &mut new_flows),
            );
            if tx.buf.room() < hits {
                tx.flush(&mut self.s.tx, c);
                flushed = true;
            }
            burst.send_run(cur.at - hits, hits, &mut tx.buf);
            c.forwarded.add(hits as u64);
        }
        if new_flows > 0 {
            c.new_flows.add(new_flows);
        }
        flushed
    }

    /// Runs until the stop flag is set; returns 0. (Out of line, so that it keeps its
    /// name in a profile: `perf/callgrind_worker.py` counts the worker's functions.)
    #[inline(never)]
    pub fn run(mut self) -> i32 {
        let c = self.s.counters.clone();
        let clock = self.s.clock;
        let drain_tsc = (clock.tsc_hz / 10_000).max(1); // ~100 µs, as l3fwd's BURST_TX_DRAIN_US
        let mut got = Received { burst: RxBurst::default(), hashes: [0; BURST + AHEAD] };
        let mut dump = (0usize, 0u64);
        let mut census = Census { live: 0 };
        // The latency histogram is allocated once here; recording never allocates.
        let mut tx = Tx {
            buf: TxBuffer::default(),
            sample: 0,
            latency: super::counters::latency_histogram(),
        };
        let mut backoff = super::idle::Backoff::new(self.s.idle);
        let mut last_flush = crate::dpdk::rdtsc();
        let mut last_stats_tick: Tick = 0;
        // The longest busy loop iteration (TSC cycles, from one iteration's start to the
        // next's after a burst): a stall there holds every frame waiting in the RX ring.
        let (mut busy_since, mut longest) = (0u64, 0u64);
        self.s.snap.online();
        while !self.s.stop.load(Ordering::Relaxed) {
            let tsc = crate::dpdk::rdtsc();
            if busy_since != 0 {
                longest = longest.max(tsc.wrapping_sub(busy_since));
                busy_since = 0;
            }
            let now = clock.tick(tsc);
            if self.local.frags.has_ready() {
                self.take_released(&mut tx);
            }
            // Stage 1 of the flow-table prefetch (the key's hash, its group line) as each
            // frame's mbuf header is read: one pass over the burst.
            let local = &self.local;
            let hashes = &mut got.hashes;
            let n = got.burst.recv_each(&mut self.s.rx, |i, f| hashes[i] = stage1(f, local));
            if n == 0 {
                c.idle_loops.add(1);
                self.take_queued(&mut tx, now);
                if !tx.buf.is_empty() && tsc.wrapping_sub(last_flush) > drain_tsc {
                    tx.flush(&mut self.s.tx, &c);
                    last_flush = tsc;
                }
                self.sweep(now, SWEEP_GROUPS, &mut census, &mut dump);
                if now != last_stats_tick {
                    last_stats_tick = now;
                    self.tick(now, &mut tx.latency);
                }
                self.s.snap.quiescent();
                if let Some(d) = backoff.empty() {
                    tx.flush(&mut self.s.tx, &c);
                    last_flush = tsc;
                    c.idle_sleeps.add(1);
                    self.s.snap.offline();
                    std::thread::sleep(d);
                    self.s.snap.online();
                }
                continue;
            }
            backoff.busy();
            busy_since = tsc;
            let busy = c.busy_loops.get() + 1;
            c.busy_loops.set(busy);
            c.rx.add(n as u64);
            let sample = if busy & (LATENCY_SAMPLE_EVERY - 1) == 0 && tx.sample == 0 {
                crate::dpdk::rdtsc()
            } else {
                0
            };
            if self.forward_burst(&mut got, n, &mut tx, (now, tsc)) {
                last_flush = tsc;
            }
            if sample != 0 && !tx.buf.is_empty() {
                tx.sample = sample;
            }
            got.burst.free_rest();
            // Keep expiry and the census moving under full load too (a group a burst on
            // average, eight every eighth burst: the call's own ~75 instructions were
            // most of a one-group sweep), the queued frames going out (every eighth
            // burst too: ~10 µs at full rate, where looking at three queues every
            // burst cost 0.2 instructions a packet), and the table's counters current
            // (once a tick).
            if busy & (BUSY_SWEEP_EVERY - 1) == 0 {
                self.sweep(now, BUSY_SWEEP_EVERY as usize, &mut census, &mut dump);
                self.take_queued(&mut tx, now);
            }
            if now != last_stats_tick {
                last_stats_tick = now;
                self.tick(now, &mut tx.latency);
            }
            // A short burst means the RX queue is drained: send now rather than hold the
            // frames for the drain timer (latency at partial load); under full load
            // bursts are full and the buffer goes out whole.
            if tx.buf.len() >= BURST || n < BURST {
                tx.flush(&mut self.s.tx, &c);
                last_flush = tsc;
            }
            self.s.snap.quiescent();
        }
        tx.flush(&mut self.s.tx, &c);
        c.longest_loop_ns.set(longest.saturating_mul(1_000_000_000) / clock.tsc_hz.max(1));
        self.tick(Tick::MAX, &mut tx.latency);
        while !c.publish_latency(&mut tx.latency) {
            std::hint::spin_loop();
        }
        self.s.snap.offline();
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The multiply gives the division's tick, or the next one within `Clock::tick`'s
    /// stated bound before a boundary, never an earlier one, and never goes back.
    #[test]
    fn clock_tick_is_the_division() {
        for hz in [2_000_000_000u64, 2_899_999_999, 3_600_000_007, 10, 1] {
            let start = 0xffff_ffff_0000_0000u64; // the TSC wraps below
            let c = Clock::new(start, hz);
            let t = (hz / u64::from(TICKS_PER_SEC)).max(2);
            let mut last = 0;
            for d in (0..40u64)
                .map(|k| k * t)
                .flat_map(|b| [b, b + 1, b + t / 2, b + t - 1])
                .chain([86_400 * hz, 30 * 86_400 * hz, 30 * 86_400 * hz + t - 1])
            {
                let got = c.tick(start.wrapping_add(d));
                let want = (d / t) as Tick;
                let early = ((u128::from(d) * u128::from(t)) >> 64) as u64 + 1;
                assert!(
                    got == want || (got == want + 1 && t - d % t <= early),
                    "hz {hz}, d {d}: {got} vs {want}"
                );
                assert!(got >= last, "hz {hz}, d {d}: went back");
                last = got;
            }
        }
    }
}
