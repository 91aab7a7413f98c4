//! Per-worker counters: single writer (the worker), read by the manager, the metrics
//! thread and DPDK's telemetry thread.
//!
//! Each counter is an `AtomicU64` updated with a relaxed load and a relaxed store (not a
//! read-modify-write: there is one writer), which compiles to a plain add on x86. A
//! reader may see a value a few packets old; it never sees a torn one.
//!
//! **One table for every counter.** [`worker_counters!`] below declares each counter
//! once: its field, its Prometheus name, kind and help text, and where else it is shown
//! (the final summary and `/drlb/stats`, `/drlb/workers`, the periodic stats line). The
//! struct, the sums ([`Totals`]), the Prometheus families, the telemetry fields, the
//! stats line and the summary are all generated from it: adding a counter is one line.
//! Drops have their own table, [`DropReason`] (`drop_reasons!`).
use crate::lb::snapshot::MAX_SLOTS;
use crate::lb::DropReason;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
#[repr(C, align(64))]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline(always)]
    pub fn add(&self, n: u64) {
        // One writer: a load and a store, not a read-modify-write (see the module docs).
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

/// Per-backend-slot counters (ipvsadm --stats: Conns, InPkts, InBytes; -L's
/// ActiveConn/InActConn are the flow table's exact counts, `lb::conns`).
#[derive(Default)]
pub struct SlotCounters {
    pub conns: AtomicU64,
    pub pkts: AtomicU64,
    pub bytes: AtomicU64,
}

impl SlotCounters {
    /// `pkts` packets of `bytes` bytes in all (one writer: loads and stores).
    #[inline(always)]
    fn add(&self, pkts: u64, bytes: u64) {
        self.pkts.store(self.pkts.load(Relaxed) + pkts, Relaxed);
        self.bytes.store(self.bytes.load(Relaxed) + bytes, Relaxed);
    }
}

/// One [`SlotCounters`] per backend slot: a fixed-size array, so that the hit loop's
/// count indexes it without a bounds check (a slot is below [`MAX_SLOTS`] by the
/// snapshot's construction). Reads as a slice.
pub struct SlotTable(Box<[SlotCounters; MAX_SLOTS]>);

impl Default for SlotTable {
    fn default() -> Self {
        let v: Vec<SlotCounters> = (0..MAX_SLOTS).map(|_| SlotCounters::default()).collect();
        SlotTable(v.into_boxed_slice().try_into().ok().expect("MAX_SLOTS counters"))
    }
}

impl SlotTable {
    /// The counters by reference, for a loop that counts many packets: the box's
    /// pointer is loaded once before the loop, not once a packet.
    #[inline(always)]
    pub fn slots(&self) -> Slots<'_> {
        Slots(&self.0)
    }
}

/// `slot`'s index in a per-slot array of [`MAX_SLOTS`]: the slot itself (a slot is below
/// `MAX_SLOTS` by the snapshot's construction), masked so the index needs no bounds check.
#[inline(always)]
fn at(slot: u16) -> usize {
    usize::from(slot) & (MAX_SLOTS - 1)
}

/// [`SlotTable`]'s array, borrowed.
#[derive(Clone, Copy)]
pub struct Slots<'a>(&'a [SlotCounters; MAX_SLOTS]);

impl Slots<'_> {
    /// One packet of `bytes` to the backend in `slot` (and a new connection if
    /// `new_flow`).
    #[inline(always)]
    pub fn count(self, slot: u16, bytes: u64, new_flow: bool) {
        self.0[at(slot)].add(1, bytes);
        if new_flow {
            self.new_conn(slot);
        }
    }

    /// A new connection to the backend in `slot` (its packets counted elsewhere).
    #[inline(always)]
    pub fn new_conn(self, slot: u16) {
        let s = &self.0[at(slot)];
        s.conns.store(s.conns.load(Relaxed) + 1, Relaxed);
    }
}

impl std::ops::Deref for SlotTable {
    type Target = [SlotCounters];
    fn deref(&self) -> &[SlotCounters] {
        &self.0[..]
    }
}

