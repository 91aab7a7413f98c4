//! The TOML config: parsing, validation, and errors that name the file, the key path
//! and the fix. Unknown keys are rejected.
//!
//! This is the one validator: the config file, a reload, `drlbadm --check` and every
//! admin command go through [`Config::validate`] / [`Config::validate_running`], and the
//! rules a single value follows ([`rules`]) are shared with drlbadm's own checks.
use crate::lb::{OnGone, Proto, SchedKind, Timeouts};
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
    #[serde(default, rename = "backend")]
    pub backends: Vec<BackendConf>,
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

/// One expected HTTP status or several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Expect {
    One(u16),
    Any(Vec<u16>),
}

impl Expect {
    pub fn statuses(&self) -> Vec<u16> {
        match self {
            Expect::One(s) => vec![*s],
            Expect::Any(v) => v.clone(),
        }
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
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let mut msg = one_line(&e);
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

    /// Semantic checks the types cannot express (for files: every service needs a
    /// backend).
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        self.check(file, false)
    }

    /// The running state may hold a service with no backend yet, as between
    /// `ipvsadm -A` and the first `-a`; a file may not.
    pub fn validate_running(&self) -> Result<(), ConfigError> {
        self.check("running config", true)
    }

    fn check(&self, file: &str, allow_empty: bool) -> Result<(), ConfigError> {
        let invalid = |(path, msg)| ConfigError::Invalid { file: file.into(), path, msg };
        self.check_dataplane().map_err(invalid)?;
        let mut seen = std::collections::HashSet::new();
        let mut total = 0usize;
        for (i, s) in self.services.iter().enumerate() {
            let p = format!("service[{i}]");
            if !seen.insert((s.vip, s.port, s.protocol)) {
                let proto = s.protocol.ipvsadm_name().to_lowercase();
                let msg = format!("duplicate service {}:{}/{proto}", s.vip, s.port);
                return Err(invalid((p, msg)));
            }
            self.check_service(s, &p, allow_empty).map_err(invalid)?;
            total += s.backends.len() + usize::from(s.sorry_server.is_some());
        }
        crate::lb::snapshot::check_limits(self.services.len(), total)
            .map_err(|e| invalid(("service".into(), e)))
    }

    fn check_dataplane(&self) -> Result<(), (String, String)> {
        let d = &self.dataplane;
        let bad = |k: &str, msg: String| Err((format!("dataplane.{k}"), msg));
        if d.ip.is_unspecified() || d.ip.is_broadcast() || d.ip.is_multicast() {
            return bad("ip", format!("{} cannot be the director's address", d.ip));
        }
        if let Some(m) = d.mac {
            if m.is_multicast() || m == Mac::ZERO {
                return bad("mac", format!("{m} is not a unicast MAC"));
            }
        }
        let max = crate::lb::flow::MAX_CAPACITY;
        if d.flow_capacity < 16 || d.flow_capacity > max {
            let msg =
                format!("{} is out of range (16 ..= {max} flows per worker)", d.flow_capacity);
            return bad("flow_capacity", msg);
        }
        if let Some(name) = &d.kernel_interface {
            // Linux interface names: 1..=15 bytes, no '/', no white space (dev_valid_name).
            let ok = (1..=15).contains(&name.len())
                && !name
                    .chars()
                    .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
                && name != "."
                && name != "..";
            if !ok {
                let msg = format!(
                    "{name:?} is not an interface name (1 to 15 characters, no '/', ':' or spaces)"
                );
                return bad("kernel_interface", msg);
            }
        }
        if !(1..=32).contains(&d.prefix) {
            return bad("prefix", format!("/{} is not a prefix length (1 ..= 32)", d.prefix));
        }
        if d.kernel_rate == 0 {
            return bad("kernel_rate", "0 frames/s would cut the director off; at least 1".into());
        }
        if let Some(t) = &self.timeouts {
            for (k, v) in [("tcp", t.tcp), ("tcp_fin", t.tcp_fin), ("udp", t.udp)] {
                if v == 0 || v > 86400 * 30 {
                    let msg = format!("{v} s is out of range (1 ..= 2592000)");
                    return Err((format!("timeouts.{k}"), msg));
                }
            }
        }
        Ok(())
    }

