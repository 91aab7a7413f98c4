//! drlbadm: drlb's admin client, ipvsadm-compatible (same flags, same meaning, same
//! listing layout), over drlb's control socket.
#![deny(unsafe_code)]
use clap::Parser;
use drlb::admin::bgp_feed;
use drlb::admin::client::call;
use drlb::admin::ipvsadm::{self, Mode};
use drlb::admin::protocol::{
    check_weight, Listing, ReloadReport, Request, Response, SvcId, SvcSettings,
};
use drlb::control::config::Config;
use drlb::lb::{Proto, SchedKind};
use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "drlbadm",
    version,
    about = "Administer drlb's virtual services, ipvsadm style",
    override_usage = "drlbadm -A|-E -t|-u VIP:PORT [-s SCHED] [-b FLAGS] [-p [TIMEOUT]] [-M NETMASK]\n       drlbadm -D -t|-u VIP:PORT\n       drlbadm -a|-e -t|-u VIP:PORT -r RIP[:PORT] [-g] [-w WEIGHT] [--mac MAC]\n       drlbadm -d -t|-u VIP:PORT -r RIP[:PORT]\n       drlbadm -C\n       drlbadm -Z [-t|-u VIP:PORT]\n       drlbadm --set TCP TCPFIN UDP\n       drlbadm -L|-l [-n] [--stats|--rate|-c|--timeout] [--exact] [--json] [-t|-u VIP:PORT]\n       drlbadm -S [--format toml|ipvsadm]\n       drlbadm -R < RULES\n       drlbadm --reload\n       drlbadm --save-config\n       drlbadm --check FILE\n       drlbadm --import-keepalived FILE [--director-ip IP]\n       drlbadm --bgp-feed [--maintenance FILE] [--next-hop IP]"
)]
struct Args {
    /// Add a virtual service.
    #[arg(short = 'A', long = "add-service")]
    add_service: bool,
    /// Edit a virtual service (its scheduler).
    #[arg(short = 'E', long = "edit-service")]
    edit_service: bool,
    /// Delete a virtual service and its real servers.
    #[arg(short = 'D', long = "delete-service")]
    delete_service: bool,
    /// Clear all virtual services.
    #[arg(short = 'C', long = "clear")]
    clear: bool,
    /// Add a real server to a virtual service.
    #[arg(short = 'a', long = "add-server")]
    add_server: bool,
    /// Edit a real server (its weight).
    #[arg(short = 'e', long = "edit-server")]
    edit_server: bool,
    /// Delete a real server.
    #[arg(short = 'd', long = "delete-server")]
    delete_server: bool,
    /// List the virtual services (-l is the same).
    #[arg(short = 'L', long = "list")]
    list: bool,
    #[arg(short = 'l', hide = true)]
    list_l: bool,
    /// Print the running config as TOML (loads back with --check / a reload), or with
    /// --format ipvsadm as `ipvsadm -S -n` rules (read back by -R).
    #[arg(short = 'S', long = "save")]
    save: bool,
    /// With -S: toml (default) or ipvsadm.
    #[arg(long, value_name = "FORMAT", requires = "save", value_parser = ["toml", "ipvsadm"])]
    format: Option<String>,
    /// Zero the packet, byte and connection counters (of -t|-u VIP:PORT, or of all).
    #[arg(short = 'Z', long = "zero")]
    zero: bool,
    /// Set the flow timeouts: TCP TCPFIN UDP seconds (0 leaves one as it is), as
    /// ipvsadm --set.
    #[arg(long, num_args = 3, value_names = ["TCP", "TCPFIN", "UDP"])]
    set: Option<Vec<u32>>,
    /// With -L: the flow timeouts, as ipvsadm -L --timeout.
    #[arg(long)]
    timeout: bool,
    /// Restore ipvsadm rules (ipvsadm-save -n lines: -A/-E/-D/-a/-e/-d/-C) from stdin,
    /// all as one change: a rule drlb cannot do rejects the whole input, naming its line.
    #[arg(short = 'R', long = "restore")]
    restore: bool,
    /// Re-read drlb's config file (as SIGHUP). The file is the truth: changes made with
    /// drlbadm since it was loaded or saved are undone where it differs, each named on
    /// stderr (--save-config first keeps them).
    #[arg(long)]
    reload: bool,
    /// Write the running config (with the changes made by drlbadm) over drlb's config
    /// file, atomically.
    #[arg(long)]
    save_config: bool,
    /// Validate a config file offline (no daemon needed).
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
    /// Print the virtual_server blocks of a keepalived.conf as drlb TOML (what drlb does
    /// differently in comments; what it cannot do refused with the line and the reason).
    #[arg(long, value_name = "FILE")]
    import_keepalived: Option<PathBuf>,
    /// With --import-keepalived: the director's own IP, for a whole config
    /// ([dataplane] included) rather than the services alone.
    #[arg(long, value_name = "IP", requires = "import_keepalived")]
    director_ip: Option<Ipv4Addr>,
    /// TCP service VIP:PORT.
    #[arg(short = 't', long = "tcp-service", value_name = "VIP:PORT")]
    tcp: Option<String>,
    /// UDP service VIP:PORT.
    #[arg(short = 'u', long = "udp-service", value_name = "VIP:PORT")]
    udp: Option<String>,
    /// Real server RIP[:PORT] (the port, if given, must equal the service's).
    #[arg(short = 'r', long = "real-server", value_name = "RIP[:PORT]")]
    real: Option<String>,
    /// Scheduler: wlc (default), lc, sh, sed, nq, fo, wrr, rr or mh.
    #[arg(short = 's', long = "scheduler", value_name = "SCHED")]
    sched: Option<String>,
    /// Scheduler flags, comma-separated: sh-fallback, sh-port (sh only).
    #[arg(short = 'b', long = "sched-flags", value_name = "FLAGS")]
    sched_flags: Option<String>,
    /// Persistent service: a client keeps its real server for TIMEOUT seconds after its
    /// last connection (default 300).
    #[arg(short = 'p', long = "persistent", value_name = "TIMEOUT", num_args = 0..=1, default_missing_value = "300")]
    persistent: Option<u32>,
    /// Persistence granularity: client addresses masked by NETMASK share a server.
    #[arg(short = 'M', long = "netmask", value_name = "NETMASK")]
    netmask: Option<Ipv4Addr>,
    /// Weight 0..65535 (0 drains: no new flows, existing ones stay).
    #[arg(short = 'w', long = "weight", value_name = "WEIGHT", allow_negative_numbers = true)]
    weight: Option<i64>,
    /// Direct routing (the default and only method).
    #[arg(short = 'g', long = "gatewaying")]
    gatewaying: bool,
    /// Masquerading (not supported: drlb is a DR director).
    #[arg(short = 'm', long = "masquerading", hide = true)]
    masquerading: bool,
    /// IPIP tunnelling (not supported: drlb is a DR director).
    #[arg(short = 'i', long = "ipip", hide = true)]
    ipip: bool,
    /// Static MAC of the real server (otherwise resolved by ARP).
    #[arg(long, value_name = "MAC")]
    mac: Option<String>,
    /// Numeric output (always numeric; accepted for ipvsadm scripts).
    #[arg(short = 'n', long = "numeric")]
    numeric: bool,
    /// With -L: Conns InPkts OutPkts InBytes OutBytes.
    #[arg(long)]
    stats: bool,
    /// With -L: CPS InPPS OutPPS InBPS OutBPS (sampled over one second).
    #[arg(long, conflicts_with = "stats")]
    rate: bool,
    /// With -L: exact numbers, no K/M/G units.
    #[arg(long)]
    exact: bool,
    /// With -L: JSON instead of ipvsadm's layout.
    #[arg(long)]
    json: bool,
    /// With -L: each real server's health (state, since, last check, latency).
    #[arg(long)]
    health: bool,
    /// With -L: connection entries (ipvsadm -lnc; at most 10,000 rows, with the total).
    #[arg(short = 'c', long = "connection")]
    connection: bool,
    /// Run as ExaBGP's API process: announce this director's available VIPs (see
    /// configs/exabgp.conf); withdraw when drlb stops, loses quorum, or --maintenance.
    #[arg(long)]
    bgp_feed: bool,
    /// With --bgp-feed: while FILE exists, every route is withdrawn (drain the director).
    #[arg(long, value_name = "FILE", requires = "bgp_feed")]
    maintenance: Option<PathBuf>,
    /// With --bgp-feed: the next hop to announce (default: drlb's director IP).
    #[arg(long, value_name = "IP", requires = "bgp_feed")]
    next_hop: Option<Ipv4Addr>,
    /// drlb's control socket.
    #[arg(long, env = "DRLB_SOCKET", default_value = "/run/drlb/drlb.sock")]
    socket: PathBuf,
}

