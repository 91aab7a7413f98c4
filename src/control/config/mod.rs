//! The TOML config: parsing, validation, and errors that name the file, the key path
//! and the fix. Unknown keys are rejected.
//!
//! This is the one validator: the config file, a reload, `drlbadm --check` and every
//! admin command go through [`Config::validate`] / [`Config::validate_running`], and the
//! rules a single value follows ([`rules`]) are shared with drlbadm's own checks.
use crate::lb::maglev::MhHash;
use crate::lb::{MidFlow, OnGone, Proto, SchedFlags, SchedKind, Timeouts};
use crate::wire::Mac;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::Path;

/// Largest config file we read (a director config is a few KiB; this bounds a mistake).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// The rules one value follows, wherever it comes from (a file, drlbadm, an admin
/// command); each caller adds its context (a key path, or ipvsadm's wording).
pub mod rules {
    /// ipvsadm's weight range.
    pub const MAX_WEIGHT: u32 = 65535;

    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum Broken {
        #[error("{0} is out of range (0 ..= {MAX_WEIGHT}; 0 drains)")]
        Weight(i64),
        #[error(
            "{port} differs from the service port {service}: direct routing cannot remap ports"
        )]
        PortRemap { port: u16, service: u16 },
    }

    /// A real server's weight: 0 ..= 65535, 0 drains (no new flows, existing ones stay).
    pub fn weight(w: i64) -> Result<u32, Broken> {
        u32::try_from(w).ok().filter(|&w| w <= MAX_WEIGHT).ok_or(Broken::Weight(w))
    }

    /// A real server's port, if given, is the service's: DR rewrites only MAC addresses.
    pub fn backend_port(port: Option<u16>, service: u16) -> Result<(), Broken> {
        match port {
            Some(p) if p != service => Err(Broken::PortRemap { port: p, service }),
            _ => Ok(()),
        }
    }
}
pub use rules::MAX_WEIGHT;

mod check;
pub use check::MAX_PERSISTENCE;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Io { file: String, source: std::io::Error },
    #[error("{file}: {msg}")]
    Parse { file: String, msg: String },
    #[error("{file}: {path}: {msg}")]
    Invalid { file: String, path: String, msg: String },
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub dataplane: Dataplane,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsConf>,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceConf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dataplane {
    #[serde(default)]
    pub port: u16,
    pub ip: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_mac")]
    pub mac: Option<Mac>,
    #[serde(default = "default_flow_capacity")]
    pub flow_capacity: usize,
    /// What a new TCP flow does when both of its flow-table groups are full:
    /// `stateless` (default), `evict` or `drop` ([`crate::lb::SynFlood`]).
    #[serde(default, skip_serializing_if = "is_default_syn_flood")]
    pub syn_flood: crate::lb::SynFlood,
    /// The kernel interface (a `net_tap` device) holding the director IP; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_interface: Option<String>,
    /// Prefix length of the director IP on the kernel interface.
    #[serde(default = "d_prefix")]
    pub prefix: u8,
    /// Frames per second each worker hands to the kernel at most (a token bucket; the
    /// rest are dropped and counted): a flood at the director IP cannot swamp it.
    #[serde(default = "d_kernel_rate")]
    pub kernel_rate: u32,
    /// The seed of the `mh` tables' hashes: every director behind one ECMP group must
    /// use the same (absent: [`crate::lb::maglev::DEFAULT_HASH_SEED`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_seed: Option<String>,
    /// What a worker does when its RX queue is empty: `poll` (default) or `adaptive`
    /// ([`crate::dataplane::idle`]).
    #[serde(default, skip_serializing_if = "is_default_idle")]
    pub idle: crate::dataplane::idle::Idle,
    /// Gratuitous ARPs sent for every VIP and the director IP at start, and for a VIP
    /// when it is added, one a second (keepalived's `vrrp_garp_master_repeat`): a
    /// director that takes a VIP over is found at once. 0: none.
    #[serde(default = "d_garp_repeat", skip_serializing_if = "is_default_garp")]
    pub garp_repeat: u32,
    /// 802.1Q VLAN ID drlb's own frames carry (ARP requests, gratuitous ARP, the kernel
    /// interface's frames); replies keep the tag of what they answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// The port's MTU: the largest IP packet a frame carries (the kernel interface gets
    /// the same). The mbufs hold a whole frame of it; a longer frame is dropped and
    /// counted (`oversize`).
    #[serde(default = "d_mtu", skip_serializing_if = "is_default_mtu")]
    pub mtu: u16,
    /// Persistence templates shared by the workers (see lb::persist).
    #[serde(
        default = "d_persistence_capacity",
        skip_serializing_if = "is_default_persistence_capacity"
    )]
    pub persistence_capacity: usize,
}