    fn check_service(
        &self,
        s: &ServiceConf,
        p: &str,
        allow_empty: bool,
    ) -> Result<(), (String, String)> {
        let dip = self.dataplane.ip;
        let bad = |k: &str, msg: String| Err((format!("{p}{k}"), msg));
        if s.vip.is_unspecified() || s.vip.is_broadcast() || s.vip.is_multicast() {
            return bad(".vip", format!("{} cannot be a VIP", s.vip));
        }
        if s.vip == dip {
            let msg =
                format!("{} is the director's own IP (dataplane.ip); a VIP must differ", s.vip);
            return bad(".vip", msg);
        }
        if s.port == 0 {
            return bad(".port", "port 0 is not a service port".into());
        }
        if s.backends.is_empty() && !allow_empty {
            let msg = format!(
                "service {}:{} has no backend; add at least one [[service.backend]]",
                s.vip, s.port
            );
            return bad(".backend", msg);
        }
        let not_a_server = |ip: Ipv4Addr| {
            ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || ip == s.vip
                || ip == dip
        };
        let mut rips = std::collections::HashSet::new();
        for (j, b) in s.backends.iter().enumerate() {
            let bp = format!(".backend[{j}]");
            if let Err(e) = rules::backend_port(b.port, s.port) {
                let fix = format!("drop the key or set it to {}", s.port);
                return bad(&format!("{bp}.port"), format!("{e} ({fix})"));
            }
            if let Err(e) = rules::weight(i64::from(b.weight)) {
                return bad(&format!("{bp}.weight"), e.to_string());
            }
            if not_a_server(b.ip) {
                return bad(&format!("{bp}.ip"), format!("{} cannot be a real server here", b.ip));
            }
            if let Some(m) = b.mac.filter(|m| m.is_multicast() || *m == Mac::ZERO) {
                return bad(&format!("{bp}.mac"), format!("{m} is not a unicast MAC"));
            }
            if !rips.insert(b.ip) {
                let msg = format!("duplicate backend {} in service {}:{}", b.ip, s.vip, s.port);
                return bad(&bp, msg);
            }
        }
        if let Some(ip) = s.sorry_server {
            if not_a_server(ip) || rips.contains(&ip) {
                let msg = format!("{ip} cannot be the sorry server (a VIP, the director, or one of the service's backends)");
                return bad(".sorry_server", msg);
            }
        }
        if s.quorum == 0 || (s.quorum as usize > s.backends.len() && !s.backends.is_empty()) {
            let msg = format!(
                "{} is out of range (1 ..= {}, the number of backends)",
                s.quorum,
                s.backends.len().max(1)
            );
            return bad(".quorum", msg);
        }
        if let Some(c) = &s.check {
            check_check(c).map_err(|(k, m)| (format!("{p}.check.{k}"), m))?;
            if self.dataplane.kernel_interface.is_none() {
                let msg = "health checks run from the director IP through the kernel interface: \
                           set dataplane.kernel_interface (e.g. \"drlb0\") too"
                    .to_string();
                return bad(".check", msg);
            }
        }
        let weights: Vec<u32> = s.backends.iter().map(|b| b.weight).collect();
        crate::lb::sched::check(s.scheduler, &weights).map_err(|e| (format!("{p}.backend"), e))
    }
    /// `--check FILE` for drlb and drlbadm: "FILE: ok (N services, M backends)" or the
    /// error (exit 0 / 1 at the caller).
    pub fn check_file(path: &Path) -> Result<String, ConfigError> {
        let c = Config::load(path)?;
        let b: usize = c.services.iter().map(|s| s.backends.len()).sum();
        Ok(format!("{}: ok ({} services, {b} backends)", path.display(), c.services.len()))
    }

