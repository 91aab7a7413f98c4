//! The worker loop, shaped like DPDK's l3fwd:
//! - burst of 32 into an array on the stack; `if nb_rx == 0` do idle work and go on;
//! - prefetch every packet's headers, then its flow-table tag lines, then matching entries;
//! - one snapshot load per burst; a quiescent point once per loop iteration;
//! - TX buffer flushed when it holds a burst or when ~100 µs have passed; a partial
//!   `tx_burst` frees and counts the unsent tail;
//! - dropped and consumed frames freed in bulk once per burst.
//!
//! No allocation, no lock, no atomic read-modify-write on this path.
#![allow(unsafe_code)]

use super::counters::WorkerCounters;
use super::{CtrlFrame, DumpEntry};
use crate::dpdk::mbuf::{self, Mbuf};
use crate::dpdk::mempool::Mempool;
use crate::dpdk::port::{RxQueue, TxQueue};
use crate::lb::verdict::Neighbor;
use crate::lb::{
    prefetch_burst, process_hinted, Hint, LocalState, Snapshot, Tick, Verdict, TICKS_PER_SEC,
};
use crate::sync::{epoch, spsc};
use dpdk_sys::rte_mbuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub const BURST: usize = 32;
const TX_BUF: usize = 2 * BURST;
/// Flow-table groups swept per idle iteration.
const SWEEP_GROUPS: usize = 4;

pub struct Worker {
    pub index: usize,
    pub rx: RxQueue,
    pub tx: TxQueue,
    pub snap: epoch::Reader<Snapshot>,
    pub local: LocalState,
    pub counters: Arc<WorkerCounters>,
    pub learned: spsc::Producer<Neighbor>,
    /// Flow entries for `drlbadm -lnc`, on request.
    pub dump: spsc::Producer<DumpEntry>,
    /// Frames from the manager (worker 0 only).
    pub ctrl: Option<spsc::Consumer<CtrlFrame>>,
    pub pool: Arc<Mempool>,
    pub stop: Arc<AtomicBool>,
    /// TSC at start (shared by all workers, so flow ticks agree).
    pub start_tsc: u64,
    pub tsc_hz: u64,
    /// Fault injection (tests): panic once `rx` reaches this (u64::MAX: never).
    pub panic_after_rx: u64,
}

/// What one full sweep of the flow table counts: live flows per backend slot (active,
/// inactive) and live entries in all (including those of removed backends).
struct Census {
    slots: Box<[[u32; 2]]>,
    live: u64,
}

struct TxBuf {
    pkts: [*mut rte_mbuf; TX_BUF],
    len: usize,
    /// RX time (TSC) of a sampled burst whose frames are waiting in the buffer (0: none).
    sample: u64,
    /// Sampled time inside drlb, RX return to TX handover, in TSC cycles.
    latency: hdrhistogram::Histogram<u64>,
}

/// Every this many busy loops (a power of two), one burst's RX-to-TX time is sampled.
const LATENCY_SAMPLE_EVERY: u64 = 16;

impl TxBuf {
    #[inline(always)]
    fn flush(&mut self, tx: &mut TxQueue, c: &WorkerCounters) {
        if self.len == 0 {
            return;
        }
        let sent = tx.tx_burst(&mut self.pkts[..self.len]);
        if self.sample != 0 {
            // In range by construction (bounds below); an outlier beyond is dropped.
            let _ = self
                .latency
                .record(crate::dpdk::rdtsc().wrapping_sub(self.sample).max(1));
            self.sample = 0;
        }
        if sent < self.len {
            // SAFETY: the device took only the first `sent`; the rest are still ours.
            unsafe { mbuf::free_bulk(&mut self.pkts[sent..self.len]) };
            c.tx_dropped.add((self.len - sent) as u64);
        }
        c.tx.add(sent as u64);
        self.len = 0;
    }
}