fn die(code: i32, msg: impl std::fmt::Display) -> ! {
    eprintln!("drlbadm: {msg}");
    std::process::exit(code);
}

/// Writes to stdout; a reader that went away (`drlbadm -lnc | head`) ends drlbadm
/// quietly, as it ends any Unix tool.
fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        die(1, format_args!("stdout: {e}"));
    }
}

fn parse_svc(a: &Args) -> Result<Option<SvcId>, String> {
    let (spec, proto) = match (&a.tcp, &a.udp) {
        (Some(_), Some(_)) => return Err("give -t or -u, not both".into()),
        (Some(t), None) => (t, Proto::Tcp),
        (None, Some(u)) => (u, Proto::Udp),
        (None, None) => return Ok(None),
    };
    let (ip, port) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("'{spec}': want VIP:PORT, e.g. 192.168.1.200:80"))?;
    let vip = host(ip)?;
    let port = service_port(port, proto)?;
    Ok(Some(SvcId { vip, port, proto }))
}

fn parse_real(spec: &str, proto: Proto) -> Result<(Ipv4Addr, Option<u16>), String> {
    let (ip, port) = match spec.rsplit_once(':') {
        Some((i, p)) => (i, Some(service_port(p, proto)?)),
        None => (spec, None),
    };
    Ok((host(ip)?, port))
}