/// Ethernet's MTU.
pub const DEFAULT_MTU: u16 = 1500;
/// The MTU range: the IPv4 datagram every host must accept (RFC 791) up to the jumbo
/// frames NICs commonly take.
pub const MTU_RANGE: std::ops::RangeInclusive<u16> = 576..=9600;

fn d_mtu() -> u16 {
    DEFAULT_MTU
}
fn is_default_mtu(m: &u16) -> bool {
    *m == DEFAULT_MTU
}

fn d_persistence_capacity() -> usize {
    65_536
}
fn is_default_persistence_capacity(n: &usize) -> bool {
    *n == d_persistence_capacity()
}

fn d_garp_repeat() -> u32 {
    3
}

fn is_default_garp(n: &u32) -> bool {
    *n == d_garp_repeat()
}

fn is_default_idle(i: &crate::dataplane::idle::Idle) -> bool {
    *i == crate::dataplane::idle::Idle::default()
}

impl Dataplane {
    /// `hash_seed`, or the default every director without the key shares.
    pub fn hash_seed(&self) -> &str {
        self.hash_seed.as_deref().unwrap_or(crate::lb::maglev::DEFAULT_HASH_SEED)
    }
}

fn d_prefix() -> u8 {
    24
}

fn d_kernel_rate() -> u32 {
    10_000
}

fn is_default_syn_flood(m: &crate::lb::SynFlood) -> bool {
    *m == crate::lb::SynFlood::default()
}

fn default_flow_capacity() -> usize {
    1 << 20
}

/// `[timeouts]`: each key defaults to IPVS's value ([`Timeouts::default`]).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConf {
    #[serde(default = "d_tcp")]
    pub tcp: u32,
    #[serde(default = "d_fin")]
    pub tcp_fin: u32,
    #[serde(default = "d_udp")]
    pub udp: u32,
}
impl Default for TimeoutsConf {
    fn default() -> Self {
        let t = Timeouts::default();
        TimeoutsConf { tcp: t.tcp, tcp_fin: t.tcp_fin, udp: t.udp }
    }
}

