//! ipvsadm's listing formats, reproduced column for column (ipvsadm.c `print_title`,
//! `print_service_entry`, `print_largenum`), so scripts that parse `ipvsadm -ln` parse
//! `drlbadm -ln`. Only the first line differs (it names drlb instead of the kernel).
use super::protocol::{BackendRow, ConnListing, Listing, ServiceRow};
use std::fmt::Write;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Plain,
    /// `--stats`: Conns InPkts OutPkts InBytes OutBytes (OutPkts/OutBytes are 0 in DR).
    Stats,
    /// `--rate`: CPS InPPS OutPPS InBPS OutBPS, from two listings `secs` apart.
    Rate,
}

/// ipvsadm's `print_largenum`: 9 columns, or K/M/G/T past 100 million; `--exact` prints
/// the whole number (at least 9 wide, one space before it).
fn largenum(out: &mut String, i: u64, exact: bool) {
    if exact {
        let len = i.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        let _ = write!(out, "{i:>w$}");
    } else if i < 100_000_000 {
        let _ = write!(out, "{i:>9}");
    } else if i < 1_000_000_000 {
        let _ = write!(out, "{:>8}K", i / 1000);
    } else if i < 100_000_000_000 {
        let _ = write!(out, "{:>8}M", i / 1_000_000);
    } else if i < 100_000_000_000_000 {
        let _ = write!(out, "{:>8}G", i / 1_000_000_000);
    } else {
        let _ = write!(out, "{:>8}T", i / 1_000_000_000_000);
    }
}

fn svc_name(s: &ServiceRow) -> String {
    let mut n = format!("{}  {}:{}", s.proto.ipvsadm_name(), s.vip, s.port);
    n.truncate(33);
    n
}

fn dest_name(b: &BackendRow) -> String {
    let mut n = format!("{}:{}", b.ip, b.port);
    n.truncate(28);
    n
}

/// Per-second rates between two listings of the same services.
fn rates(now: &BackendRow, before: Option<&BackendRow>, secs: f64) -> [u64; 5] {
    let d =
        |a: u64, b: Option<u64>| ((a.saturating_sub(b.unwrap_or(a))) as f64 / secs).round() as u64;
    [
        d(now.conns, before.map(|b| b.conns)),
        d(now.in_pkts, before.map(|b| b.in_pkts)),
        0,
        d(now.in_bytes, before.map(|b| b.in_bytes)),
        0,
    ]
}

/// Services and their real servers in ipvsadm's order (ipvs_cmp_services /
/// ipvs_cmp_dests: protocol, address, port); a sorry server taking new flows is not
/// one of the service's real servers.
fn sorted(l: &Listing) -> Vec<(&ServiceRow, Vec<&BackendRow>)> {
    let mut svcs: Vec<&ServiceRow> = l.services.iter().collect();
    svcs.sort_by_key(|s| (s.proto, u32::from(s.vip), s.port));
    svcs.into_iter()
        .map(|s| {
            let mut dests: Vec<&BackendRow> = s.backends.iter().collect();
            dests.sort_by_key(|b| (u32::from(b.ip), b.port));
            (s, dests)
        })
        .collect()
}

/// `-S --format ipvsadm`: the rules as `ipvsadm -S -n` prints them, which `drlbadm -R`
/// (and `ipvsadm -R`) read back. Configured weights; what ipvsadm has no flag for
/// (static MACs, checks, mh options) is only in the TOML form.
pub fn format_rules(l: &Listing) -> String {
    let mut o = String::new();
    for (s, dests) in sorted(l) {
        let flag = if s.proto == crate::lb::Proto::Udp { "-u" } else { "-t" };
        let _ = write!(o, "-A {flag} {}:{} -s {}", s.vip, s.port, s.sched.name());
        if !s.sched_flags.is_empty() {
            let _ = write!(o, " -b {}", s.sched_flags);
        }
        if let Some(p) = s.persistence {
            let _ = write!(o, " -p {p}");
            if let Some(m) = s.persistence_netmask.filter(|m| *m != std::net::Ipv4Addr::BROADCAST) {
                let _ = write!(o, " -M {m}");
            }
        }
        o.push('\n');
        for b in dests.iter().filter(|b| !b.sorry) {
            let _ = writeln!(
                o,
                "-a {flag} {}:{} -r {}:{} -g -w {}",
                s.vip, s.port, b.ip, b.port, b.config_weight
            );
        }
    }
    o
}

