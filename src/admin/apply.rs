//! Applying an admin command: a mutating [`Request`] turns a copy of the running
//! config into the next one, validated as a whole before the manager swaps it in.
use super::protocol::{check_port, check_weight, Request, SvcId, SvcSettings};
use crate::control::config::{BackendConf, Config, ServiceConf};
use crate::lb::{SchedFlags, SchedKind};
use crate::wire::Mac;

fn find_svc<'a>(cfg: &'a mut Config, id: &SvcId) -> Result<&'a mut ServiceConf, String> {
    cfg.services
        .iter_mut()
        .find(|s| s.vip == id.vip && s.port == id.port && s.protocol == id.proto)
        .ok_or_else(|| format!("Service not defined: {id}"))
}

/// Applies a mutating request to a copy of `running`; returns the new config (validated
/// as a running config) and a one-line description of the change.
/// `-A`/`-E`'s settings on a service, as ipvsadm sets them (not given: the default).
/// Returns how the change reads in the log.
fn settings(s: &mut ServiceConf, set: &SvcSettings) -> Result<String, String> {
    let sched = set.sched.unwrap_or_default();
    let flags = SchedFlags::parse(set.flags.as_deref().unwrap_or(""))?;
    if !flags.is_empty() && sched != SchedKind::Sh {
        return Err(format!(
            "scheduler flags are only for sh (this service would have {})",
            sched.name()
        ));
    }
    if let Some(t) = set.persistent {
        let max = crate::control::config::MAX_PERSISTENCE;
        if !(1..=max).contains(&t) {
            return Err(format!(
                "illegal timeout for persistent service: {t} (1 ..= {max} seconds)"
            ));
        }
    }
    if set.netmask.is_some() && set.persistent.is_none() {
        return Err("-M (persistence netmask) needs -p".into());
    }
    s.scheduler = sched;
    s.set_flags(flags);
    s.persistence = set.persistent;
    s.persistence_netmask = set.netmask.filter(|m| *m != std::net::Ipv4Addr::BROADCAST);
    let mut what = format!("scheduler {}", sched.name());
    if !flags.is_empty() {
        what += &format!(" ({})", flags.names());
    }
    if let Some(p) = set.persistent {
        what += &format!(" persistent {p}");
        if let Some(m) = s.persistence_netmask {
            what += &format!(" mask {m}");
        }
    }
    Ok(what)
}