    /// The config as TOML (round-trips through `parse`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serialises")
    }
}

/// A check's own keys: which go with which type, and their ranges. Errors: (key, why).
fn check_check(c: &CheckConf) -> Result<(), (String, String)> {
    let bad = |k: &str, msg: String| Err((k.to_string(), msg));
    if !(0.1..=3600.0).contains(&c.interval) {
        return bad("interval", format!("{} s is out of range (0.1 ..= 3600)", c.interval));
    }
    if !(0.01..=c.interval).contains(&c.timeout) {
        let msg = format!("{} s is out of range (0.01 ..= interval, {} s)", c.timeout, c.interval);
        return bad("timeout", msg);
    }
    for (k, v) in [("rise", c.rise), ("fall", c.fall)] {
        if !(1..=100).contains(&v) {
            return bad(k, format!("{v} is out of range (1 ..= 100)"));
        }
    }
    let only = |k: &str, set: bool, kind: &str| -> Result<(), (String, String)> {
        if set {
            return bad(k, format!("only for type = \"{kind}\" checks"));
        }
        Ok(())
    };
    only("path", c.path.is_some() && c.kind != CheckType::Http, "http")?;
    only("expect", c.expect.is_some() && c.kind != CheckType::Http, "http")?;
    only("command", c.command.is_some() && c.kind != CheckType::Exec, "exec")?;
    if let Some(p) = c
        .path
        .as_deref()
        .filter(|p| !p.starts_with('/') || p.chars().any(|c| c.is_control() || c == ' '))
    {
        return bad("path", format!("{p:?} is not a request path (starts with '/', no spaces)"));
    }
    if let Some(e) = &c.expect {
        let s = e.statuses();
        if s.is_empty() || s.iter().any(|s| !(100..=599).contains(s)) {
            return bad("expect", format!("{s:?}: HTTP statuses are 100 ..= 599"));
        }
    }
    match (&c.kind, c.command.as_deref().map(shell_words::split)) {
        (CheckType::Exec, None) => bad("command", "an exec check needs a command".into()),
        (CheckType::Exec, Some(Err(e))) => {
            bad("command", format!("cannot split it into words: {e}"))
        }
        (CheckType::Exec, Some(Ok(w))) if w.is_empty() => bad("command", "is empty".into()),
        _ if c.port == Some(0) => bad("port", "port 0 cannot be checked".into()),
        _ => Ok(()),
    }
}

/// toml's errors span several lines with a source excerpt; keep its first line and the
/// key/line information in one paragraph.
fn one_line(e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(_) => {
            // The Display form starts "TOML parse error at line L, column C".
            let first = e
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .replace("TOML parse error at ", "");
            format!("{first}: {msg}")
        }
        None => msg,
    }
}

#[cfg(test)]
mod syn_flood_tests {
    use super::*;