/// An IPv4 address, or a host name resolved to its first IPv4 address (as ipvsadm's
/// `host_to_addr`; a name needs a letter, so a mistyped address is not sent to DNS).
fn host(name: &str) -> Result<Ipv4Addr, String> {
    if let Ok(ip) = name.parse() {
        return Ok(ip);
    }
    let bad = || format!("'{name}' is not an IPv4 address or a host name that resolves to one");
    if !name.chars().any(|c| c.is_ascii_alphabetic()) {
        return Err(bad());
    }
    use std::net::ToSocketAddrs;
    let addrs = (name, 0).to_socket_addrs().map_err(|_| bad())?;
    addrs
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            _ => None,
        })
        .next()
        .ok_or_else(bad)
}

/// A port number, or a service name from /etc/services for the protocol (as ipvsadm's
/// `service_to_port`: `http` is 80).
fn service_port(p: &str, proto: Proto) -> Result<u16, String> {
    let bad = || format!("'{p}' is not a port (1..65535) or a service name");
    if let Ok(n) = p.parse::<u16>() {
        return if n == 0 { Err(bad()) } else { Ok(n) };
    }
    let want = if proto == Proto::Udp { "udp" } else { "tcp" };
    let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
    services
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .find_map(|l| {
            let mut w = l.split_whitespace();
            let (name, port_proto) = (w.next()?, w.next()?);
            let (port, pr) = port_proto.split_once('/')?;
            (pr == want && (name == p || w.any(|alias| alias == p))).then(|| port.parse().ok())?
        })
        .filter(|&n: &u16| n != 0)
        .ok_or_else(bad)
}

fn parse_sched(s: &str) -> Result<SchedKind, String> {
    SchedKind::from_name(s).ok_or_else(|| {
        format!("Scheduler not found: {s} (drlb has wlc, lc, sh, sed, nq, fo, wrr, rr and mh)")
    })
}

fn weight(a: &Args) -> Result<Option<u32>, String> {
    a.weight.map(check_weight).transpose()
}

fn send(a: &Args, req: &Request) -> Response {
    match call(&a.socket, req) {
        Ok(r) => r,
        Err(e) => die(1, e),
    }
}

fn list(a: &Args) -> Listing {
    let r = send(a, &Request::List {});
    if !r.ok {
        die(1, r.error.unwrap_or_default());
    }
    serde_json::from_value(r.data.unwrap_or_default())
        .unwrap_or_else(|e| die(1, format!("bad listing from drlb: {e}")))
}