/// Formats a listing as `ipvsadm -Ln` (with `--stats` or `--rate`; `before`/`secs` give
/// the earlier listing for rates).
pub fn format(l: &Listing, mode: Mode, exact: bool, before: Option<&Listing>, secs: f64) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "drlb {} (flows per worker={})", l.version, l.flows_per_worker);
    match mode {
        Mode::Plain => {
            o.push_str("Prot LocalAddress:Port Scheduler Flags\n");
            o.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
        }
        Mode::Stats => {
            let _ = writeln!(
                o,
                "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}",
                "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
            );
            o.push_str("  -> RemoteAddress:Port\n");
        }
        Mode::Rate => {
            let _ = writeln!(
                o,
                "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}",
                "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
            );
            o.push_str("  -> RemoteAddress:Port\n");
        }
    }
    for (s, dests) in sorted(l) {
        let prev_svc = before.and_then(|p| {
            p.services.iter().find(|x| (x.proto, x.vip, x.port) == (s.proto, s.vip, s.port))
        });
        let prev = |b: &BackendRow| prev_svc.and_then(|p| p.backends.iter().find(|x| x.ip == b.ip));
        match mode {
            Mode::Plain => {
                let _ = write!(o, "{} {}", svc_name(s), s.sched.name());
                if !s.sched_flags.is_empty() {
                    let _ = write!(o, " ({})", s.sched_flags);
                }
                if let Some(p) = s.persistence {
                    let _ = write!(o, " persistent {p}");
                    if let Some(m) =
                        s.persistence_netmask.filter(|m| *m != std::net::Ipv4Addr::BROADCAST)
                    {
                        let _ = write!(o, " mask {m}");
                    }
                }
                o.push('\n');
                for b in dests {
                    let _ = writeln!(
                        o,
                        "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                        dest_name(b),
                        "Route",
                        b.weight,
                        b.active_conns,
                        b.inactive_conns
                    );
                }
            }
            Mode::Stats => {
                let _ = write!(o, "{:<33}", svc_name(s));
                // The service's own totals: they keep the counts of servers removed since.
                let t = &s.totals;
                for v in [t.conns, t.in_pkts, 0, t.in_bytes, 0] {
                    largenum(&mut o, v, exact);
                }
                o.push('\n');
                for b in dests {
                    let _ = write!(o, "  -> {:<28}", dest_name(b));
                    for v in [b.conns, b.in_pkts, 0, b.in_bytes, 0] {
                        largenum(&mut o, v, exact);
                    }
                    o.push('\n');
                }
            }
            Mode::Rate => {
                let per: Vec<[u64; 5]> = dests.iter().map(|b| rates(b, prev(b), secs)).collect();
                let _ = write!(o, "{:<33}", svc_name(s));
                for k in 0..5 {
                    largenum(&mut o, per.iter().map(|r| r[k]).sum(), exact);
                }
                o.push('\n');
                for (b, r) in dests.iter().zip(per) {
                    let _ =
                        write!(o, "  -> {:<28} {:>8} {:>8} {:>8}", dest_name(b), r[0], r[1], r[2]);
                    largenum(&mut o, r[3], exact);
                    largenum(&mut o, r[4], exact);
                    o.push('\n');
                }
            }
        }
    }
    o
}

/// `drlbadm -ln --health` (drlb's own; ipvsadm has no health): per service its check,
/// servers up against the quorum and whether it is available; per real server its
/// state, how long it has been in it, the last check's latency and result.
pub fn format_health(l: &Listing) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "drlb {} (flows per worker={})", l.version, l.flows_per_worker);
    o.push_str("Prot LocalAddress:Port Check            Up/Quorum Available\n");
    o.push_str("  -> RemoteAddress:Port           State   Since    Latency  Last result\n");
    let mut svcs: Vec<&ServiceRow> = l.services.iter().collect();
    svcs.sort_by_key(|s| (s.proto, u32::from(s.vip), s.port));
    for s in svcs {
        let check = s.check.as_deref().unwrap_or("none");
        let avail = if s.available { "yes" } else { "no" };
        let sorry = s.sorry_server.map_or(String::new(), |ip| format!(" (sorry server {ip})"));
        let _ =
            writeln!(o, "{:<33} {check:<16} {}/{:<7} {avail}{sorry}", svc_name(s), s.up, s.quorum);
        let mut dests: Vec<&BackendRow> = s.backends.iter().filter(|b| !b.sorry).collect();
        dests.sort_by_key(|b| (u32::from(b.ip), b.port));
        for b in dests {
            let h = &b.health;
            let since = h.since_secs.map_or("-".into(), |s| format!("{s:.0}s"));
            let latency = h.latency_ms.map_or("-".into(), |ms| format!("{ms:.1}ms"));
            let mut last = h.last_result.clone().unwrap_or_else(|| "-".into());
            if b.mac.is_none() {
                last.push_str(" (no ARP answer: takes no flows)");
            }
            let _ = writeln!(
                o,
                "  -> {:<28} {:<7} {since:<8} {latency:<8} {last}",
                dest_name(b),
                h.state
            );
        }
    }
    o
}

