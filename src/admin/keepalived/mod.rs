//! `drlbadm --import-keepalived FILE`: the `virtual_server` blocks of a keepalived.conf
//! as drlb TOML, with what keepalived does that drlb does differently said in comments
//! above each service, and what drlb cannot do refused with the file, the line and the
//! reason (the whole import then fails: half a director is worse than none).
//!
//! The mapping follows keepalived.conf(5): options given on a virtual server are the
//! defaults of its real servers, and a real server's are the defaults of its checkers;
//! `delay_loop` defaults to 60 s, `connect_timeout` to 5 s, `retry` to 1 (0 for
//! MISC_CHECK), and a server goes down after `retry` + 1 failures in a row and comes back
//! after one success. keepalived's default forwarding method is NAT, so a virtual server
//! without `lb_kind DR` is refused.
mod parse;

use crate::control::config::{BackendConf, CheckConf, CheckType, Config, Expect, ServiceConf};
use crate::lb::maglev::MhHash;
use crate::lb::{Proto, SchedKind};
use parse::{Loc, Node};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

/// The import: the TOML text and how many services it holds.
#[derive(Debug)]
pub struct Imported {
    pub toml: String,
    pub services: usize,
}

/// Imports `path`. `director`: the director's own IP, which keepalived.conf does not
/// name; with it the output is a whole config (`[dataplane]` included), without it the
/// services to put under an existing `[dataplane]`. Errors: one line each, "FILE:LINE:
/// why".
pub fn import(path: &Path, director: Option<Ipv4Addr>) -> Result<Imported, Vec<String>> {
    let nodes = parse::read(path).map_err(|e| vec![e])?;
    let mut cx = Cx::default();
    let mut services = Vec::new();
    for n in &nodes {
        match n.key.as_str() {
            "virtual_server" => {
                if let Some(s) = virtual_server(n, &mut cx) {
                    services.push(s);
                }
            }
            "virtual_server_group" => cx.refuse(n, NO_GROUPS),
            "global_defs" => global_defs(n, &mut cx),
            "vrrp_instance"
            | "vrrp_sync_group"
            | "vrrp_script"
            | "vrrp_track_process"
            | "vrrp_garp_delay_group" => {
                cx.top_notes.insert(format!(
                    "{} ({}) is not imported: drlb has no VRRP; directors run side by side \
                     behind ECMP and announce their VIPs by BGP (see the README), and each \
                     sends gratuitous ARP for its VIPs when it starts (dataplane.garp_repeat)",
                    n.key, n.at
                ));
            }
            "static_ipaddress"
            | "static_routes"
            | "static_rules"
            | "linkbeat_interfaces"
            | "track_file"
            | "track_group"
            | "bfd_instance"
            | "SSL"
            | "net_namespace"
            | "instance"
            | "use_symlink_paths" => {
                cx.top_notes.insert(format!(
                    "{} ({}) is not imported: it does not describe a virtual service",
                    n.key, n.at
                ));
            }
            _ => cx.refuse(n, "unknown keyword at the top level"),
        }
    }
    if services.is_empty() && cx.refused.is_empty() {
        cx.refused.push(format!("{}: no virtual_server to import", path.display()));
    }
    if !cx.refused.is_empty() {
        return Err(cx.refused);
    }
    let toml = render(path, director, &services, &cx);
    validate(&toml, director, &services)?;
    Ok(Imported { toml, services: services.len() })
}

const NO_GROUPS: &str =
    "virtual server groups are not built in drlb: write one virtual_server per VIP and port";

/// What the walk collects: refusals, notes outside any service, global settings.
#[derive(Default)]
struct Cx {
    refused: Vec<String>,
    top_notes: BTreeSet<String>,
    timeouts: Option<(Loc, [u32; 3])>,
}

impl Cx {
    fn refuse(&mut self, n: &Node, why: &str) {
        self.refused.push(format!("{}: {}: {why}", n.at, n.text()));
    }
}