/// The request of a command that changes something (-A -E -D -C -a -e -d --reload).
fn change_request(a: &Args) -> Result<Request, String> {
    let svc = || {
        parse_svc(a)?
            .ok_or_else(|| "this command needs a service: -t VIP:PORT or -u VIP:PORT".to_string())
    };
    let real = || -> Result<(SvcId, Ipv4Addr, Option<u16>), String> {
        let spec = a.real.as_deref().ok_or("this command needs a real server: -r RIP[:PORT]")?;
        let svc = svc()?;
        let (rip, port) = parse_real(spec, svc.proto)?;
        Ok((svc, rip, port))
    };
    let settings = || -> Result<SvcSettings, String> {
        Ok(SvcSettings {
            sched: a.sched.as_deref().map(parse_sched).transpose()?,
            flags: a.sched_flags.clone(),
            persistent: a.persistent,
            netmask: a.netmask,
        })
    };
    Ok(if a.add_service {
        Request::AddService { svc: svc()?, settings: settings()? }
    } else if a.edit_service {
        Request::EditService { svc: svc()?, settings: settings()? }
    } else if a.delete_service {
        Request::DelService { svc: svc()? }
    } else if a.add_server {
        let (svc, rip, port) = real()?;
        let (weight, mac) = (weight(a)?, a.mac.clone());
        Request::AddBackend { svc, rip, port, weight, mac }
    } else if a.edit_server {
        let (svc, rip, port) = real()?;
        let weight = weight(a)?.ok_or("-e needs -w WEIGHT")?;
        Request::EditBackend { svc, rip, port, weight }
    } else if a.delete_server {
        let (svc, rip, port) = real()?;
        Request::DelBackend { svc, rip, port }
    } else if a.clear {
        Request::Clear {}
    } else if a.zero {
        Request::Zero { svc: parse_svc(a)? }
    } else if let Some(t) = &a.set {
        Request::SetTimeouts { tcp: t[0], tcp_fin: t[1], udp: t[2] }
    } else {
        Request::Reload {}
    })
}

/// `-L`/`-l`: the listing (or connection entries) in ipvsadm's layout, or as JSON.
fn list_command(a: &Args) {
    let svc = parse_svc(a).unwrap_or_else(|e| die(1, e));
    if a.connection {
        let r = send(a, &Request::Conns {});
        if !r.ok {
            die(1, r.error.unwrap_or_default());
        }
        let l: drlb::admin::protocol::ConnListing =
            serde_json::from_value(r.data.unwrap_or_default())
                .unwrap_or_else(|e| die(1, format!("bad reply from drlb: {e}")));
        if a.json {
            out(&format!("{}\n", serde_json::to_string_pretty(&l).expect("serialises")));
        } else {
            out(&ipvsadm::format_conns(&l));
        }
        return;
    }
    let filter = |mut l: Listing| {
        if let Some(s) = svc {
            l.services.retain(|x| (x.proto, x.vip, x.port) == (s.proto, s.vip, s.port));
            if l.services.is_empty() {
                die(1, format!("Service not defined: {s}"));
            }
        }
        l
    };
    let first = filter(list(a));
    if a.timeout {
        let [tcp, fin, udp] = first.timeouts;
        out(&format!("Timeout (tcp tcpfin udp): {tcp} {fin} {udp}\n"));
        return;
    }
    if a.json {
        out(&format!("{}\n", serde_json::to_string_pretty(&first).expect("listing serialises")));
        return;
    }
    if a.health {
        out(&ipvsadm::format_health(&first));
        return;
    }
    let (mode, now, before, secs) = if a.rate {
        let t0 = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_secs(1));
        let second = filter(list(a));
        (Mode::Rate, second, Some(first), t0.elapsed().as_secs_f64())
    } else if a.stats {
        (Mode::Stats, first, None, 1.0)
    } else {
        (Mode::Plain, first, None, 1.0)
    };
    out(&ipvsadm::format(&now, mode, a.exact, before.as_ref(), secs));
}

/// `-R`: every rule from stdin parsed as drlbadm's own command line, then sent as one
/// batch; an error names the line it comes from.
fn restore(a: &Args) {
    use std::io::Read;
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        die(1, format_args!("stdin: {e}"));
    }
    let mut changes = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: &dyn std::fmt::Display| -> ! {
            let e = e.to_string();
            let first = e.lines().next().unwrap_or("");
            die(1, format_args!("stdin line {n}: {}: {line}", first.trim_start_matches("error: ")))
        };
        let args = std::iter::once("drlbadm").chain(line.split_whitespace());
        let r = Args::try_parse_from(args).unwrap_or_else(|e| at(&e));
        let is_change = [
            r.add_service,
            r.edit_service,
            r.delete_service,
            r.add_server,
            r.edit_server,
            r.delete_server,
            r.clear,
        ];
        if is_change.iter().filter(|&&c| c).count() != 1 {
            at(&"a rule is one of -A -E -D -a -e -d -C");
        }
        if r.masquerading || r.ipip {
            at(&"drlb only does direct routing (-g); -m and -i are not supported");
        }
        changes.push(change_request(&r).unwrap_or_else(|e| at(&e)));
        lines.push(n);
    }
    if changes.is_empty() {
        return;
    }
    let r = send(a, &Request::Batch { changes });
    if !r.ok {
        let e = r.error.unwrap_or_default();
        // "change I of N: why" -> the line it came from.
        let line = e
            .strip_prefix("change ")
            .and_then(|t| t.split_once(" of "))
            .and_then(|(i, _)| i.parse::<usize>().ok())
            .and_then(|i| lines.get(i.wrapping_sub(1)));
        match (line, e.split_once(": ")) {
            (Some(n), Some((_, why))) => {
                die(1, format_args!("stdin line {n}: {why}; nothing restored"))
            }
            _ => die(1, format_args!("{e}; nothing restored")),
        }
    }
}

