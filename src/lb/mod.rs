//! Pure balancing logic: no DPDK, no threads, no allocation on the per-packet path.
//!
//! - [`snapshot`]: the immutable forwarding state workers read (services, backends with
//!   their precomputed 12-byte L2 header, schedules), built by the control plane.
//! - [`sched`]: IPVS's schedulers (wrr/rr as precomputed sequences, wlc/lc/sed/nq/fo/sh
//!   by IPVS's rules).
//! - [`conns`]: connection counts per backend, one row per worker, summed on a miss.
//! - [`persist`]: persistence templates shared by the workers.
//! - [`frag`]: fragments follow their datagram's first fragment (per worker).
//! - [`maglev`]: the `mh` scheduler's table, the same on every director.
//! - [`flow`]: the per-worker flow table (fixed capacity, seeded hash, bounded probing).
//! - [`tcp_state`]: IPVS's input-only TCP state table (DR sees client->server only).
//! - [`pipeline`]: `process(frame, &snapshot, &mut local, now) -> Verdict`.
pub mod conns;
pub mod flow;
pub mod frag;
pub mod maglev;
pub mod persist;
pub mod pipeline;
pub mod sched;
pub mod snapshot;
pub mod tcp_state;
pub mod verdict;

pub use pipeline::{
    forward_hits, hint, peek_key, prefetch_burst, process, process_hinted, stage1, Cursor, Hint,
    LocalState, AHEAD,
};
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

/// Scheduler of a service (ipvsadm `-s`). See [`sched`] for each one's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedKind {
    /// Weighted least-connection (IPVS's and ipvsadm's default).
    #[default]
    Wlc,
    /// Least-connection.
    Lc,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Weighted failover.
    Fo,
    Wrr,
    Rr,
    /// Maglev hashing ([`maglev`]): the same choice on every director.
    Mh,
}

impl SchedKind {
    pub const ALL: [SchedKind; 9] = [
        SchedKind::Wlc,
        SchedKind::Lc,
        SchedKind::Sh,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Fo,
        SchedKind::Wrr,
        SchedKind::Rr,
        SchedKind::Mh,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SchedKind::Wlc => "wlc",
            SchedKind::Lc => "lc",
            SchedKind::Sh => "sh",
            SchedKind::Sed => "sed",
            SchedKind::Nq => "nq",
            SchedKind::Fo => "fo",
            SchedKind::Wrr => "wrr",
            SchedKind::Rr => "rr",
            SchedKind::Mh => "mh",
        }
    }

    /// The scheduler ipvsadm calls `name`.
    pub fn from_name(name: &str) -> Option<SchedKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Chooses by the servers' connection counts (wlc, lc, sed, nq).
    pub fn counts_connections(self) -> bool {
        matches!(self, SchedKind::Wlc | SchedKind::Lc | SchedKind::Sed | SchedKind::Nq)
    }
}

/// Scheduler flags (ipvsadm `-b`, `--sched-flags`); only `sh` has any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedFlags {
    /// `sh-fallback`: a client whose server is unavailable goes to another one (found by
    /// walking the table from its bucket) instead of being dropped.
    pub sh_fallback: bool,
    /// `sh-port`: hash the client's source port with its address.
    pub sh_port: bool,
}

impl SchedFlags {
    /// ipvsadm's spelling (`sh-fallback,sh-port`), empty for none.
    pub fn names(self) -> String {
        let mut v = Vec::new();
        if self.sh_fallback {
            v.push("sh-fallback");
        }
        if self.sh_port {
            v.push("sh-port");
        }
        v.join(",")
    }

    /// Parses ipvsadm's comma-separated list. Errors name the flag.
    pub fn parse(list: &str) -> Result<SchedFlags, String> {
        let mut f = SchedFlags::default();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "sh-fallback" => f.sh_fallback = true,
                "sh-port" => f.sh_port = true,
                other => {
                    return Err(format!(
                        "unknown scheduler flag '{other}' (drlb has sh-fallback and sh-port)"
                    ))
                }
            }
        }
        Ok(f)
    }

    pub fn is_empty(self) -> bool {
        self == SchedFlags::default()
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