/// One imported service, where it came from, and what the operator should know.
struct Service {
    conf: ServiceConf,
    at: Loc,
    head: String,
    notes: BTreeSet<String>,
}

fn global_defs(n: &Node, cx: &mut Cx) {
    for c in n.children() {
        match c.key.as_str() {
            // lvs_timeouts [tcp N] [tcpfin N] [udp N]
            "lvs_timeouts" => {
                let d = crate::lb::Timeouts::default();
                let mut t = [d.tcp, d.tcp_fin, d.udp];
                let mut args = c.args.iter();
                while let Some(k) = args.next() {
                    let i = match k.as_str() {
                        "tcp" => 0,
                        "tcpfin" => 1,
                        "udp" => 2,
                        _ => {
                            cx.refuse(c, &format!("unknown timeout {k:?} (tcp, tcpfin, udp)"));
                            return;
                        }
                    };
                    match args.next().and_then(|v| v.parse::<u32>().ok()).filter(|&v| v > 0) {
                        Some(v) => t[i] = v,
                        None => return cx.refuse(c, &format!("{k} needs a number of seconds")),
                    }
                }
                cx.timeouts = Some((c.at.clone(), t));
            }
            "lvs_sync_daemon" => {
                cx.top_notes.insert(format!(
                    "lvs_sync_daemon ({}) is not imported: drlb directors do not share \
                     connections; scheduler = \"mh\" makes every director choose the same \
                     server for a flow instead",
                    c.at
                ));
            }
            _ => {}
        }
    }
}

/// Checker options that a virtual server passes to its real servers and they to their
/// checkers (keepalived.conf(5), "the virtual server setting is the default for real
/// servers, and the real server setting is the default for checkers").
#[derive(Debug, Clone, Default)]
struct Inherited {
    delay_loop: Option<f64>,
    connect_timeout: Option<f64>,
    retry: Option<u32>,
    inhibit: Option<bool>,
    virtualhost: Option<String>,
}

/// Takes `n` if it is an inherited option; false if it is not one.
fn inherited(n: &Node, o: &mut Inherited, svc: &mut Service, cx: &mut Cx) -> bool {
    let secs = |cx: &mut Cx| -> Option<f64> {
        let v = n.args.first().and_then(|a| a.parse::<f64>().ok()).filter(|v| *v >= 0.0);
        if v.is_none() {
            cx.refuse(n, "needs a number of seconds");
        }
        v
    };
    match n.key.as_str() {
        "delay_loop" => o.delay_loop = secs(cx).or(o.delay_loop),
        "connect_timeout" => o.connect_timeout = secs(cx).or(o.connect_timeout),
        "retry" | "nb_get_retry" => match n.args.first().and_then(|a| a.parse::<u32>().ok()) {
            Some(r) => o.retry = Some(r),
            None => cx.refuse(n, "needs a count"),
        },
        "inhibit_on_failure" => o.inhibit = Some(bool_arg(n)),
        "virtualhost" => o.virtualhost = n.args.first().cloned(),
        "delay_before_retry" => {
            svc.notes.insert(
                "delay_before_retry: drlb checks every `interval` and does not retry sooner, so \
                 a dead server goes down after fall × interval (keepalived: retry × \
                 delay_before_retry after the first failure)"
                    .into(),
            );
        }
        "alpha" => {
            if bool_arg(n) {
                svc.notes.insert(
                    "alpha: drlb starts every server unknown, which counts as up, not down".into(),
                );
            }
        }
        "warmup" | "log_all_failures" | "smtp_alert" | "snmp_name" => {}
        _ => return false,
    }
    true
}

/// A forwarding method (`lb_kind`, `lvs_method`, the sorry server's): DR, or refused.
/// Returns whether it is DR.
fn dr_only(c: &Node, cx: &mut Cx) -> bool {
    let arg = c.args.first().map(String::as_str).unwrap_or("");
    let dr = arg.eq_ignore_ascii_case("DR");
    if !dr {
        cx.refuse(c, &format!("drlb only does direct routing (DR), not {arg}"));
    }
    dr
}