fn main() {
    // Every rejected command exits 1, a bad flag too (clap's own code would be 2);
    // --help and --version exit 0.
    let a = Args::try_parse().unwrap_or_else(|e| {
        let code = if e.use_stderr() { 1 } else { 0 };
        let _ = e.print();
        std::process::exit(code);
    });
    let cmds = [
        a.add_service,
        a.edit_service,
        a.delete_service,
        a.clear,
        a.add_server,
        a.edit_server,
        a.delete_server,
        a.list || a.list_l,
        a.save,
        a.restore,
        a.zero,
        a.set.is_some(),
        a.reload,
        a.save_config,
        a.check.is_some(),
        a.import_keepalived.is_some(),
        a.bgp_feed,
    ];
    match cmds.iter().filter(|&&c| c).count() {
        1 => {}
        0 => die(
            1,
            "no command given: one of -A -E -D -a -e -d -C -Z -L -S -R --set --reload --save-config --check --import-keepalived --bgp-feed (see --help)",
        ),
        _ => die(1, "more than one command given (see --help)"),
    }
    if a.masquerading || a.ipip {
        die(1, "drlb only does direct routing (-g); -m and -i are not supported");
    }
    if a.bgp_feed {
        let o = bgp_feed::Options {
            socket: a.socket.clone(),
            maintenance: a.maintenance.clone(),
            next_hop: a.next_hop,
        };
        std::process::exit(bgp_feed::run(o));
    }
    if let Some(f) = &a.check {
        match Config::check_file(f) {
            Ok(line) => out(&format!("{line}\n")),
            Err(e) => die(1, e),
        }
    } else if let Some(f) = &a.import_keepalived {
        match drlb::admin::keepalived::import(f, a.director_ip) {
            Ok(i) => {
                out(&i.toml);
                let s = if i.services == 1 { "" } else { "s" };
                eprintln!("drlbadm: imported {} service{s} from {}", i.services, f.display());
            }
            Err(errors) => {
                // The first 20: a file that is not a keepalived.conf at all says so soon.
                for e in errors.iter().take(20) {
                    eprintln!("drlbadm: {e}");
                }
                if errors.len() > 20 {
                    eprintln!("drlbadm: ... and {} more", errors.len() - 20);
                }
                let s = if errors.len() == 1 { "" } else { "s" };
                die(1, format_args!("nothing imported ({} error{s})", errors.len()));
            }
        }
    } else if a.list || a.list_l {
        list_command(&a);
    } else if a.save && a.format.as_deref() == Some("ipvsadm") {
        out(&ipvsadm::format_rules(&list(&a)));
    } else if a.restore {
        restore(&a);
    } else if a.save {
        let r = send(&a, &Request::Save {});
        match (r.ok, r.data) {
            (true, Some(serde_json::Value::String(t))) => out(&t),
            (_, _) => die(1, r.error.unwrap_or_else(|| "no config in reply".into())),
        }
    } else if a.reload {
        let r = send(&a, &Request::Reload {});
        if !r.ok {
            die(1, r.error.unwrap_or_default());
        }
        let report: ReloadReport = serde_json::from_value(r.data.unwrap_or_default())
            .unwrap_or_else(|e| die(1, format!("bad reply from drlb: {e}")));
        for what in &report.reverted {
            eprintln!("drlbadm: warning: undone by the reload (not in the file): {what}");
        }
        for key in &report.restart_only {
            eprintln!("drlbadm: warning: not applied until drlb restarts: {key}");
        }
    } else if a.save_config {
        let r = send(&a, &Request::SaveConfig {});
        match (r.ok, r.data) {
            (true, Some(serde_json::Value::String(p))) => {
                out(&format!("saved the running config to {p}\n"))
            }
            (_, _) => die(1, r.error.unwrap_or_else(|| "no path in reply".into())),
        }
    } else {
        let req = change_request(&a).unwrap_or_else(|e| die(1, e));
        let r = send(&a, &req);
        if !r.ok {
            die(1, r.error.unwrap_or_default());
        }
    }
}
