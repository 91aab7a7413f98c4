//! Per-worker counters: single writer (the worker), read by the manager.
//!
//! Each counter is an `AtomicU64` updated with a relaxed load and a relaxed store (not a
//! read-modify-write: there is one writer), which compiles to a plain add on x86. The
//! reader may see a value a few packets old; it never sees a torn one.
use crate::lb::snapshot::MAX_SLOTS;
use crate::lb::DropReason;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
#[repr(C, align(64))]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    #[inline(always)]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Per-backend-slot counters (ipvsadm --stats: Conns, InPkts, InBytes; and -L's
/// ActiveConn/InActConn as of the worker's last full census of its flow table).
#[derive(Default)]
pub struct SlotCounters {
    pub conns: AtomicU64,
    pub pkts: AtomicU64,
    pub bytes: AtomicU64,
    pub active: AtomicU64,
    pub inactive: AtomicU64,
}

#[derive(Default)]
#[repr(C, align(64))]
pub struct WorkerCounters {
    pub rx: Counter,
    pub tx: Counter,
    /// Frames the TX queue refused (freed and counted, never leaked).
    pub tx_dropped: Counter,
    pub forwarded: Counter,
    pub new_flows: Counter,
    pub arp_replies: Counter,
    pub icmp_replies: Counter,
    pub arp_learned: Counter,
    /// Learned neighbours the manager's queue had no room for.
    pub learn_overflow: Counter,
    pub ctrl_tx: Counter,
    pub idle_loops: Counter,
    pub busy_loops: Counter,
    pub flow_evictions: Counter,
    pub flow_expired: Counter,
    /// `syn_flood = "stateless"`: SYNs forwarded without a table entry, segments without
    /// an entry routed by hash, and whether the worker is under pressure now (0/1).
    pub syn_stateless: Counter,
    pub hashed_segments: Counter,
    pub flood_active: Counter,
    /// Live flow entries at the end of the last full sweep of the table (a gauge).
    pub flows: Counter,
    pub generation: Counter,
    /// Connection dump (`drlbadm -lnc`): the manager stores a new id in `dump_request`;
    /// the worker streams the live entries of one full sweep to its dump queue, then
    /// stores the id in `dump_done` (release: every entry pushed before it is visible).
    pub dump_request: AtomicU64,
    pub dump_done: AtomicU64,
    pub drops: [Counter; DropReason::COUNT],
    pub slots: Box<[SlotCounters]>,
    /// Sampled RX-to-TX time inside the worker, TSC cycles; merged in by the worker
    /// about once a tick (never per packet), read by the manager.
    pub latency: parking_lot::Mutex<Option<hdrhistogram::Histogram<u64>>>,
}

impl WorkerCounters {
    pub fn new() -> Self {
        WorkerCounters {
            slots: (0..MAX_SLOTS).map(|_| SlotCounters::default()).collect(),
            latency: parking_lot::Mutex::new(Some(latency_histogram())),
            ..Default::default()
        }
    }

    /// Moves the worker's local samples into the shared histogram, unless the manager
    /// holds it right now (then they stay local until the next try). True when merged.
    pub fn publish_latency(&self, local: &mut hdrhistogram::Histogram<u64>) -> bool {
        if local.is_empty() {
            return true;
        }
        let Some(mut g) = self.latency.try_lock() else {
            return false;
        };
        match g.as_mut() {
            Some(h) => {
                let _ = h.add(&*local);
            }
            None => *g = Some(local.clone()),
        }
        local.reset();
        true
    }

    #[inline(always)]
    pub fn slot(&self, slot: u16, bytes: u64, new_flow: bool) {
        let s = &self.slots[usize::from(slot)];
        s.pkts.store(s.pkts.load(Relaxed) + 1, Relaxed);
        s.bytes.store(s.bytes.load(Relaxed) + bytes, Relaxed);
        if new_flow {
            s.conns.store(s.conns.load(Relaxed) + 1, Relaxed);
        }
    }
}

/// A histogram of TSC cycles, 1 to 2^35 (~10 s at 3.4 GHz), 3 significant digits.
pub fn latency_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 1 << 35, 3).expect("static histogram bounds")
}

