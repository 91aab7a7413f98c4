//! The manager: runs on the main lcore, never touches a worker's queues.
//!
//! Each iteration (about every millisecond) it:
//! - applies a reload when SIGHUP arrived (a valid file as one atomic change, diffed so
//!   unchanged backends keep their slots and flows; an invalid one rejected whole);
//! - drains the workers' learned-neighbour queues; a new or changed backend MAC builds
//!   and publishes a new snapshot;
//! - resolves backends without a static MAC ([`super::arp`]);
//! - prints a stats line every `stats_interval`.
use super::arp::Resolver;
use super::config::Config;
use super::listing::Accounting;
use super::state::{BackendKey, ControlState};
use crate::admin::protocol::{
    self as admin, Announcement, ConnListing, ConnRow, Listing, ReloadReport, Request, Response,
    SwapStats, VipState,
};
use crate::admin::server::ControlServer;
use crate::dataplane::counters::{Totals, WorkerCounters};
use crate::dataplane::{CtrlFrame, DumpEntry};
use crate::health::{Checker, Target};
use crate::lb::conns::ConnCounts;
use crate::lb::verdict::Neighbor;
use crate::lb::Snapshot;
use crate::observe::metrics;
use crate::sync::{epoch, spsc};
use crate::wire::{arp, Mac};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest the manager waits for workers to pick up a new snapshot before moving on
/// (the old one is then freed later, by `try_reclaim`).
pub const SWAP_WAIT: Duration = Duration::from_millis(50);
/// How often the announcement is offered to the control server (it sends it on when it
/// changed, or its heartbeat is due).
const ANNOUNCE_EVERY: Duration = Duration::from_millis(100);
/// The longest the manager sleeps between two rounds of its loop when no control client
/// wakes it (a request is answered as it arrives): what the workers learned, the health
/// checks' results, ARP and the stats wait at most this long. The main lcore shares a
/// CPU with a worker when every CPU has one (the scaling stage's two workers on two
/// CPUs): a round every millisecond preempted that worker ~1,000 times a second
/// (`perf/README.md` §2).
const IDLE_WAIT: Duration = Duration::from_millis(10);

/// The manager's ends of the channels to the workers (one entry per worker).
pub struct Links {
    pub writer: epoch::Writer<Snapshot>,
    /// Backend MACs learned by the workers from ARP.
    pub learned: Vec<spsc::Consumer<Neighbor>>,
    /// Flow entries for `drlbadm -lnc`.
    pub dumps: Vec<spsc::Consumer<DumpEntry>>,
    /// Frames for worker 0 to send (ARP requests, gratuitous ARP).
    pub ctrl: spsc::Producer<CtrlFrame>,
    pub counters: Vec<Arc<WorkerCounters>>,
    /// Every worker's connection counts per backend (ActiveConn/InActConn).
    pub conns: Arc<ConnCounts>,
    /// The persistence templates (`-lnc` lists them).
    pub templates: Arc<crate::lb::persist::Templates>,
    /// The workers' clock (template expiry is in their ticks).
    pub clock: crate::dataplane::worker::Clock,
}

/// Everything else the manager starts with.
pub struct ManagerConfig {
    pub state: ControlState,
    pub port_mac: Mac,
    /// Re-read on SIGHUP and `drlbadm --reload`.
    pub config_path: PathBuf,
    /// Period of the stats line (None: no stats line).
    pub stats_interval: Option<Duration>,
    pub server: ControlServer,
    /// The listing the metrics thread and the telemetry commands read.
    pub shared: Arc<metrics::Shared>,
    pub signals: crate::daemon::Signals,
    /// The health checker (when the config has a kernel interface to check through).
    pub checker: Option<Checker>,
    /// The NIC's counters and link, for the listing, the stats line and the log.
    pub port: Option<crate::dpdk::port::PortMonitor>,
}