/// `ipvsadm -lnc`'s layout (`print_conn`): pro, expire mm:ss, state, source, virtual,
/// destination.
pub fn format_conns(l: &ConnListing) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "drlb connection entries ({} in all{}{})",
        l.total,
        if l.rows.len() < l.total { format!(", {} shown", l.rows.len()) } else { String::new() },
        if l.complete { "" } else { "; incomplete: a worker did not finish in time" }
    );
    let _ =
        writeln!(o, "pro expire {:<11} {:<18} {:<18} destination", "state", "source", "virtual");
    for r in &l.rows {
        let _ = writeln!(
            o,
            "{:<3} {:02}:{:02}  {:<11} {:<18} {:<18} {}",
            r.proto.ipvsadm_name(),
            r.expire / 60,
            r.expire % 60,
            r.state,
            r.source,
            r.virtual_,
            r.destination
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::{Proto, SchedKind};

    fn listing(active: u64) -> Listing {
        let b = |ip: &str, active_conns: u64, conns: u64| BackendRow {
            ip: ip.parse().unwrap(),
            port: 80,
            weight: 1,
            config_weight: 1,
            mac: None,
            active_conns,
            inactive_conns: 0,
            conns,
            in_pkts: conns * 6,
            in_bytes: conns * 380,
            health: Default::default(),
            sorry: false,
        };
        Listing {
            timeouts: [900, 120, 300],
            swaps: Default::default(),
            version: "0.1.0".into(),
            flows_per_worker: 1048576,
            generation: 2,
            port: None,
            services: vec![ServiceRow {
                proto: Proto::Tcp,
                vip: "192.168.1.200".parse().unwrap(),
                port: 80,
                sched: SchedKind::Rr,
                sched_flags: String::new(),
                persistence: None,
                persistence_netmask: None,
                backends: vec![b("192.168.1.119", 0, 1), b("192.168.1.118", active, 1)],
                totals: super::super::protocol::ServiceTotals {
                    conns: 2,
                    in_pkts: 12,
                    in_bytes: 760,
                },
                check: None,
                quorum: 1,
                up: 2,
                available: true,
                sorry_server: None,
                mid_flow: crate::lb::MidFlow::Drop,
                mh: None,
            }],
        }
    }

    #[test]
    fn ln_is_ipvsadms_layout() {
        // ipvsadm -Ln's layout for the seed, with its trailing %-10u padding kept.
        let want = concat!(
            "drlb 0.1.0 (flows per worker=1048576)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  192.168.1.200:80 rr\n",
            "  -> 192.168.1.118:80             Route   1      0          0         \n",
            "  -> 192.168.1.119:80             Route   1      0          0         \n",
        );
        assert_eq!(format(&listing(0), Mode::Plain, false, None, 1.0), want);
    }

    #[test]
    fn rules_are_ipvsadm_save_lines() {
        let mut l = listing(0);
        l.services[0].backends[0].config_weight = 3;
        assert_eq!(
            format_rules(&l),
            concat!(
                "-A -t 192.168.1.200:80 -s rr\n",
                "-a -t 192.168.1.200:80 -r 192.168.1.118:80 -g -w 1\n",
                "-a -t 192.168.1.200:80 -r 192.168.1.119:80 -g -w 3\n",
            )
        );
    }

    #[test]
    fn stats_columns() {
        let out = format(&listing(0), Mode::Stats, false, None, 1.0);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"
        );
        assert_eq!(lines[2], "  -> RemoteAddress:Port");
        assert_eq!(
            lines[3],
            "TCP  192.168.1.200:80                    2       12        0      760        0"
        );
        assert_eq!(
            lines[4],
            "  -> 192.168.1.118:80                    1        6        0      380        0"
        );
    }

    #[test]
    fn lnc_layout() {
        let l = super::super::protocol::ConnListing {
            total: 1,
            complete: true,
            rows: vec![super::super::protocol::ConnRow {
                proto: Proto::Tcp,
                expire: 899,
                state: "ESTABLISHED".into(),
                source: "10.0.0.7:40000".into(),
                virtual_: "192.168.1.200:80".into(),
                destination: "192.168.1.118:80".into(),
            }],
        };
        let out = format_conns(&l);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            "pro expire state       source             virtual            destination"
        );
        assert_eq!(
            lines[2],
            "TCP 14:59  ESTABLISHED 10.0.0.7:40000     192.168.1.200:80   192.168.1.118:80"
        );
    }

    #[test]
    fn largenum_units_and_exact() {
        let f = |i, e| {
            let mut s = String::new();
            largenum(&mut s, i, e);
            s
        };
        assert_eq!(f(99_999_999, false), " 99999999");
        assert_eq!(f(123_456_789, false), "  123456K");
        assert_eq!(f(12_345_678_901, false), "   12345M");
        assert_eq!(f(123_456_789, true), " 123456789");
        assert_eq!(f(7, true), "        7");
    }

    #[test]
    fn rate_from_two_listings() {
        let mut later = listing(0);
        for b in &mut later.services[0].backends {
            b.conns += 10;
            b.in_pkts += 100;
            b.in_bytes += 6400;
        }
        let out = format(&later, Mode::Rate, false, Some(&listing(0)), 2.0);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS"
        );
        assert_eq!(
            lines[3],
            "TCP  192.168.1.200:80                   10      100        0     6400        0"
        );
        assert_eq!(
            lines[4],
            "  -> 192.168.1.118:80                    5       50        0     3200        0"
        );
    }
}