/// keepalived's `<BOOL>` options: no argument is true.
fn bool_arg(n: &Node) -> bool {
    !matches!(
        n.args.first().map(|a| a.to_ascii_lowercase()).as_deref(),
        Some("false" | "no" | "off" | "0")
    )
}

fn virtual_server(n: &Node, cx: &mut Cx) -> Option<Service> {
    let refused_before = cx.refused.len();
    match n.args.first().map(String::as_str) {
        Some("fwmark") => {
            cx.refuse(n, "fwmark services are not built in drlb: a service is a VIP and a port");
            return None;
        }
        Some("group") => {
            cx.refuse(n, NO_GROUPS);
            return None;
        }
        _ => {}
    }
    let vip = match n.args.first().map(|a| a.parse::<std::net::IpAddr>()) {
        Some(Ok(std::net::IpAddr::V4(v))) => v,
        Some(Ok(std::net::IpAddr::V6(_))) => {
            cx.refuse(n, "IPv6 services are not built in drlb");
            return None;
        }
        _ => {
            cx.refuse(n, "want `virtual_server IP PORT`");
            return None;
        }
    };
    let port = match n.args.get(1).map(|p| p.parse::<u16>()) {
        Some(Ok(p)) if p != 0 => p,
        None | Some(Ok(_)) => {
            cx.refuse(
                n,
                "a service without a port (all ports, persistent) is not built in drlb: give the port",
            );
            return None;
        }
        Some(Err(_)) => {
            cx.refuse(n, "the port is not a number");
            return None;
        }
    };
    let mut svc = Service {
        conf: ServiceConf::new(vip, port, Proto::Tcp, SchedKind::Wlc),
        at: n.at.clone(),
        head: n.text(),
        notes: BTreeSet::new(),
    };
    let mut opts = Inherited::default();
    let mut kind: Option<bool> = None;
    let mut flags: Vec<(&Node, &str)> = Vec::new();
    let mut quorum: Option<u32> = None;
    let mut reals: Vec<&Node> = Vec::new();
    for c in n.children() {
        if inherited(c, &mut opts, &mut svc, cx) {
            continue;
        }
        let arg = c.args.first().map(String::as_str).unwrap_or("");
        match c.key.as_str() {
            "lb_algo" | "lvs_sched" => match SchedKind::from_name(arg) {
                Some(k) => svc.conf.scheduler = k,
                None => cx.refuse(
                    c,
                    &format!(
                        "scheduler {arg:?} is not built in drlb (it has rr, wrr, lc, wlc, sh, sed, nq, fo and mh)"
                    ),
                ),
            },
            "lb_kind" | "lvs_method" => kind = Some(dr_only(c, cx)),
            "protocol" => match arg.to_ascii_uppercase().as_str() {
                "TCP" => svc.conf.protocol = Proto::Tcp,
                "UDP" => svc.conf.protocol = Proto::Udp,
                _ => cx.refuse(c, &format!("protocol {arg} is not built in drlb (TCP, UDP)")),
            },
            "persistence_timeout" => match c.args.first().map(|a| a.parse::<u32>()) {
                // keepalived.conf(5): "default 6 minutes" when no value is given.
                None => svc.conf.persistence = Some(360),
                Some(Ok(t)) if t > 0 => svc.conf.persistence = Some(t),
                _ => cx.refuse(c, "needs a number of seconds"),
            },
            "persistence_granularity" => match arg.parse::<Ipv4Addr>() {
                Ok(m) => svc.conf.persistence_netmask = Some(m),
                Err(_) => cx.refuse(c, "needs an IPv4 netmask"),
            },
            "persistence_engine" => {
                cx.refuse(c, "persistence engines (sip) are not built in drlb")
            }
            "sorry_server" => {
                match sorry_server(c, port) {
                    Ok(ip) => svc.conf.sorry_server = Some(ip),
                    Err(e) => cx.refuse(c, &e),
                }
            }
            "sorry_server_lvs_method" | "sorry_server_lb_kind" => {
                dr_only(c, cx);
            }
            "sorry_server_inhibit" => {}
            "quorum" => match arg.parse::<u32>() {
                Ok(q) => quorum = Some(q),
                Err(_) => cx.refuse(c, "needs a number"),
            },
            "ip_family" => {
                if arg != "inet" {
                    cx.refuse(c, "IPv6 services are not built in drlb");
                }
            }
            "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" | "flag-1" | "flag-2"
            | "flag-3" => flags.push((c, c.key.as_str())),
            "ops" => cx.refuse(
                c,
                "one-packet scheduling is not built in drlb (a UDP flow keeps its server until its timeout)",
            ),
            "quorum_up" | "quorum_down" | "omega" => {
                svc.notes.insert(
                    "quorum_up, quorum_down, omega: drlb runs no scripts; it logs the service \
                     gaining and losing quorum and shows it in drlb_service_available"
                        .into(),
                );
            }
            "hysteresis" => {
                svc.notes.insert(
                    "hysteresis: drlb gains and loses quorum at the same count".into(),
                );
            }
            "ha_suspend" => {}
            "real_server" => reals.push(c),
            _ => cx.refuse(c, "unknown keyword in a virtual_server"),
        }
    }
    if kind.is_none() {
        cx.refuse(
            n,
            "no `lb_kind DR`: keepalived's default is NAT and drlb only does direct routing; \
             add `lb_kind DR` if the real servers hold the VIP on a non-ARPing loopback",
        );
    }
    sched_flags(&mut svc, &flags, cx);
    let mut checks: Vec<(Loc, Option<CheckConf>)> = Vec::new();
    for r in reals {
        if let Some((b, check)) = real_server(r, port, &opts, &mut svc, cx) {
            svc.conf.backends.push(b);
            checks.push((r.at.clone(), check));
        }
    }
    svc.conf.check = one_check(n, &checks, cx);
    if let Some(q) = quorum {
        svc.conf.quorum = servers_for_quorum(q, &svc.conf.backends, &mut svc.notes);
    }
    if svc.conf.sorry_server.is_some() {
        svc.notes.insert(
            "sorry_server: takes new flows while fewer than `quorum` servers are up; the \
             servers that are up keep theirs (keepalived takes them all out)"
                .into(),
        );
    }
    (cx.refused.len() == refused_before).then_some(svc)
}