impl Worker {
    /// Sweeps `groups` flow-table groups, counting live flows of present backends into
    /// `census`; at each wrap the census is published to the slot counters and reset.
    /// While a connection dump is in progress (`dump.0` groups left, for request id
    /// `dump.1`), live entries also go to the dump queue; the sweep waits while the
    /// queue lacks room for a whole step, so no entry is dropped.
    fn sweep(&mut self, now: Tick, groups: usize, census: &mut Census, dump: &mut (usize, u64)) {
        use std::sync::atomic::Ordering::{Acquire, Release};
        let req = self.counters.dump_request.load(Acquire);
        if dump.0 == 0 && req != dump.1 {
            *dump = (self.local.flows.capacity() / crate::lb::flow::WAYS, req);
        }
        let dumping = dump.0 > 0;
        if dumping && self.dump.room() < groups * crate::lb::flow::WAYS {
            return; // wait for the manager to drain the queue; nothing is dropped
        }
        let snap = self.snap.load();
        let q = &mut self.dump;
        let (_, wrapped) = self.local.flows.sweep_visit(now, groups, |e| {
            census.live += 1;
            if snap.backend(e.slot, e.incarnation).is_some() {
                census.slots[usize::from(e.slot)][usize::from(!e.state().is_active())] += 1;
            }
            if dumping {
                let _ = q.push(DumpEntry { flow: *e, now });
            }
        });
        if dumping {
            dump.0 = dump.0.saturating_sub(groups);
            if dump.0 == 0 {
                self.counters.dump_done.store(dump.1, Release);
            }
        }
        if wrapped {
            self.counters.flows.set(census.live);
            census.live = 0;
            for (c, s) in census.slots.iter_mut().zip(self.counters.slots.iter()) {
                s.active
                    .store(u64::from(c[0]), std::sync::atomic::Ordering::Relaxed);
                s.inactive
                    .store(u64::from(c[1]), std::sync::atomic::Ordering::Relaxed);
                *c = [0, 0];
            }
        }
    }

    /// Copies the flow table's and the flood state's counts to the shared counters and
    /// merges the latency samples (once a tick, busy or idle; the mutex is try-locked).
    fn publish(&self, c: &WorkerCounters, now: Tick, latency: &mut hdrhistogram::Histogram<u64>) {
        let (stats, flood) = (&self.local.flows.stats, &self.local.flood);
        c.flow_evictions.set(stats.evictions);
        c.flow_expired.set(stats.expired);
        c.syn_stateless.set(flood.stateless_syns);
        c.hashed_segments.set(flood.hashed_segments);
        c.flood_active.set(u64::from(flood.active(now)));
        c.publish_latency(latency);
    }