    #[test]
    fn syn_flood_modes_parse_and_the_old_key_says_what_replaced_it() {
        let base = "[dataplane]\nip = \"192.168.1.121\"\n{X}\n[[service]]\nvip = \"192.168.1.200\"\nport = 80\n[[service.backend]]\nip = \"192.168.1.118\"\n";
        let parse = |x: &str| Config::parse(&base.replace("{X}", x), "t.toml");
        assert_eq!(parse("").unwrap().dataplane.syn_flood, crate::lb::SynFlood::Stateless);
        for (v, m) in [
            ("stateless", crate::lb::SynFlood::Stateless),
            ("evict", crate::lb::SynFlood::Evict),
            ("drop", crate::lb::SynFlood::Drop),
        ] {
            let c = parse(&format!("syn_flood = \"{v}\"")).unwrap();
            assert_eq!(c.dataplane.syn_flood, m);
        }
        let e = parse("syn_flood = \"off\"").unwrap_err().to_string();
        assert!(e.contains("expected one of `stateless`, `evict`, `drop`"), "{e}");
        let e = parse("protect_established = true").unwrap_err().to_string();
        assert!(e.contains("syn_flood = \"drop\""), "{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../../configs/seed-dr.toml");

    #[test]
    fn seed_parses() {
        let c = Config::parse(SEED, "seed-dr.toml").unwrap();
        assert_eq!(c.services.len(), 1);
        assert_eq!(c.services[0].scheduler, SchedKind::Rr);
        assert_eq!(c.services[0].backends.len(), 2);
        assert_eq!(c.timeouts(), Timeouts::default());
    }

    #[test]
    fn roundtrip() {
        let c = Config::parse(SEED, "seed").unwrap();
        assert_eq!(Config::parse(&c.to_toml(), "again").unwrap(), c);
    }

    /// (description, config text, expected fragment of the message)
    #[test]
    fn invalid_configs_name_the_key() {
        let base = "[dataplane]\nip = \"192.168.1.121\"\n";
        let svc =
            |body: &str| format!("{base}[[service]]\nvip = \"192.168.1.200\"\nport = 80\n{body}");
        let cases: Vec<(&str, String, &str)> = vec![
            ("unknown key", format!("{base}colour = 1\n"), "unknown field `colour`"),
            ("unknown key in a backend", svc("[[service.backend]]\nip = \"10.0.0.1\"\nfoo = 2\n"), "unknown field `foo`"),
            ("bad address", svc("[[service.backend]]\nip = \"10.0.0.300\"\n"), "invalid IPv4 address"),
            ("bad MAC", svc("[[service.backend]]\nip = \"10.0.0.1\"\nmac = \"00:11\"\n"), "not a MAC address"),
            ("weight out of range", svc("[[service.backend]]\nip = \"10.0.0.1\"\nweight = 70000\n"), "service[0].backend[0].weight: 70000 is out of range"),
            ("negative weight", svc("[[service.backend]]\nip = \"10.0.0.1\"\nweight = -1\n"), "invalid value"),
            ("DR port remap", svc("[[service.backend]]\nip = \"10.0.0.1\"\nport = 8080\n"), "service[0].backend[0].port: 8080 differs from the service port 80"),
            ("duplicate backend", svc("[[service.backend]]\nip = \"10.0.0.1\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].backend[1]: duplicate backend 10.0.0.1"),
            ("duplicate VIP", format!("{}[[service]]\nvip = \"192.168.1.200\"\nport = 80\n[[service.backend]]\nip = \"10.0.0.2\"\n", svc("[[service.backend]]\nip = \"10.0.0.1\"\n")), "service[1]: duplicate service 192.168.1.200:80/tcp"),
            ("empty service", svc(""), "service[0].backend: service 192.168.1.200:80 has no backend"),
            ("bad scheduler", svc("scheduler = \"lc\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "unknown variant `lc`"),
            ("bad protocol", svc("protocol = \"sctp\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "unknown variant `sctp`"),
            ("VIP is the DIP", format!("{base}[[service]]\nvip = \"192.168.1.121\"\nport = 80\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "is the director's own IP"),
            ("missing dataplane", "[[service]]\nvip = \"1.2.3.4\"\nport = 1\n".into(), "missing field `dataplane`"),
            ("flow capacity", format!("{base}flow_capacity = 2\n"), "dataplane.flow_capacity"),
            ("zero timeout", format!("{base}[timeouts]\ntcp = 0\n"), "timeouts.tcp: 0 s is out of range"),
            ("duplicate key", format!("{base}ip = \"1.1.1.1\"\n"), "duplicate key"),
            ("not TOML", "\u{1}\u{2}binary".into(), "line 1"),
        ];
        for (what, text, want) in cases {
            match Config::parse(&text, "x.toml") {
                Ok(_) => panic!("{what}: accepted"),
                Err(e) => {
                    let m = e.to_string();
                    assert!(m.contains(want), "{what}: message {m:?} lacks {want:?}");
                    assert!(m.starts_with("x.toml: "), "{what}: message {m:?} must name the file");
                    assert!(!m.contains('\n'), "{what}: one line, got {m:?}");
                }
            }
        }
    }
}