/// `sorry_server IP [PORT]`: DR cannot send to another port.
fn sorry_server(c: &Node, port: u16) -> Result<Ipv4Addr, String> {
    let ip =
        c.args.first().and_then(|a| a.parse::<Ipv4Addr>().ok()).ok_or("want an IPv4 address")?;
    match c.args.get(1).map(|p| p.parse::<u16>()) {
        None => Ok(ip),
        Some(Ok(p)) if p == port => Ok(ip),
        Some(_) => Err(format!(
            "the sorry server's port must be the service's ({port}): direct routing cannot remap ports"
        )),
    }
}

/// `sh-port`, `sh-fallback` (`flag-1`, `flag-2` for sh) and `mh-port`, `mh-fallback`
/// (`flag-1`, `flag-2` for mh). drlb's mh always falls back; without mh-port IPVS's mh
/// hashes the client address only.
fn sched_flags(svc: &mut Service, flags: &[(&Node, &str)], cx: &mut Cx) {
    let s = &mut svc.conf;
    let mut f = s.flags();
    let mut mh_port = false;
    let mut mh_fallback = false;
    for &(n, flag) in flags {
        match (s.scheduler, flag) {
            (SchedKind::Sh, "sh-fallback" | "flag-1") => f.sh_fallback = true,
            (SchedKind::Sh, "sh-port" | "flag-2") => f.sh_port = true,
            (SchedKind::Mh, "mh-fallback" | "flag-1") => mh_fallback = true,
            (SchedKind::Mh, "mh-port" | "flag-2") => mh_port = true,
            (k, _) => cx.refuse(n, &format!("not a flag of the {} scheduler", k.name())),
        }
    }
    s.set_flags(f);
    if s.scheduler == SchedKind::Mh {
        s.mh_hash = Some(if mh_port { MhHash::Flow } else { MhHash::Source });
        if !mh_fallback {
            svc.notes.insert(
                "mh without mh-fallback: drlb's mh always falls back to another server when a \
                 flow's server is down or drained (IPVS would drop the flow)"
                    .into(),
            );
        }
    }
}