    /// Runs until the stop flag is set; returns 0.
    pub fn run(mut self) -> i32 {
        let c = self.counters.clone();
        let tick_tsc = (self.tsc_hz / u64::from(TICKS_PER_SEC)).max(1);
        let drain_tsc = (self.tsc_hz / 10_000).max(1); // ~100 µs, as l3fwd's BURST_TX_DRAIN_US
        let mut rx_pkts: [*mut rte_mbuf; BURST] = [std::ptr::null_mut(); BURST];
        let mut free: [*mut rte_mbuf; BURST] = [std::ptr::null_mut(); BURST];
        let mut hints: [Hint; BURST] = [None; BURST];
        // Flows per backend slot by state, counted by the incremental sweep (allocated
        // once here, before the loop).
        let mut dump = (0usize, 0u64);
        let mut census = Census {
            slots: vec![[0u32; 2]; crate::lb::snapshot::MAX_SLOTS].into_boxed_slice(),
            live: 0,
        };
        // The latency histogram is allocated once here; recording never allocates.
        let mut txb = TxBuf {
            pkts: [std::ptr::null_mut(); TX_BUF],
            len: 0,
            sample: 0,
            latency: super::counters::latency_histogram(),
        };
        let mut last_flush = crate::dpdk::rdtsc();
        let mut last_stats_tick: Tick = 0;
        self.snap.online();
        while !self.stop.load(Ordering::Relaxed) {
            let tsc = crate::dpdk::rdtsc();
            let now = (tsc.wrapping_sub(self.start_tsc) / tick_tsc) as Tick;
            if let Some(ctrl) = self.ctrl.as_mut() {
                while txb.len < TX_BUF {
                    let Some(f) = ctrl.pop() else { break };
                    if let Some(m) = Mbuf::from_bytes(&self.pool, &f.data[..usize::from(f.len)]) {
                        txb.pkts[txb.len] = m.into_raw();
                        txb.len += 1;
                        c.ctrl_tx.add(1);
                    }
                }
            }
            let n = self.rx.rx_burst(&mut rx_pkts);
            if n == 0 {
                c.idle_loops.add(1);
                if txb.len > 0 && tsc.wrapping_sub(last_flush) > drain_tsc {
                    txb.flush(&mut self.tx, &c);
                    last_flush = tsc;
                }
                self.sweep(now, SWEEP_GROUPS, &mut census, &mut dump);
                if now != last_stats_tick {
                    last_stats_tick = now;
                    self.publish(&c, now, &mut txb.latency);
                }
                self.snap.quiescent();
                continue;
            }
            let busy = c.busy_loops.get() + 1;
            c.busy_loops.set(busy);
            c.rx.add(n as u64);
            let sample = if busy & (LATENCY_SAMPLE_EVERY - 1) == 0 && txb.sample == 0 {
                crate::dpdk::rdtsc()
            } else {
                0
            };
            if c.rx.get() >= self.panic_after_rx && self.index == 0 {
                panic!("fault injection (DRLB_FAULT=worker_panic)");
            }
            let mut nfree = 0;
            {
                let snap = self.snap.load();
                c.generation.set(snap.generation);
                // Packet headers in, then the flow-table state of the whole burst in
                // flight at once (tag lines, then matching entries): a table bigger than
                // the cache costs one miss per packet if they are taken one by one.
                for &m in rx_pkts.iter().take(n) {
                    // SAFETY: a valid mbuf just received.
                    unsafe { mbuf::prefetch_data(m) };
                }
                // SAFETY: received mbufs owned by this worker; read-only use, and the
                // borrows end before the processing loop below writes to them.
                let frames = rx_pkts[..n].iter().map(|&m| unsafe { &*mbuf::data_mut(m) });
                prefetch_burst(frames, &self.local, &mut hints);
                // Process.
                for (&m, hint) in rx_pkts.iter().zip(hints.iter()).take(n) {
                    // SAFETY: `m` was just received and is owned by this worker; no other
                    // reference to its data exists.
                    let data = unsafe { mbuf::data_mut(m) };
                    let len = data.len() as u64;
                    let v = process_hinted(data, snap, &mut self.local, now, hint);
                    let transmit = match v {
                        Verdict::Forward { slot, new_flow } => {
                            c.forwarded.add(1);
                            if new_flow {
                                c.new_flows.add(1);
                            }
                            c.slot(slot, len, new_flow);
                            true
                        }
                        Verdict::ArpReply { learned } => {
                            c.arp_replies.add(1);
                            if let Some(nb) = learned {
                                if self.learned.push(nb).is_err() {
                                    c.learn_overflow.add(1);
                                }
                            }
                            true
                        }
                        Verdict::IcmpReply => {
                            c.icmp_replies.add(1);
                            true
                        }
                        Verdict::ArpLearned(nb) => {
                            c.arp_learned.add(1);
                            if self.learned.push(nb).is_err() {
                                c.learn_overflow.add(1);
                            }
                            false
                        }
                        Verdict::Drop(r) => {
                            c.drops[r as usize].add(1);
                            false
                        }
                    };
                    if transmit {
                        if txb.len == TX_BUF {
                            txb.flush(&mut self.tx, &c);
                            last_flush = tsc;
                        }
                        txb.pkts[txb.len] = m;
                        txb.len += 1;
                    } else {
                        free[nfree] = m;
                        nfree += 1;
                    }
                }
            }
            if sample != 0 && txb.len > 0 {
                txb.sample = sample;
            }
            // SAFETY: these mbufs are ours and not referenced any more.
            unsafe { mbuf::free_bulk(&mut free[..nfree]) };
            // Keep expiry and the census moving under full load too (one group a burst),
            // and the table's counters current (once a tick).
            self.sweep(now, 1, &mut census, &mut dump);
            if now != last_stats_tick {
                last_stats_tick = now;
                self.publish(&c, now, &mut txb.latency);
            }
            // A short burst means the RX queue is drained: send now rather than hold the
            // frames for the drain timer (latency at partial load); under full load
            // bursts are full and the buffer goes out whole.
            if txb.len >= BURST || n < BURST {
                txb.flush(&mut self.tx, &c);
                last_flush = tsc;
            }
            self.snap.quiescent();
        }
        txb.flush(&mut self.tx, &c);
        self.publish(&c, Tick::MAX, &mut txb.latency);
        while !c.publish_latency(&mut txb.latency) {
            std::hint::spin_loop();
        }
        self.snap.offline();
        0
    }
}