pub struct Manager {
    state: ControlState,
    links: Links,
    port_mac: Mac,
    config_path: PathBuf,
    stats_interval: Option<Duration>,
    server: Option<ControlServer>,
    shared: Arc<metrics::Shared>,
    signals: crate::daemon::Signals,
    arp: Resolver,
    checker: Option<Checker>,
    port: Option<crate::dpdk::port::PortMonitor>,
    /// The port's link as last seen.
    link: Option<crate::dpdk::port::Link>,
    accounting: Accounting,
    /// Each service's availability in the last snapshot, once it has been available (to
    /// log its changes).
    available: HashMap<(Ipv4Addr, u16, crate::lb::Proto), bool>,
    /// What BGP feeds are told (see [`Self::announcement`]), and when it was last sent.
    announcement: Announcement,
    dirty: bool,
    last_announce: Instant,
    reloads: u64,
    failed_reloads: u64,
    /// Changes made with drlbadm since the config file was last loaded or saved (a
    /// reload names those it undoes).
    runtime: Vec<(Request, String)>,
    /// Addresses still to announce by gratuitous ARP, with how many more times; one
    /// round a second ([`GARP_EVERY`]).
    garp: Vec<(u32, u32)>,
    last_garp: Instant,
    dump_seq: u64,
    /// Publish -> every worker on the new generation, in ns.
    swap_latency: hdrhistogram::Histogram<u64>,
}

/// Between two rounds of gratuitous ARPs.
const GARP_EVERY: Duration = Duration::from_secs(1);

/// One info-level log line (see [`crate::observe::logging`]).
pub fn log(msg: impl std::fmt::Display) {
    log::info!("{msg}");
}

/// One warning line: something was refused or failed, and drlb carries on.
pub fn warn(msg: impl std::fmt::Display) {
    log::warn!("{msg}");
}

impl Manager {
    pub fn new(c: ManagerConfig, links: Links) -> Self {
        let mut m = Manager {
            state: c.state,
            links,
            port_mac: c.port_mac,
            config_path: c.config_path,
            stats_interval: c.stats_interval,
            server: Some(c.server),
            shared: c.shared,
            signals: c.signals,
            arp: Resolver::default(),
            checker: c.checker,
            port: c.port,
            link: None,
            accounting: Accounting::default(),
            available: HashMap::new(),
            announcement: Announcement { director: Ipv4Addr::UNSPECIFIED, vips: Vec::new() },
            dirty: true,
            last_announce: Instant::now(),
            reloads: 0,
            runtime: Vec::new(),
            garp: Vec::new(),
            last_garp: Instant::now() - GARP_EVERY,
            failed_reloads: 0,
            dump_seq: 0,
            swap_latency: hdrhistogram::Histogram::new(3).expect("3 significant figures is valid"),
        };
        m.warn_config();
        m.update_checks();
        m.note_availability();
        *m.shared.listing.lock() = Some(m.listing());
        m
    }

    /// Logs what the running config deserves a word about ([`Config::warnings`]).
    fn warn_config(&self) {
        for w in self.state.cfg.warnings() {
            warn(format_args!("{}: {w}", self.config_path.display()));
        }
    }

    /// Generation of the snapshot the workers forward with.
    pub fn generation(&self) -> u64 {
        self.links.writer.current().generation
    }

    /// Builds and publishes the next snapshot; logs one line.
    /// Also measures the swap: from here until every online worker has passed a
    /// quiescent point on the new generation (spinning up to [`SWAP_WAIT`]; the control
    /// plane may wait, the workers never do), into `swap_latency`.
    fn publish(&mut self, why: &str) {
        let start = Instant::now();
        match self.state.snapshot(self.port_mac) {
            Ok(s) => {
                let g = s.generation;
                let t = self.links.writer.publish(s);
                let done = self.links.writer.wait(t, SWAP_WAIT);
                let ns = start.elapsed().as_nanos() as u64;
                let _ = self.swap_latency.record(ns.max(1));
                log(format_args!(
                    "generation {g}: {why} (workers on it after {:.1} µs{})",
                    ns as f64 / 1e3,
                    if done { "" } else { "; still waiting" }
                ));
                self.note_availability();
            }
            // Config validation makes this unreachable; keep serving the old snapshot.
            Err(e) => warn(format_args!(
                "snapshot not built ({e}); keeping generation {}",
                self.links.writer.current().generation
            )),
        }
    }