/// keepalived's quorum is a total weight of live servers; drlb's counts servers. Equal
/// weights convert exactly; otherwise the fewest servers that can reach the weight.
fn servers_for_quorum(q: u32, backends: &[BackendConf], notes: &mut BTreeSet<String>) -> u32 {
    let n = backends.len().max(1) as u32;
    let max = backends.iter().map(|b| b.weight).max().unwrap_or(1).max(1);
    let all_equal = backends.iter().all(|b| b.weight == max);
    let servers = q.div_ceil(max).clamp(1, n);
    if !all_equal {
        notes.insert(format!(
            "quorum {q}: keepalived counts the weight of the live servers, drlb counts servers; \
             with unequal weights {servers} (the fewest servers that can carry weight {q}) is \
             the nearest: check it"
        ));
    } else if q.div_ceil(max) > n {
        notes.insert(format!(
            "quorum {q} is more than the weight of all servers: keepalived never has quorum; \
             drlb's quorum is at most the number of servers ({n})"
        ));
    }
    servers
}

fn real_server(
    n: &Node,
    port: u16,
    vs: &Inherited,
    svc: &mut Service,
    cx: &mut Cx,
) -> Option<(BackendConf, Option<CheckConf>)> {
    let ip = match n.args.first().map(|a| a.parse::<std::net::IpAddr>()) {
        Some(Ok(std::net::IpAddr::V4(v))) => v,
        Some(Ok(_)) => {
            cx.refuse(n, "IPv6 real servers are not built in drlb");
            return None;
        }
        _ => {
            cx.refuse(n, "want `real_server IP PORT`");
            return None;
        }
    };
    match n.args.get(1).map(|p| p.parse::<u16>()) {
        None => {}
        Some(Ok(p)) if p == port => {}
        Some(_) => {
            cx.refuse(
                n,
                &format!(
                    "the real server's port must be the service's ({port}): direct routing cannot remap ports"
                ),
            );
            return None;
        }
    }
    let mut b = BackendConf { ip, port: None, weight: 1, mac: None };
    let mut opts = vs.clone();
    let mut checkers: Vec<&Node> = Vec::new();
    for c in n.children() {
        if inherited(c, &mut opts, svc, cx) {
            continue;
        }
        let arg = c.args.first().map(String::as_str).unwrap_or("");
        match c.key.as_str() {
            "weight" => match arg.parse::<i64>().map(crate::control::config::rules::weight) {
                Ok(Ok(w)) => b.weight = w,
                Ok(Err(e)) => cx.refuse(c, &e.to_string()),
                Err(_) => cx.refuse(c, "needs a number"),
            },
            "lvs_method" | "lb_kind" => {
                dr_only(c, cx);
            }
            "notify_up" | "notify_down" => {
                svc.notes.insert(format!(
                    "{} scripts are not run: drlb logs every change of a server's state and \
                     counts it in drlb_backend_health_transitions_total",
                    c.key
                ));
            }
            "uthreshold" | "lthreshold" => {
                cx.refuse(c, "connection thresholds are not built in drlb")
            }
            "HTTP_GET" | "TCP_CHECK" | "MISC_CHECK" => checkers.push(c),
            "SSL_GET" => cx.refuse(
                c,
                "drlb's health checks do not speak TLS: use TCP_CHECK on the port, or a \
                 MISC_CHECK whose command does the TLS request",
            ),
            "SMTP_CHECK" | "DNS_CHECK" | "UDP_CHECK" | "PING_CHECK" | "BFD_CHECK"
            | "FILE_CHECK" => cx.refuse(
                c,
                &format!(
                    "{} is not built in drlb (it has TCP_CHECK, HTTP_GET and MISC_CHECK): a \
                     MISC_CHECK whose command does the test takes its place",
                    c.key
                ),
            ),
            _ => cx.refuse(c, "unknown keyword in a real_server"),
        }
    }
    if opts.inhibit == Some(true) {
        svc.notes.insert(
            "inhibit_on_failure: a failed server shows weight 0 in drlbadm -ln as keepalived \
             shows it; its existing flows follow on_backend_down (\"drop\"), where IPVS keeps \
             forwarding them"
                .into(),
        );
    }
    if checkers.len() > 1 {
        cx.refuse(
            checkers[1],
            "a second checker on one real server: drlb runs one check per service",
        );
        return None;
    }
    let check = match checkers.first() {
        Some(c) => Some(checker(c, ip, port, &opts, svc, cx)?),
        None => None,
    };
    Some((b, check))
}