/// Latency percentiles over all workers' samples, in ns: (name, value) lines
/// `latency_samples`, `latency_p50_ns`, `_p90_`, `_p99_`, `_p999_`, `latency_max_ns`.
pub fn latency_summary(ws: &[std::sync::Arc<WorkerCounters>], tsc_hz: u64) -> Vec<(String, u64)> {
    let mut all = latency_histogram();
    for w in ws {
        if let Some(h) = w.latency.lock().as_ref() {
            let _ = all.add(h);
        }
    }
    let ns = |cycles: u64| (cycles as u128 * 1_000_000_000 / u128::from(tsc_hz.max(1))) as u64;
    let mut v = vec![("latency_samples".to_string(), all.len())];
    if !all.is_empty() {
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            v.push((format!("latency_{name}_ns"), ns(all.value_at_quantile(q))));
        }
        v.push(("latency_max_ns".into(), ns(all.max())));
    }
    v
}

/// The sum over workers, as the manager reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub rx: u64,
    pub tx: u64,
    pub tx_dropped: u64,
    pub forwarded: u64,
    pub new_flows: u64,
    pub arp_replies: u64,
    pub icmp_replies: u64,
    pub arp_learned: u64,
    pub learn_overflow: u64,
    pub ctrl_tx: u64,
    pub idle_loops: u64,
    pub busy_loops: u64,
    pub flow_evictions: u64,
    pub flow_expired: u64,
    pub syn_stateless: u64,
    pub hashed_segments: u64,
    pub drops: Vec<(DropReason, u64)>,
}

impl Totals {
    pub fn sum(ws: &[std::sync::Arc<WorkerCounters>]) -> Totals {
        let s = |f: fn(&WorkerCounters) -> &Counter| ws.iter().map(|w| f(w).get()).sum::<u64>();
        // Verdict counters first, rx last: rx is bumped before a burst is processed, so
        // reading it last keeps rx >= forwarded + replies + drops in a live reading.
        let mut t = Totals {
            rx: 0,
            tx: s(|w| &w.tx),
            tx_dropped: s(|w| &w.tx_dropped),
            forwarded: s(|w| &w.forwarded),
            new_flows: s(|w| &w.new_flows),
            arp_replies: s(|w| &w.arp_replies),
            icmp_replies: s(|w| &w.icmp_replies),
            arp_learned: s(|w| &w.arp_learned),
            learn_overflow: s(|w| &w.learn_overflow),
            ctrl_tx: s(|w| &w.ctrl_tx),
            idle_loops: s(|w| &w.idle_loops),
            busy_loops: s(|w| &w.busy_loops),
            flow_evictions: s(|w| &w.flow_evictions),
            flow_expired: s(|w| &w.flow_expired),
            syn_stateless: s(|w| &w.syn_stateless),
            hashed_segments: s(|w| &w.hashed_segments),
            drops: DropReason::ALL
                .iter()
                .map(|&r| (r, ws.iter().map(|w| w.drops[r as usize].get()).sum()))
                .collect(),
        };
        t.rx = s(|w| &w.rx);
        t
    }

    pub fn dropped(&self) -> u64 {
        self.drops.iter().map(|d| d.1).sum()
    }

    /// `name value` lines, the final summary format (stable: tests parse it).
    pub fn lines(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = vec![
            ("rx".into(), self.rx),
            ("forwarded".into(), self.forwarded),
            ("new_flows".into(), self.new_flows),
            ("arp_replies".into(), self.arp_replies),
            ("icmp_replies".into(), self.icmp_replies),
            ("arp_learned".into(), self.arp_learned),
            ("dropped".into(), self.dropped()),
            ("tx".into(), self.tx),
            ("tx_dropped".into(), self.tx_dropped),
            ("ctrl_tx".into(), self.ctrl_tx),
            ("learn_overflow".into(), self.learn_overflow),
            ("flow_evictions".into(), self.flow_evictions),
            ("flow_expired".into(), self.flow_expired),
            ("syn_stateless".into(), self.syn_stateless),
            ("hashed_segments".into(), self.hashed_segments),
        ];
        v.extend(
            self.drops
                .iter()
                .map(|(r, n)| (format!("drop_{}", r.name()), *n)),
        );
        v
    }
}