    /// Re-reads the config file; applies it as one change or rejects it whole. The file
    /// is the truth: changes made with drlbadm since it was last loaded or saved are
    /// undone where it differs, and each one undone is named (log and reply).
    pub fn reload(&mut self) -> Result<ReloadReport, String> {
        let path = self.config_path.clone();
        match Config::load(&path) {
            Err(e) => {
                self.failed_reloads += 1;
                warn(format_args!("reload rejected, running config unchanged: {e}"));
                Err(format!("reload rejected, running config unchanged: {e}"))
            }
            Ok(mut cfg) => {
                let restart_only = keep_restart_only(&self.state.cfg.dataplane, &mut cfg.dataplane);
                if !restart_only.is_empty() {
                    warn(format_args!(
                        "reload: these take effect on restart, the running values stay: {}",
                        restart_only.join("; ")
                    ));
                }
                // A change is undone when making it again on the file's config would
                // change that config (the file does not have it).
                let reverted: Vec<String> = std::mem::take(&mut self.runtime)
                    .into_iter()
                    .filter(|(r, _)| matches!(crate::admin::apply(&cfg, r), Ok((c, _)) if c != cfg))
                    .map(|(_, what)| what)
                    .collect();
                if !reverted.is_empty() {
                    warn(format_args!(
                        "reload undoes {} change(s) made with drlbadm since the config was loaded or saved (drlbadm --save-config keeps them): {}",
                        reverted.len(),
                        reverted.join("; ")
                    ));
                }
                let summary = diff_summary(&self.state.cfg, &cfg);
                self.change(cfg, &format!("reloaded {}: {summary}", path.display()));
                self.warn_config();
                self.reloads += 1;
                Ok(ReloadReport { summary, reverted, restart_only })
            }
        }
    }

    /// Notes a change made with drlbadm (each of a batch's on its own), for the next
    /// reload to name if it undoes it. Called before the change is applied.
    fn remember(&mut self, r: Request, what: &str) {
        let Request::Batch { changes } = r else {
            self.runtime.push((r, what.to_string()));
            return;
        };
        let mut cfg = self.state.cfg.clone();
        for c in changes {
            if let Ok((next, w)) = crate::admin::apply(&cfg, &c) {
                cfg = next;
                self.runtime.push((c, w));
            }
        }
    }