/// One HTTP_GET, TCP_CHECK or MISC_CHECK as a drlb check.
fn checker(
    n: &Node,
    ip: Ipv4Addr,
    port: u16,
    rs: &Inherited,
    svc: &mut Service,
    cx: &mut Cx,
) -> Option<CheckConf> {
    let refused_before = cx.refused.len();
    let mut opts = rs.clone();
    let kind = match n.key.as_str() {
        "HTTP_GET" => CheckType::Http,
        "TCP_CHECK" => CheckType::Tcp,
        _ => CheckType::Exec,
    };
    let mut check_port = None;
    let mut urls: Vec<&Node> = Vec::new();
    let mut command = None;
    let mut misc_timeout = None;
    for c in n.children() {
        if inherited(c, &mut opts, svc, cx) {
            continue;
        }
        let arg = c.args.first().map(String::as_str).unwrap_or("");
        match (kind, c.key.as_str()) {
            (CheckType::Tcp | CheckType::Http, "connect_port") => match arg.parse::<u16>() {
                Ok(p) if p != 0 => check_port = (p != port).then_some(p),
                _ => cx.refuse(c, "needs a port"),
            },
            (CheckType::Tcp | CheckType::Http, "connect_ip") => {
                if arg.parse::<Ipv4Addr>().ok() != Some(ip) {
                    cx.refuse(c, "drlb checks the real server's own address");
                }
            }
            (CheckType::Tcp | CheckType::Http, "bindto" | "bind_port" | "bind_if") => {
                svc.notes.insert(format!(
                    "{}: drlb checks from the director IP through the kernel interface",
                    c.key
                ));
            }
            (_, "fwmark") => {}
            (CheckType::Http, "url") => urls.push(c),
            (CheckType::Http, "http_protocol" | "fast_recovery") => {}
            (CheckType::Exec, "misc_path") => command = Some((c, arg.to_string())),
            (CheckType::Exec, "misc_timeout") => {
                match arg.parse::<f64>().ok().filter(|t| *t > 0.0) {
                    Some(t) => misc_timeout = Some(t),
                    None => cx.refuse(c, "needs a number of seconds"),
                }
            }
            (CheckType::Exec, "misc_dynamic") => {
                svc.notes.insert(
                    "misc_dynamic: drlb does not set weights from a check's exit status; 0 is \
                     up, anything else down"
                        .into(),
                );
            }
            (CheckType::Exec, "user") => {
                svc.notes.insert("user: drlb runs check commands as its own user".into());
            }
            _ => cx.refuse(c, &format!("unknown keyword in a {}", n.key)),
        }
    }
    let interval = opts.delay_loop.unwrap_or(60.0);
    let mut check = CheckConf {
        kind,
        interval,
        timeout: opts.connect_timeout.unwrap_or(5.0),
        rise: 1,
        // Down after the first failure and `retry` more (check_tcp.c's retry_it).
        fall: opts.retry.unwrap_or(if kind == CheckType::Exec { 0 } else { 1 }) + 1,
        path: None,
        expect: None,
        command: None,
        port: check_port,
    };
    match kind {
        CheckType::Http => {
            match urls.as_slice() {
                [u] => url(u, &mut check, svc, cx),
                [] => cx.refuse(n, "an HTTP_GET needs a url block"),
                [_, second, ..] => {
                    cx.refuse(second, "a second url: drlb's HTTP check requests one path")
                }
            }
            if opts.virtualhost.is_some() {
                svc.notes.insert(
                    "virtualhost: drlb's HTTP check sends the server's address as Host".into(),
                );
            }
        }
        CheckType::Exec => {
            // keepalived: misc_timeout, else delay_loop.
            check.timeout = misc_timeout.unwrap_or(interval);
            match command {
                // The server's own address in its command becomes %ip, so one command
                // serves every server of the service.
                Some((_, cmd)) => {
                    check.command = Some(
                        shell_words::split(&cmd)
                            .map(|w| {
                                let own = ip.to_string();
                                let w: Vec<String> = w
                                    .iter()
                                    .map(|w| match w == &own {
                                        true => "%ip".to_string(),
                                        false => shell_words::quote(w).into_owned(),
                                    })
                                    .collect();
                                w.join(" ")
                            })
                            .unwrap_or(cmd),
                    )
                }
                None => cx.refuse(n, "a MISC_CHECK needs misc_path"),
            }
        }
        CheckType::Tcp => {}
    }
    if check.timeout > check.interval {
        svc.notes.insert(format!(
            "timeout {} s is longer than the interval {} s: drlb's check timeout is at most its \
             interval",
            check.timeout, check.interval
        ));
        check.timeout = check.interval;
    }
    if check.interval > 3600.0 {
        cx.refuse(n, "delay_loop above 3600 s: drlb checks at least once an hour");
    }
    if check.fall > 100 {
        cx.refuse(n, "retry above 99: drlb takes at most 100 failures");
    }
    (cx.refused.len() == refused_before).then_some(check)
}

