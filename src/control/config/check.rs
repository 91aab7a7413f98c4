//! Validation: the semantic checks the types cannot express, each error naming the
//! key path and the fix, and the warnings a valid config may still deserve.
use super::*;
use crate::wire::Mac;
use std::net::Ipv4Addr;
use std::path::Path;

/// ipvsadm's longest persistence timeout (`MAX_TIMEOUT`, 31 days).
pub const MAX_PERSISTENCE: u32 = 86_400 * 31;

impl Config {
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
        if let Some(v) = d.vlan {
            if !(1..=4094).contains(&v) {
                return bad("vlan", format!("{v} is not a VLAN ID (1 ..= 4094)"));
            }
        }
        if !(4..=1 << 24).contains(&d.persistence_capacity) {
            let msg =
                format!("{} is out of range (4 ..= 16777216 templates)", d.persistence_capacity);
            return bad("persistence_capacity", msg);
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
        if let Some(seed) = &d.hash_seed {
            if seed.is_empty() || seed.len() > 256 {
                let msg = format!(
                    "{} bytes; a seed is 1 to 256 bytes (the same string on every director)",
                    seed.len()
                );
                return bad("hash_seed", msg);
            }
        }
        if !super::MTU_RANGE.contains(&d.mtu) {
            let (lo, hi) = (super::MTU_RANGE.start(), super::MTU_RANGE.end());
            return bad("mtu", format!("{} is out of range ({lo} ..= {hi} bytes)", d.mtu));
        }
        if d.garp_repeat > 100 {
            return bad("garp_repeat", format!("{} is out of range (0 ..= 100)", d.garp_repeat));
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
        self.check_mh(s, p)?;
        if let Some(t) = s.persistence {
            if !(1..=MAX_PERSISTENCE).contains(&t) {
                return bad(
                    ".persistence",
                    format!("{t} is out of range (1 ..= {MAX_PERSISTENCE} seconds, as ipvsadm -p)"),
                );
            }
        }
        if let Some(m) = s.persistence_netmask {
            if s.persistence.is_none() {
                return bad(".persistence_netmask", "only with persistence".to_string());
            }
            let bits = u32::from(m);
            if bits.leading_ones() + bits.trailing_zeros() != 32 || bits == 0 {
                return bad(".persistence_netmask", format!("{m} is not a netmask"));
            }
        }
        if !s.sched_flags.is_empty() && s.scheduler != SchedKind::Sh {
            return Err((
                format!("{p}.sched_flags"),
                format!(
                    "only the sh scheduler has flags (this service has \"{}\")",
                    s.scheduler.name()
                ),
            ));
        }
        Ok(())
    }

    /// The `mh` keys: only with `scheduler = "mh"`, a prime table size in range, and a
    /// table with a position for every backend.
    fn check_mh(&self, s: &ServiceConf, p: &str) -> Result<(), (String, String)> {
        use crate::lb::maglev::{is_prime, MAX_TABLE_SIZE, MIN_TABLE_SIZE};
        let bad = |k: &str, msg: String| Err((format!("{p}.{k}"), msg));
        if s.scheduler != SchedKind::Mh {
            for (k, set) in
                [("mh_table_size", s.mh_table_size.is_some()), ("mh_hash", s.mh_hash.is_some())]
            {
                if set {
                    let msg = format!(
                        "only for scheduler = \"mh\" (this service has \"{}\")",
                        s.scheduler.name()
                    );
                    return bad(k, msg);
                }
            }
            return Ok(());
        }
        let m = s.mh_table_size();
        if !(MIN_TABLE_SIZE..=MAX_TABLE_SIZE).contains(&m) {
            return bad(
                "mh_table_size",
                format!("{m} is out of range ({MIN_TABLE_SIZE} ..= {MAX_TABLE_SIZE})"),
            );
        }
        if !is_prime(m) {
            let msg = format!(
                "{m} is not a prime (Maglev needs one); the nearest above is {}",
                next_prime(m)
            );
            return bad("mh_table_size", msg);
        }
        if s.backends.len() > m as usize {
            let msg = format!(
                "{m} positions cannot hold {} backends; use at least {}",
                s.backends.len(),
                next_prime(100 * s.backends.len() as u32)
            );
            return bad("mh_table_size", msg);
        }
        Ok(())
    }

    /// What a valid config may still deserve a word about, each naming its key.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            let n = s.backends.len() as u64;
            if s.scheduler == SchedKind::Mh && u64::from(s.mh_table_size()) < 100 * n {
                w.push(format!(
                    "service[{i}].mh_table_size: {} positions for {n} backends: shares may differ by more than 1 % (Maglev wants more than 100 per backend; {} would do)",
                    s.mh_table_size(),
                    next_prime((100 * n).min(u64::from(crate::lb::maglev::MAX_TABLE_SIZE)) as u32)
                ));
            }
            if s.scheduler != SchedKind::Mh && s.mid_flow() == MidFlow::Schedule {
                w.push(format!(
                    "service[{i}].mid_flow: \"schedule\" with scheduler \"{}\" sends a flow that began elsewhere to whichever server is next, which resets it unless that is its server; scheduler = \"mh\" picks the same server on every director",
                    s.scheduler.name()
                ));
            }
        }
        w
    }
    /// `--check FILE` for drlb and drlbadm: "FILE: ok (N services, M backends)" or the
    /// error (exit 0 / 1 at the caller).
    /// Warnings follow, one line each ("FILE: warning: ...").
    pub fn check_file(path: &Path) -> Result<String, ConfigError> {
        let c = Config::load(path)?;
        let b: usize = c.services.iter().map(|s| s.backends.len()).sum();
        let mut out =
            format!("{}: ok ({} services, {b} backends)", path.display(), c.services.len());
        for w in c.warnings() {
            out += &format!("\n{}: warning: {w}", path.display());
        }
        Ok(out)
    }
}

