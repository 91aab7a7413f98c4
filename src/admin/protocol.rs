//! The admin protocol spoken over the control socket by `drlbadm`.
//!
//! Wire format: the client sends one JSON object on one line (at most
//! [`MAX_REQUEST`] bytes, `\n`-terminated) and reads one JSON line back:
//! `{"ok":true,"data":...}` or `{"ok":false,"error":"..."}`; then the server closes.
//! Requests are [`Request`] tagged by `"cmd"`, e.g.
//! `{"cmd":"add_backend","svc":{"vip":"192.168.1.200","port":80,"proto":"tcp"},"rip":"192.168.1.118","weight":1}`.
//!
//! Changes are applied by [`super::apply`] to a copy of the running config, validated
//! as a whole, and only then swapped in (one new snapshot): a rejected command changes
//! nothing. The messages follow ipvsadm's where one exists.
//!
//! This module is shared by the daemon and `drlbadm`; it holds no daemon logic.
use crate::control::config::rules;
use crate::lb::{Proto, SchedKind};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Largest request line accepted.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Connection entries returned by `-lnc` at most (the total is always reported).
pub const MAX_CONNS_LISTED: usize = 10_000;
/// Per-worker queue of entries for a connection dump.
pub const DUMP_QUEUE: usize = 16_384;

/// A virtual service: `-t|-u VIP:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SvcId {
    pub vip: Ipv4Addr,
    pub port: u16,
    pub proto: Proto,
}

impl std::fmt::Display for SvcId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}:{}", self.proto.ipvsadm_name(), self.vip, self.port)
    }
}

/// A service's settings as `-A`/`-E` give them (ipvsadm's `-s`, `-b`, `-p`, `-M`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SvcSettings {
    #[serde(default)]
    pub sched: Option<SchedKind>,
    /// ipvsadm `-b`: comma-separated scheduler flags.
    #[serde(default)]
    pub flags: Option<String>,
    /// ipvsadm `-p`: persistence timeout, seconds.
    #[serde(default)]
    pub persistent: Option<u32>,
    /// ipvsadm `-M`: persistence netmask.
    #[serde(default)]
    pub netmask: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// `-A -t|-u VIP:PORT [-s SCHED] [-b FLAGS] [-p [T] [-M MASK]]` (SCHED default wlc,
    /// as ipvsadm)
    AddService {
        svc: SvcId,
        #[serde(default)]
        settings: SvcSettings,
    },
    /// `-E`, the same settings: as ipvsadm, what is not given returns to its default
    /// (wlc, no flags, not persistent).
    EditService {
        svc: SvcId,
        #[serde(default)]
        settings: SvcSettings,
    },
    /// `-D -t|-u VIP:PORT`
    DelService { svc: SvcId },
    /// `-a -t|-u VIP:PORT -r RIP[:PORT] [-g] [-w W] [--mac MAC]`
    AddBackend {
        svc: SvcId,
        rip: Ipv4Addr,
        port: Option<u16>,
        weight: Option<u32>,
        mac: Option<String>,
    },
    /// `-e -t|-u VIP:PORT -r RIP[:PORT] -w W`
    EditBackend { svc: SvcId, rip: Ipv4Addr, port: Option<u16>, weight: u32 },
    /// `-d -t|-u VIP:PORT -r RIP[:PORT]`
    DelBackend { svc: SvcId, rip: Ipv4Addr, port: Option<u16> },
    // Empty-struct variants (not unit ones) so unknown fields are rejected for them too.
    /// `-C`
    Clear {},
    /// `-L`/`-l` (every listing is built client-side from this).
    List {},
    /// `-L -c`: connection entries (capped at [`MAX_CONNS_LISTED`], with a total).
    Conns {},
    /// `-S`: the running config as TOML.
    Save {},
    /// `--reload`: re-read the config file (as SIGHUP). The reply's data is a
    /// [`ReloadReport`].
    Reload {},
    /// `-Z [-t|-u VIP:PORT]`: zero the counters of one service or of all.
    Zero { svc: Option<SvcId> },
    /// `--set TCP TCPFIN UDP`: flow timeouts in seconds; 0 leaves one as it is.
    SetTimeouts { tcp: u32, tcp_fin: u32, udp: u32 },
    /// `-R`: ipvsadm rules read from stdin, applied as one change or not at all (an
    /// error names the change by its position, `change 3 of 5: ...`).
    Batch { changes: Vec<Request> },
    /// `--save-config`: write the running config over the config file (atomically), so
    /// the changes made with drlbadm survive a reload and a restart.
    SaveConfig {},
    /// `--bgp-feed`: keep the connection and receive an [`Announcement`] (as a
    /// `Response` line) now, at every change and every [`HEARTBEAT`].
    Watch {},
}