fn url(u: &Node, check: &mut CheckConf, svc: &mut Service, cx: &mut Cx) {
    let mut status = None;
    for c in u.children() {
        match c.key.as_str() {
            "path" => check.path = c.args.first().cloned(),
            "status_code" => status = Some(c.args.join(" ")),
            "digest" | "regex" | "regex_no_match" | "regex_options" | "regex_stack"
            | "regex_min_offset" | "regex_max_offset" => {
                svc.notes.insert(format!(
                    "{}: drlb's HTTP check looks at the status only, not the body",
                    c.key
                ));
            }
            "virtualhost" => {
                svc.notes.insert(
                    "virtualhost: drlb's HTTP check sends the server's address as Host".into(),
                );
            }
            "tls_compliant" => {}
            _ => cx.refuse(c, "unknown keyword in a url"),
        }
    }
    // keepalived's default: 200-299.
    let status = status.unwrap_or_else(|| "200-299".into());
    check.expect = Some(match status.parse::<u16>() {
        Ok(one) => Expect::One(one),
        Err(_) => Expect::Ranges(status),
    });
}

/// Every real server of a service must be checked the same way (drlb has one check per
/// service); none checked is no check.
fn one_check(vs: &Node, checks: &[(Loc, Option<CheckConf>)], cx: &mut Cx) -> Option<CheckConf> {
    let (first_at, first) = checks.first()?;
    for (at, c) in &checks[1..] {
        if c != first {
            let what = |c: &Option<CheckConf>| match c {
                None => "no check".to_string(),
                Some(c) => format!("{c:?}"),
            };
            cx.refused.push(format!(
                "{}: {}: its real servers are checked differently ({first_at}: {}; {at}: {}); \
                 drlb checks every server of a service the same way: make the checks equal \
                 (a MISC_CHECK's command may name the server as %ip)",
                vs.at,
                vs.text(),
                what(first),
                what(c)
            ));
            return None;
        }
    }
    first.clone()
}