/// A worker's own count of the packets and bytes it forwarded to each backend slot since
/// it last published them ([`SlotDeltas::publish`], once a tick): one word a slot, the
/// packets in the high 32 bits and the bytes in the low 32, so a forwarded packet is one
/// add to one word (the shared counters' two loads and stores were ~5 % of the 1k-flow
/// rate, paired runs with and without them). 32 bits hold a tick's bytes to one slot
/// up to 40 GB/s (one core forwards a few) and its packets beyond any rate. The words
/// are in the worker itself, not behind a pointer (one load less a packet). (Two words
/// a slot, an increment and an add, were one instruction fewer and 3-5 % slower at 64k
/// flows, paired runs: a second line written per packet.)
pub struct SlotDeltas([u64; MAX_SLOTS]);

/// The packets half of a [`SlotDeltas`] word.
const PKT_ONE: u64 = 1 << 32;

impl Default for SlotDeltas {
    fn default() -> Self {
        SlotDeltas([0; MAX_SLOTS])
    }
}

impl SlotDeltas {
    /// One packet of `bytes` (below 2^32) to the backend in `slot`.
    #[inline(always)]
    pub fn count(&mut self, slot: u16, bytes: usize) {
        self.0[at(slot)] += PKT_ONE | bytes as u64;
    }

    /// Adds what was counted since the last call to the shared counters, and starts
    /// again from zero (a pass over the slots: ~4,000 words, once a tick).
    pub fn publish(&mut self, to: &SlotTable) {
        for (d, s) in self.0.iter_mut().zip(to.0.iter()) {
            if *d != 0 {
                s.add(*d >> 32, *d & (PKT_ONE - 1));
                *d = 0;
            }
        }
    }
}

/// Prometheus type of a counter row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (`_total` in the exposition).
    Counter,
    /// A level that can fall (flow-table entries, flood state).
    Gauge,
}

/// Where a row is shown besides Prometheus (every row is a metric family).
pub mod show {
    /// The final `counter NAME VALUE` summary and the `/drlb/stats` telemetry command.
    pub const SUMMARY: u8 = 1;
    /// One field per worker in the `/drlb/workers` telemetry command.
    pub const TELEMETRY: u8 = 2;
    pub const BOTH: u8 = SUMMARY | TELEMETRY;
}

/// One row of the counter table.
pub struct CounterDef {
    /// Field name: the summary and telemetry key.
    pub name: &'static str,
    /// Prometheus family name (`_total` is added for counters by the encoder).
    pub metric: &'static str,
    pub kind: Kind,
    /// [`show`] flags.
    pub show: u8,
    /// Key in the periodic stats line (`""`: not in it).
    pub stat: &'static str,
    pub help: &'static str,
    /// This row's value in one worker's counters.
    pub value: fn(&WorkerCounters) -> u64,
}