/// What a reload did besides applying the file: the changes made with drlbadm since
/// the config was last loaded or saved that the file undoes, and the keys that change
/// only with a restart (each `key: running -> in the file`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    pub summary: String,
    #[serde(default)]
    pub reverted: Vec<String>,
    #[serde(default)]
    pub restart_only: Vec<String>,
}

/// How often a watcher gets the current [`Announcement`] even when nothing changed: a
/// feed that hears nothing for a few of these takes drlb for hung.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);

/// What this director can take traffic for: each VIP with whether every service on it
/// meets its quorum. `--bgp-feed` announces the VIPs that do, with the director IP as
/// the next hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub director: Ipv4Addr,
    pub vips: Vec<VipState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipState {
    pub vip: Ipv4Addr,
    pub available: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Response {
    pub fn ok(data: Option<serde_json::Value>) -> Self {
        Response { ok: true, error: None, data }
    }
    pub fn err(e: impl Into<String>) -> Self {
        Response { ok: false, error: Some(e.into()), data: None }
    }
}

/// `-r RIP:PORT`: the config's rule ([`rules::backend_port`]), in ipvsadm's words.
pub fn check_port(id: &SvcId, port: Option<u16>) -> Result<(), String> {
    rules::backend_port(port, id.port).map_err(|e| format!("real server port {e}"))
}

/// `-w W`: the config's rule ([`rules::weight`]), in ipvsadm's words.
pub fn check_weight(w: i64) -> Result<u32, String> {
    rules::weight(w).map_err(|e| format!("Invalid weight: {e}"))
}

/// Parses one request line. Errors are messages for the client.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    if line.len() > MAX_REQUEST {
        return Err(format!("request too large ({} bytes; at most {MAX_REQUEST})", line.len()));
    }
    let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_string())?;
    serde_json::from_str(text.trim_end()).map_err(|e| format!("malformed request: {e}"))
}

/// One backend in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendRow {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The weight new flows see: the configured one, or 0 while the server is down or
    /// its MAC unknown (as keepalived's `inhibit_on_failure` shows a failed server).
    pub weight: u32,
    /// The configured weight.
    #[serde(default)]
    pub config_weight: u32,
    pub mac: Option<String>,
    pub active_conns: u64,
    pub inactive_conns: u64,
    pub conns: u64,
    pub in_pkts: u64,
    pub in_bytes: u64,
    #[serde(default)]
    pub health: HealthRow,
    /// The service's sorry server (listed only while it takes new flows).
    #[serde(default)]
    pub sorry: bool,
}

/// A real server's health, as `drlbadm -ln --health` shows it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HealthRow {
    /// "up", "down", "unknown" (checked, no result yet; counts as up), or "unchecked".
    pub state: String,
    /// What the last check saw ("HTTP 200", "connect refused", "timeout (1.0 s)").
    pub last_result: Option<String>,
    /// Seconds since the state last changed.
    pub since_secs: Option<f64>,
    /// The last check's duration, ms.
    pub latency_ms: Option<f64>,
    /// State changes so far.
    pub transitions: u64,
}

/// Counters of a service, kept when backends come and go (they never go backwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceTotals {
    pub conns: u64,
    pub in_pkts: u64,
    pub in_bytes: u64,
}

