//! Applying an admin command: a mutating [`Request`] turns a copy of the running
//! config into the next one, validated as a whole before the manager swaps it in.
use super::protocol::{check_port, check_weight, Request, SvcId};
use crate::control::config::{BackendConf, Config, ServiceConf};
use crate::lb::OnRemoved;
use crate::wire::Mac;

fn find_svc<'a>(cfg: &'a mut Config, id: &SvcId) -> Result<&'a mut ServiceConf, String> {
    cfg.services
        .iter_mut()
        .find(|s| s.vip == id.vip && s.port == id.port && s.protocol == id.proto)
        .ok_or_else(|| format!("Service not defined: {id}"))
}

/// Applies a mutating request to a copy of `running`; returns the new config (validated
/// as a running config) and a one-line description of the change.
pub fn apply(running: &Config, req: &Request) -> Result<(Config, String), String> {
    let mut cfg = running.clone();
    let what = match req {
        Request::AddService { svc, sched } => {
            if find_svc(&mut cfg, svc).is_ok() {
                return Err(format!("Service already exists: {svc}"));
            }
            cfg.services.push(ServiceConf {
                vip: svc.vip,
                port: svc.port,
                protocol: svc.proto,
                scheduler: sched.unwrap_or_default(),
                on_backend_removed: OnRemoved::default(),
                backends: Vec::new(),
            });
            format!("added service {svc} {}", sched.unwrap_or_default().name())
        }
        Request::EditService { svc, sched } => {
            find_svc(&mut cfg, svc)?.scheduler = *sched;
            format!("service {svc} scheduler {}", sched.name())
        }
        Request::DelService { svc } => {
            find_svc(&mut cfg, svc)?;
            cfg.services
                .retain(|s| !(s.vip == svc.vip && s.port == svc.port && s.protocol == svc.proto));
            format!("deleted service {svc}")
        }
        Request::AddBackend {
            svc,
            rip,
            port,
            weight,
            mac,
        } => {
            check_port(svc, *port)?;
            let w = check_weight(weight.map_or(1, i64::from))?;
            let mac = match mac {
                Some(m) => Some(m.parse::<Mac>()?),
                None => None,
            };
            let s = find_svc(&mut cfg, svc)?;
            if s.backends.iter().any(|b| b.ip == *rip) {
                return Err(format!(
                    "Destination already exists: {rip}:{} in {svc}",
                    svc.port
                ));
            }
            s.backends.push(BackendConf {
                ip: *rip,
                port: None,
                weight: w,
                mac,
            });
            format!("added real server {rip}:{} to {svc} weight {w}", svc.port)
        }
        Request::EditBackend {
            svc,
            rip,
            port,
            weight,
        } => {
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
        Request::List {} | Request::Conns {} | Request::Save {} | Request::Reload {} => {
            return Err("not a change".into())
        }
    };
    cfg.validate_running().map_err(|e| e.to_string())?;
    Ok((cfg, what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::{Proto, SchedKind};
    use std::net::Ipv4Addr;

    fn cfg() -> Config {
        Config::parse(include_str!("../../configs/seed-dr.toml"), "seed").unwrap()
    }
    fn seed() -> SvcId {
        SvcId {
            vip: "192.168.1.200".parse().unwrap(),
            port: 80,
            proto: Proto::Tcp,
        }
    }

    #[test]
    fn ipvsadm_workflow() {
        let c = Config::parse("[dataplane]\nip = \"192.168.1.121\"\n", "t").unwrap();
        let (c, _) = apply(
            &c,
            &Request::AddService {
                svc: seed(),
                sched: Some(SchedKind::Rr),
            },
        )
        .unwrap();
        assert_eq!(
            c.services.len(),
            1,
            "a service may be empty between -A and -a"
        );
        let (c, _) = apply(
            &c,
            &Request::AddBackend {
                svc: seed(),
                rip: "192.168.1.118".parse().unwrap(),
                port: Some(80),
                weight: Some(1),
                mac: None,
            },
        )
        .unwrap();
        let (c, _) = apply(
            &c,
            &Request::EditBackend {
                svc: seed(),
                rip: "192.168.1.118".parse().unwrap(),
                port: None,
                weight: 0,
            },
        )
        .unwrap();
        assert_eq!(c.services[0].backends[0].weight, 0);
        let (c, _) = apply(
            &c,
            &Request::EditService {
                svc: seed(),
                sched: SchedKind::Wrr,
            },
        )
        .unwrap();
        assert_eq!(c.services[0].scheduler, SchedKind::Wrr);
        let (c, _) = apply(
            &c,
            &Request::DelBackend {
                svc: seed(),
                rip: "192.168.1.118".parse().unwrap(),
                port: None,
            },
        )
        .unwrap();
        assert!(c.services[0].backends.is_empty());
        let (c, _) = apply(&c, &Request::DelService { svc: seed() }).unwrap();
        assert!(c.services.is_empty());
    }

    #[test]
    fn rejected_commands_name_the_problem() {
        let c = cfg();
        let other = SvcId { port: 81, ..seed() };
        let a: Ipv4Addr = "192.168.1.118".parse().unwrap();
        let z: Ipv4Addr = "192.168.1.9".parse().unwrap();
        let cases: Vec<(Request, &str)> = vec![
            (
                Request::AddService {
                    svc: seed(),
                    sched: None,
                },
                "Service already exists",
            ),
            (
                Request::EditService {
                    svc: other,
                    sched: SchedKind::Rr,
                },
                "Service not defined",
            ),
            (Request::DelService { svc: other }, "Service not defined"),
            (
                Request::AddBackend {
                    svc: seed(),
                    rip: a,
                    port: None,
                    weight: None,
                    mac: None,
                },
                "Destination already exists",
            ),
            (
                Request::AddBackend {
                    svc: seed(),
                    rip: z,
                    port: Some(8080),
                    weight: None,
                    mac: None,
                },
                "cannot remap ports",
            ),
            (
                Request::AddBackend {
                    svc: seed(),
                    rip: z,
                    port: None,
                    weight: Some(70000),
                    mac: None,
                },
                "Invalid weight",
            ),
            (
                Request::AddBackend {
                    svc: seed(),
                    rip: z,
                    port: None,
                    weight: None,
                    mac: Some("zz".into()),
                },
                "not a MAC address",
            ),
            (
                Request::AddBackend {
                    svc: other,
                    rip: z,
                    port: None,
                    weight: None,
                    mac: None,
                },
                "Service not defined",
            ),
            (
                Request::AddBackend {
                    svc: seed(),
                    rip: "192.168.1.200".parse().unwrap(),
                    port: None,
                    weight: None,
                    mac: None,
                },
                "cannot be a real server",
            ),
            (
                Request::EditBackend {
                    svc: seed(),
                    rip: z,
                    port: None,
                    weight: 1,
                },
                "No such destination",
            ),
            (
                Request::DelBackend {
                    svc: seed(),
                    rip: z,
                    port: None,
                },
                "No such destination",
            ),
        ];
        for (req, want) in cases {
            let e = apply(&c, &req).expect_err(want);
            assert!(e.contains(want), "{req:?}: {e:?} lacks {want:?}");
        }
    }
}