/// The smallest prime at or above `n`.
fn next_prime(n: u32) -> u32 {
    (n.max(2)..).find(|&x| crate::lb::maglev::is_prime(x)).unwrap_or(n)
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
        let s = e.try_statuses().map_err(|m| ("expect".to_string(), m))?;
        if s.is_empty() {
            return bad("expect", "no status given".into());
        }
        if let Some(x) = s.iter().find(|s| !(100..=599).contains(*s)) {
            return bad("expect", format!("{x}: HTTP statuses are 100 ..= 599"));
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

    const SEED: &str = include_str!("../../../configs/seed-dr.toml");

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
            ("unknown key", format!("{base}colour = 1\n"), "dataplane.colour: unknown field `colour`"),
            ("unknown key in a backend", svc("[[service.backend]]\nip = \"10.0.0.1\"\nfoo = 2\n"), "service[0].backend[0].foo: unknown field `foo`"),
            ("bad address", svc("[[service.backend]]\nip = \"10.0.0.300\"\n"), "service[0].backend[0].ip: invalid IPv4 address syntax"),
            ("bad MAC", svc("[[service.backend]]\nip = \"10.0.0.1\"\nmac = \"00:11\"\n"), "service[0].backend[0].mac: "),
            ("weight out of range", svc("[[service.backend]]\nip = \"10.0.0.1\"\nweight = 70000\n"), "service[0].backend[0].weight: 70000 is out of range"),
            ("negative weight", svc("[[service.backend]]\nip = \"10.0.0.1\"\nweight = -5\n"), "service[0].backend[0].weight: invalid value: integer `-5`, expected u32 (line 8, column 10)"),
            ("weight a string", svc("[[service.backend]]\nip = \"10.0.0.1\"\nweight = \"3\"\n"), "service[0].backend[0].weight: invalid type: string \"3\", expected u32"),
            ("port out of u16", format!("{base}[[service]]\nvip = \"192.168.1.200\"\nport = 70000\n"), "service[0].port: invalid value: integer `70000`, expected u16"),
            ("missing vip", format!("{base}[[service]]\nport = 80\n"), "service[0]: missing field `vip`"),
            ("missing dataplane ip", "[dataplane]\nport = 0\n".to_string(), "dataplane: missing field `ip`"),
            ("timeout a string", format!("{base}[timeouts]\ntcp = \"900\"\n"), "timeouts.tcp: invalid type: string"),
            ("negative flow capacity", format!("{base}flow_capacity = -1\n"), "dataplane.flow_capacity: invalid value: integer `-1`"),
            ("idle unknown", format!("{base}idle = \"sleepy\"\n"), "dataplane.idle: unknown variant `sleepy`"),
            ("syn_flood unknown", format!("{base}syn_flood = \"ignore\"\n"), "dataplane.syn_flood: unknown variant `ignore`"),
            ("on_backend_down unknown", svc("on_backend_down = \"panic\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].on_backend_down: unknown variant `panic`"),
            ("status range malformed", svc("[service.check]\ntype = \"http\"\nexpect = \"200-2x9\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].check.expect: \"200-2x9\" is not a status or a range (200-299)"),
            ("status range out of HTTP", svc("[service.check]\ntype = \"http\"\nexpect = \"200-299 600\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].check.expect: 600: HTTP statuses are 100 ..= 599"),
            ("check type unknown", svc("[service.check]\ntype = \"icmp\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].check.type: unknown variant `icmp`"),
            ("backends not a list", svc("backend = 3\n"), "service[0].backend: invalid type: integer `3`"),
            ("TOML syntax", format!("{base}[[service]\n"), "(line 3, column"),
            ("DR port remap", svc("[[service.backend]]\nip = \"10.0.0.1\"\nport = 8080\n"), "service[0].backend[0].port: 8080 differs from the service port 80"),
            ("duplicate backend", svc("[[service.backend]]\nip = \"10.0.0.1\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].backend[1]: duplicate backend 10.0.0.1"),
            ("duplicate VIP", format!("{}[[service]]\nvip = \"192.168.1.200\"\nport = 80\n[[service.backend]]\nip = \"10.0.0.2\"\n", svc("[[service.backend]]\nip = \"10.0.0.1\"\n")), "service[1]: duplicate service 192.168.1.200:80/tcp"),
            ("empty service", svc(""), "service[0].backend: service 192.168.1.200:80 has no backend"),
            ("bad scheduler", svc("scheduler = \"lblc\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].scheduler: unknown variant `lblc`"),
            ("persistence 0", svc("persistence = 0\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].persistence: 0 is out of range (1 ..= 2678400 seconds"),
            ("netmask alone", svc("persistence_netmask = \"255.255.255.0\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].persistence_netmask: only with persistence"),
            ("netmask holes", svc("persistence = 60\npersistence_netmask = \"255.0.255.0\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].persistence_netmask: 255.0.255.0 is not a netmask"),
            ("vlan 4095", format!("{base}vlan = 4095\n"), "dataplane.vlan: 4095 is not a VLAN ID (1 ..= 4094)"),
            ("template capacity", format!("{base}persistence_capacity = 2\n"), "dataplane.persistence_capacity: 2 is out of range"),
            ("flags without sh", svc("scheduler = \"wlc\"\nsched_flags = [\"sh-port\"]\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].sched_flags: only the sh scheduler has flags"),
            ("unknown flag", svc("scheduler = \"sh\"\nsched_flags = [\"sh-bogus\"]\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].sched_flags[0]: unknown variant `sh-bogus`"),
            ("bad protocol", svc("protocol = \"sctp\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].protocol: unknown variant `sctp`, expected `tcp` or `udp`"),
            ("VIP is the DIP", format!("{base}[[service]]\nvip = \"192.168.1.121\"\nport = 80\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "is the director's own IP"),
            ("missing dataplane", "[[service]]\nvip = \"1.2.3.4\"\nport = 1\n".into(), "missing field `dataplane`"),
            ("flow capacity", format!("{base}flow_capacity = 2\n"), "dataplane.flow_capacity"),
            ("zero timeout", format!("{base}[timeouts]\ntcp = 0\n"), "timeouts.tcp: 0 s is out of range"),
            ("duplicate key", format!("{base}ip = \"1.1.1.1\"\n"), "duplicate key"),
            ("not TOML", "\u{1}\u{2}binary".into(), "line 1"),
            ("mh table not a prime", svc("scheduler = \"mh\"\nmh_table_size = 65536\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].mh_table_size: 65536 is not a prime (Maglev needs one); the nearest above is 65537"),
            ("mh table too small", svc("scheduler = \"mh\"\nmh_table_size = 2\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].mh_table_size: 2 is out of range (7 ..= 1048573)"),
            ("mh key without mh", svc("mh_table_size = 251\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].mh_table_size: only for scheduler = \"mh\" (this service has \"wlc\")"),
            ("mh_hash without mh", svc("mh_hash = \"source\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "service[0].mh_hash: only for scheduler"),
            ("bad mh_hash", svc("scheduler = \"mh\"\nmh_hash = \"dport\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "unknown variant `dport`, expected `flow` or `source`"),
            ("bad mid_flow", svc("mid_flow = \"sloppy\"\n[[service.backend]]\nip = \"10.0.0.1\"\n"), "unknown variant `sloppy`, expected `schedule` or `drop`"),
            ("more backends than positions", svc(&format!("scheduler = \"mh\"\nmh_table_size = 7\n{}", (1..=8).map(|i| format!("[[service.backend]]\nip = \"10.0.0.{i}\"\n")).collect::<String>())), "7 positions cannot hold 8 backends; use at least 809"),
            ("empty hash seed", format!("{base}hash_seed = \"\"\n"), "dataplane.hash_seed: 0 bytes; a seed is 1 to 256 bytes"),
            ("MTU too small", format!("{base}mtu = 100\n"), "dataplane.mtu: 100 is out of range (576 ..= 9600 bytes)"),
            ("MTU too big", format!("{base}mtu = 16000\n"), "dataplane.mtu: 16000 is out of range (576 ..= 9600 bytes)"),
            ("MTU not a number", format!("{base}mtu = \"jumbo\"\n"), "dataplane.mtu: invalid type: string \"jumbo\", expected u16"),
            ("too many gratuitous ARPs", format!("{base}garp_repeat = 1000\n"), "dataplane.garp_repeat: 1000 is out of range (0 ..= 100)"),
        ];
        assert!(cases.len() >= 20, "{} bad files", cases.len());
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

    #[test]
    fn warnings_name_the_key_and_the_fix() {
        let base = "[dataplane]\nip = \"192.168.1.121\"\n[[service]]\nvip = \"192.168.1.200\"\nport = 80\n";
        let backends: String =
            (1..=3).map(|i| format!("[[service.backend]]\nip = \"10.0.0.{i}\"\n")).collect();
        let warn = |keys: &str| {
            Config::parse(&format!("{base}{keys}\n{backends}"), "t").unwrap().warnings()
        };
        assert!(warn("scheduler = \"mh\"").is_empty());
        assert!(warn("scheduler = \"wrr\"").is_empty());
        let w = warn("scheduler = \"mh\"\nmh_table_size = 251");
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("service[0].mh_table_size: 251 positions for 3 backends")
                && w[0].contains("307 would do"),
            "{w:?}"
        );
        let w = warn("scheduler = \"rr\"\nmid_flow = \"schedule\"");
        assert!(
            w[0].starts_with("service[0].mid_flow: \"schedule\" with scheduler \"rr\""),
            "{w:?}"
        );
    }
}