/// One service in a listing (counters are sums over workers; rates are computed by the
/// client from two listings, as ipvsadm's kernel estimator does over time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRow {
    pub proto: Proto,
    pub vip: Ipv4Addr,
    pub port: u16,
    pub sched: SchedKind,
    /// ipvsadm's scheduler flags (`sh-fallback,sh-port`), empty for none.
    #[serde(default)]
    pub sched_flags: String,
    /// ipvsadm `-p`: persistence timeout in seconds (None: not persistent).
    #[serde(default)]
    pub persistence: Option<u32>,
    /// ipvsadm `-M` (None: /32).
    #[serde(default)]
    pub persistence_netmask: Option<Ipv4Addr>,
    pub backends: Vec<BackendRow>,
    #[serde(default)]
    pub totals: ServiceTotals,
    /// The health check, e.g. "http /" (None: not checked).
    #[serde(default)]
    pub check: Option<String>,
    #[serde(default = "one")]
    pub quorum: u32,
    /// Backends up (serving, weight > 0).
    #[serde(default)]
    pub up: usize,
    /// At least `quorum` backends up.
    #[serde(default = "yes")]
    pub available: bool,
    #[serde(default)]
    pub sorry_server: Option<Ipv4Addr>,
    /// What a TCP segment without SYN and without an entry does.
    #[serde(default = "drop_mid_flow")]
    pub mid_flow: crate::lb::MidFlow,
    /// `mh`: the Maglev table, for comparing directors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mh: Option<MhRow>,
}

/// An `mh` service's table as `-ln --json` shows it: directors that choose alike show
/// the same fingerprint (same servers, weights, size and `hash_seed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MhRow {
    pub table_size: u32,
    pub hash: crate::lb::maglev::MhHash,
    /// 16 hex digits.
    pub fingerprint: String,
}

fn drop_mid_flow() -> crate::lb::MidFlow {
    crate::lb::MidFlow::Drop
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// One connection entry, as `ipvsadm -lnc` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnRow {
    pub proto: Proto,
    /// Seconds until the entry expires.
    pub expire: u32,
    pub state: String,
    pub source: String,
    pub virtual_: String,
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnListing {
    /// Live entries seen in all.
    pub total: usize,
    /// Whether every worker finished its pass in time and no queue overflowed.
    pub complete: bool,
    pub rows: Vec<ConnRow>,
}

/// Snapshot swaps so far: publish -> every worker on the new generation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SwapStats {
    pub count: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub reloads: u64,
    pub failed_reloads: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    #[serde(default)]
    pub swaps: SwapStats,
    /// `-L --timeout`: tcp, tcp_fin, udp in seconds.
    #[serde(default)]
    pub timeouts: [u32; 3],
    pub version: String,
    pub flows_per_worker: usize,
    pub generation: u64,
    pub services: Vec<ServiceRow>,
    /// The NIC's own counters and link (None in tests without a port).
    #[serde(default)]
    pub port: Option<PortHealth>,
}

/// What the NIC says: frames it dropped before drlb saw them, errors, and its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortHealth {
    pub port: u16,
    /// Frames the NIC dropped because the RX queue was full (drlb too slow).
    pub imissed: u64,
    /// Erroneous frames received (bad CRC, too long, ...).
    pub ierrors: u64,
    /// RX mbuf allocation failures (the mbuf pool ran dry).
    pub rx_nombuf: u64,
    /// Frames the NIC failed to send.
    pub oerrors: u64,
    pub link_up: bool,
    /// Mb/s; 0 when the driver does not say.
    pub link_speed_mbps: u32,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// TCP 192.168.1.200:80, the seed's service.
    pub(crate) fn seed() -> SvcId {
        SvcId { vip: "192.168.1.200".parse().unwrap(), port: 80, proto: Proto::Tcp }
    }

    #[test]
    fn requests_parse_and_garbage_does_not() {
        let r = parse_request(br#"{"cmd":"edit_backend","svc":{"vip":"192.168.1.200","port":80,"proto":"tcp"},"rip":"192.168.1.119","weight":0}"#).unwrap();
        assert_eq!(
            r,
            Request::EditBackend {
                svc: seed(),
                rip: "192.168.1.119".parse().unwrap(),
                port: None,
                weight: 0
            }
        );
        for bad in [
            &b"\xff\xfe"[..],
            b"{",
            b"{\"cmd\":\"rm_rf\"}",
            b"[]",
            b"",
            b"{\"cmd\":\"clear\",\"x\":1}",
        ] {
            assert!(parse_request(bad).is_err(), "{bad:?}");
        }
        assert!(parse_request(&vec![b' '; MAX_REQUEST + 1]).unwrap_err().contains("too large"));
    }
}