fn d_tcp() -> u32 {
    Timeouts::default().tcp
}
fn d_fin() -> u32 {
    Timeouts::default().tcp_fin
}
fn d_udp() -> u32 {
    Timeouts::default().udp
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConf {
    pub vip: Ipv4Addr,
    pub port: u16,
    #[serde(default = "d_proto")]
    pub protocol: Proto,
    #[serde(default)]
    pub scheduler: SchedKind,
    /// ipvsadm `-b`: `sh-fallback`, `sh-port` (only `sh` has flags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sched_flags: Vec<SchedFlag>,
    /// ipvsadm `-p`: seconds a client keeps its real server after its last connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<u32>,
    /// ipvsadm `-M`: client addresses are masked by it for persistence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_netmask: Option<Ipv4Addr>,
    #[serde(default)]
    pub on_backend_removed: OnGone,
    #[serde(default)]
    pub on_backend_down: OnGone,
    /// Takes new flows only while fewer than `quorum` backends are up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<Ipv4Addr>,
    /// Backends that must be up for the service to be available (default 1).
    #[serde(default = "d_quorum")]
    pub quorum: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckConf>,
    /// `mh`: positions in the Maglev table (a prime; default 65537).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mh_table_size: Option<u32>,
    /// `mh`: what flows are hashed by, `flow` (the 5-tuple, default) or `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mh_hash: Option<MhHash>,
    /// A TCP segment without SYN and without an entry: `schedule` (default for `mh`) or
    /// `drop` (default for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid_flow: Option<MidFlow>,
    #[serde(default, rename = "backend")]
    pub backends: Vec<BackendConf>,
}

impl ServiceConf {
    /// A service with no backend and every optional key at its default (`ipvsadm -A`).
    pub fn new(vip: Ipv4Addr, port: u16, protocol: Proto, scheduler: SchedKind) -> Self {
        ServiceConf {
            vip,
            port,
            protocol,
            scheduler,
            sched_flags: Vec::new(),
            persistence: None,
            persistence_netmask: None,
            on_backend_removed: OnGone::default(),
            on_backend_down: OnGone::default(),
            sorry_server: None,
            quorum: 1,
            check: None,
            mh_table_size: None,
            mh_hash: None,
            mid_flow: None,
            backends: Vec::new(),
        }
    }

    /// `sched_flags` as the data plane takes them.
    pub fn flags(&self) -> SchedFlags {
        let mut f = SchedFlags::default();
        for flag in &self.sched_flags {
            match flag {
                SchedFlag::ShFallback => f.sh_fallback = true,
                SchedFlag::ShPort => f.sh_port = true,
            }
        }
        f
    }

    /// Sets `sched_flags` from the data plane's form (in ipvsadm's order).
    pub fn set_flags(&mut self, f: SchedFlags) {
        self.sched_flags.clear();
        if f.sh_fallback {
            self.sched_flags.push(SchedFlag::ShFallback);
        }
        if f.sh_port {
            self.sched_flags.push(SchedFlag::ShPort);
        }
    }

    /// `persistence_netmask`, or /32 (host order).
    pub fn persistence_mask(&self) -> u32 {
        self.persistence_netmask.map_or(u32::MAX, u32::from)
    }

    /// `mid_flow`, or its default for the scheduler.
    pub fn mid_flow(&self) -> MidFlow {
        self.mid_flow.unwrap_or(MidFlow::default_for(self.scheduler))
    }

    /// `mh_table_size`, or its default.
    pub fn mh_table_size(&self) -> u32 {
        self.mh_table_size.unwrap_or(crate::lb::maglev::DEFAULT_TABLE_SIZE)
    }
}

/// One scheduler flag, spelled as ipvsadm's `-b` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum SchedFlag {
    #[serde(rename = "sh-fallback")]
    ShFallback,
    #[serde(rename = "sh-port")]
    ShPort,
}

fn d_quorum() -> u32 {
    1
}

/// How a health check talks to a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// A TCP connection opens (keepalived TCP_CHECK).
    Tcp,
    /// `GET path` answers with an expected status (HTTP_GET).
    Http,
    /// A command exits 0 (MISC_CHECK).
    Exec,
}

/// `[service.check]`: keepalived-style health checking of every backend of a service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckConf {
    #[serde(rename = "type")]
    pub kind: CheckType,
    /// Seconds between two checks of one server (keepalived delay_loop).
    #[serde(default = "d_interval")]
    pub interval: f64,
    /// Seconds a check may take, connect and response (connect_timeout).
    #[serde(default = "d_check_timeout")]
    pub timeout: f64,
    /// Consecutive successes that bring a server up.
    #[serde(default = "d_rise")]
    pub rise: u32,
    /// Consecutive failures that take it down (keepalived retry).
    #[serde(default = "d_fall")]
    pub fall: u32,
    /// http: the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// http: the expected status, or a list of them (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// exec: the command and its arguments (no shell; %ip and %port are replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The port checked (default: the service's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// One expected HTTP status, a list of them, or keepalived's `status_code` form as a
/// string: numbers and ranges, `"200-299 301"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Expect {
    One(u16),
    Any(Vec<u16>),
    Ranges(String),
}