pub fn apply(running: &Config, req: &Request) -> Result<(Config, String), String> {
    let mut cfg = running.clone();
    let what = match req {
        Request::AddService { svc, settings: set } => {
            if find_svc(&mut cfg, svc).is_ok() {
                return Err(format!("Service already exists: {svc}"));
            }
            let mut s = ServiceConf::new(svc.vip, svc.port, svc.proto, SchedKind::default());
            let what = settings(&mut s, set)?;
            cfg.services.push(s);
            format!("added service {svc} {what}")
        }
        Request::EditService { svc, settings: set } => {
            let what = settings(find_svc(&mut cfg, svc)?, set)?;
            format!("service {svc} {what}")
        }
        Request::DelService { svc } => {
            find_svc(&mut cfg, svc)?;
            cfg.services
                .retain(|s| !(s.vip == svc.vip && s.port == svc.port && s.protocol == svc.proto));
            format!("deleted service {svc}")
        }
        Request::AddBackend { svc, rip, port, weight, mac } => {
            check_port(svc, *port)?;
            let w = check_weight(weight.map_or(1, i64::from))?;
            let mac = match mac {
                Some(m) => Some(m.parse::<Mac>()?),
                None => None,
            };
            let s = find_svc(&mut cfg, svc)?;
            if s.backends.iter().any(|b| b.ip == *rip) {
                return Err(format!("Destination already exists: {rip}:{} in {svc}", svc.port));
            }
            s.backends.push(BackendConf { ip: *rip, port: None, weight: w, mac });
            format!("added real server {rip}:{} to {svc} weight {w}", svc.port)
        }
        Request::EditBackend { svc, rip, port, weight } => {
            check_port(svc, *port)?;
            let weight = check_weight(i64::from(*weight))?;
            let s = find_svc(&mut cfg, svc)?;
            let b = s
                .backends
                .iter_mut()
                .find(|b| b.ip == *rip)
                .ok_or_else(|| format!("No such destination: {rip}:{} in {svc}", svc.port))?;
            b.weight = weight;
            format!("real server {rip}:{} of {svc} weight {weight}", svc.port)
        }
        Request::DelBackend { svc, rip, port } => {
            check_port(svc, *port)?;
            let s = find_svc(&mut cfg, svc)?;
            let before = s.backends.len();
            s.backends.retain(|b| b.ip != *rip);
            if s.backends.len() == before {
                return Err(format!("No such destination: {rip}:{} in {svc}", svc.port));
            }
            format!("deleted real server {rip}:{} from {svc}", svc.port)
        }
        Request::Clear {} => {
            cfg.services.clear();
            "cleared all services".to_string()
        }
        Request::SetTimeouts { tcp, tcp_fin, udp } => {
            let t = cfg.timeouts.get_or_insert_with(Default::default);
            for (v, new) in [(&mut t.tcp, *tcp), (&mut t.tcp_fin, *tcp_fin), (&mut t.udp, *udp)] {
                if new != 0 {
                    *v = new;
                }
            }
            format!("timeouts (tcp tcpfin udp): {} {} {}", t.tcp, t.tcp_fin, t.udp)
        }
        Request::Batch { changes } => {
            let n = changes.len();
            let mut whats = Vec::with_capacity(n);
            for (i, c) in changes.iter().enumerate() {
                if matches!(c, Request::Batch { .. }) {
                    return Err(format!("change {} of {n}: a batch inside a batch", i + 1));
                }
                let (next, what) =
                    apply(&cfg, c).map_err(|e| format!("change {} of {n}: {e}", i + 1))?;
                cfg = next;
                whats.push(what);
            }
            format!("{n} changes at once: {}", whats.join("; "))
        }
        Request::List {}
        | Request::Conns {}
        | Request::Save {}
        | Request::Reload {}
        | Request::SaveConfig {}
        | Request::Zero { .. }
        | Request::Watch {} => return Err("not a change".into()),
    };
    cfg.validate_running().map_err(|e| e.to_string())?;
    Ok((cfg, what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::protocol::tests::seed;
    use crate::lb::SchedKind;
    use std::net::Ipv4Addr;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// `-a -t SVC -r RIP[:PORT] [-w W] [--mac MAC]`
    fn add(
        svc: SvcId,
        rip: &str,
        port: Option<u16>,
        weight: Option<u32>,
        mac: Option<&str>,
    ) -> Request {
        Request::AddBackend { svc, rip: ip(rip), port, weight, mac: mac.map(String::from) }
    }

    #[test]
    fn ipvsadm_workflow() {
        let mut c = Config::parse("[dataplane]\nip = \"192.168.1.121\"\n", "t").unwrap();
        let rs = ip("192.168.1.118");
        // (command, check on the resulting config)
        type Check = fn(&Config) -> bool;
        let steps: Vec<(Request, Check)> = vec![
            (
                Request::AddService {
                    svc: seed(),
                    settings: SvcSettings { sched: Some(SchedKind::Rr), ..Default::default() },
                },
                |c| c.services.len() == 1, // a service may be empty between -A and -a
            ),
            (add(seed(), "192.168.1.118", Some(80), Some(1), None), |c| {
                c.services[0].backends.len() == 1
            }),
            (Request::EditBackend { svc: seed(), rip: rs, port: None, weight: 0 }, |c| {
                c.services[0].backends[0].weight == 0
            }),
            (
                Request::EditService {
                    svc: seed(),
                    settings: SvcSettings { sched: Some(SchedKind::Wrr), ..Default::default() },
                },
                |c| c.services[0].scheduler == SchedKind::Wrr,
            ),
            (Request::DelBackend { svc: seed(), rip: rs, port: None }, |c| {
                c.services[0].backends.is_empty()
            }),
            (Request::DelService { svc: seed() }, |c| c.services.is_empty()),
        ];
        for (req, ok) in steps {
            c = apply(&c, &req).unwrap_or_else(|e| panic!("{req:?}: {e}")).0;
            assert!(ok(&c), "after {req:?}: {c:?}");
        }
    }

    #[test]
    fn rejected_commands_name_the_problem() {
        let c = Config::parse(include_str!("../../configs/seed-dr.toml"), "seed").unwrap();
        let other = SvcId { port: 81, ..seed() };
        let z = "192.168.1.9";
        let cases: Vec<(Request, &str)> = vec![
            (
                Request::AddService {
                    svc: seed(),
                    settings: SvcSettings { sched: None, ..Default::default() },
                },
                "Service already exists",
            ),
            (
                Request::EditService {
                    svc: other,
                    settings: SvcSettings { sched: Some(SchedKind::Rr), ..Default::default() },
                },
                "Service not defined",
            ),
            (Request::DelService { svc: other }, "Service not defined"),
            (add(seed(), "192.168.1.118", None, None, None), "Destination already exists"),
            (add(seed(), z, Some(8080), None, None), "cannot remap ports"),
            (add(seed(), z, None, Some(70000), None), "Invalid weight"),
            (add(seed(), z, None, None, Some("zz")), "not a MAC address"),
            (add(other, z, None, None, None), "Service not defined"),
            (add(seed(), "192.168.1.200", None, None, None), "cannot be a real server"),
            (
                Request::EditBackend { svc: seed(), rip: ip(z), port: None, weight: 1 },
                "No such destination",
            ),
            (Request::DelBackend { svc: seed(), rip: ip(z), port: None }, "No such destination"),
        ];
        for (req, want) in cases {
            let e = apply(&c, &req).expect_err(want);
            assert!(e.contains(want), "{req:?}: {e:?} lacks {want:?}");
        }
    }
}