macro_rules! worker_counters {
    ($( $(#[doc = $doc:literal])+ $field:ident: $kind:ident, $metric:literal, $show:expr, $stat:literal; )*) => {
        /// One worker's counters (see the module docs for the table they come from).
        #[derive(Default)]
        #[repr(C, align(64))]
        pub struct WorkerCounters {
            $( $(#[doc = $doc])+ pub $field: Counter, )*
            /// Frames dropped, by [`DropReason`].
            pub drops: [Counter; DropReason::COUNT],
            /// Per backend slot.
            pub slots: SlotTable,
            /// Sampled RX-to-TX time inside the worker, TSC cycles; merged in by the
            /// worker about once a tick (never per packet), read by the manager.
            pub latency: parking_lot::Mutex<Option<hdrhistogram::Histogram<u64>>>,
            /// Connection dump (`drlbadm -lnc`): the manager stores a new id in
            /// `dump_request`; the worker streams the live entries of one full sweep to
            /// its dump queue, then stores the id in `dump_done` (release: every entry
            /// pushed before it is visible).
            pub dump_request: AtomicU64,
            pub dump_done: AtomicU64,
        }

        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy)]
        enum Row { $($field,)* }

        /// The counter fields, in declaration order.
        pub const FIELDS: &[CounterDef] = &[$(
            CounterDef {
                name: stringify!($field),
                metric: $metric,
                kind: Kind::$kind,
                show: $show,
                stat: $stat,
                help: concat!($($doc),+),
                value: |w| w.$field.get(),
            },
        )*];

        impl Totals {
            $(
                $(#[doc = $doc])+
                pub fn $field(&self) -> u64 {
                    self.values[Row::$field as usize]
                }
            )*
        }
    };
}

// field: kind, Prometheus name, shown in, stats-line key; the doc line is the help text.
worker_counters! {
    /// Frames received
    rx: Counter, "drlb_rx_packets", show::BOTH, "rx";
    /// Frames forwarded to a real server
    forwarded: Counter, "drlb_forwarded_packets", show::BOTH, "fwd";
    /// New connections scheduled to a real server
    new_flows: Counter, "drlb_new_flows", show::BOTH, "new_flows";
    /// ARP requests for a VIP or the director IP answered
    arp_replies: Counter, "drlb_arp_replies", show::SUMMARY, "";
    /// ICMP echo requests to a VIP or the director IP answered
    icmp_replies: Counter, "drlb_icmp_replies", show::SUMMARY, "";
    /// ARP frames from real servers whose MAC was learned
    arp_learned: Counter, "drlb_arp_learned", show::SUMMARY, "";
    /// Frames transmitted
    tx: Counter, "drlb_tx_packets", show::BOTH, "tx";
    /// Frames the TX queue refused (freed and counted, never leaked)
    tx_dropped: Counter, "drlb_tx_dropped_packets", show::BOTH, "tx_drop";
    /// Frames from the control plane (ARP requests, gratuitous ARP) sent by the worker
    ctrl_tx: Counter, "drlb_control_tx_packets", show::SUMMARY, "";
    /// Frames for the director itself handed to the kernel interface
    to_kernel: Counter, "drlb_to_kernel_packets", show::BOTH, "kernel_in";
    /// Frames the kernel sent, transmitted on the port (worker 0)
    from_kernel: Counter, "drlb_from_kernel_packets", show::BOTH, "kernel_out";
    /// Learned neighbours the manager's queue had no room for
    learn_overflow: Counter, "drlb_learn_overflow", show::SUMMARY, "";
    /// Worker loop iterations that received nothing
    idle_loops: Counter, "drlb_idle_loops", show::TELEMETRY, "";
    /// Sleeps of an idle worker (dataplane.idle = adaptive)
    idle_sleeps: Counter, "drlb_idle_sleeps", show::BOTH, "";
    /// Worker loop iterations that received a burst
    busy_loops: Counter, "drlb_busy_loops", show::TELEMETRY, "";
    /// Live flows evicted from a full flow table
    flow_evictions: Counter, "drlb_flow_evictions", show::BOTH, "";
    /// Flows expired by the sweep
    flow_expired: Counter, "drlb_flow_expired", show::BOTH, "";
    /// SYNs forwarded by hash without a flow entry: their flow-table groups were full (syn_flood = stateless)
    syn_stateless: Counter, "drlb_syn_stateless", show::BOTH, "";
    /// TCP segments without a flow entry routed by hash while under SYN-flood pressure (handshake ACKs)
    hashed_segments: Counter, "drlb_hashed_segments", show::BOTH, "";
    /// TCP segments without SYN and without a flow entry scheduled and stored (mid_flow = schedule: the flow began on another director)
    mid_flow_scheduled: Counter, "drlb_mid_flow_scheduled", show::BOTH, "";
    /// ICMP errors about a flow with no entry on this worker, copied to the other workers (one of them may own it)
    icmp_errors_redirected: Counter, "drlb_icmp_errors_redirected", show::BOTH, "";
    /// ICMP errors handed over by another worker and forwarded here (this worker owned the flow)
    icmp_redirect_hits: Counter, "drlb_icmp_redirect_hits", show::BOTH, "";
    /// ICMP errors handed over by another worker whose flow has no entry here either (counted by every worker that looked)
    icmp_redirect_misses: Counter, "drlb_icmp_redirect_misses", show::BOTH, "";
    /// Copies of ICMP errors not handed over: the other worker's queue or the mbuf pool was full
    icmp_redirect_lost: Counter, "drlb_icmp_redirect_lost", show::BOTH, "";
    /// First fragments forwarded (each remembered, so its datagram's later fragments follow it)
    fragments_first: Counter, "drlb_fragments_first", show::BOTH, "";
    /// Later fragments forwarded on arrival to their first fragment's server
    fragments_followed: Counter, "drlb_fragments_followed", show::BOTH, "";
    /// Fragments that came before their first fragment and were held (copied)
    fragments_held: Counter, "drlb_fragments_held", show::BOTH, "";
    /// Held fragments released to their first fragment's server when it came (forwarded)
    fragments_released: Counter, "drlb_fragments_released", show::BOTH, "";
    /// Datagram entries that took the place of a live one (the fragment table's bucket was full)
    fragment_evictions: Counter, "drlb_fragment_evictions", show::BOTH, "";
    /// Persistence templates created (a client of a persistent service without a live template connected)
    templates_created: Counter, "drlb_persistence_templates_created", show::BOTH, "";
    /// Persistence templates that took the place of another client's live one (the template table's bucket was full)
    template_evictions: Counter, "drlb_persistence_template_evictions", show::BOTH, "";
    /// Persistence templates not stored because another worker was writing the same entry (the client's next connection stores it)
    template_busy: Counter, "drlb_persistence_template_busy", show::BOTH, "";
    /// 1 while the worker is under SYN-flood pressure (a SYN found its flow-table groups full within the SYN_RECV timeout)
    syn_flood_active: Gauge, "drlb_syn_flood_active", show::TELEMETRY, "";
    /// Live flow-table entries per worker (as of the last full sweep)
    flows: Gauge, "drlb_flow_entries", show::TELEMETRY, "";
    /// Generation of the snapshot the worker forwards with (as of its last tick)
    generation: Gauge, "drlb_worker_generation", show::TELEMETRY, "";
    /// Longest worker loop iteration that received a burst, in ns, set when the worker stops (a stall there holds every frame in the RX ring); the summary shows the longest of all workers
    longest_loop_ns: Gauge, "drlb_longest_loop_ns", show::SUMMARY, "";
}

/// Rows computed from other counters.
pub const DERIVED: &[CounterDef] = &[
    CounterDef {
        name: "replied",
        metric: "drlb_replied_packets",
        kind: Kind::Counter,
        show: show::TELEMETRY,
        stat: "replies",
        help: " ARP and ICMP echo replies sent",
        value: |w| w.arp_replies.get() + w.icmp_replies.get(),
    },
    CounterDef {
        name: "dropped",
        // Prometheus has the drops by reason instead (drlb_dropped_packets{reason}).
        metric: "",
        kind: Kind::Counter,
        show: show::BOTH,
        stat: "drop",
        help: " Frames dropped, all reasons",
        value: |w| w.drops.iter().map(Counter::get).sum(),
    },
];

/// Every row: the fields, then the derived rows.
pub fn table() -> impl Iterator<Item = &'static CounterDef> {
    FIELDS.iter().chain(DERIVED)
}

impl CounterDef {
    /// The help text without the doc comment's leading space.
    pub fn help(&self) -> &'static str {
        self.help.trim()
    }
}

impl WorkerCounters {
    pub fn new() -> Self {
        WorkerCounters {
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
        self.slots.slots().count(slot, bytes, new_flow);
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

/// Rows whose total is the largest worker's value, not the sum (a longest time).
const MAX_ROWS: &[&str] = &["longest_loop_ns"];

/// The sum over workers of every row of the table (the largest value for [`MAX_ROWS`]),
/// and of every drop reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Indexed like [`table`]: the fields, then the derived rows.
    values: Vec<u64>,
    pub drops: Vec<(DropReason, u64)>,
}

impl Totals {
    pub fn sum(ws: &[std::sync::Arc<WorkerCounters>]) -> Totals {
        let rows: Vec<&CounterDef> = table().collect();
        let mut values = vec![0; rows.len()];
        // Last row first, `rx` (the first) last: rx is bumped before a burst is
        // processed, so reading it last keeps rx >= forwarded + replies + drops in a
        // live reading.
        for (i, d) in rows.iter().enumerate().rev() {
            let per_worker = ws.iter().map(|w| (d.value)(w));
            values[i] = if MAX_ROWS.contains(&d.name) {
                per_worker.max().unwrap_or(0)
            } else {
                per_worker.sum()
            };
        }
        let drops = DropReason::ALL
            .iter()
            .map(|&r| (r, ws.iter().map(|w| w.drops[r as usize].get()).sum()))
            .collect();
        Totals { values, drops }
    }

    /// The value of a derived row (see [`DERIVED`]).
    fn derived(&self, name: &str) -> u64 {
        let i = DERIVED.iter().position(|d| d.name == name).expect("a derived row");
        self.values.get(FIELDS.len() + i).copied().unwrap_or(0)
    }

    /// Frames dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.derived("dropped")
    }

    /// `name value` lines, the final summary format (stable: tests parse it): every
    /// [`show::SUMMARY`] row, then `drop_REASON` for every drop reason.
    pub fn lines(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = table()
            .zip(&self.values)
            .filter(|(d, _)| d.show & show::SUMMARY != 0)
            .map(|(d, &n)| (d.name.to_string(), n))
            .collect();
        v.extend(self.drops.iter().map(|(r, n)| (format!("drop_{}", r.name()), *n)));
        v
    }

    /// `key=value` pairs of the periodic stats line, in table order.
    pub fn stats_fields(&self) -> String {
        table()
            .zip(&self.values)
            .filter(|(d, _)| !d.stat.is_empty())
            .map(|(d, n)| format!("{}={n}", d.stat))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The deltas add up to what counting each packet in the shared table gives, reach
    /// it only when published, and start again from zero.
    #[test]
    fn slot_deltas_publish_what_count_would() {
        let (direct, shared) = (SlotTable::default(), SlotTable::default());
        let mut d = SlotDeltas::default();
        let packets = [(0u16, 60usize), (3, 1514), (0, 64), (4095, 9000), (3, 60), (0, 65535)];
        for round in 0..3 {
            for &(slot, len) in &packets {
                direct.slots().count(slot, len as u64, false);
                d.count(slot, len);
            }
            assert_eq!(shared[0].pkts.load(Relaxed), 3 * round, "nothing before a publish");
            d.publish(&shared);
            for slot in [0, 3, 4095, 7] {
                let (a, b) = (&direct[slot], &shared[slot]);
                assert_eq!(
                    (a.pkts.load(Relaxed), a.bytes.load(Relaxed), b.conns.load(Relaxed)),
                    (b.pkts.load(Relaxed), b.bytes.load(Relaxed), 0),
                    "slot {slot}, round {round}"
                );
            }
        }
        assert_eq!((shared[0].pkts.load(Relaxed), shared[0].bytes.load(Relaxed)), (9, 3 * 65659));
        // A tick's worth of bytes far beyond any one core's rate stays in its half.
        d.count(1, (1 << 32) - 1);
        d.count(1, 0);
        d.publish(&shared);
        assert_eq!(
            (shared[1].pkts.load(Relaxed), shared[1].bytes.load(Relaxed)),
            (2, (1 << 32) - 1)
        );
    }

    #[test]
    fn every_row_has_a_unique_name_metric_and_help() {
        let mut names: Vec<_> = table().map(|d| d.name).collect();
        let mut metrics: Vec<_> = table().map(|d| d.metric).filter(|m| !m.is_empty()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate counter name");
        let m = metrics.len();
        metrics.sort();
        metrics.dedup();
        assert_eq!(metrics.len(), m, "duplicate metric name");
        for d in table() {
            assert!(!d.help().is_empty(), "{} has no help text", d.name);
            assert!(d.metric.is_empty() || d.metric.starts_with("drlb_"), "{}", d.metric);
        }
    }

    #[test]
    fn totals_sum_workers_and_name_every_summary_row() {
        let ws: Vec<Arc<WorkerCounters>> =
            (0..2).map(|_| Arc::new(WorkerCounters::new())).collect();
        ws[0].rx.add(10);
        ws[1].rx.add(5);
        ws[0].arp_replies.add(2);
        ws[1].icmp_replies.add(3);
        ws[1].drops[DropReason::NoService as usize].add(4);
        let t = Totals::sum(&ws);
        assert_eq!(t.rx(), 15);
        assert_eq!(t.dropped(), 4);
        let lines: std::collections::HashMap<String, u64> = t.lines().into_iter().collect();
        assert_eq!(lines["rx"], 15);
        assert_eq!(lines["dropped"], 4);
        assert_eq!(lines["drop_no_service"], 4);
        assert!(!lines.contains_key("idle_loops"), "not a summary row");
        let stats = t.stats_fields();
        assert!(
            stats.contains("rx=15") && stats.contains("replies=5") && stats.contains("drop=4"),
            "{stats}"
        );
    }
}