impl Expect {
    /// The statuses, or what in a `Ranges` string is not a number or a range.
    pub fn try_statuses(&self) -> Result<Vec<u16>, String> {
        match self {
            Expect::One(s) => Ok(vec![*s]),
            Expect::Any(v) => Ok(v.clone()),
            Expect::Ranges(text) => {
                let mut out = Vec::new();
                for word in text.split(|c: char| c == ',' || c.is_whitespace()) {
                    if word.is_empty() {
                        continue;
                    }
                    let bad = || format!("{word:?} is not a status or a range (200-299)");
                    let (lo, hi) = word.split_once('-').unwrap_or((word, word));
                    let lo: u16 = lo.parse().map_err(|_| bad())?;
                    let hi: u16 = hi.parse().map_err(|_| bad())?;
                    if lo > hi || hi > 999 {
                        return Err(bad());
                    }
                    out.extend(lo..=hi);
                }
                Ok(out)
            }
        }
    }

    /// The statuses (a malformed `Ranges` string, refused by validation, gives none).
    pub fn statuses(&self) -> Vec<u16> {
        self.try_statuses().unwrap_or_default()
    }
}

fn d_interval() -> f64 {
    2.0
}
fn d_check_timeout() -> f64 {
    1.0
}
fn d_rise() -> u32 {
    2
}
fn d_fall() -> u32 {
    3
}
fn d_proto() -> Proto {
    Proto::Tcp
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackendConf {
    pub ip: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default = "d_weight")]
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_mac")]
    pub mac: Option<Mac>,
}
fn d_weight() -> u32 {
    1
}

mod opt_mac {
    use crate::wire::Mac;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(m: &Option<Mac>, s: S) -> Result<S::Ok, S::Error> {
        match m {
            Some(m) => s.serialize_str(&m.to_string()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mac>, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Mac>().map(Some).map_err(serde::de::Error::custom)
    }
}

impl Config {
    pub fn timeouts(&self) -> Timeouts {
        match self.timeouts {
            Some(t) => {
                Timeouts { tcp: t.tcp, tcp_fin: t.tcp_fin, udp: t.udp, ..Timeouts::default() }
            }
            None => Timeouts::default(),
        }
    }

    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let meta = std::fs::metadata(path)
            .map_err(|source| ConfigError::Io { file: file.clone(), source })?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::Parse {
                file,
                msg: format!(
                    "file is {} bytes; a config is at most {MAX_CONFIG_BYTES}",
                    meta.len()
                ),
            });
        }
        let bytes =
            std::fs::read(path).map_err(|source| ConfigError::Io { file: file.clone(), source })?;
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::Parse {
            file: file.clone(),
            msg: "not UTF-8 text (is this a TOML file?)".into(),
        })?;
        Self::parse(&text, &file)
    }

    /// Parses and validates TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        // serde_path_to_error names the key a type error is at
        // (`service[0].backend[1].weight`), which toml's own error does not.
        let cfg: Config =
            serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
                let path = e.path().to_string();
                let mut msg = one_line(e.inner());
                if path != "." && !path.is_empty() {
                    msg = format!("{path}: {msg}");
                }
                if msg.contains("unknown field `protect_established`") {
                    // A key drlb once had: say what replaced it rather than just "unknown".
                    msg.push_str(
                        " (it was replaced by `syn_flood`: `protect_established = true` is now \
                     `syn_flood = \"drop\"`, `false` is `syn_flood = \"evict\"`; the default is \
                     \"stateless\", see configs/example.toml)",
                    );
                }
                ConfigError::Parse { file: file.into(), msg }
            })?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// The config as TOML (round-trips through `parse`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serialises")
    }
}

/// toml's errors span several lines with a source excerpt; keep its first line and the
/// key/line information in one paragraph.
fn one_line(e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(_) => {
            // The Display form starts "TOML parse error at line L, column C".
            let at = e
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .replace("TOML parse error at ", "");
            format!("{msg} ({at})")
        }
        None => msg,
    }
}
