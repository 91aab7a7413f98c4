//! The admin protocol spoken over the control socket by `drlbadm`.
//!
//! Wire format: the client sends one JSON object on one line (at most
//! [`MAX_REQUEST`] bytes, `\n`-terminated) and reads one JSON line back:
//! `{"ok":true,"data":...}` or `{"ok":false,"error":"..."}`; then the server closes.
//! Requests are [`Request`] tagged by `"cmd"`, e.g.
//! `{"cmd":"add_backend","svc":{"vip":"192.168.1.200","port":80,"proto":"tcp"},"rip":"192.168.1.118","weight":1}`.
//!
//! Changes are applied by [`apply`] to a copy of the running config, validated as a
//! whole, and only then swapped in (one new snapshot): a rejected command changes
//! nothing. The messages follow ipvsadm's where one exists.
use super::config::{BackendConf, Config, ServiceConf, MAX_WEIGHT};
use crate::lb::{OnRemoved, Proto, SchedKind};
use crate::wire::Mac;
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
        write!(
            f,
            "{} {}:{}",
            self.proto.ipvsadm_name(),
            self.vip,
            self.port
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// `-A -t|-u VIP:PORT [-s SCHED]`
    AddService {
        svc: SvcId,
        sched: Option<SchedKind>,
    },
    /// `-E -t|-u VIP:PORT -s SCHED`
    EditService { svc: SvcId, sched: SchedKind },
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
    EditBackend {
        svc: SvcId,
        rip: Ipv4Addr,
        port: Option<u16>,
        weight: u32,
    },
    /// `-d -t|-u VIP:PORT -r RIP[:PORT]`
    DelBackend {
        svc: SvcId,
        rip: Ipv4Addr,
        port: Option<u16>,
    },
    // Empty-struct variants (not unit ones) so unknown fields are rejected for them too.
    /// `-C`
    Clear {},
    /// `-L`/`-l` (every listing is built client-side from this).
    List {},
    /// `-L -c`: connection entries (capped at [`MAX_CONNS_LISTED`], with a total).
    Conns {},
    /// `-S`: the running config as TOML.
    Save {},
    /// `--reload`: re-read the config file (as SIGHUP).
    Reload {},
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
        Response {
            ok: true,
            error: None,
            data,
        }
    }
    pub fn err(e: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(e.into()),
            data: None,
        }
    }
}

/// Parses one request line. Errors are messages for the client.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    if line.len() > MAX_REQUEST {
        return Err(format!(
            "request too large ({} bytes; at most {MAX_REQUEST})",
            line.len()
        ));
    }
    let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_string())?;
    serde_json::from_str(text.trim_end()).map_err(|e| format!("malformed request: {e}"))
}

fn find_svc<'a>(cfg: &'a mut Config, id: &SvcId) -> Result<&'a mut ServiceConf, String> {
    cfg.services
        .iter_mut()
        .find(|s| s.vip == id.vip && s.port == id.port && s.protocol == id.proto)
        .ok_or_else(|| format!("Service not defined: {id}"))
}

fn check_port(id: &SvcId, port: Option<u16>) -> Result<(), String> {
    match port {
        Some(p) if p != id.port => Err(format!(
            "real server port {p} differs from the service port {}: direct routing (-g) cannot remap ports",
            id.port
        )),
        _ => Ok(()),
    }
}

fn check_weight(w: u32) -> Result<(), String> {
    if w > MAX_WEIGHT {
        return Err(format!(
            "Invalid weight {w}: must be 0..{MAX_WEIGHT} (0 drains)"
        ));
    }
    Ok(())
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
            let w = weight.unwrap_or(1);
            check_weight(w)?;
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
            check_weight(*weight)?;
            let s = find_svc(&mut cfg, svc)?;
            let b = s
                .backends
                .iter_mut()
                .find(|b| b.ip == *rip)
                .ok_or_else(|| format!("No such destination: {rip}:{} in {svc}", svc.port))?;
            b.weight = *weight;
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

/// One backend in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendRow {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub weight: u32,
    pub mac: Option<String>,
    pub active_conns: u64,
    pub inactive_conns: u64,
    pub conns: u64,
    pub in_pkts: u64,
    pub in_bytes: u64,
}

/// One service in a listing (counters are sums over workers; rates are computed by the
/// client from two listings, as ipvsadm's kernel estimator does over time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRow {
    pub proto: Proto,
    pub vip: Ipv4Addr,
    pub port: u16,
    pub sched: SchedKind,
    pub backends: Vec<BackendRow>,
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
    pub version: String,
    pub flows_per_worker: usize,
    pub generation: u64,
    pub services: Vec<ServiceRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(parse_request(&vec![b' '; MAX_REQUEST + 1])
            .unwrap_err()
            .contains("too large"));
    }
}