    /// Writes the running config over the config file (a temporary file renamed over
    /// it, so a reader sees the old file or the new one, never a part).
    fn save_config(&mut self) -> Result<String, String> {
        let path = &self.config_path;
        let text = format!(
            "# The running config of drlb, written by drlbadm --save-config (comments of the\n# previous file are not kept).\n{}",
            self.state.cfg.to_toml()
        );
        let tmp = path.with_extension("drlb-save.tmp");
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        std::fs::write(&tmp, text).map_err(fail)?;
        if let Ok(m) = std::fs::metadata(path) {
            let _ = std::fs::set_permissions(&tmp, m.permissions());
        }
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })?;
        self.runtime.clear();
        log(format_args!("drlbadm: saved the running config to {}", path.display()));
        Ok(path.display().to_string())
    }

    /// Announces `ips` by gratuitous ARP `garp_repeat` times, a second apart (the first
    /// round goes out at the manager's next turn).
    fn announce_garp(&mut self, ips: impl IntoIterator<Item = u32>) {
        let n = self.state.cfg.dataplane.garp_repeat;
        if n == 0 {
            return;
        }
        for ip in ips {
            match self.garp.iter_mut().find(|(a, _)| *a == ip) {
                Some(e) => e.1 = n,
                None => self.garp.push((ip, n)),
            }
        }
        self.last_garp = Instant::now() - GARP_EVERY;
    }

    /// Sends the round of gratuitous ARPs that is due.
    fn send_garps(&mut self, now: Instant) {
        if self.garp.is_empty() || now.duration_since(self.last_garp) < GARP_EVERY {
            return;
        }
        self.last_garp = now;
        let mut pending = std::mem::take(&mut self.garp);
        for (ip, left) in pending.iter_mut() {
            if self.send_arp(*ip, *ip) {
                *left -= 1;
            }
        }
        pending.retain(|&(_, left)| left > 0);
        self.garp = pending;
    }

    /// Swaps in a new (validated) config as one snapshot; announces new VIPs with
    /// gratuitous ARPs so neighbours learn the port's MAC for them at once.
    fn change(&mut self, cfg: Config, why: &str) {
        let old: std::collections::HashSet<Ipv4Addr> =
            self.state.cfg.services.iter().map(|s| s.vip).collect();
        let added: Vec<Ipv4Addr> =
            cfg.services.iter().map(|s| s.vip).filter(|v| !old.contains(v)).collect();
        self.accounting.refresh(&mut self.state, &self.links.counters);
        self.state.replace_config(cfg);
        self.accounting.refresh(&mut self.state, &self.links.counters);
        self.update_checks();
        self.publish(why);
        self.announce_garp(added.into_iter().map(u32::from));
    }

    fn send_arp(&mut self, sender: u32, target: u32) -> bool {
        let mut f = CtrlFrame { len: 0, data: [0; 64] };
        let mut buf = [0u8; 60];
        let n = arp::build_request(&mut buf, self.port_mac.0, sender, target);
        let n = match self.state.cfg.dataplane.vlan {
            // The tag after the MACs: 64 bytes, the CtrlFrame's size.
            Some(v) => {
                f.data[..12].copy_from_slice(&buf[..12]);
                f.data[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
                f.data[14..16].copy_from_slice(&v.to_be_bytes());
                f.data[16..n + 4].copy_from_slice(&buf[12..n]);
                n + 4
            }
            None => {
                f.data[..n].copy_from_slice(&buf[..n]);
                n
            }
        };
        f.len = n as u8;
        self.links.ctrl.push(f).is_ok()
    }

    /// Answers one admin request (see `admin`).
    pub fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::List {} => Response::ok(serde_json::to_value(self.listing()).ok()),
            Request::Conns {} => Response::ok(serde_json::to_value(self.conns()).ok()),
            Request::Save {} => {
                Response::ok(Some(serde_json::Value::String(self.state.cfg.to_toml())))
            }
            Request::Reload {} => match self.reload() {
                Ok(report) => Response::ok(serde_json::to_value(report).ok()),
                Err(e) => Response::err(e),
            },
            Request::Zero { svc } => {
                let key = svc.map(|s| (s.vip, s.port, s.proto));
                if let (Some(s), Some(k)) = (svc, key) {
                    if !self.state.cfg.services.iter().any(|c| (c.vip, c.port, c.protocol) == k) {
                        return Response::err(format!("Service not defined: {s}"));
                    }
                }
                self.accounting.zero(&mut self.state, &self.links.counters, key);
                let what = svc.map_or("all services".to_string(), |s| s.to_string());
                log(format_args!("drlbadm: zeroed the counters of {what}"));
                Response::ok(None)
            }
            Request::SaveConfig {} => match self.save_config() {
                Ok(path) => Response::ok(Some(serde_json::Value::String(path))),
                Err(e) => {
                    warn(format_args!("drlbadm --save-config failed: {e}"));
                    Response::err(e)
                }
            },
            r => match crate::admin::apply(&self.state.cfg, &r) {
                Ok((cfg, what)) => {
                    self.remember(r, &what);
                    self.change(cfg, &format!("drlbadm: {what}"));
                    Response::ok(Some(
                        serde_json::json!({ "generation": self.links.writer.current().generation }),
                    ))
                }
                Err(e) => {
                    warn(format_args!("drlbadm command rejected, nothing changed: {e}"));
                    Response::err(e)
                }
            },
        }
    }

    /// Every worker streams its live flow entries over one sweep; at most
    /// [`admin::MAX_CONNS_LISTED`] are kept, all are counted. Waits up to 2 s.
    pub fn conns(&mut self) -> ConnListing {
        use std::sync::atomic::Ordering::{Acquire, Release};
        for q in self.links.dumps.iter_mut() {
            while q.pop().is_some() {} // leftovers of an earlier, timed-out dump
        }
        self.dump_seq += 1;
        let id = self.dump_seq;
        for c in &self.links.counters {
            c.dump_request.store(id, Release);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let (mut got, mut total, mut complete) = (Vec::new(), 0usize, true);
        loop {
            // Done first, then drain: entries pushed before `done` are visible now.
            let done = self.links.counters.iter().all(|c| c.dump_done.load(Acquire) == id);
            for q in self.links.dumps.iter_mut() {
                while let Some(d) = q.pop() {
                    total += 1;
                    if got.len() < admin::MAX_CONNS_LISTED {
                        got.push(d);
                    }
                }
            }
            if done || self.links.dumps.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                complete = false;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let snap = self.links.writer.current();
        let dest_of = |slot: u16, inc: u16| {
            snap.backend(slot, inc)
                .map_or("(removed)".to_string(), |b| format!("{}:{}", Ipv4Addr::from(b.ip), b.port))
        };
        let proto_of = |p: u8| {
            if p == crate::wire::ipv4::protocol::UDP {
                crate::lb::Proto::Udp
            } else {
                crate::lb::Proto::Tcp
            }
        };
        let mut rows: Vec<ConnRow> = got
            .iter()
            .map(|d| {
                let k = d.flow.key;
                let dest = dest_of(d.flow.slot, d.flow.incarnation);
                ConnRow {
                    proto: proto_of(k.proto),
                    expire: d.flow.expires.saturating_sub(d.now) / crate::lb::TICKS_PER_SEC,
                    state: d.flow.state().name().to_string(),
                    source: format!("{}:{}", Ipv4Addr::from(k.saddr), k.sport),
                    virtual_: format!("{}:{}", Ipv4Addr::from(k.daddr), k.dport),
                    destination: dest,
                }
            })
            .collect();
        // Persistence templates, as ipvsadm lists them: state NONE, client port 0.
        let now = self.links.clock.now();
        for t in self.links.templates.iter_live(now) {
            total += 1;
            if rows.len() < admin::MAX_CONNS_LISTED {
                rows.push(ConnRow {
                    proto: proto_of(t.key.proto),
                    expire: t.expires.saturating_sub(now) / crate::lb::TICKS_PER_SEC,
                    state: "NONE".to_string(),
                    source: format!("{}:0", Ipv4Addr::from(t.key.client)),
                    virtual_: format!("{}:{}", Ipv4Addr::from(t.key.vip), t.key.vport),
                    destination: dest_of(t.slot, t.incarnation),
                });
            }
        }
        ConnListing { total, complete, rows }
    }

    /// The running services with their counters, health and availability.
    pub fn listing(&mut self) -> Listing {
        self.accounting.refresh(&mut self.state, &self.links.counters);
        let services = self.accounting.services(
            &self.state,
            self.links.writer.current(),
            &self.links.counters,
            &self.links.conns,
        );
        let h = &self.swap_latency;
        let t = self.state.cfg.timeouts();
        Listing {
            timeouts: [t.tcp, t.tcp_fin, t.udp],
            swaps: SwapStats {
                count: h.len(),
                p50_us: h.value_at_quantile(0.5) as f64 / 1e3,
                p99_us: h.value_at_quantile(0.99) as f64 / 1e3,
                max_us: h.max() as f64 / 1e3,
                reloads: self.reloads,
                failed_reloads: self.failed_reloads,
            },
            version: env!("CARGO_PKG_VERSION").to_string(),
            flows_per_worker: crate::lb::flow::FlowTable::entries_for(
                self.state.cfg.dataplane.flow_capacity,
            ),
            generation: self.links.writer.current().generation,
            services,
            port: self.port.map(port_health),
        }
    }

    /// Logs the port's link going down or coming up (checked every metrics refresh).
    fn watch_link(&mut self) {
        let Some(m) = self.port else { return };
        let link = m.link();
        if self.link != Some(link) {
            let what = if link.up {
                match link.speed_mbps {
                    0 => "up".to_string(),
                    s => format!("up, {s} Mb/s"),
                }
            } else {
                "DOWN: nothing is received or sent".to_string()
            };
            // The first reading is logged only when the link is down.
            if self.link.is_some() || !link.up {
                log(format_args!("port {}: link {what}", m.id()));
            }
            self.link = Some(link);
        }
    }

    /// Hands the checker the servers to check now.
    fn update_checks(&mut self) {
        let Some(checker) = &self.checker else { return };
        let source = self.state.cfg.dataplane.ip;
        let targets = self
            .state
            .cfg
            .services
            .iter()
            .filter_map(|s| Some((s, s.check.as_ref()?)))
            .flat_map(|(s, c)| {
                s.backends.iter().map(move |b| Target {
                    key: BackendKey::of(s, b.ip),
                    addr: std::net::SocketAddrV4::new(b.ip, c.port.unwrap_or(s.port)),
                    source,
                    check: c.clone(),
                })
            })
            .collect();
        checker.set_targets(targets);
    }

    /// Feeds the checkers' results to the health state; a server going down or up is one
    /// log line and one new snapshot.
    fn apply_health(&mut self) {
        let Some(checker) = &self.checker else { return };
        let reports: Vec<_> = checker.reports().collect();
        let now = Instant::now();
        let mut changed = Vec::new();
        for r in reports {
            let detail = r.result.detail.clone();
            if let Some((old, new)) = self.state.record_check(r.key, r.result, now) {
                let line = format!("{}: {} -> {} ({detail})", r.key, old.name(), new.name());
                if new == super::health::Health::Down {
                    warn(&line);
                } else {
                    log(&line);
                }
                // unknown -> up changes nothing for forwarding (unknown counts as up).
                if old == super::health::Health::Down || new == super::health::Health::Down {
                    changed.push(format!("{} {}", r.key.rip, new.name()));
                }
            }
        }
        if !changed.is_empty() {
            self.publish(&format!("health: {}", changed.join(", ")));
        }
    }

    /// Logs every service that became unavailable (fewer than `quorum` servers up) and
    /// every one that recovered since. A service not yet available at start-up (its
    /// real servers' MACs unknown) is not news.
    fn note_availability(&mut self) {
        let snap = self.links.writer.current();
        for (s, live) in self.state.cfg.services.iter().zip(&snap.services) {
            let key = (s.vip, s.port, s.protocol);
            let svc = format!("service {} {}:{}", s.protocol.ipvsadm_name(), s.vip, s.port);
            match (self.available.get(&key).copied(), live.available) {
                // Seen available before, not now.
                (Some(true), false) => {
                    let sorry = match s.sorry_server {
                        Some(ip) => format!("; new flows go to the sorry server {ip}"),
                        None => String::new(),
                    };
                    warn(format_args!(
                        "{svc} unavailable: fewer than {} servers up{sorry}",
                        s.quorum
                    ));
                }
                (Some(false), true) => {
                    log(format_args!("{svc} available again (quorum {})", s.quorum))
                }
                _ => {}
            }
            // Remember availability once it has been seen (unavailable stays "not yet"
            // until then).
            if live.available || self.available.contains_key(&key) {
                self.available.insert(key, live.available);
            }
        }
        let a = self.announcement();
        if a != self.announcement {
            for v in &a.vips {
                let was = self.announcement.vips.iter().find(|x| x.vip == v.vip);
                if was.map(|x| x.available) != Some(v.available) {
                    let what = if v.available { "announce" } else { "withdraw" };
                    log(format_args!("VIP {}: {what} (for BGP feeds)", v.vip));
                }
            }
            self.announcement = a;
            self.dirty = true;
        }
    }

    /// Each VIP of the running snapshot with whether every service on it is available:
    /// a route covers all the ports of an address, so it is announced only while this
    /// director can serve all of them.
    fn announcement(&self) -> Announcement {
        let snap = self.links.writer.current();
        let mut vips: Vec<VipState> = Vec::new();
        for s in &snap.services {
            let vip = Ipv4Addr::from(s.vip);
            match vips.iter_mut().find(|v| v.vip == vip) {
                Some(v) => v.available &= s.available,
                None => vips.push(VipState { vip, available: s.available }),
            }
        }
        vips.sort_by_key(|v| v.vip);
        Announcement { director: self.state.cfg.dataplane.ip, vips }
    }

    fn drain_learned(&mut self) {
        let mut changed = Vec::new();
        for q in self.links.learned.iter_mut() {
            while let Some(n) = q.pop() {
                let ip = Ipv4Addr::from(n.ip);
                self.arp.answered(ip);
                if self.state.learn(ip, n.mac) {
                    changed.push(format!("{ip} is-at {}", n.mac));
                }
            }
        }
        if !changed.is_empty() {
            self.publish(&format!("learned {}", changed.join(", ")));
        }
    }

    fn resolve(&mut self, now: Instant) {
        let dip = u32::from(self.state.cfg.dataplane.ip);
        for ip in self.state.arp_targets() {
            let Some(refresh) = self.arp.due(ip, now) else {
                continue;
            };
            if self.send_arp(dip, u32::from(ip)) {
                log::debug!(
                    "ARP who-has {ip} tell {}{}",
                    self.state.cfg.dataplane.ip,
                    if refresh { " (refresh)" } else { "" }
                );
                if self.arp.sent(ip, now) == super::arp::UNANSWERED_WARNING {
                    warn(format_args!(
                        "{ip} has not answered {} ARP requests: it takes no flows until it does (shown with weight 0 in drlbadm -ln)",
                        super::arp::UNANSWERED_WARNING
                    ));
                }
            }
        }
    }

    pub fn totals(&self) -> Totals {
        Totals::sum(&self.links.counters)
    }

    /// Runs until the stop flag is set.
    pub fn run(&mut self) {
        // Announce every VIP and the director IP: a director that starts (or takes over
        // from another) is found at once, as keepalived does on a VRRP takeover.
        let mut ips: Vec<u32> = self.state.cfg.services.iter().map(|s| u32::from(s.vip)).collect();
        ips.push(u32::from(self.state.cfg.dataplane.ip));
        ips.sort_unstable();
        ips.dedup();
        self.announce_garp(ips);
        let mut last_stats = Instant::now();
        let mut last_metrics = Instant::now() - metrics::REFRESH;
        let (mut last_rx, mut last_tx) = (self.totals().rx(), self.totals().tx());
        while !self.signals.stop.load(Ordering::Relaxed) {
            if self.signals.hup.swap(false, Ordering::Relaxed) {
                let _ = self.reload();
            }
            if let Some(mut srv) = self.server.take() {
                srv.poll(|r| self.handle(r));
                if self.dirty || self.last_announce.elapsed() >= ANNOUNCE_EVERY {
                    if let Ok(v) = serde_json::to_value(&self.announcement) {
                        srv.announce(v);
                    }
                    self.dirty = false;
                    self.last_announce = Instant::now();
                }
                self.server = Some(srv);
            }
            self.drain_learned();
            self.apply_health();
            let now = Instant::now();
            self.resolve(now);
            self.send_garps(now);
            self.links.writer.try_reclaim();
            if now.duration_since(last_metrics) >= metrics::REFRESH {
                self.watch_link();
                let l = self.listing();
                *self.shared.listing.lock() = Some(l);
                last_metrics = now;
            }
            if let Some(iv) = self.stats_interval {
                if now.duration_since(last_stats) >= iv {
                    let t = self.totals();
                    let secs = now.duration_since(last_stats).as_secs_f64();
                    let port = self.port.map(port_health).map_or(String::new(), |p| {
                        format!(
                            " imissed={} ierrors={} rx_nombuf={} oerrors={} link={}",
                            p.imissed,
                            p.ierrors,
                            p.rx_nombuf,
                            p.oerrors,
                            if p.link_up { "up" } else { "down" }
                        )
                    });
                    log(format_args!(
                        "stats gen={} {} rx_pps={:.0} tx_pps={:.0}{port}",
                        self.generation(),
                        t.stats_fields(),
                        (t.rx() - last_rx) as f64 / secs,
                        (t.tx() - last_tx) as f64 / secs
                    ));
                    (last_rx, last_tx) = (t.rx(), t.tx());
                    last_stats = now;
                }
            }
            match &self.server {
                Some(srv) => srv.wait(IDLE_WAIT),
                None => std::thread::sleep(IDLE_WAIT),
            }
        }
    }
}

/// The NIC's counters and link as the listing shows them.
fn port_health(m: crate::dpdk::port::PortMonitor) -> crate::admin::protocol::PortHealth {
    let (s, l) = (m.stats(), m.link());
    crate::admin::protocol::PortHealth {
        port: m.id(),
        imissed: s.imissed,
        ierrors: s.ierrors,
        rx_nombuf: s.rx_nombuf,
        oerrors: s.oerrors,
        link_up: l.up,
        link_speed_mbps: l.speed_mbps,
    }
}

/// "+N ~N -N backends, +N -N services" between two configs.
/// Puts the running values back into `new` for the keys that change only with a
/// restart; names each that differed (`key: running -> in the file`).
fn keep_restart_only(
    old: &super::config::Dataplane,
    new: &mut super::config::Dataplane,
) -> Vec<String> {
    let mut kept = Vec::new();
    macro_rules! keep {
        ($($key:ident),*) => {$(
            if new.$key != old.$key {
                kept.push(format!(
                    "dataplane.{}: {:?} -> {:?}",
                    stringify!($key),
                    old.$key,
                    new.$key
                ));
                new.$key = old.$key.clone();
            }
        )*};
    }
    keep!(
        port,
        mac,
        mtu,
        flow_capacity,
        persistence_capacity,
        vlan,
        kernel_interface,
        prefix,
        idle
    );
    kept
}

pub fn diff_summary(old: &Config, new: &Config) -> String {
    type K = (Ipv4Addr, u16, crate::lb::Proto);
    fn svcs(c: &Config) -> HashMap<K, &super::config::ServiceConf> {
        c.services.iter().map(|s| ((s.vip, s.port, s.protocol), s)).collect()
    }
    let (o, n) = (svcs(old), svcs(new));
    let (mut sa, mut sd, mut ba, mut bd, mut bc) = (0, 0, 0, 0, 0);
    for (k, ns) in &n {
        match o.get(k) {
            None => {
                sa += 1;
                ba += ns.backends.len();
            }
            Some(os) => {
                let ob: HashMap<Ipv4Addr, _> = os.backends.iter().map(|b| (b.ip, b)).collect();
                for b in &ns.backends {
                    match ob.get(&b.ip) {
                        None => ba += 1,
                        Some(x) if *x != b => bc += 1,
                        _ => {}
                    }
                }
                bd += os
                    .backends
                    .iter()
                    .filter(|b| !ns.backends.iter().any(|x| x.ip == b.ip))
                    .count();
            }
        }
    }
    for (k, os) in &o {
        if !n.contains_key(k) {
            sd += 1;
            bd += os.backends.len();
        }
    }
    let sched = n
        .iter()
        .filter(|(k, ns)| {
            o.get(k).is_some_and(|os| {
                os.scheduler != ns.scheduler || os.on_backend_removed != ns.on_backend_removed
            })
        })
        .count();
    format!("services +{sa} -{sd} ~{sched}, backends +{ba} -{bd} ~{bc}")
}