fn render(path: &Path, director: Option<Ipv4Addr>, services: &[Service], cx: &Cx) -> String {
    let mut out = format!(
        "# drlb services imported from {} by drlbadm --import-keepalived.\n\
         # Check before use: drlb --check FILE\n",
        path.display()
    );
    for n in &cx.top_notes {
        out += &comment(n);
    }
    let checks = services.iter().any(|s| s.conf.check.is_some());
    match director {
        Some(ip) => {
            out += &format!("\n[dataplane]\nport = 0\nip = \"{ip}\"\n");
            if checks {
                out += "# Health checks run from the director IP through the kernel interface.\n\
                        kernel_interface = \"drlb0\"\n";
            }
        }
        None => {
            out += "# keepalived.conf does not name the director's own IP: put these services\n\
                    # under a [dataplane] table (ip = \"...\"";
            out += if checks {
                ", and kernel_interface = \"drlb0\" for the\n# health checks), or import again with --director-ip IP.\n"
            } else {
                "), or import again with\n# --director-ip IP.\n"
            };
        }
    }
    if let Some((at, [tcp, fin, udp])) = &cx.timeouts {
        out += &format!(
            "\n# {at}: lvs_timeouts\n[timeouts]\ntcp = {tcp}\ntcp_fin = {fin}\nudp = {udp}\n"
        );
    }
    #[derive(serde::Serialize)]
    struct One<'a> {
        service: [&'a ServiceConf; 1],
    }
    for s in services {
        out += &format!("\n# {}: {}\n", s.at, s.head);
        for n in &s.notes {
            out += &comment(&format!("note: {n}"));
        }
        out += &toml::to_string(&One { service: [&s.conf] }).expect("a service serialises");
    }
    out
}

/// `text` as `#` lines of at most about 88 characters.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for w in text.split_whitespace() {
        if line.len() + 1 + w.len() > 88 && line.len() > 1 {
            out += &line;
            out.push('\n');
            line = String::from("#  ");
        }
        line.push(' ');
        line.push_str(w);
    }
    out += &line;
    out.push('\n');
    out
}

/// The output must load: validated as drlb validates a config (with a stand-in director
/// address when none was given); an error names the virtual_server it came from.
fn validate(
    toml: &str,
    director: Option<Ipv4Addr>,
    services: &[Service],
) -> Result<(), Vec<String>> {
    let text = match director {
        Some(_) => toml.to_string(),
        None => {
            let used: Vec<Ipv4Addr> = services
                .iter()
                .flat_map(|s| {
                    std::iter::once(s.conf.vip)
                        .chain(s.conf.backends.iter().map(|b| b.ip))
                        .chain(s.conf.sorry_server)
                })
                .collect();
            let stand_in = (1..=254u8)
                .map(|i| Ipv4Addr::new(192, 0, 2, i))
                .find(|ip| !used.contains(ip))
                .unwrap_or(Ipv4Addr::new(198, 51, 100, 1));
            format!("[dataplane]\nip = \"{stand_in}\"\nkernel_interface = \"drlb0\"\n{toml}")
        }
    };
    Config::parse(&text, "the import").map(|_| ()).map_err(|e| {
        let e = e.to_string();
        let at = e
            .split_once("service[")
            .and_then(|(_, r)| r.split_once(']'))
            .and_then(|(i, _)| i.parse::<usize>().ok())
            .and_then(|i| services.get(i));
        vec![match at {
            Some(s) => format!("{}: {}: drlb refuses what this becomes: {e}", s.at, s.head),
            None => format!("drlb refuses the import: {e}"),
        }]
    })
}
