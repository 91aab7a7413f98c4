//! Pure balancing logic: no DPDK, no threads, no allocation on the per-packet path.
//!
//! - [`snapshot`]: the immutable forwarding state workers read (services, backends with
//!   their precomputed 12-byte L2 header, schedules), built by the control plane.
//! - [`sched`]: WRR / RR schedules, precomputed as sequences so a pick is O(1).
//! - [`maglev`]: the `mh` scheduler's table, the same on every director.
//! - [`flow`]: the per-worker flow table (fixed capacity, seeded hash, bounded probing).
//! - [`tcp_state`]: IPVS's input-only TCP state table (DR sees client->server only).
//! - [`pipeline`]: `process(frame, &snapshot, &mut local, now) -> Verdict`.
pub mod flow;
pub mod maglev;
pub mod pipeline;
pub mod sched;
pub mod snapshot;
pub mod tcp_state;
pub mod verdict;

pub use pipeline::{peek_key, prefetch_burst, process, process_hinted, Hint, LocalState};
pub use snapshot::Snapshot;
pub use verdict::{DropReason, Verdict};

/// Coarse time for flow expiry: tenths of a second since the worker started.
pub type Tick = u32;
pub const TICKS_PER_SEC: u32 = 10;

/// L4 protocol of a service.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => crate::wire::ipv4::protocol::TCP,
            Proto::Udp => crate::wire::ipv4::protocol::UDP,
        }
    }
    /// ipvsadm's spelling in listings.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        }
    }
}

/// Scheduler of a service (ipvsadm `-s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedKind {
    #[default]
    Wrr,
    Rr,
    /// Maglev hashing ([`maglev`]): the same choice on every director.
    Mh,
}

impl SchedKind {
    pub fn name(self) -> &'static str {
        match self {
            SchedKind::Wrr => "wrr",
            SchedKind::Rr => "rr",
            SchedKind::Mh => "mh",
        }
    }
}

/// What a TCP segment that is not a SYN and has no flow entry does (`mid_flow`): the
/// flow began elsewhere (on another director that ECMP moved it from, or before a
/// restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MidFlow {
    /// Scheduled like a new flow and stored as ESTABLISHED (IPVS `sloppy_tcp = 1`). With
    /// `mh` that is the backend its SYN got on any director; the default for `mh`.
    Schedule,
    /// Dropped (`tcp_no_flow`; IPVS `sloppy_tcp = 0`); the default for the others.
    Drop,
}

impl MidFlow {
    /// The default for a scheduler.
    pub fn default_for(s: SchedKind) -> Self {
        match s {
            SchedKind::Mh => MidFlow::Schedule,
            _ => MidFlow::Drop,
        }
    }
}

/// What the flows of a backend that is gone do (`on_backend_removed` when it was
/// removed from the service, `on_backend_down` when its health check failed or its MAC
/// is unknown), on their next packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnGone {
    /// IPVS `expire_nodest_conn = 0`: the flow stays pinned to its backend; its packets
    /// are dropped and counted while the backend is gone, and flow again when the same
    /// address comes back (re-added, or up again). A short flap costs retransmissions,
    /// not connections.
    #[default]
    Drop,
    /// The next packet is scheduled afresh on a remaining backend (which resets a TCP
    /// connection it does not know: a fast failure for the client).
    Reschedule,
    /// IPVS `expire_nodest_conn = 1`: the flow's entry is removed at its next packet (and
    /// by the table's sweep), that packet dropped; a later SYN starts a new connection.
    Expire,
}

/// What a new TCP flow does when both of its flow-table groups are full of live flows
/// (`dataplane.syn_flood`): the table's answer to a SYN flood. See README "SYN floods".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SynFlood {
    /// Route it by a hash of its 5-tuple over the service's schedule and keep no entry
    /// (Katran's and Maglev's flood behaviour); its handshake ACK, routed by the same
    /// hash, stores the flow. Nothing live is evicted by a SYN.
    #[default]
    Stateless,
    /// Evict the oldest entry there, non-ESTABLISHED ones first.
    Evict,
    /// As `evict`, but never an ESTABLISHED entry: when all candidates are established
    /// the SYN is dropped (`flow_table_full`), like IPVS's `drop_entry` defence.
    Drop,
}

/// Flow timeouts in seconds (IPVS defaults: `ipvsadm --set 900 120 300`, SYN 60, CLOSE 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
    pub syn: u32,
    pub close: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { tcp: 900, tcp_fin: 120, udp: 300, syn: 60, close: 10 }
    }
}
